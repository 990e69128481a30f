// libFuzzer entry point for the sentence encoder's tokenizer.json reader: the input is a
// tokenizer.json, a NUL byte, then a text. Any file must load or give an esamp::Error. A tokenizer
// that loads must encode any text (invalid UTF-8 included): [CLS] first and [SEP] last, every id in
// [0, max_id()], and a smaller max_tokens the same ids cut before [SEP].
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "embed/wordpiece.hpp"
#include "esamp/error.hpp"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "tokenizer_json_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using esamp::embed::WordPieceTokenizer;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  std::optional<WordPieceTokenizer> tokenizer;
  try {
    tokenizer.emplace(WordPieceTokenizer::parse(json, "fuzz.json"));
  } catch (const esamp::Error&) {
    return 0;  // a refused file
  }
  const std::vector<int> ends = tokenizer->encode("", 2);  // [CLS] [SEP]
  const std::vector<int> ids = tokenizer->encode(text, std::numeric_limits<std::size_t>::max());
  if (ends.size() != 2 || ids.size() < 2 || ids.front() != ends[0] || ids.back() != ends[1])
    finding("encode did not give [CLS] ... [SEP]");
  for (const int id : ids)
    if (id < 0 || id > tokenizer->max_id()) finding("encode gave an id outside [0, max_id()]");
  const std::size_t max_tokens = 2 + text.size() % 16;
  std::vector<int> expected = ids;
  if (expected.size() > max_tokens) {
    expected.resize(max_tokens - 1);
    expected.push_back(ends[1]);
  }
  if (tokenizer->encode(text, max_tokens) != expected)
    finding("a smaller max_tokens did not cut the same ids before [SEP]");
  tokenizer->normalize(text);
  return 0;
}
