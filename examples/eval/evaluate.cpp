// evaluate(): one configuration over every (seed, prompt), with a SamplerBackend decorator that
// measures the distiller (and can retarget it at the final-normed state) without changing it.
#include "evaluate.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "esamp/cpu/backend.hpp"
#include "esamp/distiller.hpp"
#include "esamp/sampler.hpp"

namespace esamp::eval {
namespace {

using generation::GenerationResult;
using generation::QualitySummary;

// Means over rows of ||v − h||² / ||h||² and cos(v, h): how far a vector is from h's space.
class VersusH {
 public:
  template <class A, class B>
  void add(const A& v, const B& h) {
    const double h_norm = h.squaredNorm(), v_norm = v.squaredNorm();
    if (h_norm == 0.0 || v_norm == 0.0) return;
    residual_sum_ += (v - h).squaredNorm() / h_norm;
    cosine_sum_ += v.dot(h) / std::sqrt(h_norm * v_norm);
    ++rows_;
  }
  double residual() const { return rows_ > 0 ? residual_sum_ / rows_ : kNaN; }
  double cosine() const { return rows_ > 0 ? cosine_sum_ / rows_ : kNaN; }

 private:
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double residual_sum_ = 0.0, cosine_sum_ = 0.0;
  std::int64_t rows_ = 0;
};

// The CPU backend, observed: it accumulates the training target's statistics and, in latent mode,
// how the mixed prediction ŷ relates to h.
class DiagnosticBackend final : public SamplerBackend {
 public:
  // `inner`: the engine's backend, for a bank of `hidden` wide rows.
  DiagnosticBackend(std::unique_ptr<SamplerBackend> inner, int hidden, MixMode mix)
      : inner_(std::move(inner)),
        mix_(mix),
        target_sum_(Eigen::VectorXd::Zero(hidden)),
        target_squares_(Eigen::VectorXd::Zero(hidden)) {}

  Device device() const override { return inner_->device(); }
  void reset_slot(int slot, int from) override { inner_->reset_slot(slot, from); }
  void begin_step(Span<const int> row_slots, Span<const float> row_beta) override {
    row_slots_.assign(row_slots.begin(), row_slots.end());
    row_beta_.assign(row_beta.begin(), row_beta.end());
    inner_->begin_step(row_slots, row_beta);
  }
  void on_source(const ConstMatrixView& source) override {
    inner_->on_source(source);
    // ŷ as the bank predicts it now, before this step's update: what mix_hidden mixes in.
    if (mix_ != MixMode::latent ||
        std::all_of(row_beta_.begin(), row_beta_.end(), [](float b) { return b == 0.0f; }))
      return;
    y_hat_.resize(source.rows, source.cols);
    LatentDistiller(inner_->bank())
        .predict(
            row_slots_, source,
            MatrixView(y_hat_.data(), y_hat_.rows(), y_hat_.cols(), y_hat_.cols(), DType::f32));
  }
  void on_target(const ConstMatrixView& target) override {
    observe_target(target);
    target_.resize(target.rows, target.cols);
    for (std::int64_t r = 0; r < target.rows; ++r)
      for (std::int64_t c = 0; c < target.cols; ++c) target_(r, c) = target.at(r, c);
    inner_->on_target(target);
  }

