// Kernels of the Latent Distiller bank: forward, backward, fused updates (see distiller.cuh).
#include <algorithm>

#include "detail/common.cuh"
#include "detail/optimizer.cuh"
#include "detail/slot_gemm.cuh"
#include "distiller.cuh"

namespace esamp::cuda {
namespace {

using detail::add_rn;
using detail::ceil_div;
using detail::mul_rn;
using detail::sub_rn;

constexpr int kRowThreads = 256;        // row-per-block kernels
constexpr int kFlatThreads = 256;       // elementwise kernels
constexpr float kLayerNormEps = 1e-5f;  // cpu::kLayerNormEps

__device__ __forceinline__ float sigmoid(float t) { return 1.0f / (1.0f + expf(-t)); }

// ---------------------------------------------------------------------------------------------
// GEMM problems (detail::slot_gemm_kernel)

// One tile of rows of one segment: the row GEMMs (activations [rows, K] times slot weights).
struct RowBlock {
  int slot, row0, m_count, n0, n_count, k_begin, k_end, split;
};

// Row tiles on grid.x (capacity: plan.max_tiles), output columns on grid.y, K splits on grid.z.
template <int kBN, int kBK>
__device__ __forceinline__ bool locate_row_block(const StepPlanView& plan, int n_total, int k_total,
                                                 int splits, RowBlock& b) {
  const int tile = static_cast<int>(blockIdx.x);
  if (tile >= plan.tiles()) return false;
  const int segment = plan.tile_segment(tile);
  b.slot = plan.segment_slot(segment);
  b.row0 = plan.tile_begin(tile);
  b.m_count = min(kRowTile, plan.segment_end(segment) - b.row0);
  b.n0 = static_cast<int>(blockIdx.y) * kBN;
  b.n_count = min(kBN, n_total - b.n0);
  const int chunk = static_cast<int>(ceil_div(ceil_div(k_total, splits), kBK) * kBK);
  b.split = static_cast<int>(blockIdx.z);
  b.k_begin = min(k_total, b.split * chunk);
  b.k_end = min(k_total, b.k_begin + chunk);
  return true;
}

using RowTile = detail::GemmTile<kRowTile, 64, 16, 4, 4>;

// [u | pre] partials = x [A | G]: K = H.
struct UpGateProblem {
  using Tile = RowTile;
  using Block = RowBlock;
  static constexpr bool kAAlongK = true;
  static constexpr bool kBAlongK = false;
  const float* __restrict__ params;
  ParameterLayout layout;
  StepPlanView plan;
  const float* __restrict__ source;
  float* __restrict__ partial;
  int splits;

  __device__ bool locate(Block& b) const {
    return locate_row_block<Tile::BN, Tile::BK>(plan, static_cast<int>(2 * layout.rank),
                                                static_cast<int>(layout.hidden), splits, b);
  }
  __device__ float a(const Block& b, int m, int k) const {
    return source[static_cast<std::int64_t>(b.row0 + m) * layout.hidden + k];
  }
  __device__ float b(const Block& blk, int k, int n) const {
    const float* slot = params + blk.slot * layout.size();
    const int col = blk.n0 + n;
    const std::int64_t r = layout.rank;
    return col < r ? slot[layout.offset_A() + k * r + col]
                   : slot[layout.offset_G() + k * r + (col - r)];
  }
  __device__ void store(const Block& b, int m, int n, float acc) const {
    const std::int64_t row = static_cast<std::int64_t>(b.split) * plan.layout.max_rows + b.row0 + m;
    partial[row * 2 * layout.rank + b.n0 + n] = acc;
  }
};

// z = x + gated B: K = r, no split.
struct DownProblem {
  using Tile = RowTile;
  using Block = RowBlock;
  static constexpr bool kAAlongK = true;
  static constexpr bool kBAlongK = false;
  const float* __restrict__ params;
  ParameterLayout layout;
  StepPlanView plan;
  const float* __restrict__ source;
  const float* __restrict__ gated;
  float* __restrict__ z;

