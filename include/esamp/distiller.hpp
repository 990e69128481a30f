// LatentDistiller: a bank of low-rank gated SwiGLU distillers (one per slot) that predict a deep
// layer's hidden state from a shallow one's and train online (DESIGN.md §1). CPU, fp32 master
// parameters, per-slot optimizer state. Usable on its own; ExploratorySampler drives it from hooks.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/cpu/distiller_math.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp {

// One slot's parameters, by value.
struct DistillerParams {
  cpu::Matrix<float> A;     // [H, r]
  cpu::Matrix<float> G;     // [H, r]
  cpu::Matrix<float> B;     // [r, H]
  cpu::RowVector<float> b;  // [r]
  cpu::RowVector<float> w;  // [H]
  cpu::RowVector<float> c;  // [H]
};

// A forward's saved state for the backward: the rows with a finite source, grouped by slot.
struct ForwardState {
  struct SlotRows {
    int slot;
    Eigen::Index begin, end;  // rows [begin, end) of `act`
  };
  cpu::Activations<float> act;
  cpu::Matrix<float> target;          // [rows, H] the training target, in `act` order
  std::vector<std::uint8_t> use_row;  // [rows] 1 where the target is finite
  std::vector<int> input_row;         // [rows] input row held by act row k
  std::vector<int> act_row;           // [input rows] act row of an input row, -1 when not finite
  std::vector<SlotRows> slot_rows;    // one entry per slot present, ascending slot
  std::int64_t rows_nonfinite = 0;    // input rows left out because their source was not finite

  // The prediction for input row i, or nullptr when that row was left out.
  const float* prediction(std::int64_t i) const {
    const int k = act_row[static_cast<std::size_t>(i)];
    return k < 0 ? nullptr : act.y_hat.row(k).data();
  }
};

// The flat per-slot arrays of a bank, in cpu::ParameterLayout order.
enum class BankArray { parameters, first_moment, second_moment };

struct TrainReport {
  float loss = 0.0f;  // mean over the updated slots of each slot's mean squared error
  int slots_updated = 0;
  std::int64_t rows_trained = 0;
  std::int64_t rows_nonfinite = 0;  // rows left out: source or target not finite
};

class LatentDistiller {
 public:
  explicit LatentDistiller(const DistillerConfig& config)
      : config_((config.validate(), config)), layout_{config.hidden_size, config.rank} {
    const auto n = static_cast<std::size_t>(layout_.size() * config_.slots);
    params_.resize(n);
    if (config_.optimizer == Optimizer::adamw) {
      m_.resize(n);
      v_.resize(n);
    }
    steps_.resize(static_cast<std::size_t>(config_.slots));
    grad_.resize(static_cast<std::size_t>(layout_.size()));
    for (int s = 0; s < config_.slots; ++s) reset(s);
  }

  const DistillerConfig& config() const { return config_; }
  const cpu::ParameterLayout& layout() const { return layout_; }
  int slots() const { return config_.slots; }
  int hidden_size() const { return config_.hidden_size; }
  // Optimizer updates applied to `slot` since its last reset.
  std::int64_t updates(int slot) const { return steps_[checked_slot(slot)]; }

  // Re-initialises the slot's parameters (seeded) and clears its optimizer state.
  void reset(int slot) {
    const auto s = checked_slot(slot);
    cpu::initialize(slot_params(s), layout_, config_.seed, config_.init_std);
    if (config_.optimizer == Optimizer::adamw) {
      std::fill_n(slot_ptr(m_, s), layout_.size(), 0.0f);
      std::fill_n(slot_ptr(v_, s), layout_.size(), 0.0f);
    }
    steps_[s] = 0;
  }

  // One slot's flat parameters or AdamW moments (empty for SGD moments), for inspection and tests.
  Span<const float> slot_array(BankArray array, int slot) const {
    const auto s = checked_slot(slot);
    const std::vector<float>& data = array == BankArray::parameters     ? params_
                                     : array == BankArray::first_moment ? m_
                                                                        : v_;
    if (data.empty()) return {};
    return {data.data() + static_cast<std::int64_t>(s) * layout_.size(),
            static_cast<std::size_t>(layout_.size())};
  }

