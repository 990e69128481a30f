// Soak: many decode steps on the CPU backend with group churn (groups opened and closed at random,
// rows joining and leaving up to max_rows) and non-finite rows in bursts, on two samplers fed
// alike. Halfway, the second saves its bank, is destroyed, and a fresh sampler loads the bank and
// takes over its groups. At the end it checks and prints: resident memory at step 1,000 and at
// the end (growth within kRssGrowthBound), parameters and moments finite, the counters consistent
// with what was fed (the first sampler's groups', each read before it closes, summing to its
// own), and the resumed sampler bit-identical to the one that never stopped.
//   esamp_soak [--steps N] [--background on|off]     (CI runs a short version; N = 100000 is the
//                                                     long one, see bench/results/reliability.md)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "esamp/sampler.hpp"

namespace {

using esamp::ExploratorySampler;
using esamp::GroupId;

constexpr int kHidden = 32, kLayers = 4, kSlots = 8, kMaxRows = 32;
// Steady state allocates nothing that lives on; the bound leaves room for the allocator's own
// caching of the per-step temporaries and the restarted sampler.
constexpr double kRssGrowthBound = 4.0;  // MiB, from step 1,000 to the end
constexpr int kRssStep = 1000;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // the sanitizers' quarantine and shadow memory grow by design
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
}

std::unique_ptr<ExploratorySampler> make_sampler(bool background) {
  esamp::DistillerConfig d;
  d.hidden_size = kHidden;
  d.rank = 8;
  d.slots = kSlots;
  d.lr = 1e-2f;
  d.seed = 5;
  esamp::ExplorationConfig e;
  e.beta = 0.5f;
  e.source = {0, esamp::Site::layer_input_normed};
  e.target = {-1, esamp::Site::layer_output};
  e.warmup_updates = 2;
  e.max_rows = kMaxRows;
  e.background_training = background;
  return std::make_unique<ExploratorySampler>(kLayers, d, e);
}

// One prompt of the run: its group in each sampler and how many rows it decodes.
struct Group {
  GroupId in_a, in_b;
  int rows;
};

struct Options {
  long steps = 5000;
  bool background = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--steps") {
      o.steps = std::stol(value);
    } else if (flag == "--background" && (value == "on" || value == "off")) {
      o.background = value == "on";
    } else {
      esamp::fail("unknown option {} {}: use --steps N, --background on|off", flag, value);
    }
  }
  if (argc % 2 == 0) esamp::fail("{}: an option lacks its value", argv[argc - 1]);
  if (o.steps < 2 * kRssStep) esamp::fail("--steps {}: must be >= {}", o.steps, 2 * kRssStep);
  return o;
}

// Opens in `fresh` the groups `groups` had in `old` (same slots), so that a loaded bank serves
// each group from its own slot again; a group opened later gets the same slot in both samplers.
void take_over_groups(ExploratorySampler& old, ExploratorySampler& fresh,
                      std::vector<Group>& groups) {
  std::vector<GroupId> by_slot(kSlots);
  for (int s = 0; s < kSlots; ++s) by_slot[static_cast<std::size_t>(s)] = fresh.open_group();
  std::vector<bool> used(kSlots, false);
  for (Group& g : groups) {
    const int slot = old.slot_of(g.in_b);
    g.in_b = by_slot[static_cast<std::size_t>(slot)];
    used[static_cast<std::size_t>(slot)] = true;
  }
  for (int s = 0; s < kSlots; ++s)
    if (!used[static_cast<std::size_t>(s)]) fresh.close_group(by_slot[static_cast<std::size_t>(s)]);
}

