// The CPU SamplerBackend: Eigen on the calling thread, with an optional worker thread that runs
// end_step's training while the engine computes the next step (joined before the next prediction).
// Every buffer is sized at construction (the vocabulary-sized row of mix_logits on its first call),
// so no hook allocates. Trusts the front end's checks (backend.hpp).
#pragma once

#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "esamp/backend.hpp"
#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/cpu/bank_step.hpp"
#include "esamp/cpu/latent_mix.hpp"
#include "esamp/detail/background_worker.hpp"

namespace esamp::cpu {

class Backend final : public SamplerBackend {
 public:
  // `team`: the threads that run the training_threads parts of each update (bank_step.hpp);
  // empty: the calling thread and workers of the backend's own.
  Backend(const DistillerConfig& distiller, const ExplorationConfig& exploration,
          TrainingTeam team = {})
      : exploration_(exploration),
        bank_(distiller),
        step_(distiller, exploration.max_rows, exploration.training_threads,
              TrainingSchedule::of(exploration), std::move(team)),
        slot_stats_(static_cast<std::size_t>(distiller.slots)) {
    row_slots_.reserve(static_cast<std::size_t>(exploration.max_rows));
    row_beta_.reserve(static_cast<std::size_t>(exploration.max_rows));
    row_.resize(static_cast<std::size_t>(distiller.hidden_size));
    if (exploration_.background_training)
      worker_ = std::make_unique<esamp::detail::BackgroundWorker>([this] { train(); });
  }

  Device device() const override { return Device::cpu; }

  void reset_slot(int slot, int from) override {
    wait_for_training();
    if (from >= 0) {
      bank_.reset_from(slot, from);
    } else {
      bank_.reset(slot);
    }
    slot_stats_[static_cast<std::size_t>(slot)] = {};
  }

  // The worker may still be training on the previous step's plan: the new one is built at the
  // first tap, after waiting for it.
  void begin_step(Span<const int> row_slots, Span<const float> row_beta) override {
    row_slots_.assign(row_slots.begin(), row_slots.end());
    row_beta_.assign(row_beta.begin(), row_beta.end());
    planned_ = false;
  }

  void on_source(const ConstMatrixView& source) override {
    prepare_step();  // the previous step's update lands before this step's prediction
    step_.forward(bank_, source);
  }

  void on_target(const ConstMatrixView& target) override {
    prepare_step();
    step_.gather_target(target);
  }

  // h̃ = (1+β)·h − β·ŷ (or its LatentMix variant), in place, with each row's own β.
  void mix_hidden(const MatrixView& final_hidden) override {
    for (int i = 0; i < static_cast<int>(final_hidden.rows); ++i) {
      const float* y_hat = mixable(i);
      if (!y_hat) continue;
      count_mixed(i);
      const float beta = step_.plan_view().row_beta(i);
      if (final_hidden.dtype == DType::f32) {  // in place
        float* row = static_cast<float*>(final_hidden.data) + i * final_hidden.stride;
        mix_latent_row(row, y_hat, final_hidden.cols, beta, exploration_.latent_mix);
        continue;
      }
      for (std::int64_t j = 0; j < final_hidden.cols; ++j)
        row_[static_cast<std::size_t>(j)] = final_hidden.at(i, j);
      mix_latent_row(row_.data(), y_hat, final_hidden.cols, beta, exploration_.latent_mix);
      for (std::int64_t j = 0; j < final_hidden.cols; ++j)
        final_hidden.set(i, j, row_[static_cast<std::size_t>(j)]);
    }
  }

  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override {
    logit_row_.resize(static_cast<std::size_t>(logits.cols));
    const auto load_row = [&](int i) {
      for (std::int64_t v = 0; v < logits.cols; ++v)
        logit_row_[static_cast<std::size_t>(v)] = logits.at(i, v);
    };
    // Every row checked before any is written: a refused call leaves the logits as they were.
    for (int i = 0; i < static_cast<int>(logits.rows); ++i) {
      load_row(i);
      checked_argmax(logit_row_);
    }
    for (int i = 0; i < static_cast<int>(logits.rows); ++i) {
      load_row(i);
      esamp::detail::select_candidates(logit_row_, filter, candidates_);
      for (std::int64_t v = 0; v < logits.cols; ++v)
        logits.set(i, v, -std::numeric_limits<float>::infinity());
      const float* y_hat = mixable(i);
      const float beta = step_.plan_view().row_beta(i);
      for (const int v : candidates_) {
        const float base = logit_row_[static_cast<std::size_t>(v)];
        logits.set(i, v, y_hat ? (1.0f + beta) * base - beta * dot_row(lm_head, v, y_hat) : base);
      }
      if (y_hat) count_mixed(i);
    }
  }

