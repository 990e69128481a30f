// esamp-loops: a token-by-token trace of esamp inside llama.cpp, to find out why its samples loop
// and leave the prompt (issue 26, item 4; bench/results/gemma-loops.md). It decodes the samples of
// each prompt as one batch through esamp::llama_cpp::Adapter and, in lockstep, the same tokens in a
// plain context (the base model's logits for the same prefix). For every generated token it writes
// the distiller's error on that row, the split of the mix into a rescaling of h and a push
// orthogonal to it, and what the mix did to the next-token distribution: entropies, the chosen
// token's rank, the probability of copying the token that followed the last earlier occurrence of
// the current bigram, and the probability mass on tokens already in the text. One JSON line per
// sample (bench/quality/loops_analyze.py reads them).
#include <fmt/format.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "esamp/cpu/latent_mix.hpp"
#include "esamp/distiller.hpp"
#include "esamp/llama_cpp.hpp"
#include "generate/option_values.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::loops {
namespace {

using generation::OptionSpec;
using generation::parse_float;
using generation::parse_int;
using generation::UsageError;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Options {
  std::string model_path, out_path;
  std::vector<std::string> prompts{"Once upon a time"};
  bool prompt_given = false;
  int samples = 8;
  int new_tokens = 80;
  Filter filter;
  float beta = ExplorationConfig{}.beta;
  // > 0: draw only among the tokens whose base probability (at the temperature) is at least this
  // times the most likely one's: DESIGN.md's candidates mode, with the base model's min-p filter.
  float plausible = 0.0f;
  int threads = 0;
  std::uint64_t seed = 0;
  DistillerConfig distiller;
  ExplorationConfig exploration;
  bool help = false;
};

int parse_layer(std::string_view option, const std::string& v) {
  return parse_int(option, v, -1024, 1023);
}

const std::vector<OptionSpec<Options>>& option_table() {
  using namespace generation;
  static const std::vector<OptionSpec<Options>> table = joined<Options>(
      {{
           {"--model", "PATH", "a GGUF model llama.cpp loads (required)",
            [](Options& o, auto, const std::string& v) { o.model_path = v; }},
           {"--out", "PATH", "the trace, one JSON line per sample (required)",
            [](Options& o, auto, const std::string& v) { o.out_path = v; }},
       },
       sampling_options<Options>(),
       {
           {"--threads", "N", "llama.cpp threads [its default]",
            [](Options& o, auto option, const std::string& v) {
              o.threads = parse_int(option, v, 1, 1024);
            }},
           {"--seed", "S", "seed of the samplers and of the distiller's init [0]",
            [](Options& o, auto option, const std::string& v) {
              o.seed = parse_number<std::uint64_t>(option, v, "an unsigned 64-bit integer");
            }},
           {"--rank", "R", "distiller rank [128, capped at the hidden size]",
            [](Options& o, auto option, const std::string& v) {
              o.distiller.rank = parse_int(option, v, 1, 1 << 20);
            }},
           {"--lr", "LR", "distiller learning rate [library default]",
            [](Options& o, auto option, const std::string& v) {
              o.distiller.lr = parse_float(option, v, 0.0f, 10.0f, true);
            }},
           {"--mix", "full|orthogonal|norm_kept", "latent mix [full]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.latent_mix =
                  parse_choice<LatentMix>(option, v,
                                          {{"full", LatentMix::full},
                                           {"orthogonal", LatentMix::orthogonal},
                                           {"norm_kept", LatentMix::norm_kept}});
            }},
           {"--warm-start", "0|1", "warm start from the last closed group [library default]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.warm_start = parse_int(option, v, 0, 1) == 1;
            }},
           {"--young-updates", "N", "updates while young [library default]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.young_updates = parse_int(option, v, 0, 1000000);
            }},
           {"--young-repeat", "N", "updates per step while young [library default]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.young_repeat = parse_int(option, v, 1, 64);
            }},
           {"--lr-decay", "D", "lr · D / (D + n) after n updates, 0 = off [0]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.lr_decay_updates = parse_int(option, v, 0, 1000000);
            }},
           {"--source", "LAYER", "source tap: attn_norm-LAYER [0]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.source = {parse_layer(option, v), Site::layer_input_normed};
            }},
           {"--target", "LAYER|final", "target tap: attn_norm-LAYER, or result_norm [final]",
            [](Options& o, auto option, const std::string& v) {
              o.exploration.target = v == "final"
                                         ? Tap{-1, Site::final_normed}
                                         : Tap{parse_layer(option, v), Site::layer_input_normed};
            }},
           {"--plausible", "P",
            "draw the mixed logits only among tokens with base probability >= P x the largest "
            "(candidates mode with a base min-p filter) [0 = off]",
            [](Options& o, auto option, const std::string& v) {
              o.plausible = parse_float(option, v, 0.0f, 1.0f);
            }},
           {"--help", "", "this text", [](Options& o, auto, auto&) { o.help = true; }},
       }});
  return table;
}

