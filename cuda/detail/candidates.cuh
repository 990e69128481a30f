// Block-per-row candidate selection on the GPU, the twin of esamp::select_candidates and of the
// draw in esamp::sample. Every filter (top-k, top-p, min-p on logits / T) keeps a prefix of the row
// in (logit descending, index ascending) order, so the candidate set is "all logits above a cut
// key, plus the first `ties` logits equal to it by index"; the cut is found by bisection on the
// 32-bit order-preserving key of the logit, counting (and weighing) the logits above each pivot
// with deterministic block reductions. No sort, no per-row workspace. Included by .cu files only.
#pragma once

#include <cstdint>
#include <cub/block/block_scan.cuh>
#include <limits>

#include "detail/common.cuh"
#include "sampling.cuh"

namespace esamp::cuda::detail {

constexpr int kSelectThreads = 512;

struct SelectShared {
  typename cub::BlockScan<int, kSelectThreads>::TempStorage scan;
  int ints[kSelectThreads / kWarp];
  double doubles[kSelectThreads / kWarp];
  float floats[kSelectThreads / kWarp];
  int found;
};

// Larger float -> larger key; valid logits (finite) have keys in (0, 2^32 - 1).
__device__ __forceinline__ std::uint32_t order_key(float f) {
  const std::uint32_t bits = __float_as_uint(f);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ bool is_candidate_value(float l) { return isfinite(l); }

// Facts of one row from one pass: max (argmax: lowest index among equals), finite count.
struct RowSummary {
  float max_logit;
  int argmax;
  int finite;
  bool invalid;  // a NaN or +inf was seen
};

template <class T>
__device__ RowSummary summarize_row(const T* __restrict__ row, int vocab, SelectShared& sh) {
  float best = -std::numeric_limits<float>::infinity();
  int best_index = vocab;
  int finite = 0;
  bool invalid = false;
  for (int i = static_cast<int>(threadIdx.x); i < vocab; i += kSelectThreads) {
    const float l = to_float(row[i]);
    if (isnan(l) || l == std::numeric_limits<float>::infinity()) {
      invalid = true;
    } else if (isfinite(l)) {
      ++finite;
      if (l > best) {  // strided ascending: the first of equals wins within a thread
        best = l;
        best_index = i;
      }
    }
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    if (other > best || (other == best && other_index < best_index)) {
      best = other;
      best_index = other_index;
    }
  }
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  if (threadIdx.x % kWarp == 0) {
    sh.floats[warp] = best;
    sh.ints[warp] = best_index;
  }
  __syncthreads();
  RowSummary s{sh.floats[0], sh.ints[0], 0, false};
  for (int w = 1; w < kSelectThreads / kWarp; ++w) {
    if (sh.floats[w] > s.max_logit || (sh.floats[w] == s.max_logit && sh.ints[w] < s.argmax)) {
      s.max_logit = sh.floats[w];
      s.argmax = sh.ints[w];
    }
  }
  __syncthreads();
  s.finite = block_sum<kSelectThreads>(finite, sh.ints);
  s.invalid = __syncthreads_or(invalid) != 0;
  return s;
}

// exp((l - max) / T): a logit's unnormalised probability (float; sums are kept in double).
__device__ __forceinline__ float logit_weight(float l, float max_logit, float temperature) {
  return expf((l - max_logit) / temperature);
}

// Count (and, when with_mass, total weight) of the finite logits whose key is above `pivot`.
template <class T>
__device__ void tally_above(const T* __restrict__ row, int vocab, std::uint32_t pivot,
                            float max_logit, float temperature, bool with_mass, SelectShared& sh,
                            int& count, double& mass) {
  int c = 0;
  double m = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < vocab; i += kSelectThreads) {
    const float l = to_float(row[i]);
    if (is_candidate_value(l) && order_key(l) > pivot) {
      ++c;
      if (with_mass) m += logit_weight(l, max_logit, temperature);
    }
  }
  count = block_sum<kSelectThreads>(c, sh.ints);
  mass = with_mass ? block_sum<kSelectThreads>(m, sh.doubles) : 0.0;
}

// The kept prefix: logits with key > key, plus the first `ties` logits with key == key by index.
struct Cut {
  std::uint32_t key;
  int ties;
  int count_above;    // logits with key > key
  double mass_above;  // their weight
  float tie_weight;   // weight of one logit equal to the cut
  int tie_total;      // logits equal to the cut
};

// Finds the first element e, in (logit desc, index asc) order, where the prefix ending at e has
// `cap` elements or weight >= `needed`. Requires 1 <= cap <= finite count; needed > 0 or +inf.
// with_mass: also weigh the cut's prefix (mass_above), needed when `needed` is finite or a draw
// follows.
template <class T>
__device__ Cut find_cut(const T* __restrict__ row, int vocab, const RowSummary& summary,
                        float temperature, int cap, double needed, bool with_mass,
                        SelectShared& sh) {
  // Invariant: the prefix above `lo` stops the walk (or lo = 0: every finite logit is above it),
  // the prefix above `hi` does not.
  std::uint32_t lo = 0, hi = order_key(summary.max_logit);
  int count_lo = summary.finite, count_hi = 0;
  double mass_hi = 0.0;
  while (hi - lo > 1) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    int count;
    double mass;
    tally_above(row, vocab, mid, summary.max_logit, temperature, with_mass, sh, count, mass);
    if (count >= cap || mass >= needed) {
      lo = mid;
      count_lo = count;
    } else {
      hi = mid;
      count_hi = count;
      mass_hi = mass;
    }
  }
  Cut cut{};
  cut.key = hi;
  cut.count_above = count_hi;
  cut.mass_above = mass_hi;
  cut.tie_total = count_lo - count_hi;
  // The key of a logit equal to the cut, back to float: invert order_key.
  const std::uint32_t bits = (hi & 0x80000000u) ? (hi & 0x7fffffffu) : ~hi;
  cut.tie_weight = logit_weight(__uint_as_float(bits), summary.max_logit, temperature);
  double mass = mass_hi;
  int ties = 0;
  while (ties < cut.tie_total && count_hi + ties < cap && mass < needed) {
    mass += cut.tie_weight;
    ++ties;
  }
  cut.ties = ties;
  return cut;
}

