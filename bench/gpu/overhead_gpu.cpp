// esamp's overhead in a GPU engine's decode step at Llama-3-8B shapes (DESIGN.md §6). The host
// step: bf16 weights of random values, cuBLAS GEMMs (fp32 accumulation), RMSNorm, a decode
// attention over a KV cache of 1,024 tokens per row, SwiGLU, the LM head (decode_kernels.cuh).
// The same step with esamp's hooks at their real places, through the library's CUDA backend
// (esamp::cuda::backend) with the library's defaults at rank 128: begin_step, the source after
// the input norm of the defaults' source layer (0), the target where the defaults put it (the
// final-normed rows), mix_hidden before the LM head, end_step after it. Rows 1, 32, 256; sharing
// global, and per group with rows / 8 groups (8 samples per prompt); eager and as one captured
// CUDA graph per step (whose end joins the side stream back, so that its training cannot overlap
// the next step as it does eager); all in one process, in interleaved blocks of consecutive
// steps, each step timed with events on the engine stream (median of 80 per configuration).
//
// Prints the plain step against its roofline (the bytes it must read: weights and KV cache, over
// the device's measured copy bandwidth), and per configuration the throughput ratio (steps/s with
// esamp ÷ without), the side stream's time per step (the hooks alone, captured, timed with
// events) and esamp's floor (the bytes its update must move, esamp::update_bytes per trained slot,
// over that bandwidth, as a fraction of the step). Checks: every step's logits finite (poisoned
// first), every esamp configuration mixed rows and skipped none.
//
// Device memory (checked against cudaMemGetInfo first): weights 7.50e9 bf16 = 15.0 GB (a layer
// 218.1e6: QKV 25.2e6, O 16.8e6, gate and up 117.4e6, down 58.7e6; the LM head 525.3e6; no
// embedding table: each step starts from fixed random rows); KV cache 128 MiB per row (2 x 32
// layers x 8 KV heads x 1024 tokens x 128 x 2 B), 34.4 GB at 256 rows; activations and scratch 0.25
// GB; esamp's banks at most 3 x 33 slots x 19 MB (AdamW, 256 rows per group) = 1.9 GB. About 51 GB:
// an 80 GB H100 holds it.
//
// Usage: esamp_bench_overhead_gpu [--rows 1,32,256] [--blocks 10] [--block-steps 10]
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "decode_kernels.cuh"
#include "esamp/backend.hpp"
#include "esamp/cuda.hpp"
#include "esamp/sampler.hpp"

namespace {

using namespace esamp::bench;

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "FAIL: %s: %s (%s)\n", what, cudaGetErrorString(status),
               cudaGetErrorName(status));
  std::exit(1);
}

void check(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  std::fprintf(stderr, "FAIL: %s: %s\n", what, cublasGetStatusString(status));
  std::exit(1);
}

struct CudaFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DeviceMemory = std::unique_ptr<void, CudaFree>;

DeviceMemory device_alloc(std::size_t bytes, const char* what) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), what);
  return DeviceMemory(p);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Device memory bandwidth in bytes/s: a 2 GiB device-to-device copy, bytes read plus written,
// median of 10 after one untimed.
double copy_bandwidth(cudaStream_t stream) {
  const std::size_t bytes = std::size_t{2} << 30;
  const DeviceMemory src = device_alloc(bytes, "bandwidth buffer"),
                     dst = device_alloc(bytes, "bandwidth buffer");
  check(cudaMemsetAsync(src.get(), 0x5a, bytes, stream), "bandwidth buffer");
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> seconds;
  for (int i = 0; i < 11; ++i) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    check(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream),
          "bandwidth copy");
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    if (i > 0) seconds.push_back(ms * 1e-3);
  }
  check(cudaEventDestroy(start), "cudaEventDestroy");
  check(cudaEventDestroy(stop), "cudaEventDestroy");
  return 2.0 * static_cast<double>(bytes) / median(seconds);
}

// Where esamp's taps fall in this model; the benchmark hands over the normed layer inputs and the
// final-normed rows (what the defaults ask) and refuses any other site.
struct Taps {
  int source_layer = 0;
  int target_layer = 0;  // kLayers: the final-normed rows

