// Student-t quantiles through the regularized incomplete beta function (continued fraction,
// modified Lentz), and the interval built on them.
#include "interval.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "esamp/error.hpp"

namespace esamp::eval {
namespace {

// The continued fraction of I_x(a, b), convergent for x < (a + 1) / (a + b + 2).
double incomplete_beta_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300;  // keeps Lentz's divisions away from zero
  constexpr double kEpsilon = 1e-15;
  double c = 1.0;
  double d = 1.0 - (a + b) * x / (a + 1.0);
  d = 1.0 / (std::abs(d) < kTiny ? kTiny : d);
  double result = d;
  for (int m = 1; m <= 1000; ++m) {
    const double m2 = 2.0 * m;
    for (const double coefficient : {m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
                                     -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))}) {
      d = 1.0 + coefficient * d;
      d = 1.0 / (std::abs(d) < kTiny ? kTiny : d);
      c = 1.0 + coefficient / c;
      if (std::abs(c) < kTiny) c = kTiny;
      result *= c * d;
    }
    if (std::abs(c * d - 1.0) < kEpsilon) break;
  }
  return result;
}

// I_x(a, b), the regularized incomplete beta function, for x in [0, 1].
double regularized_incomplete_beta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double front = std::exp(log_front);
  if (x < (a + 1.0) / (a + b + 2.0)) return front * incomplete_beta_fraction(a, b, x) / a;
  return 1.0 - front * incomplete_beta_fraction(b, a, 1.0 - x) / b;  // the symmetric form
}

}  // namespace

double student_t_cdf(double t, double dof) {
  if (!(dof >= 1.0)) fail("student_t_cdf: dof = {}: must be >= 1", dof);
  const double tail = 0.5 * regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t));
  return t >= 0.0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double dof) {
  if (!(p > 0.0 && p < 1.0)) fail("student_t_quantile: p = {}: must be in (0, 1)", p);
  // Bisection on the monotone CDF; t(0.9999999, 1) is ~3e6, so this bracket is wide enough.
  double lo = -1e7, hi = 1e7;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * (1.0 + std::abs(lo)); ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Interval mean_interval(const std::vector<double>& values) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  Interval interval{kNaN, kNaN, kNaN, 0};
  double sum = 0.0;
  for (const double v : values) {
    if (!std::isfinite(v)) continue;
    sum += v;
    ++interval.count;
  }
  if (interval.count == 0) return interval;
  const auto n = static_cast<double>(interval.count);
  interval.mean = sum / n;
  if (interval.count < 2) return interval;
  double squares = 0.0;
  for (const double v : values)
    if (std::isfinite(v)) squares += (v - interval.mean) * (v - interval.mean);
  const double standard_error = std::sqrt(squares / (n - 1.0) / n);
  const double half_width = student_t_quantile(0.975, n - 1.0) * standard_error;
  interval.lo = interval.mean - half_width;
  interval.hi = interval.mean + half_width;
  return interval;
}

std::vector<Interval> bootstrap_intervals(
    std::size_t units,
    const std::function<std::vector<double>(const std::vector<std::size_t>& sample)>& statistic,
    int replicates, std::uint64_t seed) {
  if (units < 1 || replicates < 1)
    fail("bootstrap_intervals: units = {} and replicates = {} must be >= 1", units, replicates);
  std::vector<std::size_t> sample(units);
  for (std::size_t u = 0; u < units; ++u) sample[u] = u;
  const std::vector<double> estimate = statistic(sample);
  std::vector<std::vector<double>> draws(estimate.size());  // [values][finite replicates]
  std::uint64_t state = seed;
  for (int r = 0; r < replicates; ++r) {
    for (std::size_t& unit : sample) {
      // SplitMix64; the modulo's bias is below 2^-40 for any realistic count of units.
      std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      unit = static_cast<std::size_t>((z ^ (z >> 31)) % units);
    }
    const std::vector<double> values = statistic(sample);
    if (values.size() != estimate.size())
      fail("bootstrap_intervals: the statistic gave {} values on a resample, {} on the units",
           values.size(), estimate.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      if (std::isfinite(values[i])) draws[i].push_back(values[i]);
  }
  const auto percentile = [](const std::vector<double>& sorted, double p) {
    const double position = p * static_cast<double>(sorted.size() - 1);
    const auto below = static_cast<std::size_t>(position);
    const std::size_t above = std::min(below + 1, sorted.size() - 1);
    return sorted[below] +
           (position - static_cast<double>(below)) * (sorted[above] - sorted[below]);
  };
  std::vector<Interval> intervals(estimate.size());
  for (std::size_t i = 0; i < estimate.size(); ++i) {
    std::vector<double>& values = draws[i];
    std::sort(values.begin(), values.end());
    Interval& interval = intervals[i];
    interval.mean = estimate[i];
    interval.count = values.size();
    const bool spread = values.size() >= 2;
    interval.lo = spread ? percentile(values, 0.025) : std::numeric_limits<double>::quiet_NaN();
    interval.hi = spread ? percentile(values, 0.975) : std::numeric_limits<double>::quiet_NaN();
  }
  return intervals;
}

}  // namespace esamp::eval
