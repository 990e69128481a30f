// BankState: the whole state of a LatentDistiller bank by value (fp32 parameters, AdamW moments,
// per-slot update counts) and its file format. Every backend produces one when asked (the CUDA
// backend copies its device bank back only then) and accepts one; plain C++, no Eigen.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/core.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "esamp/span.hpp"

namespace esamp {

// The flat per-slot arrays of a bank, in ParameterLayout order.
enum class BankArray { parameters, first_moment, second_moment };

class BankState {
  // (Defined first: the accessors below deduce their types from these.)
  template <class Self>
  static auto& pick(Self& self, BankArray array) {
    switch (array) {
      case BankArray::parameters:
        return self.params_;
      case BankArray::first_moment:
        return self.first_moment_;
      case BankArray::second_moment:
        return self.second_moment_;
    }
    return self.params_;
  }
  template <class Vector>
  auto slot_pointer(Vector& data, int slot) const {
    return data.empty() ? nullptr
                        : data.data() + static_cast<std::size_t>(slot) *
                                            static_cast<std::size_t>(layout().size());
  }

 public:
  // Every slot at the seeded initialisation (one image, copied), moments and counts zero.
  explicit BankState(const DistillerConfig& config)
      : config_(config),
        params_(static_cast<std::size_t>(layout().size() * config.slots)),
        updates_(static_cast<std::size_t>(config.slots), 0) {
    const auto P = static_cast<std::size_t>(layout().size());
    initialize(params_.data(), layout(), config_.seed, config_.init_std);
    for (std::size_t s = 1; s < static_cast<std::size_t>(config_.slots); ++s)
      std::copy_n(params_.data(), P, params_.data() + s * P);
    if (config_.optimizer == Optimizer::adamw) {
      first_moment_.assign(params_.size(), 0.0f);
      second_moment_.assign(params_.size(), 0.0f);
    }
  }

  // A bank from its arrays ([slots, P] each, moments empty for SGD; [slots] update counts), e.g.
  // copied back from a device. Sizes are checked; values are taken as they are.
  BankState(const DistillerConfig& config, std::vector<float> params,
            std::vector<float> first_moment, std::vector<float> second_moment,
            std::vector<std::int64_t> updates)
      : config_(config),
        params_(std::move(params)),
        first_moment_(std::move(first_moment)),
        second_moment_(std::move(second_moment)),
        updates_(std::move(updates)) {
    const auto n = static_cast<std::size_t>(layout().size() * config_.slots);
    const std::size_t moments = config_.optimizer == Optimizer::adamw ? n : 0;
    if (params_.size() != n || first_moment_.size() != moments ||
        second_moment_.size() != moments ||
        updates_.size() != static_cast<std::size_t>(config_.slots))
      fail("BankState: arrays of {}, {}, {} floats and {} counts; expected {}, {}, {} and {}",
           params_.size(), first_moment_.size(), second_moment_.size(), updates_.size(), n, moments,
           moments, config_.slots);
  }

  const DistillerConfig& config() const { return config_; }
  ParameterLayout layout() const { return {config_.hidden_size, config_.rank}; }
  int slots() const { return config_.slots; }
  // Optimizer updates applied to `slot` since its last reset.
  std::int64_t updates(int slot) const { return updates_[checked(slot)]; }

  // One slot's flat parameters or AdamW moments (empty for SGD moments).
  Span<const float> slot_array(BankArray array, int slot) const {
    const std::vector<float>& data = whole(array);
    if (data.empty()) return {};
    return {data.data() + checked(slot) * static_cast<std::size_t>(layout().size()),
            static_cast<std::size_t>(layout().size())};
  }
  // The whole [slots, P] array (empty for SGD moments), and the [slots] update counts.
  const std::vector<float>& whole(BankArray array) const { return pick(*this, array); }
  const std::vector<std::int64_t>& update_counts() const { return updates_; }

  // For a backend's own arithmetic: a slot's arrays (null for SGD moments) and its update count.
  // Unchecked: the caller passes a slot the front end has checked.
  float* slot_data(BankArray array, int slot) { return slot_pointer(pick(*this, array), slot); }
  const float* slot_data(BankArray array, int slot) const {
    return slot_pointer(pick(*this, array), slot);
  }
  std::int64_t& slot_updates(int slot) { return updates_[static_cast<std::size_t>(slot)]; }

  // Re-initialises a slot (seeded) and clears its optimizer state.
  void reset(int slot) {
    initialize(slot_data(BankArray::parameters, checked(slot)), layout(), config_.seed,
               config_.init_std);
    clear_optimizer(slot);
  }
  // Starts a slot from another slot's parameters (a warm start) and clears its optimizer state.
  void reset_from(int slot, int source) {
    const auto P = static_cast<std::size_t>(layout().size());
    std::copy_n(params_.data() + checked(source) * P, P, params_.data() + checked(slot) * P);
    clear_optimizer(slot);
  }

