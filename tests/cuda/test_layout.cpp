// CPU tests of the CUDA backend's host-side layouts: parameter layout, step plans, workspace
// sizing, filter parameters. They run without a GPU.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/sampling.cuh"
#include "esamp/cpu/distiller_math.hpp"
#include "esamp/cuda/layout.hpp"

using namespace esamp;
using namespace esamp::cuda;

TEST_CASE("the CUDA parameter layout agrees with cpu::ParameterLayout", "[cuda][layout]") {
  const auto [hidden, rank] = GENERATE(table<std::int64_t, std::int64_t>(
      {{1, 1}, {12, 4}, {64, 64}, {896, 128}, {4096, 384}, {4097, 3}}));
  const cpu::ParameterLayout c{hidden, rank};
  const ParamLayout g{hidden, rank};
  CHECK(g.offset_A() == c.offset_A());
  CHECK(g.offset_G() == c.offset_G());
  CHECK(g.offset_B() == c.offset_B());
  CHECK(g.offset_b() == c.offset_b());
  CHECK(g.offset_w() == c.offset_w());
  CHECK(g.offset_c() == c.offset_c());
  CHECK(g.size() == c.size());
  CHECK(g.vector_size() == rank + 2 * hidden);
}

namespace {

// Checks every invariant of a built plan against the row slots it was built from.
void check_plan(const std::vector<int>& row_slots, const std::vector<std::int32_t>& data,
                const StepPlanLayout& layout) {
  const StepPlanView plan{data.data(), layout};
  const int rows = static_cast<int>(row_slots.size());
  REQUIRE(plan.rows() == rows);
  std::vector<int> seen(static_cast<std::size_t>(rows), 0);
  for (int i = 0; i < rows; ++i) {
    const int p = plan.row_position(i);
    REQUIRE(p >= 0);
    REQUIRE(p < rows);
    CHECK(plan.position_row(p) == i);
    ++seen[static_cast<std::size_t>(p)];
    const int s = plan.position_segment(p);
    REQUIRE(s >= 0);
    REQUIRE(s < plan.segments());
    CHECK(plan.segment_slot(s) == row_slots[static_cast<std::size_t>(i)]);
    CHECK(p >= plan.segment_begin(s));
    CHECK(p < plan.segment_end(s));
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));

  // Segments: ascending distinct slots, contiguous, covering [0, rows), rows in input order.
  int expected_begin = 0, tiles = 0;
  for (int s = 0; s < plan.segments(); ++s) {
    CHECK(plan.segment_begin(s) == expected_begin);
    CHECK(plan.segment_end(s) > plan.segment_begin(s));
    if (s > 0) CHECK(plan.segment_slot(s) > plan.segment_slot(s - 1));
    for (int p = plan.segment_begin(s) + 1; p < plan.segment_end(s); ++p)
      CHECK(plan.position_row(p) > plan.position_row(p - 1));
    for (int t = plan.segment_begin(s); t < plan.segment_end(s); t += kRowTile, ++tiles) {
      REQUIRE(tiles < plan.tiles());
      CHECK(plan.tile_segment(tiles) == s);
      CHECK(plan.tile_begin(tiles) == t);
    }
    expected_begin = plan.segment_end(s);
  }
  CHECK(expected_begin == rows);
  CHECK(plan.tiles() == tiles);
  CHECK(plan.segments() <= layout.max_segments);
  CHECK(plan.tiles() <= layout.max_tiles);
}

}  // namespace

TEST_CASE("a step plan groups rows by ascending slot and tiles every segment", "[cuda][plan]") {
  const auto [max_rows, slots] =
      GENERATE(table<int, int>({{1, 1}, {7, 5}, {64, 64}, {256, 5}, {256, 64}, {300, 65536}}));
  const StepPlanLayout layout = StepPlanLayout::make(max_rows, slots);
  CHECK(layout.max_segments == std::min(max_rows, slots));
  StepPlanBuilder builder(layout, slots);
  std::mt19937 gen(static_cast<unsigned>(max_rows * 31 + slots));
  std::vector<std::int32_t> data(static_cast<std::size_t>(layout.size()), -7);
  // Several builds through one builder: its scratch must come back clean each time.
  for (int round = 0; round < 6; ++round) {
    const int rows = round == 0 ? max_rows : std::uniform_int_distribution<int>(0, max_rows)(gen);
    // Few distinct slots on some rounds (long segments, several tiles), many on others.
    const int distinct = round % 2 ? std::min(slots, 3) : slots;
    std::vector<int> row_slots(static_cast<std::size_t>(rows));
    for (int& s : row_slots)
      s = std::uniform_int_distribution<int>(0, distinct - 1)(gen) * (slots / distinct);
    builder.build(row_slots, data.data());
    INFO("max_rows " << max_rows << ", slots " << slots << ", round " << round << ", rows "
                     << rows);
    check_plan(row_slots, data, layout);
  }
}

