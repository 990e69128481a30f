// The kernels of the overhead benchmark's host model (overhead_gpu.cpp): a Llama-3-8B decode step
// around cuBLAS's GEMMs. Plain launchers (raw pointers, a stream, cudaError_t back) that know
// nothing of esamp; bf16 buffers are passed as their raw 16-bit storage, as esamp::DType::bf16
// stores them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace esamp::bench {

using bf16_bits = std::uint16_t;

// Llama-3-8B.
constexpr int kHidden = 4096, kLayers = 32, kHeads = 32, kKvHeads = 8, kHeadDim = 128;
constexpr int kFfn = 14336, kVocab = 128256;
constexpr int kQkv = (kHeads + 2 * kKvHeads) * kHeadDim;  // one row of [q | k | v]
constexpr int kContext = 1024;                            // KV cache tokens per row
// The decode attention splits a row's context in at most this many chunks (flash-decoding) so
// that a few rows still fill the chip.
constexpr int kMaxAttentionSplits = 32;

// out[i] = center + half_width * U(-1, 1) for i < n, from a hash of (seed, i).
cudaError_t FillUniform(bf16_bits* out, std::size_t n, std::uint64_t seed, float center,
                        float half_width, cudaStream_t stream);

// out[r] = gamma ⊙ x[r] / rms(x[r]) for r < rows; rows of kHidden, fp32 arithmetic.
cudaError_t RmsNorm(const bf16_bits* x, const bf16_bits* gamma, bf16_bits* out, int rows,
                    cudaStream_t stream);

// out[r] = SiLU(gate) ⊙ up, where gate_up[r] = [gate (kFfn) | up (kFfn)].
cudaError_t Swiglu(const bf16_bits* gate_up, bf16_bits* out, int rows, cudaStream_t stream);

// Decode attention of each row's one new token: writes its K and V (from qkv [rows, kQkv]) at the
// cache's last position, then attends over the row's kContext cached tokens per query head
// (grouped: kHeads / kKvHeads query heads share a KV head) into out [rows, kHeads * kHeadDim].
// The caches are [rows, kKvHeads, kContext, kHeadDim]. `partials` is scratch of
// AttentionPartialFloats(rows, splits) floats; splits divides kContext, <= kMaxAttentionSplits.
// No rotary embedding: an elementwise pass over q and k, too small to matter to the step's time.
std::size_t AttentionPartialFloats(int rows, int splits);
cudaError_t DecodeAttention(const bf16_bits* qkv, bf16_bits* k_cache, bf16_bits* v_cache, int rows,
                            int splits, float* partials, bf16_bits* out, cudaStream_t stream);

// *count += the non-finite values of x[0, n).
cudaError_t CountNonFinite(const bf16_bits* x, std::size_t n, unsigned long long* count,
                           cudaStream_t stream);

}  // namespace esamp::bench
