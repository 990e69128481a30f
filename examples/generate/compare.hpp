// The run behind esamp-generate and esamp-llama, on either engine: every prompt's samples with
// esamp and, with --compare, plain sampling at the temperature whose perplexity matches esamp's;
// the samples, the summary table (speed, coherence, diversity, the guardrails) and its JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "embed/sentence_encoder.hpp"
#include "esamp/config.hpp"
#include "esamp/sampling.hpp"
#include "json_writer.hpp"
#include "option_values.hpp"
#include "quality.hpp"
#include "sample_engine.hpp"

namespace esamp::generation {

struct RunSpec {
  std::vector<std::string> prompts;
  int samples = 8;
  int new_tokens = 128;
  std::uint64_t seed = 0;  // the draws' and the distiller's init
  Filter filter;
  DistillerConfig distiller;      // hidden size from the engine; rank 0: default_rank
  ExplorationConfig exploration;  // max_rows is set to `samples`
};

// The RunSpec of the options esamp-generate and esamp-llama share (sampling_options, --seed,
// --rank); a --rank above the model's hidden size is a UsageError.
template <class Options>
RunSpec run_spec(const Options& options, const SampleEngine& engine) {
  if (options.rank > engine.hidden_size())
    throw UsageError(fmt::format("--rank {}: must be in [1, {}], the model's hidden size",
                                 options.rank, engine.hidden_size()));
  RunSpec spec;
  spec.prompts = options.prompts;
  spec.samples = options.samples;
  spec.new_tokens = options.new_tokens;
  spec.seed = options.seed;
  spec.filter = options.filter;
  spec.distiller.rank = options.rank;
  spec.exploration.beta = options.beta;
  return spec;
}

// One method's results over every prompt.
struct MethodRun {
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
inline constexpr double kMatchTolerance = 0.03;
inline constexpr int kMaxCalibrationRuns = 8;

struct Comparison {
  std::vector<MethodRun> runs;  // plain (with --compare) first, then esamp
  std::optional<Calibration> calibration;
};

// esamp over spec.prompts, then with `compare` plain sampling calibrated to esamp's perplexity.
// `encoder` (may be null) gives the semantic metrics and relevance; `progress` shows a bar on
// stderr for the esamp run.
Comparison run_comparison(SampleEngine& engine, const RunSpec& spec, bool compare,
                          const embed::SentenceEncoder* encoder, bool progress);

// Every sample with its prompt, under a header per method and sample.
void print_samples(const MethodRun& run);
// Every sample's prompt + text, one per line (--quiet).
void print_texts(const MethodRun& run);
// The summary table, one column per run, and how the plain temperature was chosen.
void print_summary(const Comparison& comparison, bool semantic);
// "calibration" (with --compare) and "runs": each run's prompts, samples and summary.
void write_json(JsonWriter& json, const Comparison& comparison);

}  // namespace esamp::generation