  // Sets a slot's whole state, as slot_array and updates read it: parameters, AdamW moments (empty
  // for SGD) and the update count. Used to mirror a device bank; checked, never partial.
  void restore_slot(int slot, Span<const float> params, Span<const float> first_moment,
                    Span<const float> second_moment, std::int64_t updates) {
    const auto s = checked_slot(slot);
    const auto P = static_cast<std::size_t>(layout_.size());
    const std::size_t moments = config_.optimizer == Optimizer::adamw ? P : 0;
    if (params.size() != P || first_moment.size() != moments || second_moment.size() != moments)
      fail("restore_slot({}): sizes {}, {}, {}; expected {}, {}, {}", slot, params.size(),
           first_moment.size(), second_moment.size(), P, moments, moments);
    for (const float p : params)
      if (!std::isfinite(p)) fail("restore_slot({}): the parameters hold a non-finite value", slot);
    if (updates < 0) fail("restore_slot({}): updates = {}, must be >= 0", slot, updates);
    std::copy(params.begin(), params.end(), slot_params(s));
    if (moments) {
      std::copy(first_moment.begin(), first_moment.end(), slot_ptr(m_, s));
      std::copy(second_moment.begin(), second_moment.end(), slot_ptr(v_, s));
    }
    steps_[s] = updates;
  }

  DistillerParams parameters(int slot) const {
    const cpu::ParameterMaps<const float> p(slot_params(checked_slot(slot)), layout_);
    return {p.A, p.G, p.B, p.b, p.w, p.c};
  }

  void set_parameters(int slot, const DistillerParams& params) {
    const auto s = checked_slot(slot);
    const auto H = layout_.hidden, r = layout_.rank;
    const auto check = [](const char* name, const auto& m, std::int64_t rows, std::int64_t cols) {
      if (m.rows() != rows || m.cols() != cols)
        fail("DistillerParams.{}: shape [{}, {}], expected [{}, {}]", name, m.rows(), m.cols(),
             rows, cols);
      if (!m.allFinite()) fail("DistillerParams.{}: holds a non-finite value", name);
    };
    check("A", params.A, H, r);
    check("G", params.G, H, r);
    check("B", params.B, r, H);
    check("b", params.b, 1, r);
    check("w", params.w, 1, H);
    check("c", params.c, 1, H);
    cpu::ParameterMaps<float> p(slot_params(s), layout_);
    p.A = params.A;
    p.G = params.G;
    p.B = params.B;
    p.b = params.b;
    p.w = params.w;
    p.c = params.c;
  }

  // Runs the forward of every row through its slot and keeps what the backward needs in `state`.
  // Rows whose source is not finite are left out (state.prediction(i) is null for them).
  void forward(Span<const int> slot_of_row, const ConstMatrixView& x, ForwardState& state) const {
    check_rows("source", slot_of_row, x);
    const auto rows = static_cast<std::int64_t>(slot_of_row.size());
    state.act_row.assign(static_cast<std::size_t>(rows), -1);
    state.rows_nonfinite = 0;
    // Counting sort by slot: rows of one slot become one contiguous block for the GEMMs.
    std::vector<int>& order = state.input_row;
    order.clear();
    std::vector<std::int64_t> count(static_cast<std::size_t>(config_.slots) + 1, 0);
    std::vector<bool> finite(static_cast<std::size_t>(rows));
    for (std::int64_t i = 0; i < rows; ++i) {
      finite[static_cast<std::size_t>(i)] = row_finite(x, i);
      if (finite[static_cast<std::size_t>(i)])
        ++count[static_cast<std::size_t>(slot_of_row[static_cast<std::size_t>(i)]) + 1];
      else
        ++state.rows_nonfinite;
    }
    for (std::size_t s = 1; s < count.size(); ++s) count[s] += count[s - 1];
    const std::int64_t kept = count.back();
    order.assign(static_cast<std::size_t>(kept), 0);
    state.slot_rows.clear();
    for (int s = 0; s < config_.slots; ++s)
      if (count[static_cast<std::size_t>(s) + 1] > count[static_cast<std::size_t>(s)])
        state.slot_rows.push_back(
            {s, count[static_cast<std::size_t>(s)], count[static_cast<std::size_t>(s) + 1]});
    for (std::int64_t i = 0; i < rows; ++i) {
      if (!finite[static_cast<std::size_t>(i)]) continue;
      const auto k = count[static_cast<std::size_t>(slot_of_row[static_cast<std::size_t>(i)])]++;
      order[static_cast<std::size_t>(k)] = static_cast<int>(i);
      state.act_row[static_cast<std::size_t>(i)] = static_cast<int>(k);
    }
    if (state.act.x.rows() < kept) state.act.resize(kept, layout_.hidden, layout_.rank);
    for (std::int64_t k = 0; k < kept; ++k)
      load_row(x, order[static_cast<std::size_t>(k)], state.act.x.row(k));
    for (const auto& block : state.slot_rows)
      cpu::forward<float>({slot_params(static_cast<std::size_t>(block.slot)), layout_},
                          config_.output_norm, state.act, block.begin, block.end - block.begin);
  }

