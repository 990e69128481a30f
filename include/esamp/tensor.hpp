// Non-owning matrix views of engine buffers (row-major, any row stride, f32/f16/bf16, cpu/cuda)
// and the scalar conversions between those dtypes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "esamp/error.hpp"

namespace esamp {

enum class DType : std::uint8_t { f32, f16, bf16 };
enum class Device : std::uint8_t { cpu, cuda };

constexpr std::string_view name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
  }
  return "?";
}
constexpr std::string_view name(Device d) {
  switch (d) {
    case Device::cpu:
      return "cpu";
    case Device::cuda:
      return "cuda";
  }
  return "?";
}
// Bytes per element.
constexpr std::size_t size_of(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
  }
  return 0;
}

namespace detail {
template <class To, class From>
To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}
}  // namespace detail

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return detail::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return detail::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Round to nearest, ties to even; overflow gives infinity, NaN stays NaN.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t bits = detail::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (magnitude < 0x38800000u) {
    // Below 2^-14 the result is subnormal: adding 0.5f lets the FPU round at the 2^-24 position.
    const float shifted = detail::bit_cast<float>(magnitude) + 0.5f;
    return sign |
           static_cast<std::uint16_t>(detail::bit_cast<std::uint32_t>(shifted) - 0x3f000000u);
  }
  const std::uint32_t odd = (magnitude >> 13) & 1u;
  magnitude += 0xc8000fffu + odd;  // re-bias the exponent by -112 and round the 13 dropped bits
  return sign | static_cast<std::uint16_t>(magnitude >> 13);
}

inline float bfloat16_to_float(std::uint16_t b) {
  return detail::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// Round to nearest, ties to even; NaN stays NaN.
inline std::uint16_t float_to_bfloat16(float f) {
  std::uint32_t bits = detail::bit_cast<std::uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

// A row-major [rows, cols] matrix in someone else's memory; `stride` is the distance between rows
// in elements (>= cols).
struct ConstMatrixView {
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t stride = 0;
  DType dtype = DType::f32;
  Device device = Device::cpu;

  ConstMatrixView() = default;
  ConstMatrixView(const void* ptr, std::int64_t n_rows, std::int64_t n_cols,
                  std::int64_t row_stride, DType type, Device on = Device::cpu)
      : data(ptr), rows(n_rows), cols(n_cols), stride(row_stride), dtype(type), device(on) {}
  ConstMatrixView(const float* ptr, std::int64_t n_rows, std::int64_t n_cols)
      : ConstMatrixView(ptr, n_rows, n_cols, n_cols, DType::f32) {}

  const std::byte* row_bytes(std::int64_t r) const {
    return static_cast<const std::byte*>(data) +
           r * stride * static_cast<std::int64_t>(size_of(dtype));
  }
  float at(std::int64_t r, std::int64_t c) const {
    const std::byte* p = row_bytes(r) + c * static_cast<std::int64_t>(size_of(dtype));
    switch (dtype) {
      case DType::f32:
        return detail::bit_cast<float>(load<std::uint32_t>(p));
      case DType::f16:
        return half_to_float(load<std::uint16_t>(p));
      case DType::bf16:
        return bfloat16_to_float(load<std::uint16_t>(p));
    }
    return 0.0f;
  }

 private:
  template <class T>
  static T load(const std::byte* p) {
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
  }
};

struct MatrixView {
  void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t stride = 0;
  DType dtype = DType::f32;
  Device device = Device::cpu;

  MatrixView() = default;
  MatrixView(void* ptr, std::int64_t n_rows, std::int64_t n_cols, std::int64_t row_stride,
             DType type, Device on = Device::cpu)
      : data(ptr), rows(n_rows), cols(n_cols), stride(row_stride), dtype(type), device(on) {}
  MatrixView(float* ptr, std::int64_t n_rows, std::int64_t n_cols)
      : MatrixView(ptr, n_rows, n_cols, n_cols, DType::f32) {}

  operator ConstMatrixView() const { return {data, rows, cols, stride, dtype, device}; }

  float at(std::int64_t r, std::int64_t c) const { return ConstMatrixView(*this).at(r, c); }
  void set(std::int64_t r, std::int64_t c, float value) const {
    std::byte* p = static_cast<std::byte*>(data) +
                   (r * stride + c) * static_cast<std::int64_t>(size_of(dtype));
    switch (dtype) {
      case DType::f32:
        std::memcpy(p, &value, 4);
        break;
      case DType::f16:
        store(p, float_to_half(value));
        break;
      case DType::bf16:
        store(p, float_to_bfloat16(value));
        break;
    }
  }

 private:
  static void store(std::byte* p, std::uint16_t value) { std::memcpy(p, &value, 2); }
};

// Throws unless `view` is a well-formed [any rows, cols] matrix on `device`; `what` names it in the
// message.
inline void check_view(const ConstMatrixView& view, std::string_view what, std::int64_t cols,
                       Device device) {
  if (view.cols != cols) fail("{}: has {} columns, expected {}", what, view.cols, cols);
  if (view.rows < 0) fail("{}: rows = {}, must be >= 0", what, view.rows);
  if (view.stride < view.cols)
    fail("{}: row stride {} is below its {} columns", what, view.stride, view.cols);
  if (view.rows > 0 && view.data == nullptr) fail("{}: data is null for {} rows", what, view.rows);
  if (view.device != device)
    fail("{}: is on device {}, expected {}", what, name(view.device), name(device));
}

}  // namespace esamp
