// Frontier gaps and the CSV, Markdown and JSON writers.
#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "generate/json_writer.hpp"

namespace esamp::eval {
namespace {

std::string number(double value) {
  return std::isfinite(value) ? fmt::format("{:.6g}", value) : std::string();
}

// "mean ± half-width" (the interval is symmetric), or the mean alone without one.
std::string plus_minus(const Interval& interval, int digits) {
  if (!std::isfinite(interval.mean)) return "–";
  if (!std::isfinite(interval.lo)) return fmt::format("{:.{}f}", interval.mean, digits);
  return fmt::format("{:.{}f} ± {:.{}f}", interval.mean, digits, interval.hi - interval.mean,
                     digits);
}

std::string bracketed(const Interval& interval, int digits) {
  if (!std::isfinite(interval.lo)) return plus_minus(interval, digits);
  return fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]", interval.mean, digits, interval.lo, digits,
                     interval.hi, digits);
}

double unexplained(const Diagnostics& d) { return d.stats.mean_loss / d.target_variance; }

// ", of which the metrics (the sentence encoder) X s, Y ms per sample", or nothing when they were
// not timed.
std::string embedding_time(const std::vector<ConfigResult>& results) {
  double seconds = 0.0;
  std::int64_t samples = 0;
  for (const ConfigResult& r : results) {
    seconds += r.metric_seconds;
    samples += r.samples;
  }
  if (samples == 0 || seconds == 0.0) return {};
  return fmt::format(", of which the metrics (the sentence encoder) {:.0f} s, {:.1f} ms per sample",
                     seconds, 1e3 * seconds / static_cast<double>(samples));
}

constexpr std::size_t kPerplexity = metric_index("perplexity");

// The position of metric `key` in kGapMetrics.
constexpr std::size_t gap_index(std::string_view key) {
  for (std::size_t g = 0; g < kGapMetrics.size(); ++g)
    if (kGapMetrics[g] == metric_index(key)) return g;
  return kGapMetrics.size();
}

}  // namespace

std::string verdict(const FrontierGap& gap) {
  const Interval& semantic = gap.gaps[gap_index("semantic_vendi")];
  if (!std::isfinite(semantic.mean)) return "–";
  if (!(semantic.lo > 0.0)) return "no gain";
  if (gap.gaps[gap_index("seq_rep_4")].lo > 0.0 || gap.gaps[gap_index("loop_share")].lo > 0.0)
    return "more repetition";
  if (gap.gaps[gap_index("relevance")].hi < 0.0) return "less relevant";
  return "win";
}

std::vector<FrontierGap> frontier_gaps(const std::vector<ConfigResult>& results) {
  std::vector<std::string> baselines;  // plain curves, in order of first appearance
  for (const ConfigResult& r : results)
    if (!r.config.esamp &&
        std::find(baselines.begin(), baselines.end(), r.config.curve) == baselines.end())
      baselines.push_back(r.config.curve);
  std::vector<FrontierGap> gaps;
  for (std::size_t e = 0; e < results.size(); ++e) {
    if (!results[e].config.esamp) continue;
    const double x = results[e].metrics[kPerplexity].mean;
    for (const std::string& baseline : baselines) {
      std::vector<std::size_t> curve;  // the baseline's configurations by mean perplexity
      for (std::size_t b = 0; b < results.size(); ++b)
        if (results[b].config.curve == baseline) curve.push_back(b);
      std::sort(curve.begin(), curve.end(), [&](std::size_t a, std::size_t b) {
        return results[a].metrics[kPerplexity].mean < results[b].metrics[kPerplexity].mean;
      });
      for (std::size_t k = 0; k + 1 < curve.size(); ++k) {
        const ConfigResult& lower = results[curve[k]];
        const ConfigResult& upper = results[curve[k + 1]];
        const double x0 = lower.metrics[kPerplexity].mean, x1 = upper.metrics[kPerplexity].mean;
        if (!(x >= x0 && x <= x1)) continue;
        FrontierGap gap{e, baseline, curve[k], curve[k + 1], x1 > x0 ? (x - x0) / (x1 - x0) : 0.0,
                        {}};
        for (std::size_t g = 0; g < kGapMetrics.size(); ++g) {
          const std::size_t m = kGapMetrics[g];
          std::vector<double> differences;
          for (std::size_t u = 0; u < results[e].units.size(); ++u)
            differences.push_back(results[e].units[u][m] - ((1.0 - gap.weight) * lower.units[u][m] +
                                                            gap.weight * upper.units[u][m]));
          gap.gaps[g] = mean_interval(differences);
        }
        gaps.push_back(std::move(gap));
        break;
      }
    }
  }
  return gaps;
}

