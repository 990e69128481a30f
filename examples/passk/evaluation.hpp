// What esamp-passk measures per configuration and problem, and how it summarizes them: Pass@k for
// every k <= n with bootstrap intervals over problems, the number of distinct final answers, and
// esamp against each baseline at matched Pass@1 (DESIGN.md §5, "Pass@k").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "interval.hpp"

namespace esamp::passk {

enum class Method { esamp, temperature, min_p };

const char* method_name(Method method);  // "esamp", "temperature", "min-p"

struct Config {
  std::string name;  // no spaces (the plot splits names on them), e.g. "esamp-b0.5-T0.7"
  Method method = Method::temperature;
  float temperature = 1.0f;
  float beta = 0.0f;   // esamp only
  float min_p = 0.0f;  // min-p only

  // The setting a baseline's sweep moves (temperature: T, min-p: p; esamp: β).
  double sweep_value() const;
};

// The configuration named by its method and settings: "esamp-b<β>-T<T>", "temperature-T<T>",
// "min-p-p<p>-T<T>".
Config make_config(Method method, float temperature, float beta, float min_p);

struct ProblemOutcome {
  std::int64_t answer = 0;
  int samples = 0;           // n
  int correct = 0;           // c: samples whose read answer is the answer
  int answered = 0;          // samples with an answer read (read_answer)
  int distinct_answers = 0;  // distinct answers among those
  std::int64_t tokens = 0;   // tokens sampled over the samples
};

// The outcome of one problem from the answers read from its samples (nullopt: none read).
ProblemOutcome score_problem(std::int64_t answer,
                             const std::vector<std::optional<std::int64_t>>& read_answers,
                             std::int64_t tokens);

struct ConfigOutcomes {
  Config config;
  std::vector<ProblemOutcome> problems;  // in the order of the problems file
};

// The problems every configuration has finished (a partial run's common prefix) and their sample
// count n, checking that the configurations agree on each problem's answer and on n.
struct Alignment {
  std::size_t problems = 0;
  int samples = 0;
};
Alignment align(const std::vector<ConfigOutcomes>& runs);

struct ConfigSummary {
  std::string config;
  std::vector<eval::Interval> pass_at_k;  // [k - 1], mean over problems
  eval::Interval distinct_answers;        // mean over problems
  eval::Interval answered;                // share of samples with an answer read
};

// The first `alignment.problems` problems of each run, intervals from `replicates` resamples of
// the problems (the same resamples for every configuration).
std::vector<ConfigSummary> summarize(const std::vector<ConfigOutcomes>& runs,
                                     const Alignment& alignment, int replicates,
                                     std::uint64_t seed);

// esamp against a baseline at esamp's Pass@1: the baseline's values are interpolated linearly
// along its sweep (settings in increasing order) between the first two neighbouring settings whose
// Pass@1 bracket esamp's. In a resample where none do, the values are NaN and the resample is left
// out (the intervals' count says how many remain).
struct MatchedComparison {
  std::string esamp, baseline;                  // a config name and a method name
  eval::Interval setting;                       // the baseline's sweep value at the matched point
  std::vector<eval::Interval> delta_pass_at_k;  // [k - 1], esamp - baseline
  eval::Interval delta_distinct_answers;
};

// One comparison per esamp configuration and per baseline method with at least two settings.
std::vector<MatchedComparison> compare_at_matched_pass1(const std::vector<ConfigOutcomes>& runs,
                                                        const Alignment& alignment, int replicates,
                                                        std::uint64_t seed);

}  // namespace esamp::passk
