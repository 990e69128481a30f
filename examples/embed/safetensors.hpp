// A bounds-checked reader of safetensors files: an 8-byte little-endian header length, a JSON
// header naming each tensor's dtype, shape and byte range, then the data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "export.hpp"

namespace esamp::embed {

struct SafetensorsTensor {
  std::string dtype;                // "F32", "I64", ...
  std::vector<std::int64_t> shape;  // row-major, the last dimension contiguous
  std::size_t begin = 0, end = 0;   // byte range within the data section
};

class ESAMP_EMBED_API SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  // Parses `bytes`; `file_name` names it in error messages. A truncated file, a header that is not
  // a JSON object of well-formed entries, or byte ranges that overlap, leave holes or run past the
  // end are an esamp::Error.
  static SafetensorsFile parse(std::string file_name, std::vector<std::uint8_t> bytes);

  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  // The elements of F32 tensor `name`, which must have exactly `shape`, in file (row-major) order;
  // a missing tensor, another dtype or another shape is an esamp::Error naming the tensor.
  std::vector<float> read_f32(const std::string& name,
                              const std::vector<std::int64_t>& shape) const;

 private:
  std::string file_name_;
  std::vector<std::uint8_t> bytes_;
  std::size_t data_start_ = 0;
  std::map<std::string, SafetensorsTensor> tensors_;
};

}  // namespace esamp::embed