// A SamplerBackend that forwards every hook to the real one and keeps, for the step under way,
// each row's source x, target y, prediction ŷ (re-computed on the CPU from the bank as it stands
// before the step: the prediction the real backend mixes with) and h before and after the mix.
class Recorder final : public SamplerBackend {
 public:
  explicit Recorder(std::unique_ptr<SamplerBackend> inner) : inner_(std::move(inner)) {}

  RowMatrix x, y, y_hat, h, h_mixed;  // [rows, hidden] of the last step
  std::vector<std::int64_t> updates;  // [rows] updates of the row's slot before the step
  std::vector<float> row_beta;        // [rows]

  Device device() const override { return inner_->device(); }
  void reset_slot(int slot, int from) override { inner_->reset_slot(slot, from); }
  void begin_step(Span<const int> row_slots, Span<const float> beta) override {
    slots_.assign(row_slots.begin(), row_slots.end());
    row_beta.assign(beta.begin(), beta.end());
    inner_->begin_step(row_slots, beta);
  }
  void on_source(const ConstMatrixView& source) override {
    x = copy(source);
    const LatentDistiller bank(inner_->bank());  // waits for the previous step's update
    updates.clear();
    for (const int slot : slots_) updates.push_back(bank.updates(slot));
    y_hat.resize(x.rows(), x.cols());
    bank.predict(slots_, ConstMatrixView(x.data(), x.rows(), x.cols()),
                 MatrixView(y_hat.data(), y_hat.rows(), y_hat.cols()));
    inner_->on_source(source);
  }
  void on_target(const ConstMatrixView& target) override {
    y = copy(target);
    inner_->on_target(target);
  }
  void mix_hidden(const MatrixView& final_hidden) override {
    h = copy(final_hidden);
    inner_->mix_hidden(final_hidden);
    h_mixed = copy(final_hidden);
  }
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override {
    inner_->mix_logits(logits, lm_head, filter);
  }
  void end_step() override { inner_->end_step(); }
  Stats stats() override { return inner_->stats(); }
  GroupStats slot_stats(int slot) override { return inner_->slot_stats(slot); }
  BankState bank() override { return inner_->bank(); }
  void set_bank(const BankState& state) override { inner_->set_bank(state); }

 private:
  static RowMatrix copy(const ConstMatrixView& m) {
    RowMatrix out(m.rows, m.cols);
    for (std::int64_t i = 0; i < m.rows; ++i)
      for (std::int64_t j = 0; j < m.cols; ++j) out(i, j) = m.at(i, j);
    return out;
  }
  std::unique_ptr<SamplerBackend> inner_;
  std::vector<int> slots_;
};

