// Curve specs: parsing, the cartesian product of their values, and the default grid.
#include "grid.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <utility>

#include "generate/option_values.hpp"

namespace esamp::eval {
namespace {

using generation::parse_choice;
using generation::parse_float;
using generation::parse_int;
using generation::usage_error;

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(trim(text.substr(start, end - start)));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

Tap parse_tap(std::string_view option, std::string_view text) {
  const std::size_t at = text.find('@');
  Tap tap;
  tap.layer = parse_int(option, text.substr(0, at), -1024, 1023);
  if (at != std::string_view::npos)
    tap.site = parse_choice<Site>(option, text.substr(at + 1),
                                  {{name(Site::layer_input), Site::layer_input},
                                   {name(Site::layer_input_normed), Site::layer_input_normed},
                                   {name(Site::layer_output), Site::layer_output}});
  return tap;
}

struct KeySpec {
  std::string_view key;
  bool esamp;  // the key makes the curve an esamp curve
  std::function<void(EvalConfig&, std::string_view option, std::string_view value)> apply;
};

const std::vector<KeySpec>& key_table() {
  static const std::vector<KeySpec> table = {
      {"T", false,
       [](EvalConfig& c, auto option, auto v) {
         c.filter.temperature = parse_float(option, v, 0.0f, 100.0f, /*min_exclusive=*/true);
       }},
      {"min_p", false,
       [](EvalConfig& c, auto option, auto v) { c.filter.min_p = parse_float(option, v, 0, 1); }},
      {"top_p", false,
       [](EvalConfig& c, auto option, auto v) {
         c.filter.top_p = parse_float(option, v, 0.0f, 1.0f, /*min_exclusive=*/true);
       }},
      {"beta", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.beta = parse_float(option, v, 0.0f, 1e6f);
       }},
      {"mix", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.mix = parse_choice<MixMode>(
             option, v, {{"latent", MixMode::latent}, {"candidates", MixMode::candidates}});
       }},
      {"latent_mix", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.latent_mix = parse_choice<LatentMix>(option, v,
                                                            {{"full", LatentMix::full},
                                                             {"orthogonal", LatentMix::orthogonal},
                                                             {"norm_kept", LatentMix::norm_kept}});
       }},
      {"sharing", true,
       [](EvalConfig& c, auto option, auto v) {
         // sample: per-group slots, each sample its own group.
         c.exploration.sharing = parse_choice<Sharing>(option, v,
                                                       {{"group", Sharing::per_group},
                                                        {"global", Sharing::global},
                                                        {"sample", Sharing::per_group}});
         c.group_per_sample = v == "sample";
       }},
      {"rank", true,
       [](EvalConfig& c, auto option, auto v) { c.rank = parse_int(option, v, 1, 1 << 20); }},
      {"lr", true,
       [](EvalConfig& c, auto option, auto v) {
         c.lr = parse_float(option, v, 0.0f, 1e3f, /*min_exclusive=*/true);
       }},
      {"warmup", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.warmup_updates = parse_int(option, v, 0, 1000000);
       }},
      {"warm_start", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.warm_start = parse_int(option, v, 0, 1) == 1;
       }},
      {"young", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.young_updates = parse_int(option, v, 0, 1000000);
       }},
      {"young_repeat", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.young_repeat = parse_int(option, v, 1, 64);
       }},
      {"lr_decay", true,
       [](EvalConfig& c, auto option, auto v) {
         c.exploration.lr_decay_updates = parse_int(option, v, 0, 1000000);
       }},
      {"source", true,
       [](EvalConfig& c, auto option, auto v) { c.exploration.source = parse_tap(option, v); }},
      {"target", true,
       [](EvalConfig& c, auto option, auto v) {
         // final: the final-normed state h that mixing moves (Site::final_normed).
         c.exploration.target = v == "final" ? Tap{-1, Site::final_normed} : parse_tap(option, v);
       }},
  };
  return table;
}

bool valid_curve_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_-+.@=").find(c) != std::string_view::npos;
  });
}

}  // namespace

std::string tap_text(Tap tap) { return fmt::format("{}@{}", tap.layer, name(tap.site)); }

std::string EvalConfig::method() const {
  return esamp ? fmt::format("esamp-{}", name(exploration.mix)) : "plain";
}

