// No CPU hook allocates: this test binary replaces the global operator new and delete with
// counting ones, and builds Eigen with EIGEN_RUNTIME_NO_MALLOC so that Eigen's own heap use (which
// bypasses operator new) is counted too. Its own binary: the replacement is process-wide.
#define EIGEN_RUNTIME_NO_MALLOC
#include <atomic>
#include <cstdlib>
#include <new>

namespace counting {
std::atomic<bool> enabled{false};
std::atomic<long> news{0};        // operator new calls while enabled
std::atomic<long> eigen_heap{0};  // Eigen heap allocations while forbidden (and any Eigen assert)
}  // namespace counting

// Eigen reports a forbidden heap allocation through eigen_assert: count it instead of aborting.
#define eigen_assert(x)                            \
  do {                                             \
    if (!(x)) ::counting::eigen_heap.fetch_add(1); \
  } while (0)

#include <catch2/catch.hpp>
#include <limits>
#include <vector>

#include "esamp/sampler.hpp"
#include "test_util.hpp"

namespace {
void* counted_new(std::size_t size) {
  if (counting::enabled.load()) counting::news.fetch_add(1);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) { return counted_new(size); }
void* operator new[](std::size_t size) { return counted_new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace esamp;
using esamp::test::cview;
using esamp::test::Mat;
using esamp::test::random_matrix;
using esamp::test::view;

namespace {

constexpr int kLayers = 3, kHidden = 64, kRows = 8, kVocab = 40;

// Counts what the calls of `body` allocate (operator new, Eigen's heap); nothing of Catch runs in
// between.
template <class Body>
std::pair<long, long> allocations(Body&& body) {
  counting::news = 0;
  counting::eigen_heap = 0;
  Eigen::internal::set_is_malloc_allowed(false);
  counting::enabled = true;
  body();
  counting::enabled = false;
  Eigen::internal::set_is_malloc_allowed(true);
  return {counting::news.load(), counting::eigen_heap.load()};
}

struct Inputs {
  std::vector<std::uint16_t> source;  // bf16 [rows, H]: the conversion path
  Mat target, final_hidden, head;
};

Inputs make_inputs(std::uint32_t seed) {
  Inputs in{std::vector<std::uint16_t>(kRows * kHidden), random_matrix(kRows, kHidden, seed + 1),
            random_matrix(kRows, kHidden, seed + 2), random_matrix(kVocab, kHidden, seed + 3)};
  const Mat x = random_matrix(kRows, kHidden, seed);
  for (int i = 0; i < x.size(); ++i)
    in.source[static_cast<std::size_t>(i)] = float_to_bfloat16(x.data()[i]);
  in.source[5] = float_to_bfloat16(std::numeric_limits<float>::quiet_NaN());  // row 0 not finite
  in.target(3, 1) = std::numeric_limits<float>::infinity();                   // row 3 not finite
  return in;
}

ExploratorySampler make_sampler(MixMode mix, bool background) {
  DistillerConfig d;
  d.hidden_size = kHidden;
  d.rank = 16;
  d.slots = 3;
  ExplorationConfig e;
  e.beta = 0.5f;
  e.mix = mix;
  e.max_rows = kRows;
  e.warmup_updates = 0;
  e.background_training = background;
  return ExploratorySampler(kLayers, d, e);
}

// One decode step through every hook, with `rows` rows, as an engine calls them.
void step(ExploratorySampler& s, const std::vector<GroupId>& groups, Inputs& in, Mat& hidden,
          Mat& logits, const Filter& filter) {
  const auto rows = static_cast<std::int64_t>(groups.size());
  s.begin_step(groups);
  for (int layer = 0; layer < kLayers; ++layer) {
    if (s.wants(layer, Site::layer_input_normed)) {
      if (layer == 0) {
        s.on_hidden(layer, Site::layer_input_normed,
                    ConstMatrixView(in.source.data(), rows, kHidden, kHidden, DType::bf16));
      } else {
        s.on_hidden(layer, Site::layer_input_normed,
                    ConstMatrixView(in.target.data(), rows, kHidden, kHidden, DType::f32));
      }
    }
  }
  hidden = in.final_hidden;  // no allocation: same shape
  s.before_lm_head(MatrixView(hidden.data(), rows, kHidden, kHidden, DType::f32));
  logits.noalias() = hidden * in.head.transpose();
  s.after_lm_head(MatrixView(logits.data(), rows, kVocab, kVocab, DType::f32), cview(in.head),
                  &filter);
  s.end_step();
}

}  // namespace

TEST_CASE("the allocation counters see operator new and Eigen's heap", "[allocation]") {
  const auto [news, eigen] = allocations([] {
    std::vector<int> v(100);
    Eigen::MatrixXf m(50, 50);
    m.setZero();
    v[0] = static_cast<int>(m(0, 0));
  });
  REQUIRE(news >= 1);
  REQUIRE(eigen >= 1);
}

TEST_CASE("no hook allocates in latent mode, from the first step on", "[allocation]") {
  const bool background = GENERATE(false, true);
  INFO("background_training " << background);
  ExploratorySampler s = make_sampler(MixMode::latent, background);
  const std::vector<GroupId> groups = {s.open_group(), s.open_group(1.5f), s.open_group(0.0f)};
  const std::vector<GroupId> rows8 = {groups[0], groups[1], groups[2], groups[0],
                                      groups[1], groups[0], groups[2], groups[1]};
  const std::vector<GroupId> rows3 = {groups[2], groups[0], groups[1]};
  Inputs in = make_inputs(1);
  Mat hidden(kRows, kHidden), logits(kRows, kVocab);
  const Filter filter;
  Stats stats;
  const auto [news, eigen] = allocations([&] {
    for (int t = 0; t < 6; ++t) {
      if (t == 3) s.set_beta(groups[2], 0.25f);
      step(s, t % 2 ? rows3 : rows8, in, hidden, logits, filter);
    }
    stats = s.stats();
  });
  CHECK(news == 0);
  CHECK(eigen == 0);
  CHECK(stats.steps == 6);
  CHECK(stats.rows_mixed > 0);  // the hooks did the work
  CHECK(stats.slot_updates > 0);
}

TEST_CASE("no hook allocates in candidates mode once the vocabulary is known", "[allocation]") {
  ExploratorySampler s = make_sampler(MixMode::candidates, false);
  const std::vector<GroupId> groups(kRows, s.open_group());
  Inputs in = make_inputs(2);
  Mat hidden(kRows, kHidden), logits(kRows, kVocab);
  Filter filter;
  filter.top_k = 10;
  filter.top_p = 0.9f;
  step(s, groups, in, hidden, logits, filter);  // sizes the vocabulary-long row, once
  const auto [news, eigen] = allocations([&] {
    for (int t = 0; t < 4; ++t) step(s, groups, in, hidden, logits, filter);
  });
  CHECK(news == 0);
  CHECK(eigen == 0);
  CHECK(s.stats().rows_mixed > 0);
}
