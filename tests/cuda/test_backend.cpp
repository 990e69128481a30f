// GPU tests of esamp::cuda::Backend: 50 decode steps against the CPU LatentDistiller (same rows,
// same slots, same order), one captured step replayed as a CUDA graph against eager steps, β
// changed between two replays, and the sampler on CUDA against the sampler on the CPU for 50 steps
// of 4 groups (the plain schedule, the defaults, each schedule option alone and all together).
// Without a CUDA device every case warns and returns (see gpu_util.hpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "cuda/backend.hpp"
#include "esamp/cuda.hpp"
#include "esamp/distiller.hpp"
#include "esamp/sampler.hpp"
#include "gpu_util.hpp"

using namespace esamp;
using namespace esamp::cuda;
using namespace esamp::test;

namespace {

// The plain schedule (a seeded slot per group, one update per step) with the last layer's normed
// input as the target, which these tests hand over themselves; the schedule's tests add to it.
ExplorationConfig plain_exploration() {
  ExplorationConfig e;
  e.target = {-1, Site::layer_input_normed};
  e.warm_start = false;
  e.young_updates = 0;
  return e;
}

// One decode step's engine inputs, on the host.
struct StepInputs {
  std::vector<int> row_slots;
  std::vector<std::uint8_t> source, target, final_hidden;  // [rows, H] encoded in the engine dtype
};

// Rows come and go between steps; targets are a fixed function of the sources plus noise; now and
// then a row's source or target is not finite.
StepInputs make_step(int step, int rows, int hidden, const std::vector<int>& slot_pool, DType dtype,
                     std::mt19937& gen) {
  StepInputs in;
  in.row_slots.resize(static_cast<std::size_t>(rows));
  for (int& s : in.row_slots)
    s = slot_pool[std::uniform_int_distribution<std::size_t>(0, slot_pool.size() - 1)(gen)];
  const auto seed = static_cast<std::uint32_t>(1000 + step);
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows * hidden), seed);
  std::vector<float> y = random_floats(x.size(), seed + 1, 0.1f);
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] += std::tanh(0.8f * x[i] + 0.3f * x[(i + 1) % x.size()]);
  if (step % 7 == 3)
    x[static_cast<std::size_t>(hidden + 1)] = std::numeric_limits<float>::quiet_NaN();
  if (step % 11 == 5) y[0] = std::numeric_limits<float>::infinity();
  in.source = encode(x, dtype);
  in.target = encode(y, dtype);
  in.final_hidden = encode(random_floats(x.size(), seed + 2, 2.0f), dtype);
  return in;
}

// Device buffers an engine would own: source, target and final hidden rows [max_rows, H].
struct EngineBuffers {
  DeviceArray<std::uint8_t> source, target, final_hidden;
  EngineBuffers(int max_rows, int hidden, DType dtype)
      : source(static_cast<std::size_t>(max_rows * hidden) * size_of(dtype)),
        target(source.size()),
        final_hidden(source.size()) {}
  void upload(const StepInputs& in, cudaStream_t stream) {
    CUDA_REQUIRE(cudaMemcpyAsync(source.get(), in.source.data(), in.source.size(),
                                 cudaMemcpyHostToDevice, stream));
    CUDA_REQUIRE(cudaMemcpyAsync(target.get(), in.target.data(), in.target.size(),
                                 cudaMemcpyHostToDevice, stream));
    CUDA_REQUIRE(cudaMemcpyAsync(final_hidden.get(), in.final_hidden.data(), in.final_hidden.size(),
                                 cudaMemcpyHostToDevice, stream));
  }
  ConstMatrixView view(const DeviceArray<std::uint8_t>& b, int rows, int hidden,
                       DType dtype) const {
    return {b.get(), rows, hidden, hidden, dtype, Device::cuda};
  }
};

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { CUDA_REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
  BackendOptions options() const {
    BackendOptions o;
    o.stream = s;
    return o;
  }
};

// A CPU and a CUDA sampler fed the same steps (host and device buffers), and the model's layers.
struct SamplerPair {
  ExploratorySampler& cpu;
  ExploratorySampler& gpu;
  int layers = 0;
};

