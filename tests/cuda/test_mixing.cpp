// GPU tests: latent mixing, candidate mixing and token sampling against the CPU sampler's
// formulas, esamp::select_candidates and esamp::sample. Without a CUDA device every case warns and
// returns (see gpu_util.hpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cuda/mix.cuh"
#include "cuda/sampling.cuh"
#include "cuda/workspace.hpp"
#include "esamp/cpu/latent_mix.hpp"
#include "esamp/sampling.hpp"
#include "gpu_util.hpp"

using namespace esamp;
using namespace esamp::cuda;
using namespace esamp::test;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The step state the mixing kernels read: a plan with each row's β, predictions, source flags and
// warm-up counts. Rows get different β (beta, 1.5 beta, and 0 for input row 1) as groups do.
struct MixFixture {
  int rows, hidden;
  StepPlanLayout layout;
  std::vector<std::int32_t> plan_host;
  std::vector<int> row_slots;               // by input row
  std::vector<float> row_beta;              // by input row
  std::vector<float> y_hat;                 // [rows, H] by position
  std::vector<std::uint8_t> source_finite;  // by position
  std::vector<std::int64_t> segment_steps;
  MixSettings settings;
  DeviceArray<std::int32_t> plan;
  DeviceArray<float> y_hat_dev;
  DeviceArray<std::uint8_t> source_finite_dev;
  DeviceArray<std::int64_t> segment_steps_dev;
  DeviceArray<MixSettings> settings_dev;
  DeviceArray<Stats> stats;
  DeviceArray<GroupStats> slot_stats;  // [slots]

  MixFixture(int n_rows, int n_hidden, int slots, float beta)
      : rows(n_rows),
        hidden(n_hidden),
        layout(StepPlanLayout::make(n_rows, slots)),
        plan_host(static_cast<std::size_t>(layout.size())),
        row_slots(static_cast<std::size_t>(n_rows)),
        row_beta(static_cast<std::size_t>(n_rows)),
        y_hat(random_floats(static_cast<std::size_t>(n_rows * n_hidden), 77, 2.0f)),
        source_finite(static_cast<std::size_t>(n_rows), 1),
        settings{1},
        plan(plan_host.size()),
        y_hat_dev(y_hat.size()),
        source_finite_dev(source_finite.size()),
        segment_steps_dev(static_cast<std::size_t>(layout.max_segments)),
        settings_dev(1),
        stats(std::vector<Stats>{Stats{}}),
        slot_stats(std::vector<GroupStats>(static_cast<std::size_t>(slots))) {
    std::mt19937 gen(5);
    for (int& s : row_slots) s = std::uniform_int_distribution<int>(0, slots - 1)(gen);
    for (int i = 0; i < rows; ++i)
      row_beta[static_cast<std::size_t>(i)] = i == 1 ? 0.0f : beta * (i % 2 ? 1.5f : 1.0f);
    StepPlanBuilder(layout, slots).build(row_slots, row_beta, plan_host.data());
    const StepPlanView hp = host_plan();
    // Segment 0 is cold (0 updates < warmup 1); input row 2's prediction is not finite; input
    // row 4's source was not finite.
    segment_steps.assign(static_cast<std::size_t>(layout.max_segments), 3);
    if (hp.segments() > 1) segment_steps[0] = 0;
    if (rows > 2) y_hat[static_cast<std::size_t>(hp.row_position(2) * hidden + hidden / 3)] = kNaN;
    if (rows > 4) source_finite[static_cast<std::size_t>(hp.row_position(4))] = 0;
    plan.upload(plan_host);
    y_hat_dev.upload(y_hat);
    source_finite_dev.upload(source_finite);
    segment_steps_dev.upload(segment_steps);
    settings_dev.upload({settings});
  }

  StepPlanView host_plan() const { return {plan_host.data(), layout}; }
  MixInputs inputs() const {
    MixInputs in;
    in.plan = {plan.get(), layout};
    in.y_hat = y_hat_dev.get();
    in.source_finite = source_finite_dev.get();
    in.segment_steps = segment_steps_dev.get();
    in.settings = settings_dev.get();
    in.rows_mixed = reinterpret_cast<unsigned long long*>(&stats.get()->rows_mixed);
    in.slot_stats = slot_stats.get();
    return in;
  }
  // The CPU sampler's mixable(): the prediction of input row i, or null when it is not mixed.
  const float* mixable(int i) const {
    const StepPlanView hp = host_plan();
    const int p = hp.row_position(i);
    if (beta_of(i) == 0.0f || !source_finite[static_cast<std::size_t>(p)] ||
        segment_steps[static_cast<std::size_t>(hp.position_segment(p))] < settings.warmup_updates)
      return nullptr;
    const float* row = y_hat.data() + p * hidden;
    for (int j = 0; j < hidden; ++j)
      if (!std::isfinite(row[j])) return nullptr;
    return row;
  }
  float beta_of(int i) const { return row_beta[static_cast<std::size_t>(i)]; }
  // The kernel counted `mixed` rows in total, and each slot its own mixable rows.
  void check_rows_mixed(long long mixed) const {
    CHECK(stats.download()[0].rows_mixed == mixed);
    const std::vector<GroupStats> got = slot_stats.download();
    std::vector<std::int64_t> expected(got.size(), 0);
    for (int i = 0; i < rows; ++i)
      if (mixable(i)) ++expected[static_cast<std::size_t>(row_slots[static_cast<std::size_t>(i)])];
    for (std::size_t slot = 0; slot < got.size(); ++slot) {
      INFO("slot " << slot);
      CHECK(got[slot].rows_mixed == expected[slot]);
    }
  }
};

}  // namespace

