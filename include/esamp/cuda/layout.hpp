// Memory layouts shared by the CUDA kernels and their host code: one slot's parameters as the
// kernels index them, the per-step plan that groups rows by slot, and the workspace carved from one
// allocation (CUB-style two-phase sizing: compute the layout from the shape, allocate once, reuse).
// Plain C++: host code and tests include it without nvcc.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "esamp/error.hpp"
#include "esamp/span.hpp"

#if defined(__CUDACC__)
#define ESAMP_HOST_DEVICE __host__ __device__
#else
#define ESAMP_HOST_DEVICE
#endif

namespace esamp::cuda {

// One slot's flat fp32 parameters: A [H, r], G [H, r], B [r, H], b [r], w [H], c [H]; the same
// order as cpu::ParameterLayout (a CPU test checks that they agree).
struct ParamLayout {
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

// Rows per tile of the row-major GEMMs: a slot's rows are cut into tiles of at most this many.
constexpr int kRowTile = 32;

// Where each part of a step plan lies in its int32 array. A step's rows are grouped by slot
// ("segments", ascending slot, rows of a segment in input order) and each segment is cut into
// row tiles; kernels read all of it from device memory, so grids are sized by the capacity and a
// captured CUDA graph replays correctly whatever the rows of the step.
struct StepPlanLayout {
  int max_rows = 0;
  int max_segments = 0;  // min(slots, max_rows): at most one segment per row
  int max_tiles = 0;  // ceil(max_rows / kRowTile) + max_segments bounds sum(ceil(n_s / kRowTile))

  static constexpr int kHeader = 4;  // rows, segments, tiles, (padding)

  static StepPlanLayout make(int max_rows, int slots) {
    if (max_rows < 1) fail("StepPlanLayout: max_rows = {}: must be >= 1", max_rows);
    if (slots < 1) fail("StepPlanLayout: slots = {}: must be >= 1", slots);
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
  ESAMP_HOST_DEVICE constexpr std::int64_t segment_slot() const {
    return kHeader + 3 * std::int64_t{max_rows};
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

// Read access to a step plan in memory (device memory in kernels, host memory in tests).
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
  ESAMP_HOST_DEVICE int segment_slot(int s) const { return data[layout.segment_slot() + s]; }
  ESAMP_HOST_DEVICE int segment_begin(int s) const { return data[layout.segment_begin() + s]; }
  ESAMP_HOST_DEVICE int segment_end(int s) const { return data[layout.segment_end() + s]; }
  ESAMP_HOST_DEVICE int tile_segment(int t) const { return data[layout.tile_segment() + t]; }
  ESAMP_HOST_DEVICE int tile_begin(int t) const { return data[layout.tile_begin() + t]; }
};

// Builds step plans on the host (a counting sort by slot, O(rows log rows)); its scratch is sized
// once, so a steady-state build allocates nothing.
class StepPlanBuilder {
 public:
  StepPlanBuilder(const StepPlanLayout& layout, int slots)
      : layout_(layout), slots_(slots), rows_of_slot_(static_cast<std::size_t>(slots), 0) {
    present_.reserve(static_cast<std::size_t>(layout.max_segments));
  }

  const StepPlanLayout& layout() const { return layout_; }

  // Writes the plan of a step whose row i belongs to slot row_slots[i] into `plan`
  // (layout().size() ints). A bad slot id or too many rows is an Error and `plan` is untouched.
  void build(Span<const int> row_slots, std::int32_t* plan) {
    const auto rows = static_cast<int>(row_slots.size());
    if (row_slots.size() > static_cast<std::size_t>(layout_.max_rows))
      fail("step plan: {} rows, more than max_rows = {}", row_slots.size(), layout_.max_rows);
    for (int i = 0; i < rows; ++i)
      if (row_slots[static_cast<std::size_t>(i)] < 0 ||
          row_slots[static_cast<std::size_t>(i)] >= slots_)
        fail("step plan: slot id {} of row {} is out of range: the bank has {} slots",
             row_slots[static_cast<std::size_t>(i)], i, slots_);
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
    }
    for (const int s : row_slots) rows_of_slot_[static_cast<std::size_t>(s)] = 0;
    plan[0] = rows;
    plan[1] = segments;
    plan[2] = tiles;
    plan[3] = 0;
  }

 private:
  StepPlanLayout layout_;
  int slots_;
  std::vector<int> rows_of_slot_;  // [slots] zero between builds
  std::vector<int> present_;       // slots present this step, ascending
};

// The shape a backend's workspace is sized for.
struct WorkspaceShape {
  int hidden = 0;
  int rank = 0;
  int slots = 1;
  int max_rows = 1;
};

// Every per-step buffer of the CUDA backend, by name.
enum class WorkspaceBuffer : int {
  plan_stage,     // int32 [plan]: uploaded by begin_step on the engine stream
  plan,           // int32 [plan]: the side stream's copy for the step in flight
  source_stage,   // raw [max_rows, H] (<= 4 bytes each): the engine's source rows, copied on S
  target_stage,   // raw [max_rows, H]: the engine's target rows
  source,         // f32 [max_rows, H] grouped by slot; zero rows where not finite
  target,         // f32 [max_rows, H] grouped by slot; zero rows where not finite
  source_finite,  // u8 [max_rows] by position
  target_finite,  // u8 [max_rows] by position
  segment_steps,  // i64 [max_segments] optimizer steps of each segment's slot at the forward
  segment_used,   // i32 [max_segments] rows that train the slot (source and target finite)
  segment_bias,   // f32 [max_segments, 2] AdamW bias corrections 1 - beta^t of this update
  gate_partial,   // f32 [gate_splits, max_rows, 2r] split-K partials of x [A | G]
  u,              // f32 [max_rows, r] x A
  pre,            // f32 [max_rows, r] x G + b
  v,              // f32 [max_rows, r] SiLU(pre)
  gated,          // f32 [max_rows, r] u * v
  z_hat,          // f32 [max_rows, H] z, normalised in place by the LayerNorm forward
  y_hat,          // f32 [max_rows, H] prediction
  rstd,           // f32 [max_rows]
  dy,             // f32 [max_rows, H] d loss / d y_hat
  dz,             // f32 [max_rows, H] d loss / d z
  row_sq_error,   // f32 [max_rows] sum over H of (y_hat - y)^2
  dp_partial,     // f32 [dp_splits, max_rows, r] split-K partials of dz B^T
  dgate,          // f32 [max_rows, 2r] (d u | d pre)
  vector_grad,    // f32 [max_segments, r + 2H] gradients of b, w, c
  count
};

// Byte offsets of every WorkspaceBuffer in one allocation, each 256-byte aligned.
struct WorkspaceLayout {
  static constexpr std::size_t kAlignment = 256;
  static constexpr int kBuffers = static_cast<int>(WorkspaceBuffer::count);

