// Generation with the llama example engine: the N samples of one prompt decoded as one batch that
// shares one distiller group (DESIGN.md §1-2), then re-scored under the base model for the metrics
// of DESIGN.md §5. Used by esamp-generate, esamp-eval and the CPU overhead benchmark.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/sampler.hpp"
#include "esamp/sampling.hpp"
#include "llama/engine.hpp"
#include "llama/model.hpp"
#include "llama/tokenizer.hpp"

namespace esamp::generation {

// A GGUF when `tokenizer_path` is empty, else a llama2.c checkpoint with its tokenizer file.
llama::Model load_model(const std::string& model_path, const std::string& tokenizer_path);

// The rank DESIGN.md defaults to (128), capped at the model's hidden size.
int default_rank(int hidden_size);
inline int default_rank(const llama::Hyperparameters& hparams) { return default_rank(hparams.dim); }

// A CPU sampler for `hparams`' model: `distiller.hidden_size` is taken from the model.
std::unique_ptr<ExploratorySampler> make_sampler(const llama::Hyperparameters& hparams,
                                                 DistillerConfig distiller,
                                                 const ExplorationConfig& exploration);

struct GenerationSettings {
  int samples = 8;
  int max_new_tokens = 128;  // tokens sampled per sample, the first one from the prefill logits
  Filter filter;
  std::uint64_t seed = 0;             // SampleKey.seed of every draw
  std::uint64_t first_sequence = 0;   // SampleKey.sequence of sample 0; sample i draws as i + this
  bool stop_at_end_of_text = true;    // end a sample at EOS or BOS (benchmarks want fixed lengths)
  bool score_with_base_model = true;  // fill Sample::base_logprobs and mean_final_hidden
  // One sampler group (one distiller) per sample instead of one per prompt: the ablation of the
  // samples' collaborative exploration. The sampler needs a slot per sample.
  bool group_per_sample = false;
  // Called after every batch of draws with the number of tokens just sampled (progress display).
  std::function<void(int sampled_tokens)> on_tokens;
};

struct Sample {
  std::vector<llama::TokenId> tokens;  // generated tokens, the stop token excluded
  std::string text;                    // `tokens` decoded after the prompt
  bool stopped = false;                // ended on EOS/BOS before the token budget
  // [tokens] natural-log probability of each token under the base model (no mixing), from a
  // plain forward pass over prompt + tokens; empty unless score_with_base_model.
  std::vector<float> base_logprobs;
  // [hidden] mean over the generated tokens of the base model's final-normed hidden state after
  // reading each one (zeros for an empty sample); empty unless score_with_base_model.
  Eigen::VectorXd mean_final_hidden;
};

struct GenerationResult {
  std::vector<llama::TokenId> prompt_tokens;  // BOS + the encoded prompt
  std::string prompt_text;                    // prompt_tokens decoded, as llama2.c prints them
  std::vector<Sample> samples;
  std::int64_t sampled_tokens = 0;  // every draw, stop tokens included
  double seconds = 0.0;             // wall time of prefill + decode (re-scoring excluded)

  double tokens_per_second() const { return seconds > 0.0 ? sampled_tokens / seconds : 0.0; }
};

// Decodes settings.samples samples of `prompt` as one batch. With a sampler, all rows form one
// group of it (opened and closed here) and every decode step runs its hooks; without one, or with
// beta = 0, the tokens are those of plain sampling. Draws are keyed (seed, first_sequence + sample,
// position of the token in its sequence). The prompt and every sample must fit the model's context.
GenerationResult generate(llama::Engine& engine, const llama::Tokenizer& tokenizer,
                          ExploratorySampler* sampler, std::string_view prompt,
                          const GenerationSettings& settings);

}  // namespace esamp::generation
