// Helpers shared by the engine tests: the model files and reference outputs, GGUF bytes with a
// change made to them, and greedy decoding the way llama2.c's `run -t 0` does it.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../model_dir.hpp"
#include "esamp/sampler.hpp"
#include "llama/engine.hpp"
#include "llama/model.hpp"
#include "llama/tokenizer.hpp"

namespace esamp::llama::test {

using esamp::test::model_file;
using esamp::test::test_data_file;

inline std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline const Model& gguf_model() {
  static const Model model = load_gguf(model_file("stories260K.gguf"));
  return model;
}

inline const Model& llama2c_model() {
  static const Model model = load_llama2c(model_file("stories260K.bin"), model_file("tok512.bin"));
  return model;
}

// A two-layer model small enough to flip every byte of its file: grouped-query attention (2 query
// heads per key/value head), a byte token and a few merges.
inline Model tiny_model(std::uint32_t seed = 1) {
  Hyperparameters hparams;
  hparams.dim = 8;
  hparams.hidden_dim = 12;
  hparams.layer_count = 2;
  hparams.head_count = 2;
  hparams.kv_head_count = 1;
  hparams.vocab_size = 10;
  hparams.context_length = 16;
  Vocabulary vocabulary;
  vocabulary.source = "tiny";
  vocabulary.pieces = {"<unk>", "<s>", "</s>", "<0x41>", " ", "a", "b", " a", "ab", " ab"};
  vocabulary.scores = {0, 0, 0, 0, -1, -2, -3, -4, -5, -6};
  return random_model(hparams, vocabulary, seed);
}

// The first index of the largest value, as llama2.c's sample_argmax picks it.
inline TokenId argmax(const float* values, Eigen::Index count) {
  Eigen::Index best = 0;
  for (Eigen::Index i = 1; i < count; ++i)
    if (values[i] > values[best]) best = i;
  return static_cast<TokenId>(best);
}

struct Generation {
  std::vector<TokenId> tokens;  // BOS, then the generated tokens
  std::string text;             // what llama2.c prints: the decoded pieces, then "\n"
};

// llama2.c's generate() with greedy sampling from BOS: `steps` forward passes, each choosing the
// argmax token, stopping early at BOS. The first pass is the prompt's (prefill: no hooks); every
// later one is a decode step bracketed by the sampler's begin_step/end_step when there is one.
inline Generation greedy_generation(const Model& model, int steps,
                                    ExploratorySampler* sampler = nullptr,
                                    const Filter* candidate_filter = nullptr) {
  Engine engine(model);
  const Tokenizer tokenizer(model.vocabulary);
  const SequenceId sequence = engine.open_sequence();
  const std::vector<GroupId> groups{sampler != nullptr ? sampler->open_group() : GroupId{0}};
  Generation generation;
  generation.tokens.push_back(tokenizer.bos());
  for (int position = 0; position < steps; ++position) {
    const std::vector<StepRow> rows{{sequence, generation.tokens.back()}};
    const bool decode_step = sampler != nullptr && position > 0;
    if (decode_step) sampler->begin_step(groups);
    const RowMatrix& logits =
        engine.step(rows, decode_step ? StepHooks{sampler, candidate_filter} : StepHooks{});
    if (decode_step) sampler->end_step();
    const TokenId next = argmax(logits.data(), logits.cols());
    if (next == tokenizer.bos()) break;
    generation.text += tokenizer.decode(generation.tokens.back(), next);
    generation.tokens.push_back(next);
  }
  generation.text += "\n";
  return generation;
}

}  // namespace esamp::llama::test
