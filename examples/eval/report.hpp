// esamp-eval's outputs: the frontier comparison at matched perplexity, and the CSV, Markdown and
// JSON texts of a finished grid.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "evaluate.hpp"

namespace esamp::eval {

// Metrics compared at matched perplexity: the headline diversity (meaning) first, then the
// guardrails that must not be worse for a gain to count (DESIGN.md §5), then lexical and hidden
// diversity.
inline constexpr std::array<std::size_t, 6> kGapMetrics = {
    metric_index("semantic_vendi"), metric_index("seq_rep_4"),   metric_index("loop_share"),
    metric_index("relevance"),      metric_index("ngram_vendi"), metric_index("hidden_vendi")};

// One esamp configuration against one baseline curve (a curve of plain configurations) at the
// esamp configuration's mean perplexity: the baseline's metrics there are the linear
// interpolation, in mean perplexity, between its two configurations that bracket it. The gap is
// paired per unit (prompt x seed): d_u = m_esamp,u − ((1−w)·m_lower,u + w·m_upper,u).
struct FrontierGap {
  std::size_t config = 0;  // index of the esamp configuration in the results
  std::string baseline;    // the baseline curve
  std::size_t lower = 0;   // indices of the bracketing baseline configurations
  std::size_t upper = 0;
  double weight = 0.0;  // w: of `upper`
  std::array<Interval, kGapMetrics.size()> gaps{};
};

// The headline's reading of a gap: "win" when semantic Vendi's 95% interval lies above 0 and
// neither guardrail is significantly worse (the intervals of seq-rep-4's and the loop share's
// differences do not lie above 0, relevance's does not lie below 0); else what stops it: "no
// gain", "more repetition", "less relevant"; "–" without semantic metrics.
std::string verdict(const FrontierGap& gap);

// Every (esamp configuration, baseline curve) pair whose perplexity the curve brackets.
std::vector<FrontierGap> frontier_gaps(const std::vector<ConfigResult>& results);

// What the reports say about the run itself.
struct RunInfo {
  std::string model;
  std::string engine;  // "own" or "llama.cpp"
  std::string prompts_file;
  std::size_t prompts = 0;
  EvalSettings settings;
  std::string embedder;  // the sentence encoder's folder; empty: none, no semantic metrics
  double seconds = 0.0;  // the whole grid
};

// One row per configuration: its parameters, the distiller's diagnostics, then mean, lo, hi of
// every metric. NaN is an empty field.
std::string csv_text(const std::vector<ConfigResult>& results);

std::string markdown_text(const RunInfo& info, const std::vector<ConfigResult>& results,
                          const std::vector<FrontierGap>& gaps);

std::string json_text(const RunInfo& info, const std::vector<ConfigResult>& results,
                      const std::vector<FrontierGap>& gaps);

}  // namespace esamp::eval