// Softmax statistics of logits · scale / T over the whole vocabulary.
struct Softmax {
  double log_z = 0.0, entropy = 0.0, max_z = 0.0, scale = 1.0;
  Softmax(const float* logits, int vocab, double scale_over_t) : scale(scale_over_t) {
    max_z = -std::numeric_limits<double>::infinity();
    for (int v = 0; v < vocab; ++v) max_z = std::max(max_z, scale * logits[v]);
    double z = 0.0, weighted = 0.0;
    for (int v = 0; v < vocab; ++v) {
      const double d = scale * logits[v] - max_z, e = std::exp(d);
      z += e;
      weighted += e * d;
    }
    log_z = std::log(z);
    entropy = log_z - weighted / z;
  }
  double log_p(const float* logits, int v) const { return scale * logits[v] - max_z - log_z; }
};

int rank_of(const float* logits, int vocab, int token) {
  int above = 0;
  for (int v = 0; v < vocab; ++v) above += logits[v] > logits[token] ? 1 : 0;
  return above;
}

// The token that followed the last earlier occurrence of the text's final bigram (else of its
// final token), or -1: what an induction-style copy would write next.
int copy_candidate(const std::vector<llama_token>& text) {
  const auto n = static_cast<std::ptrdiff_t>(text.size());
  if (n < 2) return -1;
  for (std::ptrdiff_t j = n - 2; j >= 1; --j)
    if (text[j] == text[n - 1] && text[j - 1] == text[n - 2]) return text[j + 1];
  for (std::ptrdiff_t j = n - 2; j >= 0; --j)
    if (text[j] == text[n - 1]) return text[j + 1];
  return -1;
}

struct Trace {  // one sample's columns, one entry per generated token
  std::vector<int> token, mixed, rank_base, rank_mix, copy_token, updates;
  std::vector<double> lp_base, ent_base, ent_sharp, ent_mix, p_mix_chosen;
  std::vector<double> p_copy_base, p_copy_sharp, p_copy_mix, seen_base, seen_sharp, seen_mix;
  // The current token written again (an immediate repeat), and the push's logit on it and on the
  // copy token beside its mean under the rescaled-only distribution ((ℓ̃ − s·ℓ)/T, centred).
  std::vector<double> p_self_base, p_self_sharp, p_self_mix, push_self, push_copy;
  std::vector<double> loss, target_var, rel_err, cos_target, a, e_perp, s, push;
};

nlohmann::json to_json(const Trace& t) {
  nlohmann::json j;
#define ESAMP_COLUMN(name) j[#name] = t.name
  ESAMP_COLUMN(token);
  ESAMP_COLUMN(mixed);
  ESAMP_COLUMN(rank_base);
  ESAMP_COLUMN(rank_mix);
  ESAMP_COLUMN(copy_token);
  ESAMP_COLUMN(updates);
  ESAMP_COLUMN(lp_base);
  ESAMP_COLUMN(ent_base);
  ESAMP_COLUMN(ent_sharp);
  ESAMP_COLUMN(ent_mix);
  ESAMP_COLUMN(p_mix_chosen);
  ESAMP_COLUMN(p_copy_base);
  ESAMP_COLUMN(p_copy_sharp);
  ESAMP_COLUMN(p_copy_mix);
  ESAMP_COLUMN(seen_base);
  ESAMP_COLUMN(seen_sharp);
  ESAMP_COLUMN(seen_mix);
  ESAMP_COLUMN(p_self_base);
  ESAMP_COLUMN(p_self_sharp);
  ESAMP_COLUMN(p_self_mix);
  ESAMP_COLUMN(push_self);
  ESAMP_COLUMN(push_copy);
  ESAMP_COLUMN(loss);
  ESAMP_COLUMN(target_var);
  ESAMP_COLUMN(rel_err);
  ESAMP_COLUMN(cos_target);
  ESAMP_COLUMN(a);
  ESAMP_COLUMN(e_perp);
  ESAMP_COLUMN(s);
  ESAMP_COLUMN(push);
#undef ESAMP_COLUMN
  return j;
}

