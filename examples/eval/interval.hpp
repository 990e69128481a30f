// The mean of per-prompt values with its two-sided 95% Student-t confidence interval: the
// uncertainty esamp-eval reports for every metric (prompts are the independent units).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace esamp::eval {

struct Interval {
  double mean = 0.0;
  double lo = 0.0;  // NaN with fewer than two values: no spread to estimate
  double hi = 0.0;
  std::size_t count = 0;  // finite values used
};

// P(T <= t) for Student's t with `dof` degrees of freedom (dof >= 1).
double student_t_cdf(double t, double dof);

// The t with P(T <= t) = p, for p in (0, 1).
double student_t_quantile(double p, double dof);

// mean ± t(0.975, n-1)·s/√n over the finite values (NaNs, e.g. a prompt with no scored sample,
// are left out). No finite value: every field NaN but count = 0.
Interval mean_interval(const std::vector<double>& values);

// Percentile bootstrap over `units` independent units (e.g. problems): `statistic` maps the unit
// indices of a sample (the original 0..units-1, or a resample drawn with replacement) to values.
// Value i's interval: mean = the statistic on the original units, [lo, hi] = the 2.5th and 97.5th
// percentiles of its finite values over `replicates` resamples (NaN with fewer than two), count =
// those finite values. The same seed gives the same resamples.
std::vector<Interval> bootstrap_intervals(
    std::size_t units,
    const std::function<std::vector<double>(const std::vector<std::size_t>& sample)>& statistic,
    int replicates, std::uint64_t seed);

}  // namespace esamp::eval
