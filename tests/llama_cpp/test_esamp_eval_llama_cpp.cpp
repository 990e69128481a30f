// esamp-eval on llama.cpp, run as a child process: the engine choice, what the adapter cannot
// serve, and per-sample distillers through the adapter.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "../program_run.hpp"
#include "llama_cpp_test_support.hpp"

namespace esamp::llama_cpp::test {
namespace {

using esamp::test::Capture;
using esamp::test::ProgramRun;

// 2 prompts x 2 samples x 6 tokens of the toy model, JSON on stdout.
ProgramRun run_esamp_eval(std::vector<std::string> arguments, Capture capture) {
  arguments.insert(arguments.end(), {"--model", model_file("stories260K.gguf"), "--prompts", "2",
                                     "--samples", "2", "--tokens", "6", "--quiet", "--json"});
  return esamp::test::run_program(ESAMP_EVAL_PROGRAM, arguments, capture);
}

}  // namespace

TEST_CASE("esamp-eval runs its grid on llama.cpp with the same curve syntax and metrics") {
  const ProgramRun run = run_esamp_eval(
      {"--engine", "llama.cpp", "--curve", "t: T=1", "--curve",
       "e: T=1; beta=0.5; warm_start=0,1; young=0", "--curve", "each: T=1; beta=1; sharing=sample"},
      Capture::standard_output);
  REQUIRE(run.exit_status == 0);
  CHECK_THAT(run.output, Catch::Contains("\"engine\":\"llama.cpp\""));
  CHECK_THAT(run.output, Catch::Contains("\"label\":\"T=1 beta=0.5 latent group warm_start=0"));
  CHECK_THAT(run.output, Catch::Contains("\"label\":\"T=1 beta=1 latent sample\""));
  for (const char* metric : {"perplexity", "median_perplexity", "semantic_vendi", "seq_rep_4",
                             "loop_share", "relevance"})
    CHECK_THAT(run.output, Catch::Contains(fmt::format("\"{}\":{{\"mean\":", metric)));
  // Every esamp configuration mixed rows through the adapter, per-sample distillers included.
  CHECK_THAT(run.output, Catch::Contains("\"rows_mixed\":"));
  CHECK_THAT(run.output, !Catch::Contains("\"rows_mixed\":0"));
}

TEST_CASE("esamp-eval picks the own engine for a model it loads, and says what llama.cpp lacks") {
  const ProgramRun own = run_esamp_eval({"--curve", "t: T=1"}, Capture::standard_output);
  REQUIRE(own.exit_status == 0);
  CHECK_THAT(own.output, Catch::Contains("\"engine\":\"own\""));
  const ProgramRun candidates = run_esamp_eval(
      {"--engine", "llama.cpp", "--curve", "c: T=1; mix=candidates"}, Capture::standard_error);
  CHECK(candidates.exit_status == 2);
  CHECK_THAT(candidates.output,
             Catch::Contains("--curve c: mix = candidates: the llama.cpp adapter serves latent "
                             "mixing only"));
  const ProgramRun site =
      run_esamp_eval({"--engine", "llama.cpp", "--curve", "s: T=1; beta=1; source=0@layer_output"},
                     Capture::standard_error);
  CHECK(site.exit_status == 2);
  CHECK_THAT(site.output, Catch::Contains("source site layer_output"));
}

}  // namespace esamp::llama_cpp::test
