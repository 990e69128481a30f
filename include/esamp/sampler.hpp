// ExploratorySampler: the engine-facing object. It owns a LatentDistiller bank, maps groups of rows to
// slots, and implements the per-step hooks of DESIGN.md §2 on the CPU: predict from the source tap,
// mix before (latent) or after (candidates) the LM head, train at end_step with a one-step lag.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/detail/background_worker.hpp"
#include "esamp/distiller.hpp"
#include "esamp/error.hpp"
#include "esamp/sampling.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp {

using GroupId = std::int32_t;

struct Stats {
  std::int64_t steps = 0;                   // end_step calls
  std::int64_t rows_trained = 0;            // rows that trained their slot
  std::int64_t rows_mixed = 0;              // rows whose hidden state or logits were mixed
  std::int64_t rows_skipped_nonfinite = 0;  // rows left out: source or target not finite
  std::int64_t slot_updates = 0;            // optimizer steps, summed over slots
  double last_loss = 0.0;                   // mean loss of the last step that trained
  double mean_loss = 0.0;                   // mean of that over every step that trained
};

class ExploratorySampler {
 public:
  // `num_layers`: decoder layers of the host model (resolves negative tap layers). With
  // Sharing::global the bank has one slot whatever distiller.slots says.
  ExploratorySampler(int num_layers, DistillerConfig distiller, const ExplorationConfig& exploration)
      : num_layers_(num_layers),
        exploration_((exploration.validate(num_layers), exploration)),
        distiller_(bank_config(distiller, exploration)),
        slot_in_use_(static_cast<std::size_t>(distiller_.slots()), 0) {
    const auto H = distiller_.hidden_size();
    forward_.act.resize(exploration_.max_rows, H, distiller_.config().rank);
    target_.resize(exploration_.max_rows, H);
    row_slots_.reserve(static_cast<std::size_t>(exploration_.max_rows));
    if (exploration_.background_training)
      worker_ = std::make_unique<detail::BackgroundWorker>([this] { train_step_rows(); });
  }
  ExploratorySampler(const ExploratorySampler&) = delete;
  ExploratorySampler& operator=(const ExploratorySampler&) = delete;

  const ExplorationConfig& exploration() const { return exploration_; }
  int num_layers() const { return num_layers_; }

  // A new group (the samples of one prompt) with a freshly initialised slot of its own. A full bank
  // is an Error. With global sharing every group shares the one slot, which is never re-initialised.
  GroupId open_group() {
    wait_for_training();
    int slot = 0;
    if (exploration_.sharing == Sharing::per_group) {
      while (slot < distiller_.slots() && slot_in_use_[static_cast<std::size_t>(slot)]) ++slot;
      if (slot == distiller_.slots())
        fail("open_group: the bank is full: all {} slots are in use (DistillerConfig.slots)",
             distiller_.slots());
      slot_in_use_[static_cast<std::size_t>(slot)] = 1;
      distiller_.reset(slot);
    }
    const GroupId id = next_group_++;
    slot_of_group_.emplace(id, slot);
    return id;
  }

  // Frees the group's slot for reuse. Its rows may not appear in later steps.
  void close_group(GroupId group) {
    wait_for_training();
    const int slot = slot_of(group);
    if (in_step_ && std::count(step_groups_.begin(), step_groups_.end(), group) > 0)
      fail("close_group({}): the group has rows in the step under way; close it after end_step",
           group);
    slot_of_group_.erase(group);
    if (exploration_.sharing == Sharing::per_group) slot_in_use_[static_cast<std::size_t>(slot)] = 0;
  }

  // The bank slot serving `group`; an unknown or closed group is an Error.
  int slot_of(GroupId group) const {
    const auto it = slot_of_group_.find(group);
    if (it == slot_of_group_.end()) fail("group {} is unknown (never opened, or closed)", group);
    return it->second;
  }

  // Starts a decode step: row i of every tensor this step belongs to group row_groups[i].
  void begin_step(Span<const GroupId> row_groups) {
    if (in_step_) fail("begin_step: the previous step was not ended (call end_step)");
    if (row_groups.size() > static_cast<std::size_t>(exploration_.max_rows))
      fail("begin_step: {} rows, more than ExplorationConfig.max_rows = {}", row_groups.size(),
           exploration_.max_rows);
    // Resolve every group before changing any state, so a bad id leaves the sampler as it was.
    slots_scratch_.clear();
    for (const GroupId g : row_groups) slots_scratch_.push_back(slot_of(g));
    std::swap(row_slots_, slots_scratch_);
    step_groups_.assign(row_groups.begin(), row_groups.end());
    in_step_ = true;
    have_source_ = have_target_ = mixed_ = false;
  }

