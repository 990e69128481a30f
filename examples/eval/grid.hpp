// The evaluation grid: curves of configurations (plain sampling, min-p, esamp) written as
// "NAME: key=v1,v2; key=v" specs, one configuration per combination of the listed values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/sampling.hpp"

namespace esamp::eval {

// One point of the grid.
struct EvalConfig {
  std::string curve;   // the curve (method) it belongs to: one line of the plot
  Filter filter;       // temperature and min-p of the draw (candidates mode: also picks C)
  bool esamp = false;  // false: plain sampling, no sampler at all
  ExplorationConfig exploration;
  bool group_per_sample = false;  // sharing=sample: one distiller per sample (GenerationSettings)
  int rank = 0;                   // 0: DESIGN.md's 128 capped at the model's hidden size
  float lr = DistillerConfig{}.lr;

  // What sets the configuration apart, e.g. "T=1 beta=0.5 latent group".
  std::string label() const;
  // "plain", or "esamp" with its mix mode: the method column of the reports.
  std::string method() const;
};

// Parses one curve spec; throws generation::UsageError naming the spec, key and value.
// Keys: T, top_p, min_p (plain and esamp); beta, mix (latent|candidates), latent_mix
// (full|orthogonal|norm_kept), sharing (group|global|sample), rank,
// lr, warmup, warm_start (0|1), young, young_repeat, lr_decay, source (LAYER[@SITE]), target
// (LAYER[@SITE] or final) make the curve esamp.
std::vector<EvalConfig> parse_curve(std::string_view spec);

// The default grid's curve specs (README.md in this folder explains the choice).
const std::vector<std::string>& default_curves();

// Every configuration of `specs`, in order; curve names must be unique.
std::vector<EvalConfig> parse_grid(const std::vector<std::string>& specs);

// A tap as the specs write it: "LAYER@SITE".
std::string tap_text(Tap tap);

}  // namespace esamp::eval
