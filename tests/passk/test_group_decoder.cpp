// GroupDecoder on stories260K through real llama.cpp: the cached prefix changes no token, and esamp
// at β = 0 draws the tokens of plain sampling.
#include <catch2/catch.hpp>

#include "../model_dir.hpp"
#include "esamp/llama_cpp.hpp"
#include "group_decoder.hpp"

namespace esamp::passk {
namespace {

llama_model* stories_model() {
  static const llama_cpp::ModelPtr model =
      llama_cpp::load_model(test::model_file("stories260K.gguf"));
  return model.get();
}

std::unique_ptr<ExploratorySampler> make_sampler(llama_model* model, float beta, int rows) {
  DistillerConfig distiller;
  distiller.hidden_size = llama_model_n_embd(model);
  distiller.rank = std::min(distiller.rank, distiller.hidden_size);
  ExplorationConfig exploration;
  exploration.beta = beta;
  exploration.max_rows = rows;
  return std::make_unique<ExploratorySampler>(llama_model_n_layer(model), distiller, exploration,
                                              llama_cpp::backend());
}

std::vector<std::string> texts(const std::vector<DecodedSample>& samples) {
  std::vector<std::string> result;
  for (const DecodedSample& sample : samples) result.push_back(sample.text);
  return result;
}

constexpr std::string_view kPrefix = "Once upon a time, there was a little girl named Lily.";

TEST_CASE("GroupDecoder: tokens copied from the cached prefix decode as a full prefill does",
          "[passk][llama_cpp]") {
  llama_model* model = stories_model();
  GroupDecoder cached(model, 3, 96, 1, nullptr);
  GroupDecoder uncached(model, 3, 96, 1, nullptr);
  cached.cache_prefix(kPrefix);
  DecodeSettings settings;
  settings.samples = 3;
  settings.max_new_tokens = 24;
  settings.filter.temperature = 0.0f;  // greedy: the logits' argmax decides every token
  // A prompt that extends the prefix, one that shares only its start, one that shares nothing.
  for (const std::string& prompt :
       {std::string(kPrefix) + " She liked", std::string("Once upon a time, a dog"),
        std::string("Tom had a red ball.")}) {
    INFO("prompt: " << prompt);
    for (int round = 0; round < 2; ++round) {  // the second time over a used context
      const std::vector<DecodedSample> reference = uncached.decode(prompt, settings);
      CHECK(texts(cached.decode(prompt, settings)) == texts(reference));
      CHECK_FALSE(reference[0].text.empty());
      CHECK(reference[1].text == reference[0].text);
      for (const DecodedSample& sample : reference) CHECK(sample.tokens <= 24);
    }
  }
}

TEST_CASE("GroupDecoder: esamp at beta = 0 draws the tokens of plain sampling",
          "[passk][llama_cpp]") {
  llama_model* model = stories_model();
  const auto sampler = make_sampler(model, 0.0f, 4);
  GroupDecoder plain(model, 4, 80, 1, nullptr);
  GroupDecoder esamp(model, 4, 80, 1, sampler.get());
  plain.cache_prefix(kPrefix);
  esamp.cache_prefix(kPrefix);
  DecodeSettings settings;
  settings.samples = 4;
  settings.max_new_tokens = 20;
  settings.filter.temperature = 1.0f;
  settings.seed = 11;
  settings.first_sequence = 4;
  const std::string prompt = std::string(kPrefix) + " One day";
  const std::vector<std::string> expected = texts(plain.decode(prompt, settings));
  CHECK(texts(esamp.decode(prompt, settings)) == expected);
  CHECK(expected[0] != expected[1]);  // the samples' own seeds: distinct draws
  settings.seed = 12;
  CHECK(texts(plain.decode(prompt, settings)) != expected);
}

TEST_CASE("GroupDecoder rejects a prompt that does not fit and too many samples",
          "[passk][llama_cpp]") {
  GroupDecoder decoder(stories_model(), 2, 16, 1, nullptr);
  DecodeSettings settings;
  settings.samples = 2;
  settings.max_new_tokens = 8;
  CHECK_THROWS_WITH(decoder.decode(kPrefix, settings), Catch::Contains("exceed"));
  settings.samples = 3;
  CHECK_THROWS_WITH(decoder.decode("Tom", settings), Catch::Contains("samples = 3"));
  CHECK_THROWS_WITH(decoder.cache_prefix(std::string(kPrefix) + std::string(kPrefix)),
                    Catch::Contains("prefix"));
}

}  // namespace
}  // namespace esamp::passk
