// LatentDistiller: a bank of low-rank gated SwiGLU distillers (one per slot) that predict a deep
// layer's hidden state from a shallow one's and train online (DESIGN.md §1), on the CPU, usable on
// its own. It is a front end of its own: every public call checks its arguments, then runs the
// CPU step (cpu/bank_step.hpp) on its BankState.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/cpu/bank_step.hpp"
#include "esamp/cpu/distiller_math.hpp"
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

using cpu::TrainReport;

class LatentDistiller {
 public:
  explicit LatentDistiller(const DistillerConfig& config) : state_((config.validate(), config)) {}
  // A bank continuing from `state`, e.g. ExploratorySampler::bank().
  explicit LatentDistiller(BankState state) : state_(std::move(state)) {
    state_.config().validate();
  }

  const DistillerConfig& config() const { return state_.config(); }
  ParameterLayout layout() const { return state_.layout(); }
  int slots() const { return state_.slots(); }
  int hidden_size() const { return config().hidden_size; }
  const BankState& state() const { return state_; }
  // Optimizer updates applied to `slot` since its last reset.
  std::int64_t updates(int slot) const { return state_.updates(slot); }

  // Re-initialises the slot's parameters (seeded) and clears its optimizer state.
  void reset(int slot) { state_.reset(slot); }

  // One slot's flat parameters or AdamW moments (empty for SGD moments), for inspection and tests.
  Span<const float> slot_array(BankArray array, int slot) const {
    return state_.slot_array(array, slot);
  }

  DistillerParams parameters(int slot) const {
    const cpu::ParameterMaps<const float> p(state_.slot_array(BankArray::parameters, slot).data(),
                                            layout());
    return {p.A, p.G, p.B, p.b, p.w, p.c};
  }

  void set_parameters(int slot, const DistillerParams& params) {
    state_.updates(slot);  // checks the slot
    const auto H = layout().hidden, r = layout().rank;
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
    cpu::ParameterMaps<float> p(state_.slot_data(BankArray::parameters, slot), layout());
    p.A = params.A;
    p.G = params.G;
    p.B = params.B;
    p.b = params.b;
    p.w = params.w;
    p.c = params.c;
  }

  // Forward only: y_hat[i] = f_{slot_of_row[i]}(x[i]); rows whose source is not finite get NaN.
  void predict(Span<const int> slot_of_row, const ConstMatrixView& x,
               const MatrixView& y_hat) const {
    check_rows("source", slot_of_row, x);
    check_rows("prediction", slot_of_row, y_hat);
    cpu::BankStep step = planned_step(slot_of_row);
    step.forward(state_, x);
    for (std::int64_t i = 0; i < y_hat.rows; ++i) {
      const float* p = step.prediction(static_cast<int>(i));
      for (std::int64_t j = 0; j < y_hat.cols; ++j)
        y_hat.set(i, j, p ? p[j] : std::numeric_limits<float>::quiet_NaN());
    }
  }

  // Forward, backward and one optimizer step per slot present (rows whose source or target is not
  // finite are left out); returns the mean loss, and last_report() tells the rest.
  float train_step(Span<const int> slot_of_row, const ConstMatrixView& x,
                   const ConstMatrixView& y) {
    check_rows("source", slot_of_row, x);
    check_rows("target", slot_of_row, y);
    cpu::BankStep step = planned_step(slot_of_row);
    step.forward(state_, x);
    step.gather_target(y);
    last_report_ = step.train(state_);
    return last_report_.loss;
  }
  const TrainReport& last_report() const { return last_report_; }

  // The whole bank with its optimizer state (BankState's file format), written atomically.
  void save(const std::string& path) const { state_.save(path); }
  // Reads a bank written by save(); any mismatch is an Error naming the file, and the bank in
  // memory is unchanged.
  void load(const std::string& path) { state_ = BankState::read(path, config()); }

 private:
  cpu::BankStep planned_step(Span<const int> slot_of_row) const {
    cpu::BankStep step(config(), std::max<int>(1, static_cast<int>(slot_of_row.size())));
    step.plan(slot_of_row, std::vector<float>(slot_of_row.size(), 0.0f));
    return step;
  }

  void check_rows(const char* what, Span<const int> slot_of_row, const ConstMatrixView& m) const {
    check_view(m, what, hidden_size(), Device::cpu);
    if (static_cast<std::size_t>(m.rows) != slot_of_row.size())
      fail("{}: has {} rows but {} slot ids were given", what, m.rows, slot_of_row.size());
    for (std::size_t i = 0; i < slot_of_row.size(); ++i)
      if (slot_of_row[i] < 0 || slot_of_row[i] >= slots())
        fail("slot id {} of row {} is out of range: the bank has {} slots", slot_of_row[i], i,
             slots());
  }

  BankState state_;
  TrainReport last_report_;
};

}  // namespace esamp