  __device__ bool locate(Block& b) const {
    return locate_row_block<Tile::BN, Tile::BK>(plan, static_cast<int>(layout.hidden),
                                                static_cast<int>(layout.rank), 1, b);
  }
  __device__ float a(const Block& b, int m, int k) const {
    return gated[static_cast<std::int64_t>(b.row0 + m) * layout.rank + k];
  }
  __device__ float b(const Block& blk, int k, int n) const {
    return params[blk.slot * layout.size() + layout.offset_B() + k * layout.hidden + blk.n0 + n];
  }
  __device__ void store(const Block& b, int m, int n, float acc) const {
    const std::int64_t at = static_cast<std::int64_t>(b.row0 + m) * layout.hidden + b.n0 + n;
    z[at] = source[at] + acc;
  }
};

// dp partials = dz B^T: K = H, B read transposed (contiguous along K).
struct DownBackwardDataProblem {
  using Tile = RowTile;
  using Block = RowBlock;
  static constexpr bool kAAlongK = true;
  static constexpr bool kBAlongK = true;
  const float* __restrict__ params;
  ParameterLayout layout;
  StepPlanView plan;
  const float* __restrict__ dz;
  float* __restrict__ partial;
  int splits;

  __device__ bool locate(Block& b) const {
    return locate_row_block<Tile::BN, Tile::BK>(plan, static_cast<int>(layout.rank),
                                                static_cast<int>(layout.hidden), splits, b);
  }
  __device__ float a(const Block& b, int m, int k) const {
    return dz[static_cast<std::int64_t>(b.row0 + m) * layout.hidden + k];
  }
  __device__ float b(const Block& blk, int k, int n) const {
    return params[blk.slot * layout.size() + layout.offset_B() +
                  static_cast<std::int64_t>(blk.n0 + n) * layout.hidden + k];
  }
  __device__ void store(const Block& b, int m, int n, float acc) const {
    const std::int64_t row = static_cast<std::int64_t>(b.split) * plan.layout.max_rows + b.row0 + m;
    partial[row * layout.rank + b.n0 + n] = acc;
  }
};

// One output tile of a weight gradient X^T D of one segment (K = the segment's rows).
struct WeightBlock {
  int segment, slot, m0, m_count, n0, n_count, k_begin, k_end;
};

using WeightTile = detail::GemmTile<64, 64, 16, 4, 4>;

// Segments on grid.x (capacity: plan.max_segments), output column tiles on y, row tiles on z.
__device__ __forceinline__ bool locate_weight_block(const StepPlanView& plan,
                                                    const UpdateTarget& target, int m_total,
                                                    int n_total, WeightBlock& b) {
  b.segment = static_cast<int>(blockIdx.x);
  if (b.segment >= plan.segments() || target.segment_used[b.segment] == 0) return false;
  b.slot = plan.segment_slot(b.segment);
  b.m0 = static_cast<int>(blockIdx.z) * WeightTile::BM;
  b.m_count = min(WeightTile::BM, m_total - b.m0);
  b.n0 = static_cast<int>(blockIdx.y) * WeightTile::BN;
  b.n_count = min(WeightTile::BN, n_total - b.n0);
  b.k_begin = plan.segment_begin(b.segment);
  b.k_end = plan.segment_end(b.segment);
  return true;
}

// The epilogue of a weight gradient: an optimizer step on parameter `index` of the block's slot.
template <UpdateRule kRule>
__device__ __forceinline__ void update_parameter(const UpdateTarget& t, const WeightBlock& b,
                                                 std::int64_t index, float grad) {
  const OptimizerSettings settings =
      kRule == UpdateRule::store_gradient ? OptimizerSettings{} : t.segment_settings[b.segment];
  const std::int64_t size = t.bank.layout.size();
  const std::int64_t slot_base = b.slot * size;
  constexpr bool kAdamW = kRule == UpdateRule::adamw;
  detail::apply_update<kRule>(
      t.bank.params + slot_base, kAdamW ? t.bank.first_moment + slot_base : nullptr,
      kAdamW ? t.bank.second_moment + slot_base : nullptr, index, grad, settings,
      kAdamW ? t.segment_scale[b.segment] : AdamWScale{},
      kRule == UpdateRule::store_gradient ? t.gradient_out + b.segment * size : nullptr);
}

// dA | dG = x^T (du | dpre): m over H, n over 2r.
template <UpdateRule kRule>
struct UpGateWeightProblem {
  using Tile = WeightTile;
  using Block = WeightBlock;
  static constexpr bool kAAlongK = false;
  static constexpr bool kBAlongK = false;
  StepPlanView plan;
  const float* __restrict__ source;
  const float* __restrict__ dgate;
  UpdateTarget target;

