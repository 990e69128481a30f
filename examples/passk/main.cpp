// esamp-passk: Pass@k on problems with checkable integer answers (DESIGN.md §5, "Pass@k"). Each
// problem's n samples are decoded as one group through llama.cpp, under esamp and under the
// baselines (temperature and min-p sweeps); the program prints Pass@k for k = 1..n with bootstrap
// intervals over problems, the distinct final answers per problem, and esamp against each baseline
// at matched Pass@1.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "esamp/llama_cpp.hpp"
#include "evaluation.hpp"
#include "generate/option_values.hpp"
#include "generate/progress.hpp"
#include "group_decoder.hpp"
#include "llama_cpp_generation.hpp"
#include "models/model_dir.hpp"
#include "passk.hpp"

namespace esamp::passk {
namespace {

using generation::OptionSpec;
using generation::parse_float;
using generation::parse_int;
using generation::usage_error;
using generation::UsageError;
using nlohmann::json;

struct Options {
  std::string model_path;  // empty: gemma-3-270m-q4_k_m.gguf in the model folder
  std::string problems_path, prefix_path, records_path, csv_path, summarize_path;
  std::size_t limit = 0;  // 0: every problem
  int samples = 16;
  int new_tokens = 64;
  float temperature = 0.7f;  // esamp's
  std::vector<float> betas{ExplorationConfig{}.beta};
  std::vector<float> temperatures{0.3f, 0.5f, 0.7f};
  std::vector<float> min_ps{0.1f, 0.3f, 0.5f};
  float min_p_temperature = 1.0f;
  int rank = 0;  // 0: DESIGN.md's 128, capped at the model's hidden size
  int threads = 0;
  std::uint64_t seed = 0;
  int replicates = 1000;
  bool json = false, quiet = false, help = false;
};

// A comma-separated list of numbers in [min, max]; empty for none.
std::vector<float> parse_list(std::string_view option, const std::string& text, float min,
                              float max, bool min_exclusive) {
  std::vector<float> values;
  std::stringstream items(text);
  for (std::string item; std::getline(items, item, ',');)
    values.push_back(parse_float(option, item, min, max, min_exclusive));
  return values;
}

const std::vector<OptionSpec<Options>>& option_table() {
  using generation::parse_number;
  static const std::vector<OptionSpec<Options>> table = {
      {"--model", "PATH",
       "a GGUF model llama.cpp loads [gemma-3-270m-q4_k_m.gguf in the model folder]",
       [](Options& o, auto, const std::string& v) { o.model_path = v; }},
      {"--problems", "PATH", "JSON Lines, one {\"prompt\": ..., \"answer\": <integer>} per line",
       [](Options& o, auto, const std::string& v) { o.problems_path = v; }},
      {"--limit", "N", "only the first N problems [all]",
       [](Options& o, auto option, const std::string& v) {
         o.limit = static_cast<std::size_t>(parse_int(option, v, 1, 1 << 30));
       }},
      {"--prefix-file", "PATH",
       "the few-shot text put before every \"Q: <prompt>\\nA:\" [built in]",
       [](Options& o, auto, const std::string& v) { o.prefix_path = v; }},
      {"--samples", "N", "samples per problem, one group; Pass@k for k = 1..N [16]",
       [](Options& o, auto option, const std::string& v) {
         o.samples = parse_int(option, v, 1, 256);
       }},
      {"--tokens", "N", "at most N new tokens per sample; it ends at its answer line [64]",
       [](Options& o, auto option, const std::string& v) {
         o.new_tokens = parse_int(option, v, 1, 1 << 16);
       }},
      {"--temperature", "T", "esamp's temperature [0.7]",
       [](Options& o, auto option, const std::string& v) {
         o.temperature = parse_float(option, v, 0.0f, 100.0f, true);
       }},
      {"--betas", "B,...", "esamp's configurations, the library's defaults at each β [0.5]",
       [](Options& o, auto option, const std::string& v) {
         o.betas = parse_list(option, v, 0.0f, 1e6f, false);
       }},
      {"--temperatures", "T,...", "temperature sampling's sweep, empty for none [0.3,0.5,0.7]",
       [](Options& o, auto option, const std::string& v) {
         o.temperatures = parse_list(option, v, 0.0f, 100.0f, true);
       }},
      {"--min-ps", "P,...", "min-p's sweep, empty for none [0.1,0.3,0.5]",
       [](Options& o, auto option, const std::string& v) {
         o.min_ps = parse_list(option, v, 0.0f, 1.0f, true);
       }},
      {"--min-p-temperature", "T", "the temperature of the min-p sweep [1]",
       [](Options& o, auto option, const std::string& v) {
         o.min_p_temperature = parse_float(option, v, 0.0f, 100.0f, true);
       }},
      {"--rank", "R", "distiller rank [128, capped at the model's hidden size]",
       [](Options& o, auto option, const std::string& v) {
         o.rank = parse_int(option, v, 1, 1 << 20);
       }},
      {"--threads", "N", "llama.cpp threads [its default]",
       [](Options& o, auto option, const std::string& v) {
         o.threads = parse_int(option, v, 1, 1024);
       }},
      {"--seed", "S", "seed of the samplers, the distillers' init and the bootstrap [0]",
       [](Options& o, auto option, const std::string& v) {
         o.seed = parse_number<std::uint64_t>(option, v, "an unsigned 64-bit integer");
       }},
      {"--bootstrap", "N", "bootstrap resamples of the problems [1000]",
       [](Options& o, auto option, const std::string& v) {
         o.replicates = parse_int(option, v, 1, 1000000);
       }},
      {"--records", "PATH",
       "write one JSON line per problem and configuration as each finishes (answers, texts)",
       [](Options& o, auto, const std::string& v) { o.records_path = v; }},
      {"--summarize", "PATH", "summarize a --records file (a finished or partial run); no decoding",
       [](Options& o, auto, const std::string& v) { o.summarize_path = v; }},
      {"--csv", "PATH", "write the tables as CSV (bench/passk/plot.gnuplot reads it)",
       [](Options& o, auto, const std::string& v) { o.csv_path = v; }},
      {"--json", "", "the summary as JSON on stdout",
       [](Options& o, auto, auto&) { o.json = true; }},
      {"--quiet", "", "no progress bar", [](Options& o, auto, auto&) { o.quiet = true; }},
      {"--help", "", "this text", [](Options& o, auto, auto&) { o.help = true; }},
  };
  return table;
}

std::string usage() {
  return fmt::format(
      "Usage: esamp-passk --problems PATH [options]\n"
      "       esamp-passk --summarize RECORDS [--csv PATH] [--json]\n"
      "Samples every problem N times as one group under esamp and the baselines, reads each\n"
      "sample's answer (\"The answer is N\"), and prints Pass@k for k = 1..N with 95% bootstrap\n"
      "intervals over problems, the distinct answers per problem, and esamp against each baseline\n"
      "at matched Pass@1 (interpolated along the baseline's sweep).\n\n"
      "{}\n{}",
      generation::options_help(option_table()), generation::kExitStatusHelp);
}

std::vector<Config> configs_of(const Options& options) {
  std::vector<Config> configs;
  for (const float beta : options.betas)
    configs.push_back(make_config(Method::esamp, options.temperature, beta, 0.0f));
  for (const float temperature : options.temperatures)
    configs.push_back(make_config(Method::temperature, temperature, 0.0f, 0.0f));
  for (const float min_p : options.min_ps)
    configs.push_back(make_config(Method::min_p, options.min_p_temperature, 0.0f, min_p));
  if (configs.empty())
    usage_error("no configuration: --betas, --temperatures and --min-ps are empty");
  return configs;
}

std::string file_text(std::string_view option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) usage_error("{} {}: the file cannot be opened", option, path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

json record_of(std::size_t problem, const Config& config, const Problem& task,
               const std::vector<DecodedSample>& samples, const ProblemOutcome& outcome,
               const std::vector<std::optional<std::int64_t>>& read) {
  json answers = json::array(), texts = json::array();
  for (std::size_t s = 0; s < samples.size(); ++s) {
    answers.push_back(read[s] ? json(*read[s]) : json(nullptr));
    texts.push_back(samples[s].text);
  }
  return {{"problem", problem},
          {"config", config.name},
          {"method", method_name(config.method)},
          {"temperature", config.temperature},
          {"beta", config.beta},
          {"min_p", config.min_p},
          {"answer", task.answer},
          {"correct", outcome.correct},
          {"tokens", outcome.tokens},
          {"answers", answers},
          {"texts", texts}};
}

// Decodes every problem under every configuration (problem by problem, so that a partial run has
// all configurations on its first problems), writing records as it goes.
std::vector<ConfigOutcomes> run(const Options& options) {
  if (options.problems_path.empty()) usage_error("--problems PATH is needed (see --help)");
  const std::vector<Config> configs = configs_of(options);
  std::vector<Problem> problems = read_problems_file(options.problems_path);
  if (options.limit > 0 && options.limit < problems.size()) problems.resize(options.limit);
  const std::string prefix = options.prefix_path.empty()
                                 ? std::string(kFewShotPrefix)
                                 : file_text("--prefix-file", options.prefix_path);
  std::ofstream records;
  if (!options.records_path.empty()) {
    records.open(options.records_path);
    if (!records) usage_error("--records {}: the file cannot be written", options.records_path);
  }

  const std::string model_path = options.model_path.empty()
                                     ? models::model_file("gemma-3-270m-q4_k_m.gguf")
                                     : options.model_path;
  llama_cpp::ModelPtr model = llama_cpp::load_model(model_path);
  const int hidden = llama_model_n_embd(model.get());
  if (options.rank > hidden)
    usage_error("--rank {}: must be in [1, {}], the model's hidden size", options.rank, hidden);
  std::vector<std::string> prompts;
  int longest = 0;
  for (const Problem& problem : problems) {
    prompts.push_back(problem_prompt(prefix, problem.prompt));
    longest = std::max(longest,
                       static_cast<int>(llama_cpp::tokenize(model.get(), prompts.back()).size()));
  }
  const int trained = llama_model_n_ctx_train(model.get());
  if (longest + options.new_tokens > trained)
    usage_error(
        "--tokens {}: the longest prompt ({} tokens) leaves room for {} in the model's "
        "context of {}",
        options.new_tokens, longest, trained - longest, trained);
  const int sequence_tokens = longest + options.new_tokens;

  // One plain decoder for the baselines, one decoder with its own sampler per β.
  std::vector<std::unique_ptr<ExploratorySampler>> samplers;
  std::map<std::string, std::unique_ptr<GroupDecoder>> decoders;  // by config name; "" = plain
  for (const Config& config : configs) {
    const std::string key = config.method == Method::esamp ? config.name : "";
    if (decoders.count(key) > 0) continue;
    ExploratorySampler* sampler = nullptr;
    if (config.method == Method::esamp) {
      DistillerConfig distiller;
      distiller.hidden_size = hidden;
      distiller.rank = options.rank > 0 ? options.rank : std::min(distiller.rank, hidden);
      distiller.seed = options.seed;
      ExplorationConfig exploration;
      exploration.beta = config.beta;
      exploration.max_rows = options.samples;
      // Training on llama.cpp's threads (llama_cpp::backend()), idle while esamp trains.
      exploration.training_threads = std::min(
          256, options.threads > 0 ? options.threads : llama_context_default_params().n_threads);
      samplers.push_back(std::make_unique<ExploratorySampler>(
          llama_model_n_layer(model.get()), distiller, exploration, llama_cpp::backend()));
      sampler = samplers.back().get();
    }
    auto decoder = std::make_unique<GroupDecoder>(model.get(), options.samples, sequence_tokens,
                                                  options.threads, sampler);
    decoder->cache_prefix(prefix);
    decoders.emplace(key, std::move(decoder));
  }

  std::vector<ConfigOutcomes> runs;
  for (const Config& config : configs) runs.push_back({config, {}});
  generation::ProgressBar progress(static_cast<std::int64_t>(problems.size() * configs.size()) *
                                       options.samples * options.new_tokens,
                                   !options.quiet && isatty(STDERR_FILENO));
  DecodeSettings settings;
  settings.samples = options.samples;
  settings.max_new_tokens = options.new_tokens;
  settings.seed = options.seed;
  settings.on_tokens = [&progress](int tokens) { progress.advance(tokens); };
  for (std::size_t p = 0; p < problems.size(); ++p) {
    // The same draws' seeds for every configuration of a problem: paired comparisons.
    settings.first_sequence = p * static_cast<std::uint64_t>(options.samples);
    for (ConfigOutcomes& outcomes : runs) {
      const Config& config = outcomes.config;
      settings.filter = Filter{};
      settings.filter.temperature = config.temperature;
      settings.filter.min_p = config.min_p;
      GroupDecoder& decoder = *decoders.at(config.method == Method::esamp ? config.name : "");
      const std::vector<DecodedSample> samples = decoder.decode(prompts[p], settings);
      std::vector<std::optional<std::int64_t>> read;
      std::int64_t tokens = 0;
      for (const DecodedSample& sample : samples) {
        read.push_back(read_answer(sample.text));
        tokens += sample.tokens;
      }
      outcomes.problems.push_back(score_problem(problems[p].answer, read, tokens));
      if (records.is_open()) {
        records << record_of(p, config, problems[p], samples, outcomes.problems.back(), read).dump()
                << '\n';
        records.flush();
      }
    }
  }
  progress.finish();
  return runs;
}

// The runs a --records file holds: configurations in order of first appearance, each with its
// problems in order.
std::vector<ConfigOutcomes> read_records(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error("--summarize {}: the file cannot be opened", path);
  std::vector<ConfigOutcomes> runs;
  std::size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty()) continue;
    try {
      const json record = json::parse(line);
      const std::string name = record.at("config").get<std::string>();
      auto run = std::find_if(runs.begin(), runs.end(),
                              [&name](const ConfigOutcomes& r) { return r.config.name == name; });
      if (run == runs.end()) {
        const std::string method = record.at("method").get<std::string>();
        Config config;
        config.name = name;
        config.method = method == "esamp"         ? Method::esamp
                        : method == "temperature" ? Method::temperature
                        : method == "min-p"
                            ? Method::min_p
                            : throw std::runtime_error(fmt::format("unknown method '{}'", method));
        config.temperature = record.at("temperature").get<float>();
        config.beta = record.at("beta").get<float>();
        config.min_p = record.at("min_p").get<float>();
        runs.push_back({config, {}});
        run = runs.end() - 1;
      }
      if (record.at("problem").get<std::size_t>() != run->problems.size())
        throw std::runtime_error(fmt::format("problem {} where {} was expected",
                                             record.at("problem").dump(), run->problems.size()));
      std::vector<std::optional<std::int64_t>> read;
      for (const json& answer : record.at("answers"))
        read.push_back(answer.is_null() ? std::nullopt
                                        : std::optional<std::int64_t>(answer.get<std::int64_t>()));
      run->problems.push_back(score_problem(record.at("answer").get<std::int64_t>(), read,
                                            record.at("tokens").get<std::int64_t>()));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}:{}: {}", path, line_number, e.what()));
    }
  }
  return runs;
}

