// Tests of esamp/sampling.hpp: filter validation, candidate selection, Philox, keyed determinism
// and the sampled distribution (chi-square goodness of fit).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "esamp/sampling.hpp"

namespace {

using Catch::Matchers::Contains;
using esamp::Filter;
using esamp::SampleKey;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Index: 0    1    2     3    4     5    6    7     8    9
// Rank:  5th  1st  -inf  3rd  8th   2nd  6th  9th   4th  7th
const std::vector<float> kLogits = {0.5f, 2.0f, -kInf, 1.2f, -0.7f, 1.5f, 0.1f, -1.2f, 0.8f, -0.3f};
const std::vector<int> kOrder = {1, 5, 3, 8, 0,
                                 6, 9, 4, 7};  // every finite token, by descending logit

// softmax(logits / T) restricted to `kept`, computed here independently of the library.
std::vector<double> restricted_softmax(const std::vector<float>& logits, double temperature,
                                       const std::vector<int>& kept) {
  std::vector<double> probs(logits.size(), 0.0);
  double total = 0.0;
  for (const int token : kept) total += probs[token] = std::exp(logits[token] / temperature);
  for (double& p : probs) p /= total;
  return probs;
}

// Upper 1e-4 quantile of chi-square with `dof` degrees of freedom by Wilson–Hilferty:
// dof * (1 - 2/(9 dof) + z sqrt(2/(9 dof)))^3, z = the standard normal upper 1e-4 quantile.
double chi_square_critical_1e4(int dof) {
  constexpr double kZ = 3.719016485455680;
  const double a = 2.0 / (9.0 * dof);
  return dof * std::pow(1.0 - a + kZ * std::sqrt(a), 3.0);
}

double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int draws) {
  double statistic = 0.0;
  for (std::size_t v = 0; v < counts.size(); ++v) {
    if (probs[v] == 0.0) continue;
    const double expected = probs[v] * draws;
    statistic += (counts[v] - expected) * (counts[v] - expected) / expected;
  }
  return statistic;
}

// Token counts of `draws` samples, each with its own (sequence, position) under `seed`.
std::vector<int> draw_counts(const std::vector<float>& logits, const Filter& filter,
                             std::uint64_t seed, int draws) {
  std::vector<int> counts(logits.size(), 0);
  std::vector<int> scratch;
  for (int i = 0; i < draws; ++i) {
    const SampleKey key{seed, static_cast<std::uint64_t>(i / 200),
                        static_cast<std::uint32_t>(i % 200)};
    ++counts.at(esamp::sample(logits, filter, key, scratch));
  }
  return counts;
}

std::vector<int> candidates_of(const std::vector<float>& logits, const Filter& filter) {
  std::vector<int> candidates;
  esamp::select_candidates(logits, filter, candidates);
  return candidates;
}

Filter make_filter(float temperature, int top_k, float top_p, float min_p) {
  Filter filter;
  filter.temperature = temperature;
  filter.top_k = top_k;
  filter.top_p = top_p;
  filter.min_p = min_p;
  return filter;
}

}  // namespace

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors") {
  using esamp::philox4x32_10;
  using esamp::PhiloxCounter;
  CHECK(philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u}) ==
        PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32_10({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}) ==
        PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                      {0xa4093822u, 0x299f31d0u}) ==
        PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
  // constexpr: usable at compile time, e.g. for tables.
  static_assert(philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u})[0] == 0x6627e8d5u);
}

TEST_CASE("uniform depends on the seed and sequence and position and draw index only") {
  const SampleKey base{42, 3, 5};
  const double u = esamp::uniform(base);
  CHECK(esamp::uniform(SampleKey{42, 3, 5}) == u);
  CHECK(esamp::uniform(base, 0) == u);
  CHECK(esamp::uniform(SampleKey{43, 3, 5}) != u);
  CHECK(esamp::uniform(SampleKey{42 + (1ull << 32), 3, 5}) != u);  // the seed's high half counts
  CHECK(esamp::uniform(SampleKey{42, 4, 5}) != u);
  // The sequence's high half counts.
  CHECK(esamp::uniform(SampleKey{42, 3 + (1ull << 32), 5}) != u);
  CHECK(esamp::uniform(SampleKey{42, 3, 6}) != u);
  CHECK(esamp::uniform(base, 1) != u);
}

