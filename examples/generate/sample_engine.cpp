// The llama example engine behind SampleEngine, and the checks every engine shares.
#include "sample_engine.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "esamp/cpu/backend.hpp"
#include "esamp/error.hpp"
#include "option_values.hpp"

namespace esamp::generation {
namespace {

class OwnSession final : public SampleSession {
 public:
  OwnSession(const llama::Model& model, const llama::Tokenizer& tokenizer,
             ExploratorySampler* sampler)
      : engine_(model), tokenizer_(tokenizer), sampler_(sampler) {}
  GenerationResult generate(std::string_view prompt, const GenerationSettings& settings) override {
    return generation::generate(engine_, tokenizer_, sampler_, prompt, settings);
  }

 private:
  llama::Engine engine_;
  const llama::Tokenizer& tokenizer_;
  ExploratorySampler* sampler_;
};

class OwnEngine final : public SampleEngine {
 public:
  explicit OwnEngine(llama::Model model)
      : model_(std::move(model)), tokenizer_(model_.vocabulary) {}

  std::string_view name() const override { return "own"; }
  int hidden_size() const override { return model_.hparams.dim; }
  int layer_count() const override { return model_.hparams.layer_count; }
  int context_length() const override { return model_.hparams.context_length; }
  int prompt_tokens(std::string_view prompt) const override {
    return static_cast<int>(tokenizer_.encode(prompt, true, false).size());
  }
  void check_serves(const ExplorationConfig&) const override {}  // every mode and tap
  std::unique_ptr<ExploratorySampler> make_sampler(
      DistillerConfig distiller, ExplorationConfig exploration,
      const BackendDecorator& decorate) const override {
    distiller.hidden_size = hidden_size();
    if (distiller.rank == 0) distiller.rank = default_rank(hidden_size());
    BackendFactory backend = cpu::backend();
    if (decorate)
      backend = [decorate, inner = backend](const DistillerConfig& d, const ExplorationConfig& e) {
        return decorate(inner(d, e));
      };
    return std::make_unique<ExploratorySampler>(layer_count(), distiller, exploration, backend);
  }
  std::unique_ptr<SampleSession> open(ExploratorySampler* sampler, int, int) override {
    return std::make_unique<OwnSession>(model_, tokenizer_, sampler);
  }

 private:
  llama::Model model_;
  llama::Tokenizer tokenizer_;
};

}  // namespace

std::unique_ptr<SampleEngine> own_engine(const std::string& model_path,
                                         const std::string& tokenizer_path) {
  return std::make_unique<OwnEngine>(load_model(model_path, tokenizer_path));
}

int max_sequence_tokens(const SampleEngine& engine, const std::vector<std::string>& prompts,
                        int new_tokens) {
  int longest = 0;
  for (const std::string& prompt : prompts) {
    const int tokens = engine.prompt_tokens(prompt);
    if (tokens + new_tokens > engine.context_length())
      throw UsageError(fmt::format(
          "--tokens {}: the prompt '{}' ({} tokens with BOS) leaves room for {} in the model's "
          "context of {}",
          new_tokens, prompt, tokens, engine.context_length() - tokens, engine.context_length()));
    longest = std::max(longest, tokens + new_tokens);
  }
  return longest;
}

}  // namespace esamp::generation
