// Helpers for the CUDA tests: device detection (tests tagged [gpu] warn and return early without a
// device), RAII device arrays poisoned with NaN, seeded random data, and the error bounds used to
// compare fp32 GPU results with their CPU twins.
#pragma once

#include <cuda_runtime_api.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "esamp/tensor.hpp"

namespace esamp::test {

inline bool cuda_device_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// First statement of every [gpu] test case: without a device the case passes with a warning.
#define ESAMP_REQUIRE_GPU()                                                                  \
  do {                                                                                       \
    if (!::esamp::test::cuda_device_present()) {                                             \
      WARN(                                                                                  \
          "SKIPPED: no CUDA device (cudaGetDeviceCount reports none); run bench/gpu/run.sh " \
          "on a GPU machine");                                                               \
      return;                                                                                \
    }                                                                                        \
  } while (0)

#define CUDA_REQUIRE(call)                                   \
  do {                                                       \
    const cudaError_t cuda_status_ = (call);                 \
    INFO(#call << ": " << cudaGetErrorString(cuda_status_)); \
    REQUIRE(cuda_status_ == cudaSuccess);                    \
  } while (0)

// A device array of n T, filled with 0xFF bytes (NaN for floats, -1 for ints) on creation so
// that an element a kernel fails to write is caught.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) {
    if (n_ == 0) return;
    CUDA_REQUIRE(cudaMalloc(reinterpret_cast<void**>(&data_), n_ * sizeof(T)));
    poison();
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return data_; }
  std::size_t size() const { return n_; }
  void poison() { CUDA_REQUIRE(cudaMemset(data_, 0xFF, n_ * sizeof(T))); }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == n_);
    CUDA_REQUIRE(cudaMemcpy(data_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    CUDA_REQUIRE(cudaDeviceSynchronize());
    CUDA_REQUIRE(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t n_ = 0;
};

// n values uniform in [-scale, scale), never all zero.
inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// Raw storage of `values` in `dtype` (2 or 4 bytes each), rounded to nearest even.
inline std::vector<std::uint8_t> encode(const std::vector<float>& values, DType dtype) {
  std::vector<std::uint8_t> bytes(values.size() * size_of(dtype));
  MatrixView view(bytes.data(), 1, static_cast<std::int64_t>(values.size()),
                  static_cast<std::int64_t>(values.size()), dtype);
  for (std::size_t i = 0; i < values.size(); ++i)
    view.set(0, static_cast<std::int64_t>(i), values[i]);
  return bytes;
}

// Error bound of an fp32 result whose reduction has length k, computed in a different order than
// its CPU twin: each order's rounding error is ~ sqrt(k) u |terms| (u = 2^-24) for random-sign
// terms; 1e-5 covers that for k <= 64 with margin, scaled by sqrt(k / 64) beyond. Errors are
// measured against |ref| + rms(ref) so that cancellation in a single element does not fail it.
inline double fp32_tolerance(std::int64_t reduction_length) {
  return 1e-5 * std::max(1.0, std::sqrt(static_cast<double>(reduction_length) / 64.0));
}

inline double rms(const float* v, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return n ? std::sqrt(s / static_cast<double>(n)) : 0.0;
}

// Every element of got[0, n) is finite-equal to ref within tol (|got - ref| <= tol (|ref| + rms));
// reports the first failure with its index.
inline void require_close(const float* got, const float* ref, std::size_t n, double tol,
                          const std::string& what) {
  const double scale = rms(ref, n);
  for (std::size_t i = 0; i < n; ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - ref[i]);
    if (!(err <= tol * (std::abs(ref[i]) + scale))) {
      INFO(what << "[" << i << "]: got " << got[i] << ", expected " << ref[i] << " (tolerance "
                << tol << ", rms " << scale << ")");
      REQUIRE(err <= tol * (std::abs(ref[i]) + scale));
    }
  }
}

}  // namespace esamp::test
