// Launchers of the two mixing modes (DESIGN.md §1): latent mixing of the final hidden states in
// place, and candidate mixing of the logits with a fused gather-dot of the LM-head rows. Both read
// the step's prediction, each row's β (in the plan) and the slots' warm-up snapshot from device
// memory. Kernels: mix.cu; CPU twins: cpu::Backend::mix_hidden and mix_logits. Launchers trust
// their caller (the front end checked every view).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/workspace.hpp"
#include "esamp/tensor.hpp"
#include "sampling.cuh"

namespace esamp::cuda {

// What decides whether row i is mixed: its prediction, its source's finiteness, its slot's updates.
struct MixInputs {
  StepPlanView plan;
  const float* y_hat = nullptr;                 // [max_rows, H] by grouped position
  const std::uint8_t* source_finite = nullptr;  // [max_rows] by grouped position
  const std::int64_t* segment_steps = nullptr;  // [max_segments] updates of each segment's slot
  const MixSettings* settings = nullptr;        // device: warmup_updates
  unsigned long long* rows_mixed = nullptr;     // device counter, += rows mixed
  GroupStats* slot_stats = nullptr;             // [slots] device: each slot's rows_mixed likewise
};

// h = (1 + beta) h - beta y_hat (or its settings->latent_mix variant, cpu::mix_latent_row) in
// place on input row i < plan.rows() of `hidden` ([*, H], any dtype, row stride in elements;
// rounded to nearest even on store; beta = plan.row_beta(i)), unless beta = 0, the row's slot has
// fewer than warmup_updates updates, or its source or prediction is not finite: such rows are not
// touched (beta = 0 is a bit-exact no-op).
cudaError_t MixHidden(void* hidden, DType dtype, std::int64_t stride, int hidden_size,
                      const MixInputs& inputs, cudaStream_t stream = nullptr);

// Per input row i < plan.rows() of `logits` ([*, vocab]): the filter's candidates C from the base
// logits; for v in C, l_v = (1 + beta) l_v - beta W_v . y_hat when the row is mixed (as in
// MixHidden), else l_v unchanged; every other logit -inf. lm_head: [vocab, H], row stride in
// elements. row_status: [max_rows] (kRowHas... bits).
cudaError_t MixLogits(void* logits, DType logits_dtype, std::int64_t logits_stride, int vocab,
                      const void* lm_head, DType head_dtype, std::int64_t head_stride,
                      int hidden_size, const FilterParams& filter, const MixInputs& inputs,
                      std::int32_t* row_status, cudaStream_t stream = nullptr);

}  // namespace esamp::cuda
