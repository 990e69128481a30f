// Latent and candidate mixing kernels of mix.cuh.
#include "detail/candidates.cuh"
#include "detail/common.cuh"
#include "esamp/config.hpp"
#include "mix.cuh"

namespace esamp::cuda {
namespace {

using detail::mul_rn;
using detail::sub_rn;

constexpr int kMixThreads = 256;

// Whether input row `row` is mixed, decided identically by every thread of the block: its beta
// != 0, source finite, slot warm, prediction finite. Sets *prediction to the row's y_hat.
template <int kThreads>
__device__ bool row_is_mixed(const MixInputs& in, int row, int hidden_size,
                             const float** prediction) {
  const float beta = in.plan.row_beta(row);
  const int pos = in.plan.row_position(row);
  const int segment = in.plan.position_segment(pos);
  if (beta == 0.0f || !in.source_finite[pos] ||
      in.segment_steps[segment] < in.settings->warmup_updates)
    return false;
  const float* y_hat = in.y_hat + static_cast<std::int64_t>(pos) * hidden_size;
  bool finite = true;
  for (int j = static_cast<int>(threadIdx.x); j < hidden_size; j += kThreads)
    finite = finite && isfinite(y_hat[j]);
  *prediction = y_hat;
  return __syncthreads_and(finite) != 0;
}

// Counts input row `row` as mixed, in the total and in its slot's record (one thread of its block).
__device__ void count_mixed(const MixInputs& in, int row) {
  const int slot = in.plan.segment_slot(in.plan.position_segment(in.plan.row_position(row)));
  atomicAdd(in.rows_mixed, 1ull);
  atomicAdd(reinterpret_cast<unsigned long long*>(&in.slot_stats[slot].rows_mixed), 1ull);
}

// h̃ = keep·h − push·ŷ for every LatentMix (cpu::mix_latent_row is the twin): full keeps the
// defaults; the others need h·h, h·ŷ, ŷ·ŷ over the row (in double, as on the CPU). False: the row
// is left as it is (h = 0, or a zero mix to rescale), decided by the whole block alike.
template <class T>
__device__ bool latent_coefficients(const T* h, const float* y_hat, int hidden_size, float beta,
                                    std::int32_t mode, float* keep, float* push) {
  if (mode == static_cast<std::int32_t>(LatentMix::full)) return true;
  __shared__ double scratch[kMixThreads / detail::kWarp];
  double hh = 0.0, hy = 0.0, yy = 0.0;
  for (int j = static_cast<int>(threadIdx.x); j < hidden_size; j += kMixThreads) {
    const double hj = detail::to_float(h[j]), yj = y_hat[j];
    hh += hj * hj;
    hy += hj * yj;
    yy += yj * yj;
  }
  hh = detail::block_sum<kMixThreads>(hh, scratch);
  hy = detail::block_sum<kMixThreads>(hy, scratch);
  yy = detail::block_sum<kMixThreads>(yy, scratch);
  if (hh == 0.0) return false;
  const double b = beta;
  if (mode == static_cast<std::int32_t>(LatentMix::orthogonal)) {
    *keep = static_cast<float>(1.0 + b * hy / hh);
    return true;
  }
  const double mm = (1.0 + b) * (1.0 + b) * hh - 2.0 * (1.0 + b) * b * hy + b * b * yy;
  if (!(mm > 0.0)) return false;
  const auto scale = static_cast<float>(sqrt(hh / mm));
  *keep = mul_rn(scale, 1.0f + beta);
  *push = mul_rn(scale, beta);
  return true;
}

template <class T, int kPack>
__global__ void __launch_bounds__(kMixThreads)
    mix_hidden_kernel(T* __restrict__ hidden, std::int64_t stride, int hidden_size,
                      const MixInputs in) {
  const int row = static_cast<int>(blockIdx.x);
  if (row >= in.plan.rows()) return;
  const float* y_hat = nullptr;
  if (!row_is_mixed<kMixThreads>(in, row, hidden_size, &y_hat)) return;
  const float beta = in.plan.row_beta(row);
  T* h = hidden + row * stride;
  float keep = 1.0f + beta, push = beta;
  if (!latent_coefficients(h, y_hat, hidden_size, beta, in.settings->latent_mix, &keep, &push))
    return;
  using Pack = detail::Pack<T, kPack>;
  for (int j = static_cast<int>(threadIdx.x) * kPack; j < hidden_size; j += kMixThreads * kPack) {
    Pack pack = *reinterpret_cast<const Pack*>(h + j);
#pragma unroll
    for (int e = 0; e < kPack; ++e) {
      const float mixed =
          sub_rn(mul_rn(keep, detail::to_float(pack.value[e])), mul_rn(push, y_hat[j + e]));
      pack.value[e] = detail::from_float<T>(mixed);
    }
    *reinterpret_cast<Pack*>(h + j) = pack;
  }
  if (threadIdx.x == 0) count_mixed(in, row);
}

// W_v . y_hat by one warp (lanes stride the hidden dimension kPack elements at a time).
template <class TW, int kPack>
__device__ float head_dot(const TW* __restrict__ head_row, const float* __restrict__ y_hat,
                          int hidden_size) {
  const int lane = static_cast<int>(threadIdx.x) % detail::kWarp;
  float sum = 0.0f;
  for (int j = lane * kPack; j < hidden_size; j += detail::kWarp * kPack) {
    const auto pack = *reinterpret_cast<const detail::Pack<TW, kPack>*>(head_row + j);
#pragma unroll
    for (int e = 0; e < kPack; ++e) sum += detail::to_float(pack.value[e]) * y_hat[j + e];
  }
  return detail::warp_sum(sum);
}

template <class TL, class TW, int kPack>
__global__ void __launch_bounds__(detail::kSelectThreads)
    mix_logits_kernel(TL* __restrict__ logits, std::int64_t logits_stride, int vocab,
                      const TW* __restrict__ lm_head, std::int64_t head_stride, int hidden_size,
                      const FilterParams filter, const MixInputs in,
                      std::int32_t* __restrict__ row_status) {
  constexpr int kThreads = detail::kSelectThreads;
  constexpr int kWarps = kThreads / detail::kWarp;
  __shared__ detail::SelectShared sh;
  __shared__ int kept_tokens[kThreads];
  const int row = static_cast<int>(blockIdx.x);
  if (row >= in.plan.rows()) return;
  TL* l = logits + row * logits_stride;
  const detail::RowCandidates rc = detail::select_row_candidates(l, vocab, filter, false, sh);
  const float* y_hat = nullptr;
  const bool mixed = row_is_mixed<kThreads>(in, row, hidden_size, &y_hat);
  if (threadIdx.x == 0)
    row_status[row] =
        (rc.summary.invalid ? kRowHasInvalidLogit : 0) | (rc.any ? 0 : kRowHasNoCandidate);
  const float beta = in.plan.row_beta(row);
  const float keep = 1.0f + beta;
  const int warp = static_cast<int>(threadIdx.x) / detail::kWarp;
  int ties_seen = 0;
  for (int base = 0; base < vocab; base += kThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    const float value = i < vocab ? detail::to_float(l[i]) : 0.0f;
    const bool valid = rc.any && i < vocab && detail::is_candidate_value(value);
    const std::uint32_t key = valid ? detail::order_key(value) : 0u;
    const int equal = valid && key == rc.cut.key ? 1 : 0;
    int tie_rank, chunk_ties;
    cub::BlockScan<int, kThreads>(sh.scan).ExclusiveSum(equal, tie_rank, chunk_ties);
    __syncthreads();
    const int kept = valid && (key > rc.cut.key || (equal && ties_seen + tie_rank < rc.cut.ties));
    int slot, chunk_kept;
    cub::BlockScan<int, kThreads>(sh.scan).ExclusiveSum(kept, slot, chunk_kept);
    if (kept) kept_tokens[slot] = i;
    if (!kept && i < vocab) l[i] = detail::from_float<TL>(-std::numeric_limits<float>::infinity());
    __syncthreads();
    if (mixed) {
      for (int e = warp; e < chunk_kept; e += kWarps) {
        const int v = kept_tokens[e];
        const float dot = head_dot<TW, kPack>(lm_head + v * head_stride, y_hat, hidden_size);
        if (threadIdx.x % detail::kWarp == 0)
          l[v] = detail::from_float<TL>(
              sub_rn(mul_rn(keep, detail::to_float(l[v])), mul_rn(beta, dot)));
      }
    }
    ties_seen += chunk_ties;
    __syncthreads();
  }
  if (mixed && threadIdx.x == 0) count_mixed(in, row);
}

}  // namespace

cudaError_t MixHidden(void* hidden, DType dtype, std::int64_t stride, int hidden_size,
                      const MixInputs& inputs, cudaStream_t stream) {
  return detail::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kWide = 16 / static_cast<int>(sizeof(T));
    auto* typed = static_cast<T*>(hidden);
    const dim3 grid(static_cast<unsigned>(inputs.plan.layout.max_rows));
    if (detail::pack_width<T>(hidden, stride, hidden_size) == kWide) {
      mix_hidden_kernel<T, kWide>
          <<<grid, kMixThreads, 0, stream>>>(typed, stride, hidden_size, inputs);
    } else {
      mix_hidden_kernel<T, 1><<<grid, kMixThreads, 0, stream>>>(typed, stride, hidden_size, inputs);
    }
    return cudaGetLastError();
  });
}

