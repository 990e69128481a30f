// The table-driven command lines of esamp-generate and esamp-eval: the option table, its parser
// and help text, the value parsers (each throws a UsageError naming the option and the value) and
// the guard that turns errors into exit statuses (2 for usage, 1 for anything else).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "esamp/config.hpp"

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

// One row of a program's option table: `--name VALUE` (or a flag when value_name is empty).
template <class Options>
struct OptionSpec {
  std::string_view name;
  std::string_view value_name;  // empty for a flag
  std::string_view help;
  std::function<void(Options&, std::string_view option, const std::string& value)> apply;
};

// --prompt and --prompts-file: one of them, once.
template <class Options>
void take_prompt_option(Options& o, std::string_view option) {
  if (o.prompt_given) usage_error("{}: give one of --prompt and --prompts-file, once", option);
  o.prompt_given = true;
}

// The options every sampling program takes: the prompts, samples and tokens, the sampling filter
// and β, writing Options' prompts, prompt_given, samples, new_tokens, filter (an esamp::Filter)
// and beta.
template <class Options>
std::vector<OptionSpec<Options>> sampling_options() {
  constexpr int kMaxSamples = 4096;
  constexpr int kMaxTokens = 1 << 20;  // the model's context is the real limit, checked later
  static const std::string beta_help = fmt::format(
      "exploration strength, 0 = plain sampling through the hooks [{}]", ExplorationConfig{}.beta);
  return {
      {"--prompt", "TEXT", "the prompt [Once upon a time]",
       [](Options& o, auto option, const std::string& v) {
         take_prompt_option(o, option);
         o.prompts = {v};
       }},
      {"--prompts-file", "PATH",
       "one prompt per line (blank lines skipped), each its own group, run one after another",
       [](Options& o, auto option, const std::string& v) {
         take_prompt_option(o, option);
         o.prompts = read_prompts(option, v);
       }},
      {"--samples", "N", "samples per prompt, decoded as one batch [8]",
       [](Options& o, auto option, const std::string& v) {
         o.samples = parse_int(option, v, 1, kMaxSamples);
       }},
      {"--tokens", "N", "new tokens per sample (fewer when a sample ends) [128]",
       [](Options& o, auto option, const std::string& v) {
         o.new_tokens = parse_int(option, v, 1, kMaxTokens);
       }},
      {"--temperature", "T", "sampling temperature, 0 = greedy [1.0]",
       [](Options& o, auto option, const std::string& v) {
         o.filter.temperature = parse_float(option, v, 0.0f, 1e6f);
       }},
      {"--top-k", "K", "keep the K most likely tokens, 0 = off [0]",
       [](Options& o, auto option, const std::string& v) {
         o.filter.top_k = parse_int(option, v, 0, 1 << 30);
       }},
      {"--top-p", "P", "nucleus: smallest set with probability >= P [1.0 = off]",
       [](Options& o, auto option, const std::string& v) {
         o.filter.top_p = parse_float(option, v, 0.0f, 1.0f, /*min_exclusive=*/true);
       }},
      {"--min-p", "P", "keep tokens with probability >= P * the largest [0 = off]",
       [](Options& o, auto option, const std::string& v) {
         o.filter.min_p = parse_float(option, v, 0.0f, 1.0f);
       }},
      {"--beta", "B", beta_help,
       [](Options& o, auto option, const std::string& v) {
         o.beta = parse_float(option, v, 0.0f, 1e6f);
       }},
  };
}

// --json, --quiet and --help, writing Options' json, quiet and help.
template <class Options>
std::vector<OptionSpec<Options>> output_options() {
  return {
      {"--json", "", "machine-readable output on stdout",
       [](Options& o, auto, auto&) { o.json = true; }},
      {"--quiet", "", "only the sample texts on stdout, nothing on stderr",
       [](Options& o, auto, auto&) { o.quiet = true; }},
      {"--help", "", "this text", [](Options& o, auto, auto&) { o.help = true; }},
  };
}

// One option table from several parts, in order.
template <class Options>
std::vector<OptionSpec<Options>> joined(
    std::initializer_list<std::vector<OptionSpec<Options>>> parts) {
  std::vector<OptionSpec<Options>> table;
  for (const auto& part : parts) table.insert(table.end(), part.begin(), part.end());
  return table;
}

// Applies the command line to `options` through `table`: `--name VALUE`, `--name=VALUE`, flags.
template <class Options>
void parse_command_line(int argc, const char* const* argv,
                        const std::vector<OptionSpec<Options>>& table, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    const std::size_t equals = argument.find('=');
    const std::string_view name = argument.substr(0, equals);
    const auto spec = std::find_if(table.begin(), table.end(),
                                   [name](const OptionSpec<Options>& s) { return s.name == name; });
    if (spec == table.end()) usage_error("unknown option '{}' (see --help)", argument);
    std::string value;
    if (spec->value_name.empty()) {
      if (equals != std::string_view::npos) usage_error("{} takes no value ('{}')", name, argument);
    } else if (equals != std::string_view::npos) {
      value = argument.substr(equals + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      usage_error("{} needs a value: {} {}", name, name, spec->value_name);
    }
    spec->apply(options, name, value);
  }
}

// The "Options:" part of --help, one line per row of `table`.
template <class Options>
std::string options_help(const std::vector<OptionSpec<Options>>& table) {
  std::string text = "Options:\n";
  for (const OptionSpec<Options>& spec : table) {
    const std::string left = spec.value_name.empty()
                                 ? std::string(spec.name)
                                 : fmt::format("{} {}", spec.name, spec.value_name);
    text += fmt::format("  {:<32} {}\n", left, spec.help);
  }
  return text;
}

constexpr std::string_view kExitStatusHelp =
    "Exit status: 0 success, 1 runtime error (e.g. a model file that cannot be read), 2 bad option "
    "or value.\n";

// Runs a program's body: a UsageError exits 2, any other error 1, each with one line on stderr.
template <class Body>
int run_guarded(std::string_view program, Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    return 1;
  }
}

}  // namespace esamp::generation
