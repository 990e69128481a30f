// The overhead benchmark's host-model kernels (decode_kernels.cuh): memory-bound, 8-byte or
// 16-byte accesses, fp32 arithmetic.
#include <cuda_bf16.h>

#include <cmath>

#include "decode_kernels.cuh"

namespace esamp::bench {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// N consecutive bf16 (N = 4: one uint2, N = 8: one uint4) to and from float.
template <int N, class Raw>
__device__ void unpack(const Raw& raw, float (&f)[N]) {
  static_assert(sizeof(Raw) == 2 * N);
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) {
    const float2 p = __bfloat1622float2(pairs[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

__device__ uint4 pack8(const float (&f)[8]) {
  uint4 raw;
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) pairs[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return raw;
}

__global__ void fill_uniform_kernel(bf16_bits* out, std::size_t n, std::uint64_t seed, float center,
                                    float half_width) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint64_t z = seed ^ ((i + 1) * 0x9e3779b97f4a7c15ull);  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * 0x1.0p-23f - 1.0f;  // [-1, 1)
    const __nv_bfloat16 v = __float2bfloat16_rn(center + half_width * u);
    out[i] = *reinterpret_cast<const bf16_bits*>(&v);
  }
}

constexpr int kNormThreads = 256;
constexpr int kNormVectors = kHidden / 8 / kNormThreads;  // uint4s per thread
static_assert(kHidden % (8 * kNormThreads) == 0);

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const bf16_bits* __restrict__ x, const bf16_bits* __restrict__ gamma,
                    bf16_bits* __restrict__ out) {
  const std::size_t row = blockIdx.x * static_cast<std::size_t>(kHidden);
  const auto* in = reinterpret_cast<const uint4*>(x + row);
  float v[kNormVectors][8];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kNormVectors; ++k) {
    unpack(in[threadIdx.x + k * kNormThreads], v[k]);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum += v[k][i] * v[k][i];
  }
  __shared__ float warp_sums[kNormThreads / 32];
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kNormThreads / 32; ++w) sum += warp_sums[w];
  const float scale = rsqrtf(sum / kHidden + 1e-5f);
  const auto* g = reinterpret_cast<const uint4*>(gamma);
  auto* o = reinterpret_cast<uint4*>(out + row);
#pragma unroll
  for (int k = 0; k < kNormVectors; ++k) {
    const int c = threadIdx.x + k * kNormThreads;
    float w[8];
    unpack(g[c], w);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[k][i] *= scale * w[i];
    o[c] = pack8(v[k]);
  }
}

__global__ void swiglu_kernel(const bf16_bits* __restrict__ gate_up, bf16_bits* __restrict__ out,
                              std::size_t vectors) {
  constexpr int kRowVectors = kFfn / 8;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < vectors;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t r = i / kRowVectors, c = i % kRowVectors;
    const auto* row = reinterpret_cast<const uint4*>(gate_up + r * 2 * kFfn);
    float g[8], u[8];
    unpack(row[c], g);
    unpack(row[kRowVectors + c], u);
#pragma unroll
    for (int k = 0; k < 8; ++k) g[k] = g[k] / (1.0f + __expf(-g[k])) * u[k];
    reinterpret_cast<uint4*>(out)[i] = pack8(g);
  }
}

// Decode attention, pass 1: block (row * kKvHeads + kv head, split) takes the kv head's query
// heads over its split of the context. Each lane holds 4 of the 128 dimensions, so a warp reads a
// token's K or V row (256 bytes) in one coalesced load; each warp has kAttnUnroll tokens' loads
// in flight. Writes per (row, query head, split) the scores' max, the sum of exp(score - max) and
// the V rows summed with those weights; pass 2 merges the splits.
constexpr int kAttnWarps = 8, kAttnThreads = 32 * kAttnWarps, kAttnUnroll = 4;
constexpr int kGroupHeads = kHeads / kKvHeads;  // query heads per KV head
constexpr int kPartialFloats = 2 + kHeadDim;    // max, sum, acc[kHeadDim]
static_assert(kHeadDim == 4 * 32, "a lane holds 4 dimensions of a head");
static_assert(kContext % (kMaxAttentionSplits * kAttnWarps * kAttnUnroll) == 0);

