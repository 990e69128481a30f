// GGUF v3 parsing; the layout is the one ggml's gguf.cpp writes (little-endian, u64 counts).
#include "llama/gguf.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "esamp/tensor.hpp"

namespace esamp::llama {
namespace {

using detail::ByteReader;

constexpr std::uint32_t kMaxTensorDims = 4;
constexpr int kMaxArrayNesting = 4;  // bounds the recursion a hostile file can ask for

constexpr const char* type_name(GgufType type) {
  switch (type) {
    case GgufType::uint8:
      return "uint8";
    case GgufType::int8:
      return "int8";
    case GgufType::uint16:
      return "uint16";
    case GgufType::int16:
      return "int16";
    case GgufType::uint32:
      return "uint32";
    case GgufType::int32:
      return "int32";
    case GgufType::float32:
      return "float32";
    case GgufType::boolean:
      return "bool";
    case GgufType::string:
      return "string";
    case GgufType::array:
      return "array";
    case GgufType::uint64:
      return "uint64";
    case GgufType::int64:
      return "int64";
    case GgufType::float64:
      return "float64";
  }
  return "?";
}

// The fewest bytes one value of `type` takes in the file; caps array counts before allocating.
std::size_t min_encoded_bytes(GgufType type) {
  switch (type) {
    case GgufType::uint8:
    case GgufType::int8:
    case GgufType::boolean:
      return 1;
    case GgufType::uint16:
    case GgufType::int16:
      return 2;
    case GgufType::uint32:
    case GgufType::int32:
    case GgufType::float32:
      return 4;
    case GgufType::uint64:
    case GgufType::int64:
    case GgufType::float64:
    case GgufType::string:
      return 8;
    case GgufType::array:
      return 12;
  }
  return 1;
}

// Throws unless `count` items of at least `min_item_bytes` each fit in what is left of the file:
// every count read from the file is capped this way before anything is allocated for it.
void check_count(const ByteReader& in, const std::string& file_name, std::uint64_t count,
                 std::size_t min_item_bytes, const char* what) {
  if (count > in.remaining() / min_item_bytes)
    fail("{}: {} = {} cannot fit in the {} bytes left", file_name, what, count, in.remaining());
}

GgufType read_value_type(ByteReader& in, const std::string& file_name, const std::string& key) {
  const auto raw = in.value<std::uint32_t>();
  if (raw > static_cast<std::uint32_t>(GgufType::float64))
    fail("{}: metadata key '{}' has unknown value type {}", file_name, key, raw);
  return static_cast<GgufType>(raw);
}

std::string read_string(ByteReader& in, const std::string& file_name, const char* what) {
  const auto length = in.value<std::uint64_t>();
  check_count(in, file_name, length, 1, what);
  std::string text(static_cast<std::size_t>(length), '\0');
  in.bytes(text.data(), text.size());
  return text;
}

GgufValue read_value(ByteReader& in, const std::string& file_name, GgufType type,
                     const std::string& key, int nesting) {
  GgufValue result;
  result.type = type;
  switch (type) {
    case GgufType::uint8:
      result.value = std::uint64_t{in.value<std::uint8_t>()};
      break;
    case GgufType::uint16:
      result.value = std::uint64_t{in.value<std::uint16_t>()};
      break;
    case GgufType::uint32:
      result.value = std::uint64_t{in.value<std::uint32_t>()};
      break;
    case GgufType::uint64:
      result.value = in.value<std::uint64_t>();
      break;
    case GgufType::int8:
      result.value = std::int64_t{in.value<std::int8_t>()};
      break;
    case GgufType::int16:
      result.value = std::int64_t{in.value<std::int16_t>()};
      break;
    case GgufType::int32:
      result.value = std::int64_t{in.value<std::int32_t>()};
      break;
    case GgufType::int64:
      result.value = in.value<std::int64_t>();
      break;
    case GgufType::float32:
      result.value = double{in.value<float>()};
      break;
    case GgufType::float64:
      result.value = in.value<double>();
      break;
    case GgufType::boolean: {
      const auto raw = in.value<std::uint8_t>();
      if (raw > 1)
        fail("{}: metadata key '{}' has bool byte {}, expected 0 or 1", file_name, key, raw);
      result.value = raw == 1;
      break;
    }
    case GgufType::string:
      result.value = read_string(in, file_name, "a string length");
      break;
    case GgufType::array: {
      if (nesting >= kMaxArrayNesting)
        fail("{}: metadata key '{}' nests arrays deeper than {}", file_name, key, kMaxArrayNesting);
      GgufArray array;
      array.element_type = read_value_type(in, file_name, key);
      const auto count = in.value<std::uint64_t>();
      check_count(in, file_name, count, min_encoded_bytes(array.element_type), "an array length");
      array.elements.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i)
        array.elements.push_back(read_value(in, file_name, array.element_type, key, nesting + 1));
      result.value = std::move(array);
      break;
    }
  }
  return result;
}

GgufTensorInfo read_tensor_info(ByteReader& in, const std::string& file_name,
                                std::size_t file_size) {
  GgufTensorInfo tensor;
  tensor.name = read_string(in, file_name, "a tensor name length");
  const auto dim_count = in.value<std::uint32_t>();
  if (dim_count < 1 || dim_count > kMaxTensorDims)
    fail("{}: tensor '{}' has {} dimensions, expected 1 to {}", file_name, tensor.name, dim_count,
         kMaxTensorDims);
  tensor.element_count = 1;
  for (std::uint32_t d = 0; d < dim_count; ++d) {
    const auto size = in.value<std::uint64_t>();
    // The elements must fit in the file, which also keeps the product from overflowing.
    if (size != 0 && tensor.element_count > file_size / size)
      fail("{}: tensor '{}' has more elements than the {}-byte file can hold", file_name,
           tensor.name, file_size);
    tensor.element_count *= size;
    tensor.dims.push_back(size);
  }
  const auto type = in.value<std::uint32_t>();
  if (type != static_cast<std::uint32_t>(GgmlType::f32) &&
      type != static_cast<std::uint32_t>(GgmlType::f16) &&
      type != static_cast<std::uint32_t>(GgmlType::bf16))
    fail("{}: tensor '{}' has ggml type {}, only F32 (0), F16 (1) and BF16 (30) are supported",
         file_name, tensor.name, type);
  tensor.type = static_cast<GgmlType>(type);
  tensor.byte_count = tensor.element_count * element_bytes(tensor.type);
  tensor.offset = in.value<std::uint64_t>();
  return tensor;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) { return parse(path, detail::read_file(path)); }

GgufFile GgufFile::parse(std::string file_name, std::vector<std::uint8_t> bytes) {
  GgufFile file;
  file.file_name_ = std::move(file_name);
  file.bytes_ = std::move(bytes);
  const std::size_t file_size = file.bytes_.size();
  ByteReader in(file.bytes_, file.file_name_);

  const auto magic = in.value<std::uint32_t>();
  if (magic != kGgufMagic)
    fail("{}: not a GGUF file: magic {:#010x}, expected {:#010x} (\"GGUF\")", file.file_name_,
         magic, kGgufMagic);
  const auto version = in.value<std::uint32_t>();
  if (version != kGgufVersion)
    fail("{}: GGUF version {} is not supported, expected {}", file.file_name_, version,
         kGgufVersion);
  const auto tensor_count = in.value<std::uint64_t>();
  const auto metadata_count = in.value<std::uint64_t>();

  // A key/value takes at least a key length (8), a value type (4) and a one-byte value.
  check_count(in, file.file_name_, metadata_count, 13, "the metadata count");
  for (std::uint64_t i = 0; i < metadata_count; ++i) {
    std::string key = read_string(in, file.file_name_, "a metadata key length");
    const GgufType type = read_value_type(in, file.file_name_, key);
    GgufValue value = read_value(in, file.file_name_, type, key, 0);
    if (!file.metadata_.emplace(key, std::move(value)).second)
      fail("{}: metadata key '{}' appears twice", file.file_name_, key);
  }
  if (file.has("general.alignment")) {
    const std::uint64_t alignment = file.get_uint("general.alignment");
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
        alignment > std::numeric_limits<std::uint32_t>::max())
      fail("{}: general.alignment = {}, expected a power of two that fits in 32 bits",
           file.file_name_, alignment);
    file.alignment_ = static_cast<std::uint32_t>(alignment);
  }

