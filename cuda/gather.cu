// The row gather of gather.cuh.
#include "detail/common.cuh"
#include "gather.cuh"

namespace esamp::cuda {
namespace {

constexpr int kThreads = 256;

template <class T, int kPack>
__global__ void __launch_bounds__(kThreads)
    gather_rows_kernel(const T* __restrict__ src, std::int64_t src_stride, int hidden,
                       const StepPlanView plan, float* __restrict__ out,
                       std::uint8_t* __restrict__ finite) {
  const int row = static_cast<int>(blockIdx.x);
  if (row >= plan.rows()) return;
  const int pos = plan.row_position(row);
  const T* in = src + row * src_stride;
  float* dst = out + static_cast<std::int64_t>(pos) * hidden;
  bool ok = true;
  for (int j = static_cast<int>(threadIdx.x) * kPack; j < hidden; j += kThreads * kPack) {
    const auto pack = *reinterpret_cast<const detail::Pack<T, kPack>*>(in + j);
#pragma unroll
    for (int e = 0; e < kPack; ++e) {
      const float value = detail::to_float(pack.value[e]);
      ok = ok && isfinite(value);
      dst[j + e] = value;
    }
  }
  const bool row_finite = __syncthreads_and(ok) != 0;
  if (!row_finite) {
    for (int j = static_cast<int>(threadIdx.x); j < hidden; j += kThreads) dst[j] = 0.0f;
  }
  if (threadIdx.x == 0) finite[pos] = row_finite ? 1 : 0;
}

}  // namespace

cudaError_t GatherRows(const void* src, DType dtype, std::int64_t src_stride, int hidden,
                       const StepPlanView& plan, float* out, std::uint8_t* finite,
                       cudaStream_t stream) {
  return detail::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const auto* typed = static_cast<const T*>(src);
    const dim3 grid(static_cast<unsigned>(plan.layout.max_rows));
    constexpr int kWide = 16 / static_cast<int>(sizeof(T));
    if (detail::pack_width<T>(src, src_stride, hidden) == kWide) {
      gather_rows_kernel<T, kWide>
          <<<grid, kThreads, 0, stream>>>(typed, src_stride, hidden, plan, out, finite);
    } else {
      gather_rows_kernel<T, 1>
          <<<grid, kThreads, 0, stream>>>(typed, src_stride, hidden, plan, out, finite);
    }
    return cudaGetLastError();
  });
}

}  // namespace esamp::cuda
