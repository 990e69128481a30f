// The Pass@k task's pieces that need no model (DESIGN.md §5, "Pass@k"): the unbiased estimator,
// the answer read from a sample, the end of a sample's answer, and the problems file.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace esamp::passk {

// The unbiased Pass@k of a problem with c correct among n samples: the chance that k samples drawn
// without replacement hold at least one correct, 1 - C(n-c, k) / C(n, k), as the product
// 1 - Π_{i=n-c+1..n} (1 - k/i) (no binomial is formed, so no overflow). Needs 0 <= c <= n and
// 1 <= k <= n.
double pass_at_k(int n, int c, int k);

// The phrase an answer follows, as the few-shot prompt writes it.
inline constexpr std::string_view kAnswerPhrase = "The answer is";

// The integer a sample gives as its answer. Only the first occurrence of "The answer is" counts;
// after it: spaces, an optional '-', an optional '$', then digits, where a ',' counts as a
// thousands separator only when exactly three digits follow it ("1,234" = 1234; "12, 5" = 12).
// The number ends at the first other character; a trailing '.' ends the sentence, but a '.'
// followed by a digit makes a fraction, which is no integer answer. No answer (nullopt): the
// phrase is missing, no digit follows it, a fraction, or a value outside int64.
std::optional<std::int64_t> read_answer(std::string_view text);

// Whether a sample has given its answer and can stop: it holds a blank line ("\n\n", where the
// few-shot answers end) or a newline after its first "The answer is".
bool answer_finished(std::string_view text);

// The few-shot examples every problem follows by default, in the wording of
// bench/passk/make_problems.py's default (add-subtract) problems: short one-line workings that end
// with the answer sentence, each example closed by a blank line.
inline constexpr std::string_view kFewShotPrefix =
    "Q: Sara has 4 apples. She buys 3 more. She eats 2 of them. How many apples does Sara have "
    "now?\n"
    "A: 4 + 3 = 7. 7 - 2 = 5. The answer is 5.\n\n"
    "Q: Max has 6 marbles. He loses 4 of them. Then he gets 5 more from Ana. How many marbles does "
    "Max have in the end?\n"
    "A: 6 - 4 = 2. 2 + 5 = 7. The answer is 7.\n\n"
    "Q: There are 2 books on Lily's desk. She finds 6 more books. Tom gives her 1 more book. How "
    "many books does Lily have now?\n"
    "A: 2 + 6 = 8. 8 + 1 = 9. The answer is 9.\n\n"
    "Q: Sam starts with 9 stickers. He gives 3 stickers to Zoe. He sells 5 stickers. How many "
    "stickers does Sam have now?\n"
    "A: 9 - 3 = 6. 6 - 5 = 1. The answer is 1.\n\n";

// What the model continues: the prefix, then "Q: <question>\nA:".
std::string problem_prompt(std::string_view prefix, std::string_view question);

struct Problem {
  std::string prompt;  // the question; the program puts the few-shot prefix before it
  std::int64_t answer = 0;
};

// Problems from JSON Lines: one object per non-blank line with "prompt" (a string) and "answer"
// (an integer, or a string of an optional '-' and digits); other fields are ignored. A malformed
// line is a std::runtime_error naming `source`, the line number and the field.
std::vector<Problem> read_problems(std::istream& in, std::string_view source);
std::vector<Problem> read_problems_file(const std::string& path);

}  // namespace esamp::passk
