// Helpers of the generation tests: model files and reference outputs, running esamp-generate as a
// child process, and a small JSON reader to check its --json output.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../model_dir.hpp"
#include "../program_run.hpp"

namespace esamp::generation::test {

using esamp::test::model_file;
using esamp::test::test_data_file;

using esamp::test::Capture;
using esamp::test::file_text;
using esamp::test::ProgramRun;

// Runs esamp-generate with `arguments` (each passed as one word).
inline ProgramRun run_esamp_generate(const std::vector<std::string>& arguments, Capture capture) {
  return esamp::test::run_program(ESAMP_GENERATE_PROGRAM, arguments, capture);
}

// A parsed JSON value: what the tests need to check keys, strings, numbers and arrays.
struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  // The member `key` of an object; throws std::runtime_error (failing the test) without one.
  const JsonValue& operator[](const std::string& key) const;
};

// Parses a complete JSON text (RFC 8259); throws std::runtime_error at the first byte that does
// not fit.
JsonValue parse_json(const std::string& text);

}  // namespace esamp::generation::test
