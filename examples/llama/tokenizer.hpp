// The SentencePiece-BPE tokenizer of llama2.c: encode by greedy merges of the best-scoring pair
// with byte fallback, decode with llama2.c's rules.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "esamp/span.hpp"

namespace esamp::llama {

using TokenId = std::int32_t;

// The token types of GGUF's tokenizer.ggml.token_type (SentencePiece's piece types).
enum class TokenType : std::uint8_t {
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

struct Vocabulary {
  std::string source;               // the file it came from, named in error messages
  std::vector<std::string> pieces;  // spaces as ' ' (a GGUF's U+2581 already replaced)
  std::vector<float> scores;        // merge priority: higher merges first
  std::vector<TokenType> types;     // empty: inferred from the ids and the pieces (llama2.c files)
  TokenId unknown = 0;
  TokenId bos = 1;
  TokenId eos = 2;
};

class Tokenizer {
 public:
  // Validates the vocabulary (sizes agree, special ids in range, byte pieces well formed).
  explicit Tokenizer(Vocabulary vocabulary);

  int size() const { return static_cast<int>(vocabulary_.pieces.size()); }
  TokenId bos() const { return vocabulary_.bos; }
  TokenId eos() const { return vocabulary_.eos; }
  const Vocabulary& vocabulary() const { return vocabulary_; }

  // llama2.c's encode: [BOS] + " " + text split into UTF-8 characters (bytes where a character has
  // no piece), then merge the adjacent pair whose concatenation scores best until none exists,
  // [+ EOS].
  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool add_eos) const;

  // The bytes `token` stands for after `previous`: control tokens give nothing, byte tokens their
  // byte, and a piece right after BOS loses its leading space.
  std::string decode(TokenId previous, TokenId token) const;
  // The pieces of `tokens` decoded in order, each after its predecessor.
  std::string decode(Span<const TokenId> tokens) const;

 private:
  std::vector<TokenType> infer_types() const;

  Vocabulary vocabulary_;
  std::unordered_map<std::string, TokenId> text_piece_ids_;  // pieces that plain text can produce
  std::array<TokenId, 256> byte_token_ids_;                  // -1 where the vocabulary has none
};

}  // namespace esamp::llama