__global__ void __launch_bounds__(kAttnThreads)
    attention_partial_kernel(const bf16_bits* __restrict__ qkv, bf16_bits* __restrict__ k_cache,
                             bf16_bits* __restrict__ v_cache, float* __restrict__ partials) {
  const int row = blockIdx.x / kKvHeads, kv_head = blockIdx.x % kKvHeads;
  const int splits = static_cast<int>(gridDim.y), split = static_cast<int>(blockIdx.y);
  const int chunk = kContext / splits, begin = split * chunk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bf16_bits* token = qkv + static_cast<std::size_t>(row) * kQkv;
  const std::size_t cache_offset =
      (static_cast<std::size_t>(row) * kKvHeads + kv_head) * kContext * kHeadDim;
  bf16_bits* keys = k_cache + cache_offset;
  bf16_bits* values = v_cache + cache_offset;
  // The new token takes the last position; only this split reads it, after the barrier.
  if (begin + chunk == kContext && threadIdx.x < kHeadDim) {
    const std::size_t last = static_cast<std::size_t>(kContext - 1) * kHeadDim + threadIdx.x;
    keys[last] = token[kHeads * kHeadDim + kv_head * kHeadDim + threadIdx.x];
    values[last] = token[(kHeads + kKvHeads) * kHeadDim + kv_head * kHeadDim + threadIdx.x];
  }
  float q[kGroupHeads][4];
  const float scale = rsqrtf(static_cast<float>(kHeadDim));
#pragma unroll
  for (int h = 0; h < kGroupHeads; ++h) {
    unpack(
        *reinterpret_cast<const uint2*>(token + (kv_head * kGroupHeads + h) * kHeadDim + 4 * lane),
        q[h]);
#pragma unroll
    for (int i = 0; i < 4; ++i) q[h][i] *= scale;
  }
  __shared__ float weights[kGroupHeads][kContext];  // scores, then exp(score - max)
  __syncthreads();

  for (int t0 = warp * kAttnUnroll; t0 < chunk; t0 += kAttnWarps * kAttnUnroll) {
    uint2 raw[kAttnUnroll];
#pragma unroll
    for (int u = 0; u < kAttnUnroll; ++u)
      raw[u] = *reinterpret_cast<const uint2*>(
          keys + static_cast<std::size_t>(begin + t0 + u) * kHeadDim + 4 * lane);
#pragma unroll
    for (int u = 0; u < kAttnUnroll; ++u) {
      float k[4];
      unpack(raw[u], k);
#pragma unroll
      for (int h = 0; h < kGroupHeads; ++h) {
        const float dot =
            warp_sum(q[h][0] * k[0] + q[h][1] * k[1] + q[h][2] * k[2] + q[h][3] * k[3]);
        if (lane == 0) weights[h][t0 + u] = dot;
      }
    }
  }
  __syncthreads();

  // Warp h < kGroupHeads: query head h's max and sum; the scores become their weights.
  float* out = partials + (static_cast<std::size_t>(row) * kHeads + kv_head * kGroupHeads) *
                              splits * kPartialFloats;
  if (warp < kGroupHeads) {
    float m = -INFINITY;
    for (int t = lane; t < chunk; t += 32) m = fmaxf(m, weights[warp][t]);
    m = warp_max(m);
    float sum = 0.0f;
    for (int t = lane; t < chunk; t += 32) {
      const float p = __expf(weights[warp][t] - m);
      weights[warp][t] = p;
      sum += p;
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      float* head = out + (static_cast<std::size_t>(warp) * splits + split) * kPartialFloats;
      head[0] = m;
      head[1] = sum;
    }
  }
  __syncthreads();

  float acc[kGroupHeads][4] = {};
  for (int t0 = warp * kAttnUnroll; t0 < chunk; t0 += kAttnWarps * kAttnUnroll) {
    uint2 raw[kAttnUnroll];
#pragma unroll
    for (int u = 0; u < kAttnUnroll; ++u)
      raw[u] = *reinterpret_cast<const uint2*>(
          values + static_cast<std::size_t>(begin + t0 + u) * kHeadDim + 4 * lane);
#pragma unroll
    for (int u = 0; u < kAttnUnroll; ++u) {
      float v[4];
      unpack(raw[u], v);
#pragma unroll
      for (int h = 0; h < kGroupHeads; ++h) {
        const float p = weights[h][t0 + u];
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[h][i] += p * v[i];
      }
    }
  }
  __shared__ float warp_acc[kAttnWarps][kGroupHeads][kHeadDim];
#pragma unroll
  for (int h = 0; h < kGroupHeads; ++h)
#pragma unroll
    for (int i = 0; i < 4; ++i) warp_acc[warp][h][4 * lane + i] = acc[h][i];
  __syncthreads();
  for (int e = threadIdx.x; e < kGroupHeads * kHeadDim; e += kAttnThreads) {
    const int h = e / kHeadDim, d = e % kHeadDim;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) sum += warp_acc[w][h][d];
    out[(static_cast<std::size_t>(h) * splits + split) * kPartialFloats + 2 + d] = sum;
  }
}

