// esamp-llama: samples prompts with Exploratory Sampling inside real llama.cpp (any GGUF model it
// loads) through esamp::llama_cpp::Adapter, and prints the samples with a summary of speed,
// coherence and diversity (optionally beside plain llama.cpp sampling).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "esamp/metrics.hpp"
#include "generate/json_writer.hpp"
#include "generate/option_values.hpp"
#include "generate/progress.hpp"
#include "generate/quality.hpp"
#include "llama_cpp_generation.hpp"
#include "models/model_dir.hpp"

namespace esamp::llama_cpp {
namespace {

using generation::GenerationResult;
using generation::JsonWriter;
using generation::OptionSpec;
using generation::QualitySummary;
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
            "also run plain llama.cpp sampling (same seed and settings) and compare",
            [](Options& o, auto, auto&) { o.compare = true; }},
       },
       output_options<Options>()});
  return table;
}

struct Run {
  const char* method;  // "plain" or "esamp"
  std::vector<GenerationResult> results;
  QualitySummary summary;
  std::optional<Stats> distiller_stats;
};

Run run_method(const char* method, const Options& options, llama_model* model, int context,
               generation::ProgressBar& progress) {
  Run run{method, {}, {}, {}};
  std::unique_ptr<ExploratorySampler> sampler;
  const int hidden = llama_model_n_embd(model);
  if (std::string_view(method) == "esamp") {
    DistillerConfig distiller;
    distiller.hidden_size = hidden;
    distiller.rank = options.rank > 0 ? options.rank : std::min(distiller.rank, hidden);
    distiller.seed = options.seed;
    ExplorationConfig exploration;
    exploration.beta = options.beta;
    exploration.max_rows = options.samples;
    // Training on llama.cpp's threads (llama_cpp::backend()), idle while esamp trains.
    exploration.training_threads = std::min(
        256, options.threads > 0 ? options.threads : llama_context_default_params().n_threads);
    sampler = std::make_unique<ExploratorySampler>(llama_model_n_layer(model), distiller,
                                                   exploration, llama_cpp::backend());
  }
  Generator generator(model, {options.samples, context, options.threads}, sampler.get());
  generation::GenerationSettings settings;
  settings.samples = options.samples;
  settings.max_new_tokens = options.new_tokens;
  settings.filter = options.filter;
  settings.seed = options.seed;
  settings.on_tokens = [&progress](int tokens) { progress.advance(tokens); };
  for (std::size_t p = 0; p < options.prompts.size(); ++p) {
    settings.first_sequence = p * static_cast<std::uint64_t>(options.samples);
    run.results.push_back(generator.generate(options.prompts[p], settings));
  }
  run.summary = generation::summarize(run.results);
  if (sampler) run.distiller_stats = sampler->stats();
  return run;
}

void print_samples(const Run& run) {
  fmt::print("=== {} ===\n", run.method);
  for (std::size_t p = 0; p < run.results.size(); ++p) {
    const GenerationResult& result = run.results[p];
    for (std::size_t s = 0; s < result.samples.size(); ++s)
      fmt::print("--- prompt {}/{}, sample {}/{} ({} tokens{}) ---\n{}{}\n", p + 1,
                 run.results.size(), s + 1, result.samples.size(), result.samples[s].tokens.size(),
                 result.samples[s].stopped ? ", ended by the model" : "", result.prompt_text,
                 result.samples[s].text);
  }
}

void print_summary_table(const std::vector<Run>& runs) {
  const auto row = [&runs](std::string_view label, auto cell) {
    fmt::print("{:<34}", label);
    for (const Run& run : runs) fmt::print("{:>12}", cell(run));
    fmt::print("\n");
  };
  fmt::print("\n");
  row("summary", [](const Run& r) { return std::string(r.method); });
  row("tokens sampled", [](const Run& r) { return fmt::format("{}", r.summary.sampled_tokens); });
  row("tokens/s", [](const Run& r) { return fmt::format("{:.1f}", r.summary.tokens_per_second); });
  row("perplexity (base model, mean)",
      [](const Run& r) { return fmt::format("{:.3f}", r.summary.mean_perplexity); });
  for (std::size_t n = 0; n < 4; ++n)
    row(fmt::format("distinct-{} (words)", n + 1),
        [n](const Run& r) { return fmt::format("{:.4f}", r.summary.distinct_words[n]); });
  row("Vendi (word n-grams)",
      [](const Run& r) { return fmt::format("{:.3f}", r.summary.ngram_vendi); });
  row("Vendi (hidden states)",
      [](const Run& r) { return fmt::format("{:.3f}", r.summary.hidden_vendi); });
  row("distiller loss (mean)", [](const Run& r) {
    return r.distiller_stats ? fmt::format("{:.4f}", r.distiller_stats->mean_loss) : "-";
  });
}

