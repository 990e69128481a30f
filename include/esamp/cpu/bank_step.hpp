// One decode step of a bank on the CPU, in the order the CUDA backend runs it (DESIGN.md §2): the
// step plan groups the rows by slot, gather_rows converts each tapped row once into fp32 scratch
// in plan order with a finite flag (the twin of the CUDA GatherRows), the forward runs per segment,
// and train() runs the backward and one optimizer step per trained slot. All scratch is sized for
// max_rows at construction, so no call allocates. Trusts its caller: the front end (sampler.hpp) or
// LatentDistiller has checked every argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/core.hpp"
#include "esamp/cpu/distiller_math.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp::cpu {

struct TrainReport {
  float loss = 0.0f;  // mean over the updated slots of each slot's mean squared error
  int slots_updated = 0;
  std::int64_t rows_trained = 0;
  std::int64_t rows_nonfinite = 0;  // rows left out: source or target not finite
};

namespace detail {
// dst[j] = float(row[j]) for j < n; returns whether every value is finite. One pass per element.
template <class Load>
bool convert_row(const std::byte* row, std::int64_t n, std::size_t element, float* dst, Load load) {
  bool finite = true;
  for (std::int64_t j = 0; j < n; ++j) {
    const float value = load(row + static_cast<std::size_t>(j) * element);
    dst[j] = value;
    finite = finite && std::isfinite(value);
  }
  return finite;
}

inline std::uint16_t load16(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return bits;
}
}  // namespace detail

// For each input row i < plan.rows(): out.row(plan.row_position(i)) = float(src.row(i)) and
// finite[position] = 1, or, when the row holds a NaN or an infinity, a zero row and finite = 0 (a
// zero row adds nothing to any gradient).
inline void gather_rows(const ConstMatrixView& src, const StepPlanView& plan, Matrix<float>& out,
                        std::uint8_t* finite) {
  const std::size_t element = size_of(src.dtype);
  for (int i = 0; i < plan.rows(); ++i) {
    const int p = plan.row_position(i);
    float* dst = out.row(p).data();
    const std::byte* row = src.row_bytes(i);
    bool ok = false;
    switch (src.dtype) {
      case DType::f32:
        ok = detail::convert_row(row, src.cols, element, dst, [](const std::byte* at) {
          float value;
          std::memcpy(&value, at, sizeof value);
          return value;
        });
        break;
      case DType::f16:
        ok = detail::convert_row(row, src.cols, element, dst, [](const std::byte* at) {
          return half_to_float(detail::load16(at));
        });
        break;
      case DType::bf16:
        ok = detail::convert_row(row, src.cols, element, dst, [](const std::byte* at) {
          return bfloat16_to_float(detail::load16(at));
        });
        break;
    }
    if (!ok) std::fill_n(dst, src.cols, 0.0f);
    finite[p] = ok ? 1 : 0;
  }
}

class BankStep {
 public:
  BankStep(const DistillerConfig& config, int max_rows)
      : config_(config),
        layout_{config.hidden_size, config.rank},
        builder_(StepPlanLayout::make(max_rows, config.slots), config.slots),
        plan_(static_cast<std::size_t>(builder_.layout().size()), 0),
        source_finite_(static_cast<std::size_t>(max_rows), 0),
        target_finite_(static_cast<std::size_t>(max_rows), 0),
        all_rows_(static_cast<std::size_t>(max_rows), 1),
        grad_(static_cast<std::size_t>(layout_.size())) {
    act_.resize(max_rows, layout_.hidden, layout_.rank);
    target_.resize(max_rows, layout_.hidden);
    scratch_.resize(max_rows, layout_.hidden, layout_.rank);
  }

  // Plans a step: input row i belongs to slot row_slots[i] and explores with row_beta[i].
  void plan(Span<const int> row_slots, Span<const float> row_beta) {
    builder_.build(row_slots, row_beta, plan_.data());
  }
  StepPlanView plan_view() const { return {plan_.data(), builder_.layout()}; }
  int rows() const { return plan_[0]; }

