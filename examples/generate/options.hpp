// esamp-generate's command line: the options, their defaults and a small table-driven parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "esamp/config.hpp"
#include "esamp/sampling.hpp"
#include "option_values.hpp"  // UsageError: esamp-generate exits with status 2 on it

namespace esamp::generation {

struct Options {
  std::string model_path;      // empty: models::model_file("stories260K.gguf")
  std::string tokenizer_path;  // set: model_path is a llama2.c checkpoint
  std::vector<std::string> prompts{"Once upon a time"};
  bool prompt_given = false;  // --prompt or --prompts-file seen: only one of them, once
  int samples = 8;
  int new_tokens = 128;
  Filter filter;  // temperature 1, no truncation
  float beta = ExplorationConfig{}.beta;
  MixMode mix = MixMode::latent;
  int rank = 0;  // 0: DESIGN.md's 128, capped at the model's hidden size
  float lr = DistillerConfig{}.lr;
  Optimizer optimizer = Optimizer::adamw;
  Sharing sharing = Sharing::per_group;
  std::uint64_t seed = 0;
  bool compare = false;
  bool json = false;
  bool quiet = false;
  bool help = false;
};

// Parses argv[1..argc); throws UsageError. `--name value` and `--name=value` are both accepted.
Options parse_options(int argc, const char* const* argv);

// The --help text: one line per option with its value and default.
std::string usage(const char* program);

}  // namespace esamp::generation
