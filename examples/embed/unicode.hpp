// The character properties and mappings the BERT tokenizer needs (tables generated from Python's
// unicodedata by scripts/gen-unicode-tables), and UTF-8 decoding and encoding.
#pragma once

#include <string>
#include <string_view>

namespace esamp::embed::unicode {

// The Unicode version of the generated tables.
const char* version();

// General category Cc, Cf, Co or Cs.
bool is_other(char32_t c);
// General category P*, or ASCII punctuation (which includes the symbols $+<=>^`|~).
bool is_punctuation(char32_t c);
// General category Mn.
bool is_nonspacing_mark(char32_t c);
// The White_Space property.
bool is_whitespace(char32_t c);
// The CJK ideograph blocks that BERT surrounds with spaces.
bool is_cjk_ideograph(char32_t c);
int combining_class(char32_t c);

// Appends the canonical decomposition of `c` (itself when it has none), not yet reordered.
void append_decomposition(char32_t c, std::u32string& out);
// Canonical ordering: stable sort of each run of non-zero combining classes.
void reorder_marks(std::u32string& text);
// Appends the full lowercase mapping of `c`.
void append_lowercase(char32_t c, std::u32string& out);

// Decodes UTF-8; each byte of an invalid or truncated sequence becomes U+FFFD.
std::u32string decode_utf8(std::string_view text);
void append_utf8(char32_t c, std::string& out);

}  // namespace esamp::embed::unicode