  __device__ bool locate(Block& b) const {
    const ParameterLayout& l = target.bank.layout;
    return locate_weight_block(plan, target, static_cast<int>(l.hidden),
                               static_cast<int>(2 * l.rank), b);
  }
  __device__ float a(const Block& b, int m, int k) const {
    return source[static_cast<std::int64_t>(k) * target.bank.layout.hidden + b.m0 + m];
  }
  __device__ float b(const Block& blk, int k, int n) const {
    return dgate[static_cast<std::int64_t>(k) * 2 * target.bank.layout.rank + blk.n0 + n];
  }
  __device__ void store(const Block& b, int m, int n, float acc) const {
    const ParameterLayout& l = target.bank.layout;
    const std::int64_t row = b.m0 + m, col = b.n0 + n;
    const std::int64_t index = col < l.rank ? l.offset_A() + row * l.rank + col
                                            : l.offset_G() + row * l.rank + (col - l.rank);
    update_parameter<kRule>(target, b, index, acc);
  }
};

// dB = gated^T dz: m over r, n over H.
template <UpdateRule kRule>
struct DownWeightProblem {
  using Tile = WeightTile;
  using Block = WeightBlock;
  static constexpr bool kAAlongK = false;
  static constexpr bool kBAlongK = false;
  StepPlanView plan;
  const float* __restrict__ gated;
  const float* __restrict__ dz;
  UpdateTarget target;