// Index of the n-th (from 0) logit whose key equals `key`, in index order; -1 if there is none.
template <class T>
__device__ int nth_equal(const T* __restrict__ row, int vocab, std::uint32_t key, int n,
                         SelectShared& sh) {
  if (threadIdx.x == 0) sh.found = -1;
  int seen = 0;
  for (int base = 0; base < vocab; base += kSelectThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    const float l = i < vocab ? to_float(row[i]) : 0.0f;
    const int equal = i < vocab && is_candidate_value(l) && order_key(l) == key ? 1 : 0;
    int rank, chunk_total;
    cub::BlockScan<int, kSelectThreads>(sh.scan).ExclusiveSum(equal, rank, chunk_total);
    if (equal && seen + rank == n) sh.found = i;
    seen += chunk_total;
    __syncthreads();
    if (sh.found >= 0 || seen > n) break;
  }
  const int found = sh.found;
  __syncthreads();
  return found;
}

// The candidates of one row under `filter` (esamp::select_candidates). any = false when no logit is
// finite. Greedy (T = 0 or top_k = 1) keeps the argmax: the first logit equal to the max.
struct RowCandidates {
  RowSummary summary;
  Cut cut;
  bool any;
  __device__ int count() const { return cut.count_above + cut.ties; }
  __device__ double mass() const {
    return cut.mass_above + cut.ties * static_cast<double>(cut.tie_weight);
  }
};

template <class T>
__device__ RowCandidates select_row_candidates(const T* __restrict__ row, int vocab,
                                               const FilterParams& filter, bool with_mass,
                                               SelectShared& sh) {
  RowCandidates rc{};
  rc.summary = summarize_row(row, vocab, sh);
  rc.any = rc.summary.finite > 0;
  if (!rc.any) return rc;
  if (filter.temperature == 0.0f || filter.top_k == 1) {
    rc.cut.key = order_key(rc.summary.max_logit);
    rc.cut.ties = 1;
    rc.cut.tie_weight = 1.0f;
    rc.cut.tie_total = std::numeric_limits<int>::max();  // unknown: rank the ties
    return rc;
  }
  const double max_logit = rc.summary.max_logit;
  const double temperature = filter.temperature;
  int min_p_kept = rc.summary.finite;
  if (filter.log_min_p > -std::numeric_limits<double>::infinity()) {
    int kept = 0;
    for (int i = static_cast<int>(threadIdx.x); i < vocab; i += kSelectThreads) {
      const float l = to_float(row[i]);
      if (is_candidate_value(l) && (l - max_logit) / temperature >= filter.log_min_p) ++kept;
    }
    min_p_kept = block_sum<kSelectThreads>(kept, sh.ints);
  }
  const int cap = filter.top_k > 0 ? min(filter.top_k, min_p_kept) : min_p_kept;
  double needed = std::numeric_limits<double>::infinity();
  if (filter.top_p < 1.0f) {
    int count;
    double total;
    tally_above(row, vocab, 0u, rc.summary.max_logit, filter.temperature, true, sh, count, total);
    needed = static_cast<double>(filter.top_p) * total;
  }
  rc.cut = find_cut(row, vocab, rc.summary, filter.temperature, cap, needed,
                    with_mass || filter.top_p < 1.0f, sh);
  return rc;
}

}  // namespace esamp::cuda::detail