  // Writes the bank (format below) to a temporary file, then renames it over `path`, so an
  // interrupted save never leaves a half-written bank behind.
  void save(const std::string& path) const {
    detail::ByteWriter out;
    out.bytes(kMagic, sizeof kMagic);
    out.value(kFileVersion);
    for (const std::uint32_t field : shape_fields(config_)) out.value(field);
    for (const std::int64_t step : updates_) out.value(step);
    out.floats(params_);
    out.floats(first_moment_);
    out.floats(second_moment_);
    out.value(detail::fnv1a64(out.data()));
    detail::write_file_atomically(path, out.data());
  }

  // Reads a bank written by save() for a bank of `config`'s shape. Any mismatch (not a bank file,
  // other version, other shape or optimizer, truncated, corrupt) is an Error naming the file.
  static BankState read(const std::string& path, const DistillerConfig& config) {
    const std::vector<std::uint8_t> file = detail::read_file(path);
    detail::ByteReader in(file, path);
    char magic[sizeof kMagic];
    in.bytes(magic, sizeof magic);
    if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) fail("{}: not an esamp bank file", path);
    const auto version = in.value<std::uint32_t>();
    if (version != kFileVersion)
      fail("{}: bank file version {}, this build reads version {}", path, version, kFileVersion);
    static constexpr const char* kFieldNames[] = {"hidden_size", "rank", "slots", "output_norm",
                                                  "optimizer"};
    const auto expected = shape_fields(config);
    for (std::size_t f = 0; f < expected.size(); ++f) {
      const auto got = in.value<std::uint32_t>();
      if (got != expected[f])
        fail("{}: the file's bank has {} = {}, this bank has {}", path, kFieldNames[f], got,
             expected[f]);
    }
    const auto slots = static_cast<std::size_t>(config.slots);
    const auto n =
        slots * static_cast<std::size_t>(ParameterLayout{config.hidden_size, config.rank}.size());
    const std::size_t moments = config.optimizer == Optimizer::adamw ? n : 0;
    const std::size_t size = (n + 2 * moments) * 4 + slots * 8 + 8;
    if (in.remaining() != size)
      fail("{}: {} bytes after the header, expected {} (truncated or padded)", path, in.remaining(),
           size);
    if (detail::fnv1a64({file.data(), file.size() - 8}) !=
        detail::load_le<std::uint64_t>(file.data() + file.size() - 8))
      fail("{}: checksum mismatch: the file is corrupt", path);
    // The checksum cannot tell values no run produces (another writer's file): one more update
    // would overflow a count at the int64 limit, AdamW's bias correction needs a count >= 0, and
    // its second moment is never negative.
    std::vector<std::int64_t> updates(slots);
    for (std::size_t s = 0; s < slots; ++s) {
      updates[s] = in.value<std::int64_t>();
      if (updates[s] < 0 || updates[s] > kMaxUpdates)
        fail("{}: slot {} has {} updates, expected 0 to 2^53", path, s, updates[s]);
    }
    std::vector<float> params(n), first(moments), second(moments);
    in.floats(params);
    in.floats(first);
    in.floats(second);
    for (std::size_t i = 0; i < second.size(); ++i)
      if (second[i] < 0.0f)
        fail("{}: AdamW second moment {} is {}, expected >= 0", path, i, second[i]);
    return {config, std::move(params), std::move(first), std::move(second), std::move(updates)};
  }

 private:
  // Bank file: "ESAMPBNK", u32 version, u32 hidden_size, rank, slots, output_norm, optimizer,
  // i64 updates[slots], f32 params[slots, P], (AdamW) f32 m[slots, P], f32 v[slots, P],
  // u64 FNV-1a of everything before it; little-endian.
  static constexpr char kMagic[8] = {'E', 'S', 'A', 'M', 'P', 'B', 'N', 'K'};
  static constexpr std::uint32_t kFileVersion = 1;
  static constexpr std::int64_t kMaxUpdates = std::int64_t{1} << 53;  // exact as a double

  static std::array<std::uint32_t, 5> shape_fields(const DistillerConfig& c) {
    return {static_cast<std::uint32_t>(c.hidden_size), static_cast<std::uint32_t>(c.rank),
            static_cast<std::uint32_t>(c.slots), c.output_norm ? 1u : 0u,
            static_cast<std::uint32_t>(c.optimizer)};
  }

  void clear_optimizer(int slot) {
    const auto s = checked(slot);
    const auto P = static_cast<std::size_t>(layout().size());
    if (!first_moment_.empty()) {
      std::fill_n(first_moment_.data() + s * P, P, 0.0f);
      std::fill_n(second_moment_.data() + s * P, P, 0.0f);
    }
    updates_[s] = 0;
  }

  std::size_t checked(int slot) const {
    if (slot < 0 || slot >= config_.slots)
      fail("slot {} is out of range: the bank has {} slots", slot, config_.slots);
    return static_cast<std::size_t>(slot);
  }

  DistillerConfig config_;
  std::vector<float> params_;                        // [slots, P]
  std::vector<float> first_moment_, second_moment_;  // AdamW moments, same shape; empty for SGD
  std::vector<std::int64_t> updates_;                // [slots] updates since reset
};

}  // namespace esamp
