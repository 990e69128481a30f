// esamp-generate: samples prompts with Exploratory Sampling on the llama example engine and prints
// the samples with a summary of speed, coherence and diversity (optionally beside plain sampling).
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/metrics.hpp"
#include "generation.hpp"
#include "json_writer.hpp"
#include "options.hpp"
#include "progress.hpp"
#include "quality.hpp"

namespace esamp::generation {
namespace {

// One method's results over every prompt.
struct Run {
  const char* method;  // "plain" or "esamp"
  std::vector<GenerationResult> results;
  QualitySummary summary;
  std::optional<Stats> distiller_stats;  // esamp only
};

std::string resolve_model_path(const Options& options) {
  if (!options.model_path.empty()) return options.model_path;
  const char* dir = std::getenv("ESAMP_MODEL_DIR");
  if (dir == nullptr || *dir == '\0')
    throw UsageError("no model: pass --model PATH or set ESAMP_MODEL_DIR to the models folder");
  return std::string(dir) + "/stories260K.gguf";
}

// Values that only the loaded model can judge; a UsageError like the parser's.
void check_against_model(const Options& options, const llama::Model& model,
                         const llama::Tokenizer& tokenizer) {
  const llama::Hyperparameters& hp = model.hparams;
  if (options.rank > hp.dim)
    throw UsageError(fmt::format("--rank {}: must be in [1, {}], the model's hidden size",
                                 options.rank, hp.dim));
  for (const std::string& prompt : options.prompts) {
    const auto prompt_tokens = static_cast<int>(tokenizer.encode(prompt, true, false).size());
    if (prompt_tokens + options.new_tokens > hp.context_length)
      throw UsageError(fmt::format(
          "--tokens {}: the prompt '{}' ({} tokens with BOS) leaves room for {} in the model's "
          "context of {}",
          options.new_tokens, prompt, prompt_tokens, hp.context_length - prompt_tokens,
          hp.context_length));
  }
}

Run run_method(const char* method, const Options& options, const llama::Model& model,
               const llama::Tokenizer& tokenizer, ProgressBar& progress) {
  Run run{method, {}, {}, {}};
  std::unique_ptr<ExploratorySampler> sampler;
  if (std::string_view(method) == "esamp") {
    DistillerConfig distiller;
    distiller.rank = options.rank > 0 ? options.rank : default_rank(model.hparams);
    distiller.lr = options.lr;
    distiller.optimizer = options.optimizer;
    distiller.seed = options.seed;
    ExplorationConfig exploration;
    exploration.beta = options.beta;
    exploration.mix = options.mix;
    exploration.sharing = options.sharing;
    exploration.max_rows = options.samples;
    sampler = make_sampler(model.hparams, distiller, exploration);
  }
  llama::Engine engine(model);
  GenerationSettings settings;
  settings.samples = options.samples;
  settings.max_new_tokens = options.new_tokens;
  settings.filter = options.filter;
  settings.seed = options.seed;
  settings.on_tokens = [&progress](int tokens) { progress.advance(tokens); };
  for (std::size_t p = 0; p < options.prompts.size(); ++p) {
    settings.first_sequence = p * static_cast<std::uint64_t>(options.samples);
    run.results.push_back(generate(engine, tokenizer, sampler.get(), options.prompts[p], settings));
  }
  run.summary = summarize(run.results);
  if (sampler) run.distiller_stats = sampler->stats();
  return run;
}

void print_texts(const Run& run) {
  for (const GenerationResult& result : run.results)
    for (const Sample& sample : result.samples)
      fmt::print("{}{}\n", result.prompt_text, sample.text);
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

// One line of the summary table: `label`, then one cell per run.
void print_row(const std::vector<Run>& runs, std::string_view label,
               const std::function<std::string(const Run&)>& cell) {
  fmt::print("{:<34}", label);
  for (const Run& run : runs) fmt::print("{:>12}", cell(run));
  fmt::print("\n");
}

void print_summary_table(const std::vector<Run>& runs) {
  fmt::print("\n");
  print_row(runs, "summary", [](const Run& r) { return std::string(r.method); });
  print_row(runs, "samples x prompts", [](const Run& r) {
    return fmt::format("{} x {}", r.summary.samples / r.summary.prompts, r.summary.prompts);
  });
  print_row(runs, "tokens sampled",
            [](const Run& r) { return fmt::format("{}", r.summary.sampled_tokens); });
  print_row(runs, "tokens/s",
            [](const Run& r) { return fmt::format("{:.1f}", r.summary.tokens_per_second); });
  print_row(runs, "perplexity (base model, mean)",
            [](const Run& r) { return fmt::format("{:.3f}", r.summary.mean_perplexity); });
  for (std::size_t n = 0; n < 4; ++n)
    print_row(runs, fmt::format("distinct-{} (words)", n + 1),
              [n](const Run& r) { return fmt::format("{:.4f}", r.summary.distinct_words[n]); });
  print_row(runs, "pairwise cosine (word n-grams)",
            [](const Run& r) { return fmt::format("{:.4f}", r.summary.ngram_cosine); });
  print_row(runs, "pairwise cosine (hidden states)",
            [](const Run& r) { return fmt::format("{:.4f}", r.summary.hidden_cosine); });
  print_row(runs, "Vendi (word n-grams)",
            [](const Run& r) { return fmt::format("{:.3f}", r.summary.ngram_vendi); });
  print_row(runs, "Vendi (hidden states)",
            [](const Run& r) { return fmt::format("{:.3f}", r.summary.hidden_vendi); });
  print_row(runs, "distiller loss (mean)", [](const Run& r) {
    return r.distiller_stats ? fmt::format("{:.4f}", r.distiller_stats->mean_loss) : "-";
  });
}

void write_summary(JsonWriter& json, const QualitySummary& s) {
  json.begin_object();
  json.key("prompts").value(s.prompts).key("samples").value(s.samples);
  json.key("sampled_tokens")
      .value(s.sampled_tokens)
      .key("tokens_per_second")
      .value(s.tokens_per_second);
  json.key("mean_perplexity").value(s.mean_perplexity);
  json.key("distinct_words").begin_array();
  for (const double d : s.distinct_words) json.value(d);
  json.end_array();
  json.key("ngram_cosine").value(s.ngram_cosine).key("hidden_cosine").value(s.hidden_cosine);
  json.key("ngram_vendi").value(s.ngram_vendi).key("hidden_vendi").value(s.hidden_vendi);
  json.end_object();
}

void print_json(const Options& options, const std::string& model_path, const llama::Model& model,
                const std::vector<Run>& runs) {
  JsonWriter json;
  json.begin_object();
  json.key("model").value(model_path);
  json.key("hidden_size").value(model.hparams.dim).key("layers").value(model.hparams.layer_count);
  json.key("settings").begin_object();
  json.key("samples").value(options.samples).key("tokens").value(options.new_tokens);
  json.key("temperature").value(static_cast<double>(options.filter.temperature));
  json.key("top_k").value(options.filter.top_k);
  json.key("top_p").value(static_cast<double>(options.filter.top_p));
  json.key("min_p").value(static_cast<double>(options.filter.min_p));
  json.key("beta").value(static_cast<double>(options.beta)).key("mix").value(name(options.mix));
  json.key("rank").value(options.rank > 0 ? options.rank : default_rank(model.hparams));
  json.key("lr").value(static_cast<double>(options.lr));
  json.key("optimizer").value(name(options.optimizer)).key("sharing").value(name(options.sharing));
  json.key("seed").value(fmt::format("{}", options.seed));  // a string: 64 bits exceed a double
  json.end_object();
  json.key("runs").begin_array();
  for (const Run& run : runs) {
    json.begin_object().key("method").value(run.method);
    json.key("prompts").begin_array();
    for (const GenerationResult& result : run.results) {
      json.begin_object().key("prompt").value(result.prompt_text);
      json.key("tokens_per_second").value(result.tokens_per_second());
      json.key("samples").begin_array();
      for (const Sample& sample : result.samples) {
        json.begin_object().key("text").value(sample.text).key("tokens").begin_array();
        for (const llama::TokenId token : sample.tokens) json.value(token);
        json.end_array().key("stopped").value(sample.stopped);
        json.key("perplexity")
            .value(sample.base_logprobs.empty() ? std::nan("") : perplexity(sample.base_logprobs));
        json.end_object();
      }
      json.end_array().end_object();
    }
    json.end_array().key("summary");
    write_summary(json, run.summary);
    if (run.distiller_stats) {
      const Stats& stats = *run.distiller_stats;
      json.key("distiller").begin_object();
      json.key("steps").value(stats.steps).key("rows_trained").value(stats.rows_trained);
      json.key("rows_mixed").value(stats.rows_mixed).key("mean_loss").value(stats.mean_loss);
      json.end_object();
    }
    json.end_object();
  }
  json.end_array().end_object();
  fmt::print("{}\n", json.text());
}

int run_program(int argc, const char* const* argv) {
  const Options options = parse_options(argc, argv);
  if (options.help) {
    fmt::print("{}", usage("esamp-generate"));
    return 0;
  }
  const std::string model_path = resolve_model_path(options);
  const llama::Model model = load_model(model_path, options.tokenizer_path);
  const llama::Tokenizer tokenizer(model.vocabulary);
  check_against_model(options, model, tokenizer);

  std::vector<const char*> methods;
  if (options.compare) methods.push_back("plain");
  methods.push_back("esamp");
  const std::int64_t budget = static_cast<std::int64_t>(methods.size() * options.prompts.size()) *
                              options.samples * options.new_tokens;
  ProgressBar progress(budget, !options.quiet && isatty(STDERR_FILENO));
  std::vector<Run> runs;
  for (const char* method : methods)
    runs.push_back(run_method(method, options, model, tokenizer, progress));
  progress.finish();

  if (options.json) {
    print_json(options, model_path, model, runs);
  } else if (options.quiet) {
    for (const Run& run : runs) print_texts(run);
  } else {
    for (const Run& run : runs) print_samples(run);
    print_summary_table(runs);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::generation

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-generate",
                                        [&] { return esamp::generation::run_program(argc, argv); });
}