class Tracer {
 public:
  Tracer(llama_model* model, const Options& options, int context_tokens)
      : model_(model),
        options_(options),
        vocab_(llama_vocab_n_tokens(llama_model_get_vocab(model))) {
    DistillerConfig distiller = options.distiller;
    distiller.hidden_size = llama_model_n_embd(model);
    distiller.rank = std::min(distiller.rank, distiller.hidden_size);
    distiller.seed = options.seed;
    ExplorationConfig exploration = options.exploration;
    exploration.beta = options.beta;
    exploration.max_rows = options.samples;
    exploration.training_threads = std::min(
        256, options.threads > 0 ? options.threads : llama_context_default_params().n_threads);
    const BackendFactory inner = llama_cpp::backend();
    sampler_ = std::make_unique<ExploratorySampler>(
        llama_model_n_layer(model), distiller, exploration,
        [this, inner](const DistillerConfig& d, const ExplorationConfig& e) {
          auto recorder = std::make_unique<Recorder>(inner(d, e));
          recorder_ = recorder.get();
          return std::unique_ptr<SamplerBackend>(std::move(recorder));
        });
    const llama_context_params params =
        llama_cpp::context_params({options.samples, context_tokens, options.threads});
    adapter_ = std::make_unique<llama_cpp::Adapter>(model, *sampler_);
    adapter_->init_context(params);
    plain_.reset(llama_init_from_model(model, params));
    if (!plain_) fail("llama_init_from_model failed for the plain context");
  }

