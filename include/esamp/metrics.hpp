// Evaluation metrics of DESIGN.md §5: perplexity (coherence) and the diversity of the n samples of
// one prompt (distinct-n, mean pairwise cosine similarity, Vendi score, the n-gram kernel).
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "esamp/error.hpp"
#include "esamp/span.hpp"

namespace esamp {

// exp(-mean log p) over one sample's tokens, natural log. Logprobs must be finite (a -inf would
// mean an impossible token, an infinite perplexity that would poison every mean it enters).
inline double perplexity(Span<const float> token_logprobs) {
  if (token_logprobs.empty())
    fail("perplexity: token_logprobs is empty, expected at least one token");
  double sum = 0.0;
  for (std::size_t i = 0; i < token_logprobs.size(); ++i) {
    if (!std::isfinite(token_logprobs[i]))
      fail("perplexity: token_logprobs[{}] = {}: must be finite", i, token_logprobs[i]);
    sum += token_logprobs[i];
  }
  return std::exp(-sum / static_cast<double>(token_logprobs.size()));
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

// distinct_n over words: each distinct word gets an id, then the token-id version counts.
inline double distinct_n_words(const std::vector<std::string>& texts, int n) {
  std::unordered_map<std::string, int> ids;
  std::vector<std::vector<int>> samples;
  samples.reserve(texts.size());
  for (const std::string& text : texts) {
    std::vector<int>& sample = samples.emplace_back();
    for (std::string& word : split_words(text))
      sample.push_back(
          ids.try_emplace(std::move(word), static_cast<int>(ids.size())).first->second);
  }
  return distinct_n(samples, n);
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
