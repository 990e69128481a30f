// GPU tests: the gather, step-count snapshot, forward, backward and optimizer kernels against
// their CPU twins (esamp/cpu/distiller_math.hpp) on random inputs, outputs poisoned with NaN
// first. Without a CUDA device every case warns and returns (see gpu_util.hpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <limits>
#include <random>
#include <vector>

#include "cuda/distiller.cuh"
#include "cuda/gather.cuh"
#include "cuda/workspace.hpp"
#include "esamp/cpu/distiller_math.hpp"
#include "gpu_util.hpp"

using namespace esamp;
using namespace esamp::cuda;
using namespace esamp::test;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A step plan built on the host and uploaded.
struct DevicePlan {
  StepPlanLayout layout;
  std::vector<std::int32_t> host;
  DeviceArray<std::int32_t> device;

  DevicePlan(const std::vector<int>& row_slots, int max_rows, int slots)
      : layout(StepPlanLayout::make(max_rows, slots)),
        host(static_cast<std::size_t>(layout.size())),
        device(static_cast<std::size_t>(layout.size())) {
    StepPlanBuilder(layout, slots)
        .build(row_slots, std::vector<float>(row_slots.size(), 0.5f), host.data());
    device.upload(host);
  }
  StepPlanView view() const { return {device.get(), layout}; }
  StepPlanView host_view() const { return {host.data(), layout}; }
};

std::vector<int> random_row_slots(int rows, int slots, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int> s(static_cast<std::size_t>(rows));
  for (int& v : s) v = std::uniform_int_distribution<int>(0, slots - 1)(gen);
  return s;
}

// A bank of random parameters: A, G, B ~ U(-0.05, 0.05), b ~ 1 + U(-0.5, 0.5), w ~ 1 + U(-0.5,
// 0.5), c ~ U(-0.5, 0.5), so that every term of the forward and backward is generic.
std::vector<float> random_bank(const ParameterLayout& l, int slots, std::uint32_t seed) {
  std::vector<float> p = random_floats(static_cast<std::size_t>(l.size() * slots), seed, 0.05f);
  const std::vector<float> tail =
      random_floats(static_cast<std::size_t>(l.vector_size() * slots), seed + 1, 0.5f);
  for (int s = 0; s < slots; ++s)
    for (std::int64_t i = 0; i < l.vector_size(); ++i) {
      const float t = tail[static_cast<std::size_t>(s * l.vector_size() + i)];
      p[static_cast<std::size_t>(s * l.size() + l.offset_b() + i)] =
          l.offset_b() + i < l.offset_c() ? 1.0f + t : t;
    }
  return p;
}

// The GPU forward of a whole plan, every activation downloaded.
struct GpuForward {
  std::vector<float> u, pre, v, gated, z_hat, y_hat, rstd;
};

struct ForwardBuffers {
  DeviceArray<float> partial, u, pre, v, gated, z_hat, y_hat, rstd;
  ForwardBuffers(const ParameterLayout& l, int max_rows, int splits)
      : partial(static_cast<std::size_t>(splits * max_rows * 2 * l.rank)),
        u(static_cast<std::size_t>(max_rows * l.rank)),
        pre(u.size()),
        v(u.size()),
        gated(u.size()),
        z_hat(static_cast<std::size_t>(max_rows * l.hidden)),
        y_hat(z_hat.size()),
        rstd(static_cast<std::size_t>(max_rows)) {}
};

void run_forward(const float* params, const ParameterLayout& l, bool output_norm,
                 const StepPlanView& plan, const float* source, int splits, ForwardBuffers& b) {
  CUDA_REQUIRE(UpGateProjection(params, l, plan, source, splits, b.partial.get()));
  CUDA_REQUIRE(SwigluForward(params, l, plan, b.partial.get(), splits, b.u.get(), b.pre.get(),
                             b.v.get(), b.gated.get()));
  CUDA_REQUIRE(DownProjection(params, l, plan, source, b.gated.get(), b.z_hat.get()));
  CUDA_REQUIRE(
      LayerNormForward(params, l, output_norm, plan, b.z_hat.get(), b.y_hat.get(), b.rstd.get()));
  CUDA_REQUIRE(cudaDeviceSynchronize());
}

