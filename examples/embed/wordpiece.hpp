// The BERT WordPiece tokenizer of a tokenizer.json (HF `tokenizers` format): special tokens split
// out of the raw text, BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP].
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "export.hpp"

namespace esamp::embed {

class ESAMP_EMBED_API WordPieceTokenizer {
 public:
  // Reads `path`; a file that is not a BERT WordPiece tokenizer.json is an esamp::Error naming the
  // field that differs.
  static WordPieceTokenizer load(const std::string& path);
  // `json_text` is a tokenizer.json's content; `file_name` names it in error messages.
  static WordPieceTokenizer parse(std::string_view json_text, const std::string& file_name);

  // [CLS], the ids of `text`, [SEP]: at most `max_tokens` (>= 2) ids, the text's cut at the end.
  std::vector<int> encode(std::string_view text, std::size_t max_tokens) const;
  // BertNormalizer alone, for the checks (UTF-8 in, UTF-8 out).
  std::string normalize(std::string_view text) const;
  // The largest id encode() can return.
  int max_id() const { return max_id_; }

 private:
  void append_segment(std::string_view raw, std::vector<int>& ids) const;
  void append_word(const std::u32string& word, std::vector<int>& ids) const;
  std::u32string normalize_chars(std::string_view text) const;

  std::unordered_map<std::string, int> vocab_;
  std::vector<std::pair<std::string, int>>
      special_tokens_;  // matched in the raw text, longest first
  std::string continuation_prefix_ = "##";
  std::size_t max_word_chars_ = 100;
  int unk_id_ = 0, cls_id_ = 0, sep_id_ = 0, max_id_ = 0;
  bool clean_text_ = true, cjk_spacing_ = true, strip_accents_ = true, lowercase_ = true;
};

}  // namespace esamp::embed
