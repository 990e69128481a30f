// The token sampler of sampling.cuh.
#include "detail/candidates.cuh"
#include "detail/common.cuh"
#include "sampling.cuh"

namespace esamp::cuda {
namespace {

// esamp::uniform on the device: the same counter (draw 0, position, sequence) and key (seed).
__device__ float philox_uniform(std::uint64_t seed, std::uint64_t sequence,
                                std::uint32_t position) {
  const PhiloxCounter bits =
      philox4x32_10({0u, position, static_cast<std::uint32_t>(sequence),
                     static_cast<std::uint32_t>(sequence >> 32)},
                    {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  return static_cast<float>(bits[0] >> 8) * 0x1p-24f;
}

template <class T>
__global__ void __launch_bounds__(detail::kSelectThreads)
    sample_tokens_kernel(const T* __restrict__ logits, std::int64_t stride, int vocab,
                         const FilterParams filter, const std::uint64_t* __restrict__ seeds,
                         const std::uint64_t* __restrict__ sequences,
                         const std::uint32_t* __restrict__ positions,
                         std::int32_t* __restrict__ tokens, std::int32_t* __restrict__ row_status) {
  __shared__ detail::SelectShared sh;
  const int row = static_cast<int>(blockIdx.x);
  const T* l = logits + row * stride;
  const detail::RowCandidates rc = detail::select_row_candidates(l, vocab, filter, true, sh);
  if (threadIdx.x == 0)
    row_status[row] =
        (rc.summary.invalid ? kRowHasInvalidLogit : 0) | (rc.any ? 0 : kRowHasNoCandidate);
  if (!rc.any || filter.temperature == 0.0f || rc.count() == 1) {
    // No draw: the first candidate in order is the argmax.
    if (threadIdx.x == 0) tokens[row] = rc.any ? rc.summary.argmax : -1;
    return;
  }
  const double target =
      static_cast<double>(philox_uniform(seeds[row], sequences[row], positions[row])) * rc.mass();
  // The first candidate in order whose cumulative weight exceeds target: bisection on the key, then
  // the tie group. Invariant: the logits above lo weigh more than target, those above hi do not.
  std::uint32_t lo = rc.cut.key - 1, hi = detail::order_key(rc.summary.max_logit);
  int count_lo = rc.cut.count_above + rc.cut.tie_total, count_hi = 0;
  double mass_hi = 0.0;
  while (hi - lo > 1) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    int count;
    double mass;
    detail::tally_above(l, vocab, mid, rc.summary.max_logit, filter.temperature, true, sh, count,
                        mass);
    if (mass > target) {
      lo = mid;
      count_lo = count;
    } else {
      hi = mid;
      count_hi = count;
      mass_hi = mass;
    }
  }
  const int limit = hi == rc.cut.key ? rc.cut.ties : count_lo - count_hi;
  const std::uint32_t bits = (hi & 0x80000000u) ? (hi & 0x7fffffffu) : ~hi;
  const double weight =
      detail::logit_weight(__uint_as_float(bits), rc.summary.max_logit, filter.temperature);
  int nth = 0;
  double cumulative = mass_hi + weight;
  while (cumulative <= target && nth + 1 < limit) {
    cumulative += weight;
    ++nth;
  }
  const int token = detail::nth_equal(l, vocab, hi, nth, sh);
  if (threadIdx.x == 0) tokens[row] = token;
}

}  // namespace

cudaError_t SampleTokens(const void* logits, DType dtype, std::int64_t stride, int rows, int vocab,
                         const FilterParams& filter, const std::uint64_t* seeds,
                         const std::uint64_t* sequences, const std::uint32_t* positions,
                         std::int32_t* tokens, std::int32_t* row_status, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  return detail::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    sample_tokens_kernel<T><<<static_cast<unsigned>(rows), detail::kSelectThreads, 0, stream>>>(
        static_cast<const T*>(logits), stride, vocab, filter, seeds, sequences, positions, tokens,
        row_status);
    return cudaGetLastError();
  });
}

}  // namespace esamp::cuda
