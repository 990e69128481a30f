#include <catch2/catch.hpp>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "esamp/distiller.hpp"
#include "esamp/sampler.hpp"
#include "test_util.hpp"

using namespace esamp;
using Catch::Matchers::Contains;
using esamp::test::bit_equal;
using esamp::test::cview;
using esamp::test::Mat;
using esamp::test::random_matrix;
using esamp::test::view;

namespace {

constexpr int kLayers = 4;
constexpr int kHidden = 12;

DistillerConfig distiller_config(int slots = 4) {
  DistillerConfig c;
  c.hidden_size = kHidden;
  c.rank = 4;
  c.slots = slots;
  c.lr = 1e-2f;
  c.seed = 5;
  return c;
}

// The plain schedule (a seeded slot per group, one update per step) with a layer target: what the
// mechanics below are about. The tests of warm start, young slots and final_normed targets say so.
ExplorationConfig exploration_config(float beta = 0.5f, MixMode mix = MixMode::latent) {
  ExplorationConfig e;
  e.beta = beta;
  e.mix = mix;
  e.max_rows = 16;
  e.target = {-1, Site::layer_input_normed};
  e.warm_start = false;
  e.young_updates = 0;
  return e;
}

// The hidden states an engine would hand over for one step.
struct StepInputs {
  Mat source, target, final_hidden;
};

StepInputs random_step(Eigen::Index rows, std::uint32_t seed) {
  return {random_matrix(rows, kHidden, seed), random_matrix(rows, kHidden, seed + 1),
          random_matrix(rows, kHidden, seed + 2)};
}

// Runs one latent-mode step the way an engine does; returns the mixed final hidden states.
Mat run_step(ExploratorySampler& s, const std::vector<GroupId>& groups, const StepInputs& in) {
  s.begin_step(groups);
  for (int layer = 0; layer < kLayers; ++layer) {
    for (const Site site : {Site::layer_input, Site::layer_input_normed, Site::layer_output}) {
      if (!s.wants(layer, site)) continue;
      const bool is_source = layer == 0 && site == Site::layer_input_normed;
      s.on_hidden(layer, site, cview(is_source ? in.source : in.target));
    }
  }
  Mat mixed = in.final_hidden;
  s.mix_hidden(view(mixed));
  s.end_step();
  return mixed;
}

// ŷ for `rows` of `x` from a stand-alone bank holding `slot`'s parameters.
Mat reference_prediction(ExploratorySampler& s, int slot, const Mat& x) {
  LatentDistiller ref(distiller_config(1));
  ref.set_parameters(0, LatentDistiller(s.bank()).parameters(slot));
  Mat y_hat(x.rows(), x.cols());
  ref.predict(std::vector<int>(static_cast<std::size_t>(x.rows()), 0), cview(x), view(y_hat));
  return y_hat;
}

}  // namespace

TEST_CASE("the bank has a prior slot with warm_start and per-group sharing only", "[sampler]") {
  ExplorationConfig e;  // the defaults: warm_start, per-group sharing
  const DistillerConfig d = distiller_config(3);
  CHECK(bank_config(d, e).slots == 4);
  e.sharing = Sharing::global;
  CHECK(bank_config(d, e).slots == 1);
  ExploratorySampler global(kLayers, d, e);
  CHECK(global.distiller_config().slots == 1);
  e.sharing = Sharing::per_group;
  e.warm_start = false;
  CHECK(bank_config(d, e).slots == 3);
}

TEST_CASE("the sampler asks for exactly its two taps, resolving negative layers", "[sampler]") {
  ExploratorySampler s(kLayers, distiller_config(), exploration_config());
  const GroupId g = s.open_group();
  REQUIRE_FALSE(s.wants(0, Site::layer_input_normed));  // outside a step nothing is wanted
  s.begin_step(std::vector<GroupId>{g});
  REQUIRE(s.wants(0, Site::layer_input_normed));
  REQUIRE(s.wants(3, Site::layer_input_normed));
  REQUIRE_FALSE(s.wants(0, Site::layer_input));
  REQUIRE_FALSE(s.wants(2, Site::layer_input_normed));
  REQUIRE_FALSE(s.wants(3, Site::layer_output));
}

TEST_CASE("mix_hidden equals (1+β)h − βŷ with ŷ from the parameters after the previous step",
          "[sampler][lag]") {
  const DType dtype = GENERATE(DType::f32, DType::bf16);
  const float beta = 0.75f;
  ExploratorySampler s(kLayers, distiller_config(), exploration_config(beta));
  const GroupId a = s.open_group(), b = s.open_group();
  const std::vector<GroupId> groups = {a, b, a, b, b};
  for (std::uint32_t t = 0; t < 6; ++t) {
    const StepInputs in = random_step(5, 100 + 3 * t);
    // Parameters as they stand before step t: the prediction at step t must use exactly these.
    const Mat expect_a = reference_prediction(s, s.slot_of(a), in.source);
    const Mat expect_b = reference_prediction(s, s.slot_of(b), in.source);
    std::vector<std::uint16_t> buffer(static_cast<std::size_t>(in.final_hidden.size()));
    Mat mixed;
    if (dtype == DType::f32) {
      mixed = run_step(s, groups, in);
    } else {
      const MatrixView h(buffer.data(), 5, kHidden, kHidden, DType::bf16);
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < kHidden; ++j) h.set(i, j, in.final_hidden(i, j));
      s.begin_step(groups);
      s.on_hidden(0, Site::layer_input_normed, cview(in.source));
      s.on_hidden(kLayers - 1, Site::layer_input_normed, cview(in.target));
      s.mix_hidden(h);
      s.end_step();
      mixed.resize(5, kHidden);
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < kHidden; ++j) mixed(i, j) = h.at(i, j);
    }
    for (int i = 0; i < 5; ++i) {
      const Mat& expect = groups[static_cast<std::size_t>(i)] == a ? expect_a : expect_b;
      for (int j = 0; j < kHidden; ++j) {
        const float h = dtype == DType::f32
                            ? in.final_hidden(i, j)
                            : bfloat16_to_float(float_to_bfloat16(in.final_hidden(i, j)));
        const float want = t == 0 ? h : (1 + beta) * h - beta * expect(i, j);  // step 0: warming up
        INFO("step " << t << " row " << i << " col " << j << " dtype " << name(dtype));
        if (dtype == DType::f32) {
          REQUIRE_THAT(mixed(i, j), Catch::Matchers::WithinAbs(want, 1e-5));
        } else {  // one bf16 rounding of the result: relative 2^-8
          REQUIRE_THAT(mixed(i, j), Catch::Matchers::WithinAbs(want, 4e-3 * (1 + std::abs(want))));
        }
      }
    }
  }
  REQUIRE(s.stats().rows_mixed == 5 * 5);
}

