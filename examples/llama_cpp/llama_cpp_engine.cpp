// llama_cpp_engine(): see llama_cpp_engine.hpp.
#include "llama_cpp_engine.hpp"

#include <algorithm>

#include "esamp/error.hpp"
#include "esamp/llama_cpp.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::llama_cpp {
namespace {

class LlamaCppSession final : public generation::SampleSession {
 public:
  LlamaCppSession(llama_model* model, const ContextShape& shape, ExploratorySampler* sampler)
      : generator_(model, shape, sampler) {}
  generation::GenerationResult generate(std::string_view prompt,
                                        const generation::GenerationSettings& settings) override {
    return generator_.generate(prompt, settings);
  }

 private:
  Generator generator_;
};

class LlamaCppEngine final : public generation::SampleEngine {
 public:
  LlamaCppEngine(ModelPtr model, int threads) : model_(std::move(model)), threads_(threads) {}

  std::string_view name() const override { return "llama.cpp"; }
  int hidden_size() const override { return llama_model_n_embd(model_.get()); }
  int layer_count() const override { return llama_model_n_layer(model_.get()); }
  int context_length() const override { return llama_model_n_ctx_train(model_.get()); }
  int prompt_tokens(std::string_view prompt) const override {
    return static_cast<int>(tokenize(model_.get(), prompt).size());
  }
  void check_serves(const ExplorationConfig& exploration) const override {
    if (exploration.mix != MixMode::latent)
      fail("mix = {}: the llama.cpp adapter serves latent mixing only",
           esamp::name(exploration.mix));
    const auto tap_served = [](Tap tap, bool target) {
      return tap.site == Site::layer_input_normed || (target && tap.site == Site::final_normed);
    };
    if (!tap_served(exploration.source, false))
      fail("source site {}: the llama.cpp adapter taps layer_input_normed (attn_norm-<layer>)",
           esamp::name(exploration.source.site));
    if (!tap_served(exploration.target, true))
      fail(
          "target site {}: the llama.cpp adapter taps layer_input_normed (attn_norm-<layer>) or "
          "final",
          esamp::name(exploration.target.site));
  }
  std::unique_ptr<ExploratorySampler> make_sampler(
      DistillerConfig distiller, ExplorationConfig exploration,
      const generation::BackendDecorator& decorate) const override {
    check_serves(exploration);
    distiller.hidden_size = hidden_size();
    if (distiller.rank == 0) distiller.rank = generation::default_rank(hidden_size());
    // Training on llama.cpp's threads (llama_cpp::backend()), idle while esamp trains.
    exploration.training_threads =
        std::min(256, threads_ > 0 ? threads_ : llama_context_default_params().n_threads);
    BackendFactory factory = backend();
    if (decorate)
      factory = [decorate, inner = factory](const DistillerConfig& d, const ExplorationConfig& e) {
        return decorate(inner(d, e));
      };
    return std::make_unique<ExploratorySampler>(layer_count(), distiller, exploration, factory);
  }
  std::unique_ptr<generation::SampleSession> open(ExploratorySampler* sampler, int samples,
                                                  int max_sequence_tokens) override {
    return std::make_unique<LlamaCppSession>(
        model_.get(), ContextShape{samples, max_sequence_tokens, threads_}, sampler);
  }

 private:
  ModelPtr model_;
  int threads_;
};

}  // namespace

std::unique_ptr<generation::SampleEngine> llama_cpp_engine(const std::string& model_path,
                                                           int threads) {
  return std::make_unique<LlamaCppEngine>(load_model(model_path), threads);
}

}  // namespace esamp::llama_cpp
