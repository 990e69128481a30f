// The quality summary of generated samples (DESIGN.md §5): coherence as perplexity under the base
// model, diversity of the samples of each prompt, and the generation's speed.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "generation.hpp"

namespace esamp::generation {

struct QualitySummary {
  std::int64_t prompts = 0;
  std::int64_t samples = 0;
  std::int64_t sampled_tokens = 0;
  double tokens_per_second = 0.0;  // all draws over the wall time of every generation
  // Mean over samples of exp(-mean base log-prob); samples with no token are left out.
  double mean_perplexity = 0.0;
  // Diversity within each prompt's samples, averaged over prompts. Words are whitespace-separated.
  std::array<double, 4> distinct_words{};  // distinct-1 .. distinct-4 over words
  double ngram_cosine = 0.0;               // mean pairwise cosine of word 1-2-gram TF vectors
  double hidden_cosine = 0.0;  // mean pairwise cosine of mean-pooled final hidden states
  double ngram_vendi = 0.0;    // Vendi score with the n-gram kernel
  double hidden_vendi = 0.0;   // Vendi score with the hidden-state kernel
};

// Needs results generated with score_with_base_model. Pairwise cosines need two samples per prompt
// (NaN otherwise); perplexity needs one non-empty sample (NaN otherwise).
QualitySummary summarize(const std::vector<GenerationResult>& results);

}  // namespace esamp::generation