std::string csv_text(const std::vector<ConfigResult>& results) {
  std::string text =
      "curve,method,label,temperature,min_p,beta,mix,latent_mix,sharing,rank,lr,warmup,"
      "warm_start,young,young_repeat,lr_decay,source,target,"
      "units,"
      "sampled_tokens,seconds,metric_seconds,distiller_loss,target_variance,unexplained_fraction,"
      "prediction_residual,prediction_cosine,target_residual,target_cosine";
  for (const MetricInfo& metric : kMetrics)
    text += fmt::format(",{0}_mean,{0}_lo,{0}_hi", metric.key);
  text += '\n';
  for (const ConfigResult& r : results) {
    const EvalConfig& c = r.config;
    // No field needs quoting: curve names are letters, digits and _-+.@=, labels have no comma.
    text += fmt::format("{},{},{},{},{}", c.curve, c.method(), c.label(),
                        number(c.filter.temperature), number(c.filter.min_p));
    if (c.esamp) {
      const ExplorationConfig& e = c.exploration;
      text +=
          fmt::format(",{},{},{},{},{},{},{},{:d},{},{},{},{},{}", number(e.beta), name(e.mix),
                      name(e.latent_mix), c.group_per_sample ? "sample" : name(e.sharing), c.rank,
                      number(c.lr), e.warmup_updates, e.warm_start, e.young_updates, e.young_repeat,
                      e.lr_decay_updates, tap_text(e.source), tap_text(e.target));
    } else {
      text += ",,,,,,,,,,,,,";
    }
    text += fmt::format(",{},{},{},{}", r.units.size(), r.sampled_tokens, number(r.seconds),
                        number(r.metric_seconds));
    if (r.diagnostics) {
      const Diagnostics& d = *r.diagnostics;
      text += fmt::format(",{},{},{},{},{},{},{}", number(d.stats.mean_loss),
                          number(d.target_variance), number(unexplained(d)),
                          number(d.prediction_residual), number(d.prediction_cosine),
                          number(d.target_residual), number(d.target_cosine));
    } else {
      text += ",,,,,,,";
    }
    for (const Interval& m : r.metrics)
      text += fmt::format(",{},{},{}", number(m.mean), number(m.lo), number(m.hi));
    text += '\n';
  }
  return text;
}

namespace {

// The headline: esamp against each baseline at matched perplexity, diversity and guardrails.
std::string headline_text(const std::vector<ConfigResult>& results,
                          const std::vector<FrontierGap>& gaps) {
  if (gaps.empty()) return {};
  std::string text =
      "## At matched perplexity\n\n"
      "esamp minus the baseline curve interpolated (linearly in mean perplexity) to the esamp "
      "configuration's perplexity; paired per prompt x seed, mean [95% t-interval]. A win: "
      "semantic Vendi's interval above 0 with neither guardrail significantly worse "
      "(repetition: seq-rep-4 and the share ending in a loop; relevance).\n\n"
      "| esamp configuration | perplexity | baseline |";
  for (std::size_t g = 0; g < kGapMetrics.size(); ++g) {
    text += fmt::format(" Δ {} |", kMetrics[kGapMetrics[g]].title);
    if (g == gap_index("relevance")) text += " win? |";
  }
  text += " between |\n|---|---:|---|";
  for (std::size_t g = 0; g <= kGapMetrics.size(); ++g) text += "---:|";
  text += "---|\n";
  for (const FrontierGap& gap : gaps) {
    const ConfigResult& e = results[gap.config];
    text += fmt::format("| {}: {} | {:.3f} | {} |", e.config.curve, e.config.label(),
                        e.metrics[kPerplexity].mean, gap.baseline);
    for (std::size_t g = 0; g < kGapMetrics.size(); ++g) {
      text += fmt::format(" {} |", bracketed(gap.gaps[g], 3));
      if (g == gap_index("relevance")) text += fmt::format(" {} |", verdict(gap));
    }
    text += fmt::format(" {} … {} |\n", results[gap.lower].config.label(),
                        results[gap.upper].config.label());
  }
  return text + "\n";
}

}  // namespace

std::string markdown_text(const RunInfo& info, const std::vector<ConfigResult>& results,
                          const std::vector<FrontierGap>& gaps) {
  std::string seeds;
  for (const std::uint64_t s : info.settings.seeds)
    seeds += fmt::format("{}{}", seeds.empty() ? "" : ",", s);
  std::string text = fmt::format(
      "# esamp-eval\n\n"
      "- model: {} (engine: {})\n- prompts: {} from {}; {} samples per prompt, at most {} new "
      "tokens; seeds {}\n"
      "- {} configurations in {:.0f} s{}\n"
      "- semantic diversity: {}\n"
      "- every cell: mean over prompts x seeds ± the half-width of its 95% t-interval\n\n",
      info.model, info.engine, info.prompts, info.prompts_file, info.settings.samples,
      info.settings.max_new_tokens, seeds, results.size(), info.seconds, embedding_time(results),
      info.embedder.empty()
          ? "not measured (no sentence encoder)"
          : "all-MiniLM-L6-v2 embeddings of the samples without the prompt, from " + info.embedder);
  text += headline_text(results, gaps);
  text += "## Every configuration\n\n| curve | configuration |";
  for (const MetricInfo& metric : kMetrics) text += fmt::format(" {} |", metric.title);
  text += " loss / target var |\n|---|---|";
  for (std::size_t m = 0; m <= kMetricCount; ++m) text += "---:|";
  text += '\n';
  for (const ConfigResult& r : results) {
    text += fmt::format("| {} | {} |", r.config.curve, r.config.label());
    for (std::size_t m = 0; m < kMetricCount; ++m)
      text += fmt::format(" {} |", plus_minus(r.metrics[m], m == kPerplexity ? 3 : 4));
    text += r.diagnostics ? fmt::format(" {:.3f} |\n", unexplained(*r.diagnostics)) : " – |\n";
  }
  return text;
}

