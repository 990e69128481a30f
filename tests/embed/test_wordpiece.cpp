#include <catch2/catch.hpp>
#include <esamp/error.hpp>
#include <string>
#include <vector>

#include "embed/wordpiece.hpp"

using Catch::Matchers::Contains;
using esamp::embed::WordPieceTokenizer;

namespace {

// A tokenizer.json of the encoder's shape with a vocabulary of a few pieces.
std::string tokenizer_json(const std::string& normalizer_type = "BertNormalizer",
                           int max_chars = 10) {
  return R"({
    "added_tokens": [
      {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
    "normalizer": {"type": ")" +
         normalizer_type +
         R"(", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
      "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                         "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
      "max_input_chars_per_word": )" +
         std::to_string(max_chars) + R"(,
      "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "play": 4, "##ing": 5, "##ed": 6,
                "!": 7, "cafe": 8, "中": 9, "a": 10, "##a": 11}}
  })";
}

}  // namespace

TEST_CASE("WordPiece splits words into the longest vocabulary pieces, ## for continuations") {
  const auto t = WordPieceTokenizer::parse(tokenizer_json(), "tokenizer.json");
  REQUIRE(t.encode("playing", 256) == std::vector<int>{2, 4, 5, 3});
  REQUIRE(t.encode("PLAYED!", 256) == std::vector<int>{2, 4, 6, 7, 3});
  REQUIRE(t.encode("", 256) == std::vector<int>{2, 3});
  SECTION("a word with any piece missing is one [UNK]") {
    REQUIRE(t.encode("playx play", 256) == std::vector<int>{2, 1, 4, 3});
  }
  SECTION("a word longer than max_input_chars_per_word is [UNK]") {
    REQUIRE(t.encode(std::string(10, 'a'), 256) ==
            std::vector<int>{2, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 3});
    REQUIRE(t.encode(std::string(11, 'a'), 256) == std::vector<int>{2, 1, 3});
  }
}

TEST_CASE("The BERT normalizer cleans, spaces CJK, strips accents and lowercases") {
  const auto t = WordPieceTokenizer::parse(tokenizer_json(), "tokenizer.json");
  REQUIRE(t.normalize("Caf\xC3\xA9\tOK") == "cafe ok");  // é, tab
  REQUIRE(t.normalize("a\x01"
                      "b\xEF\xBF\xBD"
                      "c") == "abc");  // control, U+FFFD
  REQUIRE(t.normalize("x\xE4\xB8\xAD"
                      "y") == "x \xE4\xB8\xAD y");  // 中
  REQUIRE(t.normalize("\xC4\xB0") == "i");          // İ: I + dot above
  REQUIRE(t.normalize("\xFF"
                      "a") == "a");  // invalid UTF-8
  REQUIRE(t.encode("Caf\xC3\xA9\xE4\xB8\xAD", 256) == std::vector<int>{2, 8, 9, 3});
}

TEST_CASE("Special tokens in the raw text keep their ids and truncation keeps [CLS] and [SEP]") {
  const auto t = WordPieceTokenizer::parse(tokenizer_json(), "tokenizer.json");
  REQUIRE(t.encode("play[SEP]play", 256) == std::vector<int>{2, 4, 3, 4, 3});
  // Matched as-is, not after lowercasing: "[sep]" is three words, none in the vocabulary.
  REQUIRE(t.encode("[sep]", 256) == std::vector<int>{2, 1, 1, 1, 3});
  REQUIRE(t.encode("play play play play", 4) == std::vector<int>{2, 4, 4, 3});
  REQUIRE_THROWS_WITH(t.encode("play", 1), Contains("max_tokens = 1: must be >= 2"));
}

TEST_CASE("A tokenizer.json of another kind is an error naming the field") {
  REQUIRE_THROWS_WITH(WordPieceTokenizer::parse("{", "tok.json"),
                      Contains("tok.json: not valid JSON"));
  REQUIRE_THROWS_WITH(WordPieceTokenizer::parse("{}", "tok.json"),
                      Contains("tok.json.model: missing"));
  REQUIRE_THROWS_WITH(
      WordPieceTokenizer::parse(tokenizer_json("NFKC"), "tok.json"),
      Contains("tok.json: normalizer.type = \"NFKC\": only \"BertNormalizer\" is supported"));
  REQUIRE_THROWS_WITH(WordPieceTokenizer::parse(tokenizer_json("BertNormalizer", -1), "tok.json"),
                      Contains("max_input_chars_per_word = -1: out of range"));
  REQUIRE_THROWS_WITH(WordPieceTokenizer::load("/nonexistent/tokenizer.json"),
                      Contains("/nonexistent/tokenizer.json: cannot be opened"));
}

TEST_CASE("A special token id that is negative or beyond INT_MAX is an error naming it") {
  // Found while writing the tokenizer_json fuzzer, whose id check aborts on the crafted seed
  // regression_negative_cls: a negative id was kept (encode gave it, and the encoder's max_id()
  // check let it through to the embedding lookup) and 2^32 + 2 was cut to 2.
  for (const char* id : {"-7", "4294967298", "18446744073709551615"}) {
    std::string file = tokenizer_json();
    const std::string cls_ids = R"("ids": [2])";
    file.replace(file.find(cls_ids), cls_ids.size(), std::string(R"("ids": [)") + id + "]");
    REQUIRE_THROWS_WITH(WordPieceTokenizer::parse(file, "tok.json"),
                        Contains("special_tokens.[CLS].ids = [" + std::string(id) +
                                 "]: expected one non-negative integer id"));
  }
}