// The values of k the text table shows: powers of two up to n, and n.
std::vector<int> shown_k(int samples) {
  std::vector<int> ks;
  for (int k = 1; k < samples; k *= 2) ks.push_back(k);
  ks.push_back(samples);
  return ks;
}

std::string cell(const eval::Interval& interval) {
  return fmt::format("{:.3f} [{:.3f}, {:.3f}]", interval.mean, interval.lo, interval.hi);
}

void print_text(const std::vector<ConfigOutcomes>& runs, const Alignment& alignment,
                const std::vector<ConfigSummary>& summaries,
                const std::vector<MatchedComparison>& comparisons, int replicates) {
  const std::vector<int> ks = shown_k(alignment.samples);
  std::int64_t tokens = 0;
  for (const ConfigOutcomes& run : runs)
    for (std::size_t p = 0; p < alignment.problems; ++p) tokens += run.problems[p].tokens;
  fmt::print(
      "Pass@k over {} problems, {} samples each ({} tokens sampled); 95% intervals: percentile "
      "bootstrap over problems, {} resamples\n\n",
      alignment.problems, alignment.samples, tokens, replicates);
  fmt::print("{:<22}", "config");
  for (const int k : ks) fmt::print("{:>24}", fmt::format("pass@{}", k));
  fmt::print("{:>24}{:>24}\n", "distinct answers", "answered");
  for (const ConfigSummary& summary : summaries) {
    fmt::print("{:<22}", summary.config);
    for (const int k : ks) fmt::print("{:>24}", cell(summary.pass_at_k[k - 1]));
    fmt::print("{:>24}{:>24}\n", cell(summary.distinct_answers), cell(summary.answered));
  }
  if (comparisons.empty()) return;
  fmt::print(
      "\nesamp - baseline at matched Pass@1 (the baseline interpolated linearly along its sweep "
      "to esamp's Pass@1; resamples where its sweep does not bracket esamp's are left out)\n\n");
  fmt::print("{:<22}{:<13}{:>24}", "esamp", "baseline", "matched setting");
  for (const int k : ks)
    if (k > 1) fmt::print("{:>24}", fmt::format("Δ pass@{}", k));
  fmt::print("{:>24}{:>11}\n", "Δ distinct answers", "resamples");
  for (const MatchedComparison& c : comparisons) {
    fmt::print("{:<22}{:<13}{:>24}", c.esamp, c.baseline, cell(c.setting));
    for (const int k : ks)
      if (k > 1) fmt::print("{:>24}", cell(c.delta_pass_at_k[k - 1]));
    fmt::print("{:>24}{:>11}\n", cell(c.delta_distinct_answers), c.setting.count);
  }
}

