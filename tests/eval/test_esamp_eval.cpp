// esamp-eval run as a program: --help, bad options (exit status 2), and a tiny run on the real
// model that must be deterministic given its seeds.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "../model_dir.hpp"
#include "../program_run.hpp"
#include "../scoped_env.hpp"

namespace esamp::eval {
namespace {

using esamp::test::model_file;

using esamp::test::Capture;
using esamp::test::file_text;
using esamp::test::ProgramRun;
using esamp::test::ScopedEnv;

ProgramRun run_esamp_eval(const std::vector<std::string>& arguments, bool capture_stderr) {
  return esamp::test::run_program(
      ESAMP_EVAL_PROGRAM, arguments,
      capture_stderr ? Capture::standard_error : Capture::standard_output);
}

// The CSV without its `seconds` and `metric_seconds` columns (wall times are the one thing a rerun
// may change).
std::string without_seconds(const std::string& csv) {
  std::istringstream lines(csv);
  std::string out;
  std::vector<std::size_t> timed;  // column indices, descending
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
    if (timed.empty()) {
      for (const char* column : {"metric_seconds", "seconds"}) {
        const auto found = std::find(fields.begin(), fields.end(), column);
        REQUIRE(found != fields.end());
        timed.push_back(static_cast<std::size_t>(found - fields.begin()));
      }
      std::sort(timed.rbegin(), timed.rend());
    }
    for (const std::size_t column : timed)
      if (column < fields.size())
        fields.erase(fields.begin() + static_cast<std::ptrdiff_t>(column));
    for (const std::string& field : fields) out += field + ",";
    out += "\n";
  }
  return out;
}

// 2 prompts x 2 samples x 8 tokens, one plain, one latent and one candidates configuration.
std::vector<std::string> tiny_run(const std::string& csv, const std::string& seeds) {
  std::vector<std::string> arguments = {
      "--model", model_file("stories260K.gguf"), "--seeds", seeds, "--csv", csv, "--quiet"};
  for (const char* option : {"--prompts", "--samples"})
    arguments.insert(arguments.end(), {option, "2"});
  arguments.insert(arguments.end(), {"--tokens", "8"});
  for (const char* curve : {"t: T=1", "e: beta=1", "c: mix=candidates; min_p=0.1; beta=1"})
    arguments.insert(arguments.end(), {"--curve", curve});
  return arguments;
}

}  // namespace

TEST_CASE("esamp-eval --help lists the options, the curve syntax and the default grid") {
  const ProgramRun run = run_esamp_eval({"--help"}, false);
  CHECK(run.exit_status == 0);
  CHECK_THAT(run.output, Catch::Contains("--curve SPEC"));
  CHECK_THAT(run.output, Catch::Contains("--seeds S[,S...]"));
  CHECK_THAT(run.output, Catch::Contains("Default grid:\n  --curve 'temperature: T="));
}

TEST_CASE("esamp-eval: a bad option or value exits with status 2 and a message naming it") {
  const auto [arguments, message] = GENERATE(table<std::vector<std::string>, std::string>({
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--samples", "1"}, "--samples 1: expected an integer in [2, 4096]"},
      {{"--tokens", "x"}, "--tokens 'x': expected an integer"},
      {{"--prompts", "0"}, "--prompts 0: expected an integer in [1,"},
      {{"--seeds", "1,x"}, "--seeds 'x': expected comma-separated unsigned 64-bit integers"},
      {{"--seeds", "1,1"}, "--seeds 1,1: the seed 1 is given twice"},
      {{"--curve", "c: T=0"}, "--curve c: T 0: expected a number in (0, 100]"},
      {{"--curve", "a: T=1", "--curve", "a: T=2"}, "--curve a: two curves have this name"},
      {{"--json=yes"}, "--json takes no value ('--json=yes')"},
      {{"--csv"}, "--csv needs a value: --csv PATH"},
      {{"--model", "m.gguf", "--prompts-file", "/nonexistent/prompts.txt"},
       "--prompts-file /nonexistent/prompts.txt: the file cannot be opened"},
  }));
  CAPTURE(arguments);
  const ProgramRun run = run_esamp_eval(arguments, true);
  CHECK(run.exit_status == 2);
  CHECK_THAT(run.output, Catch::StartsWith("esamp-eval: ") && Catch::Contains(message));
}

TEST_CASE("esamp-eval: values the model rules out exit with status 2 too") {
  const auto [curve, message] = GENERATE(table<std::string, std::string>({
      {"c: rank=65", "--curve c: rank = 65: must be in [1, 64], the hidden size"},
      {"c: source=4; target=0", "--curve c: ExplorationConfig.target = (layer 0,"},
      {"c: source=5", "--curve c: ExplorationConfig.source.layer = 5: must be in [-5, 4]"},
  }));
  const ProgramRun run = run_esamp_eval(
      {"--model", model_file("stories260K.gguf"), "--quiet", "--curve", curve}, true);
  CHECK(run.exit_status == 2);
  CHECK_THAT(run.output, Catch::Contains(message));
}

TEST_CASE("a tiny esamp-eval run is deterministic given its seeds") {
  const std::string first = "esamp_eval_test_first.csv", second = "esamp_eval_test_second.csv",
                    other = "esamp_eval_test_other.csv";
  const ProgramRun a = run_esamp_eval(tiny_run(first, "0"), false);
  const ProgramRun b = run_esamp_eval(tiny_run(second, "0"), false);
  const ProgramRun c = run_esamp_eval(tiny_run(other, "7"), false);
  REQUIRE(a.exit_status == 0);
  REQUIRE(b.exit_status == 0);
  REQUIRE(c.exit_status == 0);
  const std::string csv = without_seconds(file_text(first));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 4);  // the header and three configurations
  CHECK(csv == without_seconds(file_text(second)));
  CHECK(csv != without_seconds(file_text(other)));  // the seed does reach the draws
  // The Markdown on stdout differs only in the run time line.
  CHECK_THAT(a.output, Catch::Contains("| e | T=1 beta=1 latent group |"));
  for (const std::string& path : {first, second, other}) std::remove(path.c_str());
}

TEST_CASE("esamp-eval without the sentence encoder says so and leaves the semantic columns empty") {
  const ScopedEnv no_encoder("ESAMP_EMBEDDER_DIR", "/nonexistent/esamp-embedder");
  const std::string csv = "esamp_eval_test_no_encoder.csv";
  const ProgramRun run = run_esamp_eval(tiny_run(csv, "0"), false);
  REQUIRE(run.exit_status == 0);
  CHECK_THAT(run.output,
             Catch::Contains("- semantic diversity: not measured (no sentence encoder)"));
  const std::string text = file_text(csv);
  CHECK_THAT(text, Catch::Contains(",semantic_vendi_mean,semantic_vendi_lo,semantic_vendi_hi,"
                                   "seq_rep_4_mean,"));
  CHECK_THAT(text, Catch::Contains(",relevance_mean,relevance_lo,relevance_hi\n"));
  // The last row: the six semantic fields empty, the repetition guardrails measured (they need
  // no encoder), relevance empty.
  CHECK_THAT(text, Catch::Matches("(.|\n)*,,,,,,([^,\n]+,){6},,\n"));
  std::remove(csv.c_str());
}

}  // namespace esamp::eval
