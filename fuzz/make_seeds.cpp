// Writes the seed corpora of the library's fuzzers into <folder>/bank and <folder>/capi (the
// committed ones are seeds/): banks of several shapes saved after a little training, each followed
// by its shape byte (bank_shape.hpp), and seeded random call programs for the C API.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bank_shape.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"

namespace {}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-folder>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  try {
    std::filesystem::create_directories(root / "bank");
    std::filesystem::create_directories(root / "capi");
    // AdamW and SGD, with and without output norm, one and two slots, several sizes; 0xc5 asks
    // for the checksum repair.
    for (const std::uint8_t shape : {0x00, 0x07, 0x1b, 0x2e, 0x43, 0x7f, 0xc5}) {
      esamp::LatentDistiller bank(esamp::fuzz::bank_config(shape));
      esamp::fuzz::train(bank, 3);
      const std::string path = (root / "bank" / "tmp").string();
      bank.save(path);
      std::vector<std::uint8_t> bytes = esamp::detail::read_file(path);
      std::filesystem::remove(path);
      bytes.push_back(shape);
      char name[16];
      std::snprintf(name, sizeof name, "shape_%02x", shape);
      esamp::detail::write_file_atomically((root / "bank" / name).string(), bytes);
    }
    std::mt19937 random(12);
    for (const std::size_t size : {64, 256, 1024, 4096}) {
      std::vector<std::uint8_t> program(size);
      for (auto& byte : program) byte = static_cast<std::uint8_t>(random());
      esamp::detail::write_file_atomically(
          (root / "capi" / ("random_" + std::to_string(size))).string(), program);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