  // The prompt's samples as JSON objects, one per sample.
  std::vector<nlohmann::json> run(std::size_t prompt_index) {
    const std::string& prompt = options_.prompts[prompt_index];
    const std::vector<llama_token> prompt_tokens = llama_cpp::tokenize(model_, prompt);
    const auto prompt_length = static_cast<int>(prompt_tokens.size());
    const auto samples = static_cast<std::size_t>(options_.samples);
    const llama_vocab* vocab = llama_model_get_vocab(model_);
    llama_context* esamp_context = adapter_->context();
    std::vector<std::unique_ptr<llama_sampler, void (*)(llama_sampler*)>> chains;
    std::vector<llama_seq_id> sequences(samples);
    for (std::size_t s = 0; s < samples; ++s) {
      chains.emplace_back(
          llama_cpp::make_sampler_chain(
              options_.filter, llama_cpp::chain_seed(options_.seed, prompt_index * samples + s)),
          llama_sampler_free);
      sequences[s] = static_cast<llama_seq_id>(s);
    }
    for (llama_context* context : {esamp_context, plain_.get()}) {
      llama_memory_clear(llama_get_memory(context), true);
      llama_cpp::Batch prefill(prompt_length, options_.samples);
      for (int p = 0; p < prompt_length; ++p)
        prefill.add(prompt_tokens[static_cast<std::size_t>(p)], p,
                    Span<const llama_seq_id>(sequences.data(), samples), p + 1 == prompt_length);
      if (const int status = llama_decode(context, prefill.get()); status != 0)
        fail("llama_decode of the prompt returned {}", status);
    }
    std::vector<std::vector<llama_token>> text(samples, prompt_tokens);  // prompt + sample
    std::vector<std::vector<std::uint8_t>> seen(samples, std::vector<std::uint8_t>(vocab_, 0));
    std::vector<std::vector<llama_token>> seen_list(samples);
    for (std::size_t s = 0; s < samples; ++s)
      for (const llama_token t : prompt_tokens) mark_seen(seen[s], seen_list[s], t);
    std::vector<Trace> traces(samples);
    std::vector<bool> stopped(samples, false);
    std::vector<std::size_t> active(samples);
    for (std::size_t s = 0; s < samples; ++s) active[s] = s;

    // Row r of the last decode is sample active[r]; with_step: the recorder holds its step.
    const auto draw = [&](bool from_prefill) {
      std::size_t kept = 0;
      for (std::size_t r = 0; r < active.size(); ++r) {
        const std::size_t s = active[r];
        const int output = from_prefill ? prompt_length - 1 : static_cast<int>(r);
        const float* mixed = llama_get_logits_ith(esamp_context, output);
        const float* base = llama_get_logits_ith(plain_.get(), output);
        const llama_token token =
            options_.plausible > 0.0f
                ? draw_plausible(chains[s].get(), base, mixed)
                : llama_sampler_sample(chains[s].get(), esamp_context, output);
        if (llama_vocab_is_eog(vocab, token) || token == llama_vocab_bos(vocab)) {
          stopped[s] = true;
          continue;
        }
        record(traces[s], base, mixed, token, text[s], seen_list[s],
               from_prefill ? -1 : static_cast<int>(r));
        text[s].push_back(token);
        mark_seen(seen[s], seen_list[s], token);
        if (text[s].size() - prompt_tokens.size() < static_cast<std::size_t>(options_.new_tokens))
          active[kept++] = s;
      }
      active.resize(kept);
    };
    draw(true);
    const GroupId group = adapter_->open_group(Span<const llama_seq_id>(sequences.data(), samples));
    llama_cpp::Batch step(options_.samples, 1);
    while (!active.empty()) {
      step.clear();
      for (const std::size_t s : active)
        step.add(text[s].back(), static_cast<llama_pos>(text[s].size() - 1),
                 Span<const llama_seq_id>(&sequences[s], 1), true);
      if (const int status = adapter_->decode(step.get()); status != 0)
        fail("llama_decode returned {}", status);
      if (const int status = llama_decode(plain_.get(), step.get()); status != 0)
        fail("llama_decode of the plain context returned {}", status);
      draw(false);
    }
    adapter_->close_group(group);

    std::vector<nlohmann::json> lines;
    for (std::size_t s = 0; s < samples; ++s) {
      const std::vector<llama_token> generated(text[s].begin() + prompt_length, text[s].end());
      nlohmann::json line = to_json(traces[s]);
      line["prompt_index"] = prompt_index;
      line["prompt"] = llama_cpp::detokenize(model_, prompt_tokens);
      line["sample"] = s;
      line["stopped"] = static_cast<bool>(stopped[s]);
      line["text"] = llama_cpp::detokenize(model_, generated);
      std::vector<std::string> pieces;
      for (const llama_token t : generated) pieces.push_back(llama_cpp::detokenize(model_, {t}));
      line["pieces"] = pieces;
      lines.push_back(std::move(line));
    }
    return lines;
  }

  // max |h̃ − mix(h, ŷ)| over every mixed element so far: 0 up to rounding when the recorded ŷ is
  // the one the backend mixed with.
  double max_mix_error() const { return max_mix_error_; }
  Stats stats() { return sampler_->stats(); }

 private:
  static void mark_seen(std::vector<std::uint8_t>& seen, std::vector<llama_token>& list,
                        llama_token t) {
    if (!seen[static_cast<std::size_t>(t)]) list.push_back(t);
    seen[static_cast<std::size_t>(t)] = 1;
  }

  // A draw by `chain` from the mixed logits of the tokens the base logits find plausible.
  llama_token draw_plausible(llama_sampler* chain, const float* base, const float* mixed) {
    const float t = options_.filter.temperature > 0.0f ? options_.filter.temperature : 1.0f;
    const float floor = *std::max_element(base, base + vocab_) + t * std::log(options_.plausible);
    candidates_.clear();
    for (int v = 0; v < vocab_; ++v)
      if (base[v] >= floor) candidates_.push_back({v, mixed[v], 0.0f});
    llama_token_data_array array{candidates_.data(), candidates_.size(), -1, false};
    llama_sampler_apply(chain, &array);
    const llama_token token = array.data[array.selected].id;
    llama_sampler_accept(chain, token);
    return token;
  }

