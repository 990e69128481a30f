// esamp-generate: samples prompts with Exploratory Sampling on the llama example engine and prints
// the samples with a summary of speed, coherence and diversity (optionally beside plain sampling).
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
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
#include "models/model_dir.hpp"
#include "options.hpp"
#include "progress.hpp"
#include "quality.hpp"

namespace esamp::generation {
namespace {

// One method's results over every prompt.
struct Run {
  std::string method;  // "plain" or "esamp"
  Filter filter;       // the draw's (plain: its temperature calibrated by --compare)
  std::vector<GenerationResult> results;
  QualitySummary summary;
  std::optional<Stats> distiller_stats;  // esamp only
};

// How --compare chose the plain temperature.
struct Calibration {
  int runs = 0;          // plain runs tried, the kept one included
  bool matched = false;  // perplexities within kMatchTolerance
  double esamp_perplexity = 0.0;
};

// --compare matches perplexities to 3%: closer than the spread between prompts, and reached in a
// few runs of this size.
constexpr double kMatchTolerance = 0.03;
constexpr int kMaxCalibrationRuns = 8;

std::string resolve_model_path(const Options& options) {
  return options.model_path.empty() ? models::model_file("stories260K.gguf") : options.model_path;
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

Run run_method(const char* method, const Filter& filter, const Options& options,
               const llama::Model& model, const llama::Tokenizer& tokenizer,
               const embed::SentenceEncoder* encoder, ProgressBar* progress) {
  Run run{method, filter, {}, {}, {}};
  std::unique_ptr<ExploratorySampler> sampler;
  if (run.method == "esamp") {
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
  settings.filter = filter;
  settings.seed = options.seed;
  if (progress != nullptr)
    settings.on_tokens = [progress](int tokens) { progress->advance(tokens); };
  for (std::size_t p = 0; p < options.prompts.size(); ++p) {
    settings.first_sequence = p * static_cast<std::uint64_t>(options.samples);
    run.results.push_back(generate(engine, tokenizer, sampler.get(), options.prompts[p], settings));
  }
  run.summary = summarize(run.results, encoder);
  if (sampler) run.distiller_stats = sampler->stats();
  return run;
}

// Plain sampling at the temperature whose perplexity matches esamp's: the same prompts, seed and
// filter, the temperature found by bisection in log T (perplexity grows with T) from the given one.
// Only the kept run is embedded. A greedy draw (T = 0) is not calibrated.
Run calibrated_plain_run(const Options& options, const llama::Model& model,
                         const llama::Tokenizer& tokenizer, const embed::SentenceEncoder* encoder,
                         double target, Calibration& calibration) {
  calibration = Calibration{};
  calibration.esamp_perplexity = target;
  Filter filter = options.filter;
  const auto off_by = [target](const Run& run) {
    return std::abs(run.summary.mean_perplexity / target - 1.0);
  };
  const auto try_temperature = [&](float temperature) {
    filter.temperature = temperature;
    ++calibration.runs;
    return run_method("plain", filter, options, model, tokenizer, nullptr, nullptr);
  };
  Run best = try_temperature(options.filter.temperature);
  if (options.filter.temperature > 0.0f && std::isfinite(target)) {
    double lo = 0.0, hi = 0.0;  // log-temperatures below and above the target, once seen
    bool have_lo = false, have_hi = false;
    double t = std::log(static_cast<double>(options.filter.temperature));
    Run current = best;
    while (off_by(best) > kMatchTolerance && calibration.runs < kMaxCalibrationRuns) {
      if (current.summary.mean_perplexity > target) {
        hi = t;
        have_hi = true;
      } else {
        lo = t;
        have_lo = true;
      }
      // Until both sides are seen, step by a factor of 1.5 in T; then halve the bracket.
      t = have_lo && have_hi ? 0.5 * (lo + hi) : have_hi ? t - std::log(1.5) : t + std::log(1.5);
      current = try_temperature(static_cast<float>(std::exp(t)));
      if (off_by(current) < off_by(best)) best = current;
    }
  }
  calibration.matched = off_by(best) <= kMatchTolerance;
  if (encoder != nullptr) best.summary = summarize(best.results, encoder);
  return best;
}

void print_texts(const Run& run) {
  for (const GenerationResult& result : run.results)
    for (const Sample& sample : result.samples)
      fmt::print("{}{}\n", result.prompt_text, sample.text);
}

void print_samples(const Run& run) {
  fmt::print("=== {} (temperature {}) ===\n", run.method, run.filter.temperature);
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
  fmt::print("{:<36}", label);
  for (const Run& run : runs) fmt::print("{:>12}", cell(run));
  fmt::print("\n");
}

void print_summary_table(const std::vector<Run>& runs, bool semantic) {
  fmt::print("\n");
  print_row(runs, "summary", [](const Run& r) { return r.method; });
  print_row(runs, "temperature",
            [](const Run& r) { return fmt::format("{:.3g}", r.filter.temperature); });
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
  if (semantic) {
    print_row(runs, "pairwise cosine (semantic, MiniLM)",
              [](const Run& r) { return fmt::format("{:.4f}", r.summary.semantic_cosine); });
    print_row(runs, "Vendi (semantic, MiniLM)",
              [](const Run& r) { return fmt::format("{:.3f}", r.summary.semantic_vendi); });
  }
  print_row(runs, "distiller loss (mean)", [](const Run& r) {
    return r.distiller_stats ? fmt::format("{:.4f}", r.distiller_stats->mean_loss) : "-";
  });
}

void print_calibration(const Run& plain, const Calibration& c) {
  if (plain.filter.temperature == 0.0f) {
    fmt::print(
        "\nplain sampling is greedy (temperature 0): no temperature to match esamp's "
        "perplexity with\n");
    return;
  }
  fmt::print(
      "\nplain sampling at temperature {:.3g}, chosen in {} run{} so that its perplexity ({:.3f}) "
      "{} esamp's ({:.3f}){}\n",
      plain.filter.temperature, c.runs, c.runs == 1 ? "" : "s", plain.summary.mean_perplexity,
      c.matched ? fmt::format("is within {:.0f}% of", 100 * kMatchTolerance) : "is the closest to",
      c.esamp_perplexity,
      c.matched ? ": compare the diversity rows at this matched coherence"
                : fmt::format(" found in {} runs, not within {:.0f}%", kMaxCalibrationRuns,
                              100 * kMatchTolerance));
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
  json.key("semantic_cosine").value(s.semantic_cosine);
  json.key("semantic_vendi").value(s.semantic_vendi);
  json.end_object();
}

void print_json(const Options& options, const std::string& model_path, const llama::Model& model,
                const std::vector<Run>& runs, const std::optional<Calibration>& calibration) {
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
  if (calibration) {
    json.key("calibration").begin_object();
    json.key("runs").value(calibration->runs).key("matched").value(calibration->matched);
    json.key("tolerance").value(kMatchTolerance);
    json.key("esamp_perplexity").value(calibration->esamp_perplexity);
    json.end_object();
  }
  json.key("runs").begin_array();
  for (const Run& run : runs) {
    json.begin_object().key("method").value(run.method);
    json.key("temperature").value(static_cast<double>(run.filter.temperature));
    json.key("prompts").begin_array();
    for (const GenerationResult& result : run.results) {
      json.begin_object().key("prompt").value(result.prompt_text);
      json.key("tokens_per_second").value(result.tokens_per_second());
      json.key("samples").begin_array();
      for (const Sample& sample : result.samples) {
        json.begin_object().key("text").value(sample.text).key("tokens").begin_array();
        for (const llama::TokenId token : sample.tokens) json.value(token);
        json.end_array().key("stopped").value(sample.stopped);
        json.key("perplexity").value(perplexity(sample.base_logprobs));
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

  const std::unique_ptr<embed::SentenceEncoder> encoder =
      load_encoder_if_present("esamp-generate", options.quiet || options.json);
  const std::int64_t budget =
      static_cast<std::int64_t>(options.prompts.size()) * options.samples * options.new_tokens;
  ProgressBar progress(budget, !options.quiet && isatty(STDERR_FILENO));
  std::vector<Run> runs;
  runs.push_back(
      run_method("esamp", options.filter, options, model, tokenizer, encoder.get(), &progress));
  progress.finish();
  std::optional<Calibration> calibration;
  if (options.compare) {
    calibration.emplace();
    // Plain first in the output, as the baseline.
    runs.insert(runs.begin(),
                calibrated_plain_run(options, model, tokenizer, encoder.get(),
                                     runs.front().summary.mean_perplexity, *calibration));
  }

  if (options.json) {
    print_json(options, model_path, model, runs, calibration);
  } else if (options.quiet) {
    for (const Run& run : runs) print_texts(run);
  } else {
    for (const Run& run : runs) print_samples(run);
    print_summary_table(runs, encoder != nullptr);
    if (calibration) print_calibration(runs.front(), *calibration);
  }
  return 0;
}

}  // namespace
}  // namespace esamp::generation

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-generate",
                                        [&] { return esamp::generation::run_program(argc, argv); });
}
