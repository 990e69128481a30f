// The n samples of one problem decoded as one batch (one esamp group when an exploratory sampler
// is given) through llama.cpp, each sample ending once it has given its answer (answer_finished).
// The prompt's tokens shared with a cached prefix (the few-shot examples, the same for every
// problem) are copied from that prefix's KV cache instead of being decoded again.
#pragma once

#include <llama.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/sampler.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::passk {

struct DecodeSettings {
  int samples = 16;
  int max_new_tokens = 64;  // a sample that has not finished by then ends there
  Filter filter;
  std::uint64_t seed = 0;            // sample s draws from chain_seed(seed, first_sequence + s)
  std::uint64_t first_sequence = 0;  // so problems draw from different streams
  std::function<void(int sampled_tokens)> on_tokens;  // after every batch of draws (progress)
};

struct DecodedSample {
  std::string text;  // the continuation, its stop token excluded
  int tokens = 0;
};

class GroupDecoder {
 public:
  // With a sampler every step runs esamp's hooks through an Adapter; without, plain llama.cpp on
  // the same context settings. `model` and `sampler` must outlive the decoder. The context holds
  // max_samples sequences of max_sequence_tokens each, plus the cached prefix.
  GroupDecoder(llama_model* model, int max_samples, int max_sequence_tokens, int threads,
               ExploratorySampler* sampler);

  // Decodes `prefix` (BOS first) once and keeps it; later prompts that start with its tokens
  // reuse them.
  void cache_prefix(std::string_view prefix);

  // settings.samples samples of `prompt` (BOS first), one group of the sampler.
  std::vector<DecodedSample> decode(std::string_view prompt, const DecodeSettings& settings);

 private:
  int step(const llama_batch& batch);

  llama_model* model_;
  int max_samples_, max_sequence_tokens_;
  std::unique_ptr<llama_cpp::Adapter> adapter_;
  struct ContextDeleter {
    void operator()(llama_context* context) const { llama_free(context); }
  };
  std::unique_ptr<llama_context, ContextDeleter> plain_context_;
  llama_context* context_ = nullptr;  // the adapter's or plain_context_
  llama_seq_id prefix_sequence_;      // max_samples: the sequence that holds the cached prefix
  std::vector<llama_token> prefix_tokens_;
};

}  // namespace esamp::passk