TEST_CASE("uniform takes the top 53 bits of the Philox block of its coordinates") {
  // The layout the CUDA sampler must share: counter (draw, position, sequence lo, sequence hi),
  // key (seed lo, seed hi), words 0 and 1.
  const esamp::PhiloxCounter bits = esamp::philox4x32_10({2u, 5u, 3u, 1u}, {42u, 7u});
  const std::uint64_t top53 = ((std::uint64_t{bits[0]} << 32) | bits[1]) >> 11;
  const SampleKey key{42 + (7ull << 32), 3 + (1ull << 32), 5};
  CHECK(esamp::uniform(key, 2) == std::ldexp(static_cast<double>(top53), -53));
}

TEST_CASE("uniform draws are uniform on the unit interval") {
  constexpr int kDraws = 40000;
  constexpr int kBins = 20;
  std::vector<int> counts(kBins, 0);
  double lowest = 1.0;
  double highest = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const double u = esamp::uniform(SampleKey{7, static_cast<std::uint64_t>(i), 0});
    lowest = std::min(lowest, u);
    highest = std::max(highest, u);
    ++counts.at(static_cast<std::size_t>(u * kBins));
  }
  CHECK(lowest >= 0.0);
  CHECK(highest < 1.0);
  const std::vector<double> probs(kBins, 1.0 / kBins);
  CHECK(chi_square(counts, probs, kDraws) < chi_square_critical_1e4(kBins - 1));
}

TEST_CASE("Wilson-Hilferty chi-square quantile is slightly conservative at p = 1e-4") {
  // Exact quantiles: dof 2 is exponential, 2 ln(1e4); dof 10 and 20 from the regularized gamma
  // function.
  const double exact[][2] = {{2, 2.0 * std::log(1e4)}, {10, 35.564}, {20, 52.386}};
  for (const auto& [dof, quantile] : exact) {
    INFO("dof = " << dof);
    CHECK(chi_square_critical_1e4(static_cast<int>(dof)) >= quantile);
    CHECK(chi_square_critical_1e4(static_cast<int>(dof)) <= 1.05 * quantile);
  }
}

TEST_CASE("Filter.validate names the field and the value and the allowed range") {
  CHECK_NOTHROW(Filter{}.validate());
  CHECK_NOTHROW(make_filter(0.0f, 5, 1.0f, 1.0f).validate());
  CHECK_THROWS_WITH(make_filter(-0.5f, 0, 1.0f, 0.0f).validate(),
                    "Filter.temperature = -0.5: must be finite and >= 0 (0 = greedy)");
  CHECK_THROWS_WITH(make_filter(kInf, 0, 1.0f, 0.0f).validate(),
                    Contains("Filter.temperature = inf"));
  CHECK_THROWS_WITH(make_filter(std::nanf(""), 0, 1.0f, 0.0f).validate(),
                    Contains("Filter.temperature = nan"));
  CHECK_THROWS_WITH(make_filter(1.0f, -1, 1.0f, 0.0f).validate(),
                    "Filter.top_k = -1: must be >= 0 (0 = off)");
  CHECK_THROWS_WITH(make_filter(1.0f, 0, 1.5f, 0.0f).validate(),
                    "Filter.top_p = 1.5: must be in (0, 1]");
  CHECK_THROWS_WITH(make_filter(1.0f, 0, 0.0f, 0.0f).validate(),
                    "Filter.top_p = 0: must be in (0, 1]");
  CHECK_THROWS_WITH(make_filter(1.0f, 0, std::nanf(""), 0.0f).validate(),
                    Contains("Filter.top_p = nan"));
  CHECK_THROWS_WITH(make_filter(1.0f, 0, 1.0f, -0.1f).validate(),
                    "Filter.min_p = -0.1: must be in [0, 1]");
  CHECK_THROWS_WITH(make_filter(1.0f, 0, 1.0f, 1.5f).validate(),
                    "Filter.min_p = 1.5: must be in [0, 1]");
  // The entry points validate too.
  std::vector<int> scratch;
  CHECK_THROWS_AS(esamp::select_candidates(kLogits, make_filter(1.0f, 0, 2.0f, 0.0f), scratch),
                  esamp::Error);
  CHECK_THROWS_AS(esamp::sample(kLogits, make_filter(-1.0f, 0, 1.0f, 0.0f), SampleKey{}, scratch),
                  esamp::Error);
}

