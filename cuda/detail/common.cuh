// Device helpers shared by the esamp kernels: element conversions (f32/f16/bf16, round to nearest
// even on store), 16-byte packs, deterministic block reductions and the one dtype dispatch point.
// Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "esamp/tensor.hpp"

namespace esamp::cuda::detail {

constexpr int kWarp = 32;

__host__ __device__ constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// N elements moved as one aligned load or store (16 bytes when N = 16 / sizeof(T)).
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T value[N];
};

// Elements per 16-byte access when a row of `cols` elements at `data` with `stride` allows it,
// else 1: the runtime alignment test behind every vectorised row kernel.
template <class T>
inline int pack_width(const void* data, std::int64_t stride, std::int64_t cols) {
  constexpr int kWide = 16 / static_cast<int>(sizeof(T));
  const bool aligned = reinterpret_cast<std::uintptr_t>(data) % 16 == 0 &&
                       (stride * static_cast<std::int64_t>(sizeof(T))) % 16 == 0 &&
                       cols % kWide == 0;
  return aligned ? kWide : 1;
}

// Calls f(T{}) with T the device type of `dtype`: the one place a DType becomes a template type.
template <class F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f16:
      return f(__half{});
    case DType::bf16:
      return f(__nv_bfloat16{});
    case DType::f32:
      break;
  }
  return f(float{});
}

template <class T>
__device__ __forceinline__ T warp_sum(T value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Sum over the block, returned to every thread. The order is fixed (warp trees, then warps in
// order), so results are reproducible run to run. `scratch` holds kThreads / 32 values.
template <int kThreads, class T>
__device__ __forceinline__ T block_sum(T value, T* scratch) {
  static_assert(kThreads % kWarp == 0 && kThreads <= 1024, "whole warps only");
  value = warp_sum(value);
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  if (threadIdx.x % kWarp == 0) scratch[warp] = value;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < kThreads / kWarp; ++w) total += scratch[w];
  __syncthreads();  // scratch may be reused right after
  return total;
}

// float x, y with no contraction into an FMA, so results match the CPU twin bit for bit.
__device__ __forceinline__ float mul_rn(float x, float y) { return __fmul_rn(x, y); }
__device__ __forceinline__ float add_rn(float x, float y) { return __fadd_rn(x, y); }
__device__ __forceinline__ float sub_rn(float x, float y) { return __fsub_rn(x, y); }

}  // namespace esamp::cuda::detail
