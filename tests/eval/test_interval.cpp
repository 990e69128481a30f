// Student-t quantiles against tabulated values, and mean_interval against hand-computed intervals.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "interval.hpp"

namespace esamp::eval {
namespace {

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

}  // namespace

TEST_CASE("student_t_quantile matches the tables to 1e-6") {
  // t(0.975, dof) from standard tables (R's qt), 7 significant digits.
  const auto [dof, expected] = GENERATE(table<double, double>({{1, 12.706205},
                                                               {2, 4.302653},
                                                               {4, 2.776445},
                                                               {10, 2.228139},
                                                               {59, 2.000995},
                                                               {1e6, 1.959966}}));
  CAPTURE(dof);
  CHECK_THAT(student_t_quantile(0.975, dof), WithinRel(expected, 1e-6));
  CHECK_THAT(student_t_quantile(0.025, dof), WithinRel(-expected, 1e-6));
  CHECK_THAT(student_t_cdf(expected, dof), WithinAbs(0.975, 1e-7));
}

TEST_CASE("student_t_cdf is 1/2 at 0 and rejects dof < 1") {
  CHECK_THAT(student_t_cdf(0.0, 3.0), WithinAbs(0.5, 1e-15));
  // Cauchy (dof 1): F(1) = 3/4 exactly.
  CHECK_THAT(student_t_cdf(1.0, 1.0), WithinAbs(0.75, 1e-12));
  CHECK_THROWS_WITH(student_t_cdf(0.0, 0.5), Catch::Contains("dof = 0.5"));
  CHECK_THROWS_WITH(student_t_quantile(1.0, 3.0), Catch::Contains("p = 1"));
}

TEST_CASE("mean_interval is mean ± t(0.975, n-1)·s/√n, computed by hand") {
  SECTION("1..5: mean 3, s² = 2.5, half-width 2.776445·√0.5") {
    const Interval i = mean_interval({1, 2, 3, 4, 5});
    CHECK(i.count == 5);
    CHECK_THAT(i.mean, WithinAbs(3.0, 1e-15));
    CHECK_THAT(i.hi - i.mean, WithinRel(2.776445 * std::sqrt(0.5), 1e-6));
    CHECK_THAT(i.mean - i.lo, WithinRel(2.776445 * std::sqrt(0.5), 1e-6));
  }
  SECTION("two values 10 and 14: s = 2√2, half-width 12.706205·2") {
    const Interval i = mean_interval({10, 14});
    CHECK_THAT(i.mean, WithinAbs(12.0, 1e-15));
    CHECK_THAT(i.lo, WithinRel(12.0 - 12.706205 * 2.0, 1e-6));
    CHECK_THAT(i.hi, WithinRel(12.0 + 12.706205 * 2.0, 1e-6));
  }
  SECTION("equal values have a zero-width interval") {
    const Interval i = mean_interval({0.25, 0.25, 0.25});
    CHECK(i.lo == 0.25);
    CHECK(i.hi == 0.25);
  }
  SECTION("NaN values are left out; one finite value has a mean but no interval") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Interval left_out = mean_interval({nan, 1, 2, 3, 4, 5, nan});
    CHECK(left_out.count == 5);
    CHECK_THAT(left_out.hi - left_out.mean, WithinRel(2.776445 * std::sqrt(0.5), 1e-6));
    const Interval single = mean_interval({nan, 7.0});
    CHECK(single.count == 1);
    CHECK(single.mean == 7.0);
    CHECK(std::isnan(single.lo));
    CHECK(std::isnan(single.hi));
    const Interval none = mean_interval({nan});
    CHECK(none.count == 0);
    CHECK(std::isnan(none.mean));
  }
}

}  // namespace esamp::eval