TEST_CASE("MixHidden mixes exactly the rows the CPU sampler mixes, bit for bit",
          "[gpu][mix_hidden]") {
  ESAMP_REQUIRE_GPU();
  const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
  const float beta = GENERATE(0.0f, 0.7f);
  const auto [hidden, rows, slots, pad] = GENERATE(table<int, int, int, int>(
      {{64, 7, 5, 0}, {896, 64, 5, 8}, {4096, 256, 64, 0}, {100, 7, 3, 1}}));
  INFO("dtype " << name(dtype) << ", beta " << beta << ", H " << hidden << ", rows " << rows);
  MixFixture fx(rows, hidden, slots, beta);
  const int stride = hidden + pad;
  const std::vector<std::uint8_t> before =
      encode(random_floats(static_cast<std::size_t>(rows * stride), 3, 3.0f), dtype);
  DeviceArray<std::uint8_t> buffer(before);
  CUDA_REQUIRE(MixHidden(buffer.get(), dtype, stride, hidden, fx.inputs()));
  const std::vector<std::uint8_t> after = buffer.download();

  std::vector<std::uint8_t> expected = before;
  const MatrixView view(expected.data(), rows, hidden, stride, dtype);
  long long mixed = 0;
  for (int i = 0; i < rows; ++i) {
    const float* y_hat = fx.mixable(i);
    if (!y_hat) continue;
    ++mixed;
    for (int j = 0; j < hidden; ++j)
      view.set(i, j, (1.0f + fx.beta_of(i)) * view.at(i, j) - fx.beta_of(i) * y_hat[j]);
  }
  CHECK(after == expected);  // every byte, padding included
  fx.check_rows_mixed(mixed);
  if (beta != 0.0f && rows > 4) CHECK(mixed < rows);  // the fixture's left-out rows were left out
}

TEST_CASE("MixHidden's LatentMix variants equal cpu::mix_latent_row on the rows it mixes",
          "[gpu][mix_hidden][latent_mix]") {
  ESAMP_REQUIRE_GPU();
  const DType dtype = GENERATE(DType::f32, DType::bf16);
  const LatentMix mode = GENERATE(LatentMix::orthogonal, LatentMix::norm_kept);
  const auto [hidden, rows, slots] =
      GENERATE(table<int, int, int>({{64, 7, 5}, {896, 64, 5}, {100, 7, 3}}));
  INFO("dtype " << name(dtype) << ", mode " << name(mode) << ", H " << hidden);
  const float beta = 0.8f;
  MixFixture fx(rows, hidden, slots, beta);
  fx.settings.latent_mix = static_cast<std::int32_t>(mode);
  fx.settings_dev.upload({fx.settings});
  const std::vector<std::uint8_t> before =
      encode(random_floats(static_cast<std::size_t>(rows * hidden), 3, 3.0f), dtype);
  DeviceArray<std::uint8_t> buffer(before);
  CUDA_REQUIRE(MixHidden(buffer.get(), dtype, hidden, hidden, fx.inputs()));
  std::vector<std::uint8_t> after = buffer.download();
  std::vector<std::uint8_t> expected = before;
  const MatrixView got(after.data(), rows, hidden, hidden, dtype);
  const MatrixView want(expected.data(), rows, hidden, hidden, dtype);
  long long mixed = 0;
  std::vector<float> row(static_cast<std::size_t>(hidden));
  for (int i = 0; i < rows; ++i) {
    const float* y_hat = fx.mixable(i);
    if (!y_hat) {  // left bit for bit
      for (int j = 0; j < hidden; ++j) REQUIRE(got.at(i, j) == want.at(i, j));
      continue;
    }
    ++mixed;
    for (int j = 0; j < hidden; ++j) row[static_cast<std::size_t>(j)] = want.at(i, j);
    cpu::mix_latent_row(row.data(), y_hat, hidden, fx.beta_of(i), mode);
    // The sums run in another order than on the CPU: equal to rounding, plus one bf16 rounding.
    const double tolerance = dtype == DType::f32 ? 1e-5 : 8e-3;
    for (int j = 0; j < hidden; ++j)
      REQUIRE(std::abs(got.at(i, j) - row[static_cast<std::size_t>(j)]) <=
              tolerance * (1.0 + std::abs(row[static_cast<std::size_t>(j)])));
  }
  fx.check_rows_mixed(mixed);
  CHECK(mixed > 0);
}

