// The Pass@k task's model-free pieces: the estimator against counting subsets, the answer reader on
// tricky text, the end-of-answer rule, and the problems file's errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <sstream>

#include "passk.hpp"

namespace esamp::passk {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

// The share of k-subsets of n samples (the first c correct) that hold a correct one, by counting.
double pass_at_k_by_counting(int n, int c, int k) {
  long subsets = 0, passing = 0;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++subsets;
    if ((mask & ((1u << c) - 1u)) != 0) ++passing;
  }
  return static_cast<double>(passing) / static_cast<double>(subsets);
}

TEST_CASE("pass_at_k equals the share of k-subsets holding a correct sample", "[passk]") {
  const int n = GENERATE(range(1, 13));
  for (int c = 0; c <= n; ++c)
    for (int k = 1; k <= n; ++k) {
      INFO("n = " << n << ", c = " << c << ", k = " << k);
      // Products of at most 12 factors: a few ulps.
      CHECK_THAT(pass_at_k(n, c, k), WithinAbs(pass_at_k_by_counting(n, c, k), 1e-14));
    }
}

TEST_CASE("pass_at_k stays accurate where the binomials overflow", "[passk]") {
  // C(1000, 500) overflows a double; its ratio, through log-gamma, does not.
  const auto by_log_gamma = [](int n, int c, int k) {
    const double log_ratio = std::lgamma(n - c + 1) - std::lgamma(n - c - k + 1) -
                             std::lgamma(n + 1) + std::lgamma(n - k + 1);
    return 1.0 - std::exp(log_ratio);
  };
  CHECK_THAT(pass_at_k(1000, 3, 500), WithinRel(by_log_gamma(1000, 3, 500), 1e-9));
  CHECK_THAT(pass_at_k(1000, 1, 1), WithinRel(0.001, 1e-12));
  CHECK(pass_at_k(1000, 0, 500) == 0.0);
  CHECK(pass_at_k(1000, 501, 500) == 1.0);
}