// One step through both samplers as an engine calls the hooks: the source, the last layer's normed
// input if it is the target, then the final-normed rows (the target itself when it is
// final_normed, the default). Returns the mixed final rows of the CPU and of the CUDA sampler.
std::pair<std::vector<float>, std::vector<float>> step_both(SamplerPair samplers,
                                                            const std::vector<GroupId>& cpu_rows,
                                                            const std::vector<GroupId>& gpu_rows,
                                                            const StepInputs& in, int rows,
                                                            int hidden, EngineBuffers& buffers,
                                                            cudaStream_t stream) {
  const int last = samplers.layers - 1;
  std::vector<float> cpu_final(in.final_hidden.size() / sizeof(float));
  std::memcpy(cpu_final.data(), in.final_hidden.data(), in.final_hidden.size());
  ExploratorySampler& cpu = samplers.cpu;
  cpu.begin_step(cpu_rows);
  cpu.on_hidden(0, Site::layer_input_normed,
                ConstMatrixView(reinterpret_cast<const float*>(in.source.data()), rows, hidden));
  if (cpu.wants(last, Site::layer_input_normed))
    cpu.on_hidden(last, Site::layer_input_normed,
                  ConstMatrixView(reinterpret_cast<const float*>(in.target.data()), rows, hidden));
  cpu.before_lm_head(MatrixView(cpu_final.data(), rows, hidden));
  cpu.end_step();

  ExploratorySampler& gpu = samplers.gpu;
  buffers.upload(in, stream);
  gpu.begin_step(gpu_rows);
  gpu.on_hidden(0, Site::layer_input_normed,
                buffers.view(buffers.source, rows, hidden, DType::f32));
  if (gpu.wants(last, Site::layer_input_normed))
    gpu.on_hidden(last, Site::layer_input_normed,
                  buffers.view(buffers.target, rows, hidden, DType::f32));
  gpu.before_lm_head(
      MatrixView(buffers.final_hidden.get(), rows, hidden, hidden, DType::f32, Device::cuda));
  gpu.end_step();
  std::vector<float> gpu_final(cpu_final.size());
  CUDA_REQUIRE(cudaMemcpyAsync(gpu_final.data(), buffers.final_hidden.get(),
                               gpu_final.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  return {std::move(cpu_final), std::move(gpu_final)};
}

std::vector<float> slot_params(const BankState& bank, int slot) {
  const Span<const float> p = bank.slot_array(BankArray::parameters, slot);
  return {p.begin(), p.end()};
}

double norm_of_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += (static_cast<double>(a[i]) - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("50 backend steps track the CPU LatentDistiller: parameters, moments, steps, stats",
          "[gpu][backend]") {
  ESAMP_REQUIRE_GPU();
  const auto [hidden, rank, rows, slots, optimizer, dtype] =
      GENERATE(table<int, int, int, int, Optimizer, DType>(
          {{64, 64, 7, 5, Optimizer::adamw, DType::f32},
           {896, 128, 64, 5, Optimizer::sgd, DType::bf16},
           {4096, 128, 7, 1, Optimizer::adamw, DType::bf16}}));
  INFO("H " << hidden << ", r " << rank << ", rows " << rows << ", slots " << slots << ", "
            << name(optimizer) << ", " << name(dtype));
  DistillerConfig config;
  config.hidden_size = hidden;
  config.rank = rank;
  config.slots = slots;
  config.optimizer = optimizer;
  config.lr = optimizer == Optimizer::sgd ? 0.5f : 1e-3f;
  config.seed = 42;
  ExplorationConfig exploration = plain_exploration();
  exploration.max_rows = rows;
  exploration.beta = 0.5f;
  const int steps = 50;

  Stream engine;
  Backend gpu(config, exploration, engine.options());
  LatentDistiller cpu(config);
  const Span<const float> init_span = cpu.slot_array(BankArray::parameters, 0);
  const std::vector<float> init(init_span.begin(), init_span.end());
  // Fresh slots are identical on both sides, bit for bit (one seeded initialisation).
  const BankState fresh = gpu.bank();
  for (int s = 0; s < slots; ++s) REQUIRE(slot_params(fresh, s) == init);

  EngineBuffers buffers(rows, hidden, dtype);
  std::mt19937 gen(3);
  std::vector<int> pool;
  for (int s = 0; s < slots; s += 2) pool.push_back(s);  // odd slots stay idle
  std::vector<float> y_hat(static_cast<std::size_t>(rows * hidden));
  const std::vector<float> row_beta(static_cast<std::size_t>(rows), 0.5f);
  std::int64_t rows_trained = 0, rows_skipped = 0, slot_updates = 0;
  double mean_loss = 0.0;
  int steps_trained = 0;
  for (int step = 0; step < steps; ++step) {
    const StepInputs in = make_step(step, rows, hidden, pool, dtype, gen);
    buffers.upload(in, engine.s);
    gpu.begin_step(in.row_slots, row_beta);
    gpu.on_source(buffers.view(buffers.source, rows, hidden, dtype));
    gpu.on_target(buffers.view(buffers.target, rows, hidden, dtype));
    gpu.mix_hidden({buffers.final_hidden.get(), rows, hidden, hidden, dtype, Device::cuda});
    gpu.end_step();

    const ConstMatrixView x(in.source.data(), rows, hidden, hidden, dtype);
    const ConstMatrixView y(in.target.data(), rows, hidden, hidden, dtype);
    cpu.predict(in.row_slots, x, MatrixView(y_hat.data(), rows, hidden));
    // The CPU sampler's mix of this step (before the update), on a host copy of the final rows.
    std::vector<std::uint8_t> mixed_ref = in.final_hidden;
    const MatrixView mixed_view(mixed_ref.data(), rows, hidden, hidden, dtype);
    for (int i = 0; i < rows; ++i) {
      const float* row_hat = y_hat.data() + static_cast<std::size_t>(i * hidden);
      if (std::isnan(row_hat[0]) || cpu.updates(in.row_slots[static_cast<std::size_t>(i)]) < 1)
        continue;
      for (int j = 0; j < hidden; ++j)
        mixed_view.set(i, j, (1.0f + 0.5f) * mixed_view.at(i, j) - 0.5f * row_hat[j]);
    }
    cpu.train_step(in.row_slots, x, y);
    const TrainReport& report = cpu.last_report();
    rows_trained += report.rows_trained;
    rows_skipped += report.rows_nonfinite;
    slot_updates += report.slots_updated;
    if (report.slots_updated) {
      ++steps_trained;
      mean_loss += (report.loss - mean_loss) / steps_trained;
    }
    // Mixed rows: the GPU prediction differs from the CPU's by the accumulated rounding of the
    // training so far (see the parameter bound below), and bf16 rounds it to 8 bits.
    const std::vector<std::uint8_t> mixed_got = buffers.final_hidden.download();
    const ConstMatrixView got(mixed_got.data(), rows, hidden, hidden, dtype);
    const double tol = dtype == DType::bf16 ? 1e-2 : 1e-3;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < hidden; ++j) {
        INFO("step " << step << ", row " << i << ", column " << j);
        REQUIRE(std::abs(got.at(i, j) - mixed_view.at(i, j)) <=
                tol * (std::abs(mixed_view.at(i, j)) + 1.0f));
      }
  }
  const BankState gpu_bank = gpu.bank();
  for (int s = 0; s < slots; ++s) {
    INFO("slot " << s);
    CHECK(gpu_bank.updates(s) == cpu.updates(s));
    const std::vector<float> g = slot_params(gpu_bank, s);
    const Span<const float> c = cpu.slot_array(BankArray::parameters, s);
    const std::vector<float> cv(c.begin(), c.end());
    if (cpu.updates(s) == 0) {  // idle slots: never touched
      CHECK(g == init);
      continue;
    }
    // fp32 gradients differ from the CPU's by ~1e-5 relative (reduction order); AdamW normalises
    // them, so an update differs by ~1e-5 of lr except where a first-step gradient is ~0 (its sign
    // may flip: 2 lr for that element). Over 50 steps the parameter error stays ~1e-3 of the total
    // parameter movement, and no element moves by more than 2 lr per step apart.
    const double moved = norm_of_difference(cv, init);
    CHECK(norm_of_difference(g, cv) <= 1e-3 * moved);
    for (std::size_t i = 0; i < g.size(); ++i)
      REQUIRE(std::abs(g[i] - cv[i]) <= 2.0 * config.lr * steps);
    if (optimizer == Optimizer::adamw) {
      const Span<const float> gs = gpu_bank.slot_array(BankArray::first_moment, s);
      const std::vector<float> gm(gs.begin(), gs.end());
      const Span<const float> cm = cpu.slot_array(BankArray::first_moment, s);
      const std::vector<float> cmv(cm.begin(), cm.end());
      CHECK(norm_of_difference(gm, cmv) <=
            1e-3 * norm_of_difference(cmv, std::vector<float>(cmv.size())));
    }
  }
  const Stats st = gpu.stats();
  CHECK(st.steps == steps);
  CHECK(st.rows_trained == rows_trained);
  CHECK(st.rows_skipped_nonfinite == rows_skipped);
  CHECK(st.slot_updates == slot_updates);
  CHECK(st.steps_trained == steps_trained);
  CHECK_THAT(st.mean_loss, Catch::Matchers::WithinRel(mean_loss, 1e-3));
}

TEST_CASE(
    "a captured step replayed 20 times matches 20 eager steps bit for bit, with and without "
    "young repeats and lr decay",
    "[gpu][graph]") {
  ESAMP_REQUIRE_GPU();
  const int hidden = 896, rank = 128, rows = 7, slots = 5;
  const DType dtype = DType::bf16;
  DistillerConfig config;
  config.hidden_size = hidden;
  config.rank = rank;
  config.slots = slots;
  config.seed = 9;
  ExplorationConfig exploration = plain_exploration();
  exploration.max_rows = rows;
  exploration.beta = 0.4f;
  // With the schedule: the young repeats' passes are in the captured step too.
  if (GENERATE(false, true)) {
    exploration.young_updates = 3;
    exploration.young_repeat = 2;
    exploration.lr_decay_updates = 5;
  }
  INFO("young_updates " << exploration.young_updates);

  Stream eager_stream, graph_stream;
  Backend eager(config, exploration, eager_stream.options());
  Backend graphed(config, exploration, graph_stream.options());
  const std::vector<float> row_beta(static_cast<std::size_t>(rows), 0.4f);
  EngineBuffers eager_buffers(rows, hidden, dtype), graph_buffers(rows, hidden, dtype);
  const auto hooks = [&](Backend& b, EngineBuffers& buf) {
    b.on_source(buf.view(buf.source, rows, hidden, dtype));
    b.on_target(buf.view(buf.target, rows, hidden, dtype));
    b.mix_hidden({buf.final_hidden.get(), rows, hidden, hidden, dtype, Device::cuda});
    b.end_step();
  };

  std::mt19937 gen(4);
  const std::vector<int> pool{0, 2, 3};
  std::vector<StepInputs> inputs;
  for (int step = 0; step < 21; ++step)
    inputs.push_back(make_step(step, rows, hidden, pool, dtype, gen));

  // Capture: begin_step runs outside (it uploads the plan the replays read).
  graphed.begin_step(inputs[0].row_slots, row_beta);
  CUDA_REQUIRE(cudaStreamBeginCapture(graph_stream.s, cudaStreamCaptureModeGlobal));
  hooks(graphed, graph_buffers);
  cudaGraph_t graph = nullptr;
  CUDA_REQUIRE(cudaStreamEndCapture(graph_stream.s, &graph));
  cudaGraphExec_t exec = nullptr;
  CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));

  for (int step = 1; step <= 20; ++step) {
    const StepInputs& in = inputs[static_cast<std::size_t>(step)];
    graphed.begin_step(in.row_slots, row_beta);
    graph_buffers.upload(in, graph_stream.s);
    CUDA_REQUIRE(cudaGraphLaunch(exec, graph_stream.s));
    eager.begin_step(in.row_slots, row_beta);
    eager_buffers.upload(in, eager_stream.s);
    hooks(eager, eager_buffers);
    INFO("step " << step);
    CUDA_REQUIRE(cudaStreamSynchronize(graph_stream.s));
    CUDA_REQUIRE(cudaStreamSynchronize(eager_stream.s));
    REQUIRE(graph_buffers.final_hidden.download() == eager_buffers.final_hidden.download());
  }
  const BankState graphed_bank = graphed.bank(), eager_bank = eager.bank();
  CHECK(graphed_bank.update_counts() == eager_bank.update_counts());
  CHECK(graphed_bank.whole(BankArray::parameters) == eager_bank.whole(BankArray::parameters));
  CHECK(graphed_bank.whole(BankArray::second_moment) == eager_bank.whole(BankArray::second_moment));
  const Stats a = graphed.stats(), b = eager.stats();
  CHECK(a.steps == b.steps);
  CHECK(a.rows_trained == b.rows_trained);
  CHECK(a.rows_mixed == b.rows_mixed);
  CHECK(a.mean_loss == b.mean_loss);
  CHECK(a.rows_mixed > 0);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_CASE("β changed between two replays of a captured step takes effect, per row",
          "[gpu][graph][beta]") {
  ESAMP_REQUIRE_GPU();
  const int hidden = 64, rank = 16, rows = 4, slots = 2;
  DistillerConfig config;
  config.hidden_size = hidden;
  config.rank = rank;
  config.slots = slots;
  config.seed = 5;
  ExplorationConfig exploration = plain_exploration();
  exploration.max_rows = rows;
  exploration.warmup_updates = 0;  // mix from the first step, on the initial parameters
  Stream stream;
  Backend backend(config, exploration, stream.options());
  EngineBuffers buffers(rows, hidden, DType::f32);
  std::mt19937 gen(8);
  const StepInputs in = make_step(0, rows, hidden, {0, 1}, DType::f32, gen);
  const std::vector<int> row_slots{0, 1, 0, 1};

  // Captured with β = 0 everywhere; replayed with other β: the replay reads them from the plan.
  backend.begin_step(row_slots, std::vector<float>(rows, 0.0f));
  CUDA_REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeGlobal));
  backend.on_source(buffers.view(buffers.source, rows, hidden, DType::f32));
  backend.on_target(buffers.view(buffers.target, rows, hidden, DType::f32));
  backend.mix_hidden({buffers.final_hidden.get(), rows, hidden, hidden, DType::f32, Device::cuda});
  backend.end_step();
  cudaGraph_t graph = nullptr;
  CUDA_REQUIRE(cudaStreamEndCapture(stream.s, &graph));
  cudaGraphExec_t exec = nullptr;
  CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));

  // The prediction each replay mixes in: the CPU bank before that replay's update.
  LatentDistiller cpu(config);
  const ConstMatrixView x(reinterpret_cast<const float*>(in.source.data()), rows, hidden);
  const ConstMatrixView y(reinterpret_cast<const float*>(in.target.data()), rows, hidden);
  const std::vector<float> h(
      reinterpret_cast<const float*>(in.final_hidden.data()),
      reinterpret_cast<const float*>(in.final_hidden.data()) + rows * hidden);
  for (const std::vector<float>& beta :
       {std::vector<float>{0.0f, 0.0f, 0.0f, 0.0f}, std::vector<float>{0.5f, 0.0f, 2.0f, 1.0f}}) {
    std::vector<float> y_hat(static_cast<std::size_t>(rows * hidden));
    cpu.predict(row_slots, x, MatrixView(y_hat.data(), rows, hidden));
    cpu.train_step(row_slots, x, y);
    backend.begin_step(row_slots, beta);
    buffers.upload(in, stream.s);
    CUDA_REQUIRE(cudaGraphLaunch(exec, stream.s));
    CUDA_REQUIRE(cudaStreamSynchronize(stream.s));
    const std::vector<std::uint8_t> bytes = buffers.final_hidden.download();
    const float* got = reinterpret_cast<const float*>(bytes.data());
    for (int i = 0; i < rows; ++i) {
      const float b = beta[static_cast<std::size_t>(i)];
      for (int j = 0; j < hidden; ++j) {
        const auto k = static_cast<std::size_t>(i * hidden + j);
        INFO("row " << i << " beta " << b << " column " << j);
        if (b == 0.0f) {
          REQUIRE(std::memcmp(&got[k], &h[k], sizeof(float)) == 0);  // bit for bit
        } else {
          REQUIRE_THAT(got[k], Catch::Matchers::WithinAbs((1 + b) * h[k] - b * y_hat[k],
                                                          1e-4 * (1 + std::abs(h[k]))));
        }
      }
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_CASE("a CUDA sampler mixes each group with its own β and follows set_beta", "[gpu][beta]") {
  ESAMP_REQUIRE_GPU();
  constexpr int kLayers = 2, kHidden = 32, kRows = 4;
  DistillerConfig distiller;
  distiller.hidden_size = kHidden;
  distiller.rank = 8;
  distiller.slots = 2;
  ExplorationConfig exploration = plain_exploration();
  exploration.max_rows = kRows;
  Stream stream;
  ExploratorySampler cpu_sampler(kLayers, distiller, exploration);
  ExploratorySampler gpu_sampler(kLayers, distiller, exploration, esamp::cuda::backend(stream.s));
  const std::vector<GroupId> cg{cpu_sampler.open_group(0.25f), cpu_sampler.open_group(0.0f)};
  const std::vector<GroupId> gg{gpu_sampler.open_group(0.25f), gpu_sampler.open_group(0.0f)};
  EngineBuffers buffers(kRows, kHidden, DType::f32);
  std::mt19937 gen(12);
  for (int step = 0; step < 6; ++step) {
    if (step == 3) {
      cpu_sampler.set_beta(cg[1], 1.5f);
      gpu_sampler.set_beta(gg[1], 1.5f);
    }
    const StepInputs in = make_step(step, kRows, kHidden, {0, 1}, DType::f32, gen);
    const std::vector<GroupId> cpu_rows{cg[0], cg[1], cg[1], cg[0]};
    const std::vector<GroupId> gpu_rows{gg[0], gg[1], gg[1], gg[0]};
    std::vector<float> cpu_final(in.final_hidden.size() / sizeof(float));
    std::memcpy(cpu_final.data(), in.final_hidden.data(), in.final_hidden.size());
    cpu_sampler.begin_step(cpu_rows);
    cpu_sampler.on_hidden(
        0, Site::layer_input_normed,
        ConstMatrixView(reinterpret_cast<const float*>(in.source.data()), kRows, kHidden));
    cpu_sampler.on_hidden(
        kLayers - 1, Site::layer_input_normed,
        ConstMatrixView(reinterpret_cast<const float*>(in.target.data()), kRows, kHidden));
    cpu_sampler.mix_hidden(MatrixView(cpu_final.data(), kRows, kHidden));
    cpu_sampler.end_step();
    buffers.upload(in, stream.s);
    gpu_sampler.begin_step(gpu_rows);
    gpu_sampler.on_hidden(0, Site::layer_input_normed,
                          buffers.view(buffers.source, kRows, kHidden, DType::f32));
    gpu_sampler.on_hidden(kLayers - 1, Site::layer_input_normed,
                          buffers.view(buffers.target, kRows, kHidden, DType::f32));
    gpu_sampler.mix_hidden(
        MatrixView(buffers.final_hidden.get(), kRows, kHidden, kHidden, DType::f32, Device::cuda));
    gpu_sampler.end_step();
    const std::vector<std::uint8_t> bytes = buffers.final_hidden.download();
    const float* got = reinterpret_cast<const float*>(bytes.data());
    INFO("step " << step);
    for (std::size_t k = 0; k < cpu_final.size(); ++k)
      if (std::isfinite(cpu_final[k]))
        REQUIRE_THAT(got[k], Catch::Matchers::WithinAbs(cpu_final[k], 1e-3));
  }
  REQUIRE(gpu_sampler.stats().rows_mixed == cpu_sampler.stats().rows_mixed);
}

namespace {

// A group's counters on the CUDA sampler equal the CPU's, the losses to fp32 reduction order.
void check_group_stats(const GroupStats& cpu, const GroupStats& gpu) {
  CHECK(gpu.rows_trained == cpu.rows_trained);
  CHECK(gpu.rows_mixed == cpu.rows_mixed);
  CHECK(gpu.rows_skipped_nonfinite == cpu.rows_skipped_nonfinite);
  CHECK(gpu.slot_updates == cpu.slot_updates);
  CHECK(gpu.steps_trained == cpu.steps_trained);
  CHECK_THAT(gpu.last_loss, Catch::Matchers::WithinRel(cpu.last_loss, 1e-3));
  CHECK_THAT(gpu.mean_loss, Catch::Matchers::WithinRel(cpu.mean_loss, 1e-3));
}

// Adds a group's counts to `total` (the losses aside).
void add_counts(GroupStats& total, const GroupStats& g) {
  total.rows_trained += g.rows_trained;
  total.rows_mixed += g.rows_mixed;
  total.rows_skipped_nonfinite += g.rows_skipped_nonfinite;
  total.slot_updates += g.slot_updates;
}

// The CPU sampler and the CUDA sampler fed the same 50 steps of 8 rows from four groups; at steps
// 16 and 32 a group is closed (with exploration.warm_start its slot becomes the prior) and a new
// one opened in its slot (warm-started from the prior); make_step makes a row's source or target
// non-finite now and then. Every step's mixed rows, each group's counters (read before it closes,
// and summing to the stats), then the whole bank (the prior's slot included) and the stats must
// agree.
void check_sampler_parity(const ExplorationConfig& schedule, Optimizer optimizer) {
  constexpr int kLayers = 4, kHidden = 64, kRows = 8, kGroups = 4, kSteps = 50;
  DistillerConfig distiller;
  distiller.hidden_size = kHidden;
  distiller.rank = 16;
  distiller.slots = kGroups;
  distiller.seed = 3;
  distiller.optimizer = optimizer;
  distiller.lr = optimizer == Optimizer::sgd ? 0.05f : 1e-3f;
  ExplorationConfig exploration = schedule;
  exploration.beta = 0.5f;
  exploration.max_rows = kRows;
  INFO(name(optimizer) << ", warm_start " << exploration.warm_start << ", young_updates "
                       << exploration.young_updates << ", young_repeat " << exploration.young_repeat
                       << ", lr_decay_updates " << exploration.lr_decay_updates);
  Stream stream;
  ExploratorySampler cpu_sampler(kLayers, distiller, exploration);
  ExploratorySampler gpu_sampler(kLayers, distiller, exploration, esamp::cuda::backend(stream.s));
  std::vector<GroupId> cpu_groups, gpu_groups;  // the open groups
  for (int g = 0; g < kGroups; ++g) {
    cpu_groups.push_back(cpu_sampler.open_group());
    gpu_groups.push_back(gpu_sampler.open_group());
  }
  EngineBuffers buffers(kRows, kHidden, DType::f32);
  std::mt19937 gen(21);
  GroupStats cpu_total, gpu_total;  // the counts of every group, closed or open at the end
  const auto read_group = [&](std::size_t g) {
    INFO("group " << g);
    const GroupStats c = cpu_sampler.group_stats(cpu_groups[g]);
    const GroupStats d = gpu_sampler.group_stats(gpu_groups[g]);
    check_group_stats(c, d);
    add_counts(cpu_total, c);
    add_counts(gpu_total, d);
  };
  for (int step = 0; step < kSteps; ++step) {
    if (step == 16 || step == 32) {
      const std::size_t g = step == 16 ? 1 : 0;
      read_group(g);
      cpu_sampler.close_group(cpu_groups[g]);
      gpu_sampler.close_group(gpu_groups[g]);
      cpu_groups[g] = cpu_sampler.open_group();
      gpu_groups[g] = gpu_sampler.open_group();
      REQUIRE(cpu_sampler.slot_of(cpu_groups[g]) == gpu_sampler.slot_of(gpu_groups[g]));
      check_group_stats(GroupStats{}, gpu_sampler.group_stats(gpu_groups[g]));  // starts at zero
    }
    const StepInputs in = make_step(step, kRows, kHidden, {0, 1, 2, 3}, DType::f32, gen);
    std::vector<GroupId> cpu_rows, gpu_rows;
    for (const int g : in.row_slots) {
      cpu_rows.push_back(cpu_groups[static_cast<std::size_t>(g)]);
      gpu_rows.push_back(gpu_groups[static_cast<std::size_t>(g)]);
    }
    const auto [cpu_final, gpu_final] = step_both({cpu_sampler, gpu_sampler, kLayers}, cpu_rows,
                                                  gpu_rows, in, kRows, kHidden, buffers, stream.s);
    INFO("step " << step);
    for (std::size_t k = 0; k < cpu_final.size(); ++k)
      if (std::isfinite(cpu_final[k]))
        REQUIRE_THAT(gpu_final[k], Catch::Matchers::WithinAbs(cpu_final[k], 1e-3));
  }

  for (std::size_t g = 0; g < cpu_groups.size(); ++g) read_group(g);
  const Stats a = cpu_sampler.stats(), b = gpu_sampler.stats();
  CHECK(a.steps == b.steps);
  CHECK(a.rows_trained == b.rows_trained);
  CHECK(a.rows_mixed == b.rows_mixed);
  CHECK(a.rows_skipped_nonfinite == b.rows_skipped_nonfinite);
  CHECK(a.slot_updates == b.slot_updates);
  CHECK(a.steps_trained == b.steps_trained);
  CHECK(a.rows_skipped_nonfinite > 0);
  CHECK_THAT(b.last_loss, Catch::Matchers::WithinRel(a.last_loss, 1e-3));
  CHECK_THAT(b.mean_loss, Catch::Matchers::WithinRel(a.mean_loss, 1e-3));
  for (const auto& [stats, total] : {std::pair{a, cpu_total}, std::pair{b, gpu_total}}) {
    CHECK(total.rows_trained == stats.rows_trained);
    CHECK(total.rows_mixed == stats.rows_mixed);
    CHECK(total.rows_skipped_nonfinite == stats.rows_skipped_nonfinite);
    CHECK(total.slot_updates == stats.slot_updates);
  }

  const BankState cpu_bank = cpu_sampler.bank(), gpu_bank = gpu_sampler.bank();
  const BankState fresh(cpu_sampler.distiller_config());
  const std::vector<float> init = slot_params(fresh, 0);
  REQUIRE(gpu_bank.slots() == cpu_bank.slots());
  for (int s = 0; s < cpu_bank.slots(); ++s) {
    INFO("slot " << s << (s == distiller.slots ? " (the prior)" : ""));
    CHECK(gpu_bank.updates(s) == cpu_bank.updates(s));
    const std::vector<float> g = slot_params(gpu_bank, s), c = slot_params(cpu_bank, s);
    // As in the 50-step backend test: fp32 reduction order only, ~1e-3 of the movement.
    CHECK(norm_of_difference(g, c) <= 1e-3 * norm_of_difference(c, init) + 1e-6);
    if (optimizer == Optimizer::adamw) {
      const Span<const float> gs = gpu_bank.slot_array(BankArray::first_moment, s);
      const Span<const float> cs = cpu_bank.slot_array(BankArray::first_moment, s);
      const std::vector<float> gm(gs.begin(), gs.end()), cm(cs.begin(), cs.end());
      CHECK(norm_of_difference(gm, cm) <=
            1e-3 * norm_of_difference(cm, std::vector<float>(cm.size())) + 1e-9);
    }
  }
}

}  // namespace

TEST_CASE("a CUDA sampler with the plain schedule follows the CPU's", "[gpu][sampler]") {
  ESAMP_REQUIRE_GPU();
  check_sampler_parity(plain_exploration(), GENERATE(Optimizer::adamw, Optimizer::sgd));
}

TEST_CASE(
    "a warm-started CUDA sampler hands closed groups to the prior and starts new groups from it as "
    "the CPU's",
    "[gpu][sampler][warm_start]") {
  ESAMP_REQUIRE_GPU();
  ExplorationConfig e = plain_exploration();
  e.warm_start = true;
  check_sampler_parity(e, GENERATE(Optimizer::adamw, Optimizer::sgd));
}

TEST_CASE("a CUDA sampler repeats a young slot's updates as the CPU's", "[gpu][sampler][young]") {
  ESAMP_REQUIRE_GPU();
  ExplorationConfig e = plain_exploration();
  e.young_updates = 3;
  e.young_repeat = 2;
  check_sampler_parity(e, GENERATE(Optimizer::adamw, Optimizer::sgd));
}

TEST_CASE("a CUDA sampler decays each group slot's lr as the CPU's", "[gpu][sampler][lr_decay]") {
  ESAMP_REQUIRE_GPU();
  ExplorationConfig e = plain_exploration();
  e.lr_decay_updates = 4;
  check_sampler_parity(e, GENERATE(Optimizer::adamw, Optimizer::sgd));
}

TEST_CASE("a CUDA sampler with the library's defaults follows the CPU's",
          "[gpu][sampler][warm_start][young]") {
  ESAMP_REQUIRE_GPU();
  check_sampler_parity(ExplorationConfig{}, GENERATE(Optimizer::adamw, Optimizer::sgd));
}

TEST_CASE("a CUDA sampler with a warm start, young repeats and lr decay together follows the CPU's",
          "[gpu][sampler][warm_start][young][lr_decay]") {
  ESAMP_REQUIRE_GPU();
  ExplorationConfig e = plain_exploration();
  e.warm_start = true;
  e.young_updates = 4;
  e.young_repeat = 3;
  e.lr_decay_updates = 4;
  check_sampler_parity(e, GENERATE(Optimizer::adamw, Optimizer::sgd));
}