namespace {

std::vector<Filter> filters() {
  std::vector<Filter> f(8);
  f[1].temperature = 0.7f;
  f[1].top_k = 50;
  f[2].temperature = 1.3f;
  f[2].top_p = 0.9f;
  f[3].min_p = 0.1f;
  f[4].temperature = 0.8f;
  f[4].top_k = 100;
  f[4].top_p = 0.8f;
  f[4].min_p = 0.02f;
  f[5].temperature = 0.0f;
  f[6].top_k = 1;
  f[7].temperature = 0.5f;
  f[7].top_p = 0.3f;
  return f;
}

// Logits uniform in [-8, 8) with a few -inf: wide enough that every filter cuts somewhere.
std::vector<float> random_logits(int rows, int vocab, std::uint32_t seed) {
  std::vector<float> l = random_floats(static_cast<std::size_t>(rows * vocab), seed, 8.0f);
  for (std::size_t i = 7; i < l.size(); i += 101) l[i] = kNegInf;
  return l;
}

}  // namespace

TEST_CASE("MixLogits keeps select_candidates' set and mixes it with the LM-head gather-dot",
          "[gpu][mix_logits]") {
  ESAMP_REQUIRE_GPU();
  const DType logit_dtype = GENERATE(DType::f32, DType::bf16);
  const DType head_dtype = GENERATE(DType::f32, DType::bf16);
  const auto [hidden, vocab, rows] =
      GENERATE(table<int, int, int>({{64, 1000, 7}, {896, 32000, 5}, {100, 777, 3}}));
  const float beta = 0.6f;
  const std::vector<Filter> all = filters();
  const std::size_t which = GENERATE(range<std::size_t>(0, 8));
  const Filter& filter = all[which];
  INFO("logits " << name(logit_dtype) << ", head " << name(head_dtype) << ", H " << hidden << ", V "
                 << vocab << ", filter " << which);
  MixFixture fx(rows, hidden, 3, beta);
  const std::vector<std::uint8_t> logits0 = encode(random_logits(rows, vocab, 17), logit_dtype);
  const std::vector<std::uint8_t> head =
      encode(random_floats(static_cast<std::size_t>(vocab * hidden), 19, 0.1f), head_dtype);
  DeviceArray<std::uint8_t> logits(logits0), head_dev(head);
  DeviceArray<std::int32_t> status(static_cast<std::size_t>(rows));
  CUDA_REQUIRE(MixLogits(logits.get(), logit_dtype, vocab, vocab, head_dev.get(), head_dtype,
                         hidden, hidden, make_filter_params(filter), fx.inputs(), status.get()));
  const std::vector<std::uint8_t> got_bytes = logits.download();
  CHECK(status.download() == std::vector<std::int32_t>(static_cast<std::size_t>(rows), 0));

  const ConstMatrixView base(logits0.data(), rows, vocab, vocab, logit_dtype);
  const ConstMatrixView got(got_bytes.data(), rows, vocab, vocab, logit_dtype);
  const ConstMatrixView w(head.data(), vocab, hidden, hidden, head_dtype);
  std::vector<float> row(static_cast<std::size_t>(vocab));
  std::vector<int> candidates;
  long long mixed = 0;
  // Mixed logits differ from the CPU's only by the dot product's order (length H); bf16 logits
  // are then rounded to 8 bits, which can land one bf16 ulp (2^-8 relative) away.
  const double tol = logit_dtype == DType::bf16 ? 1e-2 : fp32_tolerance(hidden);
  for (int i = 0; i < rows; ++i) {
    for (int v = 0; v < vocab; ++v) row[static_cast<std::size_t>(v)] = base.at(i, v);
    select_candidates(row, filter, candidates);
    std::vector<char> kept(static_cast<std::size_t>(vocab), 0);
    for (const int v : candidates) kept[static_cast<std::size_t>(v)] = 1;
    const float* y_hat = fx.mixable(i);
    mixed += y_hat ? 1 : 0;
    INFO("row " << i << ", " << candidates.size() << " candidates, mixed " << (y_hat != nullptr));
    for (int v = 0; v < vocab; ++v) {
      INFO("token " << v);
      if (!kept[static_cast<std::size_t>(v)]) {
        REQUIRE(got.at(i, v) == kNegInf);
        continue;
      }
      if (!y_hat) {
        REQUIRE(got.at(i, v) == row[static_cast<std::size_t>(v)]);
        continue;
      }
      float dot = 0.0f;
      for (int j = 0; j < hidden; ++j) dot += w.at(v, j) * y_hat[j];
      const float expected =
          (1.0f + fx.beta_of(i)) * row[static_cast<std::size_t>(v)] - fx.beta_of(i) * dot;
      REQUIRE(std::abs(got.at(i, v) - expected) <= tol * (std::abs(expected) + 1.0f));
    }
  }
  fx.check_rows_mixed(mixed);
}

