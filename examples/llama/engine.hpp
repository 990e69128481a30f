// A batched llama forward pass on the CPU (Eigen) with a KV cache per sequence and esamp's hooks
// wired in per DESIGN.md §2.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "esamp/span.hpp"
#include "llama/model.hpp"

namespace esamp {
class ExploratorySampler;
struct Filter;
}  // namespace esamp

namespace esamp::llama {

using SequenceId = std::int32_t;

// One row of a step: `token` is appended at the end of `sequence`.
struct StepRow {
  SequenceId sequence = 0;
  TokenId token = 0;
};

// What a decode step hands to esamp. The default (no sampler) is a plain forward, as in prefill.
// The caller brackets the step with sampler->begin_step() / end_step() and samples the logits with
// sampler->sampling_filter(filter); the sampler decides where it mixes.
struct StepHooks {
  ExploratorySampler* sampler = nullptr;
  const Filter* filter = nullptr;  // the filter the caller samples with (candidates mode needs it)
};

class Engine {
 public:
  // `model` must outlive the engine.
  explicit Engine(const Model& model);

  const Hyperparameters& hparams() const { return model_.hparams; }

  SequenceId open_sequence();
  void close_sequence(SequenceId sequence);
  // Tokens in the sequence's KV cache: the position its next token will take.
  int sequence_length(SequenceId sequence) const;

  // One forward pass: each row's token goes at the end of its sequence (a sequence at most once per
  // step). Returns the logits [rows, vocab], valid until the next step.
  const RowMatrix& step(Span<const StepRow> rows, const StepHooks& hooks = {});
  // The final-normed hidden states [rows, dim] the LM head read in the last step (mixed, if a
  // sampler mixed them); valid until the next step.
  const RowMatrix& final_hidden() const { return normed_; }
  // Feeds `tokens` to `sequence` one at a time without hooks; returns the logits [1, vocab] after
  // the last one.
  const RowMatrix& prefill(SequenceId sequence, Span<const TokenId> tokens);

 private:
  struct SequenceCache {
    int length = 0;
    std::vector<RowMatrix> keys;    // per layer [capacity, kv_dim]
    std::vector<RowMatrix> values;  // per layer [capacity, kv_dim]
  };

  void check_rows(Span<const StepRow> rows);
  void rms_norm(const Eigen::RowVectorXf& weight);  // normed_ = rmsnorm(residual_) * weight
  void apply_rope(RowMatrix& heads);                // rotates each row at its position
  void attend(int layer);                           // attention_ from query_ and the caches

  const Model& model_;
  std::unordered_map<SequenceId, SequenceCache> sequences_;
  SequenceId next_sequence_id_ = 0;

  // Per-step workspace, [rows, ...]; reused across steps so a steady batch allocates nothing.
  std::vector<SequenceCache*> row_caches_;
  RowMatrix residual_;                           // [rows, dim]
  RowMatrix normed_;                             // [rows, dim]
  RowMatrix query_;                              // [rows, dim]
  RowMatrix key_;                                // [rows, kv_dim]
  RowMatrix value_;                              // [rows, kv_dim]
  RowMatrix attention_;                          // [rows, dim]
  RowMatrix gate_;                               // [rows, hidden_dim]
  RowMatrix up_;                                 // [rows, hidden_dim]
  RowMatrix rope_cos_;                           // [rows, head_size / 2]
  RowMatrix rope_sin_;                           // [rows, head_size / 2]
  Eigen::RowVectorXf rope_inverse_frequencies_;  // [head_size / 2]
  Eigen::VectorXf scores_;                       // [longest sequence so far]
  RowMatrix logits_;                             // [rows, vocab]
};

}  // namespace esamp::llama
