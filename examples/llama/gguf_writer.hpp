// Writes GGUF v3 bytes: any metadata and F32/F16/BF16 tensors, and whole llama models in the layout
// load_gguf reads. Tests and the fuzzer's seed corpus build their files with it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "esamp/span.hpp"
#include "llama/gguf.hpp"
#include "llama/model.hpp"

namespace esamp::llama {

class GgufWriter {
 public:
  // Keys are written in the order added; the value's variant must match its type.
  void add_metadata(std::string key, GgufValue value);
  // `values` (in file order) are converted to `type`; ggml_dims[0] is the contiguous dimension.
  void add_tensor(std::string name, std::vector<std::uint64_t> ggml_dims, GgmlType type,
                  Span<const float> values);
  // The file, its tensors aligned to general.alignment when that key was added (else 32).
  std::vector<std::uint8_t> bytes() const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ggml_dims;
    GgmlType type;
    std::vector<std::uint8_t> data;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

// `model` as a llama GGUF with its tensors stored as `tensor_type`.
std::vector<std::uint8_t> to_gguf(const Model& model, GgmlType tensor_type);

}  // namespace esamp::llama