  static Taps of(const esamp::ExplorationConfig& e) {
    const auto layer = [](int l) { return l < 0 ? l + kLayers : l; };
    if (e.source.site != esamp::Site::layer_input_normed ||
        (e.target.site != esamp::Site::layer_input_normed &&
         e.target.site != esamp::Site::final_normed)) {
      std::fprintf(stderr, "FAIL: the defaults' taps are not normed layer inputs or final rows\n");
      std::exit(1);
    }
    return {layer(e.source.layer),
            e.target.site == esamp::Site::final_normed ? kLayers : layer(e.target.layer)};
  }
};

// The Llama-3-8B decode step on `stream`, for up to max_rows rows (decode_kernels.cuh).
class HostModel {
 public:
  HostModel(int max_rows, cudaStream_t stream) : stream_(stream) {
    check(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, 0), "the SM count");
    const std::size_t layer = 2 * std::size_t{kHidden} +
                              std::size_t{kHidden} * (kQkv + kHidden + 2 * kFfn) +
                              std::size_t{kFfn} * kHidden;
    weight_elements_ = kLayers * layer + std::size_t{kVocab} * kHidden + kHidden;
    const std::size_t cache = kv_cache_elements(max_rows);
    const std::size_t activations =
        std::size_t(max_rows) * (3 * kHidden + kQkv + kHidden + 3 * kFfn + kVocab);
    const std::size_t partial_bytes =
        sizeof(float) * AttentionPartialFloats(max_rows, kMaxAttentionSplits);
    std::size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    const double need = 2.0 * (weight_elements_ + 2 * cache + activations) + partial_bytes;
    std::printf("device memory: %.1f GB free of %.1f GB; the host model needs %.1f GB\n",
                free / 1e9, total / 1e9, need / 1e9);
    if (need + 4e9 > static_cast<double>(free)) {  // esamp's banks and cuBLAS take the rest
      std::fprintf(stderr, "FAIL: not enough device memory for %d rows\n", max_rows);
      std::exit(1);
    }

    weights_ = device_alloc(2 * weight_elements_, "the weights");
    k_cache_ = device_alloc(2 * cache, "the K cache");
    v_cache_ = device_alloc(2 * cache, "the V cache");
    activations_ = device_alloc(2 * activations, "the activations");
    partials_ = device_alloc(partial_bytes, "the attention partials");
    bf16_bits* w = static_cast<bf16_bits*>(weights_.get());
    const auto take = [&](std::size_t n, float center, float half_width) {
      check(FillUniform(w, n, seed_++, center, half_width, stream_), "FillUniform");
      bf16_bits* p = w;
      w += n;
      return p;
    };
    // Uniform weights with the variance of 1/fan_in keep every layer's output near unit RMS.
    const auto fan_in = [](int k) { return std::sqrt(3.0f / static_cast<float>(k)); };
    for (Layer& l : layers_) {
      l.attn_norm = take(kHidden, 1.0f, 0.5f);
      l.qkv = take(std::size_t{kQkv} * kHidden, 0.0f, fan_in(kHidden));
      l.o = take(std::size_t{kHidden} * kHidden, 0.0f, fan_in(kHidden));
      l.ffn_norm = take(kHidden, 1.0f, 0.5f);
      l.gate_up = take(2 * std::size_t{kFfn} * kHidden, 0.0f, fan_in(kHidden));
      l.down = take(std::size_t{kHidden} * kFfn, 0.0f, fan_in(kFfn));
    }
    final_norm_ = take(kHidden, 1.0f, 0.5f);
    lm_head_ = take(std::size_t{kVocab} * kHidden, 0.0f, fan_in(kHidden));

