// esamp-generate: samples prompts with Exploratory Sampling on the llama example engine and prints
// the samples with a summary of speed, coherence, diversity and the guardrails (optionally beside
// plain sampling at matched perplexity: compare.hpp, shared with esamp-llama).
#include <fmt/format.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "compare.hpp"
#include "json_writer.hpp"
#include "models/model_dir.hpp"
#include "options.hpp"
#include "quality.hpp"
#include "sample_engine.hpp"

namespace esamp::generation {
namespace {

void print_json(const Options& options, const std::string& model_path, const SampleEngine& engine,
                const Comparison& comparison) {
  JsonWriter json;
  json.begin_object();
  json.key("model").value(model_path);
  json.key("hidden_size").value(engine.hidden_size()).key("layers").value(engine.layer_count());
  json.key("settings").begin_object();
  json.key("samples").value(options.samples).key("tokens").value(options.new_tokens);
  json.key("temperature").value(static_cast<double>(options.filter.temperature));
  json.key("top_k").value(options.filter.top_k);
  json.key("top_p").value(static_cast<double>(options.filter.top_p));
  json.key("min_p").value(static_cast<double>(options.filter.min_p));
  json.key("beta").value(static_cast<double>(options.beta)).key("mix").value(name(options.mix));
  json.key("rank").value(options.rank > 0 ? options.rank : default_rank(engine.hidden_size()));
  json.key("lr").value(static_cast<double>(options.lr));
  json.key("optimizer").value(name(options.optimizer)).key("sharing").value(name(options.sharing));
  json.key("seed").value(fmt::format("{}", options.seed));  // a string: 64 bits exceed a double
  json.end_object();
  write_json(json, comparison);
  json.end_object();
  fmt::print("{}\n", json.text());
}

int run_program(int argc, const char* const* argv) {
  const Options options = parse_options(argc, argv);
  if (options.help) {
    fmt::print("{}", usage("esamp-generate"));
    return 0;
  }
  const std::string model_path =
      options.model_path.empty() ? models::model_file("stories260K.gguf") : options.model_path;
  const std::unique_ptr<SampleEngine> engine = own_engine(model_path, options.tokenizer_path);
  RunSpec spec = run_spec(options, *engine);
  spec.distiller.lr = options.lr;
  spec.distiller.optimizer = options.optimizer;
  spec.exploration.mix = options.mix;
  spec.exploration.sharing = options.sharing;
  max_sequence_tokens(*engine, spec.prompts, spec.new_tokens);  // a prompt too long: exit 2 now

  const std::unique_ptr<embed::SentenceEncoder> encoder =
      load_encoder_if_present("esamp-generate", options.quiet || options.json);
  const Comparison comparison = run_comparison(*engine, spec, options.compare, encoder.get(),
                                               !options.quiet && isatty(STDERR_FILENO));
  if (options.json) {
    print_json(options, model_path, *engine, comparison);
  } else if (options.quiet) {
    for (const MethodRun& run : comparison.runs) print_texts(run);
  } else {
    for (const MethodRun& run : comparison.runs) print_samples(run);
    print_summary(comparison, encoder != nullptr);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::generation

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-generate",
                                        [&] { return esamp::generation::run_program(argc, argv); });
}