TEST_CASE("the LatentMix variants move h as documented, with ŷ of the previous step's parameters",
          "[sampler][latent_mix]") {
  const LatentMix mode = GENERATE(LatentMix::orthogonal, LatentMix::norm_kept);
  const float beta = 0.8f;
  ExplorationConfig e = exploration_config(beta);
  e.latent_mix = mode;
  ExploratorySampler s(kLayers, distiller_config(), e);
  const GroupId g = s.open_group();
  const std::vector<GroupId> groups(4, g);
  run_step(s, groups, random_step(4, 7));  // step 0 only trains (warm-up)
  for (std::uint32_t t = 1; t < 4; ++t) {
    const StepInputs in = random_step(4, 50 + 3 * t);
    const Mat y_hat = reference_prediction(s, s.slot_of(g), in.source);
    const Mat mixed = run_step(s, groups, in);
    for (Eigen::Index i = 0; i < 4; ++i) {
      const Eigen::VectorXd h = in.final_hidden.row(i).transpose().cast<double>();
      const Eigen::VectorXd y = y_hat.row(i).transpose().cast<double>();
      const Eigen::VectorXd got = mixed.row(i).transpose().cast<double>();
      // Independent of the implementation: the projection, the rescaling, written out.
      const Eigen::VectorXd full = (1.0 + beta) * h - beta * y;
      const Eigen::VectorXd want = mode == LatentMix::orthogonal
                                       ? (h - beta * (y - (y.dot(h) / h.dot(h)) * h)).eval()
                                       : (full * (h.norm() / full.norm())).eval();
      INFO("mode " << name(mode) << " step " << t << " row " << i);
      REQUIRE((got - want).lpNorm<Eigen::Infinity>() < 1e-5 * (1.0 + want.norm()));
      if (mode == LatentMix::orthogonal) {
        // h's own component is kept exactly: β pushes only across h.
        REQUIRE(std::abs(got.dot(h) / h.dot(h) - 1.0) < 1e-5);
      } else {
        REQUIRE(std::abs(got.norm() / h.norm() - 1.0) < 1e-5);
        REQUIRE(got.normalized().dot(full.normalized()) > 1.0 - 1e-6);
      }
      // The rule differs from the full one: the test would catch a variant that fell back to it.
      REQUIRE((got - full).norm() > 1e-3 * full.norm());
    }
  }
  REQUIRE(s.stats().rows_mixed == 3 * 4);
}

TEST_CASE("a zero row of h is left as it is by the LatentMix variants", "[sampler][latent_mix]") {
  const LatentMix mode = GENERATE(LatentMix::orthogonal, LatentMix::norm_kept);
  std::vector<float> h(kHidden, 0.0f), y(kHidden, 0.5f);
  cpu::mix_latent_row(h.data(), y.data(), kHidden, 0.5f, mode);
  for (const float v : h) REQUIRE(v == 0.0f);
}

TEST_CASE("β = 0 leaves hidden states and candidate logits bit for bit as they were",
          "[sampler][noop]") {
  SECTION("latent") {
    ExploratorySampler s(kLayers, distiller_config(), exploration_config(0.0f));
    const std::vector<GroupId> groups = {s.open_group(), s.open_group()};
    for (std::uint32_t t = 0; t < 5; ++t) {
      const StepInputs in = random_step(2, 200 + 3 * t);
      REQUIRE(bit_equal(run_step(s, groups, in), in.final_hidden));
    }
    REQUIRE(s.stats().rows_mixed == 0);
    REQUIRE(s.stats().rows_trained == 10);  // it still trains: β only scales the mixing
  }
  SECTION("candidates") {
    ExploratorySampler s(kLayers, distiller_config(),
                         exploration_config(0.0f, MixMode::candidates));
    const GroupId g = s.open_group();
    const Mat head = random_matrix(20, kHidden, 210);
    Filter filter;
    filter.temperature = 0.8f;
    filter.top_k = 7;
    filter.min_p = 0.05f;
    std::vector<int> scratch;
    for (std::uint32_t t = 0; t < 4; ++t) {
      const StepInputs in = random_step(3, 220 + 3 * t);
      Mat logits = in.final_hidden * head.transpose(), mixed = logits;
      s.begin_step(std::vector<GroupId>(3, g));
      s.on_hidden(0, Site::layer_input_normed, cview(in.source));
      s.on_hidden(kLayers - 1, Site::layer_input_normed, cview(in.target));
      s.mix_logits(view(mixed), cview(head), filter);
      s.end_step();
      for (int i = 0; i < 3; ++i) {
        std::vector<int> kept;
        select_candidates(Span<const float>(logits.row(i).data(), 20), filter, kept);
        for (int v = 0; v < 20; ++v) {
          const bool candidate = std::find(kept.begin(), kept.end(), v) != kept.end();
          if (candidate)
            REQUIRE(bit_equal(&mixed(i, v), &logits(i, v), 1));
          else
            REQUIRE(mixed(i, v) == -std::numeric_limits<float>::infinity());
        }
        // The same token whether drawn from the filtered base logits or from the mixed ones.
        for (std::uint32_t draw = 0; draw < 50; ++draw) {
          const SampleKey key{9, static_cast<std::uint64_t>(i), draw};
          REQUIRE(sample(Span<const float>(logits.row(i).data(), 20), filter, key, scratch) ==
                  sample(Span<const float>(mixed.row(i).data(), 20), filter.temperature_only(), key,
                         scratch));
        }
      }
    }
  }
}

TEST_CASE("candidates mode with a keep-all filter equals latent mode followed by the LM head",
          "[sampler][candidates]") {
  const float beta = 1.5f;
  ExploratorySampler latent(kLayers, distiller_config(), exploration_config(beta));
  ExploratorySampler cand(kLayers, distiller_config(),
                          exploration_config(beta, MixMode::candidates));
  const std::vector<GroupId> lg = {latent.open_group(), latent.open_group()};
  const std::vector<GroupId> cg = {cand.open_group(), cand.open_group()};
  const Mat head = random_matrix(30, kHidden, 300);
  const Filter keep_all;  // T = 1, no truncation
  for (std::uint32_t t = 0; t < 5; ++t) {
    const StepInputs in = random_step(2, 310 + 3 * t);
    const Mat via_latent = run_step(latent, lg, in) * head.transpose();
    Mat logits = in.final_hidden * head.transpose();
    cand.begin_step(cg);
    cand.on_hidden(0, Site::layer_input_normed, cview(in.source));
    cand.on_hidden(kLayers - 1, Site::layer_input_normed, cview(in.target));
    cand.mix_logits(view(logits), cview(head), keep_all);
    cand.end_step();
    // Same sums in another order: a few float ulps of the logits' magnitude (~5).
    for (Eigen::Index k = 0; k < logits.size(); ++k)
      REQUIRE_THAT(logits.data()[k], Catch::Matchers::WithinAbs(via_latent.data()[k], 1e-4));
  }
  REQUIRE(cand.stats().rows_mixed == 8);
}

