// The Pass@k task's model-free pieces: see passk.hpp.
#include "passk.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace esamp::passk {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The whole of `text` (an optional '-' and digits) as an int64, or nullopt.
std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

template <class... Args>
[[noreturn]] void line_error(std::string_view source, std::size_t line,
                             fmt::format_string<Args...> format, Args&&... args) {
  throw std::runtime_error(
      fmt::format("{}:{}: {}", source, line, fmt::format(format, std::forward<Args>(args)...)));
}

}  // namespace

double pass_at_k(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw std::invalid_argument(fmt::format(
        "pass_at_k(n = {}, c = {}, k = {}): needs 0 <= c <= n and 1 <= k <= n", n, c, k));
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  double all_wrong = 1.0;     // C(n-c, k) / C(n, k)
  for (int i = n - c + 1; i <= n; ++i) all_wrong *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - all_wrong;
}

std::optional<std::int64_t> read_answer(std::string_view text) {
  const std::size_t at = text.find(kAnswerPhrase);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + kAnswerPhrase.size();
  const std::size_t size = text.size();
  while (i < size && text[i] == ' ') ++i;
  std::string number;
  if (i < size && text[i] == '-') number += text[i++];
  if (i < size && text[i] == '$') ++i;
  if (i >= size || !is_digit(text[i])) return std::nullopt;
  while (i < size) {
    if (is_digit(text[i])) {
      number += text[i++];
    } else if (text[i] == ',' && i + 3 < size && is_digit(text[i + 1]) && is_digit(text[i + 2]) &&
               is_digit(text[i + 3]) && (i + 4 == size || !is_digit(text[i + 4]))) {
      ++i;  // a thousands separator
    } else {
      break;
    }
  }
  if (i + 1 < size && text[i] == '.' && is_digit(text[i + 1])) return std::nullopt;  // a fraction
  return parse_integer(number);
}

std::string problem_prompt(std::string_view prefix, std::string_view question) {
  return fmt::format("{}Q: {}\nA:", prefix, question);
}

bool answer_finished(std::string_view text) {
  if (text.find("\n\n") != std::string_view::npos) return true;
  const std::size_t at = text.find(kAnswerPhrase);
  return at != std::string_view::npos && text.find('\n', at) != std::string_view::npos;
}

std::vector<Problem> read_problems(std::istream& in, std::string_view source) {
  std::vector<Problem> problems;
  std::size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      line_error(source, line_number, "not valid JSON ({})", e.what());
    }
    if (!object.is_object()) line_error(source, line_number, "expected a JSON object");
    Problem problem;
    const auto prompt = object.find("prompt");
    if (prompt == object.end()) line_error(source, line_number, "no \"prompt\" field");
    if (!prompt->is_string())
      line_error(source, line_number, "\"prompt\" is {}, expected a string", prompt->dump());
    problem.prompt = prompt->get<std::string>();
    if (problem.prompt.empty()) line_error(source, line_number, "\"prompt\" is empty");
    const auto answer = object.find("answer");
    if (answer == object.end()) line_error(source, line_number, "no \"answer\" field");
    std::optional<std::int64_t> value;
    if (answer->is_number_unsigned()) {
      if (answer->get<std::uint64_t>() <=
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        value = answer->get<std::int64_t>();
    } else if (answer->is_number_integer()) {
      value = answer->get<std::int64_t>();
    } else if (answer->is_string()) {
      value = parse_integer(answer->get<std::string>());
    }
    if (!value)
      line_error(source, line_number,
                 "\"answer\" is {}, expected an integer (a JSON integer or a string of an optional "
                 "'-' and digits) within int64",
                 answer->dump());
    problem.answer = *value;
    problems.push_back(std::move(problem));
  }
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", source));
  if (problems.empty()) throw std::runtime_error(fmt::format("{}: holds no problem", source));
  return problems;
}

std::vector<Problem> read_problems_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: the problems file cannot be opened", path));
  return read_problems(in, path);
}

}  // namespace esamp::passk