    bf16_bits* a = static_cast<bf16_bits*>(activations_.get());
    const auto carve = [&](std::size_t per_row) {
      bf16_bits* p = a;
      a += std::size_t(max_rows) * per_row;
      return p;
    };
    embedded_ = carve(kHidden);
    residual_ = carve(kHidden);
    normed_ = carve(kHidden);
    qkv_ = carve(kQkv);
    attention_ = carve(kHidden);
    gate_up_ = carve(2 * kFfn);
    act_ = carve(kFfn);
    logits_ = carve(kVocab);
    check(FillUniform(embedded_, std::size_t(max_rows) * kHidden, seed_++, 0.0f, 1.0f, stream_),
          "FillUniform");
    check(FillUniform(static_cast<bf16_bits*>(k_cache_.get()), cache, seed_++, 0.0f, 1.0f, stream_),
          "FillUniform");
    check(FillUniform(static_cast<bf16_bits*>(v_cache_.get()), cache, seed_++, 0.0f, 1.0f, stream_),
          "FillUniform");
    // Every other activation starts as NaN (0xFFFF): a value no kernel wrote shows in the logits.
    check(cudaMemsetAsync(residual_, 0xFF, 2 * (a - residual_), stream_), "poisoning");

    check(cublasCreate(&cublas_), "cublasCreate");
    check(cublasSetStream(cublas_, stream_), "cublasSetStream");
    cublas_workspace_ = device_alloc(kCublasWorkspace, "the cuBLAS workspace");
    check(cublasSetWorkspace(cublas_, cublas_workspace_.get(), kCublasWorkspace),
          "cublasSetWorkspace");
    check(cudaStreamSynchronize(stream_), "filling the model");
  }
  ~HostModel() { cublasDestroy(cublas_); }
  HostModel(const HostModel&) = delete;
  HostModel& operator=(const HostModel&) = delete;

  static std::size_t kv_cache_elements(int rows) {
    return std::size_t(rows) * kLayers * kKvHeads * kContext * kHeadDim;
  }
  // The bytes a step must read: every weight, and K and V of every cached token.
  double read_bytes(int rows) const {
    return 2.0 * (weight_elements_ + 2 * kv_cache_elements(rows));
  }
  double weight_bytes() const { return 2.0 * weight_elements_; }
  // The decode attention's context splits: enough blocks for about 4 per SM.
  int attention_splits(int rows) const {
    int splits = 1;
    while (splits < kMaxAttentionSplits && rows * kKvHeads * splits < 4 * sms_) splits *= 2;
    return splits;
  }

  // The decode attention of `rows` rows of layer 0 in `splits` splits against a reference in
  // double over the same bf16 inputs (new random q, k, v): the largest error relative to the
  // output's RMS. A wrong index or a lost split shows here before any timing.
  double attention_error(int rows, int splits) {
    const std::size_t qkv_n = std::size_t(rows) * kQkv, out_n = std::size_t(rows) * kHidden;
    const std::size_t cache_n = kv_cache_elements(rows) / kLayers;  // layer 0's
    auto* k_cache = static_cast<bf16_bits*>(k_cache_.get());
    auto* v_cache = static_cast<bf16_bits*>(v_cache_.get());
    check(FillUniform(qkv_, qkv_n, seed_++, 0.0f, 2.0f, stream_), "FillUniform");
    check(cudaMemsetAsync(attention_, 0xFF, 2 * out_n, stream_), "poisoning");
    check(DecodeAttention(qkv_, k_cache, v_cache, rows, splits,
                          static_cast<float*>(partials_.get()), attention_, stream_),
          "DecodeAttention");
    std::vector<bf16_bits> qkv(qkv_n), keys(cache_n), values(cache_n), out(out_n);
    for (auto [dst, src, n] :
         {std::tuple{qkv.data(), qkv_, qkv_n}, std::tuple{keys.data(), k_cache, cache_n},
          std::tuple{values.data(), v_cache, cache_n}, std::tuple{out.data(), attention_, out_n}})
      check(cudaMemcpyAsync(dst, src, 2 * n, cudaMemcpyDeviceToHost, stream_), "download");
    check(cudaStreamSynchronize(stream_), "the attention check");
    const auto f = [](const std::vector<bf16_bits>& v, std::size_t i) {
      return static_cast<double>(esamp::bfloat16_to_float(v[i]));
    };
    std::vector<double> ref(out_n), score(kContext);
    for (int r = 0; r < rows; ++r)
      for (int h = 0; h < kHeads; ++h) {
        const int g = h / (kHeads / kKvHeads);
        const std::size_t q = std::size_t(r) * kQkv + std::size_t(h) * kHeadDim;
        const std::size_t kv = (std::size_t(r) * kKvHeads + g) * kContext * kHeadDim;
        // The new token's K and V, which the kernel wrote at the last position.
        const std::size_t new_k = std::size_t(r) * kQkv + std::size_t(kHeads + g) * kHeadDim;
        const std::size_t new_v = new_k + std::size_t(kKvHeads) * kHeadDim;
        const std::size_t last = kv + std::size_t(kContext - 1) * kHeadDim;
        for (int d = 0; d < kHeadDim; ++d)
          if (keys[last + d] != qkv[new_k + d] || values[last + d] != qkv[new_v + d]) return 1e9;
        double m = -1e300, sum = 0.0;
        for (int t = 0; t < kContext; ++t) {
          double dot = 0.0;
          for (int d = 0; d < kHeadDim; ++d)
            dot += f(qkv, q + d) * f(keys, kv + std::size_t(t) * kHeadDim + d);
          score[t] = dot / std::sqrt(double{kHeadDim});
          m = std::max(m, score[t]);
        }
        for (double& s : score) sum += s = std::exp(s - m);
        for (int d = 0; d < kHeadDim; ++d) {
          double o = 0.0;
          for (int t = 0; t < kContext; ++t)
            o += score[t] * f(values, kv + std::size_t(t) * kHeadDim + d);
          ref[std::size_t(r) * kHidden + std::size_t(h) * kHeadDim + d] = o / sum;
        }
      }
    double rms = 0.0, worst = 0.0;
    for (const double v : ref) rms += v * v / static_cast<double>(out_n);
    for (std::size_t i = 0; i < out_n; ++i) {
      const double err = std::abs(f(out, i) - ref[i]);
      worst = std::isnan(err) ? 1e9 : std::max(worst, err);
    }
    return worst / std::sqrt(rms);
  }

  // A view of `rows` rows of one of the model's [max_rows, kHidden] buffers.
  static esamp::ConstMatrixView view(const bf16_bits* p, int rows) {
    return {p, rows, kHidden, kHidden, esamp::DType::bf16, esamp::Device::cuda};
  }
  const bf16_bits* embedded() const { return embedded_; }
  bf16_bits* normed() { return normed_; }
  bf16_bits* logits() { return logits_; }

  // One decode step of `rows` rows; with `esamp` its hooks (begin_step already called).
  void step(int rows, esamp::SamplerBackend* esamp, Taps taps) {
    const int splits = attention_splits(rows);
    check(cudaMemcpyAsync(residual_, embedded_, 2 * std::size_t(rows) * kHidden,
                          cudaMemcpyDeviceToDevice, stream_),
          "the step's input rows");
    for (int l = 0; l < kLayers; ++l) {
      const Layer& w = layers_[static_cast<std::size_t>(l)];
      check(RmsNorm(residual_, w.attn_norm, normed_, rows, stream_), "RmsNorm");
      if (esamp && l == taps.source_layer) esamp->on_source(view(normed_, rows));
      if (esamp && l == taps.target_layer) esamp->on_target(view(normed_, rows));
      gemm(normed_, w.qkv, qkv_, rows, kQkv, kHidden, false);
      const std::size_t layer_cache = kv_cache_elements(rows) / kLayers * l;
      check(DecodeAttention(qkv_, static_cast<bf16_bits*>(k_cache_.get()) + layer_cache,
                            static_cast<bf16_bits*>(v_cache_.get()) + layer_cache, rows, splits,
                            static_cast<float*>(partials_.get()), attention_, stream_),
            "DecodeAttention");
      gemm(attention_, w.o, residual_, rows, kHidden, kHidden, true);
      check(RmsNorm(residual_, w.ffn_norm, normed_, rows, stream_), "RmsNorm");
      gemm(normed_, w.gate_up, gate_up_, rows, 2 * kFfn, kHidden, false);
      check(Swiglu(gate_up_, act_, rows, stream_), "Swiglu");
      gemm(act_, w.down, residual_, rows, kHidden, kFfn, true);
    }
    check(RmsNorm(residual_, final_norm_, normed_, rows, stream_), "RmsNorm");
    const esamp::MatrixView final_rows(normed_, rows, kHidden, kHidden, esamp::DType::bf16,
                                       esamp::Device::cuda);
    if (esamp && taps.target_layer == kLayers) esamp->on_target(final_rows);
    if (esamp) esamp->mix_hidden(final_rows);
    gemm(normed_, lm_head_, logits_, rows, kVocab, kHidden, false);
    if (esamp) esamp->end_step();
  }

 private:
  struct Layer {
    const bf16_bits *attn_norm, *qkv, *o, *ffn_norm, *gate_up, *down;
  };
  static constexpr std::size_t kCublasWorkspace = std::size_t{32} << 20;

  // out[rows, n] (+)= in[rows, k] · w[n, k]ᵀ, row-major bf16, fp32 accumulation.
  void gemm(const bf16_bits* in, const bf16_bits* w, bf16_bits* out, int rows, int n, int k,
            bool accumulate) {
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &alpha, w, CUDA_R_16BF, k, in,
                       CUDA_R_16BF, k, &beta, out, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  }

  cudaStream_t stream_;
  int sms_ = 0;
  std::uint64_t seed_ = 1;
  std::size_t weight_elements_ = 0;
  DeviceMemory weights_, k_cache_, v_cache_, activations_, partials_, cublas_workspace_;
  Layer layers_[kLayers] = {};
  const bf16_bits *final_norm_ = nullptr, *lm_head_ = nullptr;
  bf16_bits *embedded_ = nullptr, *residual_ = nullptr, *normed_ = nullptr, *qkv_ = nullptr,
            *attention_ = nullptr, *gate_up_ = nullptr, *act_ = nullptr, *logits_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

