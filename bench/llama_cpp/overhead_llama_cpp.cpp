// esamp-bench-overhead-llama-cpp: tokens/s of llama.cpp decode steps through
// esamp::llama_cpp::Adapter (the library's defaults) against plain llama_decode, one process,
// rows in {1, 4, 16}. Two contexts of the same settings take turns: in each step one decodes with
// esamp and the other plain, and the roles swap every step, so that the two contexts' own
// difference in speed (up to 2.5% on a 2-core machine) cancels out of each pair of steps. Prints a
// Markdown table of medians and ratios (per pair of steps, and of the total times) beside esamp's
// floor, the bytes its step must move at the memory's bandwidth (DESIGN.md §6). Sampling is left
// out (the same for both). Usage: esamp-bench-overhead-llama-cpp [--model PATH] [--steps N]
// [--threads N] [--rank R] [--training-threads N] [--background] [--work] [--optimizer adamw|sgd]
// [--plain-schedule] [--taps-only | --control]
#include <fmt/format.h>
#include <gguf.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "generate/option_values.hpp"
#include "llama_cpp_generation.hpp"
#include "models/model_dir.hpp"

namespace esamp::llama_cpp {
namespace {

constexpr std::array<int, 3> kRowCounts = {1, 4, 16};

// Untimed steps before the measured ones: one, and the steps in which a new group's slot is young
// (ExplorationConfig.young_updates: more than one update per step), so that the figures are of the
// steady state.
int warmup_steps(const ExplorationConfig& e) {
  const int young_steps =
      e.young_repeat > 1 ? (e.young_updates + e.young_repeat - 1) / e.young_repeat : 0;
  return 1 + young_steps;
}

// What a context decodes with in the esamp role: esamp through its adapter, only the adapter's
// transport (--taps-only), or nothing (--control: plain in both roles, so that the ratio is the
// benchmark's own error).
enum class Subject { esamp, taps_only, control };

struct BenchOptions {
  std::string model_path;  // empty: stories260K.gguf in the model folder (a smoke run)
  int steps = 16;
  bool work_only = false;
  Optimizer optimizer = Optimizer::adamw;
  int threads = 0;
  int rank = DistillerConfig{}.rank;
  int training_threads = 0;  // 0: llama.cpp's threads, as esamp-llama
  bool plain_schedule = false;
  bool background = false;
  Subject subject = Subject::esamp;
  bool help = false;
};

void set_subject(BenchOptions& o, Subject subject) {
  if (o.subject != Subject::esamp && o.subject != subject)
    generation::usage_error("--taps-only and --control exclude each other");
  o.subject = subject;
}

BenchOptions parse(int argc, const char* const* argv) {
  using namespace generation;
  BenchOptions options;
  std::vector<OptionSpec<BenchOptions>> table = {
      {"--model", "PATH", "GGUF model [stories260K.gguf in the model folder: a smoke run]",
       [](BenchOptions& o, auto, const std::string& v) { o.model_path = v; }},
      {"--steps", "N", "measured decode steps per row count [16]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.steps = parse_int(option, v, 1, 1 << 16);
       }},
      {"--threads", "N", "llama.cpp threads [its default]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.threads = parse_int(option, v, 1, 1024);
       }},
      {"--work", "",
       "instead: esamp's own work (training on one thread) and a 1-thread llama.cpp step in thread "
       "CPU time, and the ratio they imply on a quiet machine with --threads cores",
       [](BenchOptions& o, auto, auto&) { o.work_only = true; }},
      {"--optimizer", "adamw|sgd", "distiller optimizer [adamw]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.optimizer = parse_choice<Optimizer>(
             option, v, {{"adamw", Optimizer::adamw}, {"sgd", Optimizer::sgd}});
       }},
      {"--rank", "R", "distiller rank [128]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.rank = parse_int(option, v, 1, 1 << 16);
       }},
      {"--plain-schedule", "",
       "the paper's schedule: no warm-started slots, one update per step (the defaults have both)",
       [](BenchOptions& o, auto, auto&) { o.plain_schedule = true; }},
      {"--background", "",
       "train on a worker thread while llama.cpp runs on (ExplorationConfig.background_training)",
       [](BenchOptions& o, auto, auto&) { o.background = true; }},
      {"--training-threads", "N",
       "threads sharing esamp's training step (ExplorationConfig.training_threads), on "
       "llama.cpp's OpenMP team (llama_cpp::backend()) [llama.cpp's threads, as esamp-llama]",
       [](BenchOptions& o, auto option, const std::string& v) {
         o.training_threads = parse_int(option, v, 1, 256);
       }},
      {"--taps-only", "",
       "instead of esamp: an eval callback that copies the adapter's tapped tensors out and "
       "result_norm back, and nothing else (the transport's cost: graph breaks, copies)",
       [](BenchOptions& o, auto, auto&) { set_subject(o, Subject::taps_only); }},
      {"--control", "",
       "instead of esamp: plain llama_decode in both roles (the benchmark's own error: any ratio "
       "but 1 is noise the pairing did not cancel)",
       [](BenchOptions& o, auto, auto&) { set_subject(o, Subject::control); }},
  };
  table.push_back({"--help", "", "this text", [](BenchOptions& o, auto, auto&) { o.help = true; }});
  parse_command_line(argc, argv, table, options);
  if (options.help) {
    fmt::print(
        "Usage: esamp-bench-overhead-llama-cpp [--model PATH] [options]\n"
        "llama.cpp decode steps with and without esamp (the library's defaults, training on\n"
        "llama.cpp's threads as esamp-llama does), same process, interleaved; a Markdown table of\n"
        "tokens/s and their ratio at 1, 4 and 16 rows.\n\n{}",
        options_help(table));
    return options;
  }
  if (options.model_path.empty()) options.model_path = models::model_file("stories260K.gguf");
  return options;
}

