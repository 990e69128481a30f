// esamp-llama, run as a child process: the greedy reference, --compare, --json, exit statuses.
#include "../program_run.hpp"
#include "llama_cpp_test_support.hpp"

namespace esamp::llama_cpp::test {
namespace {

using esamp::test::Capture;
using esamp::test::ProgramRun;

ProgramRun run_esamp_llama(const std::vector<std::string>& arguments, Capture capture) {
  return esamp::test::run_program(ESAMP_LLAMA_PROGRAM, arguments, capture);
}

}  // namespace

TEST_CASE("esamp-llama prints the greedy reference at beta 0 (after llama.cpp's leading space)") {
  const std::string reference = esamp::test::file_text(model_file("stories260K.greedy.txt"));
  const ProgramRun run =
      run_esamp_llama({"--model", model_file("stories260K.gguf"), "--prompt", "", "--samples", "2",
                       "--temperature", "0", "--beta", "0", "--tokens", "200", "--quiet"},
                      Capture::standard_output);
  CHECK(run.exit_status == 0);
  CHECK(run.output == " " + reference + " " + reference);
}

TEST_CASE(
    "esamp-llama --compare --json reports both methods with their summaries, calibrated, with the "
    "guardrails") {
  const ProgramRun run = run_esamp_llama({"--model", model_file("stories260K.gguf"), "--samples",
                                          "3", "--tokens", "16", "--compare", "--json"},
                                         Capture::standard_output);
  CHECK(run.exit_status == 0);
  CHECK_THAT(run.output, Catch::StartsWith("{\"model\":"));
  CHECK_THAT(run.output, Catch::Contains("\"method\":\"plain\""));
  CHECK_THAT(run.output, Catch::Contains("\"method\":\"esamp\""));
  CHECK_THAT(run.output, Catch::Contains("\"perplexity\":"));
  // The shared --compare: plain sampling's temperature calibrated, the guardrails reported.
  CHECK_THAT(run.output, Catch::Contains("\"calibration\":{\"runs\":"));
  for (const char* key : {"median_perplexity", "seq_rep_4", "loop_share", "relevance"})
    CHECK_THAT(run.output, Catch::Contains(fmt::format("\"{}\":", key)));
}

// A story that the model ends at once: greedy, its first draw after this prompt is end-of-text.
constexpr const char* kEndedStory =
    "Just then, her mom asked her why she was blocking. Lily noticed that her mom came down and "
    "fell on the chest. Her mom said, \"I'm relieved, Lily. Gives some him what I mean oAnna "
    "said.\" Lucy said, \"Yes, that's small! That will be so friendly!\" She lived happily ever "
    "after.";

TEST_CASE("esamp-llama keeps a sample that ends at its first token (no perplexity, no error)") {
  const ProgramRun run = run_esamp_llama(
      {"--model", model_file("stories260K.gguf"), "--prompt", kEndedStory, "--samples", "2",
       "--tokens", "4", "--temperature", "0", "--compare", "--json"},
      Capture::standard_output);
  REQUIRE(run.exit_status == 0);
  CHECK_THAT(run.output, Catch::Contains("\"tokens\":[],\"stopped\":true,\"perplexity\":null"));
}

TEST_CASE("esamp-llama exits 2 on a bad option and 1 on a model it cannot load") {
  const ProgramRun bad_value = run_esamp_llama({"--samples", "0"}, Capture::standard_error);
  CHECK(bad_value.exit_status == 2);
  CHECK_THAT(bad_value.output, Catch::Contains("--samples 0: expected an integer in [1, 4096]"));
  const ProgramRun unknown = run_esamp_llama({"--mix", "latent"}, Capture::standard_error);
  CHECK(unknown.exit_status == 2);
  const ProgramRun no_model =
      run_esamp_llama({"--model", "/nonexistent.gguf"}, Capture::standard_error);
  CHECK(no_model.exit_status == 1);
  CHECK_THAT(no_model.output, Catch::Contains("/nonexistent.gguf: llama.cpp could not load"));
}

}  // namespace esamp::llama_cpp::test
