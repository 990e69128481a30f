// Pass@k summaries and the matched-Pass@1 comparison: see evaluation.hpp.
#include "evaluation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "passk.hpp"

namespace esamp::passk {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// [problem][n + 2]: Pass@1..n, distinct answers, share answered, for each aligned problem.
using ProblemValues = std::vector<std::vector<double>>;

ProblemValues problem_values(const ConfigOutcomes& run, const Alignment& alignment) {
  ProblemValues table;
  for (std::size_t p = 0; p < alignment.problems; ++p) {
    const ProblemOutcome& outcome = run.problems[p];
    std::vector<double> values;
    for (int k = 1; k <= alignment.samples; ++k)
      values.push_back(pass_at_k(outcome.samples, outcome.correct, k));
    values.push_back(outcome.distinct_answers);
    values.push_back(static_cast<double>(outcome.answered) / outcome.samples);
    table.push_back(std::move(values));
  }
  return table;
}

std::vector<double> means(const ProblemValues& table, const std::vector<std::size_t>& sample) {
  std::vector<double> total(table.front().size(), 0.0);
  for (const std::size_t p : sample)
    for (std::size_t i = 0; i < total.size(); ++i) total[i] += table[p][i];
  for (double& value : total) value /= static_cast<double>(sample.size());
  return total;
}

}  // namespace

const char* method_name(Method method) {
  switch (method) {
    case Method::esamp:
      return "esamp";
    case Method::temperature:
      return "temperature";
    case Method::min_p:
      return "min-p";
  }
  return "?";
}

double Config::sweep_value() const {
  switch (method) {
    case Method::esamp:
      return beta;
    case Method::temperature:
      return temperature;
    case Method::min_p:
      return min_p;
  }
  return kNaN;
}

Config make_config(Method method, float temperature, float beta, float min_p) {
  Config config;
  config.method = method;
  config.temperature = temperature;
  config.beta = method == Method::esamp ? beta : 0.0f;
  config.min_p = method == Method::min_p ? min_p : 0.0f;
  switch (method) {
    case Method::esamp:
      config.name = fmt::format("esamp-b{:g}-T{:g}", beta, temperature);
      break;
    case Method::temperature:
      config.name = fmt::format("temperature-T{:g}", temperature);
      break;
    case Method::min_p:
      config.name = fmt::format("min-p-p{:g}-T{:g}", min_p, temperature);
      break;
  }
  return config;
}

ProblemOutcome score_problem(std::int64_t answer,
                             const std::vector<std::optional<std::int64_t>>& read_answers,
                             std::int64_t tokens) {
  ProblemOutcome outcome;
  outcome.answer = answer;
  outcome.samples = static_cast<int>(read_answers.size());
  outcome.tokens = tokens;
  std::set<std::int64_t> distinct;
  for (const auto& read : read_answers) {
    if (!read) continue;
    ++outcome.answered;
    if (*read == answer) ++outcome.correct;
    distinct.insert(*read);
  }
  outcome.distinct_answers = static_cast<int>(distinct.size());
  return outcome;
}

Alignment align(const std::vector<ConfigOutcomes>& runs) {
  if (runs.empty()) throw std::runtime_error("no configuration to summarize");
  Alignment alignment;
  alignment.problems = runs.front().problems.size();
  for (const ConfigOutcomes& run : runs)
    alignment.problems = std::min(alignment.problems, run.problems.size());
  if (alignment.problems == 0)
    throw std::runtime_error("no problem has been run under every configuration");
  alignment.samples = runs.front().problems.front().samples;
  for (const ConfigOutcomes& run : runs)
    for (std::size_t p = 0; p < alignment.problems; ++p) {
      const ProblemOutcome& outcome = run.problems[p];
      if (outcome.samples != alignment.samples)
        throw std::runtime_error(fmt::format("{}, problem {}: {} samples where {} has {}",
                                             run.config.name, p, outcome.samples,
                                             runs.front().config.name, alignment.samples));
      if (outcome.answer != runs.front().problems[p].answer)
        throw std::runtime_error(
            fmt::format("{}, problem {}: answer {} where {} has {}", run.config.name, p,
                        outcome.answer, runs.front().config.name, runs.front().problems[p].answer));
    }
  return alignment;
}

