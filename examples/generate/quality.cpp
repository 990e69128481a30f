// summarize(): the metrics of esamp/metrics.hpp over GenerationResults, with the sentence
// encoder's semantic diversity when there is one.
#include "quality.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "esamp/error.hpp"
#include "esamp/metrics.hpp"

namespace esamp::generation {

SemanticMetrics semantic_metrics(const embed::SentenceEncoder& encoder,
                                 const GenerationResult& result) {
  if (result.samples.empty()) fail("semantic_metrics: the result has no sample");
  // Row 0 the prompt, then the samples; rows are L2-normalised: E·Eᵀ is the cosine matrix.
  std::vector<std::string> texts{result.prompt_text};
  for (const Sample& sample : result.samples) texts.push_back(sample.text);
  const Eigen::MatrixXd embeddings = encoder.encode(texts).cast<double>();
  const auto samples = static_cast<Eigen::Index>(result.samples.size());
  const Eigen::MatrixXd continuations = embeddings.bottomRows(samples);
  // An empty continuation says nothing about the prompt: it is left out of relevance.
  std::vector<Eigen::Index> spoken;
  for (Eigen::Index s = 0; s < samples; ++s)
    if (!split_words(result.samples[static_cast<std::size_t>(s)].text).empty()) spoken.push_back(s);
  Eigen::MatrixXd spoken_rows(static_cast<Eigen::Index>(spoken.size()), embeddings.cols());
  for (std::size_t i = 0; i < spoken.size(); ++i)
    spoken_rows.row(static_cast<Eigen::Index>(i)) = continuations.row(spoken[i]);
  return {
      samples >= 2 ? mean_pairwise_cosine(continuations) : std::numeric_limits<double>::quiet_NaN(),
      vendi_score(cosine_similarity_matrix(continuations)),
      mean_cosine_to(embeddings.row(0).transpose(), spoken_rows)};
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

namespace {

// One prompt's metrics, the summary's fields (counts and speed aside).
QualitySummary prompt_summary(const GenerationResult& result,
                              const embed::SentenceEncoder* encoder) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  QualitySummary unit;
  const auto n = static_cast<Eigen::Index>(result.samples.size());
  std::vector<std::string> texts;
  std::vector<Span<const float>> logprobs;
  std::vector<double> perplexities;
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
    logprobs.emplace_back(sample.base_logprobs);
    perplexities.push_back(perplexity(sample.base_logprobs));
  }
  unit.perplexity = pooled_perplexity(logprobs);
  unit.median_perplexity = median(perplexities);
  for (int order = 1; order <= 4; ++order)
    unit.distinct_words[static_cast<std::size_t>(order - 1)] = distinct_n_words(texts, order);
  const Eigen::MatrixXd ngrams = ngram_tf_embeddings(texts);
  unit.ngram_vendi = vendi_score(cosine_similarity_matrix(ngrams));
  unit.hidden_vendi = vendi_score(cosine_similarity_matrix(hidden));
  unit.ngram_cosine = n >= 2 ? mean_pairwise_cosine(ngrams) : kNaN;
  unit.hidden_cosine = n >= 2 ? mean_pairwise_cosine(hidden) : kNaN;
  unit.semantic_cosine = unit.semantic_vendi = unit.relevance = kNaN;
  if (encoder != nullptr) {
    const SemanticMetrics semantic = semantic_metrics(*encoder, result);
    unit.semantic_cosine = semantic.cosine;
    unit.semantic_vendi = semantic.vendi;
    unit.relevance = semantic.relevance;
  }
  unit.seq_rep_4 = seq_rep_n_words(texts, 4);
  unit.loop_share = loop_end_share(texts);
  return unit;
}

// Accumulates the mean of one metric over the prompts where it is finite.
struct FiniteMean {
  double sum = 0.0;
  int count = 0;
  void add(double value) {
    if (std::isfinite(value)) sum += value, ++count;
  }
  double get() const { return count > 0 ? sum / count : std::numeric_limits<double>::quiet_NaN(); }
};

}  // namespace

QualitySummary summarize(const std::vector<GenerationResult>& results,
                         const embed::SentenceEncoder* encoder) {
  if (results.empty()) fail("summarize: no results, expected at least one prompt's");
  // The per-prompt fields, in one list so that averaging them cannot miss one.
  const auto fields = [](QualitySummary& s) {
    return std::array<double*, 15>{&s.perplexity,        &s.median_perplexity, &s.distinct_words[0],
                                   &s.distinct_words[1], &s.distinct_words[2], &s.distinct_words[3],
                                   &s.ngram_cosine,      &s.hidden_cosine,     &s.ngram_vendi,
                                   &s.hidden_vendi,      &s.semantic_cosine,   &s.semantic_vendi,
                                   &s.seq_rep_4,         &s.loop_share,        &s.relevance};
  };
  QualitySummary summary;
  summary.prompts = static_cast<std::int64_t>(results.size());
  std::array<FiniteMean, 15> means;
  double seconds = 0.0;
  for (const GenerationResult& result : results) {
    seconds += result.seconds;
    summary.sampled_tokens += result.sampled_tokens;
    summary.samples += static_cast<std::int64_t>(result.samples.size());
    QualitySummary unit = prompt_summary(result, encoder);
    const auto values = fields(unit);
    for (std::size_t f = 0; f < values.size(); ++f) means[f].add(*values[f]);
  }
  const auto targets = fields(summary);
  for (std::size_t f = 0; f < targets.size(); ++f) *targets[f] = means[f].get();
  summary.tokens_per_second =
      seconds > 0.0 ? static_cast<double>(summary.sampled_tokens) / seconds : 0.0;
  return summary;
}

}  // namespace esamp::generation
