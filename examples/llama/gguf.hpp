// A bounds-checked reader of GGUF v3 files: metadata key/values of every type, tensor infos, and
// F32/F16/BF16 tensor data converted to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace esamp::llama {

inline constexpr std::uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t kGgufVersion = 3;
inline constexpr std::uint32_t kGgufDefaultAlignment = 32;
// How a GGUF's SentencePiece vocabulary spells a space: U+2581.
inline constexpr std::string_view kSentencePieceSpace = "\xE2\x96\x81";

enum class GgufType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

// The ggml tensor element types this reader can convert to float.
enum class GgmlType : std::uint32_t { f32 = 0, f16 = 1, bf16 = 30 };
constexpr std::size_t element_bytes(GgmlType type) { return type == GgmlType::f32 ? 4 : 2; }

struct GgufValue;
struct GgufArray {
  GgufType element_type = GgufType::uint8;
  std::vector<GgufValue> elements;
};

// One metadata value: `type` is the type stored in the file; the integer types are widened to
// uint64/int64 and the float types to double.
struct GgufValue {
  GgufType type = GgufType::uint8;
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, GgufArray> value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;  // ggml order: dims[0] is the contiguous (innermost) one
  GgmlType type = GgmlType::f32;
  std::uint64_t offset = 0;  // from the start of the data section
  std::uint64_t element_count = 0;
  std::uint64_t byte_count = 0;
};

class GgufFile {
 public:
  // Reads and parses the file at `path`.
  static GgufFile open(const std::string& path);
  // Parses `bytes`; `file_name` names it in error messages.
  static GgufFile parse(std::string file_name, std::vector<std::uint8_t> bytes);

  const std::string& file_name() const { return file_name_; }
  std::uint32_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Typed metadata access: a missing key or a value of another type is an esamp::Error naming both.
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  std::uint64_t get_uint(const std::string& key) const;  // any non-negative integer value
  double get_float(const std::string& key) const;        // float32 or float64
  const std::string& get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<std::int64_t> get_int_array(const std::string& key) const;

  // nullptr when there is no tensor called `name`.
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor's elements in file order, converted to float; `out` holds element_count floats.
  void read_tensor(const GgufTensorInfo& tensor, float* out) const;

 private:
  const GgufValue& get(const std::string& key) const;
  const GgufArray& get_array(const std::string& key) const;

  std::string file_name_;
  std::vector<std::uint8_t> bytes_;
  std::uint32_t alignment_ = kGgufDefaultAlignment;
  std::size_t data_start_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;  // name -> position in tensors_
};

}  // namespace esamp::llama