std::vector<ConfigSummary> summarize(const std::vector<ConfigOutcomes>& runs,
                                     const Alignment& alignment, int replicates,
                                     std::uint64_t seed) {
  std::vector<ProblemValues> tables;
  for (const ConfigOutcomes& run : runs) tables.push_back(problem_values(run, alignment));
  const std::vector<eval::Interval> intervals = eval::bootstrap_intervals(
      alignment.problems,
      [&tables](const std::vector<std::size_t>& sample) {
        std::vector<double> values;
        for (const ProblemValues& table : tables) {
          const std::vector<double> config_means = means(table, sample);
          values.insert(values.end(), config_means.begin(), config_means.end());
        }
        return values;
      },
      replicates, seed);
  const auto width = static_cast<std::size_t>(alignment.samples) + 2;
  std::vector<ConfigSummary> summaries;
  for (std::size_t c = 0; c < runs.size(); ++c) {
    const auto first = intervals.begin() + static_cast<std::ptrdiff_t>(c * width);
    ConfigSummary summary;
    summary.config = runs[c].config.name;
    summary.pass_at_k.assign(first, first + alignment.samples);
    summary.distinct_answers = first[alignment.samples];
    summary.answered = first[alignment.samples + 1];
    summaries.push_back(std::move(summary));
  }
  return summaries;
}

std::vector<MatchedComparison> compare_at_matched_pass1(const std::vector<ConfigOutcomes>& runs,
                                                        const Alignment& alignment, int replicates,
                                                        std::uint64_t seed) {
  const auto n = static_cast<std::size_t>(alignment.samples);
  std::vector<MatchedComparison> comparisons;
  for (const ConfigOutcomes& esamp : runs) {
    if (esamp.config.method != Method::esamp) continue;
    const ProblemValues esamp_table = problem_values(esamp, alignment);
    for (const Method baseline : {Method::temperature, Method::min_p}) {
      std::vector<const ConfigOutcomes*> sweep;
      for (const ConfigOutcomes& run : runs)
        if (run.config.method == baseline) sweep.push_back(&run);
      if (sweep.size() < 2) continue;
      std::sort(sweep.begin(), sweep.end(), [](const ConfigOutcomes* a, const ConfigOutcomes* b) {
        return a->config.sweep_value() < b->config.sweep_value();
      });
      std::vector<ProblemValues> tables;
      for (const ConfigOutcomes* run : sweep) tables.push_back(problem_values(*run, alignment));
      // [setting, Δ Pass@1..n, Δ distinct answers]
      const auto statistic = [&](const std::vector<std::size_t>& sample) {
        const std::vector<double> target = means(esamp_table, sample);
        std::vector<double> previous = means(tables.front(), sample);
        for (std::size_t j = 0; j + 1 < tables.size(); ++j) {
          const std::vector<double> next = means(tables[j + 1], sample);
          const double a = previous[0], b = next[0];
          if (std::min(a, b) <= target[0] && target[0] <= std::max(a, b)) {
            const double w = a == b ? 0.0 : (target[0] - a) / (b - a);
            const auto at = [w](double x, double y) { return (1.0 - w) * x + w * y; };
            std::vector<double> values{
                at(sweep[j]->config.sweep_value(), sweep[j + 1]->config.sweep_value())};
            for (std::size_t i = 0; i <= n; ++i)
              values.push_back(target[i] - at(previous[i], next[i]));
            return values;
          }
          previous = next;
        }
        return std::vector<double>(n + 2, kNaN);
      };
      const std::vector<eval::Interval> intervals =
          eval::bootstrap_intervals(alignment.problems, statistic, replicates, seed);
      MatchedComparison comparison;
      comparison.esamp = esamp.config.name;
      comparison.baseline = method_name(baseline);
      comparison.setting = intervals[0];
      comparison.delta_pass_at_k.assign(intervals.begin() + 1, intervals.begin() + 1 + n);
      comparison.delta_distinct_answers = intervals[n + 1];
      comparisons.push_back(std::move(comparison));
    }
  }
  return comparisons;
}

}  // namespace esamp::passk