TEST_CASE("in candidates mode the temperature divides the mixed logit", "[sampler][candidates]") {
  const float beta = 1.0f, temperature = 0.5f;
  ExploratorySampler s(kLayers, distiller_config(), exploration_config(beta, MixMode::candidates));
  const GroupId g = s.open_group();
  const Mat head = random_matrix(6, kHidden, 400, 0.3f);
  Filter filter;
  filter.temperature = temperature;
  // Step 0 only trains (warm-up); step 1 mixes.
  for (std::uint32_t t = 0; t < 2; ++t) {
    const StepInputs in = random_step(1, 410 + 3 * t);
    const Mat y_hat = reference_prediction(s, s.slot_of(g), in.source);
    const Mat base = in.final_hidden * head.transpose();
    Mat mixed = base;
    s.begin_step(std::vector<GroupId>{g});
    s.on_hidden(0, Site::layer_input_normed, cview(in.source));
    s.on_hidden(kLayers - 1, Site::layer_input_normed, cview(in.target));
    s.mix_logits(view(mixed), cview(head), filter);
    s.end_step();
    if (t == 0) continue;
    // The mixed logit itself carries no temperature ...
    const Mat expected = (1 + beta) * base - beta * (y_hat * head.transpose());
    for (int v = 0; v < 6; ++v)
      REQUIRE_THAT(mixed(0, v), Catch::Matchers::WithinAbs(expected(0, v), 1e-5));
    // ... and sampling it draws from softmax(ℓ'/T): chi-square over 20,000 draws, 5 dof,
    // critical value 25.7 at p = 1e-4.
    const Eigen::ArrayXd p =
        ((expected.row(0).cast<double>().array() - expected.row(0).cast<double>().maxCoeff()) /
         temperature)
            .exp();
    const Eigen::ArrayXd prob = p / p.sum();
    std::vector<int> counts(6, 0), scratch;
    const int draws = 20000;
    for (std::uint32_t n = 0; n < draws; ++n)
      ++counts[static_cast<std::size_t>(sample(Span<const float>(mixed.row(0).data(), 6),
                                               filter.temperature_only(), SampleKey{1, 0, n},
                                               scratch))];
    double chi2 = 0;
    for (int v = 0; v < 6; ++v) {
      const double e = draws * prob(v);
      chi2 +=
          (counts[static_cast<std::size_t>(v)] - e) * (counts[static_cast<std::size_t>(v)] - e) / e;
    }
    REQUIRE(chi2 < 25.7);
  }
}

TEST_CASE(
    "a host's training team runs each part of a forward and of an update once on its threads, "
    "with the backend's bits",
    "[sampler][thread]") {
  // The team runs parts 1.. on threads of its own and part 0 last on the caller, and counts them.
  constexpr int kThreads = 3;
  std::vector<int> runs(kThreads, 0);
  int calls = 0;
  const cpu::TrainingTeam team = [&](int parts, const std::function<void(int)>& part) {
    REQUIRE(parts == kThreads);
    ++calls;
    std::vector<std::thread> threads;
    for (int t = 1; t < parts; ++t)
      threads.emplace_back([&part, &runs, t] {
        part(t);
        ++runs[static_cast<std::size_t>(t)];
      });
    for (auto& thread : threads) thread.join();
    part(0);
    ++runs[0];
  };
  ExplorationConfig e = exploration_config(0.9f);
  ExploratorySampler own(kLayers, distiller_config(), e);
  e.training_threads = kThreads;
  ExploratorySampler hosted(kLayers, distiller_config(), e, cpu::backend(team));
  const std::vector<GroupId> og = {own.open_group(), own.open_group()};
  const std::vector<GroupId> hg = {hosted.open_group(), hosted.open_group()};
  for (std::uint32_t t = 0; t < 12; ++t) {
    const StepInputs in = random_step(5, 900 + 3 * t);
    REQUIRE(bit_equal(run_step(own, {og[0], og[1], og[0], og[1], og[t % 2]}, in),
                      run_step(hosted, {hg[0], hg[1], hg[0], hg[1], hg[t % 2]}, in)));
  }
  // Every update follows one forward of its rows (every row is finite here), and the team runs a
  // forward's two column stages and each update.
  REQUIRE(calls == 3 * static_cast<int>(hosted.stats().slot_updates));
  REQUIRE(runs == std::vector<int>(kThreads, calls));
  const BankState own_bank = own.bank(), hosted_bank = hosted.bank();
  for (const auto array :
       {BankArray::parameters, BankArray::first_moment, BankArray::second_moment})
    REQUIRE(own_bank.whole(array) == hosted_bank.whole(array));
}

TEST_CASE("background training and shared training threads give bit-identical results",
          "[sampler][background][thread]") {
  // (background_training, training_threads): the hidden units are split unevenly across 3 parts.
  const auto [background, threads] = GENERATE(std::make_pair(true, 1), std::make_pair(false, 2),
                                              std::make_pair(false, 3), std::make_pair(true, 3));
  INFO("background_training " << background << ", training_threads " << threads);
  ExplorationConfig e = exploration_config(0.9f);
  ExploratorySampler sync(kLayers, distiller_config(), e);
  e.background_training = background;
  e.training_threads = threads;
  ExploratorySampler async(kLayers, distiller_config(), e);
  const std::vector<GroupId> sg = {sync.open_group(), sync.open_group(), sync.open_group()};
  const std::vector<GroupId> ag = {async.open_group(), async.open_group(), async.open_group()};
  for (std::uint32_t t = 0; t < 30; ++t) {
    StepInputs in = random_step(6, 500 + 3 * t);
    if (t % 7 == 3) in.source(1, 2) = std::numeric_limits<float>::quiet_NaN();
    if (t % 5 == 1) in.target(4, 0) = std::numeric_limits<float>::infinity();
    const std::vector<GroupId> rows_s = {sg[0], sg[1], sg[2], sg[0], sg[1], sg[t % 3]};
    const std::vector<GroupId> rows_a = {ag[0], ag[1], ag[2], ag[0], ag[1], ag[t % 3]};
    REQUIRE(bit_equal(run_step(sync, rows_s, in), run_step(async, rows_a, in)));
  }
  const Stats& a = async.stats();
  const Stats& b = sync.stats();
  REQUIRE(a.steps == b.steps);
  REQUIRE(a.rows_trained == b.rows_trained);
  REQUIRE(a.rows_mixed == b.rows_mixed);
  REQUIRE(a.rows_skipped_nonfinite == b.rows_skipped_nonfinite);
  REQUIRE(a.slot_updates == b.slot_updates);
  REQUIRE(a.mean_loss == b.mean_loss);
  REQUIRE(a.last_loss == b.last_loss);
  const BankState sync_bank = sync.bank(), async_bank = async.bank();
  for (const auto array :
       {BankArray::parameters, BankArray::first_moment, BankArray::second_moment})
    REQUIRE(sync_bank.whole(array) == async_bank.whole(array));
}

