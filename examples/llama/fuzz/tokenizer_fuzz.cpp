// libFuzzer entry point for the tokenizer on arbitrary bytes (invalid UTF-8 included). The first
// byte picks the vocabulary: even, a fixed one with a byte piece for every byte, where
// decode(encode(text)) must give the text back exactly; odd, one decoded from the input (any
// pieces, types, scores and special ids), which must be accepted or refused with an esamp::Error.
// Then every token encode gives must be in range, and decode must take any id sequence, refusing
// an id outside the vocabulary with an esamp::Error.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "esamp/error.hpp"
#include "llama/tokenizer.hpp"

namespace {

using esamp::llama::TokenId;
using esamp::llama::TokenType;
using esamp::llama::Vocabulary;

Vocabulary fixed_vocabulary() {
  Vocabulary v;
  v.source = "fixed";
  const auto add = [&v](std::string piece, TokenType type, float score) {
    v.pieces.push_back(std::move(piece));
    v.types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::unknown, 0);
  add("<s>", TokenType::control, 0);
  add("</s>", TokenType::control, 0);
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    add(piece, TokenType::byte, 0);
  }
  const char* const words[] = {" ",  "a",  "b",    " a",           "ab",   " ab", "\xC3\xA9",
                               "on", "ce", "Once", " Once",        " upo", "n",   " upon",
                               "\n", "  ", "<s>",  "\xF0\x9F\x98", "\x80"};
  float score = -1;
  for (const char* word : words) add(word, TokenType::normal, score--);
  add("\xE2\x96\x81", TokenType::user_defined, 0.5f);
  return v;
}

Vocabulary fuzzed_vocabulary(FuzzedDataProvider& input) {
  Vocabulary v;
  v.source = "fuzzed";
  const int size = input.ConsumeIntegralInRange(0, 48);
  const bool typed = input.ConsumeBool();
  for (int i = 0; i < size; ++i) {
    v.pieces.push_back(input.ConsumeRandomLengthString(12));
    v.scores.push_back(input.ConsumeFloatingPoint<float>());
    // Raw values 0 and 7 are no TokenType: a reader must refuse or ignore them.
    if (typed) v.types.push_back(static_cast<TokenType>(input.ConsumeIntegralInRange(0, 7)));
  }
  v.unknown = input.ConsumeIntegralInRange(-1, size);
  v.bos = input.ConsumeIntegralInRange(-1, size);
  v.eos = input.ConsumeIntegralInRange(-1, size);
  return v;
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using esamp::llama::Tokenizer;
  static const Tokenizer fixed{fixed_vocabulary()};
  FuzzedDataProvider input(data, size);
  const bool fuzzed = input.ConsumeIntegral<std::uint8_t>() & 1;
  std::optional<Tokenizer> own;
  if (fuzzed) {
    try {
      own.emplace(fuzzed_vocabulary(input));
    } catch (const esamp::Error&) {
      return 0;  // a refused vocabulary
    }
  }
  const Tokenizer& tokenizer = fuzzed ? *own : fixed;
  const bool add_eos = input.ConsumeBool();
  const std::string text = input.ConsumeRandomLengthString(2048);
  const std::vector<TokenId> tokens = tokenizer.encode(text, true, add_eos);
  for (const TokenId token : tokens)
    if (token < 0 || token >= tokenizer.size())
      finding("encode gave a token outside the vocabulary");
  const std::string decoded = tokenizer.decode(tokens);
  if (!fuzzed && decoded != text) finding("decode(encode(text)) differs from the text");
  std::vector<TokenId> ids;
  while (input.remaining_bytes() >= sizeof(TokenId))
    ids.push_back(input.ConsumeIntegral<TokenId>());
  try {
    tokenizer.decode(ids);
  } catch (const esamp::Error&) {
    for (const TokenId id : ids)
      if (id < 0 || id >= tokenizer.size()) return 0;
    finding("decode refused ids that are all in the vocabulary");
  }
  return 0;
}
