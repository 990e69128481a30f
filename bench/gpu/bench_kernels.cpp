// Times one ESamp decode step of the CUDA backend (gather, forward, mix, backward, per-slot update)
// per shape, eager and as a replayed CUDA graph, beside the DESIGN.md §6 memory floor: the bytes
// the bank must move (read parameters for the forward and the backward, then read and write
// parameters and, for AdamW, both moments) divided by the HBM bandwidth. Usage: esamp_bench_kernels
// [bandwidth TB/s, default 3.35 (H100 SXM)].
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "cuda/backend.hpp"
#include "esamp/sampler.hpp"

namespace {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
  std::exit(1);
}

struct Shape {
  int hidden, rank, active_slots, rows;
  esamp::Optimizer optimizer;
};

// Bytes of bank traffic per step: parameters read by the forward and by the backward, then the
// update reads and writes the parameters (and both AdamW moments).
double floor_bytes(const Shape& s) {
  const double params = static_cast<double>(esamp::ParameterLayout{s.hidden, s.rank}.size());
  const double per_slot =
      s.optimizer == esamp::Optimizer::adamw ? params * 4 * (2 + 6) : params * 4 * (2 + 2);
  return per_slot * s.active_slots;
}

}  // namespace

int main(int argc, char** argv) {
  const double bandwidth = (argc > 1 ? std::atof(argv[1]) : 3.35) * 1e12;
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device: %s, %d SMs; floor at %.2f TB/s\n", prop.name, prop.multiProcessorCount,
              bandwidth / 1e12);
  std::printf("%6s %5s %6s %5s %6s | %12s %12s %12s\n", "H", "r", "slots", "rows", "opt",
              "eager us", "graph us", "floor us");
  const Shape shapes[] = {
      {896, 128, 1, 64, esamp::Optimizer::adamw},   {4096, 128, 1, 1, esamp::Optimizer::adamw},
      {4096, 128, 1, 256, esamp::Optimizer::adamw}, {4096, 128, 8, 64, esamp::Optimizer::adamw},
      {4096, 128, 32, 64, esamp::Optimizer::adamw}, {4096, 128, 32, 64, esamp::Optimizer::sgd},
      {4096, 384, 8, 64, esamp::Optimizer::adamw},  {4096, 64, 64, 256, esamp::Optimizer::adamw},
  };
  const int warmup = 5, timed = 50;
  for (const Shape& s : shapes) {
    esamp::DistillerConfig distiller;
    distiller.hidden_size = s.hidden;
    distiller.rank = s.rank;
    distiller.slots = s.active_slots;
    distiller.optimizer = s.optimizer;
    esamp::ExplorationConfig exploration;  // the defaults' schedule: young passes
    exploration.max_rows = s.rows;
    exploration.beta = 0.5f;
    const esamp::DistillerConfig config = esamp::bank_config(distiller, exploration);
    cudaStream_t stream = nullptr;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    esamp::cuda::BackendOptions options;
    options.stream = stream;
    auto owner = std::make_unique<esamp::cuda::Backend>(config, exploration, options);
    esamp::cuda::Backend& backend = *owner;

    const std::size_t elements = static_cast<std::size_t>(s.rows) * s.hidden;
    std::vector<std::uint16_t> host(elements);
    std::mt19937 gen(1);
    for (auto& v : host)
      v = esamp::float_to_bfloat16(std::uniform_real_distribution<float>(-1, 1)(gen));
    void *source = nullptr, *target = nullptr, *final_hidden = nullptr;
    for (void** p : {&source, &target, &final_hidden}) {
      check(cudaMalloc(p, elements * 2), "cudaMalloc");
      check(cudaMemcpy(*p, host.data(), elements * 2, cudaMemcpyHostToDevice), "upload");
    }
    std::vector<int> row_slots(static_cast<std::size_t>(s.rows));
    for (std::size_t i = 0; i < row_slots.size(); ++i)
      row_slots[i] = static_cast<int>(i % static_cast<std::size_t>(s.active_slots));
    const std::vector<float> row_beta(row_slots.size(), exploration.beta);
    const esamp::ConstMatrixView src(source, s.rows, s.hidden, s.hidden, esamp::DType::bf16,
                                     esamp::Device::cuda);
    const esamp::ConstMatrixView tgt(target, s.rows, s.hidden, s.hidden, esamp::DType::bf16,
                                     esamp::Device::cuda);
    const esamp::MatrixView fin(final_hidden, s.rows, s.hidden, s.hidden, esamp::DType::bf16,
                                esamp::Device::cuda);
    const auto hooks = [&] {
      backend.on_source(src);
      backend.on_target(tgt);
      backend.mix_hidden(fin);
      backend.end_step();
    };

    for (int i = 0; i < warmup; ++i) {
      backend.begin_step(row_slots, row_beta);
      hooks();
    }
    backend.stats();  // waits for the warm-up steps
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < timed; ++i) {
      backend.begin_step(row_slots, row_beta);
      hooks();
    }
    backend.stats();
    const double eager_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        timed;

    backend.begin_step(row_slots, row_beta);
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture");
    hooks();
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    check(cudaStreamEndCapture(stream, &graph), "end capture");
    check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    cudaEvent_t start = nullptr, stop = nullptr;
    check(cudaEventCreate(&start), "event");
    check(cudaEventCreate(&stop), "event");
    check(cudaEventRecord(start, stream), "record");
    for (int i = 0; i < timed; ++i) {
      backend.begin_step(row_slots, row_beta);
      check(cudaGraphLaunch(exec, stream), "launch");
    }
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float graph_ms = 0.0f;
    check(cudaEventElapsedTime(&graph_ms, start, stop), "elapsed");

    std::printf("%6d %5d %6d %5d %6s | %12.1f %12.1f %12.1f\n", s.hidden, s.rank, s.active_slots,
                s.rows, s.optimizer == esamp::Optimizer::adamw ? "adamw" : "sgd", eager_us,
                1e3 * graph_ms / timed, 1e6 * floor_bytes(s) / bandwidth);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    for (void* p : {source, target, final_hidden}) cudaFree(p);
    owner.reset();  // before its engine stream goes
    cudaStreamDestroy(stream);
  }
  return 0;
}