  // One token's columns; `row` is its row in the recorder's step, -1 for the prefill's draw.
  void record(Trace& t, const float* base, const float* mixed, llama_token token,
              const std::vector<llama_token>& text, const std::vector<llama_token>& seen_list,
              int row) {
    const double inv_t =
        options_.filter.temperature > 0.0f ? 1.0 / options_.filter.temperature : 1.0;
    double s = 1.0;  // h̃ = s·h + push, push ⟂ h
    bool was_mixed = false;
    if (row >= 0) {
      const Recorder& rec = *recorder_;
      const auto h = rec.h.row(row).cast<double>();
      const auto h_mixed = rec.h_mixed.row(row).cast<double>();
      const auto y = rec.y.row(row).cast<double>();
      const auto y_hat = rec.y_hat.row(row).cast<double>();
      const double hh = h.squaredNorm();
      const double a = y_hat.dot(h) / hh;
      was_mixed =
          rec.row_beta[static_cast<std::size_t>(row)] > 0.0f &&
          rec.updates[static_cast<std::size_t>(row)] >= sampler_->exploration().warmup_updates;
      s = h_mixed.dot(h) / hh;
      t.loss.push_back((y_hat - y).squaredNorm() / static_cast<double>(y.size()));
      t.target_var.push_back((y.array() - y.mean()).square().mean());
      t.rel_err.push_back((y_hat - y).norm() / y.norm());
      t.cos_target.push_back(y_hat.dot(y) / (y_hat.norm() * y.norm()));
      t.a.push_back(a);
      t.e_perp.push_back((y_hat - a * h).norm() / std::sqrt(hh));
      t.s.push_back(s);
      t.push.push_back((h_mixed - s * h).norm() / std::sqrt(hh));
      t.updates.push_back(static_cast<int>(rec.updates[static_cast<std::size_t>(row)]));
      if (was_mixed) {
        Eigen::VectorXf expect = rec.h.row(row).transpose();
        cpu::mix_latent_row(expect.data(), rec.y_hat.row(row).data(), expect.size(),
                            rec.row_beta[static_cast<std::size_t>(row)],
                            sampler_->exploration().latent_mix);
        max_mix_error_ = std::max(
            max_mix_error_,
            static_cast<double>((expect.transpose() - rec.h_mixed.row(row)).cwiseAbs().maxCoeff()));
      }
    } else {
      for (auto* column :
           {&t.loss, &t.target_var, &t.rel_err, &t.cos_target, &t.a, &t.e_perp, &t.s, &t.push})
        column->push_back(std::nan(""));
      t.updates.push_back(-1);
    }
    const Softmax p_base(base, vocab_, inv_t), p_sharp(base, vocab_, s * inv_t),
        p_mix(mixed, vocab_, inv_t), p_base_1(base, vocab_, 1.0);
    t.token.push_back(token);
    t.mixed.push_back(was_mixed ? 1 : 0);
    t.rank_base.push_back(rank_of(base, vocab_, token));
    t.rank_mix.push_back(rank_of(mixed, vocab_, token));
    t.lp_base.push_back(p_base_1.log_p(base, token));
    t.ent_base.push_back(p_base.entropy);
    t.ent_sharp.push_back(p_sharp.entropy);
    t.ent_mix.push_back(p_mix.entropy);
    t.p_mix_chosen.push_back(std::exp(p_mix.log_p(mixed, token)));
    const int copy = copy_candidate(text);
    t.copy_token.push_back(copy);
    const auto p_or_nan = [copy](const Softmax& p, const float* logits) {
      return copy < 0 ? std::nan("") : std::exp(p.log_p(logits, copy));
    };
    t.p_copy_base.push_back(p_or_nan(p_base, base));
    t.p_copy_sharp.push_back(p_or_nan(p_sharp, base));
    t.p_copy_mix.push_back(p_or_nan(p_mix, mixed));
    double mass_base = 0.0, mass_sharp = 0.0, mass_mix = 0.0;
    for (const llama_token v : seen_list) {
      mass_base += std::exp(p_base.log_p(base, v));
      mass_sharp += std::exp(p_sharp.log_p(base, v));
      mass_mix += std::exp(p_mix.log_p(mixed, v));
    }
    t.seen_base.push_back(mass_base);
    t.seen_sharp.push_back(mass_sharp);
    t.seen_mix.push_back(mass_mix);
    const llama_token self = text.back();
    t.p_self_base.push_back(std::exp(p_base.log_p(base, self)));
    t.p_self_sharp.push_back(std::exp(p_sharp.log_p(base, self)));
    t.p_self_mix.push_back(std::exp(p_mix.log_p(mixed, self)));
    // The push in logits over T: (ℓ̃ − s·ℓ)/T, centred on its mean under the rescaled-only draw.
    const auto push_at = [&](int v) { return (mixed[v] - s * base[v]) * inv_t; };
    double mean_push = 0.0;
    for (int v = 0; v < vocab_; ++v) mean_push += std::exp(p_sharp.log_p(base, v)) * push_at(v);
    t.push_self.push_back(push_at(self) - mean_push);
    t.push_copy.push_back(copy < 0 ? std::nan("") : push_at(copy) - mean_push);
  }

