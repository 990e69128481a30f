// esamp-llama: samples prompts with Exploratory Sampling inside real llama.cpp (any GGUF model it
// loads) through esamp::llama_cpp::Adapter, and prints the samples with a summary of speed,
// coherence, diversity and the guardrails (optionally beside plain llama.cpp sampling at matched
// perplexity: generate/compare.hpp, shared with esamp-generate).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "generate/compare.hpp"
#include "generate/json_writer.hpp"
#include "generate/option_values.hpp"
#include "generate/quality.hpp"
#include "llama_cpp_engine.hpp"
#include "models/model_dir.hpp"

namespace esamp::llama_cpp {
namespace {

using generation::JsonWriter;
using generation::OptionSpec;
using generation::UsageError;

struct Options {
  std::string model_path;  // empty: stories260K.gguf in the model folder
  std::vector<std::string> prompts{"Once upon a time"};
  bool prompt_given = false;
  int samples = 8;
  int new_tokens = 128;
  Filter filter;
  float beta = ExplorationConfig{}.beta;
  int rank = 0;  // 0: DESIGN.md's 128, capped at the model's hidden size
  int threads = 0;
  std::uint64_t seed = 0;
  bool compare = false, json = false, quiet = false, help = false;
};

const std::vector<OptionSpec<Options>>& option_table() {
  using namespace generation;
  static const std::vector<OptionSpec<Options>> table = joined<Options>(
      {{
           {"--model", "PATH",
            "any GGUF model llama.cpp loads [stories260K.gguf in $ESAMP_MODEL_DIR, else the cache]",
            [](Options& o, auto, const std::string& v) { o.model_path = v; }},
       },
       sampling_options<Options>(),
       {
           {"--rank", "R", "distiller rank [128, capped at the model's hidden size]",
            [](Options& o, auto option, const std::string& v) {
              o.rank = parse_int(option, v, 1, 1 << 20);
            }},
           {"--threads", "N", "llama.cpp threads [its default]",
            [](Options& o, auto option, const std::string& v) {
              o.threads = parse_int(option, v, 1, 1024);
            }},
           {"--seed", "S", "seed of the samplers and of the distiller's init [0]",
            [](Options& o, auto option, const std::string& v) {
              o.seed = parse_number<std::uint64_t>(option, v, "an unsigned 64-bit integer");
            }},
           {"--compare", "",
            "also run plain llama.cpp sampling, its temperature calibrated to esamp's perplexity, "
            "and compare",
            [](Options& o, auto, auto&) { o.compare = true; }},
       },
       output_options<Options>()});
  return table;
}

void print_json(const Options& options, const std::string& model_path,
                const generation::SampleEngine& engine, const generation::Comparison& comparison) {
  JsonWriter json;
  json.begin_object().key("model").value(model_path);
  json.key("hidden_size").value(engine.hidden_size()).key("layers").value(engine.layer_count());
  json.key("settings").begin_object();
  json.key("samples").value(options.samples).key("tokens").value(options.new_tokens);
  json.key("temperature").value(static_cast<double>(options.filter.temperature));
  json.key("top_k").value(options.filter.top_k);
  json.key("top_p").value(static_cast<double>(options.filter.top_p));
  json.key("min_p").value(static_cast<double>(options.filter.min_p));
  json.key("beta").value(static_cast<double>(options.beta));
  json.key("seed").value(fmt::format("{}", options.seed));  // a string: 64 bits exceed a double
  json.end_object();
  generation::write_json(json, comparison);
  json.end_object();
  fmt::print("{}\n", json.text());
}

std::string usage() {
  return fmt::format(
      "Usage: esamp-llama [options]\n"
      "Samples a prompt N times as one batch inside llama.cpp with Exploratory Sampling (esamp),\n"
      "prints the samples and a summary: tokens/s, perplexity under the base model, diversity,\n"
      "repetition and prompt relevance.\n\n"
      "{}\n{}",
      generation::options_help(option_table()), generation::kExitStatusHelp);
}

int run_program(int argc, const char* const* argv) {
  Options options;
  generation::parse_command_line(argc, argv, option_table(), options);
  if (options.help) {
    fmt::print("{}", usage());
    return 0;
  }
  const std::string model_path =
      options.model_path.empty() ? models::model_file("stories260K.gguf") : options.model_path;
  const std::unique_ptr<generation::SampleEngine> engine =
      llama_cpp_engine(model_path, options.threads);
  generation::RunSpec spec = generation::run_spec(options, *engine);
  generation::max_sequence_tokens(*engine, spec.prompts, spec.new_tokens);  // exit 2 now

  const std::unique_ptr<embed::SentenceEncoder> encoder =
      generation::load_encoder_if_present("esamp-llama", options.quiet || options.json);
  const generation::Comparison comparison = generation::run_comparison(
      *engine, spec, options.compare, encoder.get(), !options.quiet && isatty(STDERR_FILENO));
  if (options.json) {
    print_json(options, model_path, *engine, comparison);
  } else if (options.quiet) {
    for (const generation::MethodRun& run : comparison.runs) generation::print_texts(run);
  } else {
    for (const generation::MethodRun& run : comparison.runs) generation::print_samples(run);
    generation::print_summary(comparison, encoder != nullptr);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::llama_cpp

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-llama",
                                        [&] { return esamp::llama_cpp::run_program(argc, argv); });
}
