// GPU tests of the C API's CUDA sampler (esamp_sampler_create_cuda, esamp.h only): it mixes like
// a CPU sampler made by esamp_sampler_create, with the library's defaults, and a device ordinal
// that does not exist is a clear error that leaves later CUDA samplers working. Without a CUDA
// device every case warns and returns (see gpu_util.hpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "esamp/esamp.h"
#include "gpu_util.hpp"

using namespace esamp::test;

namespace {

constexpr int kLayers = 4, kHidden = 64, kRows = 6;

#define ESAMP_REQUIRE_OK(call)                 \
  do {                                         \
    const esamp_status status_ = (call);       \
    INFO(#call << ": " << esamp_last_error()); \
    REQUIRE(status_ == ESAMP_STATUS_OK);       \
  } while (0)

esamp_distiller_params distiller_params() {
  esamp_distiller_params d = esamp_default_distiller_params();
  d.hidden_size = kHidden;
  d.rank = 16;
  d.slots = 2;
  d.seed = 5;
  return d;
}

esamp_exploration_params exploration_params() {
  esamp_exploration_params e = esamp_default_exploration_params();  // the library's defaults
  e.max_rows = kRows;
  return e;
}

// One step as an engine drives it through the C API: the taps the sampler asks for (the source
// gets x), then the final-normed rows (the defaults' target) mixed in place, then end_step.
void step(esamp_sampler* s, const std::vector<esamp_group>& rows, const void* x, void* final_rows,
          esamp_device device) {
  ESAMP_REQUIRE_OK(esamp_begin_step(s, rows.data(), rows.size()));
  for (int layer = 0; layer < kLayers; ++layer) {
    bool wants = false;
    ESAMP_REQUIRE_OK(esamp_wants(s, layer, ESAMP_SITE_LAYER_INPUT_NORMED, &wants));
    if (wants)
      ESAMP_REQUIRE_OK(esamp_on_hidden(s, layer, ESAMP_SITE_LAYER_INPUT_NORMED,
                                       {x, kRows, kHidden, kHidden, ESAMP_DTYPE_F32, device}));
  }
  ESAMP_REQUIRE_OK(
      esamp_before_lm_head(s, {final_rows, kRows, kHidden, kHidden, ESAMP_DTYPE_F32, device}));
  ESAMP_REQUIRE_OK(esamp_end_step(s));
}

esamp_stats stats_of(esamp_sampler* s) {
  esamp_stats st{};
  st.struct_size = sizeof st;
  ESAMP_REQUIRE_OK(esamp_get_stats(s, &st));
  return st;
}

esamp_group_stats group_stats_of(esamp_sampler* s, esamp_group group) {
  esamp_group_stats st{};
  st.struct_size = sizeof st;
  ESAMP_REQUIRE_OK(esamp_get_group_stats(s, group, &st));
  return st;
}

}  // namespace

TEST_CASE("esamp_sampler_create_cuda makes a sampler that mixes like esamp_sampler_create's",
          "[gpu][capi]") {
  ESAMP_REQUIRE_GPU();
  const esamp_distiller_params d = distiller_params();
  const esamp_exploration_params e = exploration_params();
  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  esamp_cuda_params c = esamp_default_cuda_params();
  c.stream = stream;

  // A device that does not exist: an error naming it, no sampler, and no CUDA error left behind
  // for the next sampler's launch checks to find.
  int devices = 0;
  CUDA_REQUIRE(cudaGetDeviceCount(&devices));
  c.device = devices;
  esamp_sampler* bad = reinterpret_cast<esamp_sampler*>(&c);
  REQUIRE(esamp_sampler_create_cuda(kLayers, &d, &e, &c, &bad) != ESAMP_STATUS_OK);
  const std::string message = esamp_last_error();
  INFO(message);
  CHECK(bad == nullptr);
  CHECK(message.rfind("esamp_sampler_create_cuda", 0) == 0);
  CHECK(message.find("cudaSetDevice") != std::string::npos);
  c.device = -1;

  esamp_sampler* cpu = nullptr;
  esamp_sampler* gpu = nullptr;
  ESAMP_REQUIRE_OK(esamp_sampler_create(kLayers, &d, &e, &cpu));
  ESAMP_REQUIRE_OK(esamp_sampler_create_cuda(kLayers, &d, &e, &c, &gpu));
  std::vector<esamp_group> cpu_groups(2), gpu_groups(2);
  for (std::size_t g = 0; g < 2; ++g) {
    ESAMP_REQUIRE_OK(esamp_open_group(cpu, &cpu_groups[g]));
    ESAMP_REQUIRE_OK(esamp_open_group(gpu, &gpu_groups[g]));
  }
  const std::vector<int> row_group{0, 1, 1, 0, 1, 0};
  std::vector<esamp_group> cpu_rows, gpu_rows;
  for (const int g : row_group) {
    cpu_rows.push_back(cpu_groups[static_cast<std::size_t>(g)]);
    gpu_rows.push_back(gpu_groups[static_cast<std::size_t>(g)]);
  }
  DeviceArray<float> x(static_cast<std::size_t>(kRows * kHidden)), final_rows(x.size());
  for (int t = 0; t < 12; ++t) {
    const std::vector<float> source = random_floats(x.size(), 300 + 2 * t);
    std::vector<float> expected = random_floats(x.size(), 301 + 2 * t, 2.0f);
    x.upload(source);
    final_rows.upload(expected);
    step(gpu, gpu_rows, x.get(), final_rows.get(), ESAMP_DEVICE_CUDA);
    step(cpu, cpu_rows, source.data(), expected.data(), ESAMP_DEVICE_CPU);
    const std::vector<float> got = final_rows.download();
    INFO("step " << t);
    for (std::size_t i = 0; i < got.size(); ++i)
      REQUIRE_THAT(got[i], Catch::Matchers::WithinAbs(expected[i], 1e-3));
  }
  const esamp_stats a = stats_of(cpu), b = stats_of(gpu);
  CHECK(b.steps == a.steps);
  CHECK(b.rows_trained == a.rows_trained);
  CHECK(b.rows_mixed == a.rows_mixed);
  CHECK(b.rows_mixed > 0);
  CHECK(b.slot_updates == a.slot_updates);
  CHECK_THAT(b.mean_loss, Catch::Matchers::WithinRel(a.mean_loss, 1e-3));
  for (std::size_t g = 0; g < 2; ++g) {
    INFO("group " << g);
    const esamp_group_stats ga = group_stats_of(cpu, cpu_groups[g]);
    const esamp_group_stats gb = group_stats_of(gpu, gpu_groups[g]);
    CHECK(gb.rows_trained == ga.rows_trained);
    CHECK(gb.rows_mixed == ga.rows_mixed);
    CHECK(gb.slot_updates == ga.slot_updates);
    CHECK_THAT(gb.mean_loss, Catch::Matchers::WithinRel(ga.mean_loss, 1e-3));
  }
  esamp_sampler_destroy(gpu);
  esamp_sampler_destroy(cpu);
  CUDA_REQUIRE(cudaStreamDestroy(stream));
}
