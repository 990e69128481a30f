// Tests of esamp/metrics.hpp against answers computed by hand.
#include <catch2/catch.hpp>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "esamp/metrics.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

// Double arithmetic on tiny well-conditioned inputs: a few ulps, far below 1e-12.
constexpr double kTight = 1e-12;

Eigen::MatrixXd matrix(int rows, int cols, std::initializer_list<double> values) {
  Eigen::MatrixXd m(rows, cols);
  auto it = values.begin();
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) m(r, c) = *it++;
  }
  return m;
}

}  // namespace

TEST_CASE("perplexity is exp of the mean negative log-probability") {
  // p = 1/2, 1/4, 1/8: mean log p = -2 ln 2, perplexity 4. Float logprobs: relative error ~1e-7.
  const std::vector<float> logprobs = {std::log(0.5f), std::log(0.25f), std::log(0.125f)};
  CHECK_THAT(esamp::perplexity(logprobs), WithinRel(4.0, 1e-6));
  const std::vector<float> certain = {0.0f, 0.0f};
  CHECK(esamp::perplexity(certain) == 1.0);
  const std::vector<float> uniform_over_50 = {-std::log(50.0f)};
  CHECK_THAT(esamp::perplexity(uniform_over_50), WithinRel(50.0, 1e-6));
}

TEST_CASE("perplexity of a sample that ended at once is NaN, not an error") {
  // A sample whose first draw was end-of-text has no token: a valid sample with no perplexity.
  const std::vector<float> empty;
  CHECK(std::isnan(esamp::perplexity(empty)));
}

TEST_CASE("perplexity rejects non-finite input") {
  const std::vector<float> impossible = {-1.0f, -std::numeric_limits<float>::infinity()};
  CHECK_THROWS_WITH(esamp::perplexity(impossible),
                    "perplexity: token_logprobs[1] = -inf: must be finite");
  const std::vector<float> nan = {std::nanf("")};
  CHECK_THROWS_AS(esamp::perplexity(nan), esamp::Error);
}

TEST_CASE("pooled perplexity weighs every token alike and skips samples with no token") {
  // Samples of 1 token at p = 1/64 and 3 tokens at p = 1/2: pooled mean log p = (-6 ln2 - 3 ln2)/4,
  // perplexity 2^(9/4) ≈ 4.76; the mean of per-sample perplexities, (64 + 2) / 2 = 33, is ruled
  // by the short outlier.
  const std::vector<float> outlier = {std::log(1.0f / 64.0f)};
  const std::vector<float> plain = {std::log(0.5f), std::log(0.5f), std::log(0.5f)};
  const std::vector<float> empty;
  CHECK_THAT(esamp::pooled_perplexity({outlier, plain, empty}),
             WithinRel(std::pow(2.0, 9.0 / 4.0), 1e-6));
  CHECK(std::isnan(esamp::pooled_perplexity({empty, empty})));
  CHECK(std::isnan(esamp::pooled_perplexity({})));
  const std::vector<float> impossible = {-std::numeric_limits<float>::infinity()};
  CHECK_THROWS_WITH(esamp::pooled_perplexity({plain, impossible}),
                    "pooled_perplexity: token_logprobs[0] = -inf: must be finite");
}

TEST_CASE("median leaves out NaN and averages the middle two of an even count") {
  const double nan = std::nan("");
  CHECK(esamp::median({3.0, nan, 1.0, 2.0}) == 2.0);
  CHECK(esamp::median({4.0, 1.0, 3.0, 2.0}) == 2.5);
  CHECK(esamp::median({7.0}) == 7.0);
  CHECK(std::isnan(esamp::median({nan})));
  CHECK(std::isnan(esamp::median({})));
}

