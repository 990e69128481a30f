// ProgressBar drawing: redrawn in place with '\r', at most ten times a second.
#include "progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace esamp::generation {

ProgressBar::ProgressBar(std::int64_t total_tokens, bool enabled)
    : total_tokens_(std::max<std::int64_t>(total_tokens, 1)), enabled_(enabled) {}

void ProgressBar::advance(std::int64_t tokens) {
  done_tokens_ += tokens;
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  constexpr double kQuietSeconds = 1.0;  // short runs print no bar at all
  constexpr double kRedrawSeconds = 0.1;
  if (elapsed < kQuietSeconds ||
      std::chrono::duration<double>(now - last_draw_).count() < kRedrawSeconds)
    return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double fraction = std::min(1.0, static_cast<double>(done_tokens_) / total_tokens_);
  const auto filled = static_cast<int>(fraction * kWidth);
  const double tokens_per_second = done_tokens_ / elapsed;
  const auto eta = static_cast<long long>(
      tokens_per_second > 0.0 ? (total_tokens_ - done_tokens_) / tokens_per_second : 0.0);
  fmt::print(stderr, "\r[{}{}] {}/{} tokens  {:.0f} tok/s  ETA {}:{:02d} ",
             std::string(filled, '#'), std::string(kWidth - filled, ' '), done_tokens_,
             total_tokens_, tokens_per_second, eta / 60, eta % 60);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!drawn_) return;
  fmt::print(stderr, "\r{:80}\r", "");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace esamp::generation
