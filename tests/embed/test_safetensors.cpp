#include <catch2/catch.hpp>
#include <cstring>
#include <esamp/error.hpp>
#include <string>
#include <vector>

#include "embed/safetensors.hpp"

using Catch::Matchers::Contains;
using esamp::embed::SafetensorsFile;

namespace {

// A safetensors file: the 8-byte little-endian header length, `header`, then `data_bytes` bytes
// holding the floats 0, 1, 2, ...
std::vector<std::uint8_t> file_bytes(const std::string& header, std::size_t data_bytes) {
  std::vector<std::uint8_t> bytes(8 + header.size() + data_bytes);
  for (int i = 0; i < 8; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(header.size() >> (8 * i));
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  for (std::size_t i = 0; i * 4 + 4 <= data_bytes; ++i) {
    const auto value = static_cast<float>(i);
    std::memcpy(bytes.data() + 8 + header.size() + 4 * i, &value, 4);
  }
  return bytes;
}

const std::string kTwoTensors = R"({"__metadata__":{"format":"pt"},)"
                                R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})";

}  // namespace

TEST_CASE("The safetensors reader returns each tensor's floats in file order") {
  const SafetensorsFile f = SafetensorsFile::parse("t.safetensors", file_bytes(kTwoTensors, 32));
  REQUIRE(f.tensors().size() == 2);
  REQUIRE(f.read_f32("a", {2, 3}) == std::vector<float>{0, 1, 2, 3, 4, 5});
  REQUIRE(f.read_f32("b", {2}) == std::vector<float>{6, 7});
}

TEST_CASE("An empty F32 tensor reads as no elements") {
  // Found by the safetensors fuzzer: read_f32 passed the empty vector's null data() to memcpy
  // (UBSan: null pointer passed as argument 1) on these tensors, its seed scalar_and_empty.
  const SafetensorsFile f = SafetensorsFile::parse(
      "t.safetensors", file_bytes(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                                  R"("e":{"dtype":"F32","shape":[0,4],"data_offsets":[4,4]},)"
                                  R"("u":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}})",
                                  7));
  REQUIRE(f.read_f32("e", {0, 4}).empty());
  REQUIRE(f.read_f32("s", {}) == std::vector<float>{0});
}

TEST_CASE("A truncated safetensors file is an error naming the problem") {
  SECTION("shorter than the header length") {
    REQUIRE_THROWS_WITH(SafetensorsFile::parse("t", {1, 2, 3}),
                        Contains("shorter than the 8-byte header length"));
  }
  SECTION("header cut short") {
    std::vector<std::uint8_t> bytes = file_bytes(kTwoTensors, 32);
    bytes.resize(8 + kTwoTensors.size() / 2);
    REQUIRE_THROWS_WITH(SafetensorsFile::parse("t", bytes), Contains("runs past the end"));
  }
  SECTION("data cut short") {
    REQUIRE_THROWS_WITH(
        SafetensorsFile::parse("t", file_bytes(kTwoTensors, 28)),
        Contains("tensor \"b\": data_offsets [24, 32] outside the 28-byte data section"));
  }
}

TEST_CASE("A corrupt safetensors header is an error naming the problem") {
  const auto parse = [](const std::string& header, std::size_t data) {
    return SafetensorsFile::parse("t", file_bytes(header, data));
  };
  REQUIRE_THROWS_WITH(parse("{\"a\": nonsense", 0), Contains("header is not valid JSON"));
  REQUIRE_THROWS_WITH(parse("[1, 2]", 0), Contains("header is a JSON array, expected an object"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4),
                      Contains("dtype missing"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", 4),
                      Contains("unknown dtype \"Q7\""));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                      Contains("dimensions must be non-negative integers"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                      Contains("data_offsets must be two non-negative integers"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                      Contains("hold 8 bytes, but F32 of shape [3] need 12"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                      Contains("a hole or an overlap"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            8),
                      Contains("a hole or an overlap"));
  REQUIRE_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
                      Contains("tensors cover 4 bytes of the 8-byte data section"));
}

TEST_CASE("A missing, mis-typed or mis-shaped tensor is an error naming it") {
  const SafetensorsFile f = SafetensorsFile::parse("t.safetensors", file_bytes(kTwoTensors, 32));
  REQUIRE_THROWS_WITH(f.read_f32("c", {2}), Contains("t.safetensors: no tensor \"c\""));
  REQUIRE_THROWS_WITH(f.read_f32("a", {3, 2}),
                      Contains("tensor \"a\" has shape [2, 3], expected [3, 2]"));
  REQUIRE_THROWS_WITH(f.read_f32("b", {2, 1}),
                      Contains("tensor \"b\" has shape [2], expected [2, 1]"));
  const SafetensorsFile ints = SafetensorsFile::parse(
      "i.safetensors", file_bytes(R"({"n":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8));
  REQUIRE_THROWS_WITH(ints.read_f32("n", {1}), Contains("tensor \"n\" is I64, expected F32"));
}

TEST_CASE("Opening a safetensors file that does not exist is an error naming it") {
  REQUIRE_THROWS_AS(SafetensorsFile::open("/nonexistent/model.safetensors"), esamp::Error);
  REQUIRE_THROWS_WITH(SafetensorsFile::open("/nonexistent/model.safetensors"),
                      Contains("/nonexistent/model.safetensors: cannot be opened"));
}