// The library's distiller defaults with the options' rank and optimizer, for a model's hidden size.
DistillerConfig distiller_of(const BenchOptions& o, int hidden) {
  DistillerConfig d;
  d.hidden_size = hidden;
  d.rank = o.rank;
  d.optimizer = o.optimizer;
  return d;
}

// The threads llama.cpp decodes with.
int llama_threads(const BenchOptions& o) {
  return o.threads > 0 ? o.threads : llama_context_default_params().n_threads;
}

// The library's defaults, or the plain schedule, for steps of `rows` rows, training on
// llama.cpp's threads unless told otherwise (as esamp-llama does).
ExplorationConfig exploration_of(const BenchOptions& o, int rows) {
  ExplorationConfig e;
  e.max_rows = rows;
  e.training_threads =
      o.training_threads > 0 ? o.training_threads : std::min(256, llama_threads(o));
  e.background_training = o.background;
  if (o.plain_schedule) {
    e.warm_start = false;
    e.young_updates = 0;
  }
  return e;
}

// --taps-only: what the adapter moves, without esamp. An eval callback asking for the tensors the
// adapter asks for, copying each out with ggml_backend_tensor_get and result_norm back with
// ggml_backend_tensor_set.
struct TapCopier {
  static constexpr std::string_view kFinal = "result_norm";  // copied back: the LM head's input
  std::array<std::string, 2> taps;                           // the adapter's source and target taps
  std::vector<float> rows;
  bool armed = false;  // in the esamp role: asks for the tensors; otherwise for none (plain)

  bool wanted(const ggml_tensor* tensor) const {
    return armed && (tensor->name == kFinal ||
                     std::find(taps.begin(), taps.end(), tensor->name) != taps.end());
  }
  static bool on_eval(ggml_tensor* tensor, bool ask, void* user_data) {
    auto& self = *static_cast<TapCopier*>(user_data);
    if (ask) return self.wanted(tensor);
    if (!self.wanted(tensor)) return true;
    const std::size_t bytes = ggml_nbytes(tensor);
    self.rows.resize(bytes / sizeof(float));
    ggml_backend_tensor_get(tensor, self.rows.data(), 0, bytes);
    if (tensor->name == kFinal) ggml_backend_tensor_set(tensor, self.rows.data(), 0, bytes);
    return true;
  }
};

