// summarize(): the metrics of esamp/metrics.hpp over GenerationResults, with the sentence
// encoder's semantic diversity when there is one.
#include "quality.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "esamp/error.hpp"
#include "esamp/metrics.hpp"

namespace esamp::generation {

SemanticDiversity semantic_diversity(const embed::SentenceEncoder& encoder,
                                     const GenerationResult& result) {
  std::vector<std::string> texts;
  for (const Sample& sample : result.samples) texts.push_back(sample.text);
  if (texts.empty()) fail("semantic_diversity: the result has no sample");
  // Rows are L2-normalised: E·Eᵀ is the cosine matrix.
  const Eigen::MatrixXd embeddings = encoder.encode(texts).cast<double>();
  return {texts.size() >= 2 ? mean_pairwise_cosine(embeddings)
                            : std::numeric_limits<double>::quiet_NaN(),
          vendi_score(cosine_similarity_matrix(embeddings))};
}

std::unique_ptr<embed::SentenceEncoder> load_encoder_if_present(const char* program, bool quiet) {
  const std::optional<std::string> dir = embed::find_embedder_dir();
  if (!dir) {
    if (!quiet)
      fmt::print(stderr,
                 "{}: no sentence encoder (run scripts/fetch-embedder, or set ESAMP_EMBEDDER_DIR): "
                 "semantic diversity is not reported\n",
                 program);
    return nullptr;
  }
  return std::make_unique<embed::SentenceEncoder>(embed::SentenceEncoder::load(*dir));
}

QualitySummary summarize(const std::vector<GenerationResult>& results,
                         const embed::SentenceEncoder* encoder) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (results.empty()) fail("summarize: no results, expected at least one prompt's");
  QualitySummary summary;
  summary.prompts = static_cast<std::int64_t>(results.size());
  double seconds = 0.0, perplexity_sum = 0.0;
  std::int64_t scored_samples = 0;
  bool every_prompt_has_pairs = true;
  for (const GenerationResult& result : results) {
    seconds += result.seconds;
    summary.sampled_tokens += result.sampled_tokens;
    const auto n = static_cast<Eigen::Index>(result.samples.size());
    summary.samples += n;
    std::vector<std::string> texts;
    Eigen::MatrixXd hidden(n, 0);
    for (Eigen::Index i = 0; i < n; ++i) {
      const Sample& sample = result.samples[static_cast<std::size_t>(i)];
      if (sample.mean_final_hidden.size() == 0)
        fail(
            "summarize: sample {} has no base-model scores (GenerationSettings."
            "score_with_base_model was off)",
            i);
      texts.push_back(sample.text);
      if (hidden.cols() == 0) hidden.resize(n, sample.mean_final_hidden.size());
      hidden.row(i) = sample.mean_final_hidden.transpose();
      if (!sample.base_logprobs.empty()) {
        perplexity_sum += perplexity(sample.base_logprobs);
        ++scored_samples;
      }
    }
    for (int order = 1; order <= 4; ++order)
      summary.distinct_words[static_cast<std::size_t>(order - 1)] += distinct_n_words(texts, order);
    const Eigen::MatrixXd ngrams = ngram_tf_embeddings(texts);
    if (encoder != nullptr) {
      const SemanticDiversity semantic = semantic_diversity(*encoder, result);
      summary.semantic_cosine += semantic.cosine;
      summary.semantic_vendi += semantic.vendi;
    }
    summary.ngram_vendi += vendi_score(cosine_similarity_matrix(ngrams));
    summary.hidden_vendi += vendi_score(cosine_similarity_matrix(hidden));
    if (n >= 2) {
      summary.ngram_cosine += mean_pairwise_cosine(ngrams);
      summary.hidden_cosine += mean_pairwise_cosine(hidden);
    } else {
      every_prompt_has_pairs = false;
    }
  }
  const auto prompts = static_cast<double>(summary.prompts);
  for (double& distinct : summary.distinct_words) distinct /= prompts;
  summary.ngram_vendi /= prompts;
  summary.semantic_vendi = encoder != nullptr ? summary.semantic_vendi / prompts : kNaN;
  summary.semantic_cosine =
      encoder != nullptr && every_prompt_has_pairs ? summary.semantic_cosine / prompts : kNaN;
  summary.hidden_vendi /= prompts;
  summary.ngram_cosine = every_prompt_has_pairs ? summary.ngram_cosine / prompts : kNaN;
  summary.hidden_cosine = every_prompt_has_pairs ? summary.hidden_cosine / prompts : kNaN;
  summary.mean_perplexity =
      scored_samples > 0 ? perplexity_sum / static_cast<double>(scored_samples) : kNaN;
  summary.tokens_per_second =
      seconds > 0.0 ? static_cast<double>(summary.sampled_tokens) / seconds : 0.0;
  return summary;
}

}  // namespace esamp::generation
