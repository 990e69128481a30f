// Helpers of the llama.cpp adapter tests: the model under llama.cpp, a CPU sampler backend that
// records what the adapter hands over, and teacher-forced decoding through the adapter.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "../model_dir.hpp"
#include "esamp/cpu/backend.hpp"
#include "esamp/llama_cpp.hpp"
#include "esamp/sampler.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::llama_cpp::test {

using esamp::test::model_file;
using Rows = std::vector<std::vector<float>>;  // [rows][hidden]

inline llama_model* stories_model() {
  static const ModelPtr model = load_model(model_file("stories260K.gguf"));
  return model.get();
}

// What a sampler was handed, step by step.
struct Recording {
  std::vector<std::vector<int>> row_slots;  // [steps][rows]
  std::vector<Rows> sources, targets;       // [steps]
};

inline Rows copy_rows(const ConstMatrixView& view) {
  Rows rows(static_cast<std::size_t>(view.rows));
  for (std::int64_t i = 0; i < view.rows; ++i)
    for (std::int64_t j = 0; j < view.cols; ++j)
      rows[static_cast<std::size_t>(i)].push_back(view.at(i, j));
  return rows;
}

// The CPU backend, recording each step's row slots and tapped rows on the way through.
class RecordingBackend final : public SamplerBackend {
 public:
  RecordingBackend(const DistillerConfig& distiller, const ExplorationConfig& exploration,
                   Recording& recording)
      : inner_(distiller, exploration), recording_(recording) {}

  Device device() const override { return inner_.device(); }
  void reset_slot(int slot, int from) override { inner_.reset_slot(slot, from); }
  void begin_step(Span<const int> row_slots, Span<const float> row_beta) override {
    recording_.row_slots.emplace_back(row_slots.begin(), row_slots.end());
    inner_.begin_step(row_slots, row_beta);
  }
  void on_source(const ConstMatrixView& source) override {
    recording_.sources.push_back(copy_rows(source));
    inner_.on_source(source);
  }
  void on_target(const ConstMatrixView& target) override {
    recording_.targets.push_back(copy_rows(target));
    inner_.on_target(target);
  }
  void mix_hidden(const MatrixView& final_hidden) override { inner_.mix_hidden(final_hidden); }
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override {
    inner_.mix_logits(logits, lm_head, filter);
  }
  void end_step() override { inner_.end_step(); }
  Stats stats() override { return inner_.stats(); }
  GroupStats slot_stats(int slot) override { return inner_.slot_stats(slot); }
  BankState bank() override { return inner_.bank(); }
  void set_bank(const BankState& state) override { inner_.set_bank(state); }

 private:
  cpu::Backend inner_;
  Recording& recording_;
};

// A CPU sampler for `model` with `exploration`, recording into `recording` when given.
inline std::unique_ptr<ExploratorySampler> make_sampler(const llama_model* model,
                                                        ExplorationConfig exploration,
                                                        Recording* recording = nullptr) {
  DistillerConfig distiller;
  distiller.hidden_size = llama_model_n_embd(model);
  distiller.rank = 16;
  distiller.slots = 4;
  distiller.seed = 3;
  BackendFactory factory = cpu::backend();
  if (recording != nullptr)
    factory = [recording](const DistillerConfig& d, const ExplorationConfig& e) {
      return std::make_unique<RecordingBackend>(d, e, *recording);
    };
  return std::make_unique<ExploratorySampler>(llama_model_n_layer(model), distiller, exploration,
                                              factory);
}

// The largest |a - b| over two equally shaped row sets, relative to the largest |b| (at least 1).
inline double relative_difference(const Rows& a, const Rows& b) {
  REQUIRE(a.size() == b.size());
  double largest = 1.0, difference = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (std::size_t j = 0; j < a[i].size(); ++j) {
      largest = std::max(largest, static_cast<double>(std::abs(b[i][j])));
      difference = std::max(difference, static_cast<double>(std::abs(a[i][j] - b[i][j])));
    }
  }
  return difference / largest;
}

}  // namespace esamp::llama_cpp::test