TEST_CASE("temperature_only keeps the temperature and drops every truncation") {
  const Filter plain = make_filter(0.7f, 3, 0.5f, 0.2f).temperature_only();
  CHECK(plain.temperature == 0.7f);
  CHECK(plain.top_k == 0);
  CHECK(plain.top_p == 1.0f);
  CHECK(plain.min_p == 0.0f);
}

TEST_CASE("select_candidates orders by descending logit with ties by lower index") {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -kInf, 2.0f, 3.0f};
  CHECK(candidates_of(logits, Filter{}) == std::vector<int>{1, 2, 5, 4, 0});
  CHECK(candidates_of(logits, make_filter(1.0f, 2, 1.0f, 0.0f)) == std::vector<int>{1, 2});
  CHECK(candidates_of(logits, make_filter(1.0f, 4, 1.0f, 0.0f)) == std::vector<int>{1, 2, 5, 4});
  CHECK(candidates_of(logits, make_filter(1.0f, 100, 1.0f, 0.0f)) ==
        std::vector<int>{1, 2, 5, 4, 0});
  CHECK(candidates_of(logits, make_filter(0.0f, 0, 1.0f, 0.0f)) == std::vector<int>{1});
  CHECK(candidates_of(logits, make_filter(1.0f, 1, 1.0f, 0.0f)) == std::vector<int>{1});
  // min-p keeps every token tied with the maximum.
  CHECK(candidates_of(logits, make_filter(1.0f, 0, 1.0f, 0.9f)) == std::vector<int>{1, 2, 5});
}

TEST_CASE("select_candidates applies each filter to the full softmax of logits / T") {
  // Probabilities at T = 1 in kOrder: .340 .206 .153 .102 .076 .051 .034 .023 .014
  // (cumulative .340 .547 .700 .802 .878 .929 .963 .986 1), relative to the max: 1 .607 .449 .301
  // .223 .150 .100 .067 .041.
  CHECK(candidates_of(kLogits, Filter{}) == kOrder);
  CHECK(candidates_of(kLogits, make_filter(1.0f, 3, 1.0f, 0.0f)) == std::vector<int>{1, 5, 3});
  CHECK(candidates_of(kLogits, make_filter(1.0f, 0, 0.85f, 0.0f)) ==
        std::vector<int>{1, 5, 3, 8, 0});
  CHECK(candidates_of(kLogits, make_filter(1.0f, 0, 0.30f, 0.0f)) == std::vector<int>{1});
  CHECK(candidates_of(kLogits, make_filter(1.0f, 0, 1.0f, 0.12f)) ==
        std::vector<int>{1, 5, 3, 8, 0, 6});
  // Temperature acts before truncation: at T = 0.5 the relative probabilities are squared.
  CHECK(candidates_of(kLogits, make_filter(0.5f, 0, 1.0f, 0.12f)) == std::vector<int>{1, 5, 3});
  // Composition is the intersection: top-p is measured on the full distribution, not renormalized
  // after top-k (renormalized over the top 5, top-p 0.85 would stop at 4).
  CHECK(candidates_of(kLogits, make_filter(1.0f, 5, 0.85f, 0.0f)) ==
        std::vector<int>{1, 5, 3, 8, 0});
  CHECK(candidates_of(kLogits, make_filter(1.0f, 4, 0.85f, 0.12f)) == std::vector<int>{1, 5, 3, 8});
}

