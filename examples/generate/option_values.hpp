// Value parsers of the table-driven command lines (esamp-generate, esamp-eval): each throws a
// UsageError naming the option and the value, which the programs turn into exit status 2.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace esamp::generation {

// A bad option or value; the message names both.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void usage_error(fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

// The whole of `text` as a number, or UsageError naming the option and the value.
template <class Number>
Number parse_number(std::string_view option, std::string_view text, std::string_view expected) {
  Number value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size())
    usage_error("{} '{}': expected {}", option, text, expected);
  return value;
}

inline int parse_int(std::string_view option, std::string_view text, int min, int max) {
  const std::string expected = fmt::format("an integer in [{}, {}]", min, max);
  const int value = parse_number<int>(option, text, expected);
  if (value < min || value > max) usage_error("{} {}: expected {}", option, text, expected);
  return value;
}

// A finite float in [min, max], or in (min, max] when min_exclusive.
inline float parse_float(std::string_view option, std::string_view text, float min, float max,
                         bool min_exclusive = false) {
  const std::string expected =
      fmt::format("a number in {}{}, {}]", min_exclusive ? "(" : "[", min, max);
  const float value = parse_number<float>(option, text, expected);
  if (!std::isfinite(value) || value < min || value > max || (min_exclusive && value == min))
    usage_error("{} {}: expected {}", option, text, expected);
  return value;
}

// One of the named `choices`.
template <class Enum>
Enum parse_choice(std::string_view option, std::string_view text,
                  std::initializer_list<std::pair<std::string_view, Enum>> choices) {
  std::string expected;
  for (const auto& [choice_name, value] : choices) {
    if (text == choice_name) return value;
    expected += fmt::format("{}{}", expected.empty() ? "" : " or ", choice_name);
  }
  usage_error("{} '{}': expected {}", option, text, expected);
}

// The non-blank lines of a prompts file (CRLF tolerated); an unreadable or empty file is an error.
inline std::vector<std::string> read_prompts(std::string_view option, const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error("{} {}: the file cannot be opened", option, path);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) usage_error("{} {}: the file holds no prompt", option, path);
  return prompts;
}

}  // namespace esamp::generation