// The CPU forward of grouped rows `x` ([rows, H], grouped order) segment by segment.
cpu::Activations<float> cpu_forward(const std::vector<float>& bank, const ParameterLayout& l,
                                    bool output_norm, const StepPlanView& plan,
                                    const std::vector<float>& x) {
  cpu::Activations<float> act;
  act.resize(plan.rows(), l.hidden, l.rank);
  act.rstd.setOnes();  // the GPU writes 1 without the output norm
  std::copy(x.begin(), x.begin() + plan.rows() * l.hidden, act.x.data());
  for (int s = 0; s < plan.segments(); ++s)
    cpu::forward<float>({bank.data() + plan.segment_slot(s) * l.size(), l}, output_norm, act,
                        plan.segment_begin(s), plan.segment_end(s) - plan.segment_begin(s));
  return act;
}

struct Shape {
  int hidden, rank, rows, slots;
};

}  // namespace

TEST_CASE("GatherRows converts, groups by slot and flags non-finite rows", "[gpu][gather]") {
  ESAMP_REQUIRE_GPU();
  const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
  const auto [hidden, rows, slots, pad] = GENERATE(table<int, int, int, int>(
      {{64, 7, 5, 0}, {896, 64, 5, 8}, {4096, 256, 64, 0}, {100, 7, 3, 3}, {4096, 1, 1, 5}}));
  INFO("dtype " << name(dtype) << ", H " << hidden << ", rows " << rows << ", stride pad " << pad);
  const int stride = hidden + pad;  // pad 3: rows not 16-byte aligned, the scalar path
  std::vector<float> values = random_floats(static_cast<std::size_t>(rows * stride), 11, 4.0f);
  if (rows > 2) {
    values[static_cast<std::size_t>(1 * stride + hidden / 2)] = kNaN;
    values[static_cast<std::size_t>(2 * stride + hidden - 1)] = -kInf;
  }
  const std::vector<std::uint8_t> raw = encode(values, dtype);
  DeviceArray<std::uint8_t> src(raw);
  const DevicePlan plan(random_row_slots(rows, slots, 5), rows, slots);
  DeviceArray<float> out(static_cast<std::size_t>(rows * hidden));
  DeviceArray<std::uint8_t> finite(static_cast<std::size_t>(rows));
  CUDA_REQUIRE(GatherRows(src.get(), dtype, stride, hidden, plan.view(), out.get(), finite.get()));
  const std::vector<float> got = out.download();
  const std::vector<std::uint8_t> flags = finite.download();

  const ConstMatrixView view(raw.data(), rows, hidden, stride, dtype);
  for (int i = 0; i < rows; ++i) {
    const int p = plan.host_view().row_position(i);
    bool row_finite = true;
    for (int j = 0; j < hidden; ++j) row_finite = row_finite && std::isfinite(view.at(i, j));
    INFO("row " << i << " -> position " << p);
    REQUIRE(flags[static_cast<std::size_t>(p)] == (row_finite ? 1 : 0));
    for (int j = 0; j < hidden; ++j)  // conversions to fp32 are exact: compare bits
      REQUIRE(got[static_cast<std::size_t>(p * hidden + j)] == (row_finite ? view.at(i, j) : 0.0f));
  }
}

TEST_CASE("SnapshotSegmentSteps copies each segment's slot's update count and nothing else",
          "[gpu][snapshot]") {
  ESAMP_REQUIRE_GPU();
  // Fewer rows than the plan's capacity too: then some segments are not in the step.
  const auto [rows, max_rows, slots] =
      GENERATE(table<int, int, int>({{9, 9, 6}, {3, 16, 8}, {1, 1, 1}, {40, 64, 3}}));
  INFO("rows " << rows << " of " << max_rows << ", slots " << slots);
  const DevicePlan plan(random_row_slots(rows, slots, 13), max_rows, slots);
  std::vector<std::int64_t> steps(static_cast<std::size_t>(slots));
  for (int s = 0; s < slots; ++s) steps[static_cast<std::size_t>(s)] = 100 + 7 * s;
  const DeviceArray<std::int64_t> slot_steps(steps);
  DeviceArray<std::int64_t> segment_steps(static_cast<std::size_t>(plan.layout.max_segments));
  CUDA_REQUIRE(SnapshotSegmentSteps(plan.view(), slot_steps.get(), segment_steps.get()));
  const std::vector<std::int64_t> got = segment_steps.download();
  const StepPlanView hp = plan.host_view();
  for (int s = 0; s < plan.layout.max_segments; ++s) {
    INFO("segment " << s << " of " << hp.segments());
    const auto i = static_cast<std::size_t>(s);
    if (s < hp.segments()) {
      REQUIRE(got[i] == steps[static_cast<std::size_t>(hp.segment_slot(s))]);
    } else {
      REQUIRE(got[i] == -1);  // still poisoned: past the step's segments nothing is written
    }
  }
}

