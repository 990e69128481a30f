// A shared-memory tiled fp32 GEMM over the slot segments of a step (SIMT FMA, fp32 accumulate).
// Each thread block computes one BM x BN output tile of one segment's product with that segment's
// slot weights; which rows, which slot and which K range come from a Problem that reads the step
// plan in device memory, so one launch serves every slot and a captured graph stays valid when the
// rows change. Why not cuBLAS: grouped/batched cuBLAS GEMMs take each group's m on the host, which
// a graph freezes, and a custom epilogue lets the weight gradients feed the optimizer directly.
// Included by .cu files only.
#pragma once

#include "detail/common.cuh"

namespace esamp::cuda::detail {

template <int kBM, int kBN, int kBK, int kTM, int kTN>
struct GemmTile {
  static constexpr int BM = kBM, BN = kBN, BK = kBK, TM = kTM, TN = kTN;
  static constexpr int kThreadsN = BN / TN;
  static constexpr int kThreadsM = BM / TM;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  static_assert(BM % TM == 0 && BN % TN == 0 && kThreads % kWarp == 0, "tile shape");
};

// A Problem provides: Tile; kAAlongK / kBAlongK (which index of a(m, k) / b(k, n) is contiguous in
// memory, for coalesced tile loads); a Block type with m_count, n_count, k_begin, k_end;
// locate(Block&) (false: this thread block has no work); a(block, m, k), b(block, k, n) with m, n
// local to the tile and k global; store(block, m, n, acc). Products accumulate in k order, so the
// result is deterministic.
template <class Problem>
__global__ void __launch_bounds__(Problem::Tile::kThreads) slot_gemm_kernel(const Problem problem) {
  using Tile = typename Problem::Tile;
  // +1 column: the transposed tile stores of the contiguous-along-K loads hit distinct banks.
  __shared__ float a_tile[Tile::BK][Tile::BM + 1];
  __shared__ float b_tile[Tile::BK][Tile::BN + 1];

  typename Problem::Block block;
  if (!problem.locate(block)) return;
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % Tile::kThreadsN;
  const int ty = tid / Tile::kThreadsN;

  float acc[Tile::TM][Tile::TN];
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) acc[i][j] = 0.0f;

  for (int k0 = block.k_begin; k0 < block.k_end; k0 += Tile::BK) {
    for (int e = tid; e < Tile::BM * Tile::BK; e += Tile::kThreads) {
      const int m = Problem::kAAlongK ? e / Tile::BK : e % Tile::BM;
      const int k = Problem::kAAlongK ? e % Tile::BK : e / Tile::BM;
      a_tile[k][m] = m < block.m_count && k0 + k < block.k_end ? problem.a(block, m, k0 + k) : 0.0f;
    }
    for (int e = tid; e < Tile::BN * Tile::BK; e += Tile::kThreads) {
      const int n = Problem::kBAlongK ? e / Tile::BK : e % Tile::BN;
      const int k = Problem::kBAlongK ? e % Tile::BK : e / Tile::BN;
      b_tile[k][n] = n < block.n_count && k0 + k < block.k_end ? problem.b(block, k0 + k, n) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < Tile::BK; ++k) {
      float a[Tile::TM], b[Tile::TN];
#pragma unroll
      for (int i = 0; i < Tile::TM; ++i) a[i] = a_tile[k][ty + i * Tile::kThreadsM];
#pragma unroll
      for (int j = 0; j < Tile::TN; ++j) b[j] = b_tile[k][tx + j * Tile::kThreadsN];
#pragma unroll
      for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
        for (int j = 0; j < Tile::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
    const int m = ty + i * Tile::kThreadsM;
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) {
      const int n = tx + j * Tile::kThreadsN;
      if (m < block.m_count && n < block.n_count) problem.store(block, m, n, acc[i][j]);
    }
  }
}

template <class Problem>
cudaError_t launch_slot_gemm(const Problem& problem, dim3 grid, cudaStream_t stream) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaSuccess;
  slot_gemm_kernel<Problem><<<grid, Problem::Tile::kThreads, 0, stream>>>(problem);
  return cudaGetLastError();
}

}  // namespace esamp::cuda::detail