TEST_CASE("select_candidates never keeps -inf and always keeps one token") {
  const std::vector<float> one_finite = {-kInf, -kInf, -3.0f, -kInf};
  CHECK(candidates_of(one_finite, Filter{}) == std::vector<int>{2});
  CHECK(candidates_of(one_finite, make_filter(2.0f, 3, 0.01f, 1.0f)) == std::vector<int>{2});
  // min_p = 1 and a tiny top_p still leave the argmax.
  CHECK(candidates_of(kLogits, make_filter(1.0f, 0, 1e-6f, 1.0f)) == std::vector<int>{1});
  // A huge logit gap underflows every other probability to 0: still only finite logits, argmax
  // first.
  const std::vector<float> gap = {0.0f, 1e30f, -kInf};
  CHECK(candidates_of(gap, Filter{}) == std::vector<int>{1, 0});
  CHECK(candidates_of(gap, make_filter(1.0f, 0, 0.5f, 0.0f)) == std::vector<int>{1});
}

TEST_CASE("select_candidates rejects NaN and +inf and empty and all -inf rows") {
  std::vector<int> scratch;
  std::vector<float> logits = kLogits;
  logits[4] = std::nanf("");
  CHECK_THROWS_WITH(esamp::select_candidates(logits, Filter{}, scratch),
                    "select_candidates: logits[4] = nan: must be finite or -inf");
  CHECK_THROWS_AS(esamp::sample(logits, make_filter(0.0f, 0, 1.0f, 0.0f), SampleKey{}, scratch),
                  esamp::Error);  // greedy still checks the whole row
  logits[4] = kInf;
  CHECK_THROWS_WITH(esamp::select_candidates(logits, Filter{}, scratch),
                    "select_candidates: logits[4] = inf: must be finite or -inf");
  const std::vector<float> empty;
  CHECK_THROWS_WITH(esamp::select_candidates(empty, Filter{}, scratch),
                    Contains("logits is empty"));
  const std::vector<float> all_masked = {-kInf, -kInf};
  CHECK_THROWS_WITH(esamp::select_candidates(all_masked, Filter{}, scratch),
                    "select_candidates: all 2 logits are -inf, no token can be kept");
}

TEST_CASE("select_candidates reuses the capacity of its output") {
  std::vector<int> candidates;
  candidates.reserve(kLogits.size());
  const int* storage = candidates.data();
  for (const Filter& filter :
       {Filter{}, make_filter(1.0f, 3, 1.0f, 0.0f), make_filter(0.7f, 0, 0.8f, 0.1f),
        make_filter(0.0f, 0, 1.0f, 0.0f)}) {
    esamp::select_candidates(kLogits, filter, candidates);
    CHECK(candidates.data() == storage);
    CHECK(candidates.capacity() == kLogits.size());
  }
}

TEST_CASE("greedy sampling returns the argmax with the lowest index on ties whatever the key") {
  const std::vector<float> tied = {1.0f, 4.0f, -kInf, 4.0f, 0.0f};
  std::vector<int> scratch;
  for (std::uint64_t sequence = 0; sequence < 50; ++sequence) {
    CHECK(esamp::sample(tied, make_filter(0.0f, 0, 1.0f, 0.0f), SampleKey{9, sequence, 1},
                        scratch) == 1);
    CHECK(esamp::sample(kLogits, make_filter(0.0f, 0, 1.0f, 0.0f), SampleKey{9, sequence, 1},
                        scratch) == 1);
  }
}