TEST_CASE("seq-rep-n counts the n-grams that repeat an earlier one of the same sample") {
  // "a b c a b c a": 4-grams abca bcab cabc abca → 1 repeat of 4. Bigrams ab bc ca ab bc ca →
  // 3 repeats of 6.
  const std::vector<std::string> looping = {"a b c a b c a"};
  CHECK_THAT(esamp::seq_rep_n_words(looping, 4), WithinRel(1.0 / 4.0, kTight));
  CHECK_THAT(esamp::seq_rep_n_words(looping, 2), WithinRel(3.0 / 6.0, kTight));
  // Repeats across samples do not count; pooled over samples: "x x x" has bigrams xx xx (1
  // repeat), each "a b c" ab bc (none, though the second repeats the first), "q" none: 1 of 6.
  const std::vector<std::string> two = {"a b c", "x x x", "a b c", "q"};
  CHECK_THAT(esamp::seq_rep_n_words(two, 2), WithinRel(1.0 / 6.0, kTight));
  CHECK(esamp::seq_rep_n_words({"a b c", ""}, 4) == 0.0);
  CHECK(esamp::seq_rep_n_words({"never the same twice here"}, 1) == 0.0);
  CHECK_THROWS_WITH(esamp::seq_rep_n({{1}}, 0), "seq_rep_n: n = 0: must be >= 1");
}

TEST_CASE("a sample ends in a loop when its last words repeat one unit three times, 12 words on") {
  const auto loops = [](const std::string& text) {
    return esamp::ends_in_loop(esamp::word_ids({text}).front());
  };
  // Period 3, written 4 times (12 words) after a free start.
  CHECK(loops("once upon a time the cat sat . the cat sat . the cat sat . the cat sat ."));
  // Period 6 three times: 18 words.
  CHECK(loops("x and then he said no . and then he said no . and then he said no ."));
  // One word twelve times, and eleven times.
  CHECK(loops("so no no no no no no no no no no no no"));
  CHECK_FALSE(loops("so no no no no no no no no no no no"));
  // The unit repeated twice only, and a loop that the sample left before its end.
  CHECK_FALSE(loops("the cat sat on the mat . the cat sat on the mat ."));
  CHECK_FALSE(loops("a b a b a b a b a b a b a b then it stopped"));
  CHECK_FALSE(loops(""));
  // The share over samples.
  CHECK_THAT(esamp::loop_end_share({"no no no no no no no no no no no no", "a b", ""}),
             WithinRel(1.0 / 3.0, kTight));
  CHECK(std::isnan(esamp::loop_end_share({})));
}

TEST_CASE("mean cosine to a reference: prompt relevance") {
  // Rows (1,0), (1,1), (0,0) against (2,0): cosines 1, 1/√2, 0.
  const Eigen::VectorXd reference = Eigen::Vector2d(2, 0);
  CHECK_THAT(esamp::mean_cosine_to(reference, matrix(3, 2, {1, 0, 1, 1, 0, 0})),
             WithinRel((1.0 + 1.0 / std::sqrt(2.0)) / 3.0, kTight));
  CHECK(std::isnan(esamp::mean_cosine_to(reference, Eigen::MatrixXd(0, 2))));
  CHECK_THROWS_WITH(esamp::mean_cosine_to(reference, matrix(1, 3, {1, 0, 0})),
                    Contains("embeddings have 3 columns, the reference 2"));
}

TEST_CASE("distinct-n counts distinct n-grams over all samples of a prompt") {
  // "the cat sat on the mat": unigrams 6, distinct 5 (the x2); bigrams 5, all distinct.
  const std::vector<std::string> one = {"the cat sat on the mat"};
  CHECK_THAT(esamp::distinct_n_words(one, 1), WithinRel(5.0 / 6.0, kTight));
  CHECK_THAT(esamp::distinct_n_words(one, 2), WithinRel(1.0, kTight));
  // Adding "the  cat\tran\n": unigrams 9, distinct {the cat sat on mat ran} = 6; bigrams 7,
  // distinct 6
  // ("the cat" twice); trigrams 5, distinct 5.
  const std::vector<std::string> two = {"the cat sat on the mat", "the  cat\tran\n"};
  CHECK_THAT(esamp::distinct_n_words(two, 1), WithinRel(6.0 / 9.0, kTight));
  CHECK_THAT(esamp::distinct_n_words(two, 2), WithinRel(6.0 / 7.0, kTight));
  CHECK_THAT(esamp::distinct_n_words(two, 3), WithinRel(1.0, kTight));
  // Identical samples: every n-gram appears twice.
  const std::vector<std::vector<int>> twins = {{1, 2, 3, 4}, {1, 2, 3, 4}};
  CHECK_THAT(esamp::distinct_n(twins, 2), WithinRel(0.5, kTight));
  // n-grams never straddle samples: {1 2} and {3} have no bigram "2 3".
  const std::vector<std::vector<int>> split = {{1, 2}, {3}, {1, 2}};
  CHECK_THAT(esamp::distinct_n(split, 2), WithinRel(0.5, kTight));
  CHECK_THAT(esamp::distinct_n(split, 1), WithinRel(3.0 / 5.0, kTight));
}