  __device__ bool locate(Block& b) const {
    const ParameterLayout& l = target.bank.layout;
    return locate_weight_block(plan, target, static_cast<int>(l.rank), static_cast<int>(l.hidden),
                               b);
  }
  __device__ float a(const Block& b, int m, int k) const {
    return gated[static_cast<std::int64_t>(k) * target.bank.layout.rank + b.m0 + m];
  }
  __device__ float b(const Block& blk, int k, int n) const {
    return dz[static_cast<std::int64_t>(k) * target.bank.layout.hidden + blk.n0 + n];
  }
  __device__ void store(const Block& b, int m, int n, float acc) const {
    const ParameterLayout& l = target.bank.layout;
    const std::int64_t index = l.offset_B() + (b.m0 + m) * l.hidden + b.n0 + n;
    update_parameter<kRule>(target, b, index, acc);
  }
};

// ---------------------------------------------------------------------------------------------
// Row and elementwise kernels

__global__ void snapshot_segment_steps_kernel(const StepPlanView plan,
                                              const std::int64_t* __restrict__ steps,
                                              std::int64_t* __restrict__ segment_steps) {
  const int s = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (s < plan.segments()) segment_steps[s] = steps[plan.segment_slot(s)];
}

__global__ void __launch_bounds__(kFlatThreads)
    swiglu_forward_kernel(const float* __restrict__ params, const ParameterLayout layout,
                          const StepPlanView plan, const float* __restrict__ partial, int splits,
                          float* __restrict__ u, float* __restrict__ pre, float* __restrict__ v,
                          float* __restrict__ gated) {
  const std::int64_t r = layout.rank;
  const std::int64_t total = plan.rows() * r;
  const std::int64_t split_stride = plan.layout.max_rows * 2 * r;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t pos = i / r, j = i % r;
    const float* part = partial + pos * 2 * r + j;
    float up = 0.0f, gate = 0.0f;
    for (int s = 0; s < splits; ++s) {
      up += part[s * split_stride];
      gate += part[s * split_stride + r];
    }
    const int slot = plan.segment_slot(plan.position_segment(static_cast<int>(pos)));
    gate += params[slot * layout.size() + layout.offset_b() + j];
    const float act = gate * sigmoid(gate);
    u[i] = up;
    pre[i] = gate;
    v[i] = act;
    gated[i] = up * act;
  }
}

__global__ void __launch_bounds__(kRowThreads)
    layer_norm_forward_kernel(const float* __restrict__ params, const ParameterLayout layout,
                              bool output_norm, const StepPlanView plan, float* __restrict__ z_hat,
                              float* __restrict__ y_hat, float* __restrict__ rstd) {
  __shared__ float scratch[kRowThreads / detail::kWarp];
  const int pos = static_cast<int>(blockIdx.x);
  if (pos >= plan.rows()) return;
  const std::int64_t H = layout.hidden;
  float* z = z_hat + pos * H;
  float* y = y_hat + pos * H;
  if (!output_norm) {
    for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) y[j] = z[j];
    if (threadIdx.x == 0) rstd[pos] = 1.0f;
    return;
  }
  float sum = 0.0f;
  for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) sum += z[j];
  const float mean = detail::block_sum<kRowThreads>(sum, scratch) / static_cast<float>(H);
  float sq = 0.0f;
  for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) {
    const float d = z[j] - mean;
    sq += d * d;
  }
  const float var = detail::block_sum<kRowThreads>(sq, scratch) / static_cast<float>(H);
  const float row_rstd = 1.0f / sqrtf(var + kLayerNormEps);
  const int slot = plan.segment_slot(plan.position_segment(pos));
  const float* w = params + slot * layout.size() + layout.offset_w();
  const float* c = params + slot * layout.size() + layout.offset_c();
  for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) {
    const float normed = mul_rn(sub_rn(z[j], mean), row_rstd);
    z[j] = normed;
    y[j] = add_rn(mul_rn(normed, w[j]), c[j]);
  }
  if (threadIdx.x == 0) rstd[pos] = row_rstd;
}

__global__ void prepare_slot_updates_kernel(
    const StepPlanView plan, const std::uint8_t* __restrict__ source_finite,
    const std::uint8_t* __restrict__ target_finite, const OptimizerSettings* __restrict__ settings,
    const TrainingSchedule schedule, bool young_only, bool count_step,
    std::int64_t* __restrict__ steps, std::int32_t* __restrict__ segment_used,
    OptimizerSettings* __restrict__ segment_settings, AdamWScale* __restrict__ segment_scale,
    Stats* __restrict__ stats, GroupStats* __restrict__ slot_stats) {
  const int s = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (s >= plan.segments()) return;
  const int slot = plan.segment_slot(s);
  int used = 0;
  if (!young_only || steps[slot] < schedule.young_updates)
    for (int p = plan.segment_begin(s); p < plan.segment_end(s); ++p)
      used += source_finite[p] && target_finite[p] ? 1 : 0;
  segment_used[s] = used;
  if (used == 0 || !count_step) return;
  const std::int64_t step = ++steps[slot];
  OptimizerSettings update = *settings;
  update.lr = schedule.lr(update.lr, step);
  segment_settings[s] = update;
  segment_scale[s] = adamw_scale(update, step);
  if (!stats) return;
  atomicAdd(reinterpret_cast<unsigned long long*>(&stats->slot_updates), 1ull);
  slot_stats[slot].slot_updates += 1;  // one thread per segment, one segment per slot
}