  void end_step() override {
    wait_for_training();
    ++stats_.steps;
    if (!planned_ || step_.rows() == 0) return;
    if (worker_) {
      worker_->start();
    } else {
      train();
    }
  }

  Stats stats() override {
    wait_for_training();
    return stats_;
  }

  GroupStats slot_stats(int slot) override {
    wait_for_training();
    return slot_stats_[static_cast<std::size_t>(slot)];
  }

  BankState bank() override {
    wait_for_training();
    return bank_;
  }

  void set_bank(const BankState& state) override {
    wait_for_training();
    bank_ = state;
  }

 private:
  void prepare_step() {
    wait_for_training();
    if (planned_) return;
    step_.plan(row_slots_, row_beta_);
    planned_ = true;
  }

  // The prediction to mix into row i, or nullptr when the row is not mixed: its β is 0, its slot is
  // still warming up, or its source (hence its prediction) is not finite.
  const float* mixable(int i) const {
    if (step_.plan_view().row_beta(i) == 0.0f) return nullptr;
    const int slot = row_slots_[static_cast<std::size_t>(i)];
    if (bank_.update_counts()[static_cast<std::size_t>(slot)] < exploration_.warmup_updates)
      return nullptr;
    const float* y_hat = step_.prediction(i);
    if (!y_hat) return nullptr;
    for (int j = 0; j < bank_.config().hidden_size; ++j)
      if (!std::isfinite(y_hat[j])) return nullptr;
    return y_hat;
  }

  // Row i was mixed: counted in the totals and in its slot's record.
  void count_mixed(int i) {
    ++stats_.rows_mixed;
    ++slot_stats_[static_cast<std::size_t>(row_slots_[static_cast<std::size_t>(i)])].rows_mixed;
  }

  static float dot_row(const ConstMatrixView& m, std::int64_t r, const float* x) {
    if (m.dtype == DType::f32)
      return Eigen::Map<const RowVector<float>>(static_cast<const float*>(m.data) + r * m.stride,
                                                m.cols)
          .dot(Eigen::Map<const RowVector<float>>(x, m.cols));
    float sum = 0.0f;
    for (std::int64_t j = 0; j < m.cols; ++j) sum += m.at(r, j) * x[j];
    return sum;
  }

  void train() {
    const TrainReport report = step_.train(bank_, slot_stats_.data());
    stats_.rows_trained += report.rows_trained;
    stats_.rows_skipped_nonfinite += report.rows_nonfinite;
    stats_.slot_updates += report.updates;
    if (report.slots_updated > 0) add_trained_step(stats_, report.loss);
  }

  void wait_for_training() {
    if (worker_) worker_->wait();
  }

  ExplorationConfig exploration_;
  BankState bank_;
  BankStep step_;
  std::vector<int> row_slots_;   // [rows] slot of each row this step
  std::vector<float> row_beta_;  // [rows] β of each row this step
  bool planned_ = false;         // step_ holds this step's plan
  std::vector<float> row_;       // [H] one f16/bf16 row of h, as f32, while it is mixed
  std::vector<float> logit_row_;
  std::vector<int> candidates_;
  Stats stats_;
  std::vector<GroupStats> slot_stats_;  // [slots] each since its last reset_slot
  std::unique_ptr<esamp::detail::BackgroundWorker> worker_;  // last: destroyed (joined) first
};

// The CPU backend for ExploratorySampler (its default), training on `team` if one is given.
inline BackendFactory backend(TrainingTeam team = {}) {
  return [team = std::move(team)](const DistillerConfig& distiller,
                                  const ExplorationConfig& exploration) {
    return std::make_unique<Backend>(distiller, exploration, team);
  };
}

}  // namespace esamp::cpu
