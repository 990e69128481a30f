// The option table of esamp-generate and the parser that walks it.
#include "options.hpp"

#include <fmt/format.h>

#include <string_view>

#include "option_values.hpp"

namespace esamp::generation {
namespace {

const std::vector<OptionSpec<Options>>& option_table() {
  static const std::string lr_help =
      fmt::format("distiller learning rate [{}]", DistillerConfig{}.lr);
  static const std::vector<OptionSpec<Options>> table = joined<Options>(
      {{
           {"--model", "PATH",
            "GGUF model, or llama2.c .bin with --tokenizer [stories260K.gguf in "
            "$ESAMP_MODEL_DIR, else the cache]",
            [](Options& o, auto, const std::string& v) { o.model_path = v; }},
           {"--tokenizer", "PATH", "llama2.c tokenizer file (tok512.bin) for a .bin model",
            [](Options& o, auto, const std::string& v) { o.tokenizer_path = v; }},
       },
       sampling_options<Options>(),
       {
           {"--mix", "latent|candidates", "where the distiller's prediction is mixed [latent]",
            [](Options& o, auto option, const std::string& v) {
              o.mix = parse_choice<MixMode>(
                  option, v, {{"latent", MixMode::latent}, {"candidates", MixMode::candidates}});
            }},
           {"--rank", "R", "distiller rank [128, capped at the model's hidden size]",
            [](Options& o, auto option, const std::string& v) {
              o.rank = parse_int(option, v, 1, 1 << 20);
            }},
           {"--lr", "LR", lr_help,
            [](Options& o, auto option, const std::string& v) {
              o.lr = parse_float(option, v, 0.0f, 1e3f, /*min_exclusive=*/true);
            }},
           {"--optimizer", "adamw|sgd", "distiller optimizer [adamw]",
            [](Options& o, auto option, const std::string& v) {
              o.optimizer = parse_choice<Optimizer>(
                  option, v, {{"adamw", Optimizer::adamw}, {"sgd", Optimizer::sgd}});
            }},
           {"--sharing", "group|global", "one distiller per prompt, or one for all prompts [group]",
            [](Options& o, auto option, const std::string& v) {
              o.sharing = parse_choice<Sharing>(
                  option, v, {{"group", Sharing::per_group}, {"global", Sharing::global}});
            }},
           {"--seed", "S", "seed of the token draws and of the distiller's init [0]",
            [](Options& o, auto option, const std::string& v) {
              o.seed = parse_number<std::uint64_t>(option, v, "an unsigned 64-bit integer");
            }},
           {"--compare", "",
            "also run plain sampling (same seed and filters) at the temperature that matches "
            "esamp's perplexity within 3% (found by a few runs), and compare",
            [](Options& o, auto, auto&) { o.compare = true; }},
       },
       output_options<Options>()});
  return table;
}

}  // namespace

Options parse_options(int argc, const char* const* argv) {
  Options options;
  parse_command_line(argc, argv, option_table(), options);
  return options;
}

std::string usage(const char* program) {
  return fmt::format(
      "Usage: {} [options]\n"
      "Samples a prompt N times as one batch with Exploratory Sampling (esamp) on the CPU, prints\n"
      "the samples and a summary: tokens/s, perplexity under the base model, diversity.\n\n"
      "{}\n{}",
      program, options_help(option_table()), kExitStatusHelp);
}

}  // namespace esamp::generation