double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(at);
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (at - static_cast<double>(below)) * (values[above] - values[below]);
}

// A distribution-free 95% interval of the median of `values` (order statistics, the binomial's
// normal approximation); the whole range below 8 values.
std::pair<double, double> median_interval(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  const auto k = static_cast<std::size_t>(std::max(0.0, std::floor(n / 2 - 0.98 * std::sqrt(n))));
  return {values[k], values[values.size() - 1 - k]};
}

// The bytes of weights a decode step reads: every tensor of the model, less the token embedding
// table when the model has an output matrix of its own (a step then reads one row of the table per
// token; otherwise the table is the LM head, read whole).
double step_weight_bytes(const llama_model* model, const std::string& path) {
  const std::unique_ptr<gguf_context, void (*)(gguf_context*)> gguf(
      gguf_init_from_file(path.c_str(), {/*no_alloc=*/true, /*ctx=*/nullptr}), gguf_free);
  if (!gguf) fail("cannot read the GGUF tensor table of {}", path);
  const std::int64_t embedding = gguf_find_tensor(gguf.get(), "token_embd.weight");
  const bool tied = gguf_find_tensor(gguf.get(), "output.weight") < 0;
  const double unread = embedding >= 0 && !tied
                            ? static_cast<double>(gguf_get_tensor_size(gguf.get(), embedding))
                            : 0.0;
  return static_cast<double>(llama_model_size(model)) - unread;
}

