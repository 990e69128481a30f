// esamp-eval: the quality evaluation of DESIGN.md §5 — a grid of sampling configurations over a
// prompts file, with perplexity, diversity, 95% intervals and esamp's gap at matched perplexity.
#include <fmt/format.h>
#include <unistd.h>

#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "esamp/metrics.hpp"
#include "evaluate.hpp"
#include "generate/json_writer.hpp"
#include "generate/progress.hpp"
#include "generate/sample_engine.hpp"
#include "grid.hpp"
#ifdef ESAMP_EVAL_LLAMA_CPP
#include "llama_cpp_engine.hpp"
#endif
#include "models/model_dir.hpp"
#include "options.hpp"
#include "report.hpp"

namespace esamp::eval {
namespace {

using generation::UsageError;

constexpr std::size_t kCalibrationPrompts = 2;

std::string resolve_model_path(const EvalOptions& options) {
  return options.model_path.empty() ? models::model_file("stories260K.gguf") : options.model_path;
}

// The engine --engine names; without it the own engine where it loads the model, else llama.cpp
// (e.g. Gemma: only llama-architecture GGUFs run on the own engine), said on stderr.
std::unique_ptr<generation::SampleEngine> load_engine(const EvalOptions& options,
                                                      const std::string& model_path) {
#ifdef ESAMP_EVAL_LLAMA_CPP
  if (options.engine == "llama.cpp") {
    if (!options.tokenizer_path.empty())
      throw UsageError("--tokenizer: a llama2.c checkpoint runs on --engine own only");
    return llama_cpp::llama_cpp_engine(model_path, options.threads);
  }
  if (options.engine.empty() && options.tokenizer_path.empty()) {
    try {
      return generation::own_engine(model_path, options.tokenizer_path);
    } catch (const Error& e) {
      if (!options.quiet)
        fmt::print(stderr, "esamp-eval: the own engine cannot run it ({}): running on llama.cpp\n",
                   e.what());
      return llama_cpp::llama_cpp_engine(model_path, options.threads);
    }
  }
#else
  if (options.engine == "llama.cpp")
    throw UsageError(
        "--engine llama.cpp: this esamp-eval was built without llama.cpp (configure with "
        "CMAKE_PREFIX_PATH naming scripts/build-llama-cpp's prefix)");
#endif
  return generation::own_engine(model_path, options.tokenizer_path);
}

// Values that only the loaded model can judge; a UsageError like the parser's.
void check_against_model(const EvalOptions& options, const std::vector<EvalConfig>& grid,
                         const std::vector<std::string>& prompts,
                         const generation::SampleEngine& engine) {
  for (const EvalConfig& config : grid) {
    if (!config.esamp) continue;
    if (config.rank > engine.hidden_size())
      throw UsageError(fmt::format("--curve {}: rank = {}: must be in [1, {}], the hidden size",
                                   config.curve, config.rank, engine.hidden_size()));
    try {
      config.exploration.validate(engine.layer_count());
      engine.check_serves(config.exploration);
    } catch (const Error& e) {
      throw UsageError(fmt::format("--curve {}: {}", config.curve, e.what()));
    }
  }
  generation::max_sequence_tokens(engine, prompts, options.new_tokens);
}

std::int64_t token_budget(const EvalSettings& settings, std::size_t prompts) {
  return static_cast<std::int64_t>(settings.seeds.size() * prompts) * settings.samples *
         settings.max_new_tokens;
}

// What sets a configuration's cost per token apart: its method, and a truncating filter (min-p
// sorts candidates on every draw).
std::string cost_class(const EvalConfig& config) {
  return config.filter.min_p > 0.0f ? config.method() + " min-p" : config.method();
}

// Seconds per budgeted token of each cost class from its first configuration on the first prompts,
// times the grid's budget. Printed before the run.
double estimate_seconds(generation::SampleEngine& engine, const std::vector<std::string>& prompts,
                        const EvalSettings& settings, const std::vector<EvalConfig>& grid,
                        const embed::SentenceEncoder* encoder) {
  const std::vector<std::string> calibration_prompts(
      prompts.begin(), prompts.begin() + std::min(prompts.size(), kCalibrationPrompts));
  EvalSettings calibration = settings;
  calibration.seeds = {settings.seeds.front()};
  const double calibration_budget =
      static_cast<double>(token_budget(calibration, calibration_prompts.size()));
  std::map<std::string, double> seconds_per_token;
  double total = 0.0;
  for (const EvalConfig& config : grid) {
    auto [it, fresh] = seconds_per_token.try_emplace(cost_class(config), 0.0);
    if (fresh)
      it->second = evaluate(engine, calibration_prompts, calibration, config, encoder).seconds /
                   calibration_budget;
    total += it->second * static_cast<double>(token_budget(settings, prompts.size()));
  }
  std::string rates;
  for (const auto& [cost, rate] : seconds_per_token)
    rates += fmt::format("{}{} {:.1f} µs", rates.empty() ? "" : ", ", cost, rate * 1e6);
  fmt::print(stderr,
             "esamp-eval: {} configurations x {} prompts x {} seeds x {} samples x {} tokens: "
             "estimated {}:{:02d} (per budgeted token: {})\n",
             grid.size(), prompts.size(), settings.seeds.size(), settings.samples,
             settings.max_new_tokens, static_cast<long long>(total) / 60,
             static_cast<long long>(total) % 60, rates);
  return total;
}

// One JSON line per sample: which configuration, seed, prompt and sample, its perplexity, its text
// (prompt + continuation) and the continuation alone.
void write_texts(std::ofstream& out, const EvalConfig& config, std::uint64_t seed,
                 std::size_t prompt, const generation::GenerationResult& result) {
  for (std::size_t s = 0; s < result.samples.size(); ++s) {
    const generation::Sample& sample = result.samples[s];
    generation::JsonWriter json;
    json.begin_object().key("curve").value(config.curve).key("label").value(config.label());
    json.key("seed").value(fmt::format("{}", seed));
    json.key("prompt").value(static_cast<std::int64_t>(prompt));
    json.key("sample").value(static_cast<std::int64_t>(s));
    json.key("perplexity").value(perplexity(sample.base_logprobs));
    json.key("text").value(result.prompt_text + sample.text);
    json.key("continuation").value(sample.text).end_object();
    out << json.text() << '\n';
  }
}

int run_program(int argc, const char* const* argv) {
  const EvalOptions options = parse_options(argc, argv);
  if (options.help) {
    fmt::print("{}", usage("esamp-eval"));
    return 0;
  }
  const std::vector<EvalConfig> grid =
      parse_grid(options.curves.empty() ? default_curves() : options.curves);
  RunInfo info;
  info.model = resolve_model_path(options);
  info.prompts_file = options.prompts_file.empty() ? default_prompts_file() : options.prompts_file;
  std::vector<std::string> prompts = generation::read_prompts("--prompts-file", info.prompts_file);
  if (options.prompt_limit > 0 && prompts.size() > static_cast<std::size_t>(options.prompt_limit))
    prompts.resize(static_cast<std::size_t>(options.prompt_limit));
  info.prompts = prompts.size();
  info.settings.samples = options.samples;
  info.settings.max_new_tokens = options.new_tokens;
  info.settings.seeds = options.seeds;
  // The CSV is checked now (append mode truncates nothing) and written at the end, so a run that
  // fails midway leaves an earlier CSV as it was.
  if (!options.csv_path.empty() && !std::ofstream(options.csv_path, std::ios::app))
    throw UsageError(fmt::format("--csv {}: the file cannot be written", options.csv_path));
  std::ofstream texts;
  if (!options.texts_path.empty() && !(texts.open(options.texts_path), texts))
    throw UsageError(fmt::format("--texts {}: the file cannot be written", options.texts_path));

  const std::unique_ptr<generation::SampleEngine> engine = load_engine(options, info.model);
  info.engine = std::string(engine->name());
  check_against_model(options, grid, prompts, *engine);
  const std::unique_ptr<embed::SentenceEncoder> encoder =
      generation::load_encoder_if_present("esamp-eval", options.quiet);
  if (encoder) info.embedder = *embed::find_embedder_dir();

  if (options.dry_run || !options.quiet)
    estimate_seconds(*engine, prompts, info.settings, grid, encoder.get());
  if (options.dry_run) {
    for (const EvalConfig& config : grid) fmt::print("{}: {}\n", config.curve, config.label());
    return 0;
  }

  const bool tty = !options.quiet && isatty(STDERR_FILENO);
  generation::ProgressBar progress(
      static_cast<std::int64_t>(grid.size()) * token_budget(info.settings, prompts.size()), tty);
  std::vector<ConfigResult> results;
  for (const EvalConfig& config : grid) {
    ResultCallback on_result;
    if (texts.is_open())
      on_result = [&](std::uint64_t seed, std::size_t p, const generation::GenerationResult& r) {
        write_texts(texts, config, seed, p, r);
      };
    results.push_back(evaluate(
        *engine, prompts, info.settings, config, encoder.get(),
        [&progress](int tokens) { progress.advance(tokens); }, on_result));
    info.seconds += results.back().seconds;
    if (!options.quiet) {
      const ConfigResult& r = results.back();
      progress.finish();  // the bar redraws on the next advance
      fmt::print(
          stderr,
          "[{}/{}] {}: {}: perplexity {:.3f}, Vendi semantic {:.3f}, n-gram {:.3f}; seq-rep-4 "
          "{:.3f}, relevance {:.3f} ({:.1f} s)\n",
          results.size(), grid.size(), config.curve, config.label(),
          r.metrics[metric_index("perplexity")].mean,
          r.metrics[metric_index("semantic_vendi")].mean,
          r.metrics[metric_index("ngram_vendi")].mean, r.metrics[metric_index("seq_rep_4")].mean,
          r.metrics[metric_index("relevance")].mean, r.seconds);
    }
  }
  progress.finish();

  const std::vector<FrontierGap> gaps = frontier_gaps(results);
  if (!options.csv_path.empty()) {
    std::ofstream csv(options.csv_path);
    csv << csv_text(results);
    if (!csv) throw std::runtime_error(fmt::format("--csv {}: writing failed", options.csv_path));
  }
  fmt::print("{}",
             options.json ? json_text(info, results, gaps) : markdown_text(info, results, gaps));
  return 0;
}

}  // namespace
}  // namespace esamp::eval

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-eval",
                                        [&] { return esamp::eval::run_program(argc, argv); });
}
