// The CPU SamplerBackend: Eigen on the calling thread, with an optional worker thread that runs
// end_step's training while the engine computes the next step (joined before the next prediction).
#pragma once

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "esamp/backend.hpp"
#include "esamp/config.hpp"
#include "esamp/cpu/latent_mix.hpp"
#include "esamp/detail/background_worker.hpp"
#include "esamp/distiller.hpp"

namespace esamp::cpu {

class SamplerBackendCpu final : public SamplerBackend {
 public:
  SamplerBackendCpu(const DistillerConfig& distiller, const ExplorationConfig& exploration)
      : exploration_(exploration), bank_(distiller) {
    const int H = bank_.hidden_size();
    forward_.act.resize(exploration_.max_rows, H, bank_.config().rank);
    target_.resize(exploration_.max_rows, H);
    if (exploration_.background_training)
      worker_ = std::make_unique<detail::BackgroundWorker>([this] { train(); });
  }

  Device device() const override { return Device::cpu; }

  void reset_slot(int slot) override {
    wait_for_training();
    bank_.reset(slot);
  }

  void begin_step(Span<const int> row_slots) override {
    // The worker may still be training on the previous step: it reads forward_ and target_ only.
    row_slots_.assign(row_slots.begin(), row_slots.end());
  }

  void on_source(const ConstMatrixView& source) override {
    wait_for_training();  // the previous step's update must land before this step's prediction
    bank_.forward(row_slots_, source, forward_);
  }

  void on_target(const ConstMatrixView& target) override {
    wait_for_training();
    for (std::int64_t i = 0; i < target.rows; ++i)
      for (std::int64_t j = 0; j < target.cols; ++j) target_(i, j) = target.at(i, j);
  }

  // h̃ = (1+β)·h − β·ŷ (or its LatentMix variant), in place.
  void mix_hidden(const MatrixView& final_hidden) override {
    row_.resize(static_cast<std::size_t>(final_hidden.cols));
    for (std::int64_t i = 0; i < final_hidden.rows; ++i) {
      const float* y_hat = mixable(i);
      if (!y_hat) continue;
      for (std::int64_t j = 0; j < final_hidden.cols; ++j)
        row_[static_cast<std::size_t>(j)] = final_hidden.at(i, j);
      mix_latent_row(row_.data(), y_hat, final_hidden.cols, exploration_.beta,
                     exploration_.latent_mix);
      for (std::int64_t j = 0; j < final_hidden.cols; ++j)
        final_hidden.set(i, j, row_[static_cast<std::size_t>(j)]);
      ++stats_.rows_mixed;
    }
  }

  // ℓ'_v = (1+β)·ℓ_v − β·W_v·ŷ for the filter's candidates v, −inf for every other token.
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override {
    const float beta = exploration_.beta;
    logit_row_.resize(static_cast<std::size_t>(logits.cols));
    const auto load_row = [&](std::int64_t i) {
      for (std::int64_t v = 0; v < logits.cols; ++v)
        logit_row_[static_cast<std::size_t>(v)] = logits.at(i, v);
    };
    // Every row checked before any is written: a refused call leaves the logits as they were.
    for (std::int64_t i = 0; i < logits.rows; ++i) {
      load_row(i);
      checked_argmax(logit_row_);
    }
    for (std::int64_t i = 0; i < logits.rows; ++i) {
      load_row(i);
      select_candidates(logit_row_, filter, candidates_);
      for (std::int64_t v = 0; v < logits.cols; ++v)
        logits.set(i, v, -std::numeric_limits<float>::infinity());
      const float* y_hat = mixable(i);
      for (const int v : candidates_) {
        const float base = logit_row_[static_cast<std::size_t>(v)];
        logits.set(i, v, y_hat ? (1.0f + beta) * base - beta * dot_row(lm_head, v, y_hat) : base);
      }
      stats_.rows_mixed += y_hat ? 1 : 0;
    }
  }

  void end_step() override {
    wait_for_training();
    ++stats_.steps;
    if (row_slots_.empty()) return;
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

  const LatentDistiller& bank() override {
    wait_for_training();
    return bank_;
  }

  void load_bank(const std::string& path) override {
    wait_for_training();
    bank_.load(path);
  }

 private:
  // The prediction to mix into row i, or nullptr when the row is not mixed: β = 0, its slot is
  // still warming up, or its source (hence its prediction) is not finite.
  const float* mixable(std::int64_t i) const {
    if (exploration_.beta == 0.0f) return nullptr;
    if (bank_.updates(row_slots_[static_cast<std::size_t>(i)]) < exploration_.warmup_updates)
      return nullptr;
    const float* y_hat = forward_.prediction(i);
    if (!y_hat) return nullptr;
    for (int j = 0; j < bank_.hidden_size(); ++j)
      if (!std::isfinite(y_hat[j])) return nullptr;
    return y_hat;
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
    const auto rows = static_cast<std::int64_t>(forward_.act_row.size());
    const TrainReport report = bank_.train(
        forward_,
        ConstMatrixView(target_.data(), rows, target_.cols(), target_.cols(), DType::f32));
    stats_.rows_trained += report.rows_trained;
    stats_.rows_skipped_nonfinite += report.rows_nonfinite;
    if (report.slots_updated == 0) return;
    stats_.slot_updates += report.slots_updated;
    stats_.last_loss = report.loss;
    ++steps_trained_;
    stats_.mean_loss += (report.loss - stats_.mean_loss) / static_cast<double>(steps_trained_);
  }

  void wait_for_training() {
    if (worker_) worker_->wait();
  }

  ExplorationConfig exploration_;
  LatentDistiller bank_;
  std::vector<int> row_slots_;  // [rows] slot of each row this step
  ForwardState forward_;        // this step's prediction and saved activations
  Matrix<float> target_;        // [max_rows, H] this step's target rows
  std::vector<float> row_;      // [H] one row of h while it is mixed
  std::vector<float> logit_row_;
  std::vector<int> candidates_;
  Stats stats_;
  std::int64_t steps_trained_ = 0;
  std::unique_ptr<detail::BackgroundWorker> worker_;  // last: destroyed (joined) first
};

}  // namespace esamp::cpu
