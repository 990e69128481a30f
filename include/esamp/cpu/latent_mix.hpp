// Latent mixing of one row of final-normed hidden states (DESIGN.md §1, ExplorationConfig's
// LatentMix): the CPU twin of cuda/mix.cu's mix_hidden_kernel.
#pragma once

#include <cmath>
#include <cstdint>

#include "esamp/config.hpp"

namespace esamp::cpu {

// h ← h̃ in place, h and y_hat of length n. Dot products in double; a row with h = 0 (orthogonal:
// no direction to project on) or a zero mix (norm_kept: no norm to restore) is left as it is.
inline void mix_latent_row(float* h, const float* y_hat, std::int64_t n, float beta,
                           LatentMix mode) {
  if (mode == LatentMix::full) {
    for (std::int64_t j = 0; j < n; ++j) h[j] = (1.0f + beta) * h[j] - beta * y_hat[j];
    return;
  }
  double hh = 0.0, hy = 0.0, yy = 0.0;
  for (std::int64_t j = 0; j < n; ++j) {
    hh += static_cast<double>(h[j]) * h[j];
    hy += static_cast<double>(h[j]) * y_hat[j];
    yy += static_cast<double>(y_hat[j]) * y_hat[j];
  }
  if (hh == 0.0) return;
  const double b = beta;
  if (mode == LatentMix::orthogonal) {
    // h − β·(ŷ − a·h) with a = ŷ·h / h·h.
    const auto keep = static_cast<float>(1.0 + b * hy / hh);
    for (std::int64_t j = 0; j < n; ++j) h[j] = keep * h[j] - beta * y_hat[j];
    return;
  }
  // ‖(1+β)h − βŷ‖² expanded, so the row is read once.
  const double mm = (1.0 + b) * (1.0 + b) * hh - 2.0 * (1.0 + b) * b * hy + b * b * yy;
  if (!(mm > 0.0)) return;
  const auto scale = static_cast<float>(std::sqrt(hh / mm));
  const float keep = scale * (1.0f + beta), push = scale * beta;
  for (std::int64_t j = 0; j < n; ++j) h[j] = keep * h[j] - push * y_hat[j];
}

}  // namespace esamp::cpu