__global__ void __launch_bounds__(kRowThreads) mse_layer_norm_backward_kernel(
    const float* __restrict__ params, const ParameterLayout layout, bool output_norm,
    const StepPlanView plan, const float* __restrict__ y_hat, const float* __restrict__ target,
    const float* __restrict__ z_hat, const float* __restrict__ rstd,
    const std::uint8_t* __restrict__ source_finite, const std::uint8_t* __restrict__ target_finite,
    const std::int32_t* __restrict__ segment_used, float* __restrict__ dy, float* __restrict__ dz,
    float* __restrict__ row_sq_error) {
  __shared__ float scratch[kRowThreads / detail::kWarp];
  const int pos = static_cast<int>(blockIdx.x);
  if (pos >= plan.rows()) return;
  const std::int64_t H = layout.hidden;
  const std::int64_t at = pos * H;
  const int segment = plan.position_segment(pos);
  if (!(source_finite[pos] && target_finite[pos]) || segment_used[segment] == 0) {  // left out
    for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) {
      dy[at + j] = 0.0f;
      dz[at + j] = 0.0f;
    }
    if (threadIdx.x == 0) row_sq_error[pos] = 0.0f;
    return;
  }
  const int slot = plan.segment_slot(segment);
  const float* w = params + slot * layout.size() + layout.offset_w();
  const float scale =
      1.0f / static_cast<float>(static_cast<std::int64_t>(segment_used[segment]) * H);
  const float two_scale = 2.0f * scale;
  float sq = 0.0f, sum_g = 0.0f, sum_gz = 0.0f;
  for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) {
    const float diff = y_hat[at + j] - target[at + j];
    sq += diff * diff;
    const float grad = mul_rn(diff, two_scale);
    dy[at + j] = grad;
    const float g = mul_rn(grad, w[j]);
    sum_g += g;
    sum_gz += g * z_hat[at + j];
  }
  sq = detail::block_sum<kRowThreads>(sq, scratch);
  if (threadIdx.x == 0) row_sq_error[pos] = sq;
  if (!output_norm) {
    for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) dz[at + j] = dy[at + j];
    return;
  }
  const float mean_g = detail::block_sum<kRowThreads>(sum_g, scratch) / static_cast<float>(H);
  const float mean_gz = detail::block_sum<kRowThreads>(sum_gz, scratch) / static_cast<float>(H);
  const float row_rstd = rstd[pos];
  for (std::int64_t j = threadIdx.x; j < H; j += kRowThreads) {
    const float g = mul_rn(dy[at + j], w[j]);
    dz[at + j] = mul_rn(row_rstd, sub_rn(sub_rn(g, mean_g), mul_rn(z_hat[at + j], mean_gz)));
  }
}

__global__ void __launch_bounds__(kFlatThreads)
    swiglu_backward_kernel(const ParameterLayout layout, const StepPlanView plan,
                           const float* __restrict__ partial, int splits,
                           const float* __restrict__ u, const float* __restrict__ pre,
                           const float* __restrict__ v, float* __restrict__ dgate) {
  const std::int64_t r = layout.rank;
  const std::int64_t total = plan.rows() * r;
  const std::int64_t split_stride = plan.layout.max_rows * r;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float dp = 0.0f;
    for (int s = 0; s < splits; ++s) dp += partial[s * split_stride + i];
    const std::int64_t pos = i / r, j = i % r;
    const float t = pre[i];
    const float sg = sigmoid(t);
    const float silu_grad = mul_rn(sg, add_rn(1.0f, mul_rn(t, sub_rn(1.0f, sg))));
    dgate[pos * 2 * r + j] = mul_rn(dp, v[i]);
    dgate[pos * 2 * r + r + j] = mul_rn(mul_rn(dp, u[i]), silu_grad);
  }
}

