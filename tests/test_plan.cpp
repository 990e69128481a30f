// The step plan, the one place rows are grouped by slot (esamp/core.hpp), shared by the CPU and
// the CUDA backend.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "esamp/core.hpp"

using namespace esamp;

namespace {

// A distinct β per row, so that a row's β shows which row it was given for.
std::vector<float> beta_of(const std::vector<int>& row_slots) {
  std::vector<float> beta(row_slots.size());
  for (std::size_t i = 0; i < beta.size(); ++i) beta[i] = 0.25f * static_cast<float>(i) + 0.5f;
  return beta;
}

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
    CHECK(plan.row_beta(i) == beta_of(row_slots)[static_cast<std::size_t>(i)]);
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
    builder.build(row_slots, beta_of(row_slots), data.data());
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
  builder.build(row_slots, beta_of(row_slots), data.data());
  check_plan(row_slots, data, layout);
  CHECK(StepPlanView{data.data(), layout}.tiles() == slots - 1 + 2);  // 61 rows: 2 tiles of 32
}

TEST_CASE("a training schedule's lr decays in double rounded once", "[plan][lr_decay]") {
  ExplorationConfig e;
  e.young_updates = 3;
  e.young_repeat = 2;
  e.lr_decay_updates = 7;
  const TrainingSchedule s = TrainingSchedule::of(e);
  CHECK(s.young_passes() == 1);
  const float lr = 1e-3f;
  CHECK(s.lr(lr, 1) == lr);  // the first update at the full lr
  for (const std::int64_t step : {2, 5, 1000}) {
    INFO("step " << step);
    CHECK(s.lr(lr, step) == static_cast<float>(static_cast<double>(lr) * 7.0 /
                                               (7.0 + static_cast<double>(step - 1))));
  }
  ExplorationConfig plain;  // no young slots (the defaults have them)
  plain.young_updates = 0;
  TrainingSchedule none = TrainingSchedule::of(plain);
  CHECK(none.young_passes() == 0);
  CHECK(none.lr(lr, 50) == lr);
  none.young_repeat = 4;  // no slot is young while young_updates is 0
  CHECK(none.young_passes() == 0);
}
