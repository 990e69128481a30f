// esamp::cuda::Backend: streams, events, memory and the order of the kernel launches of a step;
// and esamp::cuda::backend(), the factory of esamp/cuda.hpp.
#include "cuda/backend.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "cuda/distiller.cuh"
#include "cuda/gather.cuh"
#include "cuda/mix.cuh"
#include "esamp/core.hpp"
#include "esamp/error.hpp"

namespace esamp::cuda {
namespace {

void check(cudaError_t status, std::string_view what) {
  if (status == cudaSuccess) return;
  // Reported once: the runtime keeps a failed call's error for the next cudaGetLastError, which
  // the launchers read, so that a later sampler's first launch would report it again.
  cudaGetLastError();
  fail("CUDA backend: {}: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status));
}

// Makes `device` current for a call and restores the caller's device after it: the backend's
// memory, streams and kernels all live on the one device it was built for.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    changed_ = previous_ != device;
  }
  ~DeviceScope() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

int resolve_device(int device) {
  if (device >= 0) return device;
  int current = 0;
  check(cudaGetDevice(&current), "cudaGetDevice");
  return current;
}

// The bank's regions in one allocation.
enum BankRegion : std::size_t {
  kParams,
  kFirstMoment,
  kSecondMoment,
  kSteps,
  kInitParams,
  kOptimizerSettings,
  kMixSettings,
  kStats,
  kSlotStats,
  kRowStatus,
  kBankRegions
};

}  // namespace

void Backend::DeviceDeleter::operator()(void* p) const { cudaFree(p); }
void Backend::PinnedDeleter::operator()(void* p) const { cudaFreeHost(p); }

Backend::Backend(const DistillerConfig& distiller, const ExplorationConfig& exploration,
                 const BackendOptions& options)
    : config_(distiller),
      exploration_(exploration),
      schedule_(TrainingSchedule::of(exploration)),
      layout_{distiller.hidden_size, distiller.rank},
      workspace_layout_(
          WorkspaceLayout::make({distiller.hidden_size, distiller.rank, distiller.slots,
                                 exploration.max_rows, schedule_.young_passes() > 0})),
      plan_builder_(workspace_layout_.plan, distiller.slots),
      device_(resolve_device(options.device)),
      engine_(options.stream) {
  const DeviceScope scope(device_);
  check(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "creating the side stream");
  for (StepEvent* e : {&source_ready_, &target_ready_, &prediction_ready_, &stage_free_,
                       &target_stage_free_, &step_done_, &engine_reached_})
    check(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "creating an event");
  for (StepEvent& e : plan_uploaded_)
    check(cudaEventCreateWithFlags(&e.event, cudaEventDisableTiming), "creating an event");

  // The bank: [slots, P] parameters and moments, step counters, settings, stats and [slots]
  // records, in one allocation.
  const auto slots = static_cast<std::size_t>(config_.slots);
  const auto P = static_cast<std::size_t>(layout_.size());
  const bool adamw = config_.optimizer == Optimizer::adamw;
  const std::size_t param_bytes = slots * P * sizeof(float);
  const auto bank = Carve<kBankRegions>::make(
      {param_bytes, adamw ? param_bytes : 0, adamw ? param_bytes : 0, slots * sizeof(std::int64_t),
       P * sizeof(float), sizeof(OptimizerSettings), sizeof(MixSettings), sizeof(Stats),
       slots * sizeof(GroupStats),
       static_cast<std::size_t>(exploration.max_rows) * sizeof(std::int32_t)});
  void* memory = nullptr;
  check(cudaMalloc(&memory, bank.total_bytes), "allocating the bank");
  bank_memory_.reset(memory);
  params_ = bank.get<float>(memory, kParams);
  first_moment_ = bank.get<float>(memory, kFirstMoment);
  second_moment_ = bank.get<float>(memory, kSecondMoment);
  steps_ = bank.get<std::int64_t>(memory, kSteps);
  init_params_ = bank.get<float>(memory, kInitParams);
  optimizer_settings_ = bank.get<OptimizerSettings>(memory, kOptimizerSettings);
  mix_settings_ = bank.get<MixSettings>(memory, kMixSettings);
  stats_ = bank.get<Stats>(memory, kStats);
  slot_stats_ = bank.get<GroupStats>(memory, kSlotStats);
  row_status_ = bank.get<std::int32_t>(memory, kRowStatus);

  check(cudaMalloc(&memory, workspace_layout_.carve.total_bytes), "allocating the workspace");
  workspace_.reset(memory);
  check(cudaMemsetAsync(memory, 0, workspace_layout_.carve.total_bytes, side_),
        "clearing the workspace");
  check(cudaMallocHost(&memory, kPlanRing * plan_ints() * sizeof(std::int32_t)),
        "allocating the pinned plan ring");
  pinned_plans_.reset(memory);

  // Every slot starts from the same seeded parameters (esamp::initialize: the CPU's bits).
  std::vector<float> init(P);
  initialize(init.data(), layout_, config_.seed, config_.init_std);
  check(cudaMemcpy(init_params_, init.data(), P * sizeof(float), cudaMemcpyHostToDevice),
        "uploading the initial parameters");
  const Stats zero_stats{};
  check(cudaMemcpy(stats_, &zero_stats, sizeof zero_stats, cudaMemcpyHostToDevice),
        "clearing the stats");
  const OptimizerSettings settings = OptimizerSettings::of(config_);
  check(cudaMemcpy(optimizer_settings_, &settings, sizeof settings, cudaMemcpyHostToDevice),
        "uploading the optimizer settings");
  const MixSettings mix{exploration.warmup_updates,
                        static_cast<std::int32_t>(exploration.latent_mix)};
  check(cudaMemcpy(mix_settings_, &mix, sizeof mix, cudaMemcpyHostToDevice),
        "uploading the mix settings");
  // Slot 0 from the image, then doubling copies: log2(slots) calls for the whole bank.
  check(cudaMemcpyAsync(params_, init_params_, P * sizeof(float), cudaMemcpyDeviceToDevice, side_),
        "initialising the bank");
  for (std::size_t done = 1; done < slots; done *= 2)
    check(cudaMemcpyAsync(params_ + done * P, params_,
                          std::min(done, slots - done) * P * sizeof(float),
                          cudaMemcpyDeviceToDevice, side_),
          "initialising the bank");
  if (adamw) {
    check(cudaMemsetAsync(first_moment_, 0, slots * P * sizeof(float), side_), "clearing moments");
    check(cudaMemsetAsync(second_moment_, 0, slots * P * sizeof(float), side_), "clearing moments");
  }
  check(cudaMemsetAsync(steps_, 0, slots * sizeof(std::int64_t), side_), "clearing step counters");
  check(cudaMemsetAsync(slot_stats_, 0, slots * sizeof(GroupStats), side_),
        "clearing the slots' records");
  check(cudaStreamSynchronize(side_), "initialising the bank");
}

Backend::~Backend() {
  const DeviceScope scope(device_);
  if (side_) cudaStreamSynchronize(side_);
  for (StepEvent* e : {&source_ready_, &target_ready_, &prediction_ready_, &stage_free_,
                       &target_stage_free_, &step_done_, &engine_reached_})
    if (e->event) cudaEventDestroy(e->event);
  for (StepEvent& e : plan_uploaded_)
    if (e.event) cudaEventDestroy(e.event);
  if (side_) cudaStreamDestroy(side_);
}

void Backend::reset_slot(int slot, int from) {
  const DeviceScope scope(device_);
  // The mix on the engine stream counts rows in the slot's record too: the reset waits for what
  // the engine has enqueued so far (a closed group's last mix).
  record(engine_reached_, engine_);
  check(cudaStreamWaitEvent(side_, engine_reached_.event, 0), "reset_slot");
  const auto P = static_cast<std::size_t>(layout_.size());
  const auto offset = static_cast<std::size_t>(slot) * P;
  const float* start = from >= 0 ? params_ + static_cast<std::size_t>(from) * P : init_params_;
  check(
      cudaMemcpyAsync(params_ + offset, start, P * sizeof(float), cudaMemcpyDeviceToDevice, side_),
      "reset_slot");
  if (first_moment_) {
    check(cudaMemsetAsync(first_moment_ + offset, 0, P * sizeof(float), side_), "reset_slot");
    check(cudaMemsetAsync(second_moment_ + offset, 0, P * sizeof(float), side_), "reset_slot");
  }
  check(cudaMemsetAsync(steps_ + slot, 0, sizeof(std::int64_t), side_), "reset_slot");
  check(cudaMemsetAsync(slot_stats_ + slot, 0, sizeof(GroupStats), side_), "reset_slot");
}

void Backend::record(StepEvent& e, cudaStream_t stream) {
  check(cudaEventRecord(e.event, stream), "recording an event");
  e.waitable = !capturing_;
}

// Waits across steps are skipped in a capture (a graph launch completes before the next one on S
// starts) and on events last recorded inside one (waiting on those is invalid).
void Backend::wait_from_earlier_step(cudaStream_t stream, const StepEvent& e) {
  if (!capturing_ && e.waitable) check(cudaStreamWaitEvent(stream, e.event, 0), "waiting");
}

StepPlanView Backend::plan_view() const {
  return {ws<const std::int32_t>(WorkspaceBuffer::plan), workspace_layout_.plan};
}

std::size_t Backend::plan_ints() const {
  return static_cast<std::size_t>(workspace_layout_.plan.size());
}

BankView Backend::bank_view() const {
  return {params_, first_moment_, second_moment_, steps_, layout_};
}

UpdateTarget Backend::update_target() const {
  UpdateTarget t;
  t.bank = bank_view();
  t.rule = config_.optimizer == Optimizer::adamw ? UpdateRule::adamw : UpdateRule::sgd;
  t.segment_used = ws<const std::int32_t>(WorkspaceBuffer::segment_used);
  t.segment_settings = ws<const OptimizerSettings>(WorkspaceBuffer::segment_settings);
  t.segment_scale = ws<const AdamWScale>(WorkspaceBuffer::segment_scale);
  return t;
}

MixInputs Backend::mix_inputs() const {
  MixInputs in;
  in.plan = plan_view();
  in.y_hat = ws<const float>(WorkspaceBuffer::y_hat);
  in.source_finite = ws<const std::uint8_t>(WorkspaceBuffer::source_finite);
  in.segment_steps = ws<const std::int64_t>(WorkspaceBuffer::segment_steps);
  in.settings = mix_settings_;
  in.rows_mixed = reinterpret_cast<unsigned long long*>(&stats_->rows_mixed);
  in.slot_stats = slot_stats_;
  return in;
}

void Backend::begin_step(Span<const int> row_slots, Span<const float> row_beta) {
  const DeviceScope scope(device_);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(engine_, &capture), "begin_step");
  if (capture != cudaStreamCaptureStatusNone)
    fail(
        "CUDA backend begin_step: the engine stream is capturing; call begin_step before the "
        "capture and before each replay");
  const int entry = plan_cursor_;
  // Back-pressure: this pinned buffer was uploaded kPlanRing steps ago; the copy has long finished
  // unless the host runs that many steps ahead of the GPU.
  check(cudaEventSynchronize(plan_uploaded_[static_cast<std::size_t>(entry)].event), "begin_step");
  const std::size_t ints = plan_ints();
  std::int32_t* pinned = static_cast<std::int32_t*>(pinned_plans_.get()) + entry * ints;
  plan_builder_.build(row_slots, row_beta, pinned);
  plan_cursor_ = (entry + 1) % kPlanRing;
  capturing_ = false;
  wait_from_earlier_step(engine_, stage_free_);
  check(cudaMemcpyAsync(ws<std::int32_t>(WorkspaceBuffer::plan_stage), pinned,
                        ints * sizeof(std::int32_t), cudaMemcpyHostToDevice, engine_),
        "begin_step: uploading the plan");
  record(plan_uploaded_[static_cast<std::size_t>(entry)], engine_);
  rows_ = static_cast<int>(row_slots.size());
}

