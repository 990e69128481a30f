// ExploratorySampler, the front end: the one engine-facing object. It maps groups of rows (the
// samples of one prompt) to slots of a distiller bank, each group with its own exploration
// strength β, checks every argument and the order of every hook call, and drives a SamplerBackend
// (backend.hpp) through the per-step hooks of DESIGN.md §2: predict from the source tap, mix
// before (latent) or after (candidates) the LM head, train at end_step with a one-step lag. The
// backends trust it: no check is repeated below this layer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "esamp/backend.hpp"
#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/core.hpp"
#include "esamp/cpu/backend.hpp"
#include "esamp/error.hpp"
#include "esamp/sampling.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp {

using GroupId = std::int32_t;

// With Sharing::global the bank has one slot whatever DistillerConfig::slots says; with
// ExplorationConfig::warm_start it has one more, its last, for the prior (never trained itself:
// close_group hands it a group's trained parameters, open_group starts a new group from them).
inline DistillerConfig bank_config(DistillerConfig config, const ExplorationConfig& exploration) {
  if (exploration.sharing == Sharing::global) config.slots = 1;
  if (exploration.has_prior()) ++config.slots;
  return config;
}

class ExploratorySampler {
  struct Group {
    int slot;
    float beta;
  };
  template <class Self>
  static auto& find(Self& self, GroupId group) {
    const auto it = self.groups_.find(group);
    if (it == self.groups_.end()) fail("group {} is unknown (never opened, or closed)", group);
    return it->second;
  }
  const Group& find(GroupId group) const { return find(*this, group); }
  Group& find(GroupId group) { return find(*this, group); }

 public:
  // `num_layers`: decoder layers of the host model (resolves negative tap layers). `backend` builds
  // where the work runs: cpu::backend() (the default) or esamp::cuda::backend(stream).
  ExploratorySampler(int num_layers, const DistillerConfig& distiller,
                     const ExplorationConfig& exploration,
                     const BackendFactory& backend = cpu::backend())
      : num_layers_(num_layers),
        exploration_((exploration.validate(num_layers), exploration)),
        distiller_((distiller.validate(), bank_config(distiller, exploration))),
        backend_(backend ? backend(distiller_, exploration_) : nullptr),
        slot_in_use_(
            static_cast<std::size_t>(distiller_.slots - (exploration_.has_prior() ? 1 : 0)), 0),
        slot_trained_(slot_in_use_.size(), 0) {
    if (!backend_) fail("ExploratorySampler: the backend factory returned no backend");
    row_slots_.reserve(static_cast<std::size_t>(exploration_.max_rows));
    row_beta_.reserve(static_cast<std::size_t>(exploration_.max_rows));
    step_groups_.reserve(static_cast<std::size_t>(exploration_.max_rows));
  }
  ExploratorySampler(const ExploratorySampler&) = delete;
  ExploratorySampler& operator=(const ExploratorySampler&) = delete;

  const ExplorationConfig& exploration() const { return exploration_; }
  const DistillerConfig& distiller_config() const { return distiller_; }
  int num_layers() const { return num_layers_; }
  // Between begin_step and end_step.
  bool in_step() const { return in_step_; }
  Device device() const { return backend_->device(); }

  // A new group (the samples of one prompt) with a freshly initialised slot of its own, mixed with
  // exploration strength `beta` (default ExplorationConfig.beta). A full bank is an Error. With
  // global sharing every group shares the one slot, which is never re-initialised; with warm_start
  // the slot starts from the prior's parameters (those of the last group closed after training).
  GroupId open_group() { return open_group(exploration_.beta); }
  GroupId open_group(float beta) { return open_group(beta, true); }
  // warm_start = false: the slot starts from the seeded initialisation even when the bank keeps a
  // prior, so that what the group samples does not depend on the groups closed before it.
  GroupId open_group(float beta, bool warm_start) {
    detail::check_beta("open_group: beta", beta);
    int slot = 0;
    if (exploration_.sharing == Sharing::per_group) {
      const auto slots = static_cast<int>(slot_in_use_.size());  // the prior's not among them
      while (slot < slots && slot_in_use_[static_cast<std::size_t>(slot)]) ++slot;
      if (slot == slots)
        throw BankFull(fmt::format(
            "open_group: the bank is full: all {} slots are in use (DistillerConfig.slots)",
            slots));
      backend_->reset_slot(slot, warm_start ? prior_slot() : -1);
      slot_in_use_[static_cast<std::size_t>(slot)] = 1;
      slot_trained_[static_cast<std::size_t>(slot)] = 0;
    }
    const GroupId id = next_group_++;
    groups_.emplace(id, Group{slot, beta});
    return id;
  }

