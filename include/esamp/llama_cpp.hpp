// esamp inside llama.cpp through its public C API (DESIGN.md §2, "In llama.cpp"): an adapter that
// owns a llama_context whose eval callback hands the taps (attn_norm-<layer>, result_norm) to an
// ExploratorySampler, maps batch rows to groups through their seq_ids, and in latent mode rewrites
// result_norm in place (ggml_backend_tensor_get/_set only, so any ggml backend works).
#pragma once

#include <llama.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "esamp/backend.hpp"
#include "esamp/sampler.hpp"
#include "esamp/span.hpp"

namespace esamp::llama_cpp {

// The CPU backend for a sampler an Adapter serves. With ExplorationConfig::training_threads > 1
// (and no background_training) each update's parts run on llama.cpp's own OpenMP threads, when its
// CPU backend was built with OpenMP (its default): between graphs they spin idle, so threads of
// esamp's own would share a core with them and gain nothing. Set training_threads to the
// context's n_threads. Otherwise, and when llama.cpp has no OpenMP, it is cpu::backend().
BackendFactory backend();

class Adapter {
 public:
  // `model` and `sampler` must outlive the adapter. The sampler's layer count and hidden size must
  // be the model's; its taps must be layer_input_normed sites (attn_norm-<layer>) or, for the
  // target, final_normed (result_norm); its mix mode latent. Anything else is an esamp::Error.
  Adapter(llama_model* model, ExploratorySampler& sampler);
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;
  ~Adapter();

  // Creates the context the adapter decodes with (owned by the adapter, freed with it). A
  // cb_eval already in `params` keeps being called for what it asks. The rows of a step must
  // reach the callback as one ubatch in batch order, so params.kv_unified must be true when
  // n_seq_max > 1 and n_ubatch is raised to n_batch; a context that still splits is an Error.
  llama_context* init_context(llama_context_params params);
  llama_context* context() const { return context_.get(); }
  ExploratorySampler& sampler() const { return sampler_; }
  // The graph nodes of the taps the callback asks for in a step (the target is result_norm for a
  // final_normed target); it also asks for result_norm, which it rewrites.
  const std::string& source_tensor() const { return source_name_; }
  const std::string& target_tensor() const { return target_name_; }

  // A new esamp group (the samples of one prompt) whose rows are the tokens of `sequences`. The id
  // is the sampler's own: sampler().set_beta, sampler().group_stats (before close_group) take it.
  GroupId open_group(Span<const llama_seq_id> sequences);
  // The same with the group's own β and warm start (ExploratorySampler::open_group).
  GroupId open_group(Span<const llama_seq_id> sequences, float beta, bool warm_start);
  // Ends the group: its sequences leave the map and its slot is freed.
  void close_group(GroupId group);

  // One decode step with the hooks: llama_decode(context(), batch), with a step of the sampler
  // around it when the batch holds tokens of grouped sequences. Each such sequence must have
  // exactly one token in the batch, with its logits flag set (a decode step; prefill goes through
  // plain llama_decode, which the callback leaves alone). Tokens of other sequences pass through
  // untouched. Returns llama_decode's status; misuse and a graph the adapter cannot serve (split
  // ubatch, a tap missing from the graph, a failed llama_decode inside a step) are an
  // esamp::Error; after one raised inside a step the sampler is left mid-step and is not reusable.
  int decode(const llama_batch& batch);

  // The eval callback (public for the C trampoline only).
  bool on_eval(ggml_tensor* tensor, bool ask);

 private:
  struct ContextDeleter {
    void operator()(llama_context* context) const { llama_free(context); }
  };
  enum class Tensor : std::uint8_t { none, source, target, final };

  Tensor classify(const ggml_tensor* tensor) const;
  void deliver(Tensor kind, ggml_tensor* tensor);
  void check_rows(const ggml_tensor* tensor, std::int64_t expected) const;
  void gather(ggml_tensor* tensor, const std::vector<std::int64_t>& rows);
  void scatter(ggml_tensor* tensor, const std::vector<std::int64_t>& rows) const;

  llama_model* model_;
  ExploratorySampler& sampler_;
  std::unique_ptr<llama_context, ContextDeleter> context_;
  ggml_backend_sched_eval_callback user_callback_ = nullptr;
  void* user_data_ = nullptr;
  bool user_wanted_last_ = false;  // the user's answer for the node last asked about

  std::string source_name_, target_name_;  // graph node names of the taps
  bool target_is_final_ = false;
  int source_layer_ = 0, target_layer_ = 0;
  std::int64_t hidden_ = 0;

  std::unordered_map<llama_seq_id, GroupId> group_of_sequence_;
  std::unordered_map<llama_seq_id, std::int64_t> step_sequences_;  // grouped sequence -> its token

  // The step under way (between begin_step and end_step, while llama_decode runs).
  bool armed_ = false;
  std::int64_t step_tokens_ = 0, step_outputs_ = 0;
  std::vector<std::int64_t> token_rows_;   // [rows] batch index of each step row
  std::vector<std::int64_t> output_rows_;  // [rows] its index among the batch's outputs
  std::vector<GroupId> row_groups_;        // [rows]
  bool seen_source_ = false, seen_target_ = false, seen_final_ = false;
  std::vector<float> rows_buffer_;  // [rows, hidden]
  std::exception_ptr error_;        // thrown in the callback, rethrown by decode
};

}  // namespace esamp::llama_cpp
