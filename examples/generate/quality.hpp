// The quality summary of generated samples (DESIGN.md §5): coherence as perplexity under the base
// model, diversity of the samples of each prompt, and the generation's speed.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "embed/sentence_encoder.hpp"
#include "generation.hpp"

namespace esamp::generation {

struct QualitySummary {
  std::int64_t prompts = 0;
  std::int64_t samples = 0;
  std::int64_t sampled_tokens = 0;
  double tokens_per_second = 0.0;  // all draws over the wall time of every generation
  // Every metric below is one prompt's (its samples: the unit of DESIGN.md §5), averaged over the
  // prompts where it is defined (NaN where it is nowhere).
  // Coherence: the perplexity under the base model of the prompt's pooled tokens, and the median
  // of its samples' own perplexities (a sample with no token has none).
  double perplexity = 0.0;
  double median_perplexity = 0.0;
  // Diversity within each prompt's samples. Words are whitespace-separated.
  std::array<double, 4> distinct_words{};  // distinct-1 .. distinct-4 over words
  double ngram_cosine = 0.0;               // mean pairwise cosine of word 1-2-gram TF vectors
  double hidden_cosine = 0.0;  // mean pairwise cosine of mean-pooled final hidden states
  double ngram_vendi = 0.0;    // Vendi score with the n-gram kernel
  double hidden_vendi = 0.0;   // Vendi score with the hidden-state kernel
  // The same with the sentence encoder's embeddings of the samples (the prompt not included, so
  // a shared prefix does not inflate similarity): what the samples mean. NaN without an encoder.
  double semantic_cosine = 0.0;
  double semantic_vendi = 0.0;
  // The guardrails: seq-rep-4 (the share of a sample's word 4-grams that repeat an earlier one of
  // the same sample, pooled over the prompt's samples), the share of samples that end in a loop
  // (esamp::ends_in_loop) and prompt relevance (mean sentence-encoder cosine between the prompt
  // and each non-empty continuation; NaN without an encoder).
  double seq_rep_4 = 0.0;
  double loop_share = 0.0;
  double relevance = 0.0;
};

// Per prompt, from the sentence encoder: semantic diversity (mean pairwise cosine, Vendi) of the
// samples' texts, each without the prompt, and their relevance to the prompt.
struct SemanticMetrics {
  double cosine = 0.0;  // NaN with fewer than two samples
  double vendi = 0.0;
  double relevance = 0.0;  // NaN when every continuation is empty
};
SemanticMetrics semantic_metrics(const embed::SentenceEncoder& encoder,
                                 const GenerationResult& result);

// Needs results generated with score_with_base_model. Pairwise cosines need two samples per prompt
// (NaN otherwise); perplexity needs one non-empty sample (NaN otherwise). Without an encoder the
// semantic fields and relevance are NaN.
QualitySummary summarize(const std::vector<GenerationResult>& results,
                         const embed::SentenceEncoder* encoder = nullptr);

// The sentence encoder of embed::find_embedder_dir(), loaded, or nullptr when it is not there; then
// `program` says so once on stderr (unless `quiet`). A folder that is there but unreadable is an
// Error.
std::unique_ptr<embed::SentenceEncoder> load_encoder_if_present(const char* program, bool quiet);

}  // namespace esamp::generation
