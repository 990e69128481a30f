// Runs one grid configuration over every (seed, prompt): generation, base-model scoring, the
// per-prompt metrics of DESIGN.md §5 and their intervals, and, for esamp, what the distiller did.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/backend.hpp"
#include "generate/generation.hpp"
#include "generate/quality.hpp"
#include "generate/sample_engine.hpp"
#include "grid.hpp"
#include "interval.hpp"

namespace esamp::eval {

struct MetricInfo {
  std::string_view key;    // CSV / JSON column stem
  std::string_view title;  // Markdown heading
};
inline constexpr std::size_t kMetricCount = 15;
inline constexpr std::array<MetricInfo, kMetricCount> kMetrics = {{
    {"perplexity", "perplexity"},  // of the unit's pooled tokens (DESIGN.md §5)
    {"median_perplexity", "median perplexity"},
    {"distinct_1", "distinct-1"},
    {"distinct_2", "distinct-2"},
    {"distinct_3", "distinct-3"},
    {"distinct_4", "distinct-4"},
    {"ngram_cosine", "cosine (n-gram)"},
    {"hidden_cosine", "cosine (hidden)"},
    {"ngram_vendi", "Vendi (n-gram)"},
    {"hidden_vendi", "Vendi (hidden)"},
    {"semantic_cosine", "cosine (semantic)"},
    {"semantic_vendi", "Vendi (semantic)"},
    {"seq_rep_4", "seq-rep-4"},
    {"loop_share", "ending in a loop"},
    {"relevance", "relevance"},
}};
// The index of a metric in kMetrics by key (compile-time: a wrong key does not build).
constexpr std::size_t metric_index(std::string_view key) {
  for (std::size_t i = 0; i < kMetricCount; ++i)
    if (kMetrics[i].key == key) return i;
  return kMetricCount;
}
using MetricValues = std::array<double, kMetricCount>;

// One prompt's metrics (a GenerationResult scored with the base model): generation::summarize's
// fields; the semantic ones and relevance are NaN without an encoder.
MetricValues prompt_metrics(const generation::GenerationResult& result,
                            const embed::SentenceEncoder* encoder);

// What the distiller did over a whole configuration (esamp only).
struct Diagnostics {
  Stats stats;  // from the sampler; stats.mean_loss is the mean per-step training loss
  // Mean over dimensions of the training target's variance over all rows: the loss a constant
  // prediction would reach, so mean_loss / target_variance is the part left unexplained.
  double target_variance = 0.0;
  // Latent mode, over mixed rows: ||ŷ − h||² / ||h||² and cos(ŷ, h), ŷ the prediction mixed into
  // the final-normed state h. Both NaN in candidates mode (h is not seen).
  double prediction_residual = 0.0;
  double prediction_cosine = 0.0;
  // The same for the target tap itself (what a perfect distiller would predict; exact with
  // target=final, which is h); NaN in candidates mode.
  double target_residual = 0.0;
  double target_cosine = 0.0;
};

struct EvalSettings {
  int samples = 16;
  int max_new_tokens = 128;
  std::vector<std::uint64_t> seeds{0};
};

struct ConfigResult {
  EvalConfig config;
  std::vector<MetricValues> units;  // [seeds x prompts], seed-major: the interval's samples
  std::array<Interval, kMetricCount> metrics{};
  std::int64_t sampled_tokens = 0;
  double seconds = 0.0;  // wall time of generation, scoring and metrics
  // Of `seconds`, the per-prompt metrics: nearly all of it the sentence encoder (0 without one).
  double metric_seconds = 0.0;
  std::int64_t samples = 0;  // samples generated (prompts x seeds x samples per prompt)
  std::optional<Diagnostics> diagnostics;
};

// Called after each prompt with its generation (e.g. to write the texts out).
using ResultCallback = std::function<void(std::uint64_t seed, std::size_t prompt,
                                          const generation::GenerationResult& result)>;

// Evaluates `config` on every prompt for every seed on `engine`. Seed s draws with seed s, its
// distiller is initialised from s, and prompt p's samples are sequences p*samples ...; so a
// configuration's numbers depend only on the seeds, never on the rest of the grid.
// `encoder` (may be null) embeds each prompt's samples for the semantic metrics and relevance.
ConfigResult evaluate(generation::SampleEngine& engine, const std::vector<std::string>& prompts,
                      const EvalSettings& settings, const EvalConfig& config,
                      const embed::SentenceEncoder* encoder,
                      const std::function<void(int)>& on_tokens = {},
                      const ResultCallback& on_result = {});

}  // namespace esamp::eval