TEST_CASE("distinct-n with no n-gram to count is 0 and n must be positive") {
  const std::vector<std::vector<int>> short_samples = {{1, 2}, {}};
  CHECK(esamp::distinct_n(short_samples, 3) == 0.0);
  CHECK(esamp::distinct_n_words({}, 1) == 0.0);
  CHECK_THROWS_WITH(esamp::distinct_n(short_samples, 0), "distinct_n: n = 0: must be >= 1");
}

TEST_CASE("split_words splits on any run of whitespace") {
  CHECK(esamp::split_words("  a\tbb \n c  ") == std::vector<std::string>{"a", "bb", "c"});
  CHECK(esamp::split_words(" \t\n").empty());
}

TEST_CASE("mean pairwise cosine of hand-made vectors") {
  // (1,0), (0,2), (3,3): cosines 0, 1/√2, 1/√2 → mean √2/3; scale does not matter.
  const Eigen::MatrixXd three = matrix(3, 2, {1, 0, 0, 2, 3, 3});
  CHECK_THAT(esamp::mean_pairwise_cosine(three), WithinRel(std::sqrt(2.0) / 3.0, kTight));
  const Eigen::MatrixXd opposite = matrix(2, 3, {1, 2, 3, -2, -4, -6});
  CHECK_THAT(esamp::mean_pairwise_cosine(opposite), WithinRel(-1.0, kTight));
  // A zero row is similar to nothing: (1,0), (0,0), (1,0) → (0 + 1 + 0) / 3.
  const Eigen::MatrixXd with_zero = matrix(3, 2, {1, 0, 0, 0, 1, 0});
  CHECK_THAT(esamp::mean_pairwise_cosine(with_zero), WithinRel(1.0 / 3.0, kTight));
  CHECK_THROWS_WITH(esamp::mean_pairwise_cosine(matrix(1, 2, {1, 0})),
                    "mean_pairwise_cosine: 1 samples, expected at least 2");
  CHECK_THROWS_WITH(esamp::mean_pairwise_cosine(matrix(2, 1, {1, std::nan("")})),
                    Contains("element (1, 0) = nan: must be finite"));
}

TEST_CASE("cosine similarity matrix has a unit diagonal even for zero rows") {
  const Eigen::MatrixXd similarity =
      esamp::cosine_similarity_matrix(matrix(3, 2, {3, 4, 0, 0, 4, 3}));
  const Eigen::MatrixXd expected = matrix(3, 3, {1, 0, 24.0 / 25.0, 0, 1, 0, 24.0 / 25.0, 0, 1});
  CHECK(similarity.isApprox(expected, kTight));
}

TEST_CASE("Vendi score is 1 for identical samples and n for orthogonal ones") {
  const int n = GENERATE(1, 2, 5, 16);
  CHECK_THAT(esamp::vendi_score(Eigen::MatrixXd::Ones(n, n)), WithinRel(1.0, 1e-9));
  CHECK_THAT(esamp::vendi_score(Eigen::MatrixXd::Identity(n, n)), WithinRel(double(n), 1e-9));
  // Through the kernel: n copies of one embedding, and n distinct axes.
  const Eigen::MatrixXd copies = Eigen::MatrixXd::Constant(n, 3, 0.5);
  CHECK_THAT(esamp::vendi_score(esamp::cosine_similarity_matrix(copies)), WithinRel(1.0, 1e-9));
  const Eigen::MatrixXd axes = 2.0 * Eigen::MatrixXd::Identity(n, n + 1);
  CHECK_THAT(esamp::vendi_score(esamp::cosine_similarity_matrix(axes)), WithinRel(double(n), 1e-9));
}