void Backend::on_source(const ConstMatrixView& source) {
  const DeviceScope scope(device_);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(engine_, &capture), "on_source");
  capturing_ = capture == cudaStreamCaptureStatusActive;
  const std::size_t element = size_of(source.dtype);
  const std::size_t H = static_cast<std::size_t>(config_.hidden_size);
  if (rows_ > 0)
    check(cudaMemcpy2DAsync(ws<void>(WorkspaceBuffer::source_stage), H * element, source.data,
                            static_cast<std::size_t>(source.stride) * element, H * element,
                            static_cast<std::size_t>(rows_), cudaMemcpyDeviceToDevice, engine_),
          "on_source: staging the rows");
  source_dtype_ = source.dtype;
  record(source_ready_, engine_);
  check(cudaStreamWaitEvent(side_, source_ready_.event, 0), "on_source");

  const StepPlanView plan = plan_view();
  check(cudaMemcpyAsync(ws<std::int32_t>(WorkspaceBuffer::plan),
                        ws<const std::int32_t>(WorkspaceBuffer::plan_stage),
                        plan_ints() * sizeof(std::int32_t), cudaMemcpyDeviceToDevice, side_),
        "on_source: taking the plan");
  check(
      GatherRows(ws<const void>(WorkspaceBuffer::source_stage), source_dtype_, config_.hidden_size,
                 config_.hidden_size, plan, ws<float>(WorkspaceBuffer::source),
                 ws<std::uint8_t>(WorkspaceBuffer::source_finite), side_),
      "on_source: GatherRows");
  record(stage_free_, side_);
  check(SnapshotSegmentSteps(plan, steps_, ws<std::int64_t>(WorkspaceBuffer::segment_steps), side_),
        "SnapshotSegmentSteps");
  forward(plan, ws<float>(WorkspaceBuffer::y_hat));
  record(prediction_ready_, side_);
}

