// Writes the GGUF fuzzer's seed corpus into the folder given as the only argument: small random
// llama models with F32, F16 and BF16 tensors and a vocabulary with byte pieces and merges.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "esamp/error.hpp"
#include "llama/gguf_writer.hpp"
#include "llama/model.hpp"

int main(int argc, char** argv) {
  using namespace esamp::llama;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-folder>\n", argv[0]);
    return 2;
  }
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
    const Model model = random_model(hparams, vocabulary, 1);
    const std::pair<const char*, GgmlType> types[] = {
        {"f32", GgmlType::f32}, {"f16", GgmlType::f16}, {"bf16", GgmlType::bf16}};
    for (const auto& [name, type] : types) {
      const std::vector<std::uint8_t> bytes = to_gguf(model, type);
      const std::string path = std::string(argv[1]) + "/tiny_" + name + ".gguf";
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
      if (!out) esamp::fail("{}: write failed", path);
    }
  } catch (const esamp::Error& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
