// Evaluation metrics of DESIGN.md §5: perplexity (coherence), the diversity of the n samples of one
// prompt (distinct-n, mean pairwise cosine similarity, Vendi score, the n-gram kernel) and the
// guardrails beside it (within-sample repetition, loops at a sample's end).
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "esamp/error.hpp"
#include "esamp/span.hpp"

namespace esamp {

namespace detail {
// Σ log p of one sample's tokens, each checked finite (a -inf would mean an impossible token, an
// infinite perplexity that would poison every mean it enters).
inline double logprob_sum(Span<const float> token_logprobs, const char* what) {
  double sum = 0.0;
  for (std::size_t i = 0; i < token_logprobs.size(); ++i) {
    if (!std::isfinite(token_logprobs[i]))
      fail("{}: token_logprobs[{}] = {}: must be finite", what, i, token_logprobs[i]);
    sum += token_logprobs[i];
  }
  return sum;
}
}  // namespace detail

// exp(-mean log p) over one sample's tokens, natural log. A sample that ended at once (no token)
// is a valid sample with no perplexity: NaN, which every mean and median here leaves out.
inline double perplexity(Span<const float> token_logprobs) {
  const double sum = detail::logprob_sum(token_logprobs, "perplexity");
  if (token_logprobs.empty()) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(-sum / static_cast<double>(token_logprobs.size()));
}

// The perplexity of a unit's pooled tokens, exp of their mean negative log-probability over every
// token of every sample (DESIGN.md §5): each token weighs the same, so a few short outliers do not
// rule it as they rule a mean of per-sample perplexities. NaN when no sample has a token.
inline double pooled_perplexity(const std::vector<Span<const float>>& samples) {
  double sum = 0.0;
  std::size_t tokens = 0;
  for (const Span<const float> sample : samples) {
    sum += detail::logprob_sum(sample, "pooled_perplexity");
    tokens += sample.size();
  }
  if (tokens == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(-sum / static_cast<double>(tokens));
}

// The median of the finite values (the mean of the middle two for an even count); NaN when none is.
inline double median(std::vector<double> values) {
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const std::size_t middle = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(middle),
                   values.end());
  const double upper = values[middle];
  if (values.size() % 2 == 1) return upper;
  return 0.5 * (upper + *std::max_element(values.begin(),
                                          values.begin() + static_cast<std::ptrdiff_t>(middle)));
}

// Distinct n-grams / total n-grams, pooled over the samples of one prompt (n-grams never straddle
// two samples). 0 when no sample is n tokens long: there is nothing to count.
inline double distinct_n(const std::vector<std::vector<int>>& samples, int n) {
  if (n < 1) fail("distinct_n: n = {}: must be >= 1", n);
  const auto length = static_cast<std::size_t>(n);
  std::vector<const int*> ngrams;  // each points at its first token inside a sample
  for (const std::vector<int>& sample : samples) {
    for (std::size_t start = 0; start + length <= sample.size(); ++start)
      ngrams.push_back(sample.data() + start);
  }
  if (ngrams.empty()) return 0.0;
  const auto less = [length](const int* a, const int* b) {
    return std::lexicographical_compare(a, a + length, b, b + length);
  };
  const auto equal = [length](const int* a, const int* b) { return std::equal(a, a + length, b); };
  std::sort(ngrams.begin(), ngrams.end(), less);
  const auto distinct = std::unique(ngrams.begin(), ngrams.end(), equal) - ngrams.begin();
  return static_cast<double>(distinct) / static_cast<double>(ngrams.size());
}

// The whitespace-separated words of `text` (any run of spaces, tabs or newlines separates).
inline std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

// Within-sample repetition seq-rep-n: of a sample's n-grams (token or word ids), how many repeat
// an n-gram that occurred earlier in the same sample. Pooled over samples like distinct_n: the
// repeats of every sample over the n-grams of every sample (n-grams never straddle samples), so a
// sample shorter than n adds nothing. 0 when no sample is n long: nothing repeats.
inline double seq_rep_n(const std::vector<std::vector<int>>& samples, int n) {
  if (n < 1) fail("seq_rep_n: n = {}: must be >= 1", n);
  const auto length = static_cast<std::size_t>(n);
  std::size_t ngrams = 0, repeats = 0;
  for (const std::vector<int>& sample : samples) {
    if (sample.size() < length) continue;
    std::vector<const int*> seen;  // this sample's n-grams, each by its first token
    for (std::size_t start = 0; start + length <= sample.size(); ++start)
      seen.push_back(sample.data() + start);
    const auto less = [length](const int* a, const int* b) {
      return std::lexicographical_compare(a, a + length, b, b + length);
    };
    const auto equal = [length](const int* a, const int* b) {
      return std::equal(a, a + length, b);
    };
    ngrams += seen.size();
    std::sort(seen.begin(), seen.end(), less);
    // Every occurrence but the first of each distinct n-gram is a repeat.
    repeats += seen.size() - static_cast<std::size_t>(std::unique(seen.begin(), seen.end(), equal) -
                                                      seen.begin());
  }
  return ngrams == 0 ? 0.0 : static_cast<double>(repeats) / static_cast<double>(ngrams);
}

// The shortest loop ends_in_loop counts: a unit of p words written at least three times, and at
// least this many words in all (so "no, no, no." is not a loop, twelve "no,"s are).
inline constexpr std::size_t kLoopMinWords = 12;

// Whether a sample is stuck in a loop at its end: for some period p >= 1, its last
// max(3p, kLoopMinWords) words repeat with period p (each equals the word p before it), i.e. the
// sample ends with at least three copies of one p-word unit covering at least kLoopMinWords words.
// Ids are word (or token) ids; a sample shorter than kLoopMinWords never is.
inline bool ends_in_loop(const std::vector<int>& words) {
  const std::size_t n = words.size();
  for (std::size_t period = 1; 3 * period <= n; ++period) {
    const std::size_t span = std::max(3 * period, kLoopMinWords);
    if (span > n) continue;
    bool periodic = true;
    for (std::size_t i = n - span + period; i < n && periodic; ++i)
      periodic = words[i] == words[i - period];
    if (periodic) return true;
  }
  return false;
}

// The word ids of each text (split_words; equal words, equal ids across texts).
inline std::vector<std::vector<int>> word_ids(const std::vector<std::string>& texts) {
  std::unordered_map<std::string, int> ids;
  std::vector<std::vector<int>> samples;
  samples.reserve(texts.size());
  for (const std::string& text : texts) {
    std::vector<int>& sample = samples.emplace_back();
    for (std::string& word : split_words(text))
      sample.push_back(
          ids.try_emplace(std::move(word), static_cast<int>(ids.size())).first->second);
  }
  return samples;
}

// distinct_n over whitespace-separated words.
inline double distinct_n_words(const std::vector<std::string>& texts, int n) {
  return distinct_n(word_ids(texts), n);
}

// seq_rep_n over whitespace-separated words: seq-rep-4 is seq_rep_n_words(texts, 4).
inline double seq_rep_n_words(const std::vector<std::string>& texts, int n) {
  return seq_rep_n(word_ids(texts), n);
}

// The share of texts that end in a loop of words (ends_in_loop); NaN for no text.
inline double loop_end_share(const std::vector<std::string>& texts) {
  if (texts.empty()) return std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::vector<int>> samples = word_ids(texts);
  const auto looping = std::count_if(samples.begin(), samples.end(), ends_in_loop);
  return static_cast<double>(looping) / static_cast<double>(texts.size());
}

namespace detail {
inline void check_finite(const Eigen::Ref<const Eigen::MatrixXd>& m, std::string_view what) {
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    for (Eigen::Index c = 0; c < m.cols(); ++c) {
      if (!std::isfinite(m(r, c)))
        fail("{}: element ({}, {}) = {}: must be finite", what, r, c, m(r, c));
    }
  }
}
}  // namespace detail