  // Whether the engine should hand over this tensor this step (a cheap "ask" pass).
  bool wants(int layer, Site site) const {
    return in_step_ && (is_tap(exploration_.source, layer, site) ||
                        is_tap(exploration_.target, layer, site));
  }

  // The engine hands over a tapped tensor [rows, hidden] (copied; the buffer is free on return).
  void on_hidden(int layer, Site site, const ConstMatrixView& hidden) {
    require_step("on_hidden");
    check_rows("on_hidden: hidden", hidden);
    const bool source = is_tap(exploration_.source, layer, site);
    if (!source && !is_tap(exploration_.target, layer, site))
      fail("on_hidden(layer {}, {}): not a tap of this sampler (ask wants() first)", layer,
           name(site));
    bool& delivered = source ? have_source_ : have_target_;
    if (delivered) fail("on_hidden(layer {}, {}): delivered twice in one step", layer, name(site));
    wait_for_training();  // the previous step's update must land before this step's prediction
    if (source) {
      distiller_.forward(row_slots_, hidden, forward_);
    } else {
      for (std::int64_t i = 0; i < hidden.rows; ++i)
        for (std::int64_t j = 0; j < hidden.cols; ++j) target_(i, j) = hidden.at(i, j);
    }
    delivered = true;
  }

  // Latent mode: h̃ = (1+β)·h − β·ŷ in place on the final-normed hidden states, before the LM head.
  void mix_hidden(const MatrixView& final_hidden) {
    require_mix("mix_hidden", MixMode::latent);
    check_rows("mix_hidden: final_hidden", final_hidden);
    const float beta = exploration_.beta;
    for (std::int64_t i = 0; i < final_hidden.rows; ++i) {
      const float* y_hat = mixable(i);
      if (!y_hat) continue;
      for (std::int64_t j = 0; j < final_hidden.cols; ++j)
        final_hidden.set(i, j, (1.0f + beta) * final_hidden.at(i, j) - beta * y_hat[j]);
      ++stats_.rows_mixed;
    }
  }