__global__ void __launch_bounds__(kFlatThreads)
    vector_gradients_kernel(const ParameterLayout layout, bool output_norm, const StepPlanView plan,
                            const float* __restrict__ dgate, const float* __restrict__ dy,
                            const float* __restrict__ z_hat, float* __restrict__ vector_grad) {
  const int segment = static_cast<int>(blockIdx.x);
  if (segment >= plan.segments()) return;
  const std::int64_t r = layout.rank, H = layout.hidden;
  const std::int64_t col = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (col >= r + 2 * H) return;
  const int begin = plan.segment_begin(segment), end = plan.segment_end(segment);
  float sum = 0.0f;
  if (col < r) {
    for (int p = begin; p < end; ++p) sum += dgate[p * 2 * r + r + col];
  } else if (output_norm && col < r + H) {
    const std::int64_t j = col - r;
    for (int p = begin; p < end; ++p) sum += dy[p * H + j] * z_hat[p * H + j];
  } else if (output_norm) {
    const std::int64_t j = col - r - H;
    for (int p = begin; p < end; ++p) sum += dy[p * H + j];
  }
  vector_grad[segment * layout.vector_size() + col] = sum;
}

template <UpdateRule kRule>
__global__ void __launch_bounds__(kFlatThreads)
    update_parameter_range_kernel(const StepPlanView plan, const float* __restrict__ grad,
                                  std::int64_t grad_stride, std::int64_t begin, std::int64_t count,
                                  const UpdateTarget target) {
  const int segment = static_cast<int>(blockIdx.x);
  if (segment >= plan.segments() || target.segment_used[segment] == 0) return;
  WeightBlock b{};
  b.segment = segment;
  b.slot = plan.segment_slot(segment);
  for (std::int64_t i = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.y) * blockDim.x)
    update_parameter<kRule>(target, b, begin + i, grad[segment * grad_stride + i]);
}

// One thread: the sums run in row order, as the CPU's do.
__global__ void finish_training_step_kernel(const StepPlanView plan, int hidden,
                                            const float* __restrict__ row_sq_error,
                                            const std::int32_t* __restrict__ segment_used,
                                            Stats* __restrict__ stats,
                                            GroupStats* __restrict__ slot_stats) {
  std::int64_t used_rows = 0, updated = 0;
  double loss_sum = 0.0;
  for (int s = 0; s < plan.segments(); ++s) {
    const int begin = plan.segment_begin(s), end = plan.segment_end(s);
    const int used = segment_used[s];
    float loss = 0.0f;
    if (used > 0) {
      for (int p = begin; p < end; ++p) loss += row_sq_error[p];
      loss *= 1.0f / static_cast<float>(static_cast<std::int64_t>(used) * hidden);
      loss_sum += loss;
      used_rows += used;
      ++updated;
    }
    add_slot_step(slot_stats[plan.segment_slot(s)], end - begin, used, used > 0 ? 1 : 0, loss);
  }
  stats->steps += 1;
  stats->rows_trained += used_rows;
  stats->rows_skipped_nonfinite += plan.rows() - used_rows;
  if (updated == 0) return;
  stats->slot_updates += updated;
  add_trained_step(*stats, static_cast<float>(loss_sum / static_cast<double>(updated)));
}

// Grid for the row GEMMs: every possible tile, every column tile, every K split.
template <class Problem>
dim3 row_grid(const StepPlanView& plan, std::int64_t n_total, int splits) {
  return dim3(static_cast<unsigned>(plan.layout.max_tiles),
              static_cast<unsigned>(ceil_div(n_total, Problem::Tile::BN)),
              static_cast<unsigned>(splits));
}

template <class Problem>
dim3 weight_grid(const StepPlanView& plan, std::int64_t m_total, std::int64_t n_total) {
  return dim3(static_cast<unsigned>(plan.layout.max_segments),
              static_cast<unsigned>(ceil_div(n_total, Problem::Tile::BN)),
              static_cast<unsigned>(ceil_div(m_total, Problem::Tile::BM)));
}