void Backend::forward(const StepPlanView& plan, float* y_hat) {
  const int splits = workspace_layout_.gate_splits;
  const float* x = ws<const float>(WorkspaceBuffer::source);
  float* partial = ws<float>(WorkspaceBuffer::gate_partial);
  float* z_hat = ws<float>(WorkspaceBuffer::z_hat);
  float* gated = ws<float>(WorkspaceBuffer::gated);
  check(UpGateProjection(params_, layout_, plan, x, splits, partial, side_), "UpGateProjection");
  check(SwigluForward(params_, layout_, plan, partial, splits, ws<float>(WorkspaceBuffer::u),
                      ws<float>(WorkspaceBuffer::pre), ws<float>(WorkspaceBuffer::v), gated, side_),
        "SwigluForward");
  check(DownProjection(params_, layout_, plan, x, gated, z_hat, side_), "DownProjection");
  check(LayerNormForward(params_, layout_, config_.output_norm, plan, z_hat, y_hat,
                         ws<float>(WorkspaceBuffer::rstd), side_),
        "LayerNormForward");
}

void Backend::on_target(const ConstMatrixView& target) {
  const DeviceScope scope(device_);
  wait_from_earlier_step(engine_, target_stage_free_);
  const std::size_t element = size_of(target.dtype);
  const std::size_t H = static_cast<std::size_t>(config_.hidden_size);
  if (rows_ > 0)
    check(cudaMemcpy2DAsync(ws<void>(WorkspaceBuffer::target_stage), H * element, target.data,
                            static_cast<std::size_t>(target.stride) * element, H * element,
                            static_cast<std::size_t>(rows_), cudaMemcpyDeviceToDevice, engine_),
          "on_target: staging the rows");
  target_dtype_ = target.dtype;
  record(target_ready_, engine_);
}