TEST_CASE("non-finite source or target rows are neither trained on nor mixed, and are counted",
          "[sampler][nonfinite]") {
  ExploratorySampler s(kLayers, distiller_config(), exploration_config(1.0f));
  const GroupId g = s.open_group();
  const std::vector<GroupId> groups(4, g);
  run_step(s, groups, random_step(4, 600));  // warm up
  StepInputs in = random_step(4, 610);
  in.source(1, 0) = std::numeric_limits<float>::quiet_NaN();
  in.target(2, 5) = -std::numeric_limits<float>::infinity();
  const Mat mixed = run_step(s, groups, in);
  REQUIRE(bit_equal(mixed.row(1).data(), in.final_hidden.row(1).data(), kHidden));  // not mixed
  REQUIRE_FALSE(bit_equal(mixed.row(0).data(), in.final_hidden.row(0).data(), kHidden));
  const Stats& st = s.stats();
  REQUIRE(st.rows_trained == 4 + 2);
  REQUIRE(st.rows_skipped_nonfinite == 2);
  REQUIRE(st.rows_mixed == 3);
  const BankState bank = s.bank();
  for (const float p : bank.whole(BankArray::parameters)) REQUIRE(std::isfinite(p));
}

TEST_CASE("a group is mixed only after warmup_updates updates of its slot", "[sampler]") {
  ExplorationConfig e = exploration_config(1.0f);
  e.warmup_updates = 3;
  ExploratorySampler s(kLayers, distiller_config(), e);
  const std::vector<GroupId> groups = {s.open_group()};
  for (std::uint32_t t = 0; t < 5; ++t) {
    const StepInputs in = random_step(1, 700 + 3 * t);
    const bool untouched = bit_equal(run_step(s, groups, in), in.final_hidden);
    REQUIRE(untouched == (t < 3));
  }
}

TEST_CASE(
    "group lifecycle: slots are reused and re-initialised, a full bank and unknown groups throw",
    "[sampler][groups]") {
  ExploratorySampler s(kLayers, distiller_config(2), exploration_config());
  const GroupId a = s.open_group(), b = s.open_group();
  REQUIRE(s.slot_of(a) != s.slot_of(b));
  REQUIRE_THROWS_WITH(s.open_group(), Contains("the bank is full: all 2 slots are in use"));
  REQUIRE_THROWS_AS(s.open_group(), esamp::BankFull);  // told apart from a bad argument
  for (std::uint32_t t = 0; t < 3; ++t) run_step(s, {a, b, a}, random_step(3, 800 + 3 * t));
  const int freed = s.slot_of(a);
  REQUIRE(s.bank().updates(freed) == 3);
  s.close_group(a);
  REQUIRE_THROWS_WITH(s.slot_of(a), Contains("group " + std::to_string(a) + " is unknown"));
  REQUIRE_THROWS_WITH(s.begin_step(std::vector<GroupId>{b, a}), Contains("is unknown"));
  REQUIRE_THROWS_WITH(s.close_group(a), Contains("is unknown"));
  REQUIRE_THROWS_WITH(s.close_group(12345), Contains("group 12345 is unknown"));
  const GroupId c = s.open_group();
  REQUIRE(c != a);
  REQUIRE(s.slot_of(c) == freed);
  REQUIRE(s.bank().updates(freed) == 0);
  const BankState now = s.bank(), fresh(distiller_config(2));
  const Span<const float> reset = now.slot_array(BankArray::parameters, freed);
  const Span<const float> init = fresh.slot_array(BankArray::parameters, 0);
  REQUIRE(bit_equal(reset.data(), init.data(), reset.size()));
  REQUIRE(s.bank().updates(s.slot_of(b)) == 3);  // the other group kept its slot's state
}

TEST_CASE("global sharing trains one slot from every group", "[sampler][groups]") {
  ExplorationConfig e = exploration_config();
  e.sharing = Sharing::global;
  ExploratorySampler s(kLayers, distiller_config(2), e);
  std::vector<GroupId> groups;
  for (int i = 0; i < 5; ++i) groups.push_back(s.open_group());  // more groups than slots
  REQUIRE(s.bank().slots() == 1);
  for (const GroupId g : groups) REQUIRE(s.slot_of(g) == 0);
  run_step(s, groups, random_step(5, 900));
  REQUIRE(s.bank().updates(0) == 1);
  REQUIRE(s.stats().slot_updates == 1);
  s.close_group(groups[0]);
  REQUIRE(s.bank().updates(0) == 1);  // closing a group never resets the shared slot
  // Every group reports the one slot's counters: all rows since construction.
  const GroupStats shared = s.group_stats(groups[1]);
  CHECK(shared.rows_trained == 5);
  CHECK(shared.slot_updates == 1);
  CHECK(s.group_stats(groups[4]).rows_trained == 5);
}

namespace {
// The rows of `m` at `rows`, in that order.
Mat select_rows(const Mat& m, const std::vector<Eigen::Index>& rows) {
  Mat out(static_cast<Eigen::Index>(rows.size()), m.cols());
  for (std::size_t k = 0; k < rows.size(); ++k)
    out.row(static_cast<Eigen::Index>(k)) = m.row(rows[k]);
  return out;
}
}  // namespace

TEST_CASE(
    "each group's counters are those of its rows run alone and sum to the sampler's stats, and a "
    "group at β = 0 mixes no row",
    "[sampler][group_stats]") {
  ExplorationConfig e = exploration_config();
  e.background_training = GENERATE(false, true);
  INFO("background_training " << e.background_training);
  const std::vector<float> betas = {0.5f, 1.5f, 0.0f};
  ExploratorySampler s(kLayers, distiller_config(3), e);
  std::vector<GroupId> groups;
  for (const float beta : betas) groups.push_back(s.open_group(beta));
  // Each step's rows by group: groups come and go, and the row of group 0 that leads step 3 has a
  // source that is not finite.
  const std::vector<std::vector<std::size_t>> step_rows = {
      {0, 1, 2, 0}, {2, 1, 1, 0, 2}, {1, 2}, {0, 0, 1, 2, 2, 1}, {0, 2, 1}, {1, 0}};
  std::vector<StepInputs> inputs;
  for (std::size_t t = 0; t < step_rows.size(); ++t) {
    StepInputs in = random_step(static_cast<Eigen::Index>(step_rows[t].size()),
                                1100 + 3 * static_cast<std::uint32_t>(t));
    if (t == 3) in.source(0, 2) = std::numeric_limits<float>::quiet_NaN();
    std::vector<GroupId> rows;
    for (const std::size_t g : step_rows[t]) rows.push_back(groups[g]);
    run_step(s, rows, in);
    inputs.push_back(std::move(in));
  }

  const Stats total = s.stats();
  CHECK(total.rows_skipped_nonfinite == 1);
  GroupStats sum;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    INFO("group " << g << ", beta " << betas[g]);
    // The group's rows through a sampler of their own (slots train independently and start from
    // the same seeded parameters): its stats are the group's, bit for bit.
    ExploratorySampler alone(kLayers, distiller_config(1), e);
    const GroupId only = alone.open_group(betas[g]);
    for (std::size_t t = 0; t < step_rows.size(); ++t) {
      std::vector<Eigen::Index> mine;
      for (std::size_t i = 0; i < step_rows[t].size(); ++i)
        if (step_rows[t][i] == g) mine.push_back(static_cast<Eigen::Index>(i));
      if (mine.empty()) continue;
      const StepInputs& in = inputs[t];
      run_step(alone, std::vector<GroupId>(mine.size(), only),
               {select_rows(in.source, mine), select_rows(in.target, mine),
                select_rows(in.final_hidden, mine)});
    }
    const GroupStats got = s.group_stats(groups[g]);
    const Stats want = alone.stats();
    CHECK(got.rows_trained == want.rows_trained);
    CHECK(got.rows_mixed == want.rows_mixed);
    CHECK(got.rows_skipped_nonfinite == want.rows_skipped_nonfinite);
    CHECK(got.slot_updates == want.slot_updates);
    CHECK(got.steps_trained == want.steps_trained);
    CHECK(got.last_loss == want.last_loss);
    CHECK(got.mean_loss == want.mean_loss);
    CHECK(got.rows_trained > 0);
    CHECK(got.mean_loss > 0.0);
    CHECK((got.rows_mixed > 0) == (betas[g] > 0.0f));  // β = 0: trained, never mixed
    sum.rows_trained += got.rows_trained;
    sum.rows_mixed += got.rows_mixed;
    sum.rows_skipped_nonfinite += got.rows_skipped_nonfinite;
    sum.slot_updates += got.slot_updates;
  }
  CHECK(sum.rows_trained == total.rows_trained);
  CHECK(sum.rows_mixed == total.rows_mixed);
  CHECK(sum.rows_skipped_nonfinite == total.rows_skipped_nonfinite);
  CHECK(sum.slot_updates == total.slot_updates);
}

