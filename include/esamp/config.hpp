// Configuration of a LatentDistiller bank and of an ExploratorySampler, validated at construction.
// The method and the meaning of every field: DESIGN.md §1 and §2.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "esamp/error.hpp"

namespace esamp {

// Where in a decoder layer a hidden state is tapped.
enum class Site : std::uint8_t {
  layer_input,         // the residual stream entering the layer
  layer_input_normed,  // after the layer's input norm (llama.cpp attn_norm, HF input_layernorm)
  layer_output,        // the residual stream leaving the layer
  final_normed,        // after the model's final norm: what the LM head reads (last layer only)
};
enum class MixMode : std::uint8_t { latent, candidates };
// What latent mixing does with the part of ŷ along h. With ŷ = a·h + e⊥, the paper's rule
// (1+β)·h − β·ŷ = (1 + β(1−a))·h − β·e⊥: its first term only rescales h (a lower temperature).
enum class LatentMix : std::uint8_t {
  full,        // h̃ = (1+β)·h − β·ŷ
  orthogonal,  // h̃ = h − β·e⊥: only the part of ŷ orthogonal to h moves h
  norm_kept,   // h̃ = (1+β)·h − β·ŷ, rescaled to ‖h‖ per row
};
enum class Sharing : std::uint8_t { per_group, global };
enum class Optimizer : std::uint8_t { adamw, sgd };

constexpr std::string_view name(Site s) {
  switch (s) {
    case Site::layer_input:
      return "layer_input";
    case Site::layer_input_normed:
      return "layer_input_normed";
    case Site::layer_output:
      return "layer_output";
    case Site::final_normed:
      return "final_normed";
  }
  return "?";
}
constexpr std::string_view name(MixMode m) {
  switch (m) {
    case MixMode::latent:
      return "latent";
    case MixMode::candidates:
      return "candidates";
  }
  return "?";
}
constexpr std::string_view name(Sharing s) {
  switch (s) {
    case Sharing::per_group:
      return "group";
    case Sharing::global:
      return "global";
  }
  return "?";
}
constexpr std::string_view name(Optimizer o) {
  switch (o) {
    case Optimizer::adamw:
      return "adamw";
    case Optimizer::sgd:
      return "sgd";
  }
  return "?";
}
constexpr std::string_view name(LatentMix m) {
  switch (m) {
    case LatentMix::full:
      return "full";
    case LatentMix::orthogonal:
      return "orthogonal";
    case LatentMix::norm_kept:
      return "norm_kept";
  }
  return "?";
}

// A hidden state in the host model: `layer` counts from 0; -1 means the last layer, -2 the one
// before.
struct Tap {
  int layer = 0;
  Site site = Site::layer_input_normed;
};

struct DistillerConfig {
  int hidden_size = 0;
  int rank = 128;
  bool output_norm = true;
  float init_std = 0.02f;
  std::uint64_t seed = 0;
  Optimizer optimizer = Optimizer::adamw;
  float lr = 1e-2f;  // a distiller that learns within a group's first steps (quality.md)
  float adam_beta1 = 0.9f;
  float adam_beta2 = 0.999f;
  float adam_eps = 1e-8f;
  float weight_decay = 0.01f;
  int slots = 1;

  void validate() const;
};

struct ExplorationConfig {
  float beta = 0.5f;  // the exploration strength a group gets unless open_group is given one
  Tap source{0, Site::layer_input_normed};
  // The state latent mixing moves, what the LM head reads: the distiller predicts in that space.
  Tap target{-1, Site::final_normed};
  MixMode mix = MixMode::latent;
  LatentMix latent_mix = LatentMix::full;  // latent mode only
  int warmup_updates = 1;
  Sharing sharing = Sharing::per_group;
  // Warm-started slots (per-group sharing; no effect with global sharing): the bank keeps one more
  // slot, its last, the prior; close_group copies a group's trained parameters into it, and
  // open_group starts a new group's slot from the prior's parameters, with cleared optimizer state,
  // instead of from the seeded initialisation. The prior costs no training of its own: each group
  // continues from where the last one closed.
  bool warm_start = true;
  // A slot with fewer than young_updates optimizer updates is young: each step updates it
  // young_repeat times on the step's rows, so a new group learns in fewer steps.
  int young_updates = 16;
  int young_repeat = 2;
  // > 0: a group's slot with n updates (since it was opened) trains with lr · d / (d + n), d this
  // value (an inverse-time decay; any backend).
  int lr_decay_updates = 0;
  int max_rows = 256;  // rows per step the workspace is sized for
  bool background_training =
      false;  // CPU: end_step trains on a worker thread, joined before next use
  // CPU: threads that share each training step's weight gradients and optimizer update (the one
  // that trains and training_threads - 1 more, or a host engine's: cpu::TrainingTeam, which share
  // each step's forward too). It pays where cores are idle while esamp trains; inside llama.cpp,
  // only on llama.cpp's own threads (llama_cpp::backend(); bench/results/overhead-llama-cpp.md).
  // CUDA ignores it.
  int training_threads = 1;

