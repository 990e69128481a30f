// Launcher of the gather that turns an engine's rows (f32/f16/bf16, any row stride) into the fp32
// rows the distiller kernels read, grouped by slot, with a finite flag per row. Kernel: gather.cu;
// CPU twin: cpu::gather_rows (esamp/cpu/bank_step.hpp). Trusts its caller.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "esamp/core.hpp"
#include "esamp/tensor.hpp"

namespace esamp::cuda {

// For each input row i < plan.rows(): out[plan.row_position(i)] = float(src[i]) ([*, hidden] fp32)
// and finite[position] = 1, or, when the row holds a NaN or an infinity, a zero row and finite = 0
// (a zero row adds nothing to any gradient). src_stride is in elements. Grid: plan capacity.
cudaError_t GatherRows(const void* src, DType dtype, std::int64_t src_stride, int hidden,
                       const StepPlanView& plan, float* out, std::uint8_t* finite,
                       cudaStream_t stream = nullptr);

}  // namespace esamp::cuda
