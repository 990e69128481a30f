// A llama-architecture model in memory (hyperparameters, float weights, vocabulary) and its two
// loaders: GGUF v3 and the llama2.c checkpoint + tokenizer pair.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "esamp/cpu/distiller_math.hpp"
#include "llama/gguf.hpp"
#include "llama/tokenizer.hpp"

namespace esamp::llama {

using RowMatrix = cpu::Matrix<float>;  // row-major, as everywhere in esamp's CPU code

struct Hyperparameters {
  int dim = 0;         // hidden size
  int hidden_dim = 0;  // feed-forward inner size
  int layer_count = 0;
  int head_count = 0;     // query heads
  int kv_head_count = 0;  // key/value heads (grouped-query attention when fewer)
  int vocab_size = 0;
  int context_length = 0;  // positions the model was trained for; the engine refuses more
  float rms_norm_eps = 1e-5f;
  float rope_freq_base = 10000.0f;

  int head_size() const { return dim / head_count; }
  int kv_dim() const { return kv_head_count * head_size(); }
  // Throws unless the shapes are positive and consistent; `source` names the file.
  void validate(const std::string& source) const;
};

// Linear layers are [out, in] row-major, as both file formats store them: y = x W^T.
struct LayerWeights {
  Eigen::RowVectorXf attention_norm;  // [dim]
  RowMatrix query;                    // [dim, dim]
  RowMatrix key;                      // [kv_dim, dim]
  RowMatrix value;                    // [kv_dim, dim]
  RowMatrix attention_output;         // [dim, dim]
  Eigen::RowVectorXf ffn_norm;        // [dim]
  RowMatrix ffn_gate;                 // [hidden_dim, dim] (llama2.c w1)
  RowMatrix ffn_down;                 // [dim, hidden_dim] (llama2.c w2)
  RowMatrix ffn_up;                   // [hidden_dim, dim] (llama2.c w3)
};

struct Weights {
  RowMatrix token_embedding;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  Eigen::RowVectorXf final_norm;  // [dim]
  RowMatrix lm_head;              // [vocab, dim]; a copy of token_embedding when the file ties them
};

struct Model {
  Hyperparameters hparams;
  Weights weights;
  Vocabulary vocabulary;
};

// A model of any shape with seeded random weights (norm weights 1), for tests, fuzzing seeds and
// benchmarks of shapes no model file provides. `vocabulary` must hold hparams.vocab_size pieces.
Model random_model(const Hyperparameters& hparams, Vocabulary vocabulary, std::uint32_t seed);

// Loads a llama GGUF with F32/F16/BF16 tensors. Its Q/K rows are already in the adjacent-pair
// rotary layout llama2.c uses (llama.cpp's converter undoes Hugging Face's permutation), so none is
// applied.
Model load_gguf(const std::string& path);
Model load_gguf(const GgufFile& file);

// Loads a llama2.c checkpoint (legacy header of 7 int32s, float32 weights) and its tokenizer file.
Model load_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path);

}  // namespace esamp::llama