  void mix_hidden(const MatrixView& final_hidden) override {
    before_.resize(final_hidden.rows, final_hidden.cols);
    for (std::int64_t r = 0; r < final_hidden.rows; ++r)
      for (std::int64_t c = 0; c < final_hidden.cols; ++c) before_(r, c) = final_hidden.at(r, c);
    // What a perfect distiller would mix in: the target tap, against h.
    for (Eigen::Index r = 0; r < before_.rows(); ++r)
      target_vs_h_.add(target_.row(r).cast<double>(), before_.row(r).cast<double>());
    inner_->mix_hidden(final_hidden);
    for (std::int64_t r = 0; r < final_hidden.rows; ++r) {
      if (row_beta_[static_cast<std::size_t>(r)] == 0.0f) continue;
      bool mixed = false;
      for (std::int64_t c = 0; c < final_hidden.cols; ++c)
        mixed = mixed || final_hidden.at(r, c) != before_(r, c);
      if (mixed) prediction_vs_h_.add(y_hat_.row(r).cast<double>(), before_.row(r).cast<double>());
    }
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

  Diagnostics diagnostics() {
    constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    Diagnostics d;
    d.stats = inner_->stats();
    const auto n = static_cast<double>(target_rows_);
    d.target_variance =
        target_rows_ > 0 ? (target_squares_ / n - (target_sum_ / n).cwiseAbs2()).mean() : kNaN;
    d.prediction_residual = prediction_vs_h_.residual();
    d.prediction_cosine = prediction_vs_h_.cosine();
    d.target_residual = target_vs_h_.residual();
    d.target_cosine = target_vs_h_.cosine();
    return d;
  }

 private:
  void observe_target(const ConstMatrixView& target) {
    for (std::int64_t r = 0; r < target.rows; ++r) {
      for (std::int64_t c = 0; c < target.cols; ++c) {
        const double y = target.at(r, c);
        target_sum_[c] += y;
        target_squares_[c] += y * y;
      }
    }
    target_rows_ += target.rows;
  }

  std::unique_ptr<SamplerBackend> inner_;
  MixMode mix_;
  std::vector<int> row_slots_;      // [rows] this step's slots
  std::vector<float> row_beta_;     // [rows] β of each row, this step
  llama::RowMatrix before_;         // [rows, hidden] h before mixing, this step
  Eigen::VectorXd target_sum_;      // [hidden]
  Eigen::VectorXd target_squares_;  // [hidden]
  std::int64_t target_rows_ = 0;
  llama::RowMatrix target_;  // [rows, hidden] the target tap, this step
  llama::RowMatrix y_hat_;   // [rows, hidden] this step's prediction (latent mode)
  VersusH prediction_vs_h_, target_vs_h_;
};

}  // namespace

MetricValues prompt_metrics(const GenerationResult& result, const embed::SentenceEncoder* encoder) {
  const QualitySummary s = generation::summarize({result}, encoder);
  return {s.perplexity,        s.median_perplexity, s.distinct_words[0], s.distinct_words[1],
          s.distinct_words[2], s.distinct_words[3], s.ngram_cosine,      s.hidden_cosine,
          s.ngram_vendi,       s.hidden_vendi,      s.semantic_cosine,   s.semantic_vendi,
          s.seq_rep_4,         s.loop_share,        s.relevance};
}

ConfigResult evaluate(generation::SampleEngine& engine, const std::vector<std::string>& prompts,
                      const EvalSettings& settings, const EvalConfig& config,
                      const embed::SentenceEncoder* encoder,
                      const std::function<void(int)>& on_tokens, const ResultCallback& on_result) {
  ConfigResult out;
  out.config = config;
  generation::GenerationSettings generation_settings;
  generation_settings.samples = settings.samples;
  generation_settings.max_new_tokens = settings.max_new_tokens;
  generation_settings.filter = config.filter;
  generation_settings.group_per_sample = config.group_per_sample;
  generation_settings.on_tokens = on_tokens;
  const int sequence_tokens =
      generation::max_sequence_tokens(engine, prompts, settings.max_new_tokens);
  Diagnostics total;
  double variance_sum = 0.0, residual_sum = 0.0, cosine_sum = 0.0, target_residual_sum = 0.0,
         target_cosine_sum = 0.0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::uint64_t seed : settings.seeds) {
    // A fresh sampler and context per seed: a seed's numbers do not depend on the others'.
    std::unique_ptr<ExploratorySampler> sampler;
    DiagnosticBackend* diagnostic = nullptr;
    if (config.esamp) {
      DistillerConfig distiller;
      distiller.rank = config.rank;  // 0: the engine's default_rank
      distiller.lr = config.lr;
      distiller.seed = seed;
      if (config.group_per_sample) distiller.slots = settings.samples;
      ExplorationConfig exploration = config.exploration;
      exploration.max_rows = settings.samples;
      const generation::BackendDecorator observed =
          [&](std::unique_ptr<SamplerBackend> inner) -> std::unique_ptr<SamplerBackend> {
        auto backend = std::make_unique<DiagnosticBackend>(std::move(inner), engine.hidden_size(),
                                                           config.exploration.mix);
        diagnostic = backend.get();
        return backend;
      };
      sampler = engine.make_sampler(distiller, exploration, observed);
    }
    const std::unique_ptr<generation::SampleSession> session =
        engine.open(sampler.get(), settings.samples, sequence_tokens);
    generation_settings.seed = seed;
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      generation_settings.first_sequence = p * static_cast<std::uint64_t>(settings.samples);
      const GenerationResult result = session->generate(prompts[p], generation_settings);
      out.sampled_tokens += result.sampled_tokens;
      const auto metrics_start = std::chrono::steady_clock::now();
      out.units.push_back(prompt_metrics(result, encoder));
      out.metric_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - metrics_start).count();
      out.samples += static_cast<std::int64_t>(result.samples.size());
      if (on_result) on_result(seed, p, result);
    }
    if (diagnostic != nullptr) {
      const Diagnostics d = diagnostic->diagnostics();
      // Seeds weigh equally: their runs have the same prompts and budgets.
      total.stats.steps += d.stats.steps;
      total.stats.rows_trained += d.stats.rows_trained;
      total.stats.rows_mixed += d.stats.rows_mixed;
      total.stats.rows_skipped_nonfinite += d.stats.rows_skipped_nonfinite;
      total.stats.slot_updates += d.stats.slot_updates;
      total.stats.last_loss = d.stats.last_loss;
      total.stats.mean_loss += d.stats.mean_loss;
      variance_sum += d.target_variance;
      residual_sum += d.prediction_residual;
      cosine_sum += d.prediction_cosine;
      target_residual_sum += d.target_residual;
      target_cosine_sum += d.target_cosine;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (config.esamp) {
    const auto seeds = static_cast<double>(settings.seeds.size());
    total.stats.mean_loss /= seeds;
    total.target_variance = variance_sum / seeds;
    total.prediction_residual = residual_sum / seeds;
    total.prediction_cosine = cosine_sum / seeds;
    total.target_residual = target_residual_sum / seeds;
    total.target_cosine = target_cosine_sum / seeds;
    out.diagnostics = total;
  }
  for (std::size_t m = 0; m < kMetricCount; ++m) {
    std::vector<double> values;
    values.reserve(out.units.size());
    for (const MetricValues& unit : out.units) values.push_back(unit[m]);
    out.metrics[m] = mean_interval(values);
  }
  return out;
}

}  // namespace esamp::eval