// Decode attention, pass 2: block (row * kHeads + head), one thread per dimension, merges the
// splits: out = Σ_s e^(m_s - M) acc_s / Σ_s e^(m_s - M) sum_s.
__global__ void __launch_bounds__(kHeadDim)
    attention_merge_kernel(const float* __restrict__ partials, int splits,
                           bf16_bits* __restrict__ out) {
  const float* head = partials + static_cast<std::size_t>(blockIdx.x) * splits * kPartialFloats;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, head[s * kPartialFloats]);
  float total = 0.0f, o = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* p = head + s * kPartialFloats;
    const float w = __expf(p[0] - m);
    total += w * p[1];
    o += w * p[2 + threadIdx.x];
  }
  const __nv_bfloat16 v = __float2bfloat16_rn(o / total);
  out[static_cast<std::size_t>(blockIdx.x) * kHeadDim + threadIdx.x] =
      *reinterpret_cast<const bf16_bits*>(&v);
}

__global__ void count_nonfinite_kernel(const bf16_bits* __restrict__ x, std::size_t n,
                                       unsigned long long* count) {
  unsigned long long c = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    if ((x[i] & 0x7f80u) == 0x7f80u) ++c;  // exponent all ones: inf or NaN
  if (c) atomicAdd(count, c);
}

constexpr int kFlatThreads = 256;

unsigned flat_blocks(std::size_t n) {
  const std::size_t blocks = (n + kFlatThreads - 1) / kFlatThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

cudaError_t FillUniform(bf16_bits* out, std::size_t n, std::uint64_t seed, float center,
                        float half_width, cudaStream_t stream) {
  fill_uniform_kernel<<<flat_blocks(n), kFlatThreads, 0, stream>>>(out, n, seed, center,
                                                                   half_width);
  return cudaGetLastError();
}

cudaError_t RmsNorm(const bf16_bits* x, const bf16_bits* gamma, bf16_bits* out, int rows,
                    cudaStream_t stream) {
  rms_norm_kernel<<<static_cast<unsigned>(rows), kNormThreads, 0, stream>>>(x, gamma, out);
  return cudaGetLastError();
}

cudaError_t Swiglu(const bf16_bits* gate_up, bf16_bits* out, int rows, cudaStream_t stream) {
  const std::size_t vectors = static_cast<std::size_t>(rows) * (kFfn / 8);
  swiglu_kernel<<<flat_blocks(vectors), kFlatThreads, 0, stream>>>(gate_up, out, vectors);
  return cudaGetLastError();
}

std::size_t AttentionPartialFloats(int rows, int splits) {
  return static_cast<std::size_t>(rows) * kHeads * splits * kPartialFloats;
}

cudaError_t DecodeAttention(const bf16_bits* qkv, bf16_bits* k_cache, bf16_bits* v_cache, int rows,
                            int splits, float* partials, bf16_bits* out, cudaStream_t stream) {
  if (splits < 1 || splits > kMaxAttentionSplits || kContext % splits != 0)
    return cudaErrorInvalidValue;
  attention_partial_kernel<<<dim3(static_cast<unsigned>(rows * kKvHeads),
                                  static_cast<unsigned>(splits)),
                             kAttnThreads, 0, stream>>>(qkv, k_cache, v_cache, partials);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  attention_merge_kernel<<<static_cast<unsigned>(rows * kHeads), kHeadDim, 0, stream>>>(
      partials, splits, out);
  return cudaGetLastError();
}

cudaError_t CountNonFinite(const bf16_bits* x, std::size_t n, unsigned long long* count,
                           cudaStream_t stream) {
  count_nonfinite_kernel<<<flat_blocks(n), kFlatThreads, 0, stream>>>(x, n, count);
  return cudaGetLastError();
}

}  // namespace esamp::bench
