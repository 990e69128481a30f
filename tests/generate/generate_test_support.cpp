// The JSON reader of the --json tests.
#include "generate_test_support.hpp"

#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace esamp::generation::test {
namespace {

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : text_(text) {}

  JsonValue document() {
    JsonValue value = read_value();
    skip_space();
    if (at_ != text_.size()) fail_here("text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail_here(const std::string& what) const {
    throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(at_) + ": '" +
                             text_.substr(at_, 40) + "'");
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  void expect(char c) {
    skip_space();
    if (at_ >= text_.size() || text_[at_] != c) fail_here(std::string("expected '") + c + "'");
    ++at_;
  }
  bool consume(const std::string& word) {
    if (text_.compare(at_, word.size(), word) != 0) return false;
    at_ += word.size();
    return true;
  }

  JsonValue read_value() {
    skip_space();
    if (at_ >= text_.size()) fail_here("expected a value");
    JsonValue value;
    const char c = text_[at_];
    if (c == '{') {
      value.kind = JsonValue::Kind::object;
      ++at_;
      skip_space();
      if (text_[at_] == '}') return ++at_, value;
      do {
        skip_space();
        const std::string key = read_string();
        expect(':');
        value.object[key] = read_value();
        skip_space();
      } while (at_ < text_.size() && text_[at_] == ',' && ++at_);
      expect('}');
    } else if (c == '[') {
      value.kind = JsonValue::Kind::array;
      ++at_;
      skip_space();
      if (text_[at_] == ']') return ++at_, value;
      do {
        value.array.push_back(read_value());
        skip_space();
      } while (at_ < text_.size() && text_[at_] == ',' && ++at_);
      expect(']');
    } else if (c == '"') {
      value.kind = JsonValue::Kind::string;
      value.string = read_string();
    } else if (consume("true")) {
      value.kind = JsonValue::Kind::boolean;
      value.boolean = true;
    } else if (consume("false")) {
      value.kind = JsonValue::Kind::boolean;
    } else if (consume("null")) {
      value.kind = JsonValue::Kind::null;
    } else {
      value.kind = JsonValue::Kind::number;
      const std::size_t start = at_;
      if (text_[at_] == '-') ++at_;
      if (at_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[at_])))
        fail_here("expected a value");
      while (at_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[at_])) ||
                                    std::string(".eE+-").find(text_[at_]) != std::string::npos))
        ++at_;
      std::size_t used = 0;
      value.number = std::stod(text_.substr(start, at_ - start), &used);
      if (used != at_ - start) fail_here("a malformed number");
    }
    return value;
  }

  // A string's bytes; \u escapes of the Basic Multilingual Plane become UTF-8.
  std::string read_string() {
    if (at_ >= text_.size() || text_[at_] != '"') fail_here("expected a string");
    ++at_;
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      const auto c = static_cast<unsigned char>(text_[at_++]);
      if (c < 0x20) fail_here("a control character inside a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (at_ >= text_.size()) fail_here("an unfinished escape");
      const char e = text_[at_++];
      const std::string simple = "\"\\/bfnrt", meaning = "\"\\/\b\f\n\r\t";
      if (simple.find(e) != std::string::npos) {
        out += meaning[simple.find(e)];
      } else if (e == 'u' && at_ + 4 <= text_.size()) {
        const auto code = static_cast<unsigned>(std::stoul(text_.substr(at_, 4), nullptr, 16));
        at_ += 4;
        if (code < 0x80) {
          out += static_cast<char>(code);
        } else if (code < 0x800) {
          out += static_cast<char>(0xc0 | (code >> 6));
          out += static_cast<char>(0x80 | (code & 0x3f));
        } else {
          out += static_cast<char>(0xe0 | (code >> 12));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
          out += static_cast<char>(0x80 | (code & 0x3f));
        }
      } else {
        fail_here("an unknown escape");
      }
    }
    if (at_ >= text_.size()) fail_here("an unterminated string");
    ++at_;
    return out;
  }

  const std::string& text_;
  std::size_t at_ = 0;
};

}  // namespace

const JsonValue& JsonValue::operator[](const std::string& key) const {
  const auto found = object.find(key);
  if (kind != Kind::object || found == object.end())
    throw std::runtime_error("JSON: no member '" + key + "'");
  return found->second;
}

JsonValue parse_json(const std::string& text) { return JsonReader(text).document(); }

}  // namespace esamp::generation::test
