// The vocabulary every backend shares (DESIGN.md §1, §2): one slot's parameter layout and its
// seeded initialisation, the optimizer settings, the counters, and the step plan that groups a
// step's rows by slot. Plain C++ with no Eigen and no CUDA types, so the front end, the CPU
// backend, the CUDA host code and the kernels all include it. Nothing here checks its arguments:
// the front end (sampler.hpp) and LatentDistiller do, once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/span.hpp"

#if defined(__CUDACC__)
#define ESAMP_HOST_DEVICE __host__ __device__
#else
#define ESAMP_HOST_DEVICE
#endif

namespace esamp {

// One slot's fp32 parameters as a flat array: A [H, r], G [H, r], B [r, H], b [r], w [H], c [H].
struct ParameterLayout {
  std::int64_t hidden = 0;
  std::int64_t rank = 0;

  ESAMP_HOST_DEVICE constexpr std::int64_t offset_A() const { return 0; }
  ESAMP_HOST_DEVICE constexpr std::int64_t offset_G() const { return hidden * rank; }
  ESAMP_HOST_DEVICE constexpr std::int64_t offset_B() const { return 2 * hidden * rank; }
  ESAMP_HOST_DEVICE constexpr std::int64_t offset_b() const { return 3 * hidden * rank; }
  ESAMP_HOST_DEVICE constexpr std::int64_t offset_w() const { return offset_b() + rank; }
  ESAMP_HOST_DEVICE constexpr std::int64_t offset_c() const { return offset_w() + hidden; }
  ESAMP_HOST_DEVICE constexpr std::int64_t size() const { return offset_c() + hidden; }
  // b, w, c are contiguous at the end: the "vector" parameters, reduced over rows, not GEMMs.
  ESAMP_HOST_DEVICE constexpr std::int64_t vector_size() const { return size() - offset_b(); }
};

// The fewest bytes one optimizer update of a slot moves through memory (DESIGN.md §6): the
// forward reads the parameters, the backward reads B again, and the update reads and writes the
// parameters and, with AdamW, both moments (the CPU path forms each gradient block in cache).
// Over the memory's bandwidth it is the floor of esamp's cost per slot trained in a step.
inline std::int64_t update_bytes(const DistillerConfig& config) {
  const ParameterLayout l{config.hidden_size, config.rank};
  const std::int64_t updated_arrays = config.optimizer == Optimizer::adamw ? 3 : 1;
  return static_cast<std::int64_t>(sizeof(float)) *
         (l.size() + l.rank * l.hidden + 2 * updated_arrays * l.size());
}

// A reproducible standard normal for draw `index` of stream `seed`: splitmix64 then Box-Muller.
inline double seeded_normal(std::uint64_t seed, std::uint64_t index) {
  const auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  const std::uint64_t h1 = mix(seed ^ mix(2 * index));
  const std::uint64_t h2 = mix(seed ^ mix(2 * index + 1));
  const double u1 = (static_cast<double>(h1 >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(h2 >> 11) * 0x1.0p-53;          // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A, G, B ~ N(0, init_std²), b = 1, w = 1, c = 0. Depends on the seed only, never on the slot, so a
// group's results do not depend on which slot it was given.
template <class S>
void initialize(S* params, const ParameterLayout& l, std::uint64_t seed, double init_std) {
  for (std::int64_t i = 0; i < l.offset_b(); ++i)
    params[i] = static_cast<S>(init_std * seeded_normal(seed, static_cast<std::uint64_t>(i)));
  for (std::int64_t i = l.offset_b(); i < l.offset_c(); ++i) params[i] = S(1);
  for (std::int64_t i = l.offset_c(); i < l.size(); ++i) params[i] = S(0);
}

// AdamW / SGD hyperparameters (SGD reads lr only). The CUDA backend keeps them in device memory,
// so a change needs no graph re-capture (as ggml's opt-step-adamw takes them).
struct OptimizerSettings {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;

  static OptimizerSettings of(const DistillerConfig& c) {
    return {c.lr, c.adam_beta1, c.adam_beta2, c.adam_eps, c.weight_decay};
  }
};

// The two constants of a slot's t-th AdamW update (t from 1): the step size lr / (1 − β1^t) and
// 1 / √(1 − β2^t), each computed in double and rounded once to float. With them the update of one
// parameter is one square root and one division (cpu::adamw_update and the kernels' apply_update,
// op for op): θ ← θ (1 − lr·wd) − step_size · m / (√v · inv_sqrt_bias2 + eps).
struct AdamWScale {
  float step_size = 0.0f;
  float inv_sqrt_bias2 = 0.0f;
};

ESAMP_HOST_DEVICE inline AdamWScale adamw_scale(const OptimizerSettings& s, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double bias1 = 1.0 - pow(static_cast<double>(s.beta1), t);
  const double bias2 = 1.0 - pow(static_cast<double>(s.beta2), t);
  return {static_cast<float>(static_cast<double>(s.lr) / bias1),
          static_cast<float>(1.0 / sqrt(bias2))};
}

// What a backend's training step does beyond one update per slot present at DistillerConfig.lr
// (ExplorationConfig.young_updates, young_repeat, lr_decay_updates), for the CPU and the CUDA
// backend alike.
struct TrainingSchedule {
  int young_updates = 0;     // a slot with fewer updates than this is young...
  int young_repeat = 1;      // ...and is updated this many times per step
  int lr_decay_updates = 0;  // > 0: lr · d / (d + n) for a slot with n updates

  static TrainingSchedule of(const ExplorationConfig& e) {
    return {e.young_updates, e.young_repeat, e.lr_decay_updates};
  }
  // The updates a young slot gets after its first of a step (the CUDA backend runs this many
  // masked passes every step).
  int young_passes() const { return young_updates > 0 ? young_repeat - 1 : 0; }
  // The lr of a slot's update number `step` (from 1), computed in double and rounded once.
  ESAMP_HOST_DEVICE float lr(float base, std::int64_t step) const {
    if (lr_decay_updates <= 0) return base;
    const double d = static_cast<double>(lr_decay_updates);
    return static_cast<float>(static_cast<double>(base) * d / (d + static_cast<double>(step - 1)));
  }
};

// Counters since construction; the CUDA kernels update the same record in device memory.
struct Stats {
  std::int64_t steps = 0;                   // end_step calls
  std::int64_t rows_trained = 0;            // rows that trained their slot
  std::int64_t rows_mixed = 0;              // rows whose hidden state or logits were mixed
  std::int64_t rows_skipped_nonfinite = 0;  // rows left out: source or target not finite
  std::int64_t slot_updates = 0;            // optimizer steps, summed over slots
  std::int64_t steps_trained = 0;           // steps that updated at least one slot
  double last_loss = 0.0;                   // mean loss of the last step that trained
  double mean_loss = 0.0;                   // mean of that over every step that trained
};
static_assert(sizeof(std::int64_t) == sizeof(unsigned long long), "device atomics on Stats");

// The counters of one group: Stats' fields for the rows of one bank slot since the slot was last
// reset (its group opened). Both backends keep one per slot (the CUDA kernels in device memory);
// ExploratorySampler::group_stats reads it.
struct GroupStats {
  std::int64_t rows_trained = 0;            // the group's rows that trained its slot
  std::int64_t rows_mixed = 0;              // the group's rows that were mixed
  std::int64_t rows_skipped_nonfinite = 0;  // its rows left out: source or target not finite
  std::int64_t slot_updates = 0;            // optimizer steps of its slot
  std::int64_t steps_trained = 0;           // steps that updated its slot
  double last_loss = 0.0;                   // its slot's mean loss in the last step that trained it
  double mean_loss = 0.0;                   // mean of that over every step that trained it
};

// One more step that trained, of mean loss `loss`, in a Stats or GroupStats record: last_loss,
// and mean_loss as a running mean over steps_trained.
template <class Record>
ESAMP_HOST_DEVICE void add_trained_step(Record& r, double loss) {
  r.last_loss = loss;
  ++r.steps_trained;
  r.mean_loss += (loss - r.mean_loss) / static_cast<double>(r.steps_trained);
}

// A step of one slot in its record: of the slot's `rows` rows this step, `used` trained it (the
// others were not finite) in `updates` optimizer steps, the first of mean loss `loss`.
ESAMP_HOST_DEVICE inline void add_slot_step(GroupStats& s, int rows, int used, int updates,
                                            float loss) {
  s.rows_trained += used;
  s.rows_skipped_nonfinite += rows - used;
  s.slot_updates += updates;
  if (used > 0) add_trained_step(s, loss);
}

// Rows per tile of the row-major GEMMs: a slot's rows are cut into tiles of at most this many.
constexpr int kRowTile = 32;

// Where each part of a step plan lies in its int32 array. A step's rows are grouped by slot
// ("segments", ascending slot, rows of a segment in input order) and each segment is cut into
// row tiles; the plan also carries each row's β. Kernels read all of it from device memory, so
// grids are sized by the capacity and a captured CUDA graph replays whatever the rows of the step.
struct StepPlanLayout {
  int max_rows = 0;
  int max_segments = 0;  // min(slots, max_rows): at most one segment per row
  int max_tiles = 0;  // ceil(max_rows / kRowTile) + max_segments bounds sum(ceil(n_s / kRowTile))

  static constexpr int kHeader = 4;  // rows, segments, tiles, (padding)

  static StepPlanLayout make(int max_rows, int slots) {
    StepPlanLayout l;
    l.max_rows = max_rows;
    l.max_segments = std::min(slots, max_rows);
    l.max_tiles = (max_rows + kRowTile - 1) / kRowTile + l.max_segments;
    return l;
  }

  ESAMP_HOST_DEVICE constexpr std::int64_t row_position() const { return kHeader; }
  ESAMP_HOST_DEVICE constexpr std::int64_t position_row() const { return kHeader + max_rows; }
  ESAMP_HOST_DEVICE constexpr std::int64_t position_segment() const {
    return kHeader + 2 * std::int64_t{max_rows};
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t row_beta() const {
    return kHeader + 3 * std::int64_t{max_rows};
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t segment_slot() const {
    return kHeader + 4 * std::int64_t{max_rows};
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t segment_begin() const {
    return segment_slot() + max_segments;
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t segment_end() const {
    return segment_begin() + max_segments;
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t tile_segment() const {
    return segment_end() + max_segments;
  }
  ESAMP_HOST_DEVICE constexpr std::int64_t tile_begin() const { return tile_segment() + max_tiles; }
  ESAMP_HOST_DEVICE constexpr std::int64_t size() const { return tile_begin() + max_tiles; }
};

// Read access to a step plan in memory (device memory in kernels, host memory on the CPU).
struct StepPlanView {
  const std::int32_t* data = nullptr;
  StepPlanLayout layout;

  ESAMP_HOST_DEVICE int rows() const { return data[0]; }
  ESAMP_HOST_DEVICE int segments() const { return data[1]; }
  ESAMP_HOST_DEVICE int tiles() const { return data[2]; }
  // Grouped position of input row i, and the reverse.
  ESAMP_HOST_DEVICE int row_position(int i) const { return data[layout.row_position() + i]; }
  ESAMP_HOST_DEVICE int position_row(int p) const { return data[layout.position_row() + p]; }
  ESAMP_HOST_DEVICE int position_segment(int p) const {
    return data[layout.position_segment() + p];
  }
  // The exploration strength of input row i (its group's β), stored as float bits.
  ESAMP_HOST_DEVICE float row_beta(int i) const {
#if defined(__CUDA_ARCH__)
    return __int_as_float(data[layout.row_beta() + i]);
#else
    float beta;
    std::memcpy(&beta, &data[layout.row_beta() + i], sizeof beta);
    return beta;
#endif
  }
  ESAMP_HOST_DEVICE int segment_slot(int s) const { return data[layout.segment_slot() + s]; }
  ESAMP_HOST_DEVICE int segment_begin(int s) const { return data[layout.segment_begin() + s]; }
  ESAMP_HOST_DEVICE int segment_end(int s) const { return data[layout.segment_end() + s]; }
  ESAMP_HOST_DEVICE int tile_segment(int t) const { return data[layout.tile_segment() + t]; }
  ESAMP_HOST_DEVICE int tile_begin(int t) const { return data[layout.tile_begin() + t]; }
};

// Builds step plans on the host (a counting sort by slot); the one place rows are grouped, for the
// CPU and the CUDA backend alike. Its scratch is sized once, so a build allocates nothing. Trusts
// its caller: at most max_rows rows, slot ids in [0, slots), as the front end has checked.
class StepPlanBuilder {
 public:
  StepPlanBuilder(const StepPlanLayout& layout, int slots)
      : layout_(layout), rows_of_slot_(static_cast<std::size_t>(slots), 0) {
    present_.reserve(static_cast<std::size_t>(layout.max_segments));
  }

  const StepPlanLayout& layout() const { return layout_; }

  // Writes the plan of a step whose row i belongs to slot row_slots[i] and explores with
  // row_beta[i] into `plan` (layout().size() ints).
  void build(Span<const int> row_slots, Span<const float> row_beta, std::int32_t* plan) {
    const auto rows = static_cast<int>(row_slots.size());
    present_.clear();
    for (const int s : row_slots)
      if (rows_of_slot_[static_cast<std::size_t>(s)]++ == 0) present_.push_back(s);
    std::sort(present_.begin(), present_.end());

    const auto segments = static_cast<int>(present_.size());
    int tiles = 0, begin = 0;
    for (int k = 0; k < segments; ++k) {
      const int slot = present_[static_cast<std::size_t>(k)];
      const int end = begin + rows_of_slot_[static_cast<std::size_t>(slot)];
      plan[layout_.segment_slot() + k] = slot;
      plan[layout_.segment_begin() + k] = begin;
      plan[layout_.segment_end() + k] = end;
      for (int t = begin; t < end; t += kRowTile, ++tiles) {
        plan[layout_.tile_segment() + tiles] = k;
        plan[layout_.tile_begin() + tiles] = t;
      }
      // From here on rows_of_slot_ holds the segment of the slot, then is cleared below.
      rows_of_slot_[static_cast<std::size_t>(slot)] = k;
      begin = end;
    }
    std::vector<int>& cursor = present_;  // reused: next free position of each segment
    for (int k = 0; k < segments; ++k)
      cursor[static_cast<std::size_t>(k)] = plan[layout_.segment_begin() + k];
    for (int i = 0; i < rows; ++i) {
      const int k = rows_of_slot_[static_cast<std::size_t>(row_slots[static_cast<std::size_t>(i)])];
      const int p = cursor[static_cast<std::size_t>(k)]++;
      plan[layout_.row_position() + i] = p;
      plan[layout_.position_row() + p] = i;
      plan[layout_.position_segment() + p] = k;
      std::memcpy(&plan[layout_.row_beta() + i], &row_beta[static_cast<std::size_t>(i)],
                  sizeof(float));
    }
    for (const int s : row_slots) rows_of_slot_[static_cast<std::size_t>(s)] = 0;
    plan[0] = rows;
    plan[1] = segments;
    plan[2] = tiles;
    plan[3] = 0;
  }

 private:
  StepPlanLayout layout_;
  std::vector<int> rows_of_slot_;  // [slots] zero between builds
  std::vector<int> present_;       // slots present this step, ascending
};

}  // namespace esamp