  // Whether the bank keeps a prior slot (warm_start with per-group sharing).
  bool has_prior() const { return warm_start && sharing == Sharing::per_group; }

  void validate(int num_layers) const;
};

namespace detail {
// β is an exploration strength: finite and >= 0 (+inf would turn every mixed row into NaN).
inline void check_beta(std::string_view field, float beta) {
  if (!(beta >= 0.0f && std::isfinite(beta))) fail("{} = {}: must be finite and >= 0", field, beta);
}
inline void check_range(std::string_view field, double value, double lo, double hi,
                        std::string_view range) {
  if (!(value >= lo && value <= hi)) fail("{} = {}: must be in {}", field, value, range);
}
}  // namespace detail

inline void DistillerConfig::validate() const {
  using detail::check_range;
  if (hidden_size < 1) fail("DistillerConfig.hidden_size = {}: must be >= 1", hidden_size);
  if (rank < 1 || rank > hidden_size)
    fail("DistillerConfig.rank = {}: must be in [1, hidden_size = {}]", rank, hidden_size);
  if (!(init_std > 0.0f && std::isfinite(init_std)))
    fail("DistillerConfig.init_std = {}: must be finite and > 0", init_std);
  if (!(lr > 0.0f && std::isfinite(lr)))
    fail("DistillerConfig.lr = {}: must be finite and > 0", lr);
  check_range("DistillerConfig.adam_beta1", adam_beta1, 0.0, std::nextafter(1.0, 0.0), "[0, 1)");
  check_range("DistillerConfig.adam_beta2", adam_beta2, 0.0, std::nextafter(1.0, 0.0), "[0, 1)");
  if (!(adam_eps > 0.0f && std::isfinite(adam_eps)))
    fail("DistillerConfig.adam_eps = {}: must be finite and > 0", adam_eps);
  check_range("DistillerConfig.weight_decay", weight_decay, 0.0, 1.0, "[0, 1]");
  if (slots < 1 || slots > 65536) fail("DistillerConfig.slots = {}: must be in [1, 65536]", slots);
}

inline void ExplorationConfig::validate(int num_layers) const {
  if (num_layers < 1) fail("ExploratorySampler num_layers = {}: must be >= 1", num_layers);
  detail::check_beta("ExplorationConfig.beta", beta);
  const auto check_tap = [num_layers](std::string_view field, Tap tap) {
    if (tap.layer < -num_layers || tap.layer >= num_layers)
      fail("ExplorationConfig.{}.layer = {}: must be in [{}, {}] for a {}-layer model", field,
           tap.layer, -num_layers, num_layers - 1, num_layers);
  };
  check_tap("source", source);
  check_tap("target", target);
  const int s = source.layer < 0 ? source.layer + num_layers : source.layer;
  const int d = target.layer < 0 ? target.layer + num_layers : target.layer;
  if (source.site == Site::final_normed)
    fail("ExplorationConfig.source.site = final_normed: the source must be a layer's tensor");
  if (target.site == Site::final_normed && d != num_layers - 1)
    fail(
        "ExplorationConfig.target = (layer {}, final_normed): the final norm follows the last "
        "layer, {} (or -1)",
        target.layer, num_layers - 1);
  if (s > d || (s == d && static_cast<int>(source.site) >= static_cast<int>(target.site)))
    fail("ExplorationConfig.target = (layer {}, {}): must come after the source (layer {}, {})", d,
         name(target.site), s, name(source.site));
  if (warmup_updates < 0 || warmup_updates > 1000000)
    fail("ExplorationConfig.warmup_updates = {}: must be in [0, 1000000]", warmup_updates);
  if (max_rows < 1 || max_rows > 1048576)
    fail("ExplorationConfig.max_rows = {}: must be in [1, 1048576]", max_rows);
  if (training_threads < 1 || training_threads > 256)
    fail("ExplorationConfig.training_threads = {}: must be in [1, 256]", training_threads);
  if (young_updates < 0 || young_updates > 1000000)
    fail("ExplorationConfig.young_updates = {}: must be in [0, 1000000]", young_updates);
  if (young_repeat < 1 || young_repeat > 64)
    fail("ExplorationConfig.young_repeat = {}: must be in [1, 64]", young_repeat);
  if (lr_decay_updates < 0 || lr_decay_updates > 1000000)
    fail("ExplorationConfig.lr_decay_updates = {}: must be in [0, 1000000]", lr_decay_updates);
}

}  // namespace esamp
