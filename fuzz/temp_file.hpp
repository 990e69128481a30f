// A file of this fuzzer process in the temporary directory, for readers that take a path. The name
// holds the process id, so that parallel fuzzing jobs do not share one.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace esamp::fuzz {

class TempFile {
 public:
  explicit TempFile(const std::string& name)
      : path_((std::filesystem::temp_directory_path() /
               ("esamp_fuzz_" + std::to_string(::getpid()) + "_" + name))
                  .string()) {}
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

  // Replaces the file's contents with `size` bytes; aborts when the disk refuses (not a finding).
  void write(const std::uint8_t* data, std::size_t size) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
      std::abort();
    }
  }

 private:
  std::string path_;
};

}  // namespace esamp::fuzz