  WorkspaceShape shape;
  StepPlanLayout plan;
  int gate_splits = 1;  // split-K factor of x [A | G] (K = H)
  int dp_splits = 1;    // split-K factor of dz B^T (K = H)
  std::array<std::size_t, kBuffers> offset{};
  std::array<std::size_t, kBuffers> bytes{};
  std::size_t total_bytes = 0;

  // Split-K factor for a reduction of length k: chunks of >= 256 so a slot with few rows still
  // spreads over many thread blocks; at most 16 partials to sum.
  static int split_count(int k) { return std::clamp((k + 255) / 256, 1, 16); }

  static WorkspaceLayout make(const WorkspaceShape& s) {
    if (s.hidden < 1 || s.rank < 1 || s.rank > s.hidden)
      fail("WorkspaceShape: hidden = {}, rank = {}: need 1 <= rank <= hidden", s.hidden, s.rank);
    WorkspaceLayout l;
    l.shape = s;
    l.plan = StepPlanLayout::make(s.max_rows, s.slots);
    l.gate_splits = split_count(s.hidden);
    l.dp_splits = split_count(s.hidden);
    const std::size_t R = static_cast<std::size_t>(s.max_rows);
    const std::size_t H = static_cast<std::size_t>(s.hidden);
    const std::size_t r = static_cast<std::size_t>(s.rank);
    const std::size_t S = static_cast<std::size_t>(l.plan.max_segments);
    const std::size_t f = sizeof(float);
    const std::size_t plan_bytes = static_cast<std::size_t>(l.plan.size()) * sizeof(std::int32_t);
    const std::size_t sizes[kBuffers] = {
        plan_bytes,
        plan_bytes,
        R * H * f,
        R * H * f,
        R * H * f,
        R * H * f,
        R,
        R,
        S * sizeof(std::int64_t),
        S * sizeof(std::int32_t),
        S * 2 * f,
        static_cast<std::size_t>(l.gate_splits) * R * 2 * r * f,
        R * r * f,
        R * r * f,
        R * r * f,
        R * r * f,
        R * H * f,
        R * H * f,
        R * f,
        R * H * f,
        R * H * f,
        R * f,
        static_cast<std::size_t>(l.dp_splits) * R * r * f,
        R * 2 * r * f,
        S * (r + 2 * H) * f,
    };
    std::size_t at = 0;
    for (int b = 0; b < kBuffers; ++b) {
      l.offset[static_cast<std::size_t>(b)] = at;
      l.bytes[static_cast<std::size_t>(b)] = sizes[b];
      at += (sizes[b] + kAlignment - 1) / kAlignment * kAlignment;
    }
    l.total_bytes = at;
    return l;
  }

  template <class T>
  T* get(void* base, WorkspaceBuffer b) const {
    return reinterpret_cast<T*>(static_cast<std::byte*>(base) +
                                offset[static_cast<std::size_t>(b)]);
  }
};

// AdamW / SGD settings, kept in device memory so a change needs no graph re-capture (ggml's
// opt-step-adamw takes its hyperparameters the same way).
struct OptimizerSettings {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
};

// Mixing settings, in device memory for the same reason.
struct MixSettings {
  float beta = 0.0f;
  std::int32_t warmup_updates = 1;
  std::int32_t latent_mix = 0;  // a LatentMix
};

enum class UpdateRule : int {
  adamw,
  sgd,
  store_gradient,  // write the gradient instead of updating (read-back for tests), no step counted
};

// Running totals kept on the device (the CPU sampler's Stats, less what the host already knows).
struct DeviceStats {
  long long rows_trained = 0;
  long long rows_mixed = 0;
  long long rows_skipped_nonfinite = 0;
  long long slot_updates = 0;
  long long steps_trained = 0;
  double last_loss = 0.0;
  double mean_loss = 0.0;
};

}  // namespace esamp::cuda