void Backend::mix_hidden(const MatrixView& final_hidden) {
  const DeviceScope scope(device_);
  check(cudaStreamWaitEvent(engine_, prediction_ready_.event, 0), "mix_hidden");
  check(MixHidden(final_hidden.data, final_hidden.dtype, final_hidden.stride, config_.hidden_size,
                  mix_inputs(), engine_),
        "MixHidden");
}

void Backend::mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                         const Filter& filter) {
  const DeviceScope scope(device_);
  const FilterParams params = make_filter_params(filter);
  check(cudaStreamWaitEvent(engine_, prediction_ready_.event, 0), "mix_logits");
  check(MixLogits(logits.data, logits.dtype, logits.stride, static_cast<int>(logits.cols),
                  lm_head.data, lm_head.dtype, lm_head.stride, config_.hidden_size, params,
                  mix_inputs(), row_status_, engine_),
        "MixLogits");
}

void Backend::end_step() {
  const DeviceScope scope(device_);
  check(cudaStreamWaitEvent(side_, target_ready_.event, 0), "end_step");
  const StepPlanView plan = plan_view();
  const auto* segment_used = ws<const std::int32_t>(WorkspaceBuffer::segment_used);
  check(
      GatherRows(ws<const void>(WorkspaceBuffer::target_stage), target_dtype_, config_.hidden_size,
                 config_.hidden_size, plan, ws<float>(WorkspaceBuffer::target),
                 ws<std::uint8_t>(WorkspaceBuffer::target_finite), side_),
      "end_step: GatherRows");
  record(target_stage_free_, side_);
  train(plan, ws<const float>(WorkspaceBuffer::y_hat), false);
  check(
      FinishTrainingStep(plan, config_.hidden_size, ws<const float>(WorkspaceBuffer::row_sq_error),
                         segment_used, stats_, slot_stats_, side_),
      "FinishTrainingStep");
  // As cpu::BankStep::train: a young slot's repeats on its new parameters. Their own forwards
  // write y_hat_train: the mix may still read y_hat.
  float* y_hat_train = ws<float>(WorkspaceBuffer::y_hat_train);
  for (int r = 0; r < schedule_.young_passes(); ++r) {
    forward(plan, y_hat_train);
    train(plan, y_hat_train, true);
  }
  record(step_done_, side_);
  // A capture must end on the stream it began with every forked stream joined back.
  if (capturing_) check(cudaStreamWaitEvent(engine_, step_done_.event, 0), "end_step: join");
}