  llama_model* model_;
  const Options& options_;
  int vocab_;
  Recorder* recorder_ = nullptr;  // owned by the sampler
  std::unique_ptr<ExploratorySampler> sampler_;
  std::unique_ptr<llama_cpp::Adapter> adapter_;
  struct ContextDeleter {
    void operator()(llama_context* context) const { llama_free(context); }
  };
  std::unique_ptr<llama_context, ContextDeleter> plain_;
  double max_mix_error_ = 0.0;
  std::vector<llama_token_data> candidates_;
};

int run_program(int argc, const char* const* argv) {
  Options options;
  generation::parse_command_line(argc, argv, option_table(), options);
  if (options.help) {
    fmt::print(
        "Usage: esamp-loops --model PATH --out PATH [options]\n"
        "A token-by-token trace of esamp in llama.cpp (bench/quality/loops.cpp).\n\n{}",
        generation::options_help(option_table()));
    return 0;
  }
  if (options.model_path.empty() || options.out_path.empty())
    throw UsageError("--model and --out are required (see --help)");
  llama_cpp::ModelPtr model = llama_cpp::load_model(options.model_path);
  int context = 0;
  for (const std::string& prompt : options.prompts)
    context = std::max(context, static_cast<int>(llama_cpp::tokenize(model.get(), prompt).size()) +
                                    options.new_tokens);
  Tracer tracer(model.get(), options, context);
  std::ofstream out(options.out_path);
  if (!out) throw UsageError(fmt::format("--out {}: cannot be written", options.out_path));
  for (std::size_t p = 0; p < options.prompts.size(); ++p) {
    for (nlohmann::json& line : tracer.run(p)) {
      line["beta"] = options.beta;
      line["temperature"] = options.filter.temperature;
      line["plausible"] = options.plausible;
      out << line.dump() << '\n';
    }
    out.flush();
    fmt::print(stderr, "prompt {}/{} done\n", p + 1, options.prompts.size());
  }
  const Stats stats = tracer.stats();
  fmt::print(stderr, "rows mixed {}, slot updates {}, mean loss {:.4f}, max |mix error| {:.3g}\n",
             stats.rows_mixed, stats.slot_updates, stats.mean_loss, tracer.max_mix_error());
  return 0;
}

}  // namespace
}  // namespace esamp::loops

int main(int argc, char** argv) {
  return esamp::generation::run_guarded("esamp-loops",
                                        [&] { return esamp::loops::run_program(argc, argv); });
}