TEST_CASE(
    "a group's counters start from zero in a reused slot, and an unknown or closed group's are an "
    "Error",
    "[sampler][group_stats]") {
  ExplorationConfig e = exploration_config();
  e.warm_start = GENERATE(false, true);  // a warm-started slot starts from the prior's parameters
  e.young_updates = 2;                   // young repeats count as updates of the group
  e.young_repeat = 2;
  INFO("warm_start " << e.warm_start);
  ExploratorySampler s(kLayers, distiller_config(1), e);
  const GroupId a = s.open_group();
  for (std::uint32_t t = 0; t < 3; ++t) run_step(s, {a, a}, random_step(2, 1200 + 3 * t));
  const GroupStats first = s.group_stats(a);
  CHECK(first.rows_trained == 6);
  CHECK(first.rows_mixed == 4);  // steps 1 and 2, after the warm-up update
  CHECK(first.slot_updates == 2 + 1 + 1);
  CHECK(first.steps_trained == 3);
  s.close_group(a);
  REQUIRE_THROWS_WITH(s.group_stats(a), Contains("group " + std::to_string(a) + " is unknown"));
  REQUIRE_THROWS_WITH(s.group_stats(12345), Contains("group 12345 is unknown"));

  const GroupId b = s.open_group();
  REQUIRE(s.slot_of(b) == 0);  // a's slot
  const GroupStats fresh = s.group_stats(b);
  CHECK(fresh.rows_trained == 0);
  CHECK(fresh.rows_mixed == 0);
  CHECK(fresh.rows_skipped_nonfinite == 0);
  CHECK(fresh.slot_updates == 0);
  CHECK(fresh.steps_trained == 0);
  CHECK(fresh.last_loss == 0.0);
  CHECK(fresh.mean_loss == 0.0);
  run_step(s, {b, b, b}, random_step(3, 1300));
  const GroupStats one = s.group_stats(b);
  CHECK(one.rows_trained == 3);
  CHECK(one.slot_updates == 2);  // young again: its update count started over
  CHECK(one.steps_trained == 1);
  CHECK(one.mean_loss == one.last_loss);
  CHECK(s.stats().rows_trained == 6 + 3);  // the sampler's totals run on
}

TEST_CASE("hooks called out of order or with bad tensors are errors naming the problem",
          "[sampler][errors]") {
  ExploratorySampler s(kLayers, distiller_config(), exploration_config());
  const GroupId g = s.open_group();
  const Mat x = random_matrix(2, kHidden, 1000);
  Mat h = x;
  REQUIRE_THROWS_WITH(s.on_hidden(0, Site::layer_input_normed, cview(x)),
                      Contains("on_hidden: called outside a step"));
  REQUIRE_THROWS_WITH(s.end_step(), Contains("end_step: called outside a step"));
  REQUIRE_THROWS_WITH(s.begin_step(std::vector<GroupId>(17, g)),
                      Contains("17 rows, more than ExplorationConfig.max_rows = 16"));
  s.begin_step(std::vector<GroupId>{g, g});
  REQUIRE_THROWS_WITH(s.begin_step(std::vector<GroupId>{g}),
                      Contains("previous step was not ended"));
  REQUIRE_THROWS_WITH(s.on_hidden(1, Site::layer_output, cview(x)),
                      Contains("on_hidden(layer 1, layer_output): not a tap of this sampler"));
  const Mat wide = random_matrix(2, kHidden + 1, 1001);
  REQUIRE_THROWS_WITH(s.on_hidden(0, Site::layer_input_normed, cview(wide)),
                      Contains("has 13 columns, expected 12"));
  const Mat three = random_matrix(3, kHidden, 1002);
  REQUIRE_THROWS_WITH(s.on_hidden(0, Site::layer_input_normed, cview(three)),
                      Contains("has 3 rows, the step has 2"));
  REQUIRE_THROWS_WITH(
      s.on_hidden(0, Site::layer_input_normed,
                  ConstMatrixView(x.data(), 2, kHidden, kHidden, DType::f32, Device::cuda)),
      Contains("is on device cuda, expected cpu"));
  REQUIRE_THROWS_WITH(s.mix_hidden(view(h)), Contains("source tap was not delivered yet"));
  s.on_hidden(0, Site::layer_input_normed, cview(x));
  REQUIRE_THROWS_WITH(s.on_hidden(0, Site::layer_input_normed, cview(x)),
                      Contains("delivered twice in one step"));
  REQUIRE_THROWS_WITH(s.mix_logits(view(h), cview(x), Filter{}),
                      Contains("configured for ExplorationConfig.mix = latent"));
  s.mix_hidden(view(h));
  REQUIRE_THROWS_WITH(s.mix_hidden(view(h)), Contains("mix_hidden: called twice in one step"));
  REQUIRE_THROWS_WITH(
      s.end_step(),
      Contains("end_step: the target tap (layer 3, layer_input_normed) was not delivered"));
  s.on_hidden(3, Site::layer_input_normed, cview(x));
  REQUIRE_NOTHROW(s.end_step());
}

TEST_CASE("a sampler's bank saved and loaded continues bit for bit", "[sampler][file]") {
  ExploratorySampler a(kLayers, distiller_config(2), exploration_config());
  ExploratorySampler b(kLayers, distiller_config(2), exploration_config());
  const std::vector<GroupId> ga = {a.open_group(), a.open_group()};
  const std::vector<GroupId> gb = {b.open_group(), b.open_group()};
  for (std::uint32_t t = 0; t < 3; ++t) run_step(a, ga, random_step(2, 1100 + 3 * t));
  const std::string path = esamp::test::temp_path("sampler.bank");
  a.save_bank(path);
  b.load_bank(path);
  for (std::uint32_t t = 0; t < 3; ++t) {
    const StepInputs in = random_step(2, 1200 + 3 * t);
    REQUIRE(bit_equal(run_step(a, ga, in), run_step(b, gb, in)));
  }
  b.begin_step(gb);
  REQUIRE_THROWS_WITH(b.load_bank(path), Contains("load_bank: called inside a step"));
  std::remove(path.c_str());
}