  // Backward from `state` against the target rows `y` (input row order) and one optimizer step per
  // slot present; rows whose target is not finite are left out. A slot left with no row is not
  // updated.
  TrainReport train(ForwardState& state, const ConstMatrixView& y) {
    check_view(y, "target", layout_.hidden, Device::cpu);
    if (static_cast<std::size_t>(y.rows) != state.act_row.size())
      fail("target: has {} rows, the forward had {}", y.rows, state.act_row.size());
    const auto kept = static_cast<Eigen::Index>(state.input_row.size());
    if (state.target.rows() < kept) state.target.resize(kept, layout_.hidden);
    state.use_row.assign(static_cast<std::size_t>(kept), 0);
    TrainReport report;
    report.rows_nonfinite = state.rows_nonfinite;
    for (Eigen::Index k = 0; k < kept; ++k) {
      const int i = state.input_row[static_cast<std::size_t>(k)];
      const bool finite = row_finite(y, i);
      state.use_row[static_cast<std::size_t>(k)] = finite ? 1 : 0;
      if (finite) load_row(y, i, state.target.row(k));
      report.rows_nonfinite += finite ? 0 : 1;
    }
    double loss_sum = 0.0;
    for (const auto& block : state.slot_rows) {
      const auto s = static_cast<std::size_t>(block.slot);
      const auto count = block.end - block.begin;
      const std::uint8_t* use_block = state.use_row.data() + block.begin;
      std::int64_t used = 0;
      for (Eigen::Index k = 0; k < count; ++k) used += use_block[k] ? 1 : 0;
      if (used == 0) continue;
      const float loss = cpu::backward<float>(
          {slot_params(s), layout_}, config_.output_norm, state.act, block.begin, count,
          state.target.middleRows(block.begin, count), use_block, {grad_.data(), layout_});
      apply_update(s);
      loss_sum += loss;
      report.rows_trained += used;
      ++report.slots_updated;
    }
    report.loss = report.slots_updated ? static_cast<float>(loss_sum / report.slots_updated) : 0.0f;
    return report;
  }

  // Forward only: y_hat[i] = f_{slot_of_row[i]}(x[i]); rows whose source is not finite get NaN.
  void predict(Span<const int> slot_of_row, const ConstMatrixView& x,
               const MatrixView& y_hat) const {
    check_rows("prediction", slot_of_row, y_hat);
    ForwardState state;
    forward(slot_of_row, x, state);
    for (std::int64_t i = 0; i < y_hat.rows; ++i) {
      const float* p = state.prediction(i);
      for (std::int64_t j = 0; j < y_hat.cols; ++j)
        y_hat.set(i, j, p ? p[j] : std::numeric_limits<float>::quiet_NaN());
    }
  }

  // Forward, backward and one optimizer step per slot present; returns the mean loss (TrainReport).
  float train_step(Span<const int> slot_of_row, const ConstMatrixView& x,
                   const ConstMatrixView& y) {
    ForwardState state;
    forward(slot_of_row, x, state);
    return train(state, y).loss;
  }

  // Writes the whole bank with its optimizer state (format below) to a temporary file, then renames
  // it over `path`, so an interrupted save never leaves a half-written bank behind.
  void save(const std::string& path) const {
    detail::ByteWriter out;
    out.bytes(kMagic, sizeof kMagic);
    out.value(kFileVersion);
    for (const std::uint32_t field : shape_fields()) out.value(field);
    for (const std::int64_t step : steps_) out.value(step);
    out.floats(params_);
    out.floats(m_);
    out.floats(v_);
    out.value(detail::fnv1a64(out.data()));
    detail::write_file_atomically(path, out.data());
  }

