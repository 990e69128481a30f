// Samplers on several threads at once (run under ThreadSanitizer by the tsan preset): distinct
// samplers share nothing, so each thread's results equal the same sampler run alone.
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "esamp/sampler.hpp"
#include "test_util.hpp"

using namespace esamp;
using esamp::test::Mat;
using esamp::test::random_matrix;

namespace {

constexpr int kLayers = 3, kHidden = 16, kRows = 6, kSteps = 60;

// Runs kSteps latent steps of two groups on a sampler of its own; returns every mixed hidden state
// followed by the final parameters of both slots.
std::vector<float> run_sampler(std::uint32_t seed, bool background) {
  DistillerConfig d;
  d.hidden_size = kHidden;
  d.rank = 4;
  d.slots = 2;
  d.lr = 1e-2f;
  d.seed = seed;
  ExplorationConfig e;
  e.beta = 0.5f;
  e.warmup_updates = 1;
  e.max_rows = kRows;
  e.background_training = background;
  ExploratorySampler sampler(kLayers, d, e);
  const GroupId a = sampler.open_group(), b = sampler.open_group();
  const std::vector<GroupId> rows = {a, b, a, b, b, a};
  std::vector<float> out;
  for (int step = 0; step < kSteps; ++step) {
    const Mat x = random_matrix(kRows, kHidden, seed * 1000 + 3 * static_cast<std::uint32_t>(step));
    Mat h = random_matrix(kRows, kHidden, seed * 1000 + 3 * static_cast<std::uint32_t>(step) + 2);
    sampler.begin_step(rows);
    sampler.on_hidden(0, Site::layer_input_normed, {x.data(), x.rows(), x.cols()});
    sampler.before_lm_head({h.data(), h.rows(), h.cols()});  // the target too (the default)
    sampler.end_step();
    out.insert(out.end(), h.data(), h.data() + h.size());
  }
  const BankState bank = sampler.bank();
  for (const int slot : {sampler.slot_of(a), sampler.slot_of(b)}) {
    const Span<const float> p = bank.slot_array(BankArray::parameters, slot);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

}  // namespace

TEST_CASE("several samplers run in several threads at once, each as if alone", "[thread]") {
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> alone(kThreads), together(kThreads);
  for (int t = 0; t < kThreads; ++t)
    alone[static_cast<std::size_t>(t)] = run_sampler(static_cast<std::uint32_t>(t + 1), t % 2 == 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t, &together] {
      together[static_cast<std::size_t>(t)] =
          run_sampler(static_cast<std::uint32_t>(t + 1), t % 2 == 1);
    });
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    const auto& x = alone[static_cast<std::size_t>(t)];
    const auto& y = together[static_cast<std::size_t>(t)];
    REQUIRE(x.size() == y.size());
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
  // Different seeds give different runs: the comparison above is not trivially true.
  CHECK(alone[0] != alone[2]);
}
