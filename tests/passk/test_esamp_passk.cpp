// esamp-passk run as a child process: a tiny run on stories260K (the records summarize to the same
// tables), its errors, and a tiny run on Gemma 3 270M when its file is in the model folder.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../model_dir.hpp"
#include "../program_run.hpp"
#include "models/model_dir.hpp"

namespace esamp::passk {
namespace {

using Catch::Matchers::Contains;
using test::Capture;
using test::file_text;
using test::run_program;

// A folder of its own under the temporary folder, for one test case's files.
std::string scratch_dir(const std::string& name) {
  const std::string dir = "/tmp/esamp-passk-test-" + name + "-" + std::to_string(getpid());
  REQUIRE(std::system(("mkdir -p " + test::shell_quoted(dir)).c_str()) == 0);
  return dir;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

const std::string kProblems =
    "{\"prompt\": \"Tom has 2 cats. He finds 1 more. How many cats does Tom have now?\", "
    "\"answer\": 3}\n"
    "{\"prompt\": \"Lily has 6 toys. She gives 2 to Ben. How many toys are left?\", "
    "\"answer\": 4}\n";

TEST_CASE("esamp-passk runs a tiny set on stories260K, and its records summarize the same",
          "[passk][llama_cpp]") {
  const std::string dir = scratch_dir("smoke");
  write_file(dir + "/problems.jsonl", kProblems);
  write_file(dir + "/prefix.txt", "Q: Sam has 1 ball. How many balls?\nA: The answer is 1.\n\n");
  const std::vector<std::string> common = {"--bootstrap", "50", "--csv"};
  std::vector<std::string> arguments = {"--model",
                                        test::model_file("stories260K.gguf"),
                                        "--problems",
                                        dir + "/problems.jsonl",
                                        "--prefix-file",
                                        dir + "/prefix.txt",
                                        "--samples",
                                        "2",
                                        "--tokens",
                                        "6",
                                        "--betas",
                                        "0.5",
                                        "--temperatures",
                                        "0.7,1",
                                        "--min-ps",
                                        "0.1,0.2",
                                        "--threads",
                                        "1",
                                        "--quiet",
                                        "--records",
                                        dir + "/records.jsonl",
                                        "--bootstrap",
                                        "50",
                                        "--csv",
                                        dir + "/run.csv"};
  const test::ProgramRun run =
      run_program(ESAMP_PASSK_PROGRAM, arguments, Capture::standard_output);
  REQUIRE(run.exit_status == 0);
  CHECK_THAT(run.output, Contains("Pass@k over 2 problems, 2 samples each"));
  for (const char* config :
       {"esamp-b0.5-T0.7", "temperature-T0.7", "temperature-T1", "min-p-p0.1-T1", "min-p-p0.2-T1"})
    CHECK_THAT(run.output, Contains(config));
  CHECK_THAT(run.output, Contains("esamp - baseline at matched Pass@1"));
  // One record per problem and configuration, each with its two samples' texts.
  const std::string records = file_text(dir + "/records.jsonl");
  CHECK(line_count(records) == 10);
  CHECK_THAT(records, Contains("\"config\":\"min-p-p0.2-T1\"") && Contains("\"texts\":["));
  const std::string csv = file_text(dir + "/run.csv");
  CHECK(csv.rfind("table,config,baseline,k,estimate,lo,hi,problems\n", 0) == 0);
  CHECK_THAT(csv, Contains("pass_at_k,esamp-b0.5-T0.7,,2,") &&
                      Contains("matched_delta_pass_at_k,esamp-b0.5-T0.7,temperature,2,"));

  const test::ProgramRun summary = run_program(
      ESAMP_PASSK_PROGRAM,
      {"--summarize", dir + "/records.jsonl", "--bootstrap", "50", "--csv", dir + "/summary.csv"},
      Capture::standard_output);
  REQUIRE(summary.exit_status == 0);
  CHECK(summary.output == run.output);
  CHECK(file_text(dir + "/summary.csv") == csv);

  // The same summary as JSON, every k.
  const test::ProgramRun json = run_program(
      ESAMP_PASSK_PROGRAM, {"--summarize", dir + "/records.jsonl", "--bootstrap", "50", "--json"},
      Capture::standard_output);
  REQUIRE(json.exit_status == 0);
  const nlohmann::json summary_json = nlohmann::json::parse(json.output);
  CHECK(summary_json.at("problems") == 2);
  CHECK(summary_json.at("samples") == 2);
  REQUIRE(summary_json.at("configs").size() == 5);
  CHECK(summary_json.at("configs")[0].at("config") == "esamp-b0.5-T0.7");
  CHECK(summary_json.at("configs")[0].at("pass_at_k").size() == 2);
  CHECK(summary_json.at("matched_pass_at_1").size() == 2);  // vs temperature, vs min-p

  // A partial run (the last record cut off) summarizes the problems every configuration finished.
  write_file(dir + "/partial.jsonl",
             records.substr(0, records.rfind('\n', records.size() - 2) + 1));
  const test::ProgramRun partial = run_program(
      ESAMP_PASSK_PROGRAM, {"--summarize", dir + "/partial.jsonl"}, Capture::standard_output);
  REQUIRE(partial.exit_status == 0);
  CHECK_THAT(partial.output, Contains("Pass@k over 1 problems"));
}

TEST_CASE("esamp-passk names the line and field of a malformed problem, and bad options",
          "[passk][llama_cpp]") {
  const std::string dir = scratch_dir("errors");
  write_file(dir + "/bad.jsonl", "{\"prompt\": \"a\", \"answer\": 1}\n{\"prompt\": \"b\"}\n");
  const test::ProgramRun bad = run_program(
      ESAMP_PASSK_PROGRAM,
      {"--model", test::model_file("stories260K.gguf"), "--problems", dir + "/bad.jsonl"},
      Capture::standard_error);
  CHECK(bad.exit_status == 1);
  CHECK_THAT(bad.output, Contains("bad.jsonl:2: no \"answer\" field"));
  const test::ProgramRun option =
      run_program(ESAMP_PASSK_PROGRAM, {"--min-ps", "0.1,x"}, Capture::standard_error);
  CHECK(option.exit_status == 2);
  CHECK_THAT(option.output, Contains("--min-ps 'x'"));
  const test::ProgramRun none =
      run_program(ESAMP_PASSK_PROGRAM,
                  {"--problems", dir + "/bad.jsonl", "--betas=", "--temperatures=", "--min-ps="},
                  Capture::standard_error);
  CHECK(none.exit_status == 2);
  CHECK_THAT(none.output, Contains("no configuration"));
  write_file(dir + "/records.jsonl", "{\"config\": \"x\"}\n");
  const test::ProgramRun records = run_program(
      ESAMP_PASSK_PROGRAM, {"--summarize", dir + "/records.jsonl"}, Capture::standard_error);
  CHECK(records.exit_status == 1);
  CHECK_THAT(records.output, Contains("records.jsonl:1:"));
}

TEST_CASE("esamp-passk on Gemma 3 270M: samples follow the few-shot answer format",
          "[passk][llama_cpp][gemma]") {
  const std::string model = models::model_dir() + "/gemma-3-270m-q4_k_m.gguf";
  if (!std::ifstream(model)) {
    WARN("SKIPPED: no " << model << " (scripts/fetch-gemma, or ESAMP_MODEL_DIR)");
    return;
  }
  const std::string dir = scratch_dir("gemma");
  write_file(dir + "/problems.jsonl", kProblems);
  const test::ProgramRun run = run_program(
      ESAMP_PASSK_PROGRAM,
      {"--model", model, "--problems", dir + "/problems.jsonl", "--samples", "2", "--tokens", "40",
       "--betas", "0.5", "--temperatures", "0.7", "--min-ps=", "--quiet", "--bootstrap", "20",
       "--records", dir + "/records.jsonl"},
      Capture::standard_output);
  REQUIRE(run.exit_status == 0);
  CHECK_THAT(run.output, Contains("Pass@k over 2 problems, 2 samples each"));
  const std::string records = file_text(dir + "/records.jsonl");
  CHECK(line_count(records) == 4);
  // The built-in few-shot prompt leads a real model to its answer sentence, and each sample ends
  // there: at its answer line or at a blank line, before another question.
  CHECK_THAT(records, Contains("The answer is"));
  std::istringstream lines(records);
  std::size_t samples = 0;
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    for (const nlohmann::json& text : record.at("texts")) {
      const std::string sample = text.get<std::string>();
      INFO("sample: " << sample);
      CHECK(sample.find("\nQ:") == std::string::npos);
      const std::size_t blank = sample.find("\n\n");
      CHECK((blank == std::string::npos || blank + 2 == sample.size()));
      ++samples;
    }
  }
  CHECK(samples == 8);
}

}  // namespace
}  // namespace esamp::passk