std::string json_text(const RunInfo& info, const std::vector<ConfigResult>& results,
                      const std::vector<FrontierGap>& gaps) {
  generation::JsonWriter json;
  const auto write_interval = [&json](const Interval& interval) {
    json.begin_object().key("mean").value(interval.mean).key("lo").value(interval.lo);
    json.key("hi").value(interval.hi).key("count").value(static_cast<std::int64_t>(interval.count));
    json.end_object();
  };
  json.begin_object().key("model").value(info.model).key("engine").value(info.engine);
  json.key("prompts_file").value(info.prompts_file);
  json.key("prompts").value(static_cast<std::int64_t>(info.prompts));
  json.key("samples").value(info.settings.samples);
  json.key("tokens").value(info.settings.max_new_tokens);
  json.key("seeds").begin_array();
  for (const std::uint64_t s : info.settings.seeds) json.value(fmt::format("{}", s));
  json.end_array().key("seconds").value(info.seconds);
  json.key("embedder").value(info.embedder);
  json.key("configurations").begin_array();
  for (const ConfigResult& r : results) {
    const EvalConfig& c = r.config;
    json.begin_object().key("curve").value(c.curve).key("method").value(c.method());
    json.key("label").value(c.label());
    json.key("temperature").value(static_cast<double>(c.filter.temperature));
    json.key("min_p").value(static_cast<double>(c.filter.min_p));
    if (c.esamp) {
      json.key("beta").value(static_cast<double>(c.exploration.beta));
      json.key("mix").value(name(c.exploration.mix));
      json.key("latent_mix").value(name(c.exploration.latent_mix));
      json.key("sharing").value(c.group_per_sample ? "sample" : name(c.exploration.sharing));
      json.key("rank").value(c.rank).key("lr").value(static_cast<double>(c.lr));
      json.key("warmup").value(c.exploration.warmup_updates);
      json.key("warm_start").value(c.exploration.warm_start);
      json.key("young").value(c.exploration.young_updates);
      json.key("young_repeat").value(c.exploration.young_repeat);
      json.key("lr_decay").value(c.exploration.lr_decay_updates);
      json.key("source").value(tap_text(c.exploration.source));
      json.key("target").value(tap_text(c.exploration.target));
    }
    json.key("sampled_tokens").value(r.sampled_tokens).key("seconds").value(r.seconds);
    json.key("metric_seconds").value(r.metric_seconds);
    if (r.diagnostics) {
      const Diagnostics& d = *r.diagnostics;
      json.key("distiller").begin_object();
      json.key("mean_loss").value(d.stats.mean_loss);
      json.key("target_variance").value(d.target_variance);
      json.key("unexplained_fraction").value(unexplained(d));
      json.key("prediction_residual").value(d.prediction_residual);
      json.key("prediction_cosine").value(d.prediction_cosine);
      json.key("target_residual").value(d.target_residual);
      json.key("target_cosine").value(d.target_cosine);
      json.key("rows_mixed").value(d.stats.rows_mixed);
      json.key("rows_trained").value(d.stats.rows_trained);
      json.end_object();
    }
    json.key("metrics").begin_object();
    for (std::size_t m = 0; m < kMetricCount; ++m) {
      json.key(kMetrics[m].key);
      write_interval(r.metrics[m]);
    }
    json.end_object().key("units").begin_object();
    for (std::size_t m = 0; m < kMetricCount; ++m) {
      json.key(kMetrics[m].key).begin_array();
      for (const MetricValues& unit : r.units) json.value(unit[m]);
      json.end_array();
    }
    json.end_object().end_object();
  }
  json.end_array().key("frontier").begin_array();
  for (const FrontierGap& gap : gaps) {
    json.begin_object().key("configuration").value(static_cast<std::int64_t>(gap.config));
    json.key("baseline").value(gap.baseline);
    json.key("lower").value(static_cast<std::int64_t>(gap.lower));
    json.key("upper").value(static_cast<std::int64_t>(gap.upper));
    json.key("weight").value(gap.weight);
    json.key("verdict").value(verdict(gap));
    for (std::size_t g = 0; g < kGapMetrics.size(); ++g) {
      json.key(fmt::format("{}_gap", kMetrics[kGapMetrics[g]].key));
      write_interval(gap.gaps[g]);
    }
    json.end_object();
  }
  json.end_array().end_object();
  return json.text() + "\n";
}

}  // namespace esamp::eval
