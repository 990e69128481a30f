// Writes the seed corpora of the engine's fuzzers into <folder>/gguf, <folder>/llama2c and
// <folder>/tokenizer (the committed ones are seeds/): small random llama models in GGUF with F32,
// F16 and BF16 tensors, the same as llama2.c checkpoint + tokenizer inputs (shared and separate
// classifier), and texts for the tokenizer, invalid UTF-8 included.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "llama/gguf_writer.hpp"
#include "llama/model.hpp"

namespace {

using namespace esamp::llama;

template <class T>
void append(std::vector<std::uint8_t>& out, T value) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}
template <class Tensor>
void append_tensor(std::vector<std::uint8_t>& out, const Tensor& tensor) {
  for (Eigen::Index i = 0; i < tensor.size(); ++i) append(out, tensor.data()[i]);
}

// The fuzzer's input: u32 checkpoint size, the llama2.c checkpoint, then its tokenizer file.
std::vector<std::uint8_t> llama2c_input(const Model& model, bool shared_classifier) {
  const Hyperparameters& hp = model.hparams;
  std::vector<std::uint8_t> checkpoint;
  for (const int field : {hp.dim, hp.hidden_dim, hp.layer_count, hp.head_count, hp.kv_head_count,
                          shared_classifier ? hp.vocab_size : -hp.vocab_size, hp.context_length})
    append<std::int32_t>(checkpoint, field);
  const Weights& w = model.weights;
  append_tensor(checkpoint, w.token_embedding);
  const auto layers = [&](auto member) {
    for (const LayerWeights& layer : w.layers) append_tensor(checkpoint, layer.*member);
  };
  layers(&LayerWeights::attention_norm);
  layers(&LayerWeights::query);
  layers(&LayerWeights::key);
  layers(&LayerWeights::value);
  layers(&LayerWeights::attention_output);
  layers(&LayerWeights::ffn_norm);
  layers(&LayerWeights::ffn_gate);
  layers(&LayerWeights::ffn_down);
  layers(&LayerWeights::ffn_up);
  append_tensor(checkpoint, w.final_norm);
  for (int i = 0; i < hp.context_length * hp.head_size(); ++i)
    append(checkpoint, 0.5f);  // freq_cis
  if (!shared_classifier) append_tensor(checkpoint, w.lm_head);

  std::vector<std::uint8_t> input;
  append<std::uint32_t>(input, static_cast<std::uint32_t>(checkpoint.size()));
  input.insert(input.end(), checkpoint.begin(), checkpoint.end());
  append<std::int32_t>(input, 8);  // max_token_length
  const Vocabulary& v = model.vocabulary;
  for (std::size_t id = 0; id < v.pieces.size(); ++id) {
    append(input, v.scores[id]);
    append<std::int32_t>(input, static_cast<std::int32_t>(v.pieces[id].size()));
    input.insert(input.end(), v.pieces[id].begin(), v.pieces[id].end());
  }
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-folder>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  Hyperparameters hparams;
  hparams.dim = 4;
  hparams.hidden_dim = 6;
  hparams.layer_count = 1;
  hparams.head_count = 2;
  hparams.kv_head_count = 1;
  hparams.context_length = 8;
  Vocabulary vocabulary;
  vocabulary.source = "seed";
  vocabulary.pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "<0xF0>", " ", "a", "b", " a", "ab"};
  vocabulary.types = {TokenType::unknown, TokenType::control, TokenType::control, TokenType::byte,
                      TokenType::byte,    TokenType::normal,  TokenType::normal,  TokenType::normal,
                      TokenType::normal,  TokenType::normal};
  vocabulary.scores = {0, 0, 0, 0, 0, -1, -2, -3, -4, -5};
  hparams.vocab_size = static_cast<int>(vocabulary.pieces.size());
  try {
    for (const char* folder : {"gguf", "llama2c", "tokenizer"})
      std::filesystem::create_directories(root / folder);
    const Model model = random_model(hparams, vocabulary, 1);
    const std::pair<const char*, GgmlType> types[] = {
        {"f32", GgmlType::f32}, {"f16", GgmlType::f16}, {"bf16", GgmlType::bf16}};
    for (const auto& [name, type] : types)
      esamp::detail::write_file_atomically(
          (root / "gguf" / (std::string("tiny_") + name + ".gguf")).string(), to_gguf(model, type));
    esamp::detail::write_file_atomically((root / "llama2c" / "tiny_shared.bin").string(),
                                         llama2c_input(model, true));
    esamp::detail::write_file_atomically((root / "llama2c" / "tiny_separate.bin").string(),
                                         llama2c_input(model, false));
    // Tokenizer inputs: the text, then the flags the fuzzer reads from the end (last byte even:
    // the fixed vocabulary).
    using namespace std::string_view_literals;
    const std::string_view texts[] = {"Once upon a time\0\0"sv, "\xC3\xA9t\xC3\xA9 ab ab\1\0"sv,
                                      "\xF0\x9F\x98\x80\xF0\x9F\x98\n\0\0"sv,
                                      "\xC3\x28\xA0\xA1\xFF\xFE\xE2\x82\0\0"sv,
                                      " a\0\0\0\xC0"
                                      "a\0\0\x80?\x02\x03\x01"sv};
    int n = 0;
    for (const std::string_view text : texts)
      esamp::detail::write_file_atomically(
          (root / "tokenizer" / ("text" + std::to_string(n++))).string(),
          std::vector<std::uint8_t>(text.begin(), text.end()));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
