// esamp::cuda::Backend: streams, events, memory and the order of the kernel launches of a step.
#include "esamp/cuda/backend.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "cuda/distiller.cuh"
#include "cuda/gather.cuh"
#include "cuda/mix.cuh"
#include "esamp/cpu/distiller_math.hpp"
#include "esamp/error.hpp"

namespace esamp::cuda {
namespace {

void check(cudaError_t status, std::string_view what) {
  if (status != cudaSuccess)
    fail("CUDA backend: {}: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status));
}

std::size_t aligned(std::size_t bytes) {
  return (bytes + WorkspaceLayout::kAlignment - 1) / WorkspaceLayout::kAlignment *
         WorkspaceLayout::kAlignment;
}

}  // namespace

void Backend::DeviceDeleter::operator()(void* p) const { cudaFree(p); }
void Backend::PinnedDeleter::operator()(void* p) const { cudaFreeHost(p); }

Backend::Backend(const DistillerConfig& distiller, const ExplorationConfig& exploration,
                 cudaStream_t engine_stream)
    : config_((distiller.validate(), distiller)),
      exploration_(exploration),
      layout_{distiller.hidden_size, distiller.rank},
      workspace_layout_(WorkspaceLayout::make(
          {distiller.hidden_size, distiller.rank, distiller.slots, exploration.max_rows})),
      plan_builder_(workspace_layout_.plan, distiller.slots),
      engine_(engine_stream) {
  if (!(exploration.beta >= 0.0f) || exploration.max_rows < 1 || exploration.warmup_updates < 0)
    fail("CUDA backend: ExplorationConfig beta = {}, max_rows = {}, warmup_updates = {}: invalid",
         exploration.beta, exploration.max_rows, exploration.warmup_updates);
  check(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "creating the side stream");
  for (StepEvent* e : {&source_ready_, &target_ready_, &prediction_ready_, &stage_free_,
                       &target_stage_free_, &step_done_})
    check(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "creating an event");
  for (StepEvent& e : plan_uploaded_)
    check(cudaEventCreateWithFlags(&e.event, cudaEventDisableTiming), "creating an event");

  // The bank: [slots, P] parameters and moments, step counters, settings, stats, in one allocation.
  const auto slots = static_cast<std::size_t>(config_.slots);
  const auto P = static_cast<std::size_t>(layout_.size());
  const bool adamw = config_.optimizer == Optimizer::adamw;
  const std::size_t param_bytes = aligned(slots * P * sizeof(float));
  const std::size_t sizes[] = {
      param_bytes,
      adamw ? param_bytes : 0,
      adamw ? param_bytes : 0,
      aligned(slots * sizeof(std::int64_t)),
      aligned(P * sizeof(float)),
      aligned(sizeof(OptimizerSettings)),
      aligned(sizeof(MixSettings)),
      aligned(sizeof(DeviceStats)),
      aligned(static_cast<std::size_t>(exploration.max_rows) * sizeof(std::int32_t))};
  std::size_t total = 0;
  for (const std::size_t s : sizes) total += s;
  void* memory = nullptr;
  check(cudaMalloc(&memory, total), "allocating the bank");
  bank_memory_.reset(memory);
  std::byte* at = static_cast<std::byte*>(memory);
  std::size_t next = 0;
  const auto carve = [&]() {  // the next region of `sizes`, null when empty
    std::byte* p = sizes[next] ? at : nullptr;
    at += sizes[next++];
    return p;
  };
  params_ = reinterpret_cast<float*>(carve());
  first_moment_ = reinterpret_cast<float*>(carve());
  second_moment_ = reinterpret_cast<float*>(carve());
  steps_ = reinterpret_cast<std::int64_t*>(carve());
  init_params_ = reinterpret_cast<float*>(carve());
  optimizer_settings_ = reinterpret_cast<OptimizerSettings*>(carve());
  mix_settings_ = reinterpret_cast<MixSettings*>(carve());
  stats_ = reinterpret_cast<DeviceStats*>(carve());
  row_status_ = reinterpret_cast<std::int32_t*>(carve());

  check(cudaMalloc(&memory, workspace_layout_.total_bytes), "allocating the workspace");
  workspace_.reset(memory);
  check(cudaMemsetAsync(memory, 0, workspace_layout_.total_bytes, side_), "clearing the workspace");
  check(
      cudaMallocHost(&memory, kPlanRing * static_cast<std::size_t>(workspace_layout_.plan.size()) *
                                  sizeof(std::int32_t)),
      "allocating the pinned plan ring");
  pinned_plans_.reset(memory);

  // Every slot starts from the same seeded parameters (cpu::initialize: bit-identical to the CPU).
  std::vector<float> init(P);
  cpu::initialize(init.data(), cpu::ParameterLayout{layout_.hidden, layout_.rank}, config_.seed,
                  config_.init_std);
  check(cudaMemcpy(init_params_, init.data(), P * sizeof(float), cudaMemcpyHostToDevice),
        "uploading the initial parameters");
  const DeviceStats zero_stats{};
  check(cudaMemcpy(stats_, &zero_stats, sizeof zero_stats, cudaMemcpyHostToDevice),
        "clearing the stats");
  set_optimizer_settings(
      {config_.lr, config_.adam_beta1, config_.adam_beta2, config_.adam_eps, config_.weight_decay});
  const MixSettings mix{exploration.beta, exploration.warmup_updates,
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
  check(cudaStreamSynchronize(side_), "initialising the bank");
}

Backend::~Backend() {
  if (side_) cudaStreamSynchronize(side_);
  for (StepEvent* e : {&source_ready_, &target_ready_, &prediction_ready_, &stage_free_,
                       &target_stage_free_, &step_done_})
    if (e->event) cudaEventDestroy(e->event);
  for (StepEvent& e : plan_uploaded_)
    if (e.event) cudaEventDestroy(e.event);
  if (side_) cudaStreamDestroy(side_);
}

void Backend::set_beta(float beta) {
  if (!(beta >= 0.0f)) fail("CUDA backend: beta = {}: must be finite and >= 0", beta);
  exploration_.beta = beta;
  const MixSettings mix{beta, exploration_.warmup_updates,
                        static_cast<std::int32_t>(exploration_.latent_mix)};
  check(cudaMemcpyAsync(mix_settings_, &mix, sizeof mix, cudaMemcpyHostToDevice, engine_),
        "uploading the mix settings");
  check(cudaStreamSynchronize(engine_), "uploading the mix settings");
}

void Backend::set_optimizer_settings(const OptimizerSettings& settings) {
  check(cudaMemcpyAsync(optimizer_settings_, &settings, sizeof settings, cudaMemcpyHostToDevice,
                        side_),
        "uploading the optimizer settings");
  check(cudaStreamSynchronize(side_), "uploading the optimizer settings");
}

void Backend::reset_slot(int slot) {
  if (slot < 0 || slot >= config_.slots)
    fail("reset_slot({}): out of range: the bank has {} slots", slot, config_.slots);
  const auto P = static_cast<std::size_t>(layout_.size());
  const auto offset = static_cast<std::size_t>(slot) * P;
  check(cudaMemcpyAsync(params_ + offset, init_params_, P * sizeof(float), cudaMemcpyDeviceToDevice,
                        side_),
        "reset_slot");
  if (first_moment_) {
    check(cudaMemsetAsync(first_moment_ + offset, 0, P * sizeof(float), side_), "reset_slot");
    check(cudaMemsetAsync(second_moment_ + offset, 0, P * sizeof(float), side_), "reset_slot");
  }
  check(cudaMemsetAsync(steps_ + slot, 0, sizeof(std::int64_t), side_), "reset_slot");
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

void Backend::check_step(const char* hook) const {
  if (!in_step_) fail("CUDA backend {}: called outside a step (begin_step first)", hook);
}

void Backend::check_rows(const char* what, const ConstMatrixView& view) const {
  check_view(view, what, config_.hidden_size, Device::cuda);
  if (view.rows != rows_) fail("{}: has {} rows, the step has {}", what, view.rows, rows_);
}

StepPlanView Backend::plan_view() const {
  return {ws<const std::int32_t>(WorkspaceBuffer::plan), workspace_layout_.plan};
}

BankView Backend::bank() const { return {params_, first_moment_, second_moment_, steps_, layout_}; }

UpdateTarget Backend::update_target() const {
  UpdateTarget t;
  t.bank = bank();
  t.rule = config_.optimizer == Optimizer::adamw ? UpdateRule::adamw : UpdateRule::sgd;
  t.settings = optimizer_settings_;
  t.segment_used = ws<const std::int32_t>(WorkspaceBuffer::segment_used);
  t.segment_bias = ws<const float>(WorkspaceBuffer::segment_bias);
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
  return in;
}

void Backend::begin_step(Span<const int> row_slots) {
  if (in_step_) fail("CUDA backend begin_step: the previous step was not ended (end_step)");
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
  const std::size_t plan_ints = static_cast<std::size_t>(workspace_layout_.plan.size());
  std::int32_t* pinned = static_cast<std::int32_t*>(pinned_plans_.get()) + entry * plan_ints;
  plan_builder_.build(row_slots, pinned);
  plan_cursor_ = (entry + 1) % kPlanRing;
  capturing_ = false;
  wait_from_earlier_step(engine_, stage_free_);
  check(cudaMemcpyAsync(ws<std::int32_t>(WorkspaceBuffer::plan_stage), pinned,
                        plan_ints * sizeof(std::int32_t), cudaMemcpyHostToDevice, engine_),
        "begin_step: uploading the plan");
  record(plan_uploaded_[static_cast<std::size_t>(entry)], engine_);
  rows_ = static_cast<int>(row_slots.size());
  in_step_ = true;
  have_source_ = have_target_ = false;
}

void Backend::on_source(const ConstMatrixView& source) {
  check_step("on_source");
  check_rows("on_source: source", source);
  if (have_source_) fail("CUDA backend on_source: delivered twice in one step");
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
  const std::int32_t* plan_stage = ws<const std::int32_t>(WorkspaceBuffer::plan_stage);
  check(cudaMemcpyAsync(
            ws<std::int32_t>(WorkspaceBuffer::plan), plan_stage,
            static_cast<std::size_t>(workspace_layout_.plan.size()) * sizeof(std::int32_t),
            cudaMemcpyDeviceToDevice, side_),
        "on_source: taking the plan");
  float* x = ws<float>(WorkspaceBuffer::source);
  check(GatherRows(ws<const void>(WorkspaceBuffer::source_stage), source_dtype_,
                   config_.hidden_size, config_.hidden_size, plan, x,
                   ws<std::uint8_t>(WorkspaceBuffer::source_finite), side_),
        "on_source: GatherRows");
  record(stage_free_, side_);

  const int splits = workspace_layout_.gate_splits;
  float* partial = ws<float>(WorkspaceBuffer::gate_partial);
  float* z_hat = ws<float>(WorkspaceBuffer::z_hat);
  float* gated = ws<float>(WorkspaceBuffer::gated);
  check(SnapshotSegmentSteps(plan, steps_, ws<std::int64_t>(WorkspaceBuffer::segment_steps), side_),
        "SnapshotSegmentSteps");
  check(UpGateProjection(params_, layout_, plan, x, splits, partial, side_), "UpGateProjection");
  check(SwigluForward(params_, layout_, plan, partial, splits, ws<float>(WorkspaceBuffer::u),
                      ws<float>(WorkspaceBuffer::pre), ws<float>(WorkspaceBuffer::v), gated, side_),
        "SwigluForward");
  check(DownProjection(params_, layout_, plan, x, gated, z_hat, side_), "DownProjection");
  check(
      LayerNormForward(params_, layout_, config_.output_norm, plan, z_hat,
                       ws<float>(WorkspaceBuffer::y_hat), ws<float>(WorkspaceBuffer::rstd), side_),
      "LayerNormForward");
  record(prediction_ready_, side_);
  have_source_ = true;
}

void Backend::on_target(const ConstMatrixView& target) {
  check_step("on_target");
  check_rows("on_target: target", target);
  if (have_target_) fail("CUDA backend on_target: delivered twice in one step");
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
  have_target_ = true;
}

void Backend::mix_hidden(const MatrixView& final_hidden) {
  check_step("mix_hidden");
  check_rows("mix_hidden: final_hidden", final_hidden);
  if (!have_source_) fail("CUDA backend mix_hidden: the source tap was not delivered yet");
  check(cudaStreamWaitEvent(engine_, prediction_ready_.event, 0), "mix_hidden");
  check(MixHidden(final_hidden.data, final_hidden.dtype, final_hidden.stride, config_.hidden_size,
                  mix_inputs(), engine_),
        "MixHidden");
}

void Backend::mix_logits(const MatrixView& logits, const ConstMatrixView& lm_head,
                         const Filter& filter) {
  check_step("mix_logits");
  if (!have_source_) fail("CUDA backend mix_logits: the source tap was not delivered yet");
  check_view(lm_head, "mix_logits: lm_head", config_.hidden_size, Device::cuda);
  check_view(logits, "mix_logits: logits", lm_head.rows, Device::cuda);
  if (logits.rows != rows_)
    fail("mix_logits: logits has {} rows, the step has {}", logits.rows, rows_);
  const FilterParams params = make_filter_params(filter);
  check(cudaStreamWaitEvent(engine_, prediction_ready_.event, 0), "mix_logits");
  check(MixLogits(logits.data, logits.dtype, logits.stride, static_cast<int>(logits.cols),
                  lm_head.data, lm_head.dtype, lm_head.stride, config_.hidden_size, params,
                  mix_inputs(), row_status_, engine_),
        "MixLogits");
}

void Backend::end_step() {
  check_step("end_step");
  if (!(have_source_ && have_target_))
    fail("CUDA backend end_step: the {} tap was not delivered this step",
         have_source_ ? "target" : "source");
  check(cudaStreamWaitEvent(side_, target_ready_.event, 0), "end_step");
  const StepPlanView plan = plan_view();
  const ParamLayout& l = layout_;
  const bool norm = config_.output_norm;
  const float* x = ws<const float>(WorkspaceBuffer::source);
  float* y = ws<float>(WorkspaceBuffer::target);
  const auto* source_finite = ws<const std::uint8_t>(WorkspaceBuffer::source_finite);
  auto* target_finite = ws<std::uint8_t>(WorkspaceBuffer::target_finite);
  const float* z_hat = ws<const float>(WorkspaceBuffer::z_hat);
  float* dy = ws<float>(WorkspaceBuffer::dy);
  float* dz = ws<float>(WorkspaceBuffer::dz);
  float* dgate = ws<float>(WorkspaceBuffer::dgate);
  float* dp_partial = ws<float>(WorkspaceBuffer::dp_partial);
  float* vector_grad = ws<float>(WorkspaceBuffer::vector_grad);
  float* row_sq_error = ws<float>(WorkspaceBuffer::row_sq_error);
  auto* segment_used = ws<std::int32_t>(WorkspaceBuffer::segment_used);
  const UpdateTarget target = update_target();

  check(GatherRows(ws<const void>(WorkspaceBuffer::target_stage), target_dtype_,
                   config_.hidden_size, config_.hidden_size, plan, y, target_finite, side_),
        "end_step: GatherRows");
  record(target_stage_free_, side_);
  check(PrepareSlotUpdates(plan, source_finite, target_finite, optimizer_settings_, target.rule,
                           steps_, segment_used, ws<float>(WorkspaceBuffer::segment_bias), side_),
        "PrepareSlotUpdates");
  check(MseLayerNormBackward(params_, l, norm, plan, ws<const float>(WorkspaceBuffer::y_hat), y,
                             z_hat, ws<const float>(WorkspaceBuffer::rstd), source_finite,
                             target_finite, segment_used, dy, dz, row_sq_error, side_),
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
  check(FinishTrainingStep(plan, config_.hidden_size, row_sq_error, segment_used, stats_, side_),
        "FinishTrainingStep");
  record(step_done_, side_);
  // A capture must end on the stream it began with every forked stream joined back.
  if (capturing_) check(cudaStreamWaitEvent(engine_, step_done_.event, 0), "end_step: join");
  in_step_ = false;
}

void Backend::wait() {
  check(cudaStreamSynchronize(side_), "wait (side stream)");
  check(cudaStreamSynchronize(engine_), "wait (engine stream)");
}

void Backend::write_slot(int slot, Span<const float> params, Span<const float> first_moment,
                         Span<const float> second_moment, std::int64_t updates) {
  if (slot < 0 || slot >= config_.slots)
    fail("write_slot: slot {} is out of range: the bank has {} slots", slot, config_.slots);
  if (in_step_) fail("write_slot: called inside a step");
  const auto P = static_cast<std::size_t>(layout_.size());
  const std::size_t moments = first_moment_ ? P : 0;
  if (params.size() != P || first_moment.size() != moments || second_moment.size() != moments)
    fail("write_slot({}): sizes {}, {}, {}; expected {}, {}, {}", slot, params.size(),
         first_moment.size(), second_moment.size(), P, moments, moments);
  wait();
  const std::size_t offset = static_cast<std::size_t>(slot) * P;
  check(cudaMemcpy(params_ + offset, params.data(), P * sizeof(float), cudaMemcpyHostToDevice),
        "write_slot");
  if (moments) {
    check(cudaMemcpy(first_moment_ + offset, first_moment.data(), P * sizeof(float),
                     cudaMemcpyHostToDevice),
          "write_slot");
    check(cudaMemcpy(second_moment_ + offset, second_moment.data(), P * sizeof(float),
                     cudaMemcpyHostToDevice),
          "write_slot");
  }
  check(cudaMemcpy(steps_ + slot, &updates, sizeof updates, cudaMemcpyHostToDevice), "write_slot");
}

std::vector<float> Backend::slot_array(BankArray array, int slot) {
  if (slot < 0 || slot >= config_.slots)
    fail("slot_array: slot {} is out of range: the bank has {} slots", slot, config_.slots);
  const float* base = array == BankArray::parameters     ? params_
                      : array == BankArray::first_moment ? first_moment_
                                                         : second_moment_;
  if (!base) return {};
  wait();
  std::vector<float> out(static_cast<std::size_t>(layout_.size()));
  check(cudaMemcpy(out.data(), base + static_cast<std::int64_t>(slot) * layout_.size(),
                   out.size() * sizeof(float), cudaMemcpyDeviceToHost),
        "slot_array");
  return out;
}

std::int64_t Backend::updates(int slot) {
  if (slot < 0 || slot >= config_.slots)
    fail("updates: slot {} is out of range: the bank has {} slots", slot, config_.slots);
  wait();
  std::int64_t steps = 0;
  check(cudaMemcpy(&steps, steps_ + slot, sizeof steps, cudaMemcpyDeviceToHost), "updates");
  return steps;
}

DeviceStats Backend::stats() {
  wait();
  DeviceStats s;
  check(cudaMemcpy(&s, stats_, sizeof s, cudaMemcpyDeviceToHost), "stats");
  return s;
}

std::vector<std::int32_t> Backend::logit_row_status() {
  wait();
  std::vector<std::int32_t> status(static_cast<std::size_t>(rows_));
  check(cudaMemcpy(status.data(), row_status_, status.size() * sizeof(std::int32_t),
                   cudaMemcpyDeviceToHost),
        "logit_row_status");
  return status;
}

}  // namespace esamp::cuda
