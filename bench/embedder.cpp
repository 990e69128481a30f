// The sentence encoder's speed: time per sample of ~150 tokens, embedded all at once and 16 at a
// time (one prompt's samples, as esamp-eval embeds them), wall clock and process CPU time.
//   esamp-bench-embedder [--samples N] [--words W] [--repeats R]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "embed/sentence_encoder.hpp"

namespace {

// Story-like text of `words` words (about 1.1 tokens per word).
std::vector<std::string> samples(int count, int words) {
  const char* vocabulary[] = {
      "once", "upon",  "a",       "time", "there",   "was",   "little", "girl", "named", "lily",
      "she",  "loved", "to",      "play", "outside", "in",    "the",    "sun",  "with",  "her",
      "dog",  "and",   "friends", "one",  "day",     "they",  "found",  "big",  "red",   "ball",
      "park", "happy", "tom",     "said", "mom",     "asked", "why",    "sky",  "is",    "blue"};
  std::mt19937 gen(42);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(vocabulary) - 1);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string text;
    for (int w = 0; w < words; ++w)
      text += std::string(w == 0 ? "" : (w % 12 == 0 ? ". " : " ")) + vocabulary[pick(gen)];
    out.push_back(text + ".");
  }
  return out;
}

struct Timing {
  double wall_s = 0, cpu_s = 0;
};

template <class F>
Timing timed(F&& f) {
  const auto wall = std::chrono::steady_clock::now();
  const std::clock_t cpu = std::clock();
  f();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(),
          static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC};
}

}  // namespace

int main(int argc, char** argv) {
  int count = 256, words = 135, repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--samples") == 0)
      count = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--words") == 0)
      words = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--repeats") == 0)
      repeats = std::atoi(argv[i + 1]);
  }
  if (argc % 2 == 0 || count < 16 || words < 1 || repeats < 1) {
    std::fputs("usage: esamp-bench-embedder [--samples N>=16] [--words W] [--repeats R]\n", stderr);
    return 2;
  }
  const auto dir = esamp::embed::find_embedder_dir();
  if (!dir) {
    std::fputs("no encoder found: run scripts/fetch-embedder or set ESAMP_EMBEDDER_DIR\n", stderr);
    return 1;
  }
  const auto encoder = esamp::embed::SentenceEncoder::load(*dir);
  const std::vector<std::string> texts = samples(count, words);
  double tokens = 0, flops = 0;
  for (const auto& t : texts) {
    const double n = static_cast<double>(encoder.tokenize(t).size());
    const double h = encoder.dim(), ffn = 4 * h;
    tokens += n;
    flops += 6 * (2 * n * (4 * h * h + 2 * h * ffn) + 4 * n * n * h);  // 6 layers: GEMMs, attention
  }
  std::printf("%d samples, %.1f tokens each, %.2f GFLOP each, %u threads\n", count, tokens / count,
              flops / count * 1e-9, std::thread::hardware_concurrency());
  encoder.encode({texts.begin(), texts.begin() + 16});  // warm-up
  for (const bool by_prompt : {false, true}) {
    Timing best{1e30, 1e30};
    for (int r = 0; r < repeats; ++r) {
      const Timing t = timed([&] {
        if (!by_prompt) {
          encoder.encode(texts);
          return;
        }
        for (int i = 0; i + 16 <= count; i += 16)
          encoder.encode({texts.begin() + i, texts.begin() + i + 16});
      });
      if (t.wall_s < best.wall_s) best = t;
    }
    const double n = by_prompt ? count / 16 * 16 : count;
    std::printf(
        "%-16s %7.2f ms/sample wall, %7.2f ms/sample CPU, %6.1f GFLOP/s wall (best of %d)\n",
        by_prompt ? "16 at a time:" : "all at once:", best.wall_s / n * 1e3, best.cpu_s / n * 1e3,
        flops / count * n / best.wall_s * 1e-9, repeats);
  }
  return 0;
}
