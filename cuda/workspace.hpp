// Memory of the CUDA backend, shared by its host code and kernels: regions carved from one
// allocation (CUB-style two-phase sizing: compute the layout from the shape, allocate once, reuse),
// the per-step workspace, the device-side settings and the update rules. The parameter layout, the
// step plan and the stats are the shared vocabulary of esamp/core.hpp. Plain C++: host code and
// tests include it without nvcc. Trusts its caller (shapes come from validated configs).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "esamp/core.hpp"

namespace esamp::cuda {

// Byte offsets of N regions in one allocation, each kAlignment-aligned: the one carve of every
// CUDA allocation (the bank and the workspace).
template <std::size_t N>
struct Carve {
  static constexpr std::size_t kAlignment = 256;

  std::array<std::size_t, N> offset{};
  std::array<std::size_t, N> bytes{};
  std::size_t total_bytes = 0;

  static Carve make(const std::array<std::size_t, N>& sizes) {
    Carve c;
    std::size_t at = 0;
    for (std::size_t b = 0; b < N; ++b) {
      c.offset[b] = at;
      c.bytes[b] = sizes[b];
      at += (sizes[b] + kAlignment - 1) / kAlignment * kAlignment;
    }
    c.total_bytes = at;
    return c;
  }
  // Region b of the allocation at `base`; null when the region is empty.
  template <class T>
  T* get(void* base, std::size_t b) const {
    return bytes[b] ? reinterpret_cast<T*>(static_cast<std::byte*>(base) + offset[b]) : nullptr;
  }
};

// The shape a backend's workspace is sized for.
struct WorkspaceShape {
  int hidden = 0;
  int rank = 0;
  int slots = 1;
  int max_rows = 1;
  bool train_forward = false;  // young repeats: end_step's forwards write y_hat_train
};

// Every per-step buffer of the CUDA backend, by name.
enum class WorkspaceBuffer : int {
  plan_stage,     // int32 [plan] (with each row's β): uploaded by begin_step on the engine stream
  plan,           // int32 [plan]: the side stream's copy for the step in flight
  source_stage,   // raw [max_rows, H] (<= 4 bytes each): the engine's source rows, copied on S
  target_stage,   // raw [max_rows, H]: the engine's target rows
  source,         // f32 [max_rows, H] grouped by slot; zero rows where not finite
  target,         // f32 [max_rows, H] grouped by slot; zero rows where not finite
  source_finite,  // u8 [max_rows] by position
  target_finite,  // u8 [max_rows] by position
  segment_steps,  // i64 [max_segments] optimizer steps of each segment's slot at the forward
  segment_used,   // i32 [max_segments] rows that train the slot (source and target finite)
  segment_settings,  // OptimizerSettings [max_segments] each segment's update (lr decayed)
  segment_scale,     // AdamWScale [max_segments] the constants of each segment's AdamW update
  gate_partial,      // f32 [gate_splits, max_rows, 2r] split-K partials of x [A | G]
  u,                 // f32 [max_rows, r] x A
  pre,               // f32 [max_rows, r] x G + b
  v,                 // f32 [max_rows, r] SiLU(pre)
  gated,             // f32 [max_rows, r] u * v
  z_hat,             // f32 [max_rows, H] z, normalised in place by the LayerNorm forward
  y_hat,             // f32 [max_rows, H] prediction (read by the mix on the engine stream)
  y_hat_train,       // f32 [max_rows, H] end_step's own forwards (young repeats)
  rstd,              // f32 [max_rows]
  dy,                // f32 [max_rows, H] d loss / d y_hat
  dz,                // f32 [max_rows, H] d loss / d z
  row_sq_error,      // f32 [max_rows] sum over H of (y_hat - y)^2
  dp_partial,        // f32 [dp_splits, max_rows, r] split-K partials of dz B^T
  dgate,             // f32 [max_rows, 2r] (d u | d pre)
  vector_grad,       // f32 [max_segments, r + 2H] gradients of b, w, c
  count
};

// Byte offsets of every WorkspaceBuffer in one allocation.
struct WorkspaceLayout {
  static constexpr int kBuffers = static_cast<int>(WorkspaceBuffer::count);

  WorkspaceShape shape;
  StepPlanLayout plan;
  int gate_splits = 1;  // split-K factor of x [A | G] (K = H)
  int dp_splits = 1;    // split-K factor of dz B^T (K = H)
  Carve<kBuffers> carve;

  // Split-K factor for a reduction of length k: chunks of >= 256 so a slot with few rows still
  // spreads over many thread blocks; at most 16 partials to sum.
  static int split_count(int k) { return std::clamp((k + 255) / 256, 1, 16); }

  static WorkspaceLayout make(const WorkspaceShape& s) {
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
    l.carve = Carve<kBuffers>::make({
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
        S * sizeof(OptimizerSettings),
        S * sizeof(AdamWScale),
        static_cast<std::size_t>(l.gate_splits) * R * 2 * r * f,
        R * r * f,
        R * r * f,
        R * r * f,
        R * r * f,
        R * H * f,
        R * H * f,
        s.train_forward ? R * H * f : 0,
        R * f,
        R * H * f,
        R * H * f,
        R * f,
        static_cast<std::size_t>(l.dp_splits) * R * r * f,
        R * 2 * r * f,
        S * (r + 2 * H) * f,
    });
    return l;
  }

  std::size_t bytes(WorkspaceBuffer b) const { return carve.bytes[static_cast<std::size_t>(b)]; }
  template <class T>
  T* get(void* base, WorkspaceBuffer b) const {
    return carve.template get<T>(base, static_cast<std::size_t>(b));
  }
};

// Mixing settings, in device memory so a change needs no graph re-capture (β is per row, in the
// step plan).
struct MixSettings {
  std::int32_t warmup_updates = 1;
  std::int32_t latent_mix = 0;  // a LatentMix
};

enum class UpdateRule : int {
  adamw,
  sgd,
  store_gradient,  // write the gradient instead of updating (read-back for tests), no step counted
};

}  // namespace esamp::cuda
