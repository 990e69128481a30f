// esamp-bench-overhead-cpu: tokens/s of the llama example engine with the ExploratorySampler
// attached (the defaults) against the same engine without it, on a real model, rows in {1, 8, 32}.
// Usage: esamp-bench-overhead-cpu [--model PATH] [--tokenizer PATH] [--repetitions N] [--tokens N]
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "generate/generation.hpp"
#include "models/model_dir.hpp"

namespace {

using esamp::generation::GenerationSettings;

enum class Method { plain, esamp, esamp_background };
constexpr std::array<Method, 3> kMethods = {Method::plain, Method::esamp, Method::esamp_background};
constexpr std::array<int, 3> kRowCounts = {1, 8, 32};

struct BenchOptions {
  std::string model_path;
  std::string tokenizer_path;
  int repetitions = 5;
  int tokens = 128;
};

BenchOptions parse(int argc, char** argv) {
  BenchOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} needs a value", name));
    const std::string value = argv[++i];
    if (name == "--model") {
      options.model_path = value;
    } else if (name == "--tokenizer") {
      options.tokenizer_path = value;
    } else if (name == "--repetitions" || name == "--tokens") {
      const int count = std::atoi(value.c_str());
      if (count < 1) throw std::invalid_argument(fmt::format("{} {}: must be >= 1", name, value));
      (name == "--tokens" ? options.tokens : options.repetitions) = count;
    } else {
      throw std::invalid_argument(fmt::format("unknown option '{}'", name));
    }
  }
  if (options.model_path.empty())
    options.model_path = esamp::models::model_file("stories260K.gguf");
  return options;
}

esamp::DistillerConfig distiller_config(const esamp::llama::Hyperparameters& hparams) {
  esamp::DistillerConfig distiller;
  distiller.rank = esamp::generation::default_rank(hparams);
  return distiller;
}

// One generation of `rows` samples x `tokens` new tokens from BOS; returns its tokens/s. The
// sampler is built outside the timed region, as an engine would build it once.
double tokens_per_second(const esamp::llama::Model& model, const esamp::llama::Tokenizer& tokenizer,
                         Method method, int rows, int tokens) {
  std::unique_ptr<esamp::ExploratorySampler> sampler;
  if (method != Method::plain) {
    esamp::ExplorationConfig exploration;  // the defaults, one group
    exploration.max_rows = rows;
    exploration.background_training = method == Method::esamp_background;
    sampler = esamp::generation::make_sampler(model.hparams, distiller_config(model.hparams),
                                              exploration);
  }
  esamp::llama::Engine engine(model);
  GenerationSettings settings;
  settings.samples = rows;
  settings.max_new_tokens = tokens;
  settings.stop_at_end_of_text = false;  // every configuration decodes the same number of steps
  settings.score_with_base_model = false;
  return esamp::generation::generate(engine, tokenizer, sampler.get(), "", settings)
      .tokens_per_second();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2.0;
}

int run(int argc, char** argv) {
  const BenchOptions options = parse(argc, argv);
  const esamp::llama::Model model =
      esamp::generation::load_model(options.model_path, options.tokenizer_path);
  const esamp::llama::Tokenizer tokenizer(model.vocabulary);
  const esamp::llama::Hyperparameters& hp = model.hparams;
  const int rank = distiller_config(hp).rank;
  fmt::print("model {}: dim {}, {} layers, vocab {}; distiller rank {}, AdamW, one group\n",
             options.model_path, hp.dim, hp.layer_count, hp.vocab_size, rank);
  fmt::print("{} new tokens per row from BOS, median of {} interleaved repetitions\n\n",
             options.tokens, options.repetitions);
  fmt::print(
      "| rows | plain tok/s | esamp tok/s | esamp+bg tok/s | esamp / plain | esamp+bg / plain |\n");
  fmt::print("|---:|---:|---:|---:|---:|---:|\n");
  for (const int rows : kRowCounts) {
    for (const Method method : kMethods)  // warm-up: caches, page faults, the worker thread
      tokens_per_second(model, tokenizer, method, rows, options.tokens);
    std::array<std::vector<double>, kMethods.size()> samples;
    for (int repetition = 0; repetition < options.repetitions; ++repetition)
      for (std::size_t m = 0; m < kMethods.size(); ++m)
        samples[m].push_back(
            tokens_per_second(model, tokenizer, kMethods[m], rows, options.tokens));
    const double plain = median(samples[0]), esamp = median(samples[1]),
                 background = median(samples[2]);
    fmt::print("| {} | {:.0f} | {:.0f} | {:.0f} | {:.3f} | {:.3f} |\n", rows, plain, esamp,
               background, esamp / plain, background / plain);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "esamp-bench-overhead-cpu: {}\n", e.what());
    return 1;
  }
}