cudaError_t MixLogits(void* logits, DType logits_dtype, std::int64_t logits_stride, int vocab,
                      const void* lm_head, DType head_dtype, std::int64_t head_stride,
                      int hidden_size, const FilterParams& filter, const MixInputs& inputs,
                      std::int32_t* row_status, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(inputs.plan.layout.max_rows));
  return detail::dispatch_dtype(logits_dtype, [&](auto logit_tag) {
    using TL = decltype(logit_tag);
    return detail::dispatch_dtype(head_dtype, [&](auto head_tag) {
      using TW = decltype(head_tag);
      constexpr int kWide = 16 / static_cast<int>(sizeof(TW));
      auto* typed_logits = static_cast<TL*>(logits);
      const auto* typed_head = static_cast<const TW*>(lm_head);
      if (detail::pack_width<TW>(lm_head, head_stride, hidden_size) == kWide) {
        mix_logits_kernel<TL, TW, kWide><<<grid, detail::kSelectThreads, 0, stream>>>(
            typed_logits, logits_stride, vocab, typed_head, head_stride, hidden_size, filter,
            inputs, row_status);
      } else {
        mix_logits_kernel<TL, TW, 1><<<grid, detail::kSelectThreads, 0, stream>>>(
            typed_logits, logits_stride, vocab, typed_head, head_stride, hidden_size, filter,
            inputs, row_status);
      }
      return cudaGetLastError();
    });
  });
}

}  // namespace esamp::cuda
