// SamplerBackend: the numeric half of an ExploratorySampler on one device. The front end
// (sampler.hpp) owns groups, slots, validation and the step's state machine, and calls a backend
// only with checked arguments, in the hook order of DESIGN.md §2.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "esamp/config.hpp"
#include "esamp/distiller.hpp"
#include "esamp/sampling.hpp"
#include "esamp/span.hpp"
#include "esamp/tensor.hpp"

namespace esamp {

struct Stats {
  std::int64_t steps = 0;                   // end_step calls
  std::int64_t rows_trained = 0;            // rows that trained their slot
  std::int64_t rows_mixed = 0;              // rows whose hidden state or logits were mixed
  std::int64_t rows_skipped_nonfinite = 0;  // rows left out: source or target not finite
  std::int64_t slot_updates = 0;            // optimizer steps, summed over slots
  double last_loss = 0.0;                   // mean loss of the last step that trained
  double mean_loss = 0.0;                   // mean of that over every step that trained
};

class SamplerBackend {
 public:
  virtual ~SamplerBackend() = default;

  virtual Device device() const = 0;
  // Re-initialises a slot (seeded) and clears its optimizer state.
  virtual void reset_slot(int slot) = 0;
  // Row i of this step's tensors is served by bank slot row_slots[i].
  virtual void begin_step(Span<const int> row_slots) = 0;
  // The source rows: predict ŷ with the parameters after the previous step.
  virtual void on_source(const ConstMatrixView& source) = 0;
  // The target rows, kept for training at end_step.
  virtual void on_target(const ConstMatrixView& target) = 0;
  virtual void mix_hidden(const MatrixView& final_hidden) = 0;
  virtual void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                          const Filter& filter) = 0;
  // Schedules training on this step's rows; the next on_source sees its result.
  virtual void end_step() = 0;
  // Counters so far, once all scheduled work is done.
  virtual Stats stats() = 0;
  // The bank, as it stands once all scheduled work is done (device backends copy it back).
  virtual const LatentDistiller& bank() = 0;
  // Replaces the bank with one saved by LatentDistiller::save; on error the bank is unchanged.
  virtual void load_bank(const std::string& path) = 0;
};

// Builds a backend for a bank of `distiller` (slots already set by the sharing mode).
using BackendFactory = std::function<std::unique_ptr<SamplerBackend>(
    const DistillerConfig& distiller, const ExplorationConfig& exploration)>;

}  // namespace esamp
