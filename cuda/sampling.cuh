// Launcher of the GPU token sampler (greedy, temperature, top-k, top-p, min-p), the twin of
// esamp::sample: same candidate set, same inverse-CDF draw, same Philox4x32-10 uniform for the same
// (seed, sequence, position). Kernel: sampling.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "esamp/sampling.hpp"
#include "esamp/tensor.hpp"

namespace esamp::cuda {

// An esamp::Filter as the kernels take it: min-p as log(min_p), computed on the host in double
// exactly as select_candidates does. The filter is the front end's, already validated.
struct FilterParams {
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
  double log_min_p = -std::numeric_limits<double>::infinity();
};

inline FilterParams make_filter_params(const Filter& filter) {
  return {filter.temperature, filter.top_k, filter.top_p,
          filter.min_p > 0.0f ? std::log(static_cast<double>(filter.min_p))
                              : -std::numeric_limits<double>::infinity()};
}

// Row status bits written by SampleTokens and MixLogits (0: fine).
constexpr int kRowHasInvalidLogit = 1;  // a NaN or +inf logit, left out (the CPU throws)
constexpr int kRowHasNoCandidate = 2;   // no finite logit: token -1 / row all -inf

// tokens[i] = a draw from softmax(logits[i] / T) restricted to the filter's candidates, by inverse
// CDF on the Philox uniform of (seeds[i], sequences[i], positions[i]); the argmax when T = 0.
// logits: [rows, vocab], row stride in elements. row_status: [rows].
cudaError_t SampleTokens(const void* logits, DType dtype, std::int64_t stride, int rows, int vocab,
                         const FilterParams& filter, const std::uint64_t* seeds,
                         const std::uint64_t* sequences, const std::uint32_t* positions,
                         std::int32_t* tokens, std::int32_t* row_status,
                         cudaStream_t stream = nullptr);

}  // namespace esamp::cuda