  // Candidates mode: on each row, the filter picks the candidates C from the base logits (applied
  // to logits / T); for v in C the logit becomes (1+β)·ℓ_v − β·W_v·ŷ, every other logit −inf.
  // Sample the result with filter.temperature_only(): the temperature divides the mixed logit.
  // With β = 0 (or a row not mixed) the candidates' logits are left bit for bit as they were.
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head, const Filter& filter) {
    require_mix("mix_logits", MixMode::candidates);
    filter.validate();
    const std::int64_t vocab = logits.cols;
    check_view(lm_head, "mix_logits: lm_head", distiller_.hidden_size(), Device::cpu);
    if (lm_head.rows != vocab)
      fail("mix_logits: lm_head has {} rows, the logits have {} columns (vocabulary)", lm_head.rows,
           vocab);
    check_view(logits, "mix_logits: logits", vocab, Device::cpu);
    if (logits.rows != static_cast<std::int64_t>(row_slots_.size()))
      fail("mix_logits: logits has {} rows, the step has {}", logits.rows, row_slots_.size());
    const float beta = exploration_.beta;
    logit_row_.resize(static_cast<std::size_t>(vocab));
    for (std::int64_t i = 0; i < logits.rows; ++i) {
      for (std::int64_t v = 0; v < vocab; ++v) logit_row_[static_cast<std::size_t>(v)] = logits.at(i, v);
      select_candidates(logit_row_, filter, candidates_);
      for (std::int64_t v = 0; v < vocab; ++v)
        logits.set(i, v, -std::numeric_limits<float>::infinity());
      const float* y_hat = mixable(i);
      for (const int v : candidates_) {
        const float base = logit_row_[static_cast<std::size_t>(v)];
        logits.set(i, v, y_hat ? (1.0f + beta) * base - beta * dot_row(lm_head, v, y_hat) : base);
      }
      stats_.rows_mixed += y_hat ? 1 : 0;
    }
  }

  // Ends the step: trains every slot present on this step's (source, target) rows, on a worker
  // thread when ExplorationConfig.background_training is set (joined before the next prediction).
  void end_step() {
    require_step("end_step");
    wait_for_training();
    if (!row_slots_.empty() && !(have_source_ && have_target_))
      fail("end_step: the {} tap (layer {}, {}) was not delivered this step",
           have_source_ ? "target" : "source",
           resolved(have_source_ ? exploration_.target : exploration_.source).layer,
           name((have_source_ ? exploration_.target : exploration_.source).site));
    in_step_ = false;
    ++stats_.steps;
    if (row_slots_.empty()) return;
    if (worker_) {
      worker_->start();
    } else {
      train_step_rows();
    }
  }

  // Waits for pending training.
  const Stats& stats() {
    wait_for_training();
    return stats_;
  }
  LatentDistiller& distiller() {
    wait_for_training();
    return distiller_;
  }

 private:
  static DistillerConfig bank_config(DistillerConfig config, const ExplorationConfig& exploration) {
    if (exploration.sharing == Sharing::global) config.slots = 1;
    return config;
  }

  Tap resolved(Tap tap) const {
    return {tap.layer < 0 ? tap.layer + num_layers_ : tap.layer, tap.site};
  }
  bool is_tap(Tap tap, int layer, Site site) const {
    const Tap t = resolved(tap);
    return t.layer == layer && t.site == site;
  }

  void require_step(const char* hook) const {
    if (!in_step_) fail("{}: called outside a step (call begin_step first)", hook);
  }
  void require_mix(const char* hook, MixMode mode) {
    require_step(hook);
    if (exploration_.mix != mode)
      fail("{}: the sampler is configured for ExplorationConfig.mix = {}", hook,
           name(exploration_.mix));
    if (!row_slots_.empty() && !have_source_)
      fail("{}: the source tap was not delivered yet this step", hook);
    if (mixed_) fail("{}: called twice in one step", hook);
    mixed_ = true;
    wait_for_training();
  }
  void check_rows(const char* what, const ConstMatrixView& m) const {
    check_view(m, what, distiller_.hidden_size(), Device::cpu);
    if (m.rows != static_cast<std::int64_t>(row_slots_.size()))
      fail("{}: has {} rows, the step has {}", what, m.rows, row_slots_.size());
  }

  // The prediction to mix into row i, or nullptr when the row is not mixed: β = 0, its slot is
  // still warming up, or its source (hence its prediction) is not finite.
  const float* mixable(std::int64_t i) const {
    if (exploration_.beta == 0.0f) return nullptr;
    if (distiller_.updates(row_slots_[static_cast<std::size_t>(i)]) < exploration_.warmup_updates)
      return nullptr;
    const float* y_hat = forward_.prediction(i);
    if (!y_hat) return nullptr;
    for (int j = 0; j < distiller_.hidden_size(); ++j)
      if (!std::isfinite(y_hat[j])) return nullptr;
    return y_hat;
  }

  static float dot_row(const ConstMatrixView& m, std::int64_t r, const float* x) {
    if (m.dtype == DType::f32)
      return Eigen::Map<const cpu::RowVector<float>>(static_cast<const float*>(m.data) + r * m.stride,
                                                     m.cols)
          .dot(Eigen::Map<const cpu::RowVector<float>>(x, m.cols));
    float sum = 0.0f;
    for (std::int64_t j = 0; j < m.cols; ++j) sum += m.at(r, j) * x[j];
    return sum;
  }

  void train_step_rows() {
    const auto rows = static_cast<std::int64_t>(forward_.act_row.size());
    const TrainReport report = distiller_.train(
        forward_, ConstMatrixView(target_.data(), rows, target_.cols(), target_.cols(), DType::f32));
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

  int num_layers_;
  ExplorationConfig exploration_;
  LatentDistiller distiller_;
  std::unordered_map<GroupId, int> slot_of_group_;
  std::vector<std::uint8_t> slot_in_use_;
  GroupId next_group_ = 0;

  bool in_step_ = false, have_source_ = false, have_target_ = false, mixed_ = false;
  std::vector<int> row_slots_, slots_scratch_;  // [rows] slot of each row this step
  std::vector<GroupId> step_groups_;            // [rows] group of each row this step
  ForwardState forward_;                        // this step's prediction and saved activations
  cpu::Matrix<float> target_;                   // [max_rows, H] this step's target rows
  std::vector<float> logit_row_;
  std::vector<int> candidates_;

  Stats stats_;
  std::int64_t steps_trained_ = 0;
  std::unique_ptr<detail::BackgroundWorker> worker_;  // last: destroyed (joined) first
};

}  // namespace esamp