double seconds_of(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The memory's read bandwidth on `threads` threads, in bytes per second: the best of three passes
// over 1 GiB (beyond the caches), each thread summing its share.
double read_bandwidth(int threads) {
  const std::size_t words = (std::size_t{1} << 30) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> buffer(words, 1);
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
  const auto share = [&](int t) {
    const std::size_t begin = words * static_cast<std::size_t>(t) / sums.size();
    const std::size_t end = words * static_cast<std::size_t>(t + 1) / sums.size();
    std::uint64_t sum = 0;
    for (std::size_t i = begin; i < end; ++i) sum += buffer[i];
    sums[static_cast<std::size_t>(t)] = sum;
  };
  double best = 0.0;
  for (int pass = 0; pass < 3; ++pass) {
    const double seconds = seconds_of([&] {
      std::vector<std::thread> team;
      for (int t = 1; t < threads; ++t) team.emplace_back(share, t);
      share(0);
      for (auto& thread : team) thread.join();
    });
    std::uint64_t total = 0;
    for (const std::uint64_t sum : sums) total += sum;
    if (total != words) fail("read_bandwidth: summed {} words of {}", total, words);
    best = std::max(best, static_cast<double>(words * sizeof(std::uint64_t)) / seconds);
  }
  return best;
}

// CPU seconds of the calling thread: esamp's hooks run on it, and other processes sharing the
// cores barely change it.
double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// Load-insensitive figures: esamp's own work per step (the sampler calls Adapter::decode makes:
// begin_step, both taps, mix_hidden, end_step, on random rows of the model's shape) and a plain
// llama_decode step on one thread, both in thread CPU time; then the ratio they imply for a
// quiet machine where llama.cpp's step spreads over `threads` cores and esamp's work does not.
void time_work(const BenchOptions& options, llama_model* model, int threads) {
  const int hidden = llama_model_n_embd(model);
  const int layers = llama_model_n_layer(model);
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  fmt::print(
      "| rows | llama.cpp step, 1 thread, CPU ms | esamp's work per step, CPU ms | of which "
      "end_step | implied ratio, 1 thread | implied ratio, {} threads "
      "|\n|---:|---:|---:|---:|---:|---:|\n",
      threads);
  const DistillerConfig distiller = distiller_of(options, hidden);
  for (const int rows : kRowCounts) {
    ExplorationConfig exploration = exploration_of(options, rows);
    exploration.training_threads = 1;  // this table times the training on the calling thread
    const int warmup = warmup_steps(exploration);
    ExploratorySampler sampler(layers, distiller, exploration);
    const GroupId group = sampler.open_group();
    const std::vector<GroupId> groups(static_cast<std::size_t>(rows), group);
    std::vector<float> source(static_cast<std::size_t>(rows * hidden)), final_rows(source.size());
    const std::unique_ptr<llama_context, void (*)(llama_context*)> context(
        llama_init_from_model(model, context_params({rows, warmup + options.steps + 1, 1})),
        llama_free);
    if (!context) fail("llama_init_from_model failed");
    std::vector<double> esamp_ms, training_ms, llama_ms;
    Batch step(rows, 1);
    for (int k = -warmup; k < options.steps; ++k) {
      for (std::size_t i = 0; i < source.size(); ++i) {
        source[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(k));
        final_rows[i] = std::cos(0.11f * static_cast<float>(i) + static_cast<float>(k));
      }
      double start = thread_cpu_seconds();
      sampler.begin_step(Span<const GroupId>(groups.data(), groups.size()));
      sampler.on_hidden(0, Site::layer_input_normed, ConstMatrixView(source.data(), rows, hidden));
      sampler.before_lm_head(MatrixView(final_rows.data(), rows, hidden));  // the target too
      const double training_start = thread_cpu_seconds();
      sampler.end_step();
      const double esamp_seconds = thread_cpu_seconds() - start;
      const double training_seconds = thread_cpu_seconds() - training_start;
      step.clear();
      for (llama_seq_id s = 0; s < rows; ++s)
        step.add((7 * (k + warmup + 1) + 13 * s) % vocab, k + warmup,
                 Span<const llama_seq_id>(&s, 1), true);
      start = thread_cpu_seconds();
      if (llama_decode(context.get(), step.get()) != 0) fail("llama_decode failed");
      const double llama_seconds = thread_cpu_seconds() - start;
      if (k < 0) continue;
      esamp_ms.push_back(1e3 * esamp_seconds);
      training_ms.push_back(1e3 * training_seconds);
      llama_ms.push_back(1e3 * llama_seconds);
    }
    const double w = quantile(llama_ms, 0.5), h = quantile(esamp_ms, 0.5);
    fmt::print("| {} | {:.1f} | {:.2f} | {:.2f} | {:.3f} | {:.3f} |\n", rows, w, h,
               quantile(training_ms, 0.5), w / (w + h), (w / threads) / (w / threads + h));
    std::fflush(stdout);
  }
}

using ContextPtr = std::unique_ptr<llama_context, void (*)(llama_context*)>;

// One of the two contexts, able to decode a step in either role: esamp (through its adapter, or
// the subject that stands in for it) or plain (llama_decode, with the adapter's callback idle: it
// asks for no tensor, so llama.cpp computes the graph as it would without it).
class Side {
 public:
  Side(const BenchOptions& options, llama_model* model, const DistillerConfig& distiller,
       const ExplorationConfig& exploration, const llama_context_params& params)
      : options_(options),
        sampler_(llama_model_n_layer(model), distiller, exploration, llama_cpp::backend()),
        adapter_(model, sampler_),
        copier_{{adapter_.source_tensor(), adapter_.target_tensor()}, {}},
        own_(nullptr, llama_free) {
    if (options.subject == Subject::esamp) {
      context_ = adapter_.init_context(params);
    } else {
      llama_context_params own_params = params;
      if (options.subject == Subject::taps_only) {
        own_params.cb_eval = TapCopier::on_eval;
        own_params.cb_eval_user_data = &copier_;
      }
      own_.reset(llama_init_from_model(model, own_params));
      context_ = own_.get();
    }
    if (!context_) fail("llama_init_from_model failed");
  }
  Side(const Side&) = delete;
  Side& operator=(const Side&) = delete;

  llama_context* context() const { return context_; }
  Adapter& adapter() { return adapter_; }

  void decode(const llama_batch& batch, bool esamp_role) {
    if (esamp_role && options_.subject == Subject::esamp) {
      adapter_.decode(batch);
      return;
    }
    copier_.armed = esamp_role;
    const int status = llama_decode(context_, batch);
    copier_.armed = false;
    if (status != 0) fail("llama_decode returned {} in a step", status);
  }

 private:
  const BenchOptions& options_;
  ExploratorySampler sampler_;
  Adapter adapter_;
  TapCopier copier_;
  ContextPtr own_;  // taps-only and control: a context of the side's own, not the adapter's
  llama_context* context_ = nullptr;
};

int run(int argc, const char* const* argv) {
  const BenchOptions options = parse(argc, argv);
  if (options.help) return 0;
  ModelPtr model = load_model(options.model_path);
  const int hidden = llama_model_n_embd(model.get());
  const int layers = llama_model_n_layer(model.get());
  if (options.work_only) {
    time_work(options, model.get(), options.threads > 0 ? options.threads : 2);
    return 0;
  }
  const std::vector<llama_token> prompt = tokenize(model.get(), "Once upon a time");
  const auto prompt_length = static_cast<int>(prompt.size());
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model.get()));

  fmt::print(
      "model {}: hidden {}, {} layers; rank {}; {}; {} measured steps after {} untimed (each "
      "side's one, and a new slot's young steps)\n\n",
      options.model_path, hidden, layers, options.rank,
      options.subject == Subject::taps_only ? "taps only, no esamp (the esamp column)"
      : options.subject == Subject::control ? "control: plain in both roles (the esamp column)"
      : options.plain_schedule              ? "plain schedule"
                                            : "the defaults",
      2 * ((options.steps + 1) / 2), 2 * warmup_steps(exploration_of(options, 1)));
  // esamp's floor (DESIGN.md §6): the bytes its step must move (one slot trained per step here)
  // at the memory's read bandwidth on llama.cpp's threads, which esamp's training shares.
  const double weight_bytes = step_weight_bytes(model.get(), options.model_path);
  const DistillerConfig distiller = distiller_of(options, hidden);
  const auto esamp_bytes = static_cast<double>(update_bytes(distiller));
  const double bandwidth = read_bandwidth(llama_threads(options));  // bytes per second
  fmt::print(
      "esamp's floor: {:.1f} MB per step at the memory's read bandwidth on {} threads, {:.1f} "
      "GB/s\n\n",
      esamp_bytes / 1e6, llama_threads(options), bandwidth / 1e9);
  double one_row_step = 0.0;  // seconds, the plain 1-row step's median
  fmt::print(
      "| rows | plain tok/s | esamp tok/s | esamp / plain (medians) | paired ratio: median "
      "[95% interval] | esamp / plain (total time) | the contexts' own ratio | esamp's floor, ms "
      "| ratio at the floor |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const int rows : kRowCounts) {
    const ExplorationConfig exploration = exploration_of(options, rows);
    // Each side is esamp every other step: twice the untimed steps, and whole pairs of steps.
    const int warmup = 2 * warmup_steps(exploration);
    const int measured = 2 * ((options.steps + 1) / 2);
    const llama_context_params params =
        context_params({rows, prompt_length + warmup + measured, options.threads});
    Side first(options, model.get(), distiller, exploration, params);
    Side second(options, model.get(), distiller, exploration, params);
    const std::array<Side*, 2> sides = {&first, &second};

    std::vector<llama_seq_id> sequences(static_cast<std::size_t>(rows));
    for (int s = 0; s < rows; ++s) sequences[static_cast<std::size_t>(s)] = s;
    const Span<const llama_seq_id> all(sequences.data(), sequences.size());
    Batch prefill(prompt_length, rows);
    for (int p = 0; p < prompt_length; ++p)
      prefill.add(prompt[static_cast<std::size_t>(p)], p, all, p + 1 == prompt_length);
    std::array<GroupId, 2> groups{};
    for (std::size_t i = 0; i < sides.size(); ++i) {
      if (llama_decode(sides[i]->context(), prefill.get()) != 0)
        fail("llama_decode of the prompt failed");
      groups[i] = sides[i]->adapter().open_group(all);
    }

    std::vector<double> plain_rates, esamp_rates;
    std::vector<double> paired, contexts;  // per pair of steps: the ratio; the contexts' own one
    double plain_total = 0.0, esamp_total = 0.0;  // seconds of the measured steps
    double previous_ratio = 0.0;                  // plain / esamp of the pair's first step
    Batch step(rows, 1);
    for (int j = 0; j < warmup + measured; ++j) {
      step.clear();
      // Any tokens time the same; each row reads its own.
      for (int s = 0; s < rows; ++s)
        step.add((7 * (j + 1) + 13 * s) % vocab, prompt_length + j,
                 Span<const llama_seq_id>(&sequences[static_cast<std::size_t>(s)], 1), true);
      // The roles swap every step; which of the two decodes first, every pair of steps.
      Side& esamp_side = *sides[static_cast<std::size_t>(j % 2)];
      Side& plain_side = *sides[static_cast<std::size_t>(1 - j % 2)];
      double plain_seconds = 0.0, esamp_seconds = 0.0;
      const auto time_plain = [&] {
        plain_seconds = seconds_of([&] { plain_side.decode(step.get(), false); });
      };
      const auto time_esamp = [&] {
        esamp_seconds = seconds_of([&] { esamp_side.decode(step.get(), true); });
      };
      if ((j / 2) % 2 == 0) {
        time_plain();
        time_esamp();
      } else {
        time_esamp();
        time_plain();
      }
      if (j < warmup) continue;
      plain_rates.push_back(rows / plain_seconds);
      esamp_rates.push_back(rows / esamp_seconds);
      plain_total += plain_seconds;
      esamp_total += esamp_seconds;
      const double ratio = plain_seconds / esamp_seconds;
      if (j % 2 == 0) {
        previous_ratio = ratio;
        continue;
      }
      // Over the pair, each context is timed in both roles: its own speed cancels out of the
      // geometric mean, and is what the square root of the quotient leaves.
      paired.push_back(std::sqrt(previous_ratio * ratio));
      contexts.push_back(std::sqrt(previous_ratio / ratio));
    }
    for (std::size_t i = 0; i < sides.size(); ++i) sides[i]->adapter().close_group(groups[i]);
    const double p = quantile(plain_rates, 0.5), e = quantile(esamp_rates, 0.5);
    const double plain_step = rows / p;  // seconds
    if (rows == 1) one_row_step = plain_step;
    const double floor_seconds = esamp_bytes / bandwidth;
    const auto [low, high] = median_interval(paired);
    fmt::print(
        "| {} | {:.2f} | {:.2f} | {:.3f} | {:.3f} [{:.3f}, {:.3f}] | {:.3f} | {:.3f} | {:.2f} | "
        "{:.3f} |\n",
        rows, p, e, e / p, quantile(paired, 0.5), low, high, plain_total / esamp_total,
        quantile(contexts, 0.5), 1e3 * floor_seconds, plain_step / (plain_step + floor_seconds));
    std::fflush(stdout);
  }
  fmt::print("\nplain 1-row steps read their {:.0f} MB of weights at {:.1f} GB/s\n",
             weight_bytes / 1e6, weight_bytes / one_row_step / 1e9);
  return 0;
}

}  // namespace
}  // namespace esamp::llama_cpp

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-bench-overhead-llama-cpp",
                                        [&] { return esamp::llama_cpp::run(argc, argv); });
}
