// CPU tests of the CUDA backend's host-side memory layouts: workspace sizing and filter
// parameters. They run without a GPU.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "cuda/sampling.cuh"
#include "cuda/workspace.hpp"

using namespace esamp;
using namespace esamp::cuda;

TEST_CASE("the workspace layout gives every buffer aligned, disjoint room for its contents",
          "[cuda][workspace]") {
  const auto [hidden, rank, slots, max_rows] =
      GENERATE(table<int, int, int, int>({{64, 64, 1, 1},
                                          {896, 128, 5, 7},
                                          {4096, 384, 64, 256},
                                          {4096, 128, 65536, 64},
                                          {100, 3, 2, 3}}));
  const WorkspaceLayout l = WorkspaceLayout::make({hidden, rank, slots, max_rows});
  INFO("H " << hidden << ", r " << rank << ", slots " << slots << ", max_rows " << max_rows);
  CHECK(l.gate_splits == WorkspaceLayout::split_count(hidden));
  CHECK(l.gate_splits >= 1);
  CHECK(l.gate_splits <= 16);
  const std::size_t R = static_cast<std::size_t>(max_rows), H = static_cast<std::size_t>(hidden),
                    r = static_cast<std::size_t>(rank),
                    S = static_cast<std::size_t>(std::min(slots, max_rows));
  const auto bytes = [&](WorkspaceBuffer b) { return l.bytes(b); };
  CHECK(bytes(WorkspaceBuffer::plan) == static_cast<std::size_t>(l.plan.size()) * 4);
  CHECK(bytes(WorkspaceBuffer::source_stage) >= R * H * 4);  // room for fp32 engine rows
  CHECK(bytes(WorkspaceBuffer::source) == R * H * 4);
  CHECK(bytes(WorkspaceBuffer::gate_partial) ==
        static_cast<std::size_t>(l.gate_splits) * R * 2 * r * 4);
  CHECK(bytes(WorkspaceBuffer::dp_partial) == static_cast<std::size_t>(l.dp_splits) * R * r * 4);
  CHECK(bytes(WorkspaceBuffer::vector_grad) == S * (r + 2 * H) * 4);
  CHECK(bytes(WorkspaceBuffer::segment_steps) == S * 8);
  std::size_t end = 0;
  constexpr std::size_t kAlignment = Carve<WorkspaceLayout::kBuffers>::kAlignment;
  for (std::size_t b = 0; b < WorkspaceLayout::kBuffers; ++b) {
    const std::size_t offset = l.carve.offset[b];
    CHECK(offset % kAlignment == 0);
    CHECK(offset >= end);  // in order and disjoint
    end = offset + l.carve.bytes[b];
  }
  CHECK(l.carve.total_bytes >= end);
  CHECK(l.carve.total_bytes < end + kAlignment);
  // get<T> is plain offset arithmetic from the caller's base.
  alignas(256) static std::byte base[1];
  CHECK(l.get<std::byte>(base, WorkspaceBuffer::y_hat) ==
        base + l.carve.offset[static_cast<std::size_t>(WorkspaceBuffer::y_hat)]);
}

TEST_CASE("the workspace holds one step plan, and y_hat_train only when end_step forwards again",
          "[cuda][workspace]") {
  const WorkspaceShape plain{896, 128, 5, 7};
  WorkspaceShape young = plain;
  young.train_forward = true;
  const WorkspaceLayout a = WorkspaceLayout::make(plain), b = WorkspaceLayout::make(young);
  const std::size_t plan_bytes = static_cast<std::size_t>(a.plan.size()) * 4;
  for (const WorkspaceBuffer buffer : {WorkspaceBuffer::plan, WorkspaceBuffer::plan_stage}) {
    CHECK(a.bytes(buffer) == plan_bytes);
    CHECK(b.bytes(buffer) == plan_bytes);
  }
  CHECK(a.bytes(WorkspaceBuffer::y_hat_train) == 0);
  CHECK(b.bytes(WorkspaceBuffer::y_hat_train) == 7 * 896 * 4);
  CHECK(b.bytes(WorkspaceBuffer::segment_settings) == 5 * sizeof(OptimizerSettings));
}

TEST_CASE("a carve leaves empty regions null and aligns the others", "[cuda][workspace]") {
  const auto c = Carve<3>::make({10, 0, 300});
  alignas(256) static std::byte base[1];
  CHECK(c.offset[0] == 0);
  CHECK(c.get<float>(base, 1) == nullptr);
  CHECK(c.offset[2] == 256);
  CHECK(c.total_bytes == 256 + 512);
}

TEST_CASE("split-K uses chunks of at least 256 and at most 16 partials", "[cuda][workspace]") {
  CHECK(WorkspaceLayout::split_count(1) == 1);
  CHECK(WorkspaceLayout::split_count(256) == 1);
  CHECK(WorkspaceLayout::split_count(257) == 2);
  CHECK(WorkspaceLayout::split_count(896) == 4);
  CHECK(WorkspaceLayout::split_count(4096) == 16);
  CHECK(WorkspaceLayout::split_count(16384) == 16);
}

TEST_CASE("filter parameters carry log(min_p) in double as select_candidates computes it",
          "[cuda][sampling]") {
  Filter f;
  f.temperature = 0.7f;
  f.top_k = 40;
  f.top_p = 0.9f;
  f.min_p = 0.05f;
  const FilterParams p = make_filter_params(f);
  CHECK(p.temperature == 0.7f);
  CHECK(p.top_k == 40);
  CHECK(p.top_p == 0.9f);
  CHECK(p.log_min_p == std::log(static_cast<double>(0.05f)));
  f.min_p = 0.0f;
  CHECK(make_filter_params(f).log_min_p == -std::numeric_limits<double>::infinity());
}
