// llama2.c's tokenizer (run.c encode/decode), with byte pieces found by name rather than by id.
#include "llama/tokenizer.hpp"

#include <optional>
#include <utility>

#include "esamp/error.hpp"

namespace esamp::llama {
namespace {

// The byte a piece "<0xNN>" stands for; nullopt for any other piece.
std::optional<unsigned char> parse_byte_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return std::nullopt;
  const auto hex_digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int high = hex_digit(piece[3]);
  const int low = hex_digit(piece[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<unsigned char>(high * 16 + low);
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocabulary) : vocabulary_(std::move(vocabulary)) {
  const std::string& source = vocabulary_.source;
  const std::size_t size = vocabulary_.pieces.size();
  if (size == 0) fail("{}: the vocabulary is empty", source);
  if (vocabulary_.scores.size() != size)
    fail("{}: {} token scores for {} pieces", source, vocabulary_.scores.size(), size);
  const auto check_id = [&](const char* what, TokenId id) {
    if (id < 0 || static_cast<std::size_t>(id) >= size)
      fail("{}: {} token id {} is outside the vocabulary [0, {})", source, what, id, size);
  };
  check_id("unknown", vocabulary_.unknown);
  check_id("BOS", vocabulary_.bos);
  check_id("EOS", vocabulary_.eos);
  if (vocabulary_.types.empty()) vocabulary_.types = infer_types();
  if (vocabulary_.types.size() != size)
    fail("{}: {} token types for {} pieces", source, vocabulary_.types.size(), size);

  byte_token_ids_.fill(-1);
  for (std::size_t id = 0; id < size; ++id) {
    const std::string& piece = vocabulary_.pieces[id];
    const TokenType type = vocabulary_.types[id];
    if (type == TokenType::byte) {
      const auto byte = parse_byte_piece(piece);
      if (!byte) fail("{}: byte token {} has piece '{}', expected <0xNN>", source, id, piece);
      if (byte_token_ids_[*byte] < 0) byte_token_ids_[*byte] = static_cast<TokenId>(id);
    } else if (type == TokenType::normal || type == TokenType::user_defined) {
      // llama2.c's bsearch over sorted pieces finds one of equal pieces; keep the first.
      text_piece_ids_.emplace(piece, static_cast<TokenId>(id));
    }
  }
}

std::vector<TokenType> Tokenizer::infer_types() const {
  std::vector<TokenType> types(vocabulary_.pieces.size(), TokenType::normal);
  for (std::size_t id = 0; id < types.size(); ++id)
    if (parse_byte_piece(vocabulary_.pieces[id])) types[id] = TokenType::byte;
  types[vocabulary_.unknown] = TokenType::unknown;
  types[vocabulary_.bos] = TokenType::control;
  types[vocabulary_.eos] = TokenType::control;
  return types;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_bos, bool add_eos) const {
  std::vector<TokenId> tokens;
  if (add_bos) tokens.push_back(vocabulary_.bos);
  if (!text.empty()) {
    // SentencePiece's dummy prefix: the text is encoded as if it followed a space.
    const std::string prefixed = " " + std::string(text);
    std::vector<TokenId> pieces;
    for (std::size_t start = 0; start < prefixed.size();) {
      std::size_t end = start + 1;
      // The dummy prefix is a character of its own (llama2.c adds its token before the text), even
      // when the text starts with a stray continuation byte.
      while (start > 0 && end < prefixed.size() && end - start < 4 &&
             is_utf8_continuation(prefixed[end]))
        ++end;
      const auto found = text_piece_ids_.find(prefixed.substr(start, end - start));
      if (found != text_piece_ids_.end()) {
        pieces.push_back(found->second);
      } else {
        for (std::size_t i = start; i < end; ++i) {
          const TokenId byte_token = byte_token_ids_[static_cast<unsigned char>(prefixed[i])];
          pieces.push_back(byte_token >= 0 ? byte_token : vocabulary_.unknown);
        }
      }
      start = end;
    }
    while (pieces.size() > 1) {
      float best_score = -1e10f;
      TokenId best_id = -1;
      std::size_t best_index = 0;
      for (std::size_t i = 0; i + 1 < pieces.size(); ++i) {
        const auto found =
            text_piece_ids_.find(vocabulary_.pieces[pieces[i]] + vocabulary_.pieces[pieces[i + 1]]);
        if (found != text_piece_ids_.end() && vocabulary_.scores[found->second] > best_score) {
          best_score = vocabulary_.scores[found->second];
          best_id = found->second;
          best_index = i;
        }
      }
      if (best_id < 0) break;
      pieces[best_index] = best_id;
      pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(best_index) + 1);
    }
    tokens.insert(tokens.end(), pieces.begin(), pieces.end());
  }
  if (add_eos) tokens.push_back(vocabulary_.eos);
  return tokens;
}

std::string Tokenizer::decode(TokenId previous, TokenId token) const {
  if (token < 0 || token >= size())
    fail("{}: cannot decode token {}: outside the vocabulary [0, {})", vocabulary_.source, token,
         size());
  const std::string& piece = vocabulary_.pieces[token];
  switch (vocabulary_.types[token]) {
    case TokenType::control:
      return {};
    case TokenType::byte:
      return std::string(1, static_cast<char>(*parse_byte_piece(piece)));
    default:
      break;
  }
  if (previous == vocabulary_.bos && !piece.empty() && piece[0] == ' ') return piece.substr(1);
  return piece;
}

std::string Tokenizer::decode(Span<const TokenId> tokens) const {
  std::string text;
  TokenId previous = -1;
  for (const TokenId token : tokens) {
    text += decode(previous, token);
    previous = token;
  }
  return text;
}

}  // namespace esamp::llama
