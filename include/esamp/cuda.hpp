// The CUDA backend's public face (esamp::cuda, built when nvcc is found): a BackendFactory for
// ExploratorySampler whose hooks take views of device memory and enqueue on the engine's stream,
//   esamp::ExploratorySampler sampler(layers, distiller, exploration,
//   esamp::cuda::backend(stream));
// Everything else of the backend lives beside its kernels in cuda/ (DESIGN.md §2, CUDA timeline).
#pragma once

#include <cuda_runtime_api.h>

#include "esamp/backend.hpp"

namespace esamp::cuda {

struct BackendOptions {
  cudaStream_t stream = nullptr;  // the engine's stream: every hook enqueues on it
  int device = -1;                // device ordinal of the bank and its work; -1: the current one
};

BackendFactory backend(const BackendOptions& options);
inline BackendFactory backend(cudaStream_t engine_stream) {
  BackendOptions options;
  options.stream = engine_stream;
  return backend(options);
}

}  // namespace esamp::cuda