json interval_json(const eval::Interval& interval) {
  return {{"mean", interval.mean}, {"lo", interval.lo}, {"hi", interval.hi}};
}

json summary_json(const Alignment& alignment, const std::vector<ConfigSummary>& summaries,
                  const std::vector<MatchedComparison>& comparisons, int replicates) {
  json configs = json::array(), matched = json::array();
  for (const ConfigSummary& s : summaries) {
    json pass = json::array();
    for (const eval::Interval& interval : s.pass_at_k) pass.push_back(interval_json(interval));
    configs.push_back({{"config", s.config},
                       {"pass_at_k", pass},
                       {"distinct_answers", interval_json(s.distinct_answers)},
                       {"answered", interval_json(s.answered)}});
  }
  for (const MatchedComparison& c : comparisons) {
    json delta = json::array();
    for (const eval::Interval& interval : c.delta_pass_at_k)
      delta.push_back(interval_json(interval));
    matched.push_back({{"esamp", c.esamp},
                       {"baseline", c.baseline},
                       {"setting", interval_json(c.setting)},
                       {"resamples_matched", c.setting.count},
                       {"delta_pass_at_k", delta},
                       {"delta_distinct_answers", interval_json(c.delta_distinct_answers)}});
  }
  return {{"problems", alignment.problems},
          {"samples", alignment.samples},
          {"bootstrap_resamples", replicates},
          {"configs", configs},
          {"matched_pass_at_1", matched}};
}