  // A tensor info takes at least a name length (8), a dimension count (4), one dimension (8),
  // a type (4) and an offset (8).
  check_count(in, file.file_name_, tensor_count, 32, "the tensor count");
  file.tensors_.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    file.tensors_.push_back(read_tensor_info(in, file.file_name_, file_size));
    const GgufTensorInfo& tensor = file.tensors_.back();
    if (!file.tensor_index_.emplace(tensor.name, file.tensors_.size() - 1).second)
      fail("{}: tensor '{}' appears twice", file.file_name_, tensor.name);
    if (tensor.offset % file.alignment_ != 0)
      fail("{}: tensor '{}' has offset {}, not a multiple of the alignment {}", file.file_name_,
           tensor.name, tensor.offset, file.alignment_);
  }
  if (tensor_count == 0) return file;

  const std::size_t infos_end = file_size - in.remaining();
  file.data_start_ = (infos_end + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  if (file.data_start_ > file_size)
    fail("{}: the data section would start at offset {}, past the end of the {}-byte file",
         file.file_name_, file.data_start_, file_size);
  const std::uint64_t data_size = file_size - file.data_start_;
  std::vector<std::size_t> by_offset(file.tensors_.size());
  std::iota(by_offset.begin(), by_offset.end(), std::size_t{0});
  std::sort(by_offset.begin(), by_offset.end(), [&](std::size_t a, std::size_t b) {
    return file.tensors_[a].offset < file.tensors_[b].offset;
  });
  for (std::size_t i = 0; i < by_offset.size(); ++i) {
    const GgufTensorInfo& tensor = file.tensors_[by_offset[i]];
    if (tensor.offset > data_size || tensor.byte_count > data_size - tensor.offset)
      fail(
          "{}: tensor '{}' ({} bytes at data offset {}) runs past the end of the {}-byte data "
          "section",
          file.file_name_, tensor.name, tensor.byte_count, tensor.offset, data_size);
    if (i == 0) continue;
    const GgufTensorInfo& previous = file.tensors_[by_offset[i - 1]];
    if (previous.offset + previous.byte_count > tensor.offset)
      fail("{}: tensor '{}' (data offset {}) overlaps tensor '{}' ({} bytes at data offset {})",
           file.file_name_, tensor.name, tensor.offset, previous.name, previous.byte_count,
           previous.offset);
  }
  return file;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const auto found = metadata_.find(key);
  if (found == metadata_.end()) fail("{}: metadata key '{}' is missing", file_name_, key);
  return found->second;
}

