// Faults on save: a write that fails part-way (a file size limit, a full device) or a rename that
// fails must leave the old bank file intact at its path, no temporary behind, and a clear error.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "esamp/detail/binary_file.hpp"
#include "esamp/distiller.hpp"
#include "test_util.hpp"

using namespace esamp;
using Catch::Matchers::Contains;
using esamp::test::cview;
using esamp::test::Mat;
using esamp::test::random_matrix;
using esamp::test::temp_path;

namespace {

// Large enough (about 38 KB) that a small file size limit cuts its write short.
DistillerConfig bank_config() {
  DistillerConfig c;
  c.hidden_size = 64;
  c.rank = 16;
  c.slots = 1;
  c.seed = 3;
  return c;
}

// A bank after one update, so that it differs from a fresh one everywhere.
LatentDistiller trained_bank(std::uint32_t seed) {
  LatentDistiller bank(bank_config());
  const Mat x = random_matrix(4, 64, seed), y = random_matrix(4, 64, seed + 1);
  bank.train_step(std::vector<int>(4, 0), cview(x), cview(y));
  return bank;
}

// The old file at `path`, as saved: checked after every failed save.
struct OldFile {
  std::string path;
  std::vector<std::uint8_t> bytes;

  explicit OldFile(const std::string& at) : path(at) {
    trained_bank(10).save(path);
    bytes = detail::read_file(path);
  }
  ~OldFile() { std::filesystem::remove_all(path); }

  void require_intact() const {
    REQUIRE(detail::read_file(path) == bytes);
    REQUIRE_FALSE(std::filesystem::exists(path + ".tmp", ignored));
    LatentDistiller loaded(bank_config());
    loaded.load(path);  // still a whole, loadable bank
    REQUIRE(loaded.updates(0) == 1);
  }
  mutable std::error_code ignored;
};

}  // namespace

TEST_CASE("a save cut short by a file size limit leaves the old bank intact", "[file][fault]") {
  const OldFile old(temp_path("fault_fsize.bank"));
  const LatentDistiller newer = trained_bank(20);
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  // Past the limit write() fails with EFBIG instead of raising SIGXFSZ.
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  try {
    newer.save(old.path);
  } catch (const Error& error) {
    message = error.what();
  }
  REQUIRE(setrlimit(RLIMIT_FSIZE, &saved) == 0);
  std::signal(SIGXFSZ, previous_handler);
  CHECK_THAT(message, Contains(old.path + ".tmp: write failed") && Contains("File too large") &&
                          Contains(old.path + " is unchanged"));
  old.require_intact();
}

TEST_CASE("a save to a full device leaves the old bank intact", "[file][fault]") {
  if (!std::filesystem::exists("/dev/full")) {
    WARN("no /dev/full on this system: the full-device case is not run");
    return;
  }
  const OldFile old(temp_path("fault_full.bank"));
  // The temporary file is a link to /dev/full: every write to it fails with ENOSPC.
  std::filesystem::create_symlink("/dev/full", old.path + ".tmp");
  REQUIRE_THROWS_WITH(trained_bank(20).save(old.path),
                      Contains("write failed") && Contains("No space left on device"));
  old.require_intact();
}

TEST_CASE("a save whose rename fails leaves the old file intact", "[file][fault]") {
  const std::string path = temp_path("fault_rename.bank");
  std::filesystem::remove_all(path);
  // A non-empty directory at the path: rename(2) cannot replace it.
  std::filesystem::create_directories(path + "/kept");
  REQUIRE_THROWS_WITH(trained_bank(20).save(path), Contains("cannot rename"));
  CHECK(std::filesystem::is_directory(path + "/kept"));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(path);
}