void write_csv(const std::string& path, const std::vector<ConfigSummary>& summaries,
               const std::vector<MatchedComparison>& comparisons, std::size_t problems) {
  std::ofstream out(path);
  if (!out) usage_error("--csv {}: the file cannot be written", path);
  out << "table,config,baseline,k,estimate,lo,hi,problems\n";
  const auto row = [&](std::string_view table, std::string_view config, std::string_view baseline,
                       std::string k, const eval::Interval& interval) {
    out << fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{}\n", table, config, baseline, k,
                       interval.mean, interval.lo, interval.hi, problems);
  };
  for (const ConfigSummary& s : summaries) {
    for (std::size_t k = 1; k <= s.pass_at_k.size(); ++k)
      row("pass_at_k", s.config, "", std::to_string(k), s.pass_at_k[k - 1]);
    row("distinct_answers", s.config, "", "", s.distinct_answers);
    row("answered", s.config, "", "", s.answered);
  }
  for (const MatchedComparison& c : comparisons) {
    row("matched_setting", c.esamp, c.baseline, "", c.setting);
    for (std::size_t k = 1; k <= c.delta_pass_at_k.size(); ++k)
      row("matched_delta_pass_at_k", c.esamp, c.baseline, std::to_string(k),
          c.delta_pass_at_k[k - 1]);
    row("matched_delta_distinct_answers", c.esamp, c.baseline, "", c.delta_distinct_answers);
  }
  if (!out) throw std::runtime_error(fmt::format("--csv {}: write error", path));
}

int run_program(int argc, const char* const* argv) {
  Options options;
  generation::parse_command_line(argc, argv, option_table(), options);
  if (options.help) {
    fmt::print("{}", usage());
    return 0;
  }
  const std::vector<ConfigOutcomes> runs =
      options.summarize_path.empty() ? run(options) : read_records(options.summarize_path);
  const Alignment alignment = align(runs);
  const auto summaries = summarize(runs, alignment, options.replicates, options.seed);
  const auto comparisons =
      compare_at_matched_pass1(runs, alignment, options.replicates, options.seed);
  if (!options.csv_path.empty())
    write_csv(options.csv_path, summaries, comparisons, alignment.problems);
  if (options.json)
    fmt::print("{}\n", summary_json(alignment, summaries, comparisons, options.replicates).dump(1));
  else
    print_text(runs, alignment, summaries, comparisons, options.replicates);
  return 0;
}

}  // namespace
}  // namespace esamp::passk

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-passk",
                                        [&] { return esamp::passk::run_program(argc, argv); });
}