std::uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& value = get(key);
  if (const auto* unsigned_value = std::get_if<std::uint64_t>(&value.value)) return *unsigned_value;
  if (const auto* signed_value = std::get_if<std::int64_t>(&value.value)) {
    if (*signed_value < 0)
      fail("{}: metadata key '{}' = {}, expected a non-negative integer", file_name_, key,
           *signed_value);
    return static_cast<std::uint64_t>(*signed_value);
  }
  fail("{}: metadata key '{}' is a {}, expected an integer", file_name_, key,
       type_name(value.type));
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& value = get(key);
  if (const auto* float_value = std::get_if<double>(&value.value)) return *float_value;
  fail("{}: metadata key '{}' is a {}, expected a float32 or float64", file_name_, key,
       type_name(value.type));
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& value = get(key);
  if (const auto* string_value = std::get_if<std::string>(&value.value)) return *string_value;
  fail("{}: metadata key '{}' is a {}, expected a string", file_name_, key, type_name(value.type));
}

const GgufArray& GgufFile::get_array(const std::string& key) const {
  const GgufValue& value = get(key);
  if (const auto* array = std::get_if<GgufArray>(&value.value)) return *array;
  fail("{}: metadata key '{}' is a {}, expected an array", file_name_, key, type_name(value.type));
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufArray& array = get_array(key);
  if (array.element_type != GgufType::string)
    fail("{}: metadata key '{}' is an array of {}, expected an array of string", file_name_, key,
         type_name(array.element_type));
  std::vector<std::string> strings;
  strings.reserve(array.elements.size());
  for (const GgufValue& element : array.elements)
    strings.push_back(std::get<std::string>(element.value));
  return strings;
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufArray& array = get_array(key);
  if (array.element_type != GgufType::float32 && array.element_type != GgufType::float64)
    fail("{}: metadata key '{}' is an array of {}, expected an array of float32 or float64",
         file_name_, key, type_name(array.element_type));
  std::vector<float> floats;
  floats.reserve(array.elements.size());
  for (const GgufValue& element : array.elements)
    floats.push_back(static_cast<float>(std::get<double>(element.value)));
  return floats;
}

std::vector<std::int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufArray& array = get_array(key);
  std::vector<std::int64_t> ints;
  ints.reserve(array.elements.size());
  for (const GgufValue& element : array.elements) {
    if (const auto* signed_value = std::get_if<std::int64_t>(&element.value)) {
      ints.push_back(*signed_value);
    } else if (const auto* unsigned_value = std::get_if<std::uint64_t>(&element.value);
               unsigned_value != nullptr &&
               *unsigned_value <=
                   static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      ints.push_back(static_cast<std::int64_t>(*unsigned_value));
    } else {
      fail("{}: metadata key '{}' is an array of {}, expected an array of integers that fit int64",
           file_name_, key, type_name(array.element_type));
    }
  }
  return ints;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto found = tensor_index_.find(name);
  return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
}

void GgufFile::read_tensor(const GgufTensorInfo& tensor, float* out) const {
  const std::uint8_t* data = bytes_.data() + data_start_ + tensor.offset;
  const std::size_t bytes_per_element = element_bytes(tensor.type);
  for (std::uint64_t i = 0; i < tensor.element_count; ++i) {
    const std::uint8_t* element = data + i * bytes_per_element;
    if (tensor.type == GgmlType::f32) {
      std::memcpy(&out[i], element, 4);
    } else {
      std::uint16_t bits;
      std::memcpy(&bits, element, 2);
      out[i] = tensor.type == GgmlType::f16 ? half_to_float(bits) : bfloat16_to_float(bits);
    }
  }
}

}  // namespace esamp::llama
