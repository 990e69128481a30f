// esamp::cuda::Backend: the CUDA SamplerBackend (DESIGN.md §2, CUDA timeline), private to the
// esamp::cuda library (the public face is esamp/cuda.hpp). It owns the device bank (fp32
// parameters, AdamW moments, per-slot step counters), a workspace sized once at construction, one
// side stream with its events, and a pinned ring for the per-step row plan. Per-step methods
// enqueue work only: no allocation, no host synchronisation (except the ring's back-pressure,
// below), no scalar read back; everything from on_source to end_step can be captured in a CUDA
// graph. It trusts the front end's checks (backend.hpp); the bank is on the device only and is
// copied back when bank() is called.
//
// Timeline (engine stream S, side stream A):
//   begin_step   S: upload the row plan with each row's β (pinned ring -> device stage).
//   on_source    S: copy the rows to a stage; A: gather (fp32, grouped by slot), forward.
//   on_target    S: copy the rows to a stage.
//   mix_hidden   S: wait for A's prediction, mix in place.  (mix_logits likewise.)
//   end_step     A: gather the target, backward, per-slot update, stats; then the young slots'
//                   repeats, each a forward into y_hat_train (the mix may still read y_hat) and a
//                   backward and update.
// The engine may reuse its buffers once its stream has passed each hook's work (the stage copies
// run on S). A's step t+1 forward runs after its step t update: the lag is exactly one step.
//
// CUDA graphs: call begin_step outside the capture (it uploads the plan, and the β of every row,
// that the replay reads), capture on_source .. end_step on the engine stream (end_step then joins
// A back into S), and give every replay the same row count and the same engine buffers.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cuda/workspace.hpp"
#include "esamp/backend.hpp"
#include "esamp/cuda.hpp"

namespace esamp::cuda {

struct BankView;      // cuda/distiller.cuh
struct UpdateTarget;  // cuda/distiller.cuh
struct MixInputs;     // cuda/mix.cuh

class Backend final : public SamplerBackend {
 public:
  // distiller.slots is the bank size as given (the front end applies Sharing::global).
  Backend(const DistillerConfig& distiller, const ExplorationConfig& exploration,
          const BackendOptions& options);
  ~Backend() override;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  Device device() const override { return Device::cuda; }
  // Restarts a slot (seeded parameters, or slot `from`'s; zero moments, step counter and record),
  // ordered after any work already enqueued on either stream. Asynchronous.
  void reset_slot(int slot, int from) override;
  // Per-step hooks (see the timeline above).
  void begin_step(Span<const int> row_slots, Span<const float> row_beta) override;
  void on_source(const ConstMatrixView& source) override;
  void on_target(const ConstMatrixView& target) override;
  void mix_hidden(const MatrixView& final_hidden) override;
  void mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                  const Filter& filter) override;
  void end_step() override;
  // These wait for all enqueued work (and report any asynchronous CUDA error).
  Stats stats() override;
  GroupStats slot_stats(int slot) override;
  BankState bank() override;
  void set_bank(const BankState& state) override;

 private:
  // An event and whether its last record happened outside a graph capture (only those may be
  // waited on from later steps).
  struct StepEvent {
    cudaEvent_t event = nullptr;
    bool waitable = false;
  };
  struct DeviceDeleter {
    void operator()(void* p) const;
  };
  struct PinnedDeleter {
    void operator()(void* p) const;
  };
  static constexpr int kPlanRing = 4;  // pinned plan buffers in flight

  void wait();
  void record(StepEvent& e, cudaStream_t stream);
  void wait_from_earlier_step(cudaStream_t stream, const StepEvent& e);
  StepPlanView plan_view() const;
  std::size_t plan_ints() const;  // int32s of the step plan
  // The forward of `plan`'s rows through their slots into y_hat (and the saved activations).
  void forward(const StepPlanView& plan, float* y_hat);
  // One update of each slot of `plan` (only the young ones with `young_only`) from the activations
  // of the last forward, its prediction y_hat and the gathered targets; `young_only`: a young
  // repeat's pass, whose updates PrepareSlotUpdates counts (FinishTrainingStep counts the first).
  void train(const StepPlanView& plan, const float* y_hat, bool young_only);
  BankView bank_view() const;
  UpdateTarget update_target() const;
  MixInputs mix_inputs() const;
  template <class T>
  T* ws(WorkspaceBuffer b) const {
    return workspace_layout_.get<T>(workspace_.get(), b);
  }

  DistillerConfig config_;
  ExplorationConfig exploration_;
  TrainingSchedule schedule_;
  ParameterLayout layout_;
  WorkspaceLayout workspace_layout_;
  StepPlanBuilder plan_builder_;
  int device_ = 0;
  cudaStream_t engine_ = nullptr;
  cudaStream_t side_ = nullptr;

  std::unique_ptr<void, DeviceDeleter> bank_memory_;
  std::unique_ptr<void, DeviceDeleter> workspace_;
  std::unique_ptr<void, PinnedDeleter> pinned_plans_;  // [kPlanRing, plan size] int32
  float* params_ = nullptr;                            // [slots, P]
  float* first_moment_ = nullptr;                      // [slots, P] AdamW only
  float* second_moment_ = nullptr;                     // [slots, P] AdamW only
  std::int64_t* steps_ = nullptr;                      // [slots]
  float* init_params_ = nullptr;  // [P] the seeded initial parameters of every slot
  OptimizerSettings* optimizer_settings_ = nullptr;
  MixSettings* mix_settings_ = nullptr;
  Stats* stats_ = nullptr;
  GroupStats* slot_stats_ = nullptr;    // [slots] each since its last reset_slot
  std::int32_t* row_status_ = nullptr;  // [max_rows] kRowHas... bits of the last mix_logits

  std::array<StepEvent, kPlanRing> plan_uploaded_{};
  StepEvent source_ready_, target_ready_, prediction_ready_;
  StepEvent stage_free_;         // A has consumed the plan and source stages of the last step
  StepEvent target_stage_free_;  // A has consumed the target stage of the last step
  StepEvent step_done_;
  StepEvent engine_reached_;  // reset_slot: the engine stream's work so far (its last mix)

  int plan_cursor_ = 0;
  int rows_ = 0;
  bool capturing_ = false;
  DType source_dtype_ = DType::f32, target_dtype_ = DType::f32;
};

}  // namespace esamp::cuda
