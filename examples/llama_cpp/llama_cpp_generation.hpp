// Generation through real llama.cpp: the N samples of one prompt decoded as one batch, each with
// its own llama.cpp sampler chain, with esamp through esamp::llama_cpp::Adapter or without it
// (plain llama.cpp, same context settings). Used by esamp-llama, its tests and the benchmark.
#pragma once

#include <llama.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/llama_cpp.hpp"
#include "esamp/sampler.hpp"
#include "esamp/span.hpp"
#include "generate/generation.hpp"

namespace esamp::llama_cpp {

struct ModelDeleter {
  void operator()(llama_model* model) const { llama_model_free(model); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelDeleter>;

// A llama_batch with room for `tokens` tokens of up to `sequences_per_token` sequences each.
class Batch {
 public:
  Batch(int tokens, int sequences_per_token)
      : batch_(llama_batch_init(tokens, 0, sequences_per_token)) {}
  ~Batch() { llama_batch_free(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void clear() { batch_.n_tokens = 0; }
  void add(llama_token token, llama_pos position, Span<const llama_seq_id> sequences, bool output) {
    const int i = batch_.n_tokens++;
    batch_.token[i] = token;
    batch_.pos[i] = position;
    batch_.n_seq_id[i] = static_cast<int>(sequences.size());
    for (std::size_t k = 0; k < sequences.size(); ++k) batch_.seq_id[i][k] = sequences[k];
    batch_.logits[i] = output ? 1 : 0;
  }
  const llama_batch& get() const { return batch_; }

 private:
  llama_batch batch_;
};

// Loads a GGUF on the CPU backend, llama.cpp's logging silenced unless `verbose`.
ModelPtr load_model(const std::string& path, bool verbose = false);

// The prompt as llama.cpp tokenizes it (with BOS when the vocabulary adds one).
std::vector<llama_token> tokenize(const llama_model* model, std::string_view text);
// The text of `tokens` as llama.cpp renders them piece by piece (SentencePiece vocabularies put a
// space before the first word).
std::string detokenize(const llama_model* model, const std::vector<llama_token>& tokens);

// A llama.cpp sampler chain drawing like esamp's Filter: temperature first, then top-k, top-p and
// min-p on the tempered logits, then a draw seeded by `seed` (greedy at temperature 0).
llama_sampler* make_sampler_chain(const Filter& filter, std::uint32_t seed);
// The seed of sample `sequence`'s chain for a run seeded by `seed`.
std::uint32_t chain_seed(std::uint64_t seed, std::uint64_t sequence);

struct ContextShape {
  int max_samples = 8;          // sequences decoded at once
  int max_sequence_tokens = 0;  // prompt + new tokens of one sequence
  int threads = 0;              // 0: llama.cpp's default
};

// The context settings every run uses, with or without esamp (kv_unified, n_ubatch = n_batch),
// so that plain llama.cpp and esamp at β = 0 run the very same graph.
llama_context_params context_params(const ContextShape& shape);

class Generator {
 public:
  // With a sampler the steps go through an Adapter that owns the context; without, a plain
  // context. `model` (and `sampler`) must outlive the generator.
  Generator(llama_model* model, const ContextShape& shape, ExploratorySampler* sampler);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // settings.samples samples of `prompt` as one batch (prefill shared by every sequence, without
  // hooks), one group of the sampler (one per sample with settings.group_per_sample); re-scored
  // under the base model when asked. Draws come from each sample's chain, seeded by
  // chain_seed(settings.seed, settings.first_sequence + sample).
  generation::GenerationResult generate(std::string_view prompt,
                                        const generation::GenerationSettings& settings);

  llama_context* context() const { return context_; }

 private:
  int decode(const llama_batch& batch);
  void score(const std::vector<llama_token>& prompt, std::vector<generation::Sample>& samples);

  llama_model* model_;
  ContextShape shape_;
  std::unique_ptr<Adapter> adapter_;
  llama_context* context_ = nullptr;  // the adapter's, or plain_context_
  struct ContextDeleter {
    void operator()(llama_context* context) const { llama_free(context); }
  };
  std::unique_ptr<llama_context, ContextDeleter> plain_context_, scoring_context_;
};

}  // namespace esamp::llama_cpp