TEST_CASE("pass_at_k rejects counts outside 0 <= c <= n and 1 <= k <= n", "[passk]") {
  CHECK_THROWS_WITH(pass_at_k(4, 5, 1), Contains("c = 5"));
  CHECK_THROWS_AS(pass_at_k(4, -1, 1), std::invalid_argument);
  CHECK_THROWS_AS(pass_at_k(4, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(pass_at_k(4, 1, 5), std::invalid_argument);
  CHECK_THROWS_AS(pass_at_k(0, 0, 1), std::invalid_argument);
}

TEST_CASE("read_answer reads the number after the first 'The answer is'", "[passk]") {
  using Read = std::optional<std::int64_t>;
  const std::vector<std::pair<std::string, Read>> cases = {
      {"The answer is 42.", 42},
      {" 3 + 4 = 7. The answer is 7.\n", 7},
      {"The answer is 12.\n", 12},
      {"The answer is   9", 9},
      {"The answer is 007", 7},
      {"x The answer is 10 apples", 10},
      {"The answer is 1,234.", 1234},
      {"The answer is 1,234,567 in all", 1234567},
      {"The answer is 12, 5", 12},  // ", 5": no thousands separator
      {"The answer is 1,23", 1},    // two digits after the comma
      {"The answer is 1,2345", 1},  // four digits after the comma
      {"The answer is -5.", -5},
      {"The answer is -0", 0},
      {"The answer is $30.", 30},
      {"The answer is -$3", -3},
      {"The answer is -9223372036854775808", std::numeric_limits<std::int64_t>::min()},
      {"The answer is 3. The answer is 4.", 3},  // the first occurrence only
      {"The answer is 4\n\nQ: The answer is 5", 4},
      {"The answer is seven. The answer is 7.", std::nullopt},
      {"The answer is 12.5.", std::nullopt},  // a fraction
      {"The answer is 5,000.00", std::nullopt},
      {"The answer is $-3", std::nullopt},
      {"the answer is 5", std::nullopt},  // the phrase is matched with its case
      {"The answer is", std::nullopt},
      {"The answer is -", std::nullopt},
      {"The answer is .5", std::nullopt},
      {"The answer is 99999999999999999999", std::nullopt},  // beyond int64
      {"So 3 + 4 = 7.", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& [text, expected] : cases) {
    INFO("text: '" << text << "'");
    CHECK(read_answer(text) == expected);
  }
}

TEST_CASE("answer_finished: a blank line, or a newline after the answer phrase", "[passk]") {
  CHECK_FALSE(answer_finished(" 1 + 1 = 2."));
  CHECK_FALSE(answer_finished(" 1 + 1 = 2. The answer is 2."));
  CHECK_FALSE(answer_finished(" 1 + 1 = 2.\nSo"));  // a newline before the answer phrase
  CHECK(answer_finished(" 1 + 1 = 2. The answer is 2.\n"));
  CHECK(answer_finished(" 1 + 1 = 2.\n\n"));
  CHECK(answer_finished(" The answer is 2. Then\nQ"));
}

TEST_CASE("the built-in few-shot answers read as their own results", "[passk]") {
  std::vector<std::int64_t> read;
  std::string_view rest = kFewShotPrefix;
  for (std::size_t end; (end = rest.find("\n\n")) != std::string_view::npos;) {
    const std::string_view example = rest.substr(0, end + 2);
    const std::string_view answer = example.substr(example.find("\nA:") + 3);
    CHECK(answer_finished(answer));
    CHECK_FALSE(answer_finished(answer.substr(0, answer.find('\n'))));
    read.push_back(read_answer(answer).value_or(-1));
    rest.remove_prefix(end + 2);
  }
  CHECK(rest.empty());
  CHECK(read == std::vector<std::int64_t>{5, 7, 9, 1});
  CHECK(problem_prompt("P\n\n", "How many?") == "P\n\nQ: How many?\nA:");
}

std::vector<Problem> read_text(const std::string& text) {
  std::istringstream in(text);
  return read_problems(in, "set.jsonl");
}

TEST_CASE("read_problems reads prompt and answer, skipping blank lines", "[passk]") {
  const std::vector<Problem> problems = read_text(
      "{\"prompt\": \"Ana has 3 pens.\", \"answer\": 3, \"steps\": 2}\r\n"
      "\n"
      "  \n"
      "{\"answer\": \"-12\", \"prompt\": \"B\"}\n"
      "{\"prompt\": \"C\", \"answer\": 9223372036854775807}");
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].prompt == "Ana has 3 pens.");
  CHECK(problems[0].answer == 3);
  CHECK(problems[1].prompt == "B");
  CHECK(problems[1].answer == -12);
  CHECK(problems[2].answer == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("read_problems names the line and the field that are wrong", "[passk]") {
  const std::string good = "{\"prompt\": \"a\", \"answer\": 1}\n\n";  // lines 1 and 2
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "set.jsonl:3: not valid JSON"},
      {"{\"prompt\": \"a\", \"answer\": 1", "set.jsonl:3: not valid JSON"},
      {"[1, 2]", "set.jsonl:3: expected a JSON object"},
      {"{\"answer\": 3}", "set.jsonl:3: no \"prompt\" field"},
      {"{\"prompt\": 3, \"answer\": 3}", "set.jsonl:3: \"prompt\" is 3, expected a string"},
      {"{\"prompt\": \"\", \"answer\": 3}", "set.jsonl:3: \"prompt\" is empty"},
      {"{\"prompt\": \"a\"}", "set.jsonl:3: no \"answer\" field"},
      {"{\"prompt\": \"a\", \"answer\": 1.5}",
       "set.jsonl:3: \"answer\" is 1.5, expected an integer"},
      {"{\"prompt\": \"a\", \"answer\": \"1,000\"}", "set.jsonl:3: \"answer\" is \"1,000\""},
      {"{\"prompt\": \"a\", \"answer\": \"\"}", "set.jsonl:3: \"answer\" is \"\""},
      {"{\"prompt\": \"a\", \"answer\": null}", "set.jsonl:3: \"answer\" is null"},
      {"{\"prompt\": \"a\", \"answer\": 9223372036854775808}",
       "set.jsonl:3: \"answer\" is 9223372036854775808"},
  };
  for (const auto& [line, message] : cases) {
    INFO("line: " << line);
    CHECK_THROWS_WITH(read_text(good + line + "\n" + good), Contains(message));
  }
  CHECK_THROWS_WITH(read_text(""), Contains("set.jsonl: holds no problem"));
  CHECK_THROWS_WITH(read_text("\n \n"), Contains("set.jsonl: holds no problem"));
  CHECK_THROWS_WITH(read_problems_file("/nonexistent/set.jsonl"),
                    Contains("/nonexistent/set.jsonl: the problems file cannot be opened"));
}

}  // namespace
}  // namespace esamp::passk