// One esamp configuration: the library's defaults at rank 128, `groups` groups of rows / groups
// consecutive rows each (one slot each), or global sharing.
struct Config {
  esamp::DistillerConfig distiller;
  esamp::ExplorationConfig exploration;
  std::vector<int> row_slots;
  std::vector<float> row_beta;
  int trained_slots = 1;  // per step, once no slot is young

  Config(int rows, esamp::Sharing sharing) {
    distiller.hidden_size = kHidden;
    distiller.rank = 128;
    exploration.max_rows = rows;
    exploration.sharing = sharing;
    const int groups = sharing == esamp::Sharing::global ? 1 : std::max(1, rows / 8);
    distiller.slots = groups;
    distiller.validate();
    exploration.validate(kLayers);
    for (int i = 0; i < rows; ++i) row_slots.push_back(i * groups / rows);
    row_beta.assign(static_cast<std::size_t>(rows), exploration.beta);
    trained_slots = groups;
  }
  const char* name() const {
    return exploration.sharing == esamp::Sharing::global ? "global" : "per group";
  }
  std::unique_ptr<esamp::SamplerBackend> backend(cudaStream_t stream) const {
    return esamp::cuda::backend(stream)(esamp::bank_config(distiller, exploration), exploration);
  }
};

// A configuration of the step (plain, or with esamp) in one mode (eager, or replays of a graph).
class Runner {
 public:
  Runner(HostModel& model, int rows, const Config* config, bool graph, cudaStream_t stream)
      : name_(std::string(config ? config->name() : "plain") + (graph ? ", graph" : ", eager")),
        model_(model),
        rows_(rows),
        config_(config),
        stream_(stream) {
    if (config) {
      esamp_ = config->backend(stream);
      taps_ = Taps::of(config->exploration);
    }
    if (!graph) return;
    begin_step();  // outside the capture: it uploads the plan every replay reads
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture");
    model_.step(rows_, esamp_.get(), taps_);
    cudaGraph_t graph_def = nullptr;
    check(cudaStreamEndCapture(stream, &graph_def), "cudaStreamEndCapture");
    check(cudaGraphInstantiate(&graph_, graph_def, 0), "cudaGraphInstantiate");
    check(cudaGraphDestroy(graph_def), "cudaGraphDestroy");
  }
  ~Runner() {
    for (cudaEvent_t e : starts_) cudaEventDestroy(e);
    if (graph_) cudaGraphExecDestroy(graph_);
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  const std::string& name() const { return name_; }
  void run(int steps) {
    for (int i = 0; i < steps; ++i) {
      begin_step();
      if (graph_) {
        check(cudaGraphLaunch(graph_, stream_), "cudaGraphLaunch");
      } else {
        model_.step(rows_, esamp_.get(), taps_);
      }
    }
  }
  // Of `steps` consecutive steps started on an idle device, the ms of steps 1 .. steps - 2, each
  // from its start on the engine stream to the next step's: the steady state, in which a step
  // pays for what the side stream's work of the step before costs it (step 0 has nothing to pay
  // for; the last step has no successor to time it).
  std::vector<double> time_steps(int steps) {
    for (auto n = starts_.size(); n < static_cast<std::size_t>(steps); ++n) {
      starts_.emplace_back();
      check(cudaEventCreate(&starts_.back()), "cudaEventCreate");
    }
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    for (int i = 0; i < steps; ++i) {
      check(cudaEventRecord(starts_[static_cast<std::size_t>(i)], stream_), "cudaEventRecord");
      run(1);
    }
    check(cudaDeviceSynchronize(), "a block of steps");
    std::vector<double> ms;
    for (std::size_t i = 1; i + 1 < static_cast<std::size_t>(steps); ++i) {
      float elapsed = 0.0f;
      check(cudaEventElapsedTime(&elapsed, starts_[i], starts_[i + 1]), "cudaEventElapsedTime");
      ms.push_back(elapsed);
    }
    return ms;
  }
  // One more step on poisoned logits: "" when its logits are all finite and esamp, if present,
  // mixed rows and skipped none; otherwise what failed.
  std::string check_step(unsigned long long* device_count) {
    check(cudaMemsetAsync(model_.logits(), 0xFF, 2 * std::size_t(rows_) * kVocab, stream_),
          "poisoning the logits");
    check(cudaMemsetAsync(device_count, 0, sizeof *device_count, stream_), "cudaMemsetAsync");
    run(1);
    check(CountNonFinite(model_.logits(), std::size_t(rows_) * kVocab, device_count, stream_),
          "CountNonFinite");
    unsigned long long nonfinite = 0;
    check(cudaMemcpyAsync(&nonfinite, device_count, sizeof nonfinite, cudaMemcpyDeviceToHost,
                          stream_),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "a checked step");
    std::string failure;
    if (nonfinite) failure += std::to_string(nonfinite) + " non-finite logits; ";
    if (esamp_) {
      const esamp::Stats s = esamp_->stats();
      if (s.rows_mixed == 0) failure += "no row mixed; ";
      if (s.rows_skipped_nonfinite) failure += "rows skipped as non-finite; ";
      if (s.slot_updates < s.steps) failure += "slots not trained every step; ";
    }
    return failure;
  }

 private:
  void begin_step() {
    if (esamp_) esamp_->begin_step(config_->row_slots, config_->row_beta);
  }

  std::string name_;
  HostModel& model_;
  int rows_;
  const Config* config_;
  cudaStream_t stream_;
  std::unique_ptr<esamp::SamplerBackend> esamp_;
  Taps taps_;
  cudaGraphExec_t graph_ = nullptr;
  std::vector<cudaEvent_t> starts_;  // of each step of a block
};

// The side stream's work per step in ms: the hooks alone (gather, forward, mix, backward,
// update), captured as one graph (end_step joins the side stream into the engine stream), its
// replays timed with events; median of 50 after 20 (so that no slot is young).
double side_stream_ms(HostModel& model, const Config& config, int rows, cudaStream_t stream) {
  const std::unique_ptr<esamp::SamplerBackend> esamp = config.backend(stream);
  const esamp::ConstMatrixView source = HostModel::view(model.embedded(), rows);
  const esamp::MatrixView final_rows(model.normed(), rows, kHidden, kHidden, esamp::DType::bf16,
                                     esamp::Device::cuda);
  const auto restore = [&] {  // the mix works in place: every replay starts from the same rows
    check(cudaMemcpyAsync(model.normed(), model.embedded(), 2 * std::size_t(rows) * kHidden,
                          cudaMemcpyDeviceToDevice, stream),
          "the final rows");
  };
  esamp->begin_step(config.row_slots, config.row_beta);
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture");
  esamp->on_source(source);
  esamp->on_target(source);
  esamp->mix_hidden(final_rows);
  esamp->end_step();
  cudaGraph_t graph_def = nullptr;
  cudaGraphExec_t graph = nullptr;
  check(cudaStreamEndCapture(stream, &graph_def), "cudaStreamEndCapture");
  check(cudaGraphInstantiate(&graph, graph_def, 0), "cudaGraphInstantiate");
  check(cudaGraphDestroy(graph_def), "cudaGraphDestroy");
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> ms;
  for (int i = 0; i < 70; ++i) {
    restore();
    esamp->begin_step(config.row_slots, config.row_beta);
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    check(cudaGraphLaunch(graph, stream), "cudaGraphLaunch");
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "the hooks alone");
    float elapsed = 0.0f;
    check(cudaEventElapsedTime(&elapsed, start, stop), "cudaEventElapsedTime");
    if (i >= 20) ms.push_back(elapsed);
  }
  check(cudaEventDestroy(start), "cudaEventDestroy");
  check(cudaEventDestroy(stop), "cudaEventDestroy");
  check(cudaGraphExecDestroy(graph), "cudaGraphExecDestroy");
  return median(ms);
}