// K_ij = cos(e_i, e_j) for embeddings [samples, dims]. A zero row has similarity 0 to every other
// row and 1 to itself, so K stays PSD with a unit diagonal (what vendi_score expects).
inline Eigen::MatrixXd cosine_similarity_matrix(
    const Eigen::Ref<const Eigen::MatrixXd>& embeddings) {
  detail::check_finite(embeddings, "cosine_similarity_matrix: embeddings");
  Eigen::MatrixXd unit = embeddings;
  for (Eigen::Index r = 0; r < unit.rows(); ++r) {
    const double norm = unit.row(r).norm();
    if (norm > 0.0) unit.row(r) /= norm;
  }
  Eigen::MatrixXd similarity(unit.rows(), unit.rows());
  similarity.noalias() = unit * unit.transpose();
  similarity.diagonal().setOnes();  // exactly 1, also for zero rows and despite rounding
  return similarity;
}

// Mean of cos(e_i, e_j) over pairs i < j of embeddings [samples, dims]; needs at least two samples.
inline double mean_pairwise_cosine(const Eigen::Ref<const Eigen::MatrixXd>& embeddings) {
  const Eigen::Index n = embeddings.rows();
  if (n < 2) fail("mean_pairwise_cosine: {} samples, expected at least 2", n);
  const Eigen::MatrixXd similarity = cosine_similarity_matrix(embeddings);
  // The off-diagonal sum counts each pair twice; the diagonal is exactly n.
  const double pair_sum = (similarity.sum() - static_cast<double>(n)) / 2.0;
  return pair_sum / (static_cast<double>(n) * static_cast<double>(n - 1) / 2.0);
}

