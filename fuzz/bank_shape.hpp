// The bank fuzzer's input layout, shared with its seed writer: the last byte of an input picks the
// bank's shape, and a bank is trained a little before a load so that it holds more than its seeds.
#pragma once

#include <cstdint>
#include <vector>

#include "esamp/distiller.hpp"

namespace esamp::fuzz {

// The shape selector: hidden 1-4, rank, 1-2 slots, output norm, optimizer, checksum repair.
inline esamp::DistillerConfig bank_config(std::uint8_t shape) {
  esamp::DistillerConfig c;
  c.hidden_size = 1 + (shape & 3);
  c.rank = 1 + ((shape >> 2) & 3) % c.hidden_size;
  c.slots = 1 + ((shape >> 4) & 1);
  c.output_norm = (shape >> 5) & 1;
  c.optimizer = (shape >> 6) & 1 ? esamp::Optimizer::sgd : esamp::Optimizer::adamw;
  return c;
}

// Trains every slot `steps` times on fixed rows, so that the bank holds more than its seeds.
inline void train(esamp::LatentDistiller& bank, int steps) {
  const int H = bank.hidden_size();
  std::vector<float> x(static_cast<std::size_t>(bank.slots() * H)), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
    y[i] = 0.5f - 0.125f * static_cast<float>(i % 5);
  }
  std::vector<int> slots(static_cast<std::size_t>(bank.slots()));
  for (int s = 0; s < bank.slots(); ++s) slots[static_cast<std::size_t>(s)] = s;
  const esamp::ConstMatrixView xv(x.data(), bank.slots(), H, H, esamp::DType::f32);
  const esamp::ConstMatrixView yv(y.data(), bank.slots(), H, H, esamp::DType::f32);
  for (int i = 0; i < steps; ++i) bank.train_step(slots, xv, yv);
}

}  // namespace esamp::fuzz