  // Reads a bank written by save(). Any mismatch (not a bank file, other version, other shape or
  // optimizer, truncated, corrupt) is an Error naming the file, and the bank in memory is
  // unchanged.
  void load(const std::string& path) {
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
    const auto expected = shape_fields();
    for (std::size_t f = 0; f < expected.size(); ++f) {
      const auto got = in.value<std::uint32_t>();
      if (got != expected[f])
        fail("{}: the file's bank has {} = {}, this bank has {}", path, kFieldNames[f], got,
             expected[f]);
    }
    const std::size_t size = params_.size() * 4 * (m_.empty() ? 1 : 3) + steps_.size() * 8 + 8;
    if (in.remaining() != size)
      fail("{}: {} bytes after the header, expected {} (truncated or padded)", path, in.remaining(),
           size);
    if (detail::fnv1a64({file.data(), file.size() - 8}) !=
        detail::load_le<std::uint64_t>(file.data() + file.size() - 8))
      fail("{}: checksum mismatch: the file is corrupt", path);
    // Read whole, checked, then kept: the checksum cannot tell values no run produces (another
    // writer's file). One more update would overflow a count at the int64 limit, AdamW's bias
    // correction needs a count >= 0, and its second moment is never negative.
    std::vector<std::int64_t> steps(steps_.size());
    std::vector<float> params(params_.size()), m(m_.size()), v(v_.size());
    for (std::size_t s = 0; s < steps.size(); ++s) {
      steps[s] = in.value<std::int64_t>();
      if (steps[s] < 0 || steps[s] > kMaxUpdates)
        fail("{}: slot {} has {} updates, expected 0 to 2^53", path, s, steps[s]);
    }
    in.floats(params);
    in.floats(m);
    in.floats(v);
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i] < 0.0f) fail("{}: AdamW second moment {} is {}, expected >= 0", path, i, v[i]);
    steps_ = std::move(steps);
    params_ = std::move(params);
    m_ = std::move(m);
    v_ = std::move(v);
  }

 private:
  // Bank file: "ESAMPBNK", u32 version, u32 hidden_size, rank, slots, output_norm, optimizer,
  // i64 steps[slots], f32 params[slots, P], (AdamW) f32 m[slots, P], f32 v[slots, P],
  // u64 FNV-1a of everything before it; little-endian.
  static constexpr char kMagic[8] = {'E', 'S', 'A', 'M', 'P', 'B', 'N', 'K'};
  static constexpr std::uint32_t kFileVersion = 1;
  static constexpr std::int64_t kMaxUpdates = std::int64_t{1} << 53;  // exact as a double

  std::array<std::uint32_t, 5> shape_fields() const {
    return {static_cast<std::uint32_t>(config_.hidden_size),
            static_cast<std::uint32_t>(config_.rank), static_cast<std::uint32_t>(config_.slots),
            config_.output_norm ? 1u : 0u, static_cast<std::uint32_t>(config_.optimizer)};
  }

  std::size_t checked_slot(int slot) const {
    if (slot < 0 || slot >= config_.slots)
      fail("slot {} is out of range: the bank has {} slots", slot, config_.slots);
    return static_cast<std::size_t>(slot);
  }
  float* slot_ptr(std::vector<float>& data, std::size_t s) {
    return data.data() + static_cast<std::int64_t>(s) * layout_.size();
  }
  float* slot_params(std::size_t s) { return slot_ptr(params_, s); }
  const float* slot_params(std::size_t s) const {
    return params_.data() + static_cast<std::int64_t>(s) * layout_.size();
  }

  void apply_update(std::size_t s) {
    const std::int64_t step = ++steps_[s];
    if (config_.optimizer == Optimizer::sgd) {
      cpu::sgd_update(slot_params(s), grad_.data(), layout_.size(), config_.lr);
      return;
    }
    cpu::adamw_update(slot_params(s), slot_ptr(m_, s), slot_ptr(v_, s), grad_.data(),
                      layout_.size(),
                      {config_.lr, config_.adam_beta1, config_.adam_beta2, config_.adam_eps,
                       config_.weight_decay},
                      step);
  }

  void check_rows(const char* what, Span<const int> slot_of_row, const ConstMatrixView& m) const {
    check_view(m, what, layout_.hidden, Device::cpu);
    if (static_cast<std::size_t>(m.rows) != slot_of_row.size())
      fail("{}: has {} rows but {} slot ids were given", what, m.rows, slot_of_row.size());
    for (std::size_t i = 0; i < slot_of_row.size(); ++i)
      if (slot_of_row[i] < 0 || slot_of_row[i] >= config_.slots)
        fail("slot id {} of row {} is out of range: the bank has {} slots", slot_of_row[i], i,
             config_.slots);
  }

  static bool row_finite(const ConstMatrixView& m, std::int64_t r) {
    for (std::int64_t j = 0; j < m.cols; ++j)
      if (!std::isfinite(m.at(r, j))) return false;
    return true;
  }
  template <class Row>
  static void load_row(const ConstMatrixView& m, std::int64_t r, Row&& out) {
    if (m.dtype == DType::f32) {
      out = Eigen::Map<const cpu::RowVector<float>>(
          static_cast<const float*>(m.data) + r * m.stride, m.cols);
      return;
    }
    for (std::int64_t j = 0; j < m.cols; ++j) out(j) = m.at(r, j);
  }

  DistillerConfig config_;
  cpu::ParameterLayout layout_;
  std::vector<float> params_;        // [slots, layout.size()]
  std::vector<float> m_, v_;         // AdamW moments, same shape; empty for SGD
  std::vector<std::int64_t> steps_;  // [slots] updates since reset
  std::vector<float> grad_;          // one slot's gradient, reused
};

}  // namespace esamp
