// One decode step of a bank on the CPU, in the order the CUDA backend runs it (DESIGN.md §2): the
// step plan groups the rows by slot, gather_rows converts each tapped row once into fp32 scratch
// in plan order with a finite flag (the twin of the CUDA GatherRows), the forward runs per segment,
// and train() runs the backward and one optimizer step per trained slot, both with subnormal floats
// flushed to zero (FlushSubnormals). With more than one thread, the threads share each update's
// blocks, and a host engine's team (TrainingTeam) the forward's columns too; the bits are the same
// for any number of threads, with or without a team. All scratch is
// sized for max_rows at construction, so no call allocates. Trusts its caller: the front end
// (sampler.hpp) or LatentDistiller has checked every argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/core.hpp"
#include "esamp/cpu/distiller_math.hpp"
#include "esamp/cpu/flush_subnormals.hpp"
#include "esamp/detail/background_worker.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp::cpu {

struct TrainReport {
  float loss = 0.0f;      // mean over the updated slots of each slot's mean squared error
  int slots_updated = 0;  // slots updated
  int updates = 0;        // optimizer steps: one per updated slot, more while young
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

// Threads a host engine lends to the training: runs part(0), ..., part(parts - 1), each exactly
// once and possibly at the same time, and returns when all have returned. Parts do not throw. For
// an engine whose own threads sit idle between its steps (llama.cpp's OpenMP team spins there), so
// that the training runs on them instead of on threads that would have to share their cores.
using TrainingTeam = std::function<void(int parts, const std::function<void(int)>& part)>;

class BankStep {
 public:
  // `threads`: how many parts share each slot's update (and, on a team, each forward), run by
  // `team` or, without one, by the caller's thread and threads - 1 workers of this step's own.
  BankStep(const DistillerConfig& config, int max_rows, int threads = 1,
           const TrainingSchedule& schedule = {}, TrainingTeam team = {})
      : config_(config),
        schedule_(schedule),
        settings_(OptimizerSettings::of(config)),
        layout_{config.hidden_size, config.rank},
        builder_(StepPlanLayout::make(max_rows, config.slots), config.slots),
        plan_(static_cast<std::size_t>(builder_.layout().size()), 0),
        source_finite_(static_cast<std::size_t>(max_rows), 0),
        target_finite_(static_cast<std::size_t>(max_rows), 0),
        all_rows_(static_cast<std::size_t>(max_rows), 1),
        vector_grad_(static_cast<std::size_t>(layout_.vector_size())),
        parts_(static_cast<std::size_t>(threads)),
        team_(std::move(team)) {
    act_.resize(max_rows, layout_.hidden, layout_.rank);
    target_.resize(max_rows, layout_.hidden);
    scratch_.resize(max_rows, layout_.hidden, layout_.rank);
    for (Part& part : parts_) part.resize(layout_.hidden, layout_.rank);
    if (team_) return;
    for (std::size_t t = 1; t < parts_.size(); ++t)
      workers_.push_back(
          std::make_unique<esamp::detail::BackgroundWorker>([this, t] { run_part(t); }));
  }

  // Plans a step: input row i belongs to slot row_slots[i] and explores with row_beta[i].
  void plan(Span<const int> row_slots, Span<const float> row_beta) {
    builder_.build(row_slots, row_beta, plan_.data());
  }
  StepPlanView plan_view() const { return {plan_.data(), builder_.layout()}; }
  int rows() const { return plan_[0]; }

