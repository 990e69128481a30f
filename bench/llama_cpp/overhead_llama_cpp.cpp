// esamp-bench-overhead-llama-cpp: tokens/s of llama.cpp decode steps through
// esamp::llama_cpp::Adapter (beta 0.5, latent mixing, default rank) against plain llama_decode on
// a second context with the same settings, one process, steps interleaved pairwise, rows in
// {1, 4, 16}; prints a Markdown table of medians and ratios. Sampling is left out (the same for
// both). Usage: esamp-bench-overhead-llama-cpp --model PATH [--steps N] [--threads N] [--rank R]
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
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
  int steps = 16;
  int threads = 0;
  int rank = DistillerConfig{}.rank;
};

BenchOptions parse(int argc, const char* const* argv) {
  using namespace generation;
  BenchOptions options;
  const std::vector<OptionSpec<BenchOptions>> table = {
      {"--model", "PATH", "GGUF model",
       [](BenchOptions& o, auto, const std::string& v) { o.model_path = v; }},
      {"--steps", "N", "measured decode steps per row count [16]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.steps = parse_int(option, v, 1, 1 << 16);
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

double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(at);
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (at - static_cast<double>(below)) * (values[above] - values[below]);
}

double seconds_of(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(int argc, const char* const* argv) {
  const BenchOptions options = parse(argc, argv);
  ModelPtr model = load_model(options.model_path);
  const int hidden = llama_model_n_embd(model.get());
  const int layers = llama_model_n_layer(model.get());
  const std::vector<llama_token> prompt = tokenize(model.get(), "Once upon a time");
  const auto prompt_length = static_cast<int>(prompt.size());
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model.get()));

  fmt::print("model {}: hidden {}, {} layers; rank {}; {} measured steps after one warm-up\n\n",
             options.model_path, hidden, layers, options.rank, options.steps);
  fmt::print(
      "| rows | plain tok/s | esamp tok/s | esamp / plain (medians) | paired ratio: median "
      "[quartiles] |\n|---:|---:|---:|---:|---:|\n");
  for (const int rows : kRowCounts) {
    DistillerConfig distiller;
    distiller.hidden_size = hidden;
    distiller.rank = options.rank;
    ExplorationConfig exploration;  // beta 0.5, latent, layer 0 -> last layer
    exploration.max_rows = rows;
    ExploratorySampler sampler(layers, distiller, exploration);
    const llama_context_params params =
        context_params({rows, prompt_length + options.steps + 1, options.threads});
    Adapter adapter(model.get(), sampler);
    llama_context* esamp_context = adapter.init_context(params);
    const std::unique_ptr<llama_context, void (*)(llama_context*)> plain_context(
        llama_init_from_model(model.get(), params), llama_free);
    if (!plain_context) fail("llama_init_from_model failed");

    std::vector<llama_seq_id> sequences(static_cast<std::size_t>(rows));
    for (int s = 0; s < rows; ++s) sequences[static_cast<std::size_t>(s)] = s;
    const Span<const llama_seq_id> all(sequences.data(), sequences.size());
    Batch prefill(prompt_length, rows);
    for (int p = 0; p < prompt_length; ++p)
      prefill.add(prompt[static_cast<std::size_t>(p)], p, all, p + 1 == prompt_length);
    for (llama_context* context : {plain_context.get(), esamp_context})
      if (llama_decode(context, prefill.get()) != 0) fail("llama_decode of the prompt failed");
    const GroupId group = adapter.open_group(all);

    std::vector<double> plain_rates, esamp_rates, paired;
    Batch step(rows, 1);
    for (int k = -1; k < options.steps; ++k) {
      step.clear();
      // Any tokens time the same; each row reads its own.
      for (int s = 0; s < rows; ++s)
        step.add((7 * (k + 2) + 13 * s) % vocab, prompt_length + k + 1,
                 Span<const llama_seq_id>(&sequences[static_cast<std::size_t>(s)], 1), true);
      double plain_seconds = 0.0, esamp_seconds = 0.0;
      const auto time_plain = [&] {
        plain_seconds = seconds_of([&] { llama_decode(plain_context.get(), step.get()); });
      };
      const auto time_esamp = [&] {
        esamp_seconds = seconds_of([&] { adapter.decode(step.get()); });
      };
      // Adjacent steps of the two, alternating which goes first, see the same machine load.
      if (k % 2 == 0) {
        time_plain();
        time_esamp();
      } else {
        time_esamp();
        time_plain();
      }
      if (k < 0) continue;
      plain_rates.push_back(rows / plain_seconds);
      esamp_rates.push_back(rows / esamp_seconds);
      paired.push_back(plain_seconds / esamp_seconds);
    }
    adapter.close_group(group);
    const double p = quantile(plain_rates, 0.5), e = quantile(esamp_rates, 0.5);
    fmt::print("| {} | {:.2f} | {:.2f} | {:.3f} | {:.3f} [{:.3f}, {:.3f}] |\n", rows, p, e, e / p,
               quantile(paired, 0.5), quantile(paired, 0.25), quantile(paired, 0.75));
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
