// The option table of esamp-eval and the parser that walks it.
#include "options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <string_view>

#include "grid.hpp"

namespace esamp::eval {
namespace {

using generation::kExitStatusHelp;
using generation::options_help;
using generation::OptionSpec;
using generation::parse_command_line;
using generation::parse_int;
using generation::parse_number;
using generation::usage_error;

constexpr std::string_view kPromptsFile = "bench/prompts/stories.txt";

std::vector<std::uint64_t> parse_seeds(std::string_view option, std::string_view text) {
  std::vector<std::uint64_t> seeds;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find(',', start);
    const std::uint64_t seed = parse_number<std::uint64_t>(
        option, text.substr(start, end - start), "comma-separated unsigned 64-bit integers");
    if (std::find(seeds.begin(), seeds.end(), seed) != seeds.end())
      usage_error("{} {}: the seed {} is given twice", option, text, seed);
    seeds.push_back(seed);
    if (end == std::string_view::npos) return seeds;
    start = end + 1;
  }
}

const std::vector<OptionSpec<EvalOptions>>& option_table() {
  constexpr int kMaxSamples = 4096;
  constexpr int kMaxTokens = 1 << 20;  // the model's context is the real limit, checked later
  static const std::vector<OptionSpec<EvalOptions>> table = {
      {"--model", "PATH",
       "GGUF model, or llama2.c .bin with --tokenizer [stories260K.gguf in $ESAMP_MODEL_DIR, else "
       "the cache]",
       [](EvalOptions& o, auto, const std::string& v) { o.model_path = v; }},
      {"--tokenizer", "PATH", "llama2.c tokenizer file (tok512.bin) for a .bin model",
       [](EvalOptions& o, auto, const std::string& v) { o.tokenizer_path = v; }},
      {"--engine", "own|llama.cpp",
       "the engine: own (the llama example engine: llama GGUFs, llama2.c) or llama.cpp (any GGUF "
       "it loads) [own where it loads the model, else llama.cpp]",
       [](EvalOptions& o, auto option, const std::string& v) {
         o.engine = generation::parse_choice<std::string_view>(
             option, v, {{"own", "own"}, {"llama.cpp", "llama.cpp"}});
       }},
      {"--threads", "N", "llama.cpp threads [its default]",
       [](EvalOptions& o, auto option, const std::string& v) {
         o.threads = parse_int(option, v, 1, 1024);
       }},
      {"--prompts-file", "PATH",
       "one prompt per line, blank lines skipped [bench/prompts/stories.txt]",
       [](EvalOptions& o, auto, const std::string& v) { o.prompts_file = v; }},
      {"--prompts", "N", "use only the first N prompts of the file [all]",
       [](EvalOptions& o, auto option, const std::string& v) {
         o.prompt_limit = parse_int(option, v, 1, 1 << 20);
       }},
      {"--samples", "N", "samples per prompt, decoded as one batch and one esamp group [16]",
       [](EvalOptions& o, auto option, const std::string& v) {
         o.samples = parse_int(option, v, 2, kMaxSamples);
       }},
      {"--tokens", "N", "new tokens per sample (fewer when it ends with EOS/BOS) [128]",
       [](EvalOptions& o, auto option, const std::string& v) {
         o.new_tokens = parse_int(option, v, 1, kMaxTokens);
       }},
      {"--seeds", "S[,S...]", "seeds; each runs every prompt again (draws and distiller init) [0]",
       [](EvalOptions& o, auto option, const std::string& v) { o.seeds = parse_seeds(option, v); }},
      {"--curve", "SPEC", "a curve of the grid (repeatable; replaces the default grid), see below",
       [](EvalOptions& o, auto, const std::string& v) {
         parse_curve(v);  // reject a bad spec here, with the others
         o.curves.push_back(v);
       }},
      {"--csv", "PATH", "write the CSV (one row per configuration) to PATH",
       [](EvalOptions& o, auto, const std::string& v) { o.csv_path = v; }},
      {"--texts", "PATH", "write every sample as one JSON line to PATH",
       [](EvalOptions& o, auto, const std::string& v) { o.texts_path = v; }},
      {"--json", "", "JSON on stdout instead of the Markdown summary",
       [](EvalOptions& o, auto, auto&) { o.json = true; }},
      {"--dry-run", "", "print the grid and the time estimate, run nothing",
       [](EvalOptions& o, auto, auto&) { o.dry_run = true; }},
      {"--quiet", "", "no estimate, progress or per-configuration lines on stderr",
       [](EvalOptions& o, auto, auto&) { o.quiet = true; }},
      {"--help", "", "this text", [](EvalOptions& o, auto, auto&) { o.help = true; }},
  };
  return table;
}

}  // namespace

EvalOptions parse_options(int argc, const char* const* argv) {
  EvalOptions options;
  parse_command_line(argc, argv, option_table(), options);
  return options;
}

std::string usage(const char* program) {
  std::string text = fmt::format(
      "Usage: {} [options]\n"
      "Evaluates a grid of sampling configurations (plain temperature, min-p, esamp) on a prompts\n"
      "file: perplexity under the base model and the diversity of each prompt's samples, with 95%\n"
      "intervals over prompts, and esamp's diversity gap at matched perplexity (DESIGN.md §5).\n\n"
      "{}",
      program, options_help(option_table()));
  const ExplorationConfig e;
  text += fmt::format(
      "\nA curve: 'NAME: key=v1,v2; key=v', one configuration per combination of the values.\n"
      "  T, top_p, min_p          temperature [1], top-p [1] and min-p [0] of the draw\n"
      "  beta, mix, sharing       esamp: strength [{}], latent|candidates [latent],\n"
      "                           group|global|sample (a distiller per sample) [group]\n"
      "  latent_mix               full|orthogonal|norm_kept: what latent mixing does with ŷ's "
      "part\n"
      "                           along h [full]\n"
      "  rank, lr, warmup         distiller rank [128 capped at the hidden size], lr [{}],\n"
      "                           updates before mixing [{}]\n"
      "  warm_start               1: a new group's distiller starts from that of the last trained\n"
      "                           group closed before it; 0: from the seeded init [{:d}]\n"
      "  young, young_repeat      a distiller with fewer than `young` updates is updated\n"
      "                           young_repeat times per step [{}, {}]\n"
      "  lr_decay                 d > 0: a group's distiller with n updates trains at\n"
      "                           lr·d/(d+n) [0: constant lr]\n"
      "  source, target           taps LAYER@SITE (SITE: layer_input, layer_input_normed,\n"
      "                           layer_output; LAYER -1 = last) [0@layer_input_normed, final];\n"
      "                           target=final: the final-normed state h that mixing moves\n"
      "Any esamp key makes the curve esamp; the others are plain sampling.\n\nDefault grid:\n",
      e.beta, DistillerConfig{}.lr, e.warmup_updates, e.warm_start, e.young_updates,
      e.young_repeat);
  for (const std::string& curve : default_curves()) text += fmt::format("  --curve '{}'\n", curve);
  text += fmt::format("\n{}", kExitStatusHelp);
  return text;
}

std::string default_prompts_file() {
  const std::string relative(kPromptsFile);
  if (std::ifstream(relative)) return relative;
  return fmt::format("{}/{}", ESAMP_SOURCE_DIR, kPromptsFile);
}

}  // namespace esamp::eval