// Blocks for a grid-stride elementwise kernel over up to `elements`.
unsigned flat_blocks(std::int64_t elements) {
  return static_cast<unsigned>(
      std::clamp<std::int64_t>(ceil_div(elements, kFlatThreads), 1, 65536));
}

}  // namespace

cudaError_t SnapshotSegmentSteps(const StepPlanView& plan, const std::int64_t* steps,
                                 std::int64_t* segment_steps, cudaStream_t stream) {
  snapshot_segment_steps_kernel<<<static_cast<unsigned>(ceil_div(plan.layout.max_segments, 128)),
                                  128, 0, stream>>>(plan, steps, segment_steps);
  return cudaGetLastError();
}

cudaError_t UpGateProjection(const float* params, ParameterLayout layout, const StepPlanView& plan,
                             const float* source, int splits, float* partial, cudaStream_t stream) {
  const UpGateProblem problem{params, layout, plan, source, partial, splits};
  return detail::launch_slot_gemm(problem, row_grid<UpGateProblem>(plan, 2 * layout.rank, splits),
                                  stream);
}

cudaError_t SwigluForward(const float* params, ParameterLayout layout, const StepPlanView& plan,
                          const float* partial, int splits, float* u, float* pre, float* v,
                          float* gated, cudaStream_t stream) {
  swiglu_forward_kernel<<<flat_blocks(plan.layout.max_rows * layout.rank), kFlatThreads, 0,
                          stream>>>(params, layout, plan, partial, splits, u, pre, v, gated);
  return cudaGetLastError();
}

cudaError_t DownProjection(const float* params, ParameterLayout layout, const StepPlanView& plan,
                           const float* source, const float* gated, float* z, cudaStream_t stream) {
  const DownProblem problem{params, layout, plan, source, gated, z};
  return detail::launch_slot_gemm(problem, row_grid<DownProblem>(plan, layout.hidden, 1), stream);
}

cudaError_t LayerNormForward(const float* params, ParameterLayout layout, bool output_norm,
                             const StepPlanView& plan, float* z_hat, float* y_hat, float* rstd,
                             cudaStream_t stream) {
  layer_norm_forward_kernel<<<static_cast<unsigned>(plan.layout.max_rows), kRowThreads, 0,
                              stream>>>(params, layout, output_norm, plan, z_hat, y_hat, rstd);
  return cudaGetLastError();
}

cudaError_t PrepareSlotUpdates(const StepPlanView& plan, const std::uint8_t* source_finite,
                               const std::uint8_t* target_finite, const OptimizerSettings* settings,
                               const TrainingSchedule& schedule, bool young_only, UpdateRule rule,
                               std::int64_t* steps, std::int32_t* segment_used,
                               OptimizerSettings* segment_settings, AdamWScale* segment_scale,
                               Stats* stats, GroupStats* slot_stats, cudaStream_t stream) {
  prepare_slot_updates_kernel<<<static_cast<unsigned>(ceil_div(plan.layout.max_segments, 128)), 128,
                                0, stream>>>(plan, source_finite, target_finite, settings, schedule,
                                             young_only, rule != UpdateRule::store_gradient, steps,
                                             segment_used, segment_settings, segment_scale, stats,
                                             slot_stats);
  return cudaGetLastError();
}

cudaError_t MseLayerNormBackward(const float* params, ParameterLayout layout, bool output_norm,
                                 const StepPlanView& plan, const float* y_hat, const float* target,
                                 const float* z_hat, const float* rstd,
                                 const std::uint8_t* source_finite,
                                 const std::uint8_t* target_finite,
                                 const std::int32_t* segment_used, float* dy, float* dz,
                                 float* row_sq_error, cudaStream_t stream) {
  mse_layer_norm_backward_kernel<<<static_cast<unsigned>(plan.layout.max_rows), kRowThreads, 0,
                                   stream>>>(params, layout, output_norm, plan, y_hat, target,
                                             z_hat, rstd, source_finite, target_finite,
                                             segment_used, dy, dz, row_sq_error);
  return cudaGetLastError();
}