TEST_CASE("the bank forward matches cpu::forward for every activation", "[gpu][forward]") {
  ESAMP_REQUIRE_GPU();
  const auto [hidden, rank, rows, slots] = GENERATE(table<int, int, int, int>({{64, 64, 7, 5},
                                                                               {64, 64, 256, 1},
                                                                               {896, 128, 64, 5},
                                                                               {896, 384, 1, 1},
                                                                               {896, 128, 256, 64},
                                                                               {4096, 128, 256, 5},
                                                                               {4096, 384, 7, 1},
                                                                               {100, 3, 7, 3}}));
  const bool output_norm = GENERATE(true, false);
  INFO("H " << hidden << ", r " << rank << ", rows " << rows << ", slots " << slots
            << ", output_norm " << output_norm);
  const ParameterLayout l{hidden, rank};
  const std::vector<float> bank = random_bank(l, slots, 21);
  DeviceArray<float> params(bank);
  const DevicePlan plan(random_row_slots(rows, slots, 8), rows, slots);
  const std::vector<float> x = random_floats(static_cast<std::size_t>(rows * hidden), 9);
  DeviceArray<float> source(x);  // already grouped: the forward does not care where rows came from
  const int splits = WorkspaceLayout::split_count(hidden);
  ForwardBuffers b(l, rows, splits);
  run_forward(params.get(), l, output_norm, plan.view(), source.get(), splits, b);

  const cpu::Activations<float> ref = cpu_forward(bank, l, output_norm, plan.host_view(), x);
  const std::size_t nr = static_cast<std::size_t>(rows * rank);
  const std::size_t nh = static_cast<std::size_t>(rows * hidden);
  // u, pre: reductions of length H. z: + a reduction of length r on top. LayerNorm: row sums of
  // length H; rstd amplifies absolute errors of z by 1/std(z), hence the factor 4 below.
  const double tol_gate = fp32_tolerance(hidden);
  const double tol_out = 4 * fp32_tolerance(hidden + rank);
  require_close(b.u.download().data(), ref.u.data(), nr, tol_gate, "u");
  require_close(b.pre.download().data(), ref.pre.data(), nr, tol_gate, "pre");
  require_close(b.v.download().data(), ref.v.data(), nr, tol_gate, "v");
  const cpu::Matrix<float> gated_ref = ref.u.cwiseProduct(ref.v);
  require_close(b.gated.download().data(), gated_ref.data(), nr, tol_gate, "gated");
  require_close(b.z_hat.download().data(), ref.zhat.data(), nh, tol_out, "z_hat");
  require_close(b.y_hat.download().data(), ref.y_hat.data(), nh, tol_out, "y_hat");
  require_close(b.rstd.download().data(), ref.rstd.data(), static_cast<std::size_t>(rows), tol_out,
                "rstd");
}

