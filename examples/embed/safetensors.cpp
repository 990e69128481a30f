#include "safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <esamp/error.hpp>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

namespace esamp::embed {
namespace {

std::size_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("{}: cannot be opened", path);
  const std::streamoff size = in.tellg();
  if (size < 0) fail("{}: cannot tell its size", path);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) fail("{}: read failed", path);
  return parse(path, std::move(bytes));
}

SafetensorsFile SafetensorsFile::parse(std::string file_name, std::vector<std::uint8_t> bytes) {
  using nlohmann::json;
  SafetensorsFile f;
  f.file_name_ = std::move(file_name);
  const std::string& name = f.file_name_;
  if (bytes.size() < 8)
    fail("{}: {} bytes, shorter than the 8-byte header length", name, bytes.size());
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = (header_size << 8) | bytes[static_cast<std::size_t>(i)];
  if (header_size > bytes.size() - 8)
    fail("{}: header length {} runs past the end of the {}-byte file", name, header_size,
         bytes.size());
  f.data_start_ = 8 + static_cast<std::size_t>(header_size);
  const std::size_t data_size = bytes.size() - f.data_start_;

  json header;
  try {
    header =
        json::parse(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(f.data_start_));
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", name, e.what());
  }
  if (!header.is_object())
    fail("{}: header is a JSON {}, expected an object", name, header.type_name());

  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (const auto& [tensor_name, info] : header.items()) {
    if (tensor_name == "__metadata__") continue;
    const std::string where = fmt::format("{}: tensor \"{}\"", name, tensor_name);
    if (!info.is_object()) fail("{}: expected an object", where);
    SafetensorsTensor t;
    const auto dtype = info.find("dtype");
    if (dtype == info.end() || !dtype->is_string())
      fail("{}: dtype missing or not a string", where);
    t.dtype = dtype->get<std::string>();
    const std::size_t element = dtype_bytes(t.dtype);
    if (element == 0) fail("{}: unknown dtype \"{}\"", where, t.dtype);
    const auto shape = info.find("shape");
    if (shape == info.end() || !shape->is_array()) fail("{}: shape missing or not an array", where);
    std::uint64_t count = 1;
    for (const json& dim : *shape) {
      if (!dim.is_number_integer() || dim.get<std::int64_t>() < 0)
        fail("{}: shape {}: dimensions must be non-negative integers", where, shape->dump());
      const auto d = dim.get<std::int64_t>();
      if (d != 0 &&
          count > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d))
        fail("{}: shape {} overflows", where, shape->dump());
      count *= static_cast<std::uint64_t>(d);
      t.shape.push_back(d);
    }
    const auto offsets = info.find("data_offsets");
    if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      fail("{}: data_offsets must be two non-negative integers", where);
    const auto begin = (*offsets)[0].get<std::uint64_t>(), end = (*offsets)[1].get<std::uint64_t>();
    if (begin > end || end > data_size)
      fail("{}: data_offsets [{}, {}] outside the {}-byte data section", where, begin, end,
           data_size);
    if (count > std::numeric_limits<std::uint64_t>::max() / element ||
        end - begin != count * element)
      fail("{}: data_offsets [{}, {}] hold {} bytes, but {} of shape {} need {}", where, begin, end,
           end - begin, t.dtype, shape_text(t.shape), count * element);
    t.begin = static_cast<std::size_t>(begin);
    t.end = static_cast<std::size_t>(end);
    ranges.emplace_back(t.begin, t.end);
    f.tensors_.emplace(tensor_name, std::move(t));
  }
  // The format's rule: the tensors tile the data section exactly, without holes or overlaps.
  std::sort(ranges.begin(), ranges.end());
  std::size_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin != covered)
      fail("{}: tensor data at byte {} where {} was expected (a hole or an overlap)", name, begin,
           covered);
    covered = end;
  }
  if (covered != data_size)
    fail("{}: tensors cover {} bytes of the {}-byte data section", name, covered, data_size);
  f.bytes_ = std::move(bytes);
  return f;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name,
                                             const std::vector<std::int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor \"{}\"", file_name_, name);
  const SafetensorsTensor& t = it->second;
  if (t.dtype != "F32") fail("{}: tensor \"{}\" is {}, expected F32", file_name_, name, t.dtype);
  if (t.shape != shape)
    fail("{}: tensor \"{}\" has shape {}, expected {}", file_name_, name, shape_text(t.shape),
         shape_text(shape));
  std::vector<float> out((t.end - t.begin) / sizeof(float));
  // memcpy to the null data() of an empty vector is undefined, even for 0 bytes.
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + data_start_ + t.begin, t.end - t.begin);
  return out;
}

}  // namespace esamp::embed