cudaError_t DownBackwardData(const float* params, ParameterLayout layout, const StepPlanView& plan,
                             const float* dz, int splits, float* partial, cudaStream_t stream) {
  const DownBackwardDataProblem problem{params, layout, plan, dz, partial, splits};
  return detail::launch_slot_gemm(
      problem, row_grid<DownBackwardDataProblem>(plan, layout.rank, splits), stream);
}

cudaError_t SwigluBackward(ParameterLayout layout, const StepPlanView& plan, const float* partial,
                           int splits, const float* u, const float* pre, const float* v,
                           float* dgate, cudaStream_t stream) {
  swiglu_backward_kernel<<<flat_blocks(plan.layout.max_rows * layout.rank), kFlatThreads, 0,
                           stream>>>(layout, plan, partial, splits, u, pre, v, dgate);
  return cudaGetLastError();
}

cudaError_t DownWeightUpdate(const StepPlanView& plan, const float* gated, const float* dz,
                             const UpdateTarget& target, cudaStream_t stream) {
  return detail::dispatch_rule(target.rule, [&](auto rule) {
    using Problem = DownWeightProblem<decltype(rule)::value>;
    const Problem problem{plan, gated, dz, target};
    const ParameterLayout& l = target.bank.layout;
    return detail::launch_slot_gemm(problem, weight_grid<Problem>(plan, l.rank, l.hidden), stream);
  });
}

cudaError_t UpGateWeightUpdate(const StepPlanView& plan, const float* source, const float* dgate,
                               const UpdateTarget& target, cudaStream_t stream) {
  return detail::dispatch_rule(target.rule, [&](auto rule) {
    using Problem = UpGateWeightProblem<decltype(rule)::value>;
    const Problem problem{plan, source, dgate, target};
    const ParameterLayout& l = target.bank.layout;
    return detail::launch_slot_gemm(problem, weight_grid<Problem>(plan, l.hidden, 2 * l.rank),
                                    stream);
  });
}

cudaError_t VectorGradients(ParameterLayout layout, bool output_norm, const StepPlanView& plan,
                            const float* dgate, const float* dy, const float* z_hat,
                            float* vector_grad, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(plan.layout.max_segments),
                  static_cast<unsigned>(ceil_div(layout.vector_size(), kFlatThreads)));
  vector_gradients_kernel<<<grid, kFlatThreads, 0, stream>>>(layout, output_norm, plan, dgate, dy,
                                                             z_hat, vector_grad);
  return cudaGetLastError();
}

cudaError_t UpdateParameterRange(const StepPlanView& plan, const float* grad,
                                 std::int64_t grad_stride, std::int64_t begin, std::int64_t count,
                                 const UpdateTarget& target, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  const dim3 grid(
      static_cast<unsigned>(plan.layout.max_segments),
      static_cast<unsigned>(std::min<std::int64_t>(ceil_div(count, kFlatThreads), 65535)));
  return detail::dispatch_rule(target.rule, [&](auto rule) {
    update_parameter_range_kernel<decltype(rule)::value>
        <<<grid, kFlatThreads, 0, stream>>>(plan, grad, grad_stride, begin, count, target);
    return cudaGetLastError();
  });
}

cudaError_t FinishTrainingStep(const StepPlanView& plan, int hidden, const float* row_sq_error,
                               const std::int32_t* segment_used, Stats* stats,
                               GroupStats* slot_stats, cudaStream_t stream) {
  finish_training_step_kernel<<<1, 1, 0, stream>>>(plan, hidden, row_sq_error, segment_used, stats,
                                                   slot_stats);
  return cudaGetLastError();
}

}  // namespace esamp::cuda