  // Gathers the source rows and predicts each through its slot of `bank`.
  void forward(const BankState& bank, const ConstMatrixView& source) {
    const StepPlanView plan = plan_view();
    gather_rows(source, plan, act_.x, source_finite_.data());
    for (int s = 0; s < plan.segments(); ++s)
      cpu::forward<float>({bank.slot_data(BankArray::parameters, plan.segment_slot(s)), layout_},
                          config_.output_norm, act_, plan.segment_begin(s),
                          plan.segment_end(s) - plan.segment_begin(s));
  }

  // Gathers the target rows (kept until train).
  void gather_target(const ConstMatrixView& target) {
    gather_rows(target, plan_view(), target_, target_finite_.data());
  }

  // The prediction for input row i, or nullptr when its source was not finite.
  const float* prediction(int i) const {
    const int p = plan_view().row_position(i);
    return source_finite_[static_cast<std::size_t>(p)] ? act_.y_hat.row(p).data() : nullptr;
  }

  // Backward against the gathered targets and one optimizer step per slot present. Rows whose
  // source or target is not finite are left out: the finite rows of a segment move to its front, in
  // plan order, and are forwarded again on their own, so the update is bit for bit that of a step
  // without the bad rows (their predictions, already used, are overwritten). A slot left with no
  // row is not updated.
  TrainReport train(BankState& bank) {
    const StepPlanView plan = plan_view();
    TrainReport report;
    double loss_sum = 0.0;
    for (int s = 0; s < plan.segments(); ++s) {
      const int begin = plan.segment_begin(s), count = plan.segment_end(s) - begin;
      const int used = keep_finite_rows(begin, count);
      report.rows_nonfinite += count - used;
      if (used == 0) continue;
      const int slot = plan.segment_slot(s);
      const ParameterMaps<const float> params{bank.slot_data(BankArray::parameters, slot), layout_};
      if (used < count) cpu::forward<float>(params, config_.output_norm, act_, begin, used);
      const float loss = cpu::backward<float>(params, config_.output_norm, act_, begin, used,
                                              target_.middleRows(begin, used), all_rows_.data(),
                                              {grad_.data(), layout_}, scratch_);
      apply_update(bank, slot);
      loss_sum += loss;
      report.rows_trained += used;
      ++report.slots_updated;
    }
    report.loss = report.slots_updated ? static_cast<float>(loss_sum / report.slots_updated) : 0.0f;
    return report;
  }

 private:
  // Moves the rows of positions [begin, begin + count) whose source and target are both finite to
  // the front of that range, keeping their order; returns how many there are.
  int keep_finite_rows(int begin, int count) {
    int kept = begin;
    for (int p = begin; p < begin + count; ++p) {
      const auto k = static_cast<std::size_t>(p);
      if (!source_finite_[k] || !target_finite_[k]) continue;
      if (p != kept) {
        act_.x.row(kept) = act_.x.row(p);
        target_.row(kept) = target_.row(p);
      }
      ++kept;
    }
    return kept - begin;
  }

  void apply_update(BankState& bank, int slot) {
    const std::int64_t step = ++bank.slot_updates(slot);
    float* params = bank.slot_data(BankArray::parameters, slot);
    if (config_.optimizer == Optimizer::sgd) {
      sgd_update(params, grad_.data(), layout_.size(), config_.lr);
      return;
    }
    adamw_update(params, bank.slot_data(BankArray::first_moment, slot),
                 bank.slot_data(BankArray::second_moment, slot), grad_.data(), layout_.size(),
                 OptimizerSettings::of(config_), step);
  }

  DistillerConfig config_;
  ParameterLayout layout_;
  StepPlanBuilder builder_;
  std::vector<std::int32_t> plan_;           // this step's plan
  Activations<float> act_;                   // [max_rows, ...] by plan position
  Matrix<float> target_;                     // [max_rows, H] by plan position
  std::vector<std::uint8_t> source_finite_;  // [max_rows] by plan position
  std::vector<std::uint8_t> target_finite_;  // [max_rows] by plan position
  std::vector<std::uint8_t> all_rows_;       // [max_rows] of 1: backward's mask, every row used
  BackwardScratch<float> scratch_;
  std::vector<float> grad_;  // one slot's gradient
};

}  // namespace esamp::cpu