void Backend::train(const StepPlanView& plan, const float* y_hat, bool young_only) {
  const ParameterLayout& l = layout_;
  const bool norm = config_.output_norm;
  const float* x = ws<const float>(WorkspaceBuffer::source);
  const float* y = ws<const float>(WorkspaceBuffer::target);
  const auto* source_finite = ws<const std::uint8_t>(WorkspaceBuffer::source_finite);
  const auto* target_finite = ws<const std::uint8_t>(WorkspaceBuffer::target_finite);
  const float* z_hat = ws<const float>(WorkspaceBuffer::z_hat);
  float* dy = ws<float>(WorkspaceBuffer::dy);
  float* dz = ws<float>(WorkspaceBuffer::dz);
  float* dgate = ws<float>(WorkspaceBuffer::dgate);
  float* dp_partial = ws<float>(WorkspaceBuffer::dp_partial);
  float* vector_grad = ws<float>(WorkspaceBuffer::vector_grad);
  auto* segment_used = ws<std::int32_t>(WorkspaceBuffer::segment_used);
  const UpdateTarget target = update_target();

  check(PrepareSlotUpdates(plan, source_finite, target_finite, optimizer_settings_, schedule_,
                           young_only, target.rule, steps_, segment_used,
                           ws<OptimizerSettings>(WorkspaceBuffer::segment_settings),
                           ws<AdamWScale>(WorkspaceBuffer::segment_scale),
                           young_only ? stats_ : nullptr, slot_stats_, side_),
        "PrepareSlotUpdates");
  check(MseLayerNormBackward(params_, l, norm, plan, y_hat, y, z_hat,
                             ws<const float>(WorkspaceBuffer::rstd), source_finite, target_finite,
                             segment_used, dy, dz, ws<float>(WorkspaceBuffer::row_sq_error), side_),
        "MseLayerNormBackward");
  // B is read here, before DownWeightUpdate writes it (same stream, in order).
  check(DownBackwardData(params_, l, plan, dz, workspace_layout_.dp_splits, dp_partial, side_),
        "DownBackwardData");
  check(SwigluBackward(l, plan, dp_partial, workspace_layout_.dp_splits,
                       ws<const float>(WorkspaceBuffer::u), ws<const float>(WorkspaceBuffer::pre),
                       ws<const float>(WorkspaceBuffer::v), dgate, side_),
        "SwigluBackward");
  check(DownWeightUpdate(plan, ws<const float>(WorkspaceBuffer::gated), dz, target, side_),
        "DownWeightUpdate");
  check(UpGateWeightUpdate(plan, x, dgate, target, side_), "UpGateWeightUpdate");
  check(VectorGradients(l, norm, plan, dgate, dy, z_hat, vector_grad, side_), "VectorGradients");
  check(UpdateParameterRange(plan, vector_grad, l.vector_size(), l.offset_b(), l.vector_size(),
                             target, side_),
        "UpdateParameterRange");
}

