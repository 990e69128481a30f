// Token sampling on the CPU: the candidate filter (temperature, top-k, top-p, min-p), a
// counter-based Philox RNG keyed by (seed, sequence, position), and the draw itself. Filters:
// DESIGN.md §1 (mixing).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "esamp/error.hpp"
#include "esamp/span.hpp"

namespace esamp {

// One composable token filter. Every truncation is computed on softmax(logits / temperature) over
// the whole vocabulary and the kept set is their intersection, so the order of the filters does not
// matter.
struct Filter {
  float temperature = 1.0f;  // 0 means greedy: the candidate set is the argmax
  int top_k = 0;             // keep the k most likely tokens; 0 = off
  float top_p = 1.0f;        // keep the smallest most-likely set whose probability is >= top_p
  float min_p = 0.0f;        // keep tokens whose probability is >= min_p * (max probability)

  void validate() const;
  // Same temperature, no truncation: for logits whose non-candidates are already -inf (mix_logits).
  Filter temperature_only() const { return Filter{temperature, 0, 1.0f, 0.0f}; }
};

inline void Filter::validate() const {
  if (!(temperature >= 0.0f && std::isfinite(temperature)))
    fail("Filter.temperature = {}: must be finite and >= 0 (0 = greedy)", temperature);
  if (top_k < 0) fail("Filter.top_k = {}: must be >= 0 (0 = off)", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("Filter.top_p = {}: must be in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("Filter.min_p = {}: must be in [0, 1]", min_p);
}

// The index of the largest logit (the first of ties). NaN or +inf logits, an empty row or an all
// -inf row are errors: the rows select_candidates refuses.
inline int checked_argmax(Span<const float> logits) {
  if (logits.empty()) fail("select_candidates: logits is empty, expected at least one token");
  if (logits.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    fail("select_candidates: {} logits, token ids must fit in int", logits.size());
  constexpr float kInf = std::numeric_limits<float>::infinity();
  int best = -1;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == kInf)
      fail("select_candidates: logits[{}] = {}: must be finite or -inf", i, l);
    if (l != -kInf && (best < 0 || l > logits[best])) best = static_cast<int>(i);
  }
  if (best < 0)
    fail("select_candidates: all {} logits are -inf, no token can be kept", logits.size());
  return best;
}

namespace detail {
// select_candidates for a filter its caller has validated (once, not once per row).
inline void select_candidates(Span<const float> logits, const Filter& filter,
                              std::vector<int>& candidates) {
  const int best = checked_argmax(logits);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();

  candidates.clear();
  if (filter.temperature == 0.0f || filter.top_k == 1) {  // the argmax alone: no sort needed
    candidates.push_back(best);
    return;
  }
  const double max_logit = logits[best];
  const double temperature = filter.temperature;
  // min-p in logit space: p_v >= min_p * p_max  <=>  (l_v - l_max) / T >= log(min_p).
  const double min_scaled = filter.min_p > 0.0f ? std::log(static_cast<double>(filter.min_p))
                                                : -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != kNegInf && (logits[i] - max_logit) / temperature >= min_scaled)
      candidates.push_back(static_cast<int>(i));
  }
  const auto before = [&logits](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const auto kept = static_cast<std::size_t>(filter.top_k);
  if (filter.top_k > 0 && candidates.size() > kept) {
    std::nth_element(candidates.begin(), candidates.begin() + filter.top_k, candidates.end(),
                     before);
    candidates.resize(kept);
  }
  std::sort(candidates.begin(), candidates.end(), before);

  if (filter.top_p < 1.0f) {
    // The nucleus is the shortest prefix of the full-vocabulary order with mass >= top_p; the
    // prefix kept so far follows that same order, so cutting it there gives the intersection.
    double total = 0.0;
    for (const float l : logits) total += std::exp((l - max_logit) / temperature);
    const double needed = filter.top_p * total;
    double mass = 0.0;
    std::size_t size = 0;
    while (size < candidates.size() && mass < needed)
      mass += std::exp((logits[candidates[size++]] - max_logit) / temperature);
    candidates.resize(size);
  }
}
}  // namespace detail

// The indices kept by `filter`, by descending logit (ties: lower index first). At least one is
// kept; -inf logits never are. A bad filter, NaN or +inf logits, an empty row or an all -inf row
// are errors. `candidates` is overwritten; its capacity is reused, so a steady-state call does not
// allocate.
inline void select_candidates(Span<const float> logits, const Filter& filter,
                              std::vector<int>& candidates) {
  filter.validate();
  detail::select_candidates(logits, filter, candidates);
}

// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): a bijection
// of a 128-bit counter under a 64-bit key, so any draw is computed directly from its coordinates.
using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

constexpr PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  constexpr std::uint32_t kMultiplier0 = 0xD2511F53u;
  constexpr std::uint32_t kMultiplier1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
  constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t product0 = std::uint64_t{kMultiplier0} * counter[0];
    const std::uint64_t product1 = std::uint64_t{kMultiplier1} * counter[2];
    counter = {static_cast<std::uint32_t>(product1 >> 32) ^ counter[1] ^ key[0],
               static_cast<std::uint32_t>(product1),
               static_cast<std::uint32_t>(product0 >> 32) ^ counter[3] ^ key[1],
               static_cast<std::uint32_t>(product0)};
    key = {key[0] + kWeyl0, key[1] + kWeyl1};
  }
  return counter;
}

// The coordinates of a token draw. A draw depends on these alone, never on batch composition.
struct SampleKey {
  std::uint64_t seed = 0;      // the request's (or run's) seed: the Philox key
  std::uint64_t sequence = 0;  // which sample / sequence
  std::uint32_t position = 0;  // token position in that sequence (contexts are < 2^32 tokens)
};

// Uniform in [0, 1) on a 2^-53 grid, from words 0 and 1 of one Philox block: a coarser grid would
// misweight a 128k-token tail by up to V * grid. Counter = (draw, position, sequence), key = seed.
inline double uniform(const SampleKey& key, std::uint32_t draw = 0) {
  const PhiloxCounter bits = philox4x32_10(
      {draw, key.position, static_cast<std::uint32_t>(key.sequence),
       static_cast<std::uint32_t>(key.sequence >> 32)},
      {static_cast<std::uint32_t>(key.seed), static_cast<std::uint32_t>(key.seed >> 32)});
  const std::uint64_t top53 = ((std::uint64_t{bits[0]} << 32) | bits[1]) >> 11;
  return static_cast<double>(top53) * 0x1p-53;
}

// One token from softmax(logits / T) restricted to `filter`'s candidates, by inverse CDF on
// uniform(key); the argmax (lowest index on ties) when T == 0. `scratch` holds the candidates after
// the call.
inline int sample(Span<const float> logits, const Filter& filter, const SampleKey& key,
                  std::vector<int>& scratch) {
  select_candidates(logits, filter, scratch);
  if (scratch.size() == 1) return scratch.front();
  const double max_logit = logits[scratch.front()];
  const double temperature = filter.temperature;
  const auto weight = [&](int token) {
    return std::exp((logits[token] - max_logit) / temperature);
  };
  double total = 0.0;
  for (const int token : scratch) total += weight(token);
  const double target = uniform(key) * total;
  double cumulative = 0.0;
  for (const int token : scratch) {
    cumulative += weight(token);
    if (cumulative > target) return token;
  }
  // Rounding left target at the very top: the last token with nonzero weight owns that end.
  const auto last = std::find_if(scratch.rbegin(), scratch.rend(),
                                 [&](int token) { return weight(token) > 0.0; });
  return *last;
}

}  // namespace esamp