// Regression (found by the capi fuzzer): with global sharing the bank has one slot whatever
// DistillerConfig.slots says, and load_bank read the updates of slots it does not have.
TEST_CASE("a globally shared bank of a sampler given several slots saves and loads",
          "[sampler][file]") {
  ExplorationConfig e = exploration_config();
  e.sharing = Sharing::global;
  ExploratorySampler a(kLayers, distiller_config(3), e), b(kLayers, distiller_config(3), e);
  const std::vector<GroupId> ga = {a.open_group(), a.open_group()};
  const std::vector<GroupId> gb = {b.open_group(), b.open_group()};
  for (std::uint32_t t = 0; t < 2; ++t) run_step(a, ga, random_step(2, 1600 + 3 * t));
  const std::string path = esamp::test::temp_path("global.bank");
  a.save_bank(path);
  REQUIRE_NOTHROW(b.load_bank(path));
  const StepInputs in = random_step(2, 1700);
  REQUIRE(bit_equal(run_step(a, ga, in), run_step(b, gb, in)));
  std::remove(path.c_str());
}

TEST_CASE("a final_normed target is delivered before mixing and trains on the unmixed state",
          "[sampler]") {
  ExplorationConfig e = exploration_config(1.0f);
  e.target = {-1, Site::final_normed};
  ExploratorySampler s(kLayers, distiller_config(), e);
  LatentDistiller reference(distiller_config(1));
  const GroupId g = s.open_group();
  for (std::uint32_t t = 0; t < 3; ++t) {
    const StepInputs in = random_step(2, 1300 + 3 * t);
    s.begin_step(std::vector<GroupId>(2, g));
    REQUIRE(s.wants(kLayers - 1, Site::final_normed));
    REQUIRE_FALSE(s.wants(kLayers - 1, Site::layer_input_normed));
    s.on_hidden(0, Site::layer_input_normed, cview(in.source));
    Mat h = in.final_hidden;
    s.on_hidden(kLayers - 1, Site::final_normed, cview(h));
    s.mix_hidden(view(h));
    s.end_step();
    reference.train_step(std::vector<int>(2, 0), cview(in.source), cview(in.final_hidden));
  }
  const BankState bank = s.bank();
  const Span<const float> got = bank.slot_array(BankArray::parameters, s.slot_of(g));
  const Span<const float> want = reference.slot_array(BankArray::parameters, 0);
  REQUIRE(bit_equal(got.data(), want.data(), got.size()));
}

TEST_CASE(
    "two groups in one batch are each mixed with their own β, and a group at β = 0 is untouched",
    "[sampler][beta]") {
  const float beta_a = 0.5f, beta_b = 2.0f;
  ExploratorySampler s(kLayers, distiller_config(), exploration_config(1.0f));
  const GroupId a = s.open_group(beta_a), b = s.open_group(beta_b), off = s.open_group(0.0f);
  REQUIRE(s.beta(a) == beta_a);
  REQUIRE(s.beta(off) == 0.0f);
  const std::vector<GroupId> groups = {a, b, off, b, a};
  for (std::uint32_t t = 0; t < 4; ++t) {
    const StepInputs in = random_step(5, 1400 + 3 * t);
    const Mat expect_a = reference_prediction(s, s.slot_of(a), in.source);
    const Mat expect_b = reference_prediction(s, s.slot_of(b), in.source);
    const Mat mixed = run_step(s, groups, in);
    for (int i = 0; i < 5; ++i) {
      const GroupId g = groups[static_cast<std::size_t>(i)];
      INFO("step " << t << " row " << i << " group " << g);
      if (g == off || t == 0) {  // β = 0, or every slot still warming up: bit for bit
        REQUIRE(bit_equal(mixed.row(i).data(), in.final_hidden.row(i).data(), kHidden));
        continue;
      }
      const float beta = g == a ? beta_a : beta_b;
      const Mat& expect = g == a ? expect_a : expect_b;
      for (int j = 0; j < kHidden; ++j)
        REQUIRE_THAT(mixed(i, j), Catch::Matchers::WithinAbs(
                                      (1 + beta) * in.final_hidden(i, j) - beta * expect(i, j),
                                      1e-5 * (1 + beta)));
    }
  }
  REQUIRE(s.stats().rows_mixed == 3 * 4);
  REQUIRE(s.bank().updates(s.slot_of(off)) == 4);  // β = 0 still trains its slot
}

