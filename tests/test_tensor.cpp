#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "esamp/tensor.hpp"

using namespace esamp;
using Catch::Matchers::Contains;

TEST_CASE("f16 conversion is exact on representable values and rounds to nearest even",
          "[tensor]") {
  // Every finite half round-trips exactly.
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    const float f = half_to_float(half);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(half_to_float(float_to_half(f))));
      continue;
    }
    REQUIRE(float_to_half(f) == half);
  }
  // Halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa.
  REQUIRE(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00u);
  REQUIRE(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02u);
  REQUIRE(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01u);
  // Subnormals: 2^-24 is the smallest; half of it ties to zero, a bit more rounds up.
  REQUIRE(float_to_half(std::ldexp(1.0f, -24)) == 0x0001u);
  REQUIRE(float_to_half(std::ldexp(1.0f, -25)) == 0x0000u);
  REQUIRE(float_to_half(std::ldexp(1.5f, -25)) == 0x0001u);
  REQUIRE(float_to_half(-std::ldexp(3.0f, -25)) == 0x8002u);
  // Overflow to infinity from 65520 up; 65519 rounds down to the largest half.
  REQUIRE(float_to_half(65519.0f) == 0x7bffu);
  REQUIRE(float_to_half(65520.0f) == 0x7c00u);
  REQUIRE(float_to_half(-1e9f) == 0xfc00u);
  REQUIRE(float_to_half(std::numeric_limits<float>::infinity()) == 0x7c00u);
}

TEST_CASE("bf16 conversion rounds to nearest even and keeps NaN", "[tensor]") {
  REQUIRE(float_to_bfloat16(1.0f) == 0x3f80u);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (down); 1 + 3·2^-8 ties up.
  REQUIRE(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80u);
  REQUIRE(float_to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82u);
  REQUIRE(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -16)) == 0x3f81u);
  REQUIRE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::nanf("")))));
  for (std::uint32_t b = 0; b < 0x10000u; b += 7) {
    const float f = bfloat16_to_float(static_cast<std::uint16_t>(b));
    if (!std::isnan(f)) REQUIRE(float_to_bfloat16(f) == b);
  }
}

TEST_CASE("views read and write every dtype through their row stride", "[tensor]") {
  const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
  std::vector<std::uint8_t> buffer(3 * 5 * 4, 0xab);  // 3 rows of stride 5
  const MatrixView m(buffer.data(), 3, 4, 5, dtype);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) m.set(r, c, static_cast<float>(r * 4 + c) * 0.25f - 1.0f);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) REQUIRE(m.at(r, c) == static_cast<float>(r * 4 + c) * 0.25f - 1.0f);
  // The padding column between rows is never written.
  const std::size_t pad = 4 * size_of(dtype);
  REQUIRE(buffer[pad] == 0xab);
}

TEST_CASE("check_view names what is wrong with a view", "[tensor]") {
  float data[8] = {};
  const ConstMatrixView good(data, 2, 4);
  REQUIRE_NOTHROW(check_view(good, "x", 4, Device::cpu));
  REQUIRE_THROWS_WITH(check_view(good, "x", 3, Device::cpu),
                      Contains("x: has 4 columns, expected 3"));
  REQUIRE_THROWS_WITH(check_view(ConstMatrixView(data, 2, 4, 3, DType::f32), "x", 4, Device::cpu),
                      Contains("row stride 3 is below its 4 columns"));
  REQUIRE_THROWS_WITH(
      check_view(ConstMatrixView(nullptr, 2, 4, 4, DType::f32), "x", 4, Device::cpu),
      Contains("data is null"));
  REQUIRE_THROWS_WITH(
      check_view(ConstMatrixView(data, 2, 4, 4, DType::f32, Device::cuda), "x", 4, Device::cpu),
      Contains("x: is on device cuda, expected cpu"));
  REQUIRE_THROWS_WITH(check_view(ConstMatrixView(data, -1, 4, 4, DType::f32), "x", 4, Device::cpu),
                      Contains("rows = -1"));
}
