// esamp-eval's command line: the options, their defaults and the table-driven parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generate/option_values.hpp"  // UsageError: esamp-eval exits with status 2 on it

namespace esamp::eval {

struct EvalOptions {
  std::string model_path;      // empty: models::model_file("stories260K.gguf")
  std::string tokenizer_path;  // set: model_path is a llama2.c checkpoint
  std::string engine;          // "own", "llama.cpp", or empty: chosen by the model (main.cpp)
  int threads = 0;             // llama.cpp threads; 0: its default
  std::string prompts_file;    // empty: bench/prompts/stories.txt of the source tree
  int prompt_limit = 0;        // use the first N prompts; 0 = all
  int samples = 16;
  int new_tokens = 128;
  std::vector<std::uint64_t> seeds{0};
  std::vector<std::string> curves;  // empty: default_curves()
  std::string csv_path;
  std::string texts_path;
  bool json = false;
  bool quiet = false;
  bool dry_run = false;
  bool help = false;
};

// Parses argv[1..argc); throws generation::UsageError. `--name value` and `--name=value` both work.
EvalOptions parse_options(int argc, const char* const* argv);

// The --help text: one line per option with its value and default, then the curve syntax and the
// default grid.
std::string usage(const char* program);

// bench/prompts/stories.txt under the working directory when it is there (a run from the
// repository root), else under the source tree this program was built from.
std::string default_prompts_file();

}  // namespace esamp::eval
