// esamp-passk's summaries: scoring a problem, aligning partial runs, Pass@k means with bootstrap
// intervals, and the comparison at matched Pass@1.
#include <catch2/catch.hpp>
#include <cmath>

#include "evaluation.hpp"
#include "passk.hpp"

namespace esamp::passk {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

// A run whose problem p has correct[p] correct answers out of `samples` (answer 7 for every one).
ConfigOutcomes run_of(Config config, int samples, const std::vector<int>& correct) {
  ConfigOutcomes run{std::move(config), {}};
  for (const int c : correct) {
    std::vector<std::optional<std::int64_t>> read(static_cast<std::size_t>(samples));
    for (int s = 0; s < c; ++s) read[static_cast<std::size_t>(s)] = 7;
    run.problems.push_back(score_problem(7, read, 10));
  }
  return run;
}

TEST_CASE("score_problem counts correct, answered and distinct answers", "[passk]") {
  const ProblemOutcome outcome = score_problem(12, {12, std::nullopt, 5, 12, -5, std::nullopt}, 99);
  CHECK(outcome.answer == 12);
  CHECK(outcome.samples == 6);
  CHECK(outcome.correct == 2);
  CHECK(outcome.answered == 4);
  CHECK(outcome.distinct_answers == 3);
  CHECK(outcome.tokens == 99);
}

TEST_CASE("configurations are named by their method and settings", "[passk]") {
  CHECK(make_config(Method::esamp, 0.7f, 0.5f, 0.3f).name == "esamp-b0.5-T0.7");
  CHECK(make_config(Method::esamp, 0.7f, 0.5f, 0.3f).min_p == 0.0f);
  CHECK(make_config(Method::temperature, 1.0f, 0.5f, 0.0f).name == "temperature-T1");
  CHECK(make_config(Method::temperature, 1.0f, 0.5f, 0.0f).beta == 0.0f);
  CHECK(make_config(Method::min_p, 1.0f, 0.0f, 0.05f).name == "min-p-p0.05-T1");
  CHECK(make_config(Method::min_p, 1.0f, 0.0f, 0.05f).sweep_value() == Approx(0.05));
}

TEST_CASE("align keeps the problems every configuration has finished", "[passk]") {
  const Config t = make_config(Method::temperature, 1.0f, 0.0f, 0.0f);
  const Config e = make_config(Method::esamp, 1.0f, 0.5f, 0.0f);
  const Alignment alignment = align({run_of(t, 4, {1, 2, 3}), run_of(e, 4, {0, 4})});
  CHECK(alignment.problems == 2);
  CHECK(alignment.samples == 4);
  CHECK_THROWS_WITH(align({run_of(t, 4, {1}), run_of(e, 3, {1})}), Contains("3 samples"));
  ConfigOutcomes other = run_of(e, 4, {1});
  other.problems[0].answer = 8;
  CHECK_THROWS_WITH(align({run_of(t, 4, {1}), other}), Contains("answer 8"));
  CHECK_THROWS_WITH(align({run_of(t, 4, {1}), run_of(e, 4, {})}), Contains("no problem"));
}

TEST_CASE("summarize gives Pass@k means over problems with intervals around them", "[passk]") {
  const Config t = make_config(Method::temperature, 1.0f, 0.0f, 0.0f);
  const std::vector<ConfigOutcomes> runs = {run_of(t, 4, {0, 1, 2, 4, 4, 0, 3, 1})};
  const Alignment alignment = align(runs);
  const std::vector<ConfigSummary> summaries = summarize(runs, alignment, 500, 1);
  REQUIRE(summaries.size() == 1);
  const ConfigSummary& s = summaries[0];
  REQUIRE(s.pass_at_k.size() == 4);
  CHECK_THAT(s.pass_at_k[0].mean, WithinAbs((0 + 1 + 2 + 4 + 4 + 0 + 3 + 1) / 32.0, 1e-12));
  // Pass@2 with c of 4: 1 - C(4-c, 2)/6, i.e. 0, 1/2, 5/6, 1, 1, 0, 1, 1/2.
  CHECK_THAT(s.pass_at_k[1].mean, WithinAbs((0.5 + 5.0 / 6 + 1 + 1 + 1 + 0.5) / 8, 1e-12));
  CHECK_THAT(s.pass_at_k[3].mean, WithinAbs(6.0 / 8, 1e-12));
  for (const eval::Interval& interval : s.pass_at_k) {
    CHECK(interval.lo < interval.mean);
    CHECK(interval.mean < interval.hi);
    CHECK(interval.count == 500);
  }
  CHECK_THAT(s.distinct_answers.mean, WithinAbs(6.0 / 8, 1e-12));  // one value where c > 0
  CHECK_THAT(s.answered.mean, WithinAbs(15.0 / 32, 1e-12));
  // Seeded: the same resamples again.
  CHECK(summarize(runs, alignment, 500, 1)[0].pass_at_k[1].lo == s.pass_at_k[1].lo);
}

TEST_CASE("bootstrap_intervals: percentiles of resampled statistics, NaNs left out", "[passk]") {
  const std::vector<double> values = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const auto statistic = [&values](const std::vector<std::size_t>& sample) {
    double total = 0.0;
    for (const std::size_t u : sample) total += values[u];
    const double mean = total / static_cast<double>(sample.size());
    return std::vector<double>{mean, 4.0, mean > 6.0 ? std::nan("") : mean};
  };
  const std::vector<eval::Interval> intervals = eval::bootstrap_intervals(10, statistic, 2000, 3);
  REQUIRE(intervals.size() == 3);
  CHECK(intervals[0].mean == 5.5);
  // The standard error of the mean is about 0.87: a 95% interval about ±1.7 wide.
  CHECK(intervals[0].lo > 3.5);
  CHECK(intervals[0].lo < 4.3);
  CHECK(intervals[0].hi > 6.7);
  CHECK(intervals[0].hi < 7.5);
  CHECK(intervals[1].lo == 4.0);
  CHECK(intervals[1].hi == 4.0);
  // P(resampled mean > 6) is about 0.28 (normal approximation): about 1440 of 2000 remain.
  CHECK(intervals[2].count > 1300);
  CHECK(intervals[2].count < 1600);
  CHECK(intervals[2].hi <= 6.0);
  CHECK(eval::bootstrap_intervals(10, statistic, 2000, 3)[0].lo == intervals[0].lo);
  // Another seed, other resamples (a statistic with no ties between resamples).
  const auto spread = [](const std::vector<std::size_t>& sample) {
    double total = 0.0;
    for (const std::size_t u : sample) total += std::sqrt(static_cast<double>(u) + 0.5);
    return std::vector<double>{total};
  };
  CHECK(eval::bootstrap_intervals(10, spread, 200, 3)[0].lo ==
        eval::bootstrap_intervals(10, spread, 200, 3)[0].lo);
  CHECK(eval::bootstrap_intervals(10, spread, 200, 3)[0].lo !=
        eval::bootstrap_intervals(10, spread, 200, 4)[0].lo);
  CHECK_THROWS(eval::bootstrap_intervals(0, statistic, 10, 3));
}

TEST_CASE("compare_at_matched_pass1 interpolates the baseline's sweep to esamp's Pass@1",
          "[passk]") {
  // Pass@1 0.5 at T 0.5, 0.25 at T 1 (every problem alike); esamp at 0.375 matches T 0.75.
  const std::vector<ConfigOutcomes> runs = {
      run_of(make_config(Method::esamp, 0.7f, 0.5f, 0.0f), 8, {3, 3, 3, 3}),
      run_of(make_config(Method::temperature, 1.0f, 0.0f, 0.0f), 8, {2, 2, 2, 2}),
      run_of(make_config(Method::temperature, 0.5f, 0.0f, 0.0f), 8, {4, 4, 4, 4}),
      run_of(make_config(Method::min_p, 1.0f, 0.0f, 0.1f), 8, {4, 4, 4, 4}),
  };
  const Alignment alignment = align(runs);
  const std::vector<MatchedComparison> comparisons =
      compare_at_matched_pass1(runs, alignment, 200, 5);
  REQUIRE(comparisons.size() == 1);  // min-p has one setting: no sweep to match along
  const MatchedComparison& c = comparisons[0];
  CHECK(c.esamp == "esamp-b0.5-T0.7");
  CHECK(c.baseline == "temperature");
  CHECK_THAT(c.setting.mean, WithinAbs(0.75, 1e-12));
  REQUIRE(c.delta_pass_at_k.size() == 8);
  CHECK_THAT(c.delta_pass_at_k[0].mean, WithinAbs(0.0, 1e-12));
  const double expected_k2 = pass_at_k(8, 3, 2) - 0.5 * (pass_at_k(8, 2, 2) + pass_at_k(8, 4, 2));
  CHECK_THAT(c.delta_pass_at_k[1].mean, WithinAbs(expected_k2, 1e-12));
  CHECK(c.delta_pass_at_k[1].mean > 0.0);  // Pass@2 is concave in c: above the chord
  CHECK(c.setting.count == 200);           // identical problems: every resample matches

  // esamp above the whole sweep: no match.
  const std::vector<ConfigOutcomes> above = {
      run_of(make_config(Method::esamp, 0.7f, 0.5f, 0.0f), 8, {6, 6}),
      run_of(make_config(Method::temperature, 1.0f, 0.0f, 0.0f), 8, {2, 2}),
      run_of(make_config(Method::temperature, 0.5f, 0.0f, 0.0f), 8, {4, 4}),
  };
  const MatchedComparison none = compare_at_matched_pass1(above, align(above), 50, 5).at(0);
  CHECK(std::isnan(none.setting.mean));
  CHECK(none.setting.count == 0);
}

}  // namespace
}  // namespace esamp::passk