TEST_CASE("the backward writes cpu::backward's gradient of every parameter, per slot",
          "[gpu][backward]") {
  ESAMP_REQUIRE_GPU();
  const auto [hidden, rank, rows, slots] = GENERATE(table<int, int, int, int>({{64, 64, 7, 5},
                                                                               {896, 128, 64, 5},
                                                                               {896, 384, 1, 1},
                                                                               {896, 128, 256, 64},
                                                                               {4096, 128, 64, 5},
                                                                               {100, 3, 7, 3}}));
  const bool output_norm = GENERATE(true, false);
  INFO("H " << hidden << ", r " << rank << ", rows " << rows << ", slots " << slots
            << ", output_norm " << output_norm);
  const ParameterLayout l{hidden, rank};
  const std::vector<int> row_slots = random_row_slots(rows, slots, 13);
  const DevicePlan plan(row_slots, rows, slots);
  const StepPlanView hp = plan.host_view();
  const std::vector<float> bank = random_bank(l, slots, 23);
  DeviceArray<float> params(bank);

  // Engine-order inputs: row 1's source and row 3's target are not finite (left out of training);
  // with one row, nothing is left out.
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows * hidden), 31);
  std::vector<float> y = random_floats(static_cast<std::size_t>(rows * hidden), 32);
  if (rows > 3) {
    x[static_cast<std::size_t>(1 * hidden + 2)] = kNaN;
    y[static_cast<std::size_t>(3 * hidden)] = kInf;
  }
  DeviceArray<float> x_in(x), y_in(y);
  DeviceArray<float> source(static_cast<std::size_t>(rows * hidden)), target(source.size());
  DeviceArray<std::uint8_t> source_finite(static_cast<std::size_t>(rows)),
      target_finite(static_cast<std::size_t>(rows));
  CUDA_REQUIRE(GatherRows(x_in.get(), DType::f32, hidden, hidden, plan.view(), source.get(),
                          source_finite.get()));
  CUDA_REQUIRE(GatherRows(y_in.get(), DType::f32, hidden, hidden, plan.view(), target.get(),
                          target_finite.get()));
  const int splits = WorkspaceLayout::split_count(hidden);
  ForwardBuffers f(l, rows, splits);
  run_forward(params.get(), l, output_norm, plan.view(), source.get(), splits, f);

  const int max_segments = plan.layout.max_segments;
  DeviceArray<std::int64_t> steps(std::vector<std::int64_t>(static_cast<std::size_t>(slots), 5));
  DeviceArray<std::int32_t> used(static_cast<std::size_t>(max_segments));
  DeviceArray<OptimizerSettings> segment_settings(static_cast<std::size_t>(max_segments));
  DeviceArray<AdamWScale> scale(static_cast<std::size_t>(max_segments));
  DeviceArray<OptimizerSettings> settings(std::vector<OptimizerSettings>{OptimizerSettings{}});
  DeviceArray<float> dy(static_cast<std::size_t>(rows * hidden)), dz(dy.size());
  DeviceArray<float> sq(static_cast<std::size_t>(rows));
  DeviceArray<float> dp_partial(static_cast<std::size_t>(splits * rows * rank));
  DeviceArray<float> dgate(static_cast<std::size_t>(rows * 2 * rank));
  DeviceArray<float> vector_grad(static_cast<std::size_t>(max_segments * l.vector_size()));
  DeviceArray<float> grad(static_cast<std::size_t>(max_segments * l.size()));
  DeviceArray<Stats> stats(std::vector<Stats>{Stats{}});
  DeviceArray<GroupStats> slot_stats(std::vector<GroupStats>(static_cast<std::size_t>(slots)));

  UpdateTarget t;
  t.bank = {params.get(), nullptr, nullptr, steps.get(), l};
  t.rule = UpdateRule::store_gradient;
  t.segment_used = used.get();
  t.segment_settings = segment_settings.get();
  t.segment_scale = scale.get();
  t.gradient_out = grad.get();
  CUDA_REQUIRE(PrepareSlotUpdates(plan.view(), source_finite.get(), target_finite.get(),
                                  settings.get(), TrainingSchedule{}, false, t.rule, steps.get(),
                                  used.get(), segment_settings.get(), scale.get(), nullptr,
                                  nullptr));
  CUDA_REQUIRE(MseLayerNormBackward(params.get(), l, output_norm, plan.view(), f.y_hat.get(),
                                    target.get(), f.z_hat.get(), f.rstd.get(), source_finite.get(),
                                    target_finite.get(), used.get(), dy.get(), dz.get(), sq.get()));
  CUDA_REQUIRE(DownBackwardData(params.get(), l, plan.view(), dz.get(), splits, dp_partial.get()));
  CUDA_REQUIRE(SwigluBackward(l, plan.view(), dp_partial.get(), splits, f.u.get(), f.pre.get(),
                              f.v.get(), dgate.get()));
  CUDA_REQUIRE(DownWeightUpdate(plan.view(), f.gated.get(), dz.get(), t));
  CUDA_REQUIRE(UpGateWeightUpdate(plan.view(), source.get(), dgate.get(), t));
  CUDA_REQUIRE(VectorGradients(l, output_norm, plan.view(), dgate.get(), dy.get(), f.z_hat.get(),
                               vector_grad.get()));
  CUDA_REQUIRE(UpdateParameterRange(plan.view(), vector_grad.get(), l.vector_size(), l.offset_b(),
                                    l.vector_size(), t));
  CUDA_REQUIRE(
      FinishTrainingStep(plan.view(), hidden, sq.get(), used.get(), stats.get(), slot_stats.get()));
  const std::vector<float> got = grad.download();
  const Stats got_stats = stats.download()[0];
  const std::vector<GroupStats> got_slots = slot_stats.download();
  // store_gradient counts no step and leaves the parameters alone.
  CHECK(steps.download() == std::vector<std::int64_t>(static_cast<std::size_t>(slots), 5));
  CHECK(params.download() == bank);

  // CPU: per slot, its finite-source rows in input order; rows with a finite target train.
  const ParameterLayout& cl = l;
  std::vector<float> cpu_grad(static_cast<std::size_t>(l.size()));
  double loss_sum = 0.0;
  long long trained = 0, updated = 0;
  std::vector<GroupStats> expected_slots(static_cast<std::size_t>(slots));
  const auto finite_row = [&](const std::vector<float>& m, int i) {
    return std::all_of(m.begin() + i * hidden, m.begin() + (i + 1) * hidden,
                       [](float v) { return std::isfinite(v); });
  };
  for (int s = 0; s < hp.segments(); ++s) {
    const int slot = hp.segment_slot(s);
    std::vector<int> members;
    for (int i = 0; i < rows; ++i)
      if (row_slots[static_cast<std::size_t>(i)] == slot && finite_row(x, i)) members.push_back(i);
    cpu::Activations<float> act;
    cpu::BackwardScratch<float> scratch;
    const auto n = static_cast<Eigen::Index>(members.size());
    act.resize(n, hidden, rank);
    scratch.resize(n, hidden, rank);
    cpu::Matrix<float> tgt(n, hidden);
    std::vector<std::uint8_t> use(members.size());
    for (Eigen::Index k = 0; k < n; ++k) {
      const int i = members[static_cast<std::size_t>(k)];
      for (int j = 0; j < hidden; ++j) {
        act.x(k, j) = x[static_cast<std::size_t>(i * hidden + j)];
        tgt(k, j) = y[static_cast<std::size_t>(i * hidden + j)];
      }
      use[static_cast<std::size_t>(k)] = finite_row(y, i) ? 1 : 0;
    }
    const std::int64_t used_rows = std::count(use.begin(), use.end(), 1);
    INFO("segment " << s << " (slot " << slot << "), " << used_rows << " rows train");
    GroupStats& expected = expected_slots[static_cast<std::size_t>(slot)];
    expected.rows_trained = used_rows;
    expected.rows_skipped_nonfinite = hp.segment_end(s) - hp.segment_begin(s) - used_rows;
    const float* slot_params = bank.data() + slot * l.size();
    const float* slot_grad = got.data() + s * l.size();
    if (used_rows == 0) {  // no update: the gradient slot is left as poisoned
      CHECK(std::all_of(slot_grad, slot_grad + l.size(), [](float v) { return std::isnan(v); }));
      continue;
    }
    cpu::forward<float>({slot_params, cl}, output_norm, act, 0, n);
    const float loss = cpu::backward<float>({slot_params, cl}, output_norm, act, 0, n, tgt,
                                            use.data(), {cpu_grad.data(), cl}, scratch);
    loss_sum += loss;
    trained += used_rows;
    ++updated;
    expected.slot_updates = expected.steps_trained = 1;
    expected.last_loss = expected.mean_loss = loss;
    // Gradients chain three reductions (LayerNorm row sums and dz B^T over H, then the weight
    // gradients over rows): four times the fp32 bound of the longest one.
    const double tol = 4 * fp32_tolerance(hidden);
    require_close(slot_grad, cpu_grad.data(), static_cast<std::size_t>(l.offset_G()), tol, "dA");
    require_close(slot_grad + l.offset_G(), cpu_grad.data() + l.offset_G(),
                  static_cast<std::size_t>(l.offset_B() - l.offset_G()), tol, "dG");
    require_close(slot_grad + l.offset_B(), cpu_grad.data() + l.offset_B(),
                  static_cast<std::size_t>(l.offset_b() - l.offset_B()), tol, "dB");
    require_close(slot_grad + l.offset_b(), cpu_grad.data() + l.offset_b(),
                  static_cast<std::size_t>(l.rank), tol, "db");
    if (output_norm) {
      require_close(slot_grad + l.offset_w(), cpu_grad.data() + l.offset_w(),
                    static_cast<std::size_t>(2 * hidden), tol, "dw, dc");
    } else {
      CHECK(std::all_of(slot_grad + l.offset_w(), slot_grad + l.size(),
                        [](float v) { return v == 0.0f; }));
    }
  }
  CHECK(got_stats.rows_trained == trained);
  CHECK(got_stats.rows_skipped_nonfinite == rows - trained);
  CHECK(got_stats.slot_updates == updated);
  if (updated > 0)
    CHECK_THAT(got_stats.last_loss,
               Catch::Matchers::WithinRel(loss_sum / static_cast<double>(updated), 1e-4));
  // Each slot's record: its own rows and loss; slots absent from the step stay at zero.
  for (int slot = 0; slot < slots; ++slot) {
    INFO("slot " << slot);
    const GroupStats& a = got_slots[static_cast<std::size_t>(slot)];
    const GroupStats& b = expected_slots[static_cast<std::size_t>(slot)];
    CHECK(a.rows_trained == b.rows_trained);
    CHECK(a.rows_skipped_nonfinite == b.rows_skipped_nonfinite);
    CHECK(a.rows_mixed == 0);
    CHECK(a.slot_updates == b.slot_updates);
    CHECK(a.steps_trained == b.steps_trained);
    CHECK_THAT(a.last_loss, Catch::Matchers::WithinRel(b.last_loss, 1e-4));
    CHECK_THAT(a.mean_loss, Catch::Matchers::WithinRel(b.mean_loss, 1e-4));
  }
}