struct Options {
  std::vector<int> rows{1, 32, 256};
  int blocks = 10;       // timed blocks per configuration
  int block_steps = 10;  // consecutive steps per block
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 < argc && arg == "--rows") {
      o.rows.clear();
      std::stringstream list(argv[++i]);
      for (std::string item; std::getline(list, item, ',');)
        o.rows.push_back(std::atoi(item.c_str()));  // not a number: 0, refused below
    } else if (i + 1 < argc && arg == "--blocks") {
      o.blocks = std::atoi(argv[++i]);
    } else if (i + 1 < argc && arg == "--block-steps") {
      o.block_steps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--rows 1,32,256] [--blocks 10] [--block-steps 10]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  for (const int r : o.rows)
    if (r < 1 || r > 4096) {
      std::fprintf(stderr, "--rows: %d is not in [1, 4096]\n", r);
      std::exit(2);
    }
  if (o.rows.empty() || o.blocks < 1 || o.block_steps < 3) {
    std::fprintf(stderr, "--rows and --blocks must be positive, --block-steps at least 3\n");
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const double bandwidth = copy_bandwidth(stream);
  std::printf(
      "device: %s, %d SMs; copy bandwidth %.2f TB/s (2 GiB device to device, read + "
      "written, median of 10)\n",
      prop.name, prop.multiProcessorCount, bandwidth / 1e12);
  const int max_rows = *std::max_element(options.rows.begin(), options.rows.end());
  HostModel model(max_rows, stream);
  const esamp::ExplorationConfig defaults;
  std::printf(
      "host step: Llama-3-8B shapes (hidden %d, %d layers, %d/%d heads, FFN %d, vocab %d), "
      "bf16 weights %.2f GB, KV cache %d tokens per row\n"
      "esamp: the library's defaults at rank 128 (beta %.2f, warm start %d, young updates %d x "
      "%d); source layer %d normed, target %s\n"
      "timing: per configuration %d blocks of %d consecutive steps after %d untimed, the blocks "
      "of a row count's configurations interleaved; a step from its start on the engine stream "
      "to the next step's, the first and last of each block left out; median of %d steps\n\n",
      kHidden, kLayers, kHeads, kKvHeads, kFfn, kVocab, model.weight_bytes() / 1e9, kContext,
      defaults.beta, defaults.warm_start, defaults.young_updates, defaults.young_repeat,
      Taps::of(defaults).source_layer,
      Taps::of(defaults).target_layer == kLayers ? "final-normed rows" : "a layer's normed input",
      options.blocks, options.block_steps, 2 * options.block_steps,
      options.blocks * (options.block_steps - 2));
  // bf16 rounds the output by at most 2^-9 of its magnitude; the rest is summation order.
  std::vector<std::string> failures;
  for (const int rows : {1, std::min(3, max_rows)})
    for (const int splits : {1, model.attention_splits(rows), kMaxAttentionSplits}) {
      const double error = model.attention_error(rows, splits);
      if (!(error < 1e-2))
        failures.push_back("decode attention of " + std::to_string(rows) + " rows in " +
                           std::to_string(splits) + " splits: error " + std::to_string(error) +
                           " of the output's RMS");
    }
  std::printf("decode attention against its reference (1 and 3 rows, 1 to %d splits): %s\n\n",
              kMaxAttentionSplits, failures.empty() ? "ok" : "FAILED");
  DeviceMemory count = device_alloc(sizeof(unsigned long long), "a counter");
  auto* device_count_ptr = static_cast<unsigned long long*>(count.get());

  struct Row {
    int rows, groups;
    const char *sharing, *mode;
    double plain_ms, esamp_ms, side_ms, floor_ms;
  };
  std::vector<Row> table;
  struct Roof {
    int rows;
    double read_gb, roofline_ms, eager_ms, graph_ms;
  };
  std::vector<Roof> roofs;
  for (const int rows : options.rows) {
    const Config global(rows, esamp::Sharing::global), grouped(rows, esamp::Sharing::per_group);
    const Config* configs[] = {nullptr, &global, &grouped};
    // [mode][config], eager first: its untimed steps load every kernel before a capture.
    std::vector<std::unique_ptr<Runner>> runners;
    for (const bool graph : {false, true})
      for (const Config* c : configs) {
        runners.push_back(std::make_unique<Runner>(model, rows, c, graph, stream));
        runners.back()->run(2 * options.block_steps);
      }
    std::vector<std::vector<double>> ms(runners.size());
    for (int b = 0; b < options.blocks; ++b)
      for (std::size_t k = 0; k < runners.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(b)) % runners.size();
        const std::vector<double> steps = runners[i]->time_steps(options.block_steps);
        ms[i].insert(ms[i].end(), steps.begin(), steps.end());
      }
    for (const auto& r : runners) {
      const std::string failure = r->check_step(device_count_ptr);
      if (!failure.empty())
        failures.push_back(std::to_string(rows) + " rows, " + r->name() + ": " + failure);
    }
    roofs.push_back({rows, model.read_bytes(rows) / 1e9, 1e3 * model.read_bytes(rows) / bandwidth,
                     median(ms[0]), median(ms[3])});
    for (std::size_t c = 1; c < 3; ++c) {
      const Config& config = *configs[c];
      const double side = side_stream_ms(model, config, rows, stream);
      const double floor_ms = 1e3 * config.trained_slots *
                              static_cast<double>(esamp::update_bytes(config.distiller)) /
                              bandwidth;
      for (const std::size_t mode : {std::size_t{0}, std::size_t{1}})
        table.push_back({rows, config.trained_slots, config.name(), mode == 0 ? "eager" : "graph",
                         median(ms[3 * mode]), median(ms[3 * mode + c]), side, floor_ms});
    }
  }

  std::printf("The plain step against its roofline (weights and KV cache read once):\n\n");
  std::printf(
      "| rows | bytes read, GB | roofline, ms | plain eager, ms | plain graph, ms | "
      "graph / roofline |\n|---:|---:|---:|---:|---:|---:|\n");
  for (const Roof& r : roofs)
    std::printf("| %d | %.2f | %.3f | %.3f | %.3f | %.2f |\n", r.rows, r.read_gb, r.roofline_ms,
                r.eager_ms, r.graph_ms, r.graph_ms / r.roofline_ms);
  std::printf(
      "\nesamp's overhead (ratio: steps/s with esamp / without; side: the hooks alone; floor: "
      "esamp::update_bytes per trained slot over the copy bandwidth):\n\n");
  std::printf(
      "| rows | sharing | groups | mode | plain, ms | esamp, ms | ratio | side, ms | "
      "floor, ms | floor, %% of step | overhead / floor |\n"
      "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : table) {
    const double overhead = r.esamp_ms / r.plain_ms - 1.0, floor = r.floor_ms / r.plain_ms;
    std::printf("| %d | %s | %d | %s | %.3f | %.3f | %.4f | %.3f | %.4f | %.3f | %.2f |\n", r.rows,
                r.sharing, r.groups, r.mode, r.plain_ms, r.esamp_ms, r.plain_ms / r.esamp_ms,
                r.side_ms, r.floor_ms, 100.0 * floor, overhead / floor);
  }
  for (const std::string& f : failures) std::printf("FAIL: %s\n", f.c_str());
  std::printf("checks: %s\n", failures.empty() ? "the decode attention matches its reference; "
                                                 "every configuration's logits finite, every esamp "
                                                 "configuration mixed rows and skipped none"
                                               : "FAILED");
  return failures.empty() ? 0 : 1;
}