TEST_CASE("Vendi score of two clusters matches a hand computation") {
  // Two pairs of identical samples, similarity s across pairs: K/4 has eigenvalues (1+s)/2,
  // (1-s)/2, 0, 0 (eigenvectors (1,1,1,1) and (1,1,-1,-1)). s = 0: two effective samples.
  const double s = GENERATE(0.0, 0.5);
  const Eigen::MatrixXd k = matrix(4, 4, {1, 1, s, s, 1, 1, s, s, s, s, 1, 1, s, s, 1, 1});
  const double a = (1 + s) / 2;
  const double b = (1 - s) / 2;
  const double expected = s == 0.0 ? 2.0 : std::exp(-(a * std::log(a) + b * std::log(b)));
  INFO("s = " << s);
  CHECK_THAT(esamp::vendi_score(k), WithinRel(expected, 1e-9));
  // Clusters of 3 and 1, orthogonal: eigenvalues 3/4 and 1/4, the same as s = 0.5 above: ≈ 1.7548.
  const Eigen::MatrixXd uneven = matrix(4, 4, {1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1});
  CHECK_THAT(esamp::vendi_score(uneven),
             WithinRel(std::pow(4.0 / 3.0, 0.75) * std::pow(4.0, 0.25), 1e-9));
  CHECK_THAT(esamp::vendi_score(uneven), WithinAbs(1.7548, 1e-4));
}

TEST_CASE("Vendi score rejects a kernel that is not a finite symmetric unit-diagonal PSD matrix") {
  CHECK_THROWS_WITH(esamp::vendi_score(Eigen::MatrixXd::Ones(2, 3)),
                    "vendi_score: similarity is 2 x 3, expected a non-empty square matrix");
  CHECK_THROWS_WITH(esamp::vendi_score(Eigen::MatrixXd(0, 0)), Contains("is 0 x 0"));
  CHECK_THROWS_WITH(esamp::vendi_score(matrix(2, 2, {1, 0.5, 0.4, 1})),
                    Contains("must be symmetric"));
  CHECK_THROWS_WITH(esamp::vendi_score(matrix(2, 2, {2, 0, 0, 1})),
                    "vendi_score: similarity(0, 0) = 2: the diagonal must be 1");
  // Eigenvalues of [[1, 2], [2, 1]] are 3 and -1.
  CHECK_THROWS_WITH(esamp::vendi_score(matrix(2, 2, {1, 2, 2, 1})),
                    Contains("eigenvalue -1: must be positive semi-definite"));
  CHECK_THROWS_WITH(esamp::vendi_score(matrix(2, 2, {1, std::nan(""), std::nan(""), 1})),
                    Contains("must be finite"));
}

TEST_CASE("n-gram TF embeddings count word n-grams up to max_order and are L2-normalized") {
  // "a b a", unigrams only: counts a = 2, b = 1 → (2, 1)/√5.
  const Eigen::MatrixXd unigrams = esamp::ngram_tf_embeddings({"a b a"}, 1);
  REQUIRE(unigrams.rows() == 1);
  REQUIRE(unigrams.cols() == 2);
  CHECK_THAT(unigrams.row(0).maxCoeff(), WithinRel(2.0 / std::sqrt(5.0), kTight));
  CHECK_THAT(unigrams.row(0).minCoeff(), WithinRel(1.0 / std::sqrt(5.0), kTight));
  // "a b" and "b a": same words, so cosine 1 on unigrams; with bigrams the vectors are (1,1,1,0)
  // and (1,1,0,1): cosine 2/3.
  const std::vector<std::string> swapped = {"a b", "b  a"};
  CHECK_THAT(esamp::mean_pairwise_cosine(esamp::ngram_tf_embeddings(swapped, 1)),
             WithinRel(1.0, kTight));
  const Eigen::MatrixXd bigrams = esamp::ngram_tf_embeddings(swapped, 2);
  CHECK(bigrams.cols() == 4);
  CHECK_THAT(esamp::mean_pairwise_cosine(bigrams), WithinRel(2.0 / 3.0, kTight));
  CHECK_THAT(bigrams.row(0).norm(), WithinRel(1.0, kTight));
  // An empty text is a zero row, similar to nothing; its kernel is still valid for Vendi:
  // [[1,0],[0,1]].
  const Eigen::MatrixXd with_empty = esamp::ngram_tf_embeddings({"x y", " "}, 2);
  CHECK(with_empty.row(1).isZero());
  CHECK_THAT(esamp::vendi_score(esamp::cosine_similarity_matrix(with_empty)), WithinRel(2.0, 1e-9));
  CHECK_THROWS_WITH(esamp::ngram_tf_embeddings(swapped, 0),
                    "ngram_tf_embeddings: max_order = 0: must be >= 1");
}
