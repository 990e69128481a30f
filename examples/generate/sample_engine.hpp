// A loaded model that samples prompts, whichever engine runs it: the llama example engine ("own",
// for the toy model) or real llama.cpp (any GGUF it loads). esamp-generate, esamp-llama and
// esamp-eval drive both through this one interface, so an exploration option reaches both the
// same way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/backend.hpp"
#include "esamp/config.hpp"
#include "esamp/sampler.hpp"
#include "generation.hpp"

namespace esamp::generation {

// Decodes prompts with one sampler (or none) on one context.
class SampleSession {
 public:
  virtual ~SampleSession() = default;
  // settings.samples samples of `prompt` as one batch, one sampler group (or one per sample with
  // settings.group_per_sample), scored under the base model when asked.
  virtual GenerationResult generate(std::string_view prompt,
                                    const GenerationSettings& settings) = 0;
};

// Wraps the engine's sampler backend (e.g. to observe it); identity when empty.
using BackendDecorator =
    std::function<std::unique_ptr<SamplerBackend>(std::unique_ptr<SamplerBackend>)>;

class SampleEngine {
 public:
  virtual ~SampleEngine() = default;
  virtual std::string_view name() const = 0;  // "own" or "llama.cpp"
  virtual int hidden_size() const = 0;
  virtual int layer_count() const = 0;
  virtual int context_length() const = 0;  // tokens of one sequence, prompt included
  // Tokens of `prompt` as the engine feeds it (BOS included when the model adds one).
  virtual int prompt_tokens(std::string_view prompt) const = 0;
  // An esamp::Error naming what the engine cannot serve of `exploration` (e.g. llama.cpp's
  // adapter serves latent mixing only); nothing when it can.
  virtual void check_serves(const ExplorationConfig& exploration) const = 0;
  // A sampler for this model on the engine's backend (llama.cpp: its own threads), wrapped by
  // `decorate` when given. distiller.hidden_size is the model's; rank 0 means default_rank.
  virtual std::unique_ptr<ExploratorySampler> make_sampler(
      DistillerConfig distiller, ExplorationConfig exploration,
      const BackendDecorator& decorate = {}) const = 0;
  // A session for up to `samples` rows of at most `max_sequence_tokens` tokens (prompt + new),
  // with `sampler`'s hooks (null: plain sampling). The engine and sampler must outlive it.
  virtual std::unique_ptr<SampleSession> open(ExploratorySampler* sampler, int samples,
                                              int max_sequence_tokens) = 0;
};

// The llama example engine on a GGUF (llama architecture) or a llama2.c checkpoint with its
// tokenizer file (`tokenizer_path` not empty).
std::unique_ptr<SampleEngine> own_engine(const std::string& model_path,
                                         const std::string& tokenizer_path);

// The longest prompt + `new_tokens`, checked against the engine's context; a UsageError naming
// `--tokens` when a prompt leaves too little room.
int max_sequence_tokens(const SampleEngine& engine, const std::vector<std::string>& prompts,
                        int new_tokens);

}  // namespace esamp::generation
