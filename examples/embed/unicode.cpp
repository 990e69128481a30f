#include "unicode.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace esamp::embed::unicode {
namespace {

struct CodeRange {
  char32_t first, last;
};
struct CombiningRange {
  char32_t first, last;
  std::uint8_t combining_class;
};
struct Decomposition {
  char32_t code;
  std::uint16_t offset, length;
};
struct LowercaseMapping {
  char32_t code, first, second;
};

#include "unicode_tables.inc"

template <class Range, std::size_t N>
const Range* find_range(const Range (&table)[N], char32_t c) {
  const Range* it =
      std::upper_bound(std::begin(table), std::end(table), c,
                       [](char32_t value, const Range& r) { return value < r.first; });
  if (it == std::begin(table)) return nullptr;
  --it;
  return c <= it->last ? it : nullptr;
}

template <class Entry, std::size_t N>
const Entry* find_code(const Entry (&table)[N], char32_t c) {
  const Entry* it = std::lower_bound(std::begin(table), std::end(table), c,
                                     [](const Entry& e, char32_t value) { return e.code < value; });
  return it != std::end(table) && it->code == c ? it : nullptr;
}

// Hangul syllable decomposition constants (Unicode chapter 3.12).
constexpr char32_t kHangulFirst = 0xAC00, kLeadFirst = 0x1100, kVowelFirst = 0x1161,
                   kTrailFirst = 0x11A7;
constexpr char32_t kVowelCount = 21, kTrailCount = 28, kSyllableCount = 11172;

}  // namespace

const char* version() { return kUnicodeVersion; }

bool is_other(char32_t c) { return find_range(kOtherRanges, c) != nullptr; }

bool is_punctuation(char32_t c) {
  const bool ascii_punctuation = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) ||
                                 (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return ascii_punctuation || find_range(kPunctuationRanges, c) != nullptr;
}

bool is_nonspacing_mark(char32_t c) { return find_range(kNonspacingMarkRanges, c) != nullptr; }

bool is_whitespace(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int combining_class(char32_t c) {
  const CombiningRange* r = find_range(kCombiningRanges, c);
  return r == nullptr ? 0 : r->combining_class;
}

void append_decomposition(char32_t c, std::u32string& out) {
  if (c >= kHangulFirst && c < kHangulFirst + kSyllableCount) {
    const char32_t index = c - kHangulFirst;
    out.push_back(kLeadFirst + index / (kVowelCount * kTrailCount));
    out.push_back(kVowelFirst + (index % (kVowelCount * kTrailCount)) / kTrailCount);
    if (index % kTrailCount != 0) out.push_back(kTrailFirst + index % kTrailCount);
    return;
  }
  const Decomposition* d = find_code(kDecompositions, c);
  if (d == nullptr) {
    out.push_back(c);
    return;
  }
  out.append(kDecompositionPool + d->offset, d->length);
}

void reorder_marks(std::u32string& text) {
  auto by_class = [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); };
  for (auto it = text.begin(); it != text.end();) {
    if (combining_class(*it) == 0) {
      ++it;
      continue;
    }
    auto end = std::find_if(it, text.end(), [](char32_t c) { return combining_class(c) == 0; });
    std::stable_sort(it, end, by_class);
    it = end;
  }
}

void append_lowercase(char32_t c, std::u32string& out) {
  const LowercaseMapping* m = find_code(kLowercase, c);
  if (m == nullptr) {
    out.push_back(c);
    return;
  }
  out.push_back(m->first);
  if (m->second != 0) out.push_back(m->second);
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    int length = 0;
    char32_t code = 0;
    char32_t min_code = 0;
    if (byte < 0x80) {
      out.push_back(byte);
      ++i;
      continue;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2, code = byte & 0x1F, min_code = 0x80;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3, code = byte & 0x0F, min_code = 0x800;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4, code = byte & 0x07, min_code = 0x10000;
    }
    bool valid = length != 0 && i + length <= text.size();
    for (int k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    valid = valid && code >= min_code && code < 0x110000 && !(code >= 0xD800 && code <= 0xDFFF);
    if (valid) {
      out.push_back(code);
      i += length;
    } else {
      out.push_back(0xFFFD);
      ++i;
    }
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace esamp::embed::unicode
