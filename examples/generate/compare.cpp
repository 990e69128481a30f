// run_comparison() and its printers: see compare.hpp.
#include "compare.hpp"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string_view>

#include "esamp/metrics.hpp"
#include "progress.hpp"

namespace esamp::generation {
namespace {

MethodRun run_method(SampleEngine& engine, const RunSpec& spec, bool esamp, const Filter& filter,
                     const embed::SentenceEncoder* encoder, ProgressBar* progress) {
  MethodRun run{esamp ? "esamp" : "plain", filter, {}, {}, {}};
  std::unique_ptr<ExploratorySampler> sampler;
  if (esamp) {
    DistillerConfig distiller = spec.distiller;
    distiller.seed = spec.seed;
    ExplorationConfig exploration = spec.exploration;
    exploration.max_rows = spec.samples;
    sampler = engine.make_sampler(distiller, exploration);
  }
  const std::unique_ptr<SampleSession> session = engine.open(
      sampler.get(), spec.samples, max_sequence_tokens(engine, spec.prompts, spec.new_tokens));
  GenerationSettings settings;
  settings.samples = spec.samples;
  settings.max_new_tokens = spec.new_tokens;
  settings.filter = filter;
  settings.seed = spec.seed;
  if (progress != nullptr)
    settings.on_tokens = [progress](int tokens) { progress->advance(tokens); };
  for (std::size_t p = 0; p < spec.prompts.size(); ++p) {
    settings.first_sequence = p * static_cast<std::uint64_t>(spec.samples);
    run.results.push_back(session->generate(spec.prompts[p], settings));
  }
  run.summary = summarize(run.results, encoder);
  if (sampler) run.distiller_stats = sampler->stats();
  return run;
}

// Plain sampling at the temperature whose perplexity matches esamp's: the same prompts, seed and
// filter, the temperature found by bisection in log T (perplexity grows with T) from the given one.
// Only the kept run is embedded. A greedy draw (T = 0) is not calibrated.
MethodRun calibrated_plain_run(SampleEngine& engine, const RunSpec& spec,
                               const embed::SentenceEncoder* encoder, double target,
                               Calibration& calibration) {
  calibration = Calibration{};
  calibration.esamp_perplexity = target;
  Filter filter = spec.filter;
  const auto off_by = [target](const MethodRun& run) {
    return std::abs(run.summary.perplexity / target - 1.0);
  };
  const auto try_temperature = [&](float temperature) {
    filter.temperature = temperature;
    ++calibration.runs;
    return run_method(engine, spec, false, filter, nullptr, nullptr);
  };
  MethodRun best = try_temperature(spec.filter.temperature);
  if (spec.filter.temperature > 0.0f && std::isfinite(target)) {
    double lo = 0.0, hi = 0.0;  // log-temperatures below and above the target, once seen
    bool have_lo = false, have_hi = false;
    double t = std::log(static_cast<double>(spec.filter.temperature));
    MethodRun current = best;
    while (off_by(best) > kMatchTolerance && calibration.runs < kMaxCalibrationRuns) {
      if (current.summary.perplexity > target) {
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

// One line of the summary table: `label`, then one cell per run.
void print_row(const std::vector<MethodRun>& runs, std::string_view label,
               const std::function<std::string(const MethodRun&)>& cell) {
  fmt::print("{:<40}", label);
  for (const MethodRun& run : runs) fmt::print("{:>12}", cell(run));
  fmt::print("\n");
}

// A table row of one summary field, printed with `digits` decimals.
void print_field(const std::vector<MethodRun>& runs, std::string_view label,
                 double QualitySummary::*field, int digits) {
  print_row(runs, label,
            [&](const MethodRun& r) { return fmt::format("{:.{}f}", r.summary.*field, digits); });
}

void print_calibration(const MethodRun& plain, const Calibration& c) {
  if (plain.filter.temperature == 0.0f) {
    fmt::print(
        "\nplain sampling is greedy (temperature 0): no temperature to match esamp's "
        "perplexity with\n");
    return;
  }
  fmt::print(
      "\nplain sampling at temperature {:.3g}, chosen in {} run{} so that its perplexity ({:.3f}) "
      "{} esamp's ({:.3f}){}\n",
      plain.filter.temperature, c.runs, c.runs == 1 ? "" : "s", plain.summary.perplexity,
      c.matched ? fmt::format("is within {:.0f}% of", 100 * kMatchTolerance) : "is the closest to",
      c.esamp_perplexity,
      c.matched ? ": compare the diversity rows at this matched coherence, with the guardrails "
                  "(repetition, loops, relevance) beside them"
                : fmt::format(" found in {} runs, not within {:.0f}%", kMaxCalibrationRuns,
                              100 * kMatchTolerance));
}

void write_summary(JsonWriter& json, const QualitySummary& s) {
  json.begin_object();
  json.key("prompts").value(s.prompts).key("samples").value(s.samples);
  json.key("sampled_tokens").value(s.sampled_tokens);
  json.key("tokens_per_second").value(s.tokens_per_second);
  json.key("perplexity").value(s.perplexity);
  json.key("median_perplexity").value(s.median_perplexity);
  json.key("distinct_words").begin_array();
  for (const double d : s.distinct_words) json.value(d);
  json.end_array();
  json.key("ngram_cosine").value(s.ngram_cosine).key("hidden_cosine").value(s.hidden_cosine);
  json.key("ngram_vendi").value(s.ngram_vendi).key("hidden_vendi").value(s.hidden_vendi);
  json.key("semantic_cosine").value(s.semantic_cosine);
  json.key("semantic_vendi").value(s.semantic_vendi);
  json.key("seq_rep_4").value(s.seq_rep_4).key("loop_share").value(s.loop_share);
  json.key("relevance").value(s.relevance);
  json.end_object();
}

}  // namespace

Comparison run_comparison(SampleEngine& engine, const RunSpec& spec, bool compare,
                          const embed::SentenceEncoder* encoder, bool progress) {
  Comparison comparison;
  ProgressBar bar(static_cast<std::int64_t>(spec.prompts.size()) * spec.samples * spec.new_tokens,
                  progress);
  comparison.runs.push_back(run_method(engine, spec, true, spec.filter, encoder, &bar));
  bar.finish();
  if (compare) {
    comparison.calibration.emplace();
    // Plain first in the output, as the baseline.
    comparison.runs.insert(
        comparison.runs.begin(),
        calibrated_plain_run(engine, spec, encoder, comparison.runs.front().summary.perplexity,
                             *comparison.calibration));
  }
  return comparison;
}

void print_samples(const MethodRun& run) {
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

void print_texts(const MethodRun& run) {
  for (const GenerationResult& result : run.results)
    for (const Sample& sample : result.samples)
      fmt::print("{}{}\n", result.prompt_text, sample.text);
}

void print_summary(const Comparison& comparison, bool semantic) {
  const std::vector<MethodRun>& runs = comparison.runs;
  fmt::print("\n");
  print_row(runs, "summary", [](const MethodRun& r) { return r.method; });
  print_row(runs, "temperature",
            [](const MethodRun& r) { return fmt::format("{:.3g}", r.filter.temperature); });
  print_row(runs, "samples x prompts", [](const MethodRun& r) {
    return fmt::format("{} x {}", r.summary.samples / r.summary.prompts, r.summary.prompts);
  });
  print_row(runs, "tokens sampled",
            [](const MethodRun& r) { return fmt::format("{}", r.summary.sampled_tokens); });
  print_field(runs, "tokens/s", &QualitySummary::tokens_per_second, 1);
  print_field(runs, "perplexity (base model, pooled tokens)", &QualitySummary::perplexity, 3);
  print_field(runs, "perplexity (median of samples)", &QualitySummary::median_perplexity, 3);
  for (std::size_t n = 0; n < 4; ++n)
    print_row(runs, fmt::format("distinct-{} (words)", n + 1), [n](const MethodRun& r) {
      return fmt::format("{:.4f}", r.summary.distinct_words[n]);
    });
  print_field(runs, "pairwise cosine (word n-grams)", &QualitySummary::ngram_cosine, 4);
  print_field(runs, "pairwise cosine (hidden states)", &QualitySummary::hidden_cosine, 4);
  print_field(runs, "Vendi (word n-grams)", &QualitySummary::ngram_vendi, 3);
  print_field(runs, "Vendi (hidden states)", &QualitySummary::hidden_vendi, 3);
  if (semantic) {
    print_field(runs, "pairwise cosine (semantic, MiniLM)", &QualitySummary::semantic_cosine, 4);
    print_field(runs, "Vendi (semantic, MiniLM)", &QualitySummary::semantic_vendi, 3);
  }
  print_field(runs, "repetition: seq-rep-4 (words)", &QualitySummary::seq_rep_4, 3);
  print_field(runs, "repetition: samples ending in a loop", &QualitySummary::loop_share, 3);
  if (semantic)
    print_field(runs, "prompt relevance (MiniLM cosine)", &QualitySummary::relevance, 3);
  print_row(runs, "distiller loss (mean)", [](const MethodRun& r) {
    return r.distiller_stats ? fmt::format("{:.4f}", r.distiller_stats->mean_loss) : "-";
  });
  if (comparison.calibration) print_calibration(runs.front(), *comparison.calibration);
}

void write_json(JsonWriter& json, const Comparison& comparison) {
  if (comparison.calibration) {
    const Calibration& c = *comparison.calibration;
    json.key("calibration").begin_object();
    json.key("runs").value(c.runs).key("matched").value(c.matched);
    json.key("tolerance").value(kMatchTolerance);
    json.key("esamp_perplexity").value(c.esamp_perplexity);
    json.end_object();
  }
  json.key("runs").begin_array();
  for (const MethodRun& run : comparison.runs) {
    json.begin_object().key("method").value(run.method);
    json.key("temperature").value(static_cast<double>(run.filter.temperature));
    json.key("prompts").begin_array();
    for (const GenerationResult& result : run.results) {
      json.begin_object().key("prompt").value(result.prompt_text);
      json.key("tokens_per_second").value(result.tokens_per_second());
      json.key("samples").begin_array();
      for (const Sample& sample : result.samples) {
        json.begin_object().key("text").value(sample.text).key("tokens").begin_array();
        for (const auto token : sample.tokens) json.value(token);
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
  json.end_array();
}

}  // namespace esamp::generation
