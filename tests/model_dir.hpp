// The test models: files under ESAMP_MODEL_DIR, failing (never skipping) the test when it is
// unusable.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

namespace esamp::test {

inline std::string model_file(const std::string& name) {
  const char* dir = std::getenv("ESAMP_MODEL_DIR");
  if (dir == nullptr || *dir == '\0')
    FAIL("ESAMP_MODEL_DIR is not set: point it at the folder holding " << name
                                                                       << " (../shared/models)");
  const std::string path = std::string(dir) + "/" + name;
  if (!std::ifstream(path))
    FAIL(path << " cannot be opened: ESAMP_MODEL_DIR must name the folder holding " << name);
  return path;
}

}  // namespace esamp::test
