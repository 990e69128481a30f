// libFuzzer entry point for the sentence encoder's safetensors reader: any bytes must parse or give
// an esamp::Error. In a parsed file the tensors must tile the data section, read_f32 must return
// each F32 tensor's bytes for its own shape, and another dtype or shape must be an esamp::Error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "embed/safetensors.hpp"
#include "esamp/error.hpp"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "safetensors_fuzz: %s\n", what);
  std::abort();
}

template <class Call>
bool refused(Call call) {
  try {
    call();
  } catch (const esamp::Error&) {
    return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using esamp::embed::SafetensorsFile;
  using esamp::embed::SafetensorsTensor;
  std::optional<SafetensorsFile> file;
  try {
    file.emplace(
        SafetensorsFile::parse("fuzz.safetensors", std::vector<std::uint8_t>(data, data + size)));
  } catch (const esamp::Error&) {
    return 0;  // a refused file
  }
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | data[i];
  const std::uint8_t* const section = data + 8 + header_size;
  const std::size_t section_size = size - 8 - static_cast<std::size_t>(header_size);
  std::size_t covered = 0;
  for (const auto& entry : file->tensors()) {
    const std::string& name = entry.first;  // structured bindings cannot be captured in C++17
    const SafetensorsTensor& tensor = entry.second;
    if (tensor.begin > tensor.end || tensor.end > section_size)
      finding("a tensor's bytes lie outside the data section");
    covered += tensor.end - tensor.begin;
    std::vector<std::int64_t> other_shape = tensor.shape;
    other_shape.push_back(1);
    if (!refused([&] { file->read_f32(name, other_shape); }))
      finding("read_f32 accepted another shape");
    if (tensor.dtype != "F32") {
      if (!refused([&] { file->read_f32(name, tensor.shape); }))
        finding("read_f32 accepted a tensor that is not F32");
      continue;
    }
    const std::vector<float> values = file->read_f32(name, tensor.shape);
    const std::size_t bytes = values.size() * sizeof(float);
    if (bytes != tensor.end - tensor.begin ||
        (bytes != 0 && std::memcmp(values.data(), section + tensor.begin, bytes) != 0))
      finding("read_f32 returned other bytes than the tensor's");
  }
  if (covered != section_size) finding("the tensors do not cover the data section exactly");
  return 0;
}
