// Writes the seed corpora of the sentence encoder's fuzzers into <folder>/safetensors and
// <folder>/tokenizer_json (the committed ones are seeds/): tiny synthetic safetensors files of
// several dtypes and shapes, and tiny BERT WordPiece tokenizer.json files, each followed by a NUL
// and a text (invalid UTF-8 included). Every seed is checked to load.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "embed/safetensors.hpp"
#include "embed/wordpiece.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"

namespace {

using nlohmann::json;

struct Tensor {
  const char* name;
  const char* dtype;
  std::vector<std::int64_t> shape;
  std::size_t element_bytes;
};

// A safetensors file of `tensors`, laid out in order, the data bytes counting up from 1.
std::vector<std::uint8_t> safetensors(const std::vector<Tensor>& tensors) {
  json header = {{"__metadata__", {{"format", "pt"}}}};
  std::size_t offset = 0;
  for (const Tensor& t : tensors) {
    std::size_t bytes = t.element_bytes;
    for (const std::int64_t d : t.shape) bytes *= static_cast<std::size_t>(d);
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  const std::string text = header.dump();
  std::vector<std::uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(text.size() >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (std::size_t i = 0; i < offset; ++i) out.push_back(static_cast<std::uint8_t>(i + 1));
  esamp::embed::SafetensorsFile::parse("seed", out);
  return out;
}

// A tokenizer.json of the encoder's shape with a vocabulary of a few pieces and the given
// normalizer flags, then a NUL and `text`.
std::vector<std::uint8_t> tokenizer_input(bool lowercase, const json& strip_accents,
                                          bool clean_text, bool chinese_chars,
                                          const std::string& text) {
  json added = json::array();
  const char* const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int id = 0; id < 5; ++id)
    added.push_back({{"id", id},
                     {"content", specials[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  json vocab = json::object();
  for (int id = 0; id < 5; ++id) vocab[specials[id]] = id;
  int id = 5;
  for (const char* piece : {"play", "##ing", "##ed", "!", "cafe", "caf\xC3\xA9", "\xE4\xB8\xAD",
                            "a", "##a", "the", "##s", "i", "\xC3\xA9", "."})
    vocab[piece] = id++;
  const auto special = [](const char* name, int special_id) {
    return json{{"id", name}, {"ids", {special_id}}, {"tokens", {name}}};
  };
  const json root = {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", clean_text},
        {"handle_chinese_chars", chinese_chars},
        {"strip_accents", strip_accents},
        {"lowercase", lowercase}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"[CLS]", special("[CLS]", 2)}, {"[SEP]", special("[SEP]", 3)}}}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 12},
        {"vocab", vocab}}}};
  const std::string file = root.dump();
  esamp::embed::WordPieceTokenizer::parse(file, "seed");
  std::vector<std::uint8_t> out(file.begin(), file.end());
  out.push_back(0);
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-folder>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  try {
    for (const char* folder : {"safetensors", "tokenizer_json"})
      std::filesystem::create_directories(root / folder);
    const auto st = [&](const char* name, const std::vector<Tensor>& tensors) {
      esamp::detail::write_file_atomically((root / "safetensors" / name).string(),
                                           safetensors(tensors));
    };
    st("f32_two", {{"a", "F32", {2, 3}, 4}, {"b", "F32", {2}, 4}});
    st("mixed_dtypes", {{"h", "F16", {2, 2}, 2},
                        {"n", "I64", {3}, 8},
                        {"m", "BOOL", {1}, 1},
                        {"w", "BF16", {1, 2}, 2},
                        {"d", "F64", {1}, 8}});
    st("scalar_and_empty", {{"s", "F32", {}, 4}, {"e", "F32", {0, 4}, 4}, {"u", "U8", {3}, 1}});

    const auto tj = [&](const char* name, std::vector<std::uint8_t> bytes) {
      esamp::detail::write_file_atomically((root / "tokenizer_json" / name).string(), bytes);
    };
    tj("bert_lowercase", tokenizer_input(true, nullptr, true, true,
                                         "Playing CAF\xC3\x89 \xE4\xB8\xAD [SEP]the played!"));
    tj("cased_accents_kept",
       tokenizer_input(false, false, true, true,
                       "Caf\xC3\xA9 e\xCC\x81 i\xCC\x87 \xC4\xB0 aaaaaaaaaaaaa"));
    tj("no_cleaning", tokenizer_input(true, true, false, false,
                                      "a\x01\tb\xEF\xBF\xBD\xFF\xC3\x28 \xE2\x82 \xF0\x9F\x98\x80"
                                      "[CLS][MASK][SEP]"));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