TEST_CASE("set_beta takes effect from the next step and is checked like ExplorationConfig.beta",
          "[sampler][beta]") {
  ExploratorySampler s(kLayers, distiller_config(), exploration_config(0.0f));
  ExploratorySampler twin(kLayers, distiller_config(), exploration_config(0.0f));
  const GroupId g = s.open_group(), h = twin.open_group(1.25f);
  REQUIRE(s.beta(g) == 0.0f);  // ExplorationConfig.beta is the default
  for (std::uint32_t t = 0; t < 4; ++t) {
    if (t == 2) s.set_beta(g, 1.25f);
    const StepInputs in = random_step(2, 1500 + 3 * t);
    const Mat got = run_step(s, {g, g}, in), want = run_step(twin, {h, h}, in);
    if (t < 2) {
      REQUIRE(bit_equal(got, in.final_hidden));
    } else {  // same bank, same rows: from now on exactly the twin's mix
      REQUIRE(bit_equal(got, want));
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(s.set_beta(g, inf),
                      Contains("set_beta: beta = inf: must be finite and >= 0"));
  REQUIRE_THROWS_WITH(s.set_beta(g, -0.5f), Contains("beta = -0.5: must be finite and >= 0"));
  REQUIRE_THROWS_WITH(s.set_beta(g, std::nanf("")), Contains("must be finite and >= 0"));
  REQUIRE_THROWS_WITH(s.open_group(inf), Contains("open_group: beta = inf: must be finite"));
  REQUIRE_THROWS_WITH(s.set_beta(12345, 1.0f), Contains("group 12345 is unknown"));
  REQUIRE(s.beta(g) == 1.25f);  // the refused values left it as it was
}

TEST_CASE("the engine's two mixing points mix where the mode says, and name the draw filter",
          "[sampler][mix]") {
  const Mat head = random_matrix(10, kHidden, 1600);
  Filter filter;
  filter.temperature = 0.7f;
  filter.top_k = 4;
  for (const MixMode mode : {MixMode::latent, MixMode::candidates}) {
    INFO("mode " << name(mode));
    ExploratorySampler via_points(kLayers, distiller_config(), exploration_config(1.0f, mode));
    ExploratorySampler direct(kLayers, distiller_config(), exploration_config(1.0f, mode));
    const GroupId g = via_points.open_group(), d = direct.open_group();
    for (std::uint32_t t = 0; t < 3; ++t) {
      const StepInputs in = random_step(2, 1700 + 3 * t);
      Mat h1 = in.final_hidden, h2 = in.final_hidden;
      for (ExploratorySampler* s : {&via_points, &direct}) {
        s->begin_step(std::vector<GroupId>(2, s == &direct ? d : g));
        s->on_hidden(0, Site::layer_input_normed, cview(in.source));
        s->on_hidden(kLayers - 1, Site::layer_input_normed, cview(in.target));
      }
      via_points.before_lm_head(view(h1));
      Mat l1 = h1 * head.transpose();
      via_points.after_lm_head(view(l1), cview(head), &filter);
      if (mode == MixMode::latent) direct.mix_hidden(view(h2));
      Mat l2 = h2 * head.transpose();
      if (mode == MixMode::candidates) direct.mix_logits(view(l2), cview(head), filter);
      via_points.end_step();
      direct.end_step();
      REQUIRE(bit_equal(l1, l2));
    }
    const Filter draw = via_points.sampling_filter(filter);
    REQUIRE(draw.top_k == (mode == MixMode::latent ? 4 : 0));
    REQUIRE(draw.temperature == 0.7f);
  }
  ExploratorySampler cand(kLayers, distiller_config(),
                          exploration_config(1.0f, MixMode::candidates));
  const GroupId c = cand.open_group();
  const StepInputs in = random_step(1, 1800);
  Mat logits = in.final_hidden * head.transpose();
  cand.begin_step(std::vector<GroupId>{c});
  cand.on_hidden(0, Site::layer_input_normed, cview(in.source));
  REQUIRE_THROWS_WITH(cand.after_lm_head(view(logits), cview(head), nullptr),
                      Contains("and the filter is null"));
}

namespace {
bool same_slot(const BankState& a, int slot_a, const BankState& b, int slot_b) {
  for (const auto array :
       {BankArray::parameters, BankArray::first_moment, BankArray::second_moment})
    if (!bit_equal(a.slot_array(array, slot_a).data(), b.slot_array(array, slot_b).data(),
                   a.slot_array(array, slot_a).size()))
      return false;
  return a.updates(slot_a) == b.updates(slot_b);
}
}  // namespace

TEST_CASE(
    "warm start: a trained group's slot becomes the prior when it closes and new groups start from "
    "it, and the prior never trains",
    "[sampler][warm_start]") {
  ExplorationConfig e = exploration_config();
  e.warm_start = true;
  e.training_threads = GENERATE(1, 2);  // the parts of an update give the same bits
  INFO("training_threads " << e.training_threads);
  ExploratorySampler s(kLayers, distiller_config(2), e);
  REQUIRE(s.bank().slots() == 3);
  const int prior = 2;
  const BankState fresh(distiller_config(2));
  const auto params = [](const BankState& bank, int slot) {
    return bank.slot_array(BankArray::parameters, slot);
  };
  const auto same_params = [&](const BankState& a, int slot_a, const BankState& b, int slot_b) {
    return bit_equal(params(a, slot_a).data(), params(b, slot_b).data(), params(a, slot_a).size());
  };
  const auto cleared = [](const BankState& bank, int slot) {
    for (const auto moment : {BankArray::first_moment, BankArray::second_moment})
      for (const float m : bank.slot_array(moment, slot))
        if (m != 0.0f) return false;
    return bank.updates(slot) == 0;
  };
  GroupId a = s.open_group();
  const GroupId b = s.open_group();
  REQUIRE_THROWS_WITH(s.open_group(), Contains("the bank is full: all 2 slots are in use"));
  for (std::uint32_t t = 0; t < 3; ++t) run_step(s, {a, b, a}, random_step(3, 1300 + 3 * t));
  const Stats st = s.stats();
  REQUIRE(st.rows_trained == 9);
  REQUIRE(st.slot_updates == 2 * 3);  // the groups' two slots, every step; the prior none
  BankState before = s.bank();
  REQUIRE(same_params(before, prior, fresh, 0));
  REQUIRE(cleared(before, prior));

  const int freed = s.slot_of(a);
  s.close_group(a);
  BankState now = s.bank();
  REQUIRE(same_params(now, prior, before, freed));  // a's trained parameters, bit for bit
  REQUIRE_FALSE(same_params(now, prior, fresh, 0));
  REQUIRE(cleared(now, prior));
  a = s.open_group();
  REQUIRE(s.slot_of(a) == freed);
  now = s.bank();
  REQUIRE(same_params(now, freed, now, prior));
  REQUIRE(cleared(now, freed));

  // A group closed before it trained leaves the prior as it was.
  before = now;
  s.close_group(a);
  REQUIRE(same_params(s.bank(), prior, before, prior));
  a = s.open_group();
  run_step(s, {b, a}, random_step(2, 1310));
  before = s.bank();
  s.close_group(b);
  REQUIRE(same_params(s.bank(), prior, before, 1));
}

TEST_CASE("a group opened without the warm start starts from the seeded initialisation",
          "[sampler][warm_start]") {
  ExplorationConfig e = exploration_config();
  e.warm_start = true;
  ExploratorySampler s(kLayers, distiller_config(2), e);
  const BankState fresh(distiller_config(2));
  const auto params = [](const BankState& bank, int slot) {
    return bank.slot_array(BankArray::parameters, slot);
  };
  const GroupId a = s.open_group();
  for (std::uint32_t t = 0; t < 2; ++t) run_step(s, {a, a}, random_step(2, 1400 + t));
  s.close_group(a);  // the prior now holds a's trained parameters
  const int prior = 2;
  REQUIRE_FALSE(
      bit_equal(params(s.bank(), prior).data(), params(fresh, 0).data(), params(fresh, 0).size()));

  const GroupId cold = s.open_group(0.5f, false);
  CHECK(s.beta(cold) == 0.5f);
  const BankState now = s.bank();
  CHECK(bit_equal(params(now, s.slot_of(cold)).data(), params(fresh, 0).data(),
                  params(fresh, 0).size()));
  CHECK(now.updates(s.slot_of(cold)) == 0);
  const GroupId warm = s.open_group(0.5f, true);
  CHECK(bit_equal(params(s.bank(), s.slot_of(warm)).data(), params(s.bank(), prior).data(),
                  params(fresh, 0).size()));
}

TEST_CASE("a warm-started bank saved and loaded continues bit for bit, new groups included",
          "[sampler][warm_start][file]") {
  ExplorationConfig e = exploration_config();
  e.warm_start = true;
  ExploratorySampler a(kLayers, distiller_config(2), e), b(kLayers, distiller_config(2), e);
  std::vector<GroupId> ga = {a.open_group(), a.open_group()};
  std::vector<GroupId> gb = {b.open_group(), b.open_group()};
  for (std::uint32_t t = 0; t < 3; ++t) run_step(a, {ga[0], ga[1]}, random_step(2, 1400 + 3 * t));
  const std::string path = esamp::test::temp_path("warm_start.bank");
  a.save_bank(path);
  b.load_bank(path);
  a.close_group(ga[1]);
  b.close_group(gb[1]);
  ga[1] = a.open_group();
  gb[1] = b.open_group();
  for (std::uint32_t t = 0; t < 3; ++t) {
    const StepInputs in = random_step(3, 1500 + 3 * t);
    REQUIRE(
        bit_equal(run_step(a, {ga[0], ga[1], ga[1]}, in), run_step(b, {gb[0], gb[1], gb[1]}, in)));
  }
  const BankState bank_a = a.bank(), bank_b = b.bank();
  for (int slot = 0; slot < 3; ++slot) REQUIRE(same_slot(bank_a, slot, bank_b, slot));
  REQUIRE(a.stats().slot_updates == 6 * 2);
  REQUIRE(b.stats().slot_updates == 3 * 2);  // counters are the sampler's, not the file's
  std::remove(path.c_str());
}

TEST_CASE("a young slot is updated young_repeat times per step until young_updates",
          "[sampler][young]") {
  ExplorationConfig e = exploration_config();
  e.young_updates = 3;
  e.young_repeat = 2;
  e.training_threads = GENERATE(1, 2);
  INFO("training_threads " << e.training_threads);
  ExploratorySampler s(kLayers, distiller_config(2), e);
  const GroupId g = s.open_group();
  LatentDistiller reference(distiller_config(1));
  const std::vector<int> repeats = {2, 1, 1};  // updates 1, 2 | 3 (3 is not young) | 4
  const std::vector<std::int64_t> counts = {2, 3, 4};
  for (std::size_t t = 0; t < repeats.size(); ++t) {
    const StepInputs in = random_step(3, 1600 + 3 * static_cast<std::uint32_t>(t));
    run_step(s, {g, g, g}, in);
    for (int r = 0; r < repeats[t]; ++r)
      reference.train_step(std::vector<int>(3, 0), cview(in.source), cview(in.target));
    REQUIRE(s.bank().updates(s.slot_of(g)) == counts[t]);
  }
  REQUIRE(same_slot(s.bank(), s.slot_of(g), reference.state(), 0));
  const Stats st = s.stats();
  REQUIRE(st.slot_updates == 4);
  REQUIRE(st.rows_trained == 9);
  REQUIRE(st.steps_trained == 3);
}

namespace {
// A backend that says it runs on CUDA; the front end passes it the schedule options as it does the
// CPU backend.
class CudaLookalike final : public SamplerBackend {
 public:
  CudaLookalike(const DistillerConfig& c, std::vector<std::pair<int, int>>& resets)
      : bank_(c), resets_(resets) {}
  Device device() const override { return Device::cuda; }
  void reset_slot(int slot, int from) override { resets_.emplace_back(slot, from); }
  void begin_step(Span<const int>, Span<const float>) override {}
  void on_source(const ConstMatrixView&) override {}
  void on_target(const ConstMatrixView&) override {}
  void mix_hidden(const MatrixView&) override {}
  void mix_logits(const MatrixView&, const ConstMatrixView&, const Filter&) override {}
  void end_step() override {}
  Stats stats() override { return {}; }
  GroupStats slot_stats(int) override { return {}; }
  BankState bank() override { return bank_; }
  void set_bank(const BankState&) override {}

 private:
  BankState bank_;
  std::vector<std::pair<int, int>>& resets_;  // (slot, from) of every reset_slot call
};
}  // namespace

TEST_CASE(
    "warm start, young repeats and lr decay reach a non-CPU backend like the CPU one, the prior's "
    "slot and its copies included",
    "[sampler][warm_start][young][lr_decay]") {
  ExplorationConfig e = exploration_config();
  e.warm_start = true;
  e.young_updates = 8;
  e.young_repeat = 2;
  e.lr_decay_updates = 4;
  ExplorationConfig seen;
  DistillerConfig bank;
  std::vector<std::pair<int, int>> resets;
  const BackendFactory lookalike = [&](const DistillerConfig& c, const ExplorationConfig& x) {
    bank = c;
    seen = x;
    return std::make_unique<CudaLookalike>(c, resets);
  };
  ExploratorySampler s(kLayers, distiller_config(2), e, lookalike);
  REQUIRE(s.device() == Device::cuda);
  CHECK(bank.slots == 3);  // two groups' and the prior
  CHECK(seen.warm_start);
  CHECK(seen.young_updates == 8);
  CHECK(seen.young_repeat == 2);
  CHECK(seen.lr_decay_updates == 4);
  const GroupId a = s.open_group(), b = s.open_group();
  CHECK(s.slot_of(a) == 0);
  CHECK(s.slot_of(b) == 1);
  REQUIRE_THROWS_WITH(s.open_group(), Contains("the bank is full: all 2 slots are in use"));
  s.close_group(b);  // never trained: the prior keeps what it has
  // A step on "device" views (the lookalike reads none of them).
  float row[kHidden] = {};
  const ConstMatrixView on_device(row, 1, kHidden, kHidden, DType::f32, Device::cuda);
  s.begin_step(std::vector<GroupId>{a});
  s.on_hidden(0, Site::layer_input_normed, on_device);
  s.on_hidden(kLayers - 1, Site::layer_input_normed, on_device);
  s.mix_hidden(MatrixView(row, 1, kHidden, kHidden, DType::f32, Device::cuda));
  s.end_step();
  s.close_group(a);
  const std::vector<std::pair<int, int>> expected = {{0, 2}, {1, 2}, {2, 0}};
  CHECK(resets == expected);  // open: from the prior; close after training: into the prior
}

TEST_CASE("with lr_decay_updates d a group's slot with n updates trains at lr · d / (d + n)",
          "[sampler][lr_decay]") {
  ExplorationConfig e = exploration_config();
  e.lr_decay_updates = 2;
  ExploratorySampler s(kLayers, distiller_config(1), e);
  const GroupId g = s.open_group();
  BankState group_ref(distiller_config(1)), constant_ref(distiller_config(1));
  for (std::uint32_t t = 0; t < 4; ++t) {
    const StepInputs in = random_step(3, 1700 + 3 * static_cast<std::uint32_t>(t));
    run_step(s, {g, g, g}, in);
    // The group's slot: one AdamW step at the decayed lr, continuing its moments and count.
    DistillerConfig decayed = distiller_config(1);
    decayed.lr = static_cast<float>(decayed.lr * 2.0 / (2.0 + t));
    LatentDistiller step(BankState(
        decayed, group_ref.whole(BankArray::parameters), group_ref.whole(BankArray::first_moment),
        group_ref.whole(BankArray::second_moment), group_ref.update_counts()));
    step.train_step(std::vector<int>(3, 0), cview(in.source), cview(in.target));
    group_ref = step.state();
    LatentDistiller constant(constant_ref);
    constant.train_step(std::vector<int>(3, 0), cview(in.source), cview(in.target));
    constant_ref = constant.state();
  }
  const BankState bank = s.bank();
  REQUIRE(same_slot(bank, s.slot_of(g), group_ref, 0));
  REQUIRE_FALSE(same_slot(bank, s.slot_of(g), constant_ref, 0));  // the decay did change it
}