  // Frees the group's slot for reuse. Its rows may not appear in later steps. With warm_start a
  // group that trained hands its slot's parameters to the prior, for the groups opened after.
  void close_group(GroupId group) {
    const int slot = slot_of(group);
    if (in_step_ && std::count(step_groups_.begin(), step_groups_.end(), group) > 0)
      fail("close_group({}): the group has rows in the step under way; close it after end_step",
           group);
    if (exploration_.has_prior() && slot_trained_[static_cast<std::size_t>(slot)])
      backend_->reset_slot(prior_slot(), slot);
    groups_.erase(group);
    if (exploration_.sharing == Sharing::per_group)
      slot_in_use_[static_cast<std::size_t>(slot)] = 0;
  }

  // Changes a group's exploration strength from the next begin_step on (β = 0: its rows are left
  // bit for bit, its slot still trains).
  void set_beta(GroupId group, float beta) {
    Group& g = find(group);
    detail::check_beta("set_beta: beta", beta);
    g.beta = beta;
  }
  float beta(GroupId group) const { return find(group).beta; }

  // The bank slot serving `group`; an unknown or closed group is an Error.
  int slot_of(GroupId group) const { return find(group).slot; }

  // Starts a decode step: row i of every tensor this step belongs to group row_groups[i].
  void begin_step(Span<const GroupId> row_groups) {
    if (in_step_) fail("begin_step: the previous step was not ended (call end_step)");
    if (row_groups.size() > static_cast<std::size_t>(exploration_.max_rows))
      fail("begin_step: {} rows, more than ExplorationConfig.max_rows = {}", row_groups.size(),
           exploration_.max_rows);
    // row_slots_ is read only inside a step: a bad id throws here, before the step starts.
    row_slots_.clear();
    row_beta_.clear();
    for (const GroupId g : row_groups) {
      const Group& group = find(g);
      row_slots_.push_back(group.slot);
      row_beta_.push_back(group.beta);
    }
    step_groups_.assign(row_groups.begin(), row_groups.end());
    backend_->begin_step(row_slots_, row_beta_);
    in_step_ = true;
    have_source_ = have_target_ = mixed_ = false;
  }

  // Whether the engine should hand over this tensor this step (a cheap "ask" pass).
  bool wants(int layer, Site site) const {
    return in_step_ &&
           (is_tap(exploration_.source, layer, site) || is_tap(exploration_.target, layer, site));
  }

  // The engine hands over a tapped tensor [rows, hidden] (copied; on the CPU the buffer is free on
  // return, on CUDA once the engine stream has passed this point).
  void on_hidden(int layer, Site site, const ConstMatrixView& hidden) {
    require_step("on_hidden");
    check_rows("on_hidden: hidden", hidden);
    const bool source = is_tap(exploration_.source, layer, site);
    if (!source && !is_tap(exploration_.target, layer, site))
      fail("on_hidden(layer {}, {}): not a tap of this sampler (ask wants() first)", layer,
           name(site));
    bool& delivered = source ? have_source_ : have_target_;
    if (delivered) fail("on_hidden(layer {}, {}): delivered twice in one step", layer, name(site));
    if (source) {
      backend_->on_source(hidden);
    } else {
      backend_->on_target(hidden);
    }
    delivered = true;
  }

  // The engine's two mixing points, whatever the mode: it calls both, in this order, and samples
  // with sampling_filter(its filter); the sampler mixes where its ExplorationConfig.mix says, so a
  // new mixing mode changes the library, not the engines. Before the LM head, on the final-normed
  // rows (latent mode: mix_hidden). These rows are also the target tap when it is final_normed
  // (the default) and the engine has not handed it over this step.
  void before_lm_head(const MatrixView& final_hidden) {
    require_step("before_lm_head");
    if (exploration_.target.site == Site::final_normed && !have_target_)
      on_hidden(num_layers_ - 1, Site::final_normed, final_hidden);
    switch (exploration_.mix) {
      case MixMode::latent:
        mix_hidden(final_hidden);
        return;
      case MixMode::candidates:
        return;
    }
  }
  // After the LM head, on its logits; `filter` is the one the engine samples with (candidates
  // mode: mix_logits, which needs it; may be null in latent mode).
  void after_lm_head(const MatrixView& logits, const ConstMatrixView& lm_head,
                     const Filter* filter) {
    require_step("after_lm_head");
    switch (exploration_.mix) {
      case MixMode::latent:
        return;
      case MixMode::candidates:
        if (filter == nullptr)
          fail(
              "after_lm_head: ExplorationConfig.mix = candidates needs the filter that picks the "
              "candidates, and the filter is null");
        mix_logits(logits, lm_head, *filter);
        return;
    }
  }
  // The filter to sample the mixed logits with: in candidates mode the candidates are already
  // chosen, so only the temperature remains (it divides the mixed logit).
  Filter sampling_filter(const Filter& filter) const {
    switch (exploration_.mix) {
      case MixMode::latent:
        return filter;
      case MixMode::candidates:
        return filter.temperature_only();
    }
    return filter;
  }

  // Latent mode: h̃ = (1+β)·h − β·ŷ in place on the final-normed hidden states, before the LM
  // head. Rows not mixed (β = 0, slot warming up, non-finite source) are left bit for bit.
  void mix_hidden(const MatrixView& final_hidden) {
    require_mix("mix_hidden", MixMode::latent);
    check_rows("mix_hidden: final_hidden", final_hidden);
    backend_->mix_hidden(final_hidden);
    mixed_ = true;  // only once it succeeded: after an error the step may mix again
  }