void Backend::wait() {
  check(cudaStreamSynchronize(side_), "wait (side stream)");
  check(cudaStreamSynchronize(engine_), "wait (engine stream)");
}

Stats Backend::stats() {
  const DeviceScope scope(device_);
  wait();
  Stats s;
  check(cudaMemcpy(&s, stats_, sizeof s, cudaMemcpyDeviceToHost), "stats");
  return s;
}

GroupStats Backend::slot_stats(int slot) {
  const DeviceScope scope(device_);
  wait();
  GroupStats s;
  check(cudaMemcpy(&s, slot_stats_ + slot, sizeof s, cudaMemcpyDeviceToHost), "slot_stats");
  return s;
}

BankState Backend::bank() {
  const DeviceScope scope(device_);
  wait();
  const auto n = static_cast<std::size_t>(config_.slots) * static_cast<std::size_t>(layout_.size());
  const std::size_t moments = first_moment_ ? n : 0;
  std::vector<float> params(n), first(moments), second(moments);
  std::vector<std::int64_t> updates(static_cast<std::size_t>(config_.slots));
  check(cudaMemcpy(params.data(), params_, n * sizeof(float), cudaMemcpyDeviceToHost), "bank");
  if (moments) {
    check(cudaMemcpy(first.data(), first_moment_, n * sizeof(float), cudaMemcpyDeviceToHost),
          "bank");
    check(cudaMemcpy(second.data(), second_moment_, n * sizeof(float), cudaMemcpyDeviceToHost),
          "bank");
  }
  check(cudaMemcpy(updates.data(), steps_, updates.size() * sizeof(std::int64_t),
                   cudaMemcpyDeviceToHost),
        "bank");
  return {config_, std::move(params), std::move(first), std::move(second), std::move(updates)};
}

void Backend::set_bank(const BankState& state) {
  const DeviceScope scope(device_);
  wait();
  const std::vector<float>& params = state.whole(BankArray::parameters);
  check(cudaMemcpy(params_, params.data(), params.size() * sizeof(float), cudaMemcpyHostToDevice),
        "set_bank");
  if (first_moment_) {
    const std::vector<float>& first = state.whole(BankArray::first_moment);
    const std::vector<float>& second = state.whole(BankArray::second_moment);
    check(cudaMemcpy(first_moment_, first.data(), first.size() * sizeof(float),
                     cudaMemcpyHostToDevice),
          "set_bank");
    check(cudaMemcpy(second_moment_, second.data(), second.size() * sizeof(float),
                     cudaMemcpyHostToDevice),
          "set_bank");
  }
  const std::vector<std::int64_t>& updates = state.update_counts();
  check(cudaMemcpy(steps_, updates.data(), updates.size() * sizeof(std::int64_t),
                   cudaMemcpyHostToDevice),
        "set_bank");
}

BackendFactory backend(const BackendOptions& options) {
  return [options](const DistillerConfig& distiller, const ExplorationConfig& exploration) {
    return std::make_unique<Backend>(distiller, exploration, options);
  };
}

}  // namespace esamp::cuda
