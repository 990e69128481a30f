// A one-line progress bar on stderr (tokens done, tokens/s, ETA) for runs longer than a second.
#pragma once

#include <chrono>
#include <cstdint>

namespace esamp::generation {

class ProgressBar {
 public:
  // `total_tokens`: the token budget of the whole run (an upper bound: samples may end early).
  // Disabled, it draws nothing.
  ProgressBar(std::int64_t total_tokens, bool enabled);
  ~ProgressBar() { finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(std::int64_t tokens);
  // Erases the bar, so that what follows starts on a clean line.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;

  std::int64_t total_tokens_;
  std::int64_t done_tokens_ = 0;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_ = start_;
};

}  // namespace esamp::generation
