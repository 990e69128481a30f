// SamplerBackend: the one interface between the front end (sampler.hpp) and where the numbers are
// computed (esamp/cpu/backend.hpp, esamp/cuda.hpp). The front end owns groups, slots, validation
// and the step's state machine; it calls a backend only with checked arguments, in the hook order
// of DESIGN.md §2, so a backend trusts every argument and checks nothing again.
//
//   front end (ExploratorySampler) --> SamplerBackend <-- cpu::Backend, cuda::Backend --> kernels
#pragma once

#include <functional>
#include <memory>

#include "esamp/bank.hpp"
#include "esamp/config.hpp"
#include "esamp/core.hpp"
#include "esamp/sampling.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp {

class SamplerBackend {
 public:
  virtual ~SamplerBackend() = default;

  virtual Device device() const = 0;
  // Restarts `slot` from the seeded initialisation (from < 0) or from slot `from`'s parameters,
  // and clears its optimizer state, update count and record (slot_stats).
  virtual void reset_slot(int slot, int from) = 0;
  // Row i of this step's tensors is served by bank slot row_slots[i] and mixed with row_beta[i].
  virtual void begin_step(Span<const int> row_slots, Span<const float> row_beta) = 0;
  // The source rows: predict ŷ with the parameters after the previous step.
  virtual void on_source(const ConstMatrixView& source) = 0;
  // The target rows, kept for training at end_step.
  virtual void on_target(const ConstMatrixView& target) = 0;
  // h̃ = (1+β)·h − β·ŷ in place on rows that are mixed (DESIGN.md §1).
  virtual void mix_hidden(const MatrixView& final_hidden) = 0;
  // ℓ'_v = (1+β)·ℓ_v − β·W_v·ŷ on the filter's candidates, −inf elsewhere.
  virtual void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                          const Filter& filter) = 0;
  // Schedules training on this step's rows; the next on_source sees its result.
  virtual void end_step() = 0;
  // Counters so far, once all scheduled work is done.
  virtual Stats stats() = 0;
  // The counters of `slot`'s rows since its last reset_slot (set_bank leaves them), likewise.
  virtual GroupStats slot_stats(int slot) = 0;
  // The bank as it stands once all scheduled work is done (a device backend copies it back now).
  virtual BankState bank() = 0;
  // Replaces the whole bank, between steps; `state` has this bank's shape.
  virtual void set_bank(const BankState& state) = 0;
};

// Builds a backend for a bank of `distiller` (validated; slots already set by the sharing mode).
using BackendFactory = std::function<std::unique_ptr<SamplerBackend>(
    const DistillerConfig& distiller, const ExplorationConfig& exploration)>;

}  // namespace esamp