void print_json(const Options& options, const std::string& model_path,
                const std::vector<Run>& runs) {
  JsonWriter json;
  json.begin_object().key("model").value(model_path).key("settings").begin_object();
  json.key("samples").value(options.samples).key("tokens").value(options.new_tokens);
  json.key("temperature").value(static_cast<double>(options.filter.temperature));
  json.key("top_k").value(options.filter.top_k);
  json.key("top_p").value(static_cast<double>(options.filter.top_p));
  json.key("min_p").value(static_cast<double>(options.filter.min_p));
  json.key("beta").value(static_cast<double>(options.beta));
  json.key("seed").value(fmt::format("{}", options.seed));  // a string: 64 bits exceed a double
  json.end_object().key("runs").begin_array();
  for (const Run& run : runs) {
    json.begin_object().key("method").value(run.method).key("prompts").begin_array();
    for (const GenerationResult& result : run.results) {
      json.begin_object().key("prompt").value(result.prompt_text).key("samples").begin_array();
      for (const generation::Sample& sample : result.samples) {
        json.begin_object().key("text").value(sample.text).key("tokens").begin_array();
        for (const auto token : sample.tokens) json.value(token);
        json.end_array().key("stopped").value(sample.stopped);
        json.key("perplexity").value(perplexity(sample.base_logprobs));
        json.end_object();
      }
      json.end_array().end_object();
    }
    const QualitySummary& s = run.summary;
    json.end_array().key("summary").begin_object();
    json.key("sampled_tokens").value(s.sampled_tokens);
    json.key("tokens_per_second").value(s.tokens_per_second);
    json.key("mean_perplexity").value(s.mean_perplexity);
    json.key("distinct_words").begin_array();
    for (const double d : s.distinct_words) json.value(d);
    json.end_array().key("ngram_vendi").value(s.ngram_vendi);
    json.key("hidden_vendi").value(s.hidden_vendi).end_object();
    json.end_object();
  }
  json.end_array().end_object();
  fmt::print("{}\n", json.text());
}

std::string usage() {
  return fmt::format(
      "Usage: esamp-llama [options]\n"
      "Samples a prompt N times as one batch inside llama.cpp with Exploratory Sampling (esamp),\n"
      "prints the samples and a summary: tokens/s, perplexity under the base model, diversity.\n\n"
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
  ModelPtr model = load_model(model_path);
  const int hidden = llama_model_n_embd(model.get());
  if (options.rank > hidden)
    throw UsageError(fmt::format("--rank {}: must be in [1, {}], the model's hidden size",
                                 options.rank, hidden));
  const int trained = llama_model_n_ctx_train(model.get());
  int context = 0;
  for (const std::string& prompt : options.prompts) {
    const auto prompt_tokens = static_cast<int>(tokenize(model.get(), prompt).size());
    if (prompt_tokens + options.new_tokens > trained)
      throw UsageError(fmt::format(
          "--tokens {}: the prompt '{}' ({} tokens) leaves room for {} in the model's context of "
          "{}",
          options.new_tokens, prompt, prompt_tokens, trained - prompt_tokens, trained));
    context = std::max(context, prompt_tokens + options.new_tokens);
  }

  std::vector<const char*> methods;
  if (options.compare) methods.push_back("plain");
  methods.push_back("esamp");
  const std::int64_t budget = static_cast<std::int64_t>(methods.size() * options.prompts.size()) *
                              options.samples * options.new_tokens;
  generation::ProgressBar progress(budget, !options.quiet && isatty(STDERR_FILENO));
  std::vector<Run> runs;
  for (const char* method : methods)
    runs.push_back(run_method(method, options, model.get(), context, progress));
  progress.finish();

  if (options.json) {
    print_json(options, model_path, runs);
  } else if (options.quiet) {
    for (const Run& run : runs)
      for (const GenerationResult& result : run.results)
        for (const generation::Sample& sample : result.samples)
          fmt::print("{}{}\n", result.prompt_text, sample.text);
  } else {
    for (const Run& run : runs) print_samples(run);
    print_summary_table(runs);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::llama_cpp

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-llama",
                                        [&] { return esamp::llama_cpp::run_program(argc, argv); });
}
