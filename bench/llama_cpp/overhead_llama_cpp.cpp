// esamp-bench-overhead-llama-cpp: tokens/s of llama.cpp decoding through esamp::llama_cpp::Adapter
// (beta 0.5, latent mixing, default rank) against plain llama.cpp with the same context settings,
// one process, runs interleaved, rows in {1, 4, 16}; prints a Markdown table of medians and ratios.
// Usage: esamp-bench-overhead-llama-cpp --model PATH [--repetitions N] [--tokens N] [--threads N]
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "generate/option_values.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::llama_cpp {
namespace {

constexpr std::array<int, 3> kRowCounts = {1, 4, 16};

struct BenchOptions {
  std::string model_path;
  int repetitions = 5;
  int tokens = 32;
  int threads = 0;
  int rank = DistillerConfig{}.rank;
};

BenchOptions parse(int argc, const char* const* argv) {
  using namespace generation;
  BenchOptions options;
  const std::vector<OptionSpec<BenchOptions>> table = {
      {"--model", "PATH", "GGUF model",
       [](BenchOptions& o, auto, const std::string& v) { o.model_path = v; }},
      {"--repetitions", "N", "measured runs per configuration [5]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.repetitions = parse_int(option, v, 1, 1000);
       }},
      {"--tokens", "N", "new tokens per row and run [32]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.tokens = parse_int(option, v, 2, 1 << 16);
       }},
      {"--threads", "N", "llama.cpp threads [its default]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.threads = parse_int(option, v, 1, 1024);
       }},
      {"--rank", "R", "distiller rank [128]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.rank = parse_int(option, v, 1, 1 << 16);
       }},
  };
  parse_command_line(argc, argv, table, options);
  if (options.model_path.empty()) usage_error("--model PATH is required");
  return options;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int run(int argc, const char* const* argv) {
  const BenchOptions options = parse(argc, argv);
  ModelPtr model = load_model(options.model_path);
  const int hidden = llama_model_n_embd(model.get());
  const int layers = llama_model_n_layer(model.get());
  const std::string prompt = "Once upon a time";
  const int context = static_cast<int>(tokenize(model.get(), prompt).size()) + options.tokens;

  fmt::print("model {}: hidden {}, {} layers; rank {}, {} tokens per row, median of {}\n\n",
             options.model_path, hidden, layers, options.rank, options.tokens, options.repetitions);
  fmt::print("| rows | plain tok/s | esamp tok/s | esamp / plain |\n|---:|---:|---:|---:|\n");
  for (const int rows : kRowCounts) {
    DistillerConfig distiller;
    distiller.hidden_size = hidden;
    distiller.rank = options.rank;
    ExplorationConfig exploration;  // beta 0.5, latent, layer 0 -> last layer
    exploration.max_rows = rows;
    ExploratorySampler sampler(layers, distiller, exploration);
    const ContextShape shape{rows, context, options.threads};
    Generator plain(model.get(), shape, nullptr);
    Generator esamp(model.get(), shape, &sampler);
    generation::GenerationSettings settings;
    settings.samples = rows;
    settings.max_new_tokens = options.tokens;
    settings.stop_at_end_of_text = false;
    settings.score_with_base_model = false;
    std::vector<double> plain_rates, esamp_rates;
    // One warm-up each, then interleaved, alternating which goes first.
    for (int r = -1; r < options.repetitions; ++r) {
      settings.seed = static_cast<std::uint64_t>(r + 1);
      const bool plain_first = r % 2 == 0;
      for (int k = 0; k < 2; ++k) {
        const bool is_plain = (k == 0) == plain_first;
        const double rate =
            (is_plain ? plain : esamp).generate(prompt, settings).tokens_per_second();
        if (r >= 0) (is_plain ? plain_rates : esamp_rates).push_back(rate);
      }
    }
    const double p = median(plain_rates), e = median(esamp_rates);
    fmt::print("| {} | {:.2f} | {:.2f} | {:.3f} |\n", rows, p, e, e / p);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::llama_cpp

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-bench-overhead-llama-cpp",
                                        [&] { return esamp::llama_cpp::run(argc, argv); });
}
