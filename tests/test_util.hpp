// Helpers shared by the core tests: seeded random matrices and views over them.
#pragma once

#include <cstdlib>
#include <random>
#include <string>

#include "esamp/cpu/distiller_math.hpp"
#include "esamp/tensor.hpp"

namespace esamp::test {

using Mat = cpu::Matrix<float>;

// Entries uniform in [-scale, scale), never all zeros.
inline Mat random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint32_t seed,
                         float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  Mat m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(gen);
  return m;
}

inline ConstMatrixView cview(const Mat& m) { return {m.data(), m.rows(), m.cols()}; }
inline MatrixView view(Mat& m) { return {m.data(), m.rows(), m.cols()}; }

// True when both hold the same bits (NaN payloads included).
inline bool bit_equal(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}
inline bool bit_equal(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         bit_equal(a.data(), b.data(), static_cast<std::size_t>(a.size()));
}

// A scratch file path under $TMPDIR (or /tmp), named for the test that writes it.
inline std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/esamp_test_" + name;
}

}  // namespace esamp::test