TEST_CASE("a draw depends on its seed and sequence and position but not on the batch around it") {
  // A batch of 8 rows, each its own sequence at position 5, with different logits per row.
  constexpr int kRows = 8;
  std::vector<std::vector<float>> rows(kRows);
  for (int r = 0; r < kRows; ++r) {
    rows[r] = kLogits;
    for (float& l : rows[r]) l += 0.1f * static_cast<float>(r % 3);  // a shift: same softmax
  }
  const Filter filter = make_filter(1.3f, 0, 1.0f, 0.0f);
  const auto batch = [&](std::uint64_t seed, bool reversed) {
    std::vector<int> tokens(kRows);
    std::vector<int> scratch;
    for (int i = 0; i < kRows; ++i) {
      const int r = reversed ? kRows - 1 - i : i;
      tokens[r] = esamp::sample(rows[r], filter, SampleKey{seed, static_cast<std::uint64_t>(r), 5},
                                scratch);
    }
    return tokens;
  };
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<int> fresh_scratch;
    const int alone = esamp::sample(rows[3], filter, SampleKey{seed, 3, 5}, fresh_scratch);
    CHECK(batch(seed, false)[3] == alone);
    CHECK(batch(seed, false) == batch(seed, true));
  }
  // Different keys give different draws: over many seeds sequence 3 does not always draw sequence
  // 4's token, and the tokens vary.
  std::set<int> tokens;
  int same_as_neighbour = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const std::vector<int> drawn = batch(seed, false);
    tokens.insert(drawn[3]);
    same_as_neighbour += drawn[3] == drawn[4];
  }
  CHECK(tokens.size() >= 5);
  CHECK(same_as_neighbour < 100);  // independent draws agree with probability ~0.2
}

TEST_CASE("sampling follows the filtered softmax by a chi-square test at p = 1e-4") {
  struct Case {
    std::string name;
    Filter filter;
    std::vector<int> kept;  // derived by hand from the probabilities listed above
    std::uint64_t seed;
  };
  const Case c = GENERATE(values<Case>({
      {"temperature 0.7", make_filter(0.7f, 0, 1.0f, 0.0f), kOrder, 11},
      {"temperature 1.5", make_filter(1.5f, 0, 1.0f, 0.0f), kOrder, 12},
      {"top-k 3", make_filter(1.0f, 3, 1.0f, 0.0f), {1, 5, 3}, 13},
      {"top-p 0.85", make_filter(1.0f, 0, 0.85f, 0.0f), {1, 5, 3, 8, 0}, 14},
      {"min-p 0.12", make_filter(1.0f, 0, 1.0f, 0.12f), {1, 5, 3, 8, 0, 6}, 15},
      // T = 0.8: top-k 6 keeps 6, top-p 0.95 keeps 6 (cumulative .919 at 5, .956 at 6), min-p 0.2
      // keeps 4 (relative .223 at 4th, .153 at 5th): the intersection is 4 tokens.
      {"combined", make_filter(0.8f, 6, 0.95f, 0.2f), {1, 5, 3, 8}, 16},
  }));
  INFO(c.name);
  constexpr int kDraws = 40000;
  const std::vector<int> counts = draw_counts(kLogits, c.filter, c.seed, kDraws);
  const std::vector<double> probs = restricted_softmax(kLogits, c.filter.temperature, c.kept);
  for (std::size_t v = 0; v < counts.size(); ++v) {
    INFO("token " << v);
    if (probs[v] == 0.0)
      CHECK(counts[v] == 0);  // outside the kept set, or -inf
    else
      CHECK(probs[v] * kDraws >= 100.0);  // every bin large enough for the chi-square approximation
  }
  const int dof = static_cast<int>(c.kept.size()) - 1;
  CHECK(chi_square(counts, probs, kDraws) < chi_square_critical_1e4(dof));
}

TEST_CASE("the chi-square check rejects a sampler with the wrong temperature") {
  // Its power: draws at T = 0.7 measured against the T = 1.0 distribution must fail the same test.
  constexpr int kDraws = 40000;
  const std::vector<int> counts =
      draw_counts(kLogits, make_filter(0.7f, 0, 1.0f, 0.0f), 21, kDraws);
  const std::vector<double> wrong = restricted_softmax(kLogits, 1.0, kOrder);
  CHECK(chi_square(counts, wrong, kDraws) >
        chi_square_critical_1e4(static_cast<int>(kOrder.size()) - 1));
}
