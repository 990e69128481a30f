// Launchers of the Latent Distiller kernels for a whole bank in one launch each (DESIGN.md §1):
// the forward (x [A|G] -> SwiGLU -> + (u v) B -> LayerNorm), the MSE + LayerNorm backward, the
// weight gradients with the AdamW/SGD update fused in (the gradients of A, G, B are never stored),
// the vector gradients (b, w, c) and their update, and the step's bookkeeping. Rows are grouped by
// slot as a StepPlan in device memory says; grids are sized by the plan's capacity, so every
// launcher is CUDA-graph capturable whatever the rows of a step. Plain C++ header: raw pointers,
// sizes and a stream in, cudaError_t out; launchers trust their caller (cuda::Backend, itself
// trusting the front end). Kernels: distiller.cu; CPU twins: esamp/cpu/distiller_math.hpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/workspace.hpp"

namespace esamp::cuda {

// A bank in device memory: [slots, P] fp32 arrays and [slots] step counters.
struct BankView {
  float* params = nullptr;
  float* first_moment = nullptr;   // AdamW m; unused by SGD
  float* second_moment = nullptr;  // AdamW v; unused by SGD
  std::int64_t* steps = nullptr;   // optimizer updates since the slot's reset
  ParameterLayout layout;
};

// Where a weight-gradient kernel puts its result: an optimizer step on the bank (AdamW, SGD), or
// the raw gradient in `gradient_out` [max_segments, P] (UpdateRule::store_gradient).
struct UpdateTarget {
  BankView bank;
  UpdateRule rule = UpdateRule::adamw;
  const std::int32_t* segment_used = nullptr;  // [max_segments] segments with 0 are left untouched
  const OptimizerSettings* segment_settings =
      nullptr;                                // [max_segments] each segment's (lr decayed)
  const AdamWScale* segment_scale = nullptr;  // [max_segments] each segment's AdamW constants
  float* gradient_out = nullptr;
};

// segment_steps[s] = steps[slot of segment s]: the warm-up state mix_hidden reads for this step,
// taken before this step's update so that mixing and training never race.
cudaError_t SnapshotSegmentSteps(const StepPlanView& plan, const std::int64_t* steps,
                                 std::int64_t* segment_steps, cudaStream_t stream = nullptr);

// partial[split, p, :] = x[p, K-chunk] [A | G][K-chunk, :] for each grouped position p, by its
// slot. partial: [splits, max_rows, 2r].
cudaError_t UpGateProjection(const float* params, ParameterLayout layout, const StepPlanView& plan,
                             const float* source, int splits, float* partial,
                             cudaStream_t stream = nullptr);

// u = sum of the partials' A half, pre = their G half + b, v = SiLU(pre), gated = u * v ([rows,
// r]).
cudaError_t SwigluForward(const float* params, ParameterLayout layout, const StepPlanView& plan,
                          const float* partial, int splits, float* u, float* pre, float* v,
                          float* gated, cudaStream_t stream = nullptr);

// z = x + gated B ([rows, H]).
cudaError_t DownProjection(const float* params, ParameterLayout layout, const StepPlanView& plan,
                           const float* source, const float* gated, float* z,
                           cudaStream_t stream = nullptr);

// Per row: z_hat = (z - mean) * rstd in place, y_hat = z_hat * w + c; without the output norm,
// y_hat = z and rstd = 1.
cudaError_t LayerNormForward(const float* params, ParameterLayout layout, bool output_norm,
                             const StepPlanView& plan, float* z_hat, float* y_hat, float* rstd,
                             cudaStream_t stream = nullptr);

// Per segment: the rows that train it (source and target finite) into segment_used, or 0 when
// `young_only` and the slot has young_updates updates or more (a young repeat's pass); for AdamW
// and SGD with at least one such row, steps[slot] += 1, that update's settings (the lr of
// schedule.lr) into segment_settings and its AdamW constants (adamw_scale) into segment_scale.
// With `stats` (a young repeat's pass: the updates after a step's first of each slot, which
// FinishTrainingStep does not see) each such update also adds 1 to stats->slot_updates and to
// slot_stats[slot].slot_updates ([slots]). Runs before the updates it prepares.
cudaError_t PrepareSlotUpdates(const StepPlanView& plan, const std::uint8_t* source_finite,
                               const std::uint8_t* target_finite, const OptimizerSettings* settings,
                               const TrainingSchedule& schedule, bool young_only, UpdateRule rule,
                               std::int64_t* steps, std::int32_t* segment_used,
                               OptimizerSettings* segment_settings, AdamWScale* segment_scale,
                               Stats* stats, GroupStats* slot_stats, cudaStream_t stream = nullptr);

// Per row: dy = 2 (y_hat - y) / (used H) and dz through the LayerNorm (zero rows where the row does
// not train: source or target not finite, or its segment not updated), row_sq_error = sum
// (y_hat - y)^2.
cudaError_t MseLayerNormBackward(const float* params, ParameterLayout layout, bool output_norm,
                                 const StepPlanView& plan, const float* y_hat, const float* target,
                                 const float* z_hat, const float* rstd,
                                 const std::uint8_t* source_finite,
                                 const std::uint8_t* target_finite,
                                 const std::int32_t* segment_used, float* dy, float* dz,
                                 float* row_sq_error, cudaStream_t stream = nullptr);

// partial[split, p, :] = dz[p, K-chunk] B^T[K-chunk, :] ([splits, max_rows, r]); reads B before
// DownWeightUpdate writes it.
cudaError_t DownBackwardData(const float* params, ParameterLayout layout, const StepPlanView& plan,
                             const float* dz, int splits, float* partial,
                             cudaStream_t stream = nullptr);

// dgate = (du | dpre) [rows, 2r]: du = dp v, dpre = dp u SiLU'(pre), dp = sum of the partials.
cudaError_t SwigluBackward(ParameterLayout layout, const StepPlanView& plan, const float* partial,
                           int splits, const float* u, const float* pre, const float* v,
                           float* dgate, cudaStream_t stream = nullptr);

// Per trained segment: dB = gated^T dz over its rows, applied to B as `target` says.
cudaError_t DownWeightUpdate(const StepPlanView& plan, const float* gated, const float* dz,
                             const UpdateTarget& target, cudaStream_t stream = nullptr);

// Per trained segment: dA = x^T du, dG = x^T dpre over its rows, applied to A, G.
cudaError_t UpGateWeightUpdate(const StepPlanView& plan, const float* source, const float* dgate,
                               const UpdateTarget& target, cudaStream_t stream = nullptr);

// Per segment: (db | dw | dc) = column sums over its rows of dpre, dy * z_hat, dy (dw = dc = 0
// without the output norm), into vector_grad [max_segments, r + 2H].
cudaError_t VectorGradients(ParameterLayout layout, bool output_norm, const StepPlanView& plan,
                            const float* dgate, const float* dy, const float* z_hat,
                            float* vector_grad, cudaStream_t stream = nullptr);

// Elementwise update of parameters [begin, begin + count) of every trained segment's slot with the
// gradient grad[segment * grad_stride + i] (i = index - begin).
cudaError_t UpdateParameterRange(const StepPlanView& plan, const float* grad,
                                 std::int64_t grad_stride, std::int64_t begin, std::int64_t count,
                                 const UpdateTarget& target, cudaStream_t stream = nullptr);

// Loss of the step (mean over updated slots of each slot's mean squared error) and the running
// totals in `stats` (steps included); each slot present, its own loss and counts in
// slot_stats[slot] ([slots], add_slot_step). From row_sq_error and segment_used.
cudaError_t FinishTrainingStep(const StepPlanView& plan, int hidden, const float* row_sq_error,
                               const std::int32_t* segment_used, Stats* stats,
                               GroupStats* slot_stats, cudaStream_t stream = nullptr);

}  // namespace esamp::cuda
