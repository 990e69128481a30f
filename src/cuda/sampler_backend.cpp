// The CUDA SamplerBackend: ExploratorySampler's front end over esamp::cuda::Backend, with a host
// mirror of the bank for inspection and saving.
#include <memory>
#include <string>

#include "esamp/backend.hpp"
#include "esamp/cuda/backend.hpp"

namespace esamp::cuda {
namespace {

class SamplerBackendCuda final : public SamplerBackend {
 public:
  SamplerBackendCuda(const DistillerConfig& distiller, const ExplorationConfig& exploration,
                     cudaStream_t engine_stream)
      : device_(distiller, exploration, engine_stream), mirror_(distiller) {}

  Device device() const override { return Device::cuda; }
  void reset_slot(int slot) override { device_.reset_slot(slot); }
  void begin_step(Span<const int> row_slots) override { device_.begin_step(row_slots); }
  void on_source(const ConstMatrixView& source) override { device_.on_source(source); }
  void on_target(const ConstMatrixView& target) override { device_.on_target(target); }
  void mix_hidden(const MatrixView& final_hidden) override { device_.mix_hidden(final_hidden); }
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override {
    device_.mix_logits(logits, lm_head, filter);
  }
  void end_step() override {
    device_.end_step();
    ++steps_;
  }

  Stats stats() override {
    const DeviceStats s = device_.stats();
    return {steps_,         s.rows_trained, s.rows_mixed, s.rows_skipped_nonfinite,
            s.slot_updates, s.last_loss,    s.mean_loss};
  }

  const LatentDistiller& bank() override {
    for (int slot = 0; slot < mirror_.slots(); ++slot)
      mirror_.restore_slot(slot, device_.slot_array(BankArray::parameters, slot),
                           device_.slot_array(BankArray::first_moment, slot),
                           device_.slot_array(BankArray::second_moment, slot),
                           device_.updates(slot));
    return mirror_;
  }

  // Loaded and checked on the host first, so a bad file leaves the device bank unchanged.
  void load_bank(const std::string& path) override {
    LatentDistiller loaded(mirror_.config());
    loaded.load(path);
    for (int slot = 0; slot < loaded.slots(); ++slot)
      device_.write_slot(slot, loaded.slot_array(BankArray::parameters, slot),
                         loaded.slot_array(BankArray::first_moment, slot),
                         loaded.slot_array(BankArray::second_moment, slot), loaded.updates(slot));
  }

 private:
  Backend device_;
  LatentDistiller mirror_;  // filled by bank()
  std::int64_t steps_ = 0;
};

}  // namespace

BackendFactory backend(cudaStream_t engine_stream) {
  return [engine_stream](const DistillerConfig& distiller, const ExplorationConfig& exploration) {
    return std::make_unique<SamplerBackendCuda>(distiller, exploration, engine_stream);
  };
}

}  // namespace esamp::cuda
