// Bounds-checked little-endian byte buffers, whole-file reads and atomic writes for esamp's files.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "esamp/error.hpp"
#include "esamp/span.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "esamp files are little-endian; this host is not"
#endif

namespace esamp::detail {

template <class T>
T load_le(const std::uint8_t* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// FNV-1a, 64 bits: cheap and enough to catch truncation, flipped bytes and stray edits.
inline std::uint64_t fnv1a64(Span<const std::uint8_t> bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const std::uint8_t b : bytes) hash = (hash ^ b) * 0x100000001b3ull;
  return hash;
}

class ByteWriter {
 public:
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    data_.insert(data_.end(), b, b + n);
  }
  template <class T>
  void value(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&v, sizeof v);
  }
  void floats(const std::vector<float>& v) { bytes(v.data(), v.size() * sizeof(float)); }
  const std::vector<std::uint8_t>& data() const { return data_; }

 private:
  std::vector<std::uint8_t> data_;
};

// Reads from a buffer; running past its end is an Error naming `source`.
class ByteReader {
 public:
  ByteReader(const std::vector<std::uint8_t>& data, std::string source)
      : data_(data), source_(std::move(source)) {}

  std::size_t remaining() const { return data_.size() - pos_; }
  void bytes(void* out, std::size_t n) {
    if (n == 0) return;  // `out` may be null then (an empty vector's data)
    if (n > remaining())
      fail("{}: truncated: {} bytes needed at offset {}, {} left", source_, n, pos_, remaining());
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
  }
  template <class T>
  T value() {
    T v;
    bytes(&v, sizeof v);
    return v;
  }
  void floats(std::vector<float>& out) { bytes(out.data(), out.size() * sizeof(float)); }

 private:
  const std::vector<std::uint8_t>& data_;
  std::string source_;
  std::size_t pos_ = 0;
};

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading", path);
  std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: read error", path);
  return data;
}

// Writes `path + ".tmp"`, flushes it to the device (fsync), renames it over `path`, then flushes
// the folder: readers never see a half-written file, and after a crash or power loss the path
// holds the old file or the whole new one, never a part. On an error the old file is untouched.
inline void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& data) {
  const std::string tmp = path + ".tmp";
  // The system's reason, from errno as the failing call left it.
  const auto reason = [] { return errno ? std::strerror(errno) : "unknown cause"; };
  errno = 0;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot open for writing: {}", tmp, reason());
  const auto abandon = [&](const char* what) {
    const std::string why = reason();
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("{}: {} ({} bytes): {}; {} is unchanged", tmp, what, data.size(), why, path);
  };
  for (std::size_t done = 0; done < data.size();) {
    const ::ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abandon("write failed");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("fsync failed");
  if (::close(fd) != 0) {
    const std::string why = reason();
    ::unlink(tmp.c_str());
    fail("{}: close failed: {}; {} is unchanged", tmp, why, path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = reason();
    ::unlink(tmp.c_str());
    fail("{}: cannot rename {} over it: {}; {} is unchanged", path, tmp, why, path);
  }
  // The rename survives a power loss once the folder is flushed. Best effort: the path already
  // holds the whole new file, so a folder that cannot be flushed is not reported as a failed save
  // (which would tell the caller that the old file is still there).
  const std::size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  ::fsync(dir);
  ::close(dir);
}

}  // namespace esamp::detail
