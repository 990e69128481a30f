// The test models, found where every program finds them (examples/models/model_dir.hpp), failing
// (never skipping) the test when one cannot be read; and the reference outputs kept in tests/data.
#pragma once

#include <catch2/catch.hpp>
#include <exception>
#include <string>

#include "models/model_dir.hpp"

namespace esamp::test {

inline std::string model_file(const std::string& name) {
  std::string path;
  try {
    path = models::model_file(name);
  } catch (const std::exception& e) {
    FAIL(e.what());
  }
  return path;
}

inline std::string test_data_file(const std::string& name) {
  return std::string(ESAMP_TEST_DATA_DIR) + "/" + name;
}

}  // namespace esamp::test