  // Candidates mode: on each row, the filter picks the candidates C from the base logits (applied
  // to logits / T); for v in C the logit becomes (1+β)·ℓ_v − β·W_v·ŷ, every other logit −inf.
  // Sample the result with filter.temperature_only(): the temperature divides the mixed logit.
  // With β = 0 (or a row not mixed) the candidates' logits are left bit for bit as they were.
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head, const Filter& filter) {
    require_mix("mix_logits", MixMode::candidates);
    filter.validate();
    check_view(lm_head, "mix_logits: lm_head", distiller_.hidden_size, device());
    check_view(logits, "mix_logits: logits", lm_head.rows, device());
    if (logits.rows != static_cast<std::int64_t>(row_slots_.size()))
      fail("mix_logits: logits has {} rows, the step has {}", logits.rows, row_slots_.size());
    backend_->mix_logits(logits, lm_head, filter);
    mixed_ = true;
  }

  // Ends the step: trains every slot present on this step's (source, target) rows (on the CPU, on
  // a worker thread when ExplorationConfig.background_training is set).
  void end_step() {
    require_step("end_step");
    if (!row_slots_.empty() && !(have_source_ && have_target_)) {
      const Tap missing = resolved(have_source_ ? exploration_.target : exploration_.source);
      fail("end_step: the {} tap (layer {}, {}) was not delivered this step",
           have_source_ ? "target" : "source", missing.layer, name(missing.site));
    }
    in_step_ = false;
    for (const int slot : row_slots_) slot_trained_[static_cast<std::size_t>(slot)] = 1;
    backend_->end_step();
  }

  // Counters so far; waits for scheduled training.
  Stats stats() { return backend_->stats(); }
  // The counters of `group` since it opened: its rows mixed, trained and skipped, its slot's
  // updates and losses; waits for scheduled training. With Sharing::global every group shares the
  // one slot, never reset, and reports the counters of all rows since construction. An unknown or
  // closed group is an Error: read a group's counters before close_group.
  GroupStats group_stats(GroupId group) { return backend_->slot_stats(slot_of(group)); }
  // The bank as it stands after all scheduled training, by value (copied back from a device only
  // now); LatentDistiller(sampler.bank()) inspects or continues it on the CPU.
  BankState bank() { return backend_->bank(); }

  // The whole bank with its optimizer state (BankState's file format). Groups are not part of the
  // file: after load_bank, a group keeps its slot and continues from the loaded state. A bad file
  // is an Error and leaves the bank unchanged.
  void save_bank(const std::string& path) { backend_->bank().save(path); }
  void load_bank(const std::string& path) {
    if (in_step_) fail("load_bank: called inside a step (call end_step first)");
    const BankState state = BankState::read(path, distiller_);
    backend_->set_bank(state);
    for (std::size_t slot = 0; slot < slot_trained_.size(); ++slot)
      slot_trained_[slot] = state.updates(static_cast<int>(slot)) > 0 ? 1 : 0;
  }

 private:
  // The warm start's prior: the bank's last slot, or -1 without one.
  int prior_slot() const { return exploration_.has_prior() ? distiller_.slots - 1 : -1; }

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
  void require_mix(const char* hook, MixMode mode) const {
    require_step(hook);
    if (exploration_.mix != mode)
      fail("{}: the sampler is configured for ExplorationConfig.mix = {}", hook,
           name(exploration_.mix));
    if (!row_slots_.empty() && !have_source_)
      fail("{}: the source tap was not delivered yet this step", hook);
    if (mixed_) fail("{}: called twice in one step", hook);
  }
  void check_rows(const char* what, const ConstMatrixView& m) const {
    check_view(m, what, distiller_.hidden_size, device());
    if (m.rows != static_cast<std::int64_t>(row_slots_.size()))
      fail("{}: has {} rows, the step has {}", what, m.rows, row_slots_.size());
  }

  int num_layers_;
  ExplorationConfig exploration_;
  DistillerConfig distiller_;  // as the bank was built (one slot with global sharing, +1 prior)
  std::unique_ptr<SamplerBackend> backend_;
  std::unordered_map<GroupId, Group> groups_;
  std::vector<std::uint8_t> slot_in_use_;  // [the bank's slots but the prior] groups' slots
  // [as slot_in_use_] the slot had rows in a step since its group opened (or has updates in a
  // loaded bank): with warm_start, closing its group hands it to the prior.
  std::vector<std::uint8_t> slot_trained_;
  GroupId next_group_ = 0;

  bool in_step_ = false, have_source_ = false, have_target_ = false, mixed_ = false;
  std::vector<int> row_slots_;        // [rows] slot of each row this step
  std::vector<float> row_beta_;       // [rows] β of each row's group this step
  std::vector<GroupId> step_groups_;  // [rows] group of each row this step
};

}  // namespace esamp