// Mean over the rows of embeddings [samples, dims] of cos(row, reference [dims]): prompt relevance
// is this with the prompt's sentence embedding as the reference and the continuations' as rows
// (DESIGN.md §5). A zero vector has cosine 0 to anything; NaN for no row.
inline double mean_cosine_to(const Eigen::Ref<const Eigen::VectorXd>& reference,
                             const Eigen::Ref<const Eigen::MatrixXd>& embeddings) {
  if (embeddings.cols() != reference.size())
    fail("mean_cosine_to: embeddings have {} columns, the reference {}: expected equal",
         embeddings.cols(), reference.size());
  detail::check_finite(reference, "mean_cosine_to: reference");
  detail::check_finite(embeddings, "mean_cosine_to: embeddings");
  if (embeddings.rows() == 0) return std::numeric_limits<double>::quiet_NaN();
  const double reference_norm = reference.norm();
  double sum = 0.0;
  for (Eigen::Index r = 0; r < embeddings.rows(); ++r) {
    const double norms = reference_norm * embeddings.row(r).norm();
    if (norms > 0.0) sum += embeddings.row(r).dot(reference) / norms;
  }
  return sum / static_cast<double>(embeddings.rows());
}

// Vendi score exp(-Σ λ log λ), λ = eigenvalues of K/n, for a similarity kernel K [n, n] that is
// symmetric, PSD and has a unit diagonal (DESIGN.md §5). It runs from 1 (all samples alike) to n
// (all orthogonal).
inline double vendi_score(const Eigen::Ref<const Eigen::MatrixXd>& similarity) {
  const Eigen::Index n = similarity.rows();
  if (n < 1 || similarity.cols() != n)
    fail("vendi_score: similarity is {} x {}, expected a non-empty square matrix", n,
         similarity.cols());
  detail::check_finite(similarity, "vendi_score: similarity");
  constexpr double kTolerance = 1e-9;  // rounding slack, far above double eps for |K_ij| <= 1
  for (Eigen::Index i = 0; i < n; ++i) {
    if (std::abs(similarity(i, i) - 1.0) > kTolerance)
      fail("vendi_score: similarity({}, {}) = {}: the diagonal must be 1", i, i, similarity(i, i));
    for (Eigen::Index j = 0; j < i; ++j) {
      if (std::abs(similarity(i, j) - similarity(j, i)) > kTolerance)
        fail("vendi_score: similarity({}, {}) = {} but similarity({}, {}) = {}: must be symmetric",
             i, j, similarity(i, j), j, i, similarity(j, i));
    }
  }
  const Eigen::MatrixXd normalized = similarity / static_cast<double>(n);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(normalized, Eigen::EigenvaluesOnly);
  if (solver.info() != Eigen::Success)
    fail("vendi_score: the eigensolver did not converge (n = {})", n);
  double entropy = 0.0;
  for (const double eigenvalue : solver.eigenvalues()) {
    if (eigenvalue < -kTolerance)
      fail("vendi_score: similarity has eigenvalue {:.6g}: must be positive semi-definite",
           eigenvalue * static_cast<double>(n));
    if (eigenvalue > 0.0)
      entropy -= eigenvalue * std::log(eigenvalue);  // tiny negatives count as 0
  }
  return std::exp(entropy);
}

// Word n-gram term-frequency vectors [texts, distinct n-grams of orders 1..max_order], each row
// L2-normalized (an empty text stays a zero row): the n-gram kernel's embeddings for
// cosine_similarity_matrix and mean_pairwise_cosine.
inline Eigen::MatrixXd ngram_tf_embeddings(const std::vector<std::string>& texts,
                                           int max_order = 2) {
  if (max_order < 1) fail("ngram_tf_embeddings: max_order = {}: must be >= 1", max_order);
  // An n-gram's words joined by a character that whitespace splitting never leaves inside a word.
  constexpr char kSeparator = ' ';
  std::unordered_map<std::string, Eigen::Index> columns;
  std::vector<std::vector<Eigen::Index>> occurrences(
      texts.size());  // column of each n-gram, per text
  for (std::size_t t = 0; t < texts.size(); ++t) {
    const std::vector<std::string> words = split_words(texts[t]);
    for (std::size_t start = 0; start < words.size(); ++start) {
      std::string ngram;
      for (std::size_t order = 1; order <= static_cast<std::size_t>(max_order); ++order) {
        if (start + order > words.size()) break;
        if (order > 1) ngram += kSeparator;
        ngram += words[start + order - 1];
        const auto column = static_cast<Eigen::Index>(columns.size());
        occurrences[t].push_back(columns.try_emplace(ngram, column).first->second);
      }
    }
  }
  Eigen::MatrixXd embeddings = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(texts.size()),
                                                     static_cast<Eigen::Index>(columns.size()));
  for (std::size_t t = 0; t < texts.size(); ++t) {
    const auto row = static_cast<Eigen::Index>(t);
    for (const Eigen::Index column : occurrences[t]) embeddings(row, column) += 1.0;
    const double norm = embeddings.row(row).norm();
    if (norm > 0.0) embeddings.row(row) /= norm;
  }
  return embeddings;
}

}  // namespace esamp
