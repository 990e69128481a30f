// The frontier gap at matched perplexity and the CSV, Markdown and JSON writers, on results built
// by hand so that every number can be checked.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "report.hpp"

namespace esamp::eval {
namespace {

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

constexpr std::size_t kPerplexity = metric_index("perplexity");
constexpr std::size_t kSemanticVendi = metric_index("semantic_vendi");
constexpr std::size_t kHiddenVendi = metric_index("hidden_vendi");

// A result whose units all hold `fill` except the metrics set in `per_unit` ([metric][unit]).
ConfigResult make_result(const std::string& spec,
                         const std::vector<std::pair<std::size_t, std::vector<double>>>& per_unit,
                         double fill = 1.0) {
  ConfigResult r;
  r.config = parse_curve(spec).front();
  const std::size_t units = per_unit.front().second.size();
  r.units.assign(units, MetricValues{});
  for (MetricValues& unit : r.units) unit.fill(fill);
  for (const auto& [metric, values] : per_unit)
    for (std::size_t u = 0; u < units; ++u) r.units[u][metric] = values[u];
  for (std::size_t m = 0; m < kMetricCount; ++m) {
    std::vector<double> values;
    for (const MetricValues& unit : r.units) values.push_back(unit[m]);
    r.metrics[m] = mean_interval(values);
  }
  return r;
}

// Baseline t: perplexity 2 then 4, semantic Vendi per unit {4, 6} then {8, 10}; esamp at perplexity
// 3 (w = 1/2) with {8, 9}: differences {8 − 6, 9 − 8} = {2, 1}, mean 1.5, s = √0.5, se = 0.5.
std::vector<ConfigResult> frontier_example() {
  std::vector<ConfigResult> results;
  results.push_back(make_result("t: T=1", {{kPerplexity, {4, 4}}, {kSemanticVendi, {8, 10}}}));
  results.push_back(make_result("t: T=0.5", {{kPerplexity, {2, 2}}, {kSemanticVendi, {4, 6}}}));
  results.push_back(make_result("e: beta=1", {{kPerplexity, {3, 3}}, {kSemanticVendi, {8, 9}}}));
  results.push_back(make_result("far: beta=2", {{kPerplexity, {9, 9}}, {kSemanticVendi, {1, 1}}}));
  return results;
}

constexpr double kT975Dof1 = 12.706205;

}  // namespace

TEST_CASE("the frontier gap interpolates the baseline at the esamp perplexity, paired per unit") {
  const std::vector<ConfigResult> results = frontier_example();
  const std::vector<FrontierGap> gaps = frontier_gaps(results);
  REQUIRE(gaps.size() == 1);  // "far" (perplexity 9) is outside the baseline's range [2, 4]
  const FrontierGap& gap = gaps.front();
  CHECK(gap.config == 2);
  CHECK(gap.baseline == "t");
  CHECK(gap.lower == 1);  // sorted by perplexity, not by order in the grid
  CHECK(gap.upper == 0);
  CHECK_THAT(gap.weight, WithinAbs(0.5, 1e-15));
  CHECK(kGapMetrics[0] == kSemanticVendi);  // the headline comes first
  const Interval& semantic = gap.gaps[0];
  CHECK_THAT(semantic.mean, WithinAbs(1.5, 1e-12));
  CHECK_THAT(semantic.hi - semantic.mean, WithinRel(kT975Dof1 * 0.5, 1e-6));
  // The guardrails come next, in the same table.
  CHECK(kGapMetrics[1] == metric_index("seq_rep_4"));
  CHECK(kGapMetrics[2] == metric_index("loop_share"));
  CHECK(kGapMetrics[3] == metric_index("relevance"));
  const Interval& hidden = gap.gaps[5];  // every hidden Vendi is 1: no gap, no spread
  CHECK(kGapMetrics[5] == kHiddenVendi);
  CHECK(hidden.mean == 0.0);
  CHECK(hidden.lo == 0.0);
}

TEST_CASE("the CSV has a header and one row per configuration, NaN as an empty field") {
  ConfigResult plain = make_result("t: T=1", {{kPerplexity, {1, 3}}}, 1.0);
  for (MetricValues& unit : plain.units) unit.fill(unit[kPerplexity]);
  for (std::size_t m = 0; m < kMetricCount; ++m)
    plain.metrics[m] = mean_interval({plain.units[0][m], plain.units[1][m]});
  plain.sampled_tokens = 100;
  plain.seconds = 1.5;
  plain.metric_seconds = 0.25;
  ConfigResult esamp = make_result("e: beta=0.5; rank=8", {{kPerplexity, {2, 2}}});
  esamp.diagnostics = Diagnostics{};
  esamp.diagnostics->stats.mean_loss = 0.5;
  esamp.diagnostics->target_variance = 2.0;
  esamp.diagnostics->prediction_residual = 0.75;
  esamp.diagnostics->prediction_cosine = std::nan("");
  esamp.diagnostics->target_residual = 0.125;
  esamp.diagnostics->target_cosine = 0.875;

  const std::string csv = csv_text({plain, esamp});
  const std::string header =
      "curve,method,label,temperature,min_p,beta,mix,latent_mix,sharing,rank,lr,warmup,"
      "warm_start,young,young_repeat,lr_decay,source,target,units,sampled_tokens,seconds,metric_"
      "seconds,distiller_loss,target_variance,"
      "unexplained_fraction,"
      "prediction_residual,prediction_cosine,target_residual,target_cosine,perplexity_mean,"
      "perplexity_lo,perplexity_hi,median_perplexity_mean,median_perplexity_lo,"
      "median_perplexity_hi,"
      "distinct_1_mean,distinct_1_lo,distinct_1_hi,distinct_2_mean,distinct_2_lo,distinct_2_hi,"
      "distinct_3_mean,distinct_3_lo,distinct_3_hi,distinct_4_mean,distinct_4_lo,distinct_4_hi,"
      "ngram_cosine_mean,ngram_cosine_lo,ngram_cosine_hi,hidden_cosine_mean,hidden_cosine_lo,"
      "hidden_cosine_hi,ngram_vendi_mean,ngram_vendi_lo,ngram_vendi_hi,hidden_vendi_mean,"
      "hidden_vendi_lo,hidden_vendi_hi,semantic_cosine_mean,semantic_cosine_lo,semantic_cosine_hi,"
      "semantic_vendi_mean,semantic_vendi_lo,semantic_vendi_hi,seq_rep_4_mean,seq_rep_4_lo,"
      "seq_rep_4_hi,loop_share_mean,loop_share_lo,loop_share_hi,relevance_mean,relevance_lo,"
      "relevance_hi\n";
  // Units {1, 3}: mean 2, s = √2, se = 1, half-width t(0.975, 1) = 12.7062.
  std::string plain_row = "t,plain,T=1,1,0,,,,,,,,,,,,,,2,100,1.5,0.25,,,,,,,";
  for (std::size_t m = 0; m < kMetricCount; ++m) plain_row += ",2,-10.7062,14.7062";
  std::string esamp_row =
      "e,esamp-latent,T=1 beta=0.5 latent group rank=8,1,0,0.5,latent,full,group,8,0.01,1,1,16,2,0,"
      "0@layer_input_normed,-1@final_normed,2,0,0,0,0.5,2,0.25,0.75,,0.125,0.875";
  esamp_row += ",2,2,2";  // perplexity {2, 2}
  for (std::size_t m = 1; m < kMetricCount; ++m) esamp_row += ",1,1,1";
  CHECK(csv == header + plain_row + "\n" + esamp_row + "\n");
}

TEST_CASE("the Markdown summary has a row per configuration and the matched-perplexity table") {
  RunInfo info;
  info.model = "model.gguf";
  info.prompts_file = "prompts.txt";
  info.prompts = 2;
  info.settings.seeds = {3, 4};
  info.seconds = 12.0;
  const std::vector<ConfigResult> results = frontier_example();
  const std::string md = markdown_text(info, results, frontier_gaps(results));
  CHECK_THAT(md, Catch::Contains("- prompts: 2 from prompts.txt; 16 samples per prompt, at most "
                                 "128 new tokens; seeds 3,4\n- 4 configurations in 12 s\n"
                                 "- semantic diversity: not measured (no sentence encoder)\n"));
  CHECK_THAT(md, Catch::Contains("| curve | configuration | perplexity | median perplexity | "
                                 "distinct-1 |"));
  CHECK_THAT(md, Catch::Contains("| t | T=0.5 | 2.000 ± 0.000 | 1.0000 ± 0.0000 |"));
  CHECK_THAT(md, Catch::Contains("| e | T=1 beta=1 latent group | 3.000 ± 0.000 |"));
  CHECK_THAT(md, Catch::Contains("## At matched perplexity"));
  // 1.5 ± 12.706205 · 0.5.
  // The headline table comes before the configurations': diversity, the guardrails, the verdict.
  CHECK(md.find("## At matched perplexity") < md.find("## Every configuration"));
  CHECK_THAT(md, Catch::Contains("| esamp configuration | perplexity | baseline | Δ Vendi "
                                 "(semantic) | Δ seq-rep-4 | Δ ending in a loop | Δ relevance | "
                                 "win? |"));
  CHECK_THAT(md, Catch::Contains("| e: T=1 beta=1 latent group | 3.000 | t | "
                                 "+1.500 [-4.853, +7.853] | +0.000 [+0.000, +0.000] | "
                                 "+0.000 [+0.000, +0.000] | +0.000 [+0.000, +0.000] | no gain | "));
  CHECK_THAT(md, Catch::Contains(" | T=0.5 … T=1 |\n"));
}

TEST_CASE("the JSON holds every configuration's intervals, units and the frontier") {
  RunInfo info;
  info.settings.seeds = {18446744073709551615ull};  // a string: 64 bits exceed a double
  const std::vector<ConfigResult> results = frontier_example();
  const std::string json = json_text(info, results, frontier_gaps(results));
  CHECK_THAT(json, Catch::StartsWith("{\"model\":\"\""));
  CHECK_THAT(json, Catch::Contains("\"seeds\":[\"18446744073709551615\"]"));
  CHECK_THAT(json, Catch::Contains("\"perplexity\":{\"mean\":3,\"lo\":3,\"hi\":3,\"count\":2}"));
  CHECK_THAT(json, Catch::Contains("\"units\":{\"perplexity\":[3,3]"));
  CHECK_THAT(json,
             Catch::Contains("\"frontier\":[{\"configuration\":2,\"baseline\":\"t\","
                             "\"lower\":1,\"upper\":0,\"weight\":0.5,"
                             "\"verdict\":\"no gain\",\"semantic_vendi_gap\":{\"mean\":1.5,"));
}

TEST_CASE("a gain counts as a win only where neither guardrail is significantly worse") {
  const auto at = [](std::string_view key) {
    return static_cast<std::size_t>(
        std::find(kGapMetrics.begin(), kGapMetrics.end(), metric_index(key)) - kGapMetrics.begin());
  };
  const auto interval = [](double lo, double hi) { return Interval{(lo + hi) / 2, lo, hi, 8}; };
  FrontierGap gap;
  for (Interval& g : gap.gaps) g = interval(-0.1, 0.1);  // nothing significant
  CHECK(verdict(gap) == "no gain");
  gap.gaps[at("semantic_vendi")] = interval(0.2, 0.6);
  CHECK(verdict(gap) == "win");
  gap.gaps[at("seq_rep_4")] = interval(0.01, 0.2);  // significantly more repetition
  CHECK(verdict(gap) == "more repetition");
  gap.gaps[at("seq_rep_4")] = interval(-0.1, 0.1);
  gap.gaps[at("loop_share")] = interval(0.05, 0.3);
  CHECK(verdict(gap) == "more repetition");
  gap.gaps[at("loop_share")] = interval(-0.1, 0.1);
  gap.gaps[at("relevance")] = interval(-0.2, -0.01);  // significantly less relevant
  CHECK(verdict(gap) == "less relevant");
  gap.gaps[at("semantic_vendi")] = interval(std::nan(""), std::nan(""));  // no encoder
  CHECK(verdict(gap) == "–");
}

}  // namespace esamp::eval
