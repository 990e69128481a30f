#include "wordpiece.hpp"

#include <algorithm>
#include <cstdint>
#include <esamp/error.hpp>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "unicode.hpp"

namespace esamp::embed {
namespace {

using nlohmann::json;

// `object`[`key`], which must exist and be of `type`; `where` names the object in the message.
const json& field(const json& object, const char* key, json::value_t type,
                  const std::string& where) {
  if (!object.is_object()) fail("{}: expected an object", where);
  auto it = object.find(key);
  if (it == object.end()) fail("{}.{}: missing", where, key);
  const bool matches = it->type() == type || (type == json::value_t::number_integer &&
                                              it->type() == json::value_t::number_unsigned);
  if (!matches)
    fail("{}.{}: is a {}, expected a {}", where, key, it->type_name(), json(type).type_name());
  return *it;
}

bool flag(const json& object, const char* key, const std::string& where) {
  return field(object, key, json::value_t::boolean, where).get<bool>();
}

const std::string& text(const json& object, const char* key, const std::string& where) {
  return field(object, key, json::value_t::string, where).get_ref<const std::string&>();
}

void expect_type(const json& object, const char* type, const std::string& where) {
  const std::string& seen = text(object, "type", where);
  if (seen != type) fail("{}.type = \"{}\": only \"{}\" is supported", where, seen, type);
}

int int_field(const json& object, const char* key, const std::string& where) {
  const json& value = field(object, key, json::value_t::number_integer, where);
  const auto n = value.get<std::int64_t>();
  if (n < 0 || n > std::numeric_limits<int>::max()) fail("{}.{} = {}: out of range", where, key, n);
  return static_cast<int>(n);
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot be opened", path);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in.good() && !in.eof()) fail("{}: read failed", path);
  return parse(content.str(), path);
}

WordPieceTokenizer WordPieceTokenizer::parse(std::string_view json_text,
                                             const std::string& file_name) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file_name, e.what());
  }
  WordPieceTokenizer t;

  const std::string model_where = file_name + ": model";
  const json& model = field(root, "model", json::value_t::object, file_name);
  expect_type(model, "WordPiece", model_where);
  for (const auto& [token, id] :
       field(model, "vocab", json::value_t::object, model_where).items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > std::numeric_limits<int>::max())
      fail("{}.vocab[\"{}\"] = {}: expected a non-negative integer id", model_where, token,
           id.dump());
    t.vocab_.emplace(token, id.get<int>());
  }
  const std::string& unk = text(model, "unk_token", model_where);
  auto unk_it = t.vocab_.find(unk);
  if (unk_it == t.vocab_.end())
    fail("{}.unk_token \"{}\": not in the vocabulary", model_where, unk);
  t.unk_id_ = unk_it->second;
  t.continuation_prefix_ = text(model, "continuing_subword_prefix", model_where);
  t.max_word_chars_ =
      static_cast<std::size_t>(int_field(model, "max_input_chars_per_word", model_where));

  const std::string norm_where = file_name + ": normalizer";
  const json& norm = field(root, "normalizer", json::value_t::object, file_name);
  expect_type(norm, "BertNormalizer", norm_where);
  t.clean_text_ = flag(norm, "clean_text", norm_where);
  t.cjk_spacing_ = flag(norm, "handle_chinese_chars", norm_where);
  t.lowercase_ = flag(norm, "lowercase", norm_where);
  const auto strip = norm.find("strip_accents");
  if (strip == norm.end()) fail("{}.strip_accents: missing", norm_where);
  if (!strip->is_null() && !strip->is_boolean())
    fail("{}.strip_accents: is a {}, expected a boolean or null", norm_where, strip->type_name());
  t.strip_accents_ =
      strip->is_null() ? t.lowercase_ : strip->get<bool>();  // null follows lowercase

  expect_type(field(root, "pre_tokenizer", json::value_t::object, file_name), "BertPreTokenizer",
              file_name + ": pre_tokenizer");

  // [CLS] A [SEP]: the TemplateProcessing this model's file holds.
  const std::string post_where = file_name + ": post_processor";
  const json& post = field(root, "post_processor", json::value_t::object, file_name);
  expect_type(post, "TemplateProcessing", post_where);
  const json& single = field(post, "single", json::value_t::array, post_where);
  const json& specials = field(post, "special_tokens", json::value_t::object, post_where);
  auto special_id = [&](const json& piece, std::size_t index) {
    const std::string where = fmt::format("{}.single[{}]", post_where, index);
    const std::string& name =
        text(field(piece, "SpecialToken", json::value_t::object, where), "id", where);
    const std::string special_where = post_where + ".special_tokens." + name;
    const json& ids = field(field(specials, name.c_str(), json::value_t::object, post_where), "ids",
                            json::value_t::array, special_where);
    // A JSON integer above INT64_MAX reads as negative here, so it is refused too.
    const std::int64_t id =
        ids.size() == 1 && ids[0].is_number_integer() ? ids[0].get<std::int64_t>() : -1;
    if (id < 0 || id > std::numeric_limits<int>::max())
      fail("{}.ids = {}: expected one non-negative integer id", special_where, ids.dump());
    return static_cast<int>(id);
  };
  if (single.size() != 3 || !single[1].contains("Sequence"))
    fail("{}.single: expected [SpecialToken, Sequence, SpecialToken]", post_where);
  t.cls_id_ = special_id(single[0], 0);
  t.sep_id_ = special_id(single[2], 2);

  const json& added = field(root, "added_tokens", json::value_t::array, file_name);
  for (std::size_t i = 0; i < added.size(); ++i) {
    const std::string where = fmt::format("{}: added_tokens[{}]", file_name, i);
    if (flag(added[i], "normalized", where) || flag(added[i], "lstrip", where) ||
        flag(added[i], "rstrip", where) || flag(added[i], "single_word", where))
      fail("{}: only tokens matched as-is in the raw text are supported", where);
    const std::string& content = text(added[i], "content", where);
    if (content.empty()) fail("{}.content: empty", where);
    t.special_tokens_.emplace_back(content, int_field(added[i], "id", where));
  }
  for (const auto& [token, id] : t.vocab_) t.max_id_ = std::max(t.max_id_, id);
  for (const auto& [token, id] : t.special_tokens_) t.max_id_ = std::max(t.max_id_, id);
  t.max_id_ = std::max({t.max_id_, t.cls_id_, t.sep_id_});
  std::stable_sort(t.special_tokens_.begin(), t.special_tokens_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

std::u32string WordPieceTokenizer::normalize_chars(std::string_view raw) const {
  std::u32string text;
  for (char32_t c : unicode::decode_utf8(raw)) {
    const bool control = c != '\t' && c != '\n' && c != '\r' && unicode::is_other(c);
    if (clean_text_ && (c == 0 || c == 0xFFFD || control)) continue;
    if (clean_text_ && unicode::is_whitespace(c)) c = ' ';
    if (cjk_spacing_ && unicode::is_cjk_ideograph(c)) {
      text.push_back(' ');
      text.push_back(c);
      text.push_back(' ');
    } else {
      text.push_back(c);
    }
  }
  if (strip_accents_) {
    std::u32string decomposed;
    decomposed.reserve(text.size());
    for (char32_t c : text) unicode::append_decomposition(c, decomposed);
    unicode::reorder_marks(decomposed);
    text.clear();
    for (char32_t c : decomposed)
      if (!unicode::is_nonspacing_mark(c)) text.push_back(c);
  }
  if (lowercase_) {
    std::u32string lower;
    lower.reserve(text.size());
    for (char32_t c : text) unicode::append_lowercase(c, lower);
    text.swap(lower);
  }
  return text;
}

std::string WordPieceTokenizer::normalize(std::string_view text) const {
  std::string out;
  for (char32_t c : normalize_chars(text)) unicode::append_utf8(c, out);
  return out;
}

void WordPieceTokenizer::append_word(const std::u32string& word, std::vector<int>& ids) const {
  if (word.size() > max_word_chars_) {
    ids.push_back(unk_id_);
    return;
  }
  // The word in UTF-8 once, with each character's byte offset (and the end's): a candidate piece
  // is then one substring, not its characters encoded again.
  std::string utf8;
  std::vector<std::size_t> at;
  at.reserve(word.size() + 1);
  for (const char32_t c : word) {
    at.push_back(utf8.size());
    unicode::append_utf8(c, utf8);
  }
  at.push_back(utf8.size());
  const std::size_t first_id = ids.size();
  std::string piece;
  for (std::size_t start = 0; start < word.size();) {
    std::size_t end = word.size();
    int found = -1;
    for (; end > start; --end) {
      piece.clear();
      if (start > 0) piece += continuation_prefix_;
      piece.append(utf8, at[start], at[end] - at[start]);
      auto it = vocab_.find(piece);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // a word with any piece missing from the vocabulary is one [UNK]
      ids.resize(first_id);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
}

void WordPieceTokenizer::append_segment(std::string_view raw, std::vector<int>& ids) const {
  const std::u32string text = normalize_chars(raw);
  std::u32string word;
  auto flush = [&] {
    if (!word.empty()) append_word(word, ids);
    word.clear();
  };
  for (char32_t c : text) {
    if (unicode::is_whitespace(c)) {
      flush();
    } else if (unicode::is_punctuation(c)) {
      flush();
      word.push_back(c);
      flush();
    } else {
      word.push_back(c);
    }
  }
  flush();
}

std::vector<int> WordPieceTokenizer::encode(std::string_view text, std::size_t max_tokens) const {
  if (max_tokens < 2) fail("WordPieceTokenizer::encode: max_tokens = {}: must be >= 2", max_tokens);
  std::vector<int> ids{cls_id_};
  std::size_t segment_start = 0;
  for (std::size_t i = 0; i < text.size();) {
    auto match = std::find_if(special_tokens_.begin(), special_tokens_.end(), [&](const auto& s) {
      return text.compare(i, s.first.size(), s.first) == 0;
    });
    if (match == special_tokens_.end()) {
      ++i;
      continue;
    }
    append_segment(text.substr(segment_start, i - segment_start), ids);
    ids.push_back(match->second);
    i += match->first.size();
    segment_start = i;
  }
  append_segment(text.substr(segment_start), ids);
  if (ids.size() > max_tokens - 1) ids.resize(max_tokens - 1);
  ids.push_back(sep_id_);
  return ids;
}

}  // namespace esamp::embed