std::string EvalConfig::label() const {
  std::string text = fmt::format("T={}", filter.temperature);
  if (filter.top_p < 1.0f) text += fmt::format(" top_p={}", filter.top_p);
  if (filter.min_p > 0.0f) text += fmt::format(" min_p={}", filter.min_p);
  if (!esamp) return text;
  const ExplorationConfig defaults;
  text += fmt::format(" beta={} {} {}", exploration.beta, name(exploration.mix),
                      group_per_sample ? "sample" : name(exploration.sharing));
  if (exploration.latent_mix != defaults.latent_mix)
    text += fmt::format(" latent_mix={}", name(exploration.latent_mix));
  if (rank != 0) text += fmt::format(" rank={}", rank);
  if (lr != DistillerConfig{}.lr) text += fmt::format(" lr={}", lr);
  if (exploration.warmup_updates != defaults.warmup_updates)
    text += fmt::format(" warmup={}", exploration.warmup_updates);
  if (exploration.warm_start != defaults.warm_start)
    text += fmt::format(" warm_start={:d}", exploration.warm_start);
  if (exploration.young_updates != defaults.young_updates)
    text += fmt::format(" young={}", exploration.young_updates);
  if (exploration.young_repeat != defaults.young_repeat)
    text += fmt::format(" young_repeat={}", exploration.young_repeat);
  if (exploration.lr_decay_updates != defaults.lr_decay_updates)
    text += fmt::format(" lr_decay={}", exploration.lr_decay_updates);
  if (exploration.source.layer != defaults.source.layer ||
      exploration.source.site != defaults.source.site)
    text += " source=" + tap_text(exploration.source);
  if (exploration.target.layer != defaults.target.layer ||
      exploration.target.site != defaults.target.site)
    text +=
        " target=" + (exploration.target.site == Site::final_normed ? std::string("final")
                                                                    : tap_text(exploration.target));
  return text;
}

std::vector<EvalConfig> parse_curve(std::string_view spec) {
  const std::size_t colon = spec.find(':');
  const std::string_view curve = trim(spec.substr(0, colon));
  if (colon == std::string_view::npos || !valid_curve_name(curve))
    usage_error(
        "--curve '{}': expected NAME: key=v1,v2; key=v (NAME of letters, digits and _-+.@=)", spec);
  // [key index, values] in the order written; the last key varies fastest.
  std::vector<std::pair<std::size_t, std::vector<std::string_view>>> axes;
  const auto& keys = key_table();
  bool esamp = false;
  for (const std::string_view item : split(spec.substr(colon + 1), ';')) {
    if (item.empty()) continue;
    const std::size_t equals = item.find('=');
    const std::string_view key = trim(item.substr(0, equals));
    const auto found =
        std::find_if(keys.begin(), keys.end(), [key](const KeySpec& k) { return k.key == key; });
    if (equals == std::string_view::npos || found == keys.end())
      usage_error(
          "--curve {}: '{}': expected key=value with a key among T, top_p, min_p, beta, mix, "
          "latent_mix, sharing, rank, lr, warmup, warm_start, young, young_repeat, lr_decay, "
          "source, target",
          curve, item);
    const auto index = static_cast<std::size_t>(found - keys.begin());
    if (std::any_of(axes.begin(), axes.end(), [index](const auto& a) { return a.first == index; }))
      usage_error("--curve {}: the key {} is given twice", curve, key);
    axes.emplace_back(index, split(item.substr(equals + 1), ','));
    esamp = esamp || found->esamp;
  }
  std::vector<EvalConfig> configs;
  std::vector<std::size_t> at(axes.size(), 0);  // an odometer over the axes' values
  for (bool more = true; more;) {
    EvalConfig config;
    config.curve = std::string(curve);
    config.esamp = esamp;
    for (std::size_t a = 0; a < axes.size(); ++a) {
      const KeySpec& key = keys[axes[a].first];
      key.apply(config, fmt::format("--curve {}: {}", curve, key.key), axes[a].second[at[a]]);
    }
    configs.push_back(std::move(config));
    more = false;
    for (std::size_t a = axes.size(); a-- > 0;) {
      if (++at[a] < axes[a].second.size()) {
        more = true;
        break;
      }
      at[a] = 0;
    }
  }
  return configs;
}

std::vector<EvalConfig> parse_grid(const std::vector<std::string>& specs) {
  std::vector<EvalConfig> grid;
  for (const std::string& spec : specs) {
    std::vector<EvalConfig> curve = parse_curve(spec);
    if (std::any_of(grid.begin(), grid.end(),
                    [&](const EvalConfig& c) { return c.curve == curve.front().curve; }))
      usage_error("--curve {}: two curves have this name", curve.front().curve);
    grid.insert(grid.end(), curve.begin(), curve.end());
  }
  return grid;
}

const std::vector<std::string>& default_curves() {
  static const std::vector<std::string> curves = {
      // T = 0.5 and min-p 0.4 reach down to the perplexity of candidates mode's reference settings.
      "temperature: T=0.5,0.6,0.7,0.8,0.9,1,1.1,1.25",
      "min-p: T=1.5; min_p=0.05,0.1,0.2,0.3,0.4",
      // The library's defaults at the temperatures and strengths the README recommends.
      "esamp-default: T=1,1.25; beta=0.5,1",
      // The defaults without the warm start and the young slots' repeated updates (the best
      // settings of bench/results/quality.md's first round).
      "ablation-cold: T=1.25; warm_start=0; young=0; beta=1",
      // Collaborative exploration, ablated: one independent distiller per sample (no warm
      // start), one for every prompt.
      "ablation-per-sample: T=1.25; sharing=sample; warm_start=0; beta=1",
      "ablation-global: T=1.25; sharing=global; beta=1",
      // The reference implementation's starter settings (candidates after the filters).
      "candidates-ref: T=0.8; top_p=0.95; min_p=0.1; mix=candidates; beta=0.1,0.8",
  };
  return curves;
}

}  // namespace esamp::eval
