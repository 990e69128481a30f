// The SentencePiece-BPE tokenizer: llama2.c's encode (dummy prefix, best-score merges, byte
// fallback) and decode rules, on both vocabularies of stories260K.
#include <catch2/catch.hpp>

#include "engine_test_support.hpp"

namespace esamp::llama::test {
namespace {

using Catch::Contains;

std::vector<std::string> pieces_of(const Tokenizer& tokenizer, const std::vector<TokenId>& tokens) {
  std::vector<std::string> pieces;
  for (const TokenId token : tokens) pieces.push_back(tokenizer.vocabulary().pieces[token]);
  return pieces;
}

}  // namespace

TEST_CASE("known texts encode to the pieces llama2.c's tokenizer gives") {
  const Tokenizer tokenizer(gguf_model().vocabulary);
  using Pieces = std::vector<std::string>;
  CHECK(tokenizer.encode("", true, false) == std::vector<TokenId>{1});
  CHECK(tokenizer.encode("", false, false).empty());
  CHECK(tokenizer.encode("", true, true) == std::vector<TokenId>{1, 2});
  CHECK(pieces_of(tokenizer, tokenizer.encode("the", false, false)) == Pieces{" the"});
  CHECK(pieces_of(tokenizer, tokenizer.encode("Once upon a time", true, false)) ==
        Pieces{"<s>", " Once", " upon", " a", " time"});
  CHECK(pieces_of(tokenizer, tokenizer.encode("Lily's mom said, \"Hi!\"", false, true)) ==
        Pieces{" Lily", "'", "s", " mom", " said", ",", " \"", "H", "i", "!", "\"", "</s>"});
  CHECK(pieces_of(tokenizer, tokenizer.encode("  two", false, false)) ==
        Pieces{" ", " ", " t", "w", "o"});
}

TEST_CASE("characters without a piece fall back to their UTF-8 bytes") {
  const Tokenizer tokenizer(gguf_model().vocabulary);
  // U+1F600 is not in the vocabulary; "é" and "€" are.
  CHECK(pieces_of(tokenizer, tokenizer.encode("é€\xF0\x9F\x98\x80\n", false, false)) ==
        std::vector<std::string>{" ", "é", "€", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "<0x0A>"});
  // Byte tokens sit at id byte + 3, as llama2.c assumes.
  CHECK(tokenizer.encode("\n", false, false).back() == 0x0A + 3);
}

TEST_CASE("decoding undoes encoding, and the llama2.c and GGUF vocabularies agree") {
  const Tokenizer from_gguf(gguf_model().vocabulary);
  const Tokenizer from_bin(llama2c_model().vocabulary);
  const std::string reference = [] {
    const std::vector<std::uint8_t> bytes = file_bytes(test_data_file("stories260K.greedy.txt"));
    return std::string(bytes.begin(), bytes.end());
  }();
  const std::string text =
      GENERATE_COPY(std::string("Once upon a time"), std::string(" leading and trailing spaces "),
                    std::string("tabs\tand\nnewlines\n\n"), std::string("ünïcödé ✓ and 😀 emoji"),
                    std::string("digits 0123456789 and <s> </s> <0x41> look-alikes"), reference);
  const std::vector<TokenId> tokens = from_gguf.encode(text, true, true);
  CHECK(from_bin.encode(text, true, true) == tokens);
  CHECK(from_gguf.decode(tokens) == text);
  CHECK(from_bin.decode(tokens) == text);
  // Without BOS nothing strips the dummy prefix's space.
  CHECK(from_gguf.decode(from_gguf.encode(text, false, false)) == " " + text);
}

TEST_CASE("a text that starts with a UTF-8 continuation byte keeps the dummy prefix apart") {
  // Found by the tokenizer fuzzer: the prefix space joined the stray byte's group, fell back to
  // the byte token <0x20>, and decode (which strips only a piece's space after BOS) kept it.
  const Tokenizer tokenizer(gguf_model().vocabulary);
  const std::string text(
      "\xA1\xFF"
      "1\xC3\xFE\xA0&\nh\x82\x1F\x1F\x1F\x1F\x1F");
  const std::vector<TokenId> tokens = tokenizer.encode(text, true, true);
  CHECK(pieces_of(tokenizer, tokens)[1] == " ");
  CHECK(pieces_of(tokenizer, tokens)[2] == "<0xA1>");
  CHECK(tokenizer.decode(tokens) == text);
}

TEST_CASE("decode follows llama2.c: no space after BOS, byte pieces as bytes, no control text") {
  const Tokenizer tokenizer(llama2c_model().vocabulary);
  const TokenId once = tokenizer.encode("Once", false, false).at(0);
  CHECK(tokenizer.decode(1, once) == "Once");
  CHECK(tokenizer.decode(once, once) == " Once");
  CHECK(tokenizer.decode(-1, once) == " Once");
  CHECK(tokenizer.decode(1, 0x41 + 3) == "A");
  CHECK(tokenizer.decode(1, 0x00 + 3) == std::string(1, '\0'));
  CHECK(tokenizer.decode(5, 1).empty());
  CHECK(tokenizer.decode(5, 2).empty());
  CHECK(tokenizer.decode(5, 0) == "<unk>");
  CHECK_THROWS_WITH(tokenizer.decode(1, 512), Contains("tok512.bin") && Contains("token 512"));
  CHECK_THROWS_WITH(tokenizer.decode(1, -1), Contains("outside the vocabulary"));
}

TEST_CASE("an inconsistent vocabulary is an esamp::Error naming its source") {
  Vocabulary vocabulary;
  vocabulary.source = "vocab.bin";
  vocabulary.pieces = {"<unk>", "<s>", "</s>", "a"};
  vocabulary.scores = {0, 0, 0, 0};
  CHECK_NOTHROW(Tokenizer(vocabulary));
  CHECK_THROWS_WITH(Tokenizer(Vocabulary{"vocab.bin", {}, {}, {}, 0, 1, 2}),
                    Contains("vocab.bin") && Contains("empty"));
  Vocabulary short_scores = vocabulary;
  short_scores.scores.pop_back();
  CHECK_THROWS_WITH(Tokenizer(short_scores), Contains("vocab.bin") && Contains("3 token scores"));
  Vocabulary bad_bos = vocabulary;
  bad_bos.bos = 4;
  CHECK_THROWS_WITH(Tokenizer(bad_bos), Contains("BOS token id 4"));
  Vocabulary bad_types = vocabulary;
  bad_types.types = {TokenType::unknown, TokenType::control};
  CHECK_THROWS_WITH(Tokenizer(bad_types), Contains("2 token types"));
  Vocabulary bad_byte = vocabulary;
  bad_byte.types = {TokenType::unknown, TokenType::control, TokenType::control, TokenType::byte};
  CHECK_THROWS_WITH(Tokenizer(bad_byte), Contains("byte token 3 has piece 'a'"));
}

}  // namespace esamp::llama::test