TEST_CASE("SampleTokens draws esamp::sample's token for the same (seed, sequence, position)",
          "[gpu][sampling]") {
  ESAMP_REQUIRE_GPU();
  const DType dtype = GENERATE(DType::f32, DType::bf16);  // bf16: many ties
  const int vocab = GENERATE(50, 1000, 32000);
  const std::vector<Filter> all = filters();
  const std::size_t which = GENERATE(range<std::size_t>(0, 8));
  const Filter& filter = all[which];
  const int rows = 64;
  INFO("dtype " << name(dtype) << ", V " << vocab << ", filter " << which);
  const std::vector<std::uint8_t> raw = encode(random_logits(rows, vocab, 23), dtype);
  std::vector<std::uint64_t> seeds(rows), sequences(rows);
  std::vector<std::uint32_t> positions(rows);
  for (int i = 0; i < rows; ++i) {
    seeds[static_cast<std::size_t>(i)] =
        0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i % 3 + 1);
    sequences[static_cast<std::size_t>(i)] =
        static_cast<std::uint64_t>(i) << 33 | static_cast<std::uint64_t>(i);
    positions[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(i * 7 + 1);
  }
  DeviceArray<std::uint8_t> logits(raw);
  DeviceArray<std::uint64_t> seeds_dev(seeds), sequences_dev(sequences);
  DeviceArray<std::uint32_t> positions_dev(positions);
  DeviceArray<std::int32_t> tokens(static_cast<std::size_t>(rows)), status(tokens.size());
  CUDA_REQUIRE(SampleTokens(logits.get(), dtype, vocab, rows, vocab, make_filter_params(filter),
                            seeds_dev.get(), sequences_dev.get(), positions_dev.get(), tokens.get(),
                            status.get()));
  const std::vector<std::int32_t> got = tokens.download();
  CHECK(status.download() == std::vector<std::int32_t>(static_cast<std::size_t>(rows), 0));

  // The GPU weighs logits in float and sums in double in another order than the CPU: a draw can
  // differ only when u * total lies within ~1e-6 relative of a cumulative boundary, which these
  // fixed seeds do not hit.
  const ConstMatrixView view(raw.data(), rows, vocab, vocab, dtype);
  std::vector<float> row(static_cast<std::size_t>(vocab));
  std::vector<int> scratch;
  for (int i = 0; i < rows; ++i) {
    for (int v = 0; v < vocab; ++v) row[static_cast<std::size_t>(v)] = view.at(i, v);
    const SampleKey key{seeds[static_cast<std::size_t>(i)], sequences[static_cast<std::size_t>(i)],
                        positions[static_cast<std::size_t>(i)]};
    INFO("row " << i);
    REQUIRE(got[static_cast<std::size_t>(i)] == sample(row, filter, key, scratch));
  }
}

TEST_CASE("SampleTokens flags rows with NaN logits or no finite logit", "[gpu][sampling]") {
  ESAMP_REQUIRE_GPU();
  const int vocab = 300;
  std::vector<float> logits = random_logits(2, vocab, 29);
  std::fill(logits.begin(), logits.begin() + vocab, kNegInf);  // row 0: nothing can be kept
  logits[static_cast<std::size_t>(vocab + 5)] = kNaN;          // row 1: a NaN, left out
  DeviceArray<float> dev(logits);
  DeviceArray<std::uint64_t> keys(std::vector<std::uint64_t>{1, 2});
  DeviceArray<std::uint32_t> positions(std::vector<std::uint32_t>{3, 4});
  DeviceArray<std::int32_t> tokens(2), status(2);
  CUDA_REQUIRE(SampleTokens(dev.get(), DType::f32, vocab, 2, vocab, FilterParams{}, keys.get(),
                            keys.get(), positions.get(), tokens.get(), status.get()));
  const std::vector<std::int32_t> got = tokens.download(), flags = status.download();
  CHECK(got[0] == -1);
  CHECK(flags[0] == kRowHasNoCandidate);
  CHECK(flags[1] == kRowHasInvalidLogit);
  std::vector<float> clean(logits.begin() + vocab, logits.end());
  clean[5] = kNegInf;
  std::vector<int> scratch;
  CHECK(got[1] == sample(clean, Filter{}, SampleKey{2, 2, 4}, scratch));
}