TEST_CASE("the tile capacity bounds the worst case of one-row segments plus one long one",
          "[cuda][plan]") {
  const int max_rows = 100, slots = 40;
  const StepPlanLayout layout = StepPlanLayout::make(max_rows, slots);
  StepPlanBuilder builder(layout, slots);
  std::vector<int> row_slots;
  for (int s = 0; s < slots - 1; ++s) row_slots.push_back(s);  // 39 one-row segments
  while (static_cast<int>(row_slots.size()) < max_rows) row_slots.push_back(slots - 1);
  std::vector<std::int32_t> data(static_cast<std::size_t>(layout.size()));
  builder.build(row_slots, data.data());
  check_plan(row_slots, data, layout);
  CHECK(StepPlanView{data.data(), layout}.tiles() == slots - 1 + 2);  // 61 rows: 2 tiles of 32
}

TEST_CASE("a bad row slot or too many rows is an Error and leaves the plan untouched",
          "[cuda][plan]") {
  const StepPlanLayout layout = StepPlanLayout::make(4, 3);
  StepPlanBuilder builder(layout, 3);
  std::vector<std::int32_t> data(static_cast<std::size_t>(layout.size()), 42);
  const std::vector<int> bad_slot{0, 3}, negative{-1}, too_many{0, 0, 0, 0, 0};
  CHECK_THROWS_AS(builder.build(bad_slot, data.data()), Error);
  CHECK_THROWS_WITH(builder.build(negative, data.data()),
                    Catch::Matchers::Contains("slot id -1 of row 0"));
  CHECK_THROWS_WITH(builder.build(too_many, data.data()),
                    Catch::Matchers::Contains("more than max_rows = 4"));
  CHECK(std::all_of(data.begin(), data.end(), [](std::int32_t v) { return v == 42; }));
  // And the builder still works afterwards.
  const std::vector<int> good{2, 0, 2};
  builder.build(good, data.data());
  check_plan(good, data, layout);
}

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
  const auto bytes = [&](WorkspaceBuffer b) { return l.bytes[static_cast<std::size_t>(b)]; };
  CHECK(bytes(WorkspaceBuffer::plan) == static_cast<std::size_t>(l.plan.size()) * 4);
  CHECK(bytes(WorkspaceBuffer::source_stage) >= R * H * 4);  // room for fp32 engine rows
  CHECK(bytes(WorkspaceBuffer::source) == R * H * 4);
  CHECK(bytes(WorkspaceBuffer::gate_partial) ==
        static_cast<std::size_t>(l.gate_splits) * R * 2 * r * 4);
  CHECK(bytes(WorkspaceBuffer::dp_partial) == static_cast<std::size_t>(l.dp_splits) * R * r * 4);
  CHECK(bytes(WorkspaceBuffer::vector_grad) == S * (r + 2 * H) * 4);
  CHECK(bytes(WorkspaceBuffer::segment_steps) == S * 8);
  std::size_t end = 0;
  for (int b = 0; b < WorkspaceLayout::kBuffers; ++b) {
    const std::size_t offset = l.offset[static_cast<std::size_t>(b)];
    CHECK(offset % WorkspaceLayout::kAlignment == 0);
    CHECK(offset >= end);  // in order and disjoint
    end = offset + l.bytes[static_cast<std::size_t>(b)];
  }
  CHECK(l.total_bytes >= end);
  CHECK(l.total_bytes < end + WorkspaceLayout::kAlignment);
  // get<T> is plain offset arithmetic from the caller's base.
  alignas(256) static std::byte base[1];
  CHECK(l.get<std::byte>(base, WorkspaceBuffer::y_hat) ==
        base + l.offset[static_cast<std::size_t>(WorkspaceBuffer::y_hat)]);
}

TEST_CASE("a workspace shape out of range is an Error naming the values", "[cuda][workspace]") {
  CHECK_THROWS_WITH(WorkspaceLayout::make({64, 65, 1, 1}), Catch::Matchers::Contains("rank = 65"));
  CHECK_THROWS_WITH(WorkspaceLayout::make({64, 8, 1, 0}),
                    Catch::Matchers::Contains("max_rows = 0"));
  CHECK_THROWS_WITH(WorkspaceLayout::make({64, 8, 0, 4}), Catch::Matchers::Contains("slots = 0"));
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
  f.top_p = 0.0f;
  CHECK_THROWS_AS(make_filter_params(f), Error);
}