int check(bool ok, const char* what) {
  std::printf("  %-64s %s\n", what, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

int run(const Options& o) {
  std::mt19937_64 random(2026);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::uniform_int_distribution<int> column_of(0, kHidden - 1);
  const auto bernoulli = [&random](double p) { return std::bernoulli_distribution(p)(random); };
  std::unique_ptr<ExploratorySampler> a = make_sampler(o.background),
                                      b = make_sampler(o.background);
  const std::string bank_path = "/tmp/esamp_soak_" + std::to_string(::getpid()) + ".bank";
  std::vector<Group> groups;
  std::vector<float> source(kMaxRows * kHidden), target(source.size()), final_a(source.size()),
      final_b(source.size());
  std::vector<GroupId> rows_a, rows_b;
  long rows_fed = 0, rows_poisoned = 0, rows_bad_source = 0, mismatched_steps = 0, opened = 0,
       closed = 0;
  int burst_left = 0;
  double rss_at_step = 0.0;
  const long resume_at = o.steps / 2;
  esamp::GroupStats groups_total;  // a's groups, each read before it closes or at the end
  const auto count_group = [&](GroupId g) {
    const esamp::GroupStats c = a->group_stats(g);
    groups_total.rows_trained += c.rows_trained;
    groups_total.rows_skipped_nonfinite += c.rows_skipped_nonfinite;
    groups_total.rows_mixed += c.rows_mixed;
    groups_total.slot_updates += c.slot_updates;
  };
  const auto start = std::chrono::steady_clock::now();

  for (long step = 0; step < o.steps; ++step) {
    // Churn: a group closes now and then, another opens, and groups' rows join and leave.
    if (!groups.empty() && bernoulli(0.02)) {
      const auto victim = std::uniform_int_distribution<std::size_t>(0, groups.size() - 1)(random);
      count_group(groups[victim].in_a);
      a->close_group(groups[victim].in_a);
      b->close_group(groups[victim].in_b);
      groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(victim));
      ++closed;
    }
    int total = 0;
    for (const Group& g : groups) total += g.rows;
    if (groups.size() < static_cast<std::size_t>(kSlots) && total < kMaxRows &&
        (groups.empty() || bernoulli(0.03))) {
      groups.push_back({a->open_group(), b->open_group(), 1});
      ++total;
      ++opened;
    }
    for (Group& g : groups) {
      if (!bernoulli(0.1)) continue;
      if (bernoulli(0.5) && total < kMaxRows) {
        ++g.rows;
        ++total;
      } else if (g.rows > 1) {
        --g.rows;
        --total;
      }
    }
    rows_a.clear();
    rows_b.clear();
    for (const Group& g : groups)
      for (int r = 0; r < g.rows; ++r) {
        rows_a.push_back(g.in_a);
        rows_b.push_back(g.in_b);
      }
    // The rows of a step come in a random order, alike for both samplers.
    std::vector<std::size_t> order(rows_a.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), random);
    std::vector<GroupId> shuffled_a(rows_a.size()), shuffled_b(rows_b.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      shuffled_a[i] = rows_a[order[i]];
      shuffled_b[i] = rows_b[order[i]];
    }
    const auto n = static_cast<std::int64_t>(order.size());

    // Inputs: a learnable source-to-target map; during a burst a quarter of the rows carry a
    // NaN or an infinity in the source or the target (about 1% of all rows).
    if (burst_left == 0 && bernoulli(0.004)) burst_left = 10;
    for (std::int64_t i = 0; i < n; ++i) {
      float* x = &source[static_cast<std::size_t>(i * kHidden)];
      float* y = &target[static_cast<std::size_t>(i * kHidden)];
      for (int j = 0; j < kHidden; ++j) x[j] = uniform(random);
      for (int j = 0; j < kHidden; ++j) y[j] = std::sin(x[j] + 0.5f * x[(j + 1) % kHidden]);
      for (int j = 0; j < kHidden; ++j)
        final_a[static_cast<std::size_t>(i * kHidden + j)] = y[j] + 0.1f * uniform(random);
      if (burst_left > 0 && bernoulli(0.25)) {
        const float poison = bernoulli(0.5) ? std::numeric_limits<float>::quiet_NaN()
                                            : std::numeric_limits<float>::infinity();
        const bool in_source = bernoulli(0.5);
        const int column = column_of(random);
        (in_source ? x : y)[column] = bernoulli(0.5) ? poison : -poison;
        ++rows_poisoned;
        rows_bad_source += in_source ? 1 : 0;
      }
    }
    if (burst_left > 0) --burst_left;
    std::copy(final_a.begin(), final_a.end(), final_b.begin());
    const esamp::ConstMatrixView x(source.data(), n, kHidden), y(target.data(), n, kHidden);
    for (const auto& [sampler, rows, hidden] :
         {std::tuple{a.get(), &shuffled_a, &final_a}, std::tuple{b.get(), &shuffled_b, &final_b}}) {
      sampler->begin_step(*rows);
      sampler->on_hidden(0, esamp::Site::layer_input_normed, x);
      sampler->on_hidden(kLayers - 1, esamp::Site::layer_output, y);
      sampler->mix_hidden(esamp::MatrixView(hidden->data(), n, kHidden));
      sampler->end_step();
    }
    rows_fed += n;
    if (std::memcmp(final_a.data(), final_b.data(), static_cast<std::size_t>(n * kHidden) * 4))
      ++mismatched_steps;

    if (step + 1 == resume_at) {  // the second sampler stops, and a fresh one resumes its bank
      b->save_bank(bank_path);
      std::unique_ptr<ExploratorySampler> fresh = make_sampler(o.background);
      take_over_groups(*b, *fresh, groups);
      fresh->load_bank(bank_path);
      b = std::move(fresh);
    }
    if (step + 1 == kRssStep) rss_at_step = resident_mib();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rss_end = resident_mib();

  const esamp::Stats stats = a->stats();
  for (const Group& g : groups) count_group(g.in_a);
  bool finite = true;
  const esamp::BankState bank = a->bank();
  for (int s = 0; s < bank.slots(); ++s)
    for (const auto array : {esamp::BankArray::parameters, esamp::BankArray::first_moment,
                             esamp::BankArray::second_moment})
      for (const float value : bank.slot_array(array, s)) finite = finite && std::isfinite(value);
  a->save_bank(bank_path);
  const std::vector<std::uint8_t> bank_a = esamp::detail::read_file(bank_path);
  b->save_bank(bank_path);
  const std::vector<std::uint8_t> bank_b = esamp::detail::read_file(bank_path);
  std::remove(bank_path.c_str());

  std::printf(
      "esamp_soak: %ld steps, background training %s, %.1f s (%.1f us per step for two "
      "samplers)\n",
      o.steps, o.background ? "on" : "off", seconds, 1e6 * seconds / static_cast<double>(o.steps));
  std::printf("  rows fed %ld, non-finite %ld (%.2f%%), groups opened %ld, closed %ld\n", rows_fed,
              rows_poisoned,
              100.0 * static_cast<double>(rows_poisoned) / static_cast<double>(rows_fed), opened,
              closed);
  std::printf(
      "  stats: steps %lld, rows_trained %lld, rows_skipped_nonfinite %lld, rows_mixed %lld, "
      "slot_updates %lld, mean_loss %.4f, last_loss %.4f\n",
      static_cast<long long>(stats.steps), static_cast<long long>(stats.rows_trained),
      static_cast<long long>(stats.rows_skipped_nonfinite),
      static_cast<long long>(stats.rows_mixed), static_cast<long long>(stats.slot_updates),
      stats.mean_loss, stats.last_loss);
  std::printf(
      "  resident memory: %.2f MiB at step %d, %.2f MiB at the end (growth %+.2f MiB, "
      "bound %.1f MiB)\n",
      rss_at_step, kRssStep, rss_end, rss_end - rss_at_step, kRssGrowthBound);
  int failures = 0;
  if (kSanitized)
    std::printf("  %-64s %s\n", "resident memory growth within the bound",
                "not checked (sanitizer build)");
  else
    failures +=
        check(rss_end - rss_at_step <= kRssGrowthBound, "resident memory growth within the bound");
  failures += check(finite, "parameters and moments of every slot finite");
  failures += check(stats.steps == o.steps, "stats.steps equals the steps run");
  failures += check(stats.rows_trained + stats.rows_skipped_nonfinite == rows_fed,
                    "rows_trained + rows_skipped_nonfinite equals the rows trained on");
  failures += check(stats.rows_skipped_nonfinite == rows_poisoned,
                    "rows_skipped_nonfinite equals the non-finite rows fed");
  failures += check(stats.rows_mixed > 0 && stats.rows_mixed <= rows_fed - rows_bad_source,
                    "rows_mixed positive and at most the rows with a finite source");
  failures += check(groups_total.rows_trained == stats.rows_trained &&
                        groups_total.rows_skipped_nonfinite == stats.rows_skipped_nonfinite &&
                        groups_total.rows_mixed == stats.rows_mixed &&
                        groups_total.slot_updates == stats.slot_updates,
                    "the groups' counters add up to the sampler's");
  failures +=
      check(mismatched_steps == 0, "mixed hidden states of the resumed sampler bit-identical");
  failures += check(bank_a == bank_b, "final bank of the resumed sampler bit-identical");
  std::printf("esamp_soak: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "esamp_soak: %s\n", error.what());
    return 2;
  }
}