TEST_CASE(
    "AdamW and SGD updates land on cpu::adamw_update / sgd_update, lr decayed and young-only "
    "passes included, and idle slots untouched",
    "[gpu][optimizer]") {
  ESAMP_REQUIRE_GPU();
  const UpdateRule rule = GENERATE(UpdateRule::adamw, UpdateRule::sgd);
  // lr decay; a young-only pass: slots with < 3 updates.
  const auto [decay, young_only] = GENERATE(table<int, bool>({{0, false}, {3, false}, {0, true}}));
  INFO("lr_decay_updates " << decay << ", young_only " << young_only);
  TrainingSchedule schedule;
  schedule.young_updates = 3;
  schedule.young_repeat = 2;
  schedule.lr_decay_updates = decay;
  const ParameterLayout l{64, 16};
  const int slots = 6, rows = 7;
  // Slots 1, 3, 4 present; every row of slot 4 has a non-finite target: slot 4 is not updated.
  const std::vector<int> row_slots{3, 1, 4, 3, 1, 4, 1};
  const DevicePlan plan(row_slots, rows, slots);
  const StepPlanView hp = plan.host_view();
  std::vector<std::uint8_t> source_ok(rows, 1), target_ok(rows, 1);
  for (int i = 0; i < rows; ++i)
    if (row_slots[static_cast<std::size_t>(i)] == 4)
      target_ok[static_cast<std::size_t>(hp.row_position(i))] = 0;
  source_ok[static_cast<std::size_t>(hp.row_position(0))] = 0;  // slot 3 keeps one row

  const std::size_t n = static_cast<std::size_t>(slots * l.size());
  const std::vector<float> theta0 = random_floats(n, 1, 0.5f);
  std::vector<float> m0 = random_floats(n, 2, 0.01f), v0 = random_floats(n, 3, 1e-4f);
  for (float& v : v0) v = std::abs(v);
  const std::vector<std::int64_t> steps0{0, 3, 9, 0, 2, 1};
  const int max_segments = plan.layout.max_segments;
  const std::vector<float> grad =
      random_floats(static_cast<std::size_t>(max_segments * l.size()), 4, 1e-2f);
  const OptimizerSettings hyper{2e-3f, 0.85f, 0.995f, 1e-7f, 0.05f};

  DeviceArray<float> theta(theta0), m(m0), v(v0), g(grad);
  DeviceArray<std::int64_t> steps(steps0);
  DeviceArray<std::uint8_t> sok(source_ok), tok(target_ok);
  DeviceArray<OptimizerSettings> settings(std::vector<OptimizerSettings>{hyper});
  DeviceArray<std::int32_t> used(static_cast<std::size_t>(max_segments));
  DeviceArray<OptimizerSettings> segment_settings(static_cast<std::size_t>(max_segments));
  DeviceArray<AdamWScale> scale(static_cast<std::size_t>(max_segments));
  Stats stats0;
  stats0.slot_updates = 5;
  DeviceArray<Stats> stats(std::vector<Stats>{stats0});
  DeviceArray<GroupStats> slot_stats(std::vector<GroupStats>(static_cast<std::size_t>(slots)));
  UpdateTarget t;
  t.bank = {theta.get(), m.get(), v.get(), steps.get(), l};
  t.rule = rule;
  t.segment_used = used.get();
  t.segment_settings = segment_settings.get();
  t.segment_scale = scale.get();
  CUDA_REQUIRE(PrepareSlotUpdates(plan.view(), sok.get(), tok.get(), settings.get(), schedule,
                                  young_only, rule, steps.get(), used.get(), segment_settings.get(),
                                  scale.get(), stats.get(), slot_stats.get()));
  CUDA_REQUIRE(UpdateParameterRange(plan.view(), g.get(), l.size(), 0, l.size(), t));
  const std::vector<float> theta1 = theta.download(), m1 = m.download(), v1 = v.download();
  const std::vector<std::int64_t> steps1 = steps.download();

  std::vector<float> theta_ref = theta0, m_ref = m0, v_ref = v0;
  std::vector<std::int64_t> steps_ref = steps0;
  std::int64_t updated = 0;
  std::vector<std::int64_t> slot_updates_ref(static_cast<std::size_t>(slots), 0);
  for (int s = 0; s < hp.segments(); ++s) {
    const int slot = hp.segment_slot(s);
    std::int64_t& step = steps_ref[static_cast<std::size_t>(slot)];
    if (slot == 4 || (young_only && step >= schedule.young_updates)) continue;
    ++slot_updates_ref[static_cast<std::size_t>(slot)];
    const std::size_t at = static_cast<std::size_t>(slot * l.size());
    const float* gs = grad.data() + s * l.size();
    ++step;
    ++updated;
    OptimizerSettings o = hyper;  // as cpu::BankStep::update_slot
    o.lr = schedule.lr(hyper.lr, step);
    if (rule == UpdateRule::sgd) {
      cpu::sgd_update(theta_ref.data() + at, gs, l.size(), o.lr);
    } else {
      cpu::adamw_update(theta_ref.data() + at, m_ref.data() + at, v_ref.data() + at, gs, l.size(),
                        o, adamw_scale(o, step));
    }
  }
  CHECK(updated == (young_only ? 1 : 2));  // young-only: slot 3 (0 updates), not slot 1 (3)
  CHECK(steps1 == steps_ref);
  CHECK(stats.download()[0].slot_updates == 5 + updated);
  const std::vector<GroupStats> slots1 = slot_stats.download();
  for (int slot = 0; slot < slots; ++slot)
    CHECK(slots1[static_cast<std::size_t>(slot)].slot_updates ==
          slot_updates_ref[static_cast<std::size_t>(slot)]);
  // The update is written op for op like the CPU's: moments and SGD bit for bit. AdamW's
  // constants (adamw_scale: 1 - beta^t) go through the device pow (<= 2 ulp in double, then
  // rounded to float), which may move the parameter by an ulp or two.
  CHECK(m1 == m_ref);
  CHECK(v1 == v_ref);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("parameter " << i << " (slot " << i / static_cast<std::size_t>(l.size()) << ")");
    if (rule == UpdateRule::sgd)
      REQUIRE(theta1[i] == theta_ref[i]);
    else
      REQUIRE_THAT(theta1[i], Catch::Matchers::WithinULP(theta_ref[i], 2));
  }
}