  // Gathers the source rows and predicts each through its slot of `bank`.
  void forward(const BankState& bank, const ConstMatrixView& source) {
    const FlushSubnormals flush;
    const StepPlanView plan = plan_view();
    gather_rows(source, plan, act_.x, source_finite_.data());
    for (int s = 0; s < plan.segments(); ++s)
      forward_rows(bank, plan.segment_slot(s), plan.segment_begin(s),
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

  // Backward against the gathered targets and one optimizer step per slot present (more while a
  // slot is young; TrainingSchedule). Rows whose source or target is not finite
  // are left out: the finite rows of a segment move to its front, in plan order, and are forwarded
  // again on their own, so the update is bit for bit that of a step without the bad rows (their
  // predictions, already used, are overwritten). A slot left with no row is not updated.
  // `slot_stats` ([slots] or null): each slot present gets its part of the step (add_slot_step).
  TrainReport train(BankState& bank, GroupStats* slot_stats = nullptr) {
    const FlushSubnormals flush;
    const StepPlanView plan = plan_view();
    TrainReport report;
    double loss_sum = 0.0;
    for (int s = 0; s < plan.segments(); ++s) {
      const int slot = plan.segment_slot(s);
      const int begin = plan.segment_begin(s), count = plan.segment_end(s) - begin;
      const int used = keep_finite_rows(begin, count);
      float loss = 0.0f;
      int updates = 0;
      if (used > 0) {
        if (used < count) forward_rows(bank, slot, begin, used);
        loss = update(bank, slot, begin, used);
        for (updates = 1;
             updates < schedule_.young_repeat && bank.slot_updates(slot) < schedule_.young_updates;
             ++updates) {
          forward_rows(bank, slot, begin, used);
          update(bank, slot, begin, used);
        }
        loss_sum += loss;
        ++report.slots_updated;
      }
      report.rows_trained += used;
      report.rows_nonfinite += count - used;
      report.updates += updates;
      if (slot_stats) add_slot_step(slot_stats[slot], count, used, updates, loss);
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
      move_row(p, kept++);
    }
    return kept - begin;
  }

  // The source and target rows of position `from` to position `to`.
  void move_row(int from, int to) {
    if (from == to) return;
    act_.x.row(to) = act_.x.row(from);
    target_.row(to) = target_.row(from);
  }

  // The forward of positions [begin, begin + count) through the slot. On a team: its units, then
  // its outputs, each cut by columns over the parts, and the output norm on the calling thread.
  // Without one, all on the calling thread: waking esamp's own workers takes longer (about 0.1 ms
  // each on 2 cores) than the forward of a few rows, where a team's threads are awake already.
  void forward_rows(const BankState& bank, int slot, int begin, int count) {
    const ParameterMaps<const float> p(bank.slot_data(BankArray::parameters, slot), layout_);
    if (!team_) {
      cpu::forward(p, config_.output_norm, act_, begin, count);
      return;
    }
    if (count == 0) return;
    run_parts([&](std::size_t t) {
      const auto [k0, k1] = columns_of(t, layout_.rank);
      if (k0 < k1) forward_units(p, act_, begin, count, k0, k1);
    });
    run_parts([&](std::size_t t) {
      const auto [h0, h1] = columns_of(t, layout_.hidden);
      if (h0 < h1) forward_outputs(p, act_, begin, count, h0, h1);
    });
    forward_norm(p, config_.output_norm, act_, begin, count);
  }

  // Part t's share of n columns: whole blocks of kWeightColumns, contiguous runs per part.
  std::pair<std::int64_t, std::int64_t> columns_of(std::size_t t, std::int64_t n) const {
    const std::int64_t blocks = (n + kWeightColumns - 1) / kWeightColumns;
    const auto T = static_cast<std::int64_t>(parts_.size());
    const auto index = static_cast<std::int64_t>(t);
    return {std::min(n, blocks * index / T * kWeightColumns),
            std::min(n, blocks * (index + 1) / T * kWeightColumns)};
  }

  // Runs job(t) for every part t: on the team, or part 0 on the calling thread and the others on
  // the workers; returns when all have returned. One part: job(0) here. Not a std::function, which
  // could allocate.
  template <class Job>
  void run_parts(const Job& job) {
    if (parts_.size() == 1) {
      job(std::size_t{0});
      return;
    }
    job_ = &job;
    run_job_ = [](const void* j, std::size_t t) { (*static_cast<const Job*>(j))(t); };
    if (team_) {
      team_(static_cast<int>(parts_.size()),
            [this](int t) { run_part(static_cast<std::size_t>(t)); });
    } else {
      for (auto& worker : workers_) worker->start();
      run_part(0);
      for (auto& worker : workers_) worker->wait();
    }
  }

  // Part t of the job under way, on whichever thread runs it: each flushes subnormals for itself.
  void run_part(std::size_t t) {
    const FlushSubnormals flush;
    run_job_(job_, t);
  }

  // Backward on positions [begin, begin + count), forwarded with the slot's parameters as they
  // are, and one optimizer step; returns the loss.
  float update(BankState& bank, int slot, int begin, int count) {
    const float loss = cpu::backward_rows<float>(
        {bank.slot_data(BankArray::parameters, slot), layout_}, config_.output_norm, act_, begin,
        count, target_.middleRows(begin, count), all_rows_.data(), vector_grad_.data(), scratch_);
    update_slot(bank, slot, begin, count);
    return loss;
  }

  // One thread's share of a slot's update: its weight gradients a block at a time, each block
  // updated while it is in cache. A block is kUnits hidden units of A and G, or kRanks rows of B:
  // contiguous in the slot, 16 KB each at rank 128 and 32 KB at H = 2048.
  struct Part {
    Matrix<float> gA, gG, gB;  // [kUnits, r], [kUnits, r], [kRanks, H]
    void resize(std::int64_t hidden, std::int64_t rank) {
      gA.resize(kUnits, rank);
      gG.resize(kUnits, rank);
      gB.resize(kRanks, hidden);
    }
  };
  static constexpr Eigen::Index kUnits = 32, kRanks = 4;

  // The slot and rows of the update under way, read by every part.
  struct Update {
    float* params = nullptr;
    float* m = nullptr;
    float* v = nullptr;
    OptimizerSettings settings;  // lr decayed per TrainingSchedule
    AdamWScale scale;
    int begin = 0, rows = 0;
  };

  // One optimizer step on the slot: the weight gradients and their update shared by the parts,
  // then b, w and c.
  void update_slot(BankState& bank, int slot, int begin, int rows) {
    const std::int64_t step = ++bank.slot_updates(slot);
    update_ = {
        bank.slot_data(BankArray::parameters, slot), nullptr, nullptr, settings_, {}, begin, rows};
    update_.settings.lr = schedule_.lr(settings_.lr, step);
    if (config_.optimizer == Optimizer::adamw) {
      update_.m = bank.slot_data(BankArray::first_moment, slot);
      update_.v = bank.slot_data(BankArray::second_moment, slot);
      update_.scale = adamw_scale(update_.settings, step);
    }
    run_parts([this](std::size_t t) { update_part(t); });
    apply(layout_.offset_b(), vector_grad_.data(), layout_.vector_size());
  }

  // Part t's blocks: the A/G blocks then the B blocks, numbered in that order, cut into contiguous
  // runs per part. The blocks are the same whatever the number of parts, so every part count
  // computes the same bits.
  void update_part(std::size_t t) {
    Part& part = parts_[t];
    const std::int64_t hidden = layout_.hidden, rank = layout_.rank;
    const std::int64_t unit_blocks = (hidden + kUnits - 1) / kUnits;
    const std::int64_t blocks = unit_blocks + (rank + kRanks - 1) / kRanks;
    const auto T = static_cast<std::int64_t>(parts_.size());
    const auto index = static_cast<std::int64_t>(t);
    for (std::int64_t b = blocks * index / T; b < blocks * (index + 1) / T; ++b) {
      if (b < unit_blocks) {
        const std::int64_t h0 = b * kUnits, n = std::min<std::int64_t>(kUnits, hidden - h0);
        auto gA = part.gA.topRows(n);
        auto gG = part.gG.topRows(n);
        up_gate_gradients(act_, update_.begin, update_.rows, scratch_, h0, h0 + n, gA, gG);
        apply(layout_.offset_A() + h0 * rank, gA.data(), n * rank);
        apply(layout_.offset_G() + h0 * rank, gG.data(), n * rank);
      } else {
        const std::int64_t k0 = (b - unit_blocks) * kRanks;
        const std::int64_t n = std::min<std::int64_t>(kRanks, rank - k0);
        auto gB = part.gB.topRows(n);
        down_gradients(act_, update_.begin, update_.rows, scratch_, k0, k0 + n, gB);
        apply(layout_.offset_B() + k0 * hidden, gB.data(), n * hidden);
      }
    }
  }

  // The optimizer step on parameters [at, at + n) of the slot under way, given their gradient.
  void apply(std::int64_t at, const float* grad, std::int64_t n) const {
    if (config_.optimizer == Optimizer::sgd) {
      sgd_update(update_.params + at, grad, n, update_.settings.lr);
      return;
    }
    adamw_update(update_.params + at, update_.m + at, update_.v + at, grad, n, update_.settings,
                 update_.scale);
  }

  DistillerConfig config_;
  TrainingSchedule schedule_;
  OptimizerSettings settings_;
  ParameterLayout layout_;
  StepPlanBuilder builder_;
  std::vector<std::int32_t> plan_;           // this step's plan
  Activations<float> act_;                   // [max_rows, ...] by plan position
  Matrix<float> target_;                     // [max_rows, H] by plan position
  std::vector<std::uint8_t> source_finite_;  // [max_rows] by plan position
  std::vector<std::uint8_t> target_finite_;  // [max_rows] by plan position
  std::vector<std::uint8_t> all_rows_;       // [max_rows] of 1: backward's mask, every row used
  BackwardScratch<float> scratch_;
  std::vector<float> vector_grad_;  // [r + 2H] one slot's gradient of b, w, c
  Update update_;
  std::vector<Part> parts_;                                       // [threads]
  const void* job_ = nullptr;                                     // run_parts' job...
  void (*run_job_)(const void* job, std::size_t part) = nullptr;  // ...and how to run its part
  TrainingTeam team_;  // empty: workers_ run parts 1, 2, ...
  std::vector<std::unique_ptr<esamp::detail::BackgroundWorker>> workers_;  // part t + 1 each; last
};

}  // namespace esamp::cpu
