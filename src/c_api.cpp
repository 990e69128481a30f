// The C ABI of esamp (include/esamp/esamp.h) over ExploratorySampler: reads the C structs, checks
// every pointer and enum, and turns every exception into a status and a thread-local message.
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "esamp/esamp.h"
#include "esamp/sampler.hpp"
#if ESAMP_WITH_CUDA
#include "esamp/cuda.hpp"
#endif

struct esamp_sampler {
  esamp::ExploratorySampler sampler;
};

namespace {

using esamp::fail;

static_assert(ESAMP_SITE_LAYER_INPUT == static_cast<int>(esamp::Site::layer_input));
static_assert(ESAMP_SITE_LAYER_INPUT_NORMED == static_cast<int>(esamp::Site::layer_input_normed));
static_assert(ESAMP_SITE_LAYER_OUTPUT == static_cast<int>(esamp::Site::layer_output));
static_assert(ESAMP_SITE_FINAL_NORMED == static_cast<int>(esamp::Site::final_normed));
static_assert(ESAMP_MIX_LATENT == static_cast<int>(esamp::MixMode::latent));
static_assert(ESAMP_MIX_CANDIDATES == static_cast<int>(esamp::MixMode::candidates));
static_assert(ESAMP_LATENT_MIX_FULL == static_cast<int>(esamp::LatentMix::full));
static_assert(ESAMP_LATENT_MIX_ORTHOGONAL == static_cast<int>(esamp::LatentMix::orthogonal));
static_assert(ESAMP_LATENT_MIX_NORM_KEPT == static_cast<int>(esamp::LatentMix::norm_kept));
static_assert(ESAMP_SHARING_PER_GROUP == static_cast<int>(esamp::Sharing::per_group));
static_assert(ESAMP_SHARING_GLOBAL == static_cast<int>(esamp::Sharing::global));
static_assert(ESAMP_OPTIMIZER_ADAMW == static_cast<int>(esamp::Optimizer::adamw));
static_assert(ESAMP_OPTIMIZER_SGD == static_cast<int>(esamp::Optimizer::sgd));
static_assert(ESAMP_DTYPE_F32 == static_cast<int>(esamp::DType::f32));
static_assert(ESAMP_DTYPE_F16 == static_cast<int>(esamp::DType::f16));
static_assert(ESAMP_DTYPE_BF16 == static_cast<int>(esamp::DType::bf16));
static_assert(ESAMP_DEVICE_CPU == static_cast<int>(esamp::Device::cpu));
static_assert(ESAMP_DEVICE_CUDA == static_cast<int>(esamp::Device::cuda));
static_assert(sizeof(esamp_group) == sizeof(esamp::GroupId));

// The least struct_size accepted: where the first version of each struct ended.
constexpr std::size_t kDistillerParamsV1 =
    offsetof(esamp_distiller_params, slots) + sizeof(int32_t);
constexpr std::size_t kExplorationParamsV1 =
    offsetof(esamp_exploration_params, background_training) + sizeof(bool);
constexpr std::size_t kFilterV1 = offsetof(esamp_filter, min_p) + sizeof(float);
constexpr std::size_t kStatsV1 = offsetof(esamp_stats, mean_loss) + sizeof(double);
constexpr std::size_t kGroupStatsV1 = offsetof(esamp_group_stats, mean_loss) + sizeof(double);
constexpr std::size_t kCudaParamsV1 = offsetof(esamp_cuda_params, device) + sizeof(int32_t);

// An esamp::Error that the C layer reports with a status other than INVALID_ARGUMENT.
class StatusError : public esamp::Error {
 public:
  StatusError(esamp_status status, const char* message) : Error(message), status_(status) {}
  esamp_status status() const { return status_; }

 private:
  esamp_status status_;
};

thread_local std::string t_message;
thread_local const char* t_last_error = "";

esamp_status record(esamp_status status, const char* function, const char* message) noexcept {
  try {
    t_message = fmt::format("{}: {}", function, message);
    t_last_error = t_message.c_str();
  } catch (...) {
    t_last_error = "esamp: out of memory while recording an error message";
  }
  return status;
}

// Runs an entry point's body; no exception crosses into C.
template <class Body>
esamp_status guarded(const char* function, Body&& body) noexcept {
  try {
    body();
    return ESAMP_STATUS_OK;
  } catch (const StatusError& e) {
    return record(e.status(), function, e.what());
  } catch (const esamp::BankFull& e) {
    return record(ESAMP_STATUS_BANK_FULL, function, e.what());
  } catch (const esamp::Error& e) {
    return record(ESAMP_STATUS_INVALID_ARGUMENT, function, e.what());
  } catch (const std::bad_alloc&) {
    return record(ESAMP_STATUS_OUT_OF_MEMORY, function, "out of memory");
  } catch (const std::exception& e) {
    return record(ESAMP_STATUS_INTERNAL_ERROR, function, e.what());
  } catch (...) {
    return record(ESAMP_STATUS_INTERNAL_ERROR, function, "unknown exception");
  }
}

// Runs `call`, reporting the esamp::Error it throws with `status`.
template <class Call>
auto relabel(esamp_status status, Call&& call) {
  try {
    return call();
  } catch (const esamp::Error& e) {
    throw StatusError(status, e.what());
  }
}

template <class T>
void require(const T* pointer, const char* name) {
  if (pointer == nullptr) fail("{} is NULL", name);
}

// A C caller may store any int in an enum field, and loading a value outside a C++ enum's range is
// undefined behaviour: read the int, check it, then convert. `owner` may be "" (a plain argument).
template <class To, class CEnum>
To to_enum(const CEnum& value, int count, const char* owner, const char* field, const char* type) {
  static_assert(sizeof(CEnum) == sizeof(int));
  int raw;
  std::memcpy(&raw, &value, sizeof raw);
  if (raw < 0 || raw >= count)
    fail("{}{}{} = {}: must be an {} value in [0, {}]", owner, *owner ? "." : "", field, raw, type,
         count - 1);
  return static_cast<To>(raw);
}

esamp::Site to_site(const esamp_site& site, const char* owner, const char* field) {
  return to_enum<esamp::Site>(site, 4, owner, field, "esamp_site");
}

// The caller's struct over the defaults: fields past its struct_size (an older esamp.h) keep them.
template <class T>
T read_struct(const T* in, T defaults, std::size_t first_version_size, const char* name,
              const char* type) {
  require(in, name);
  if (in->struct_size < first_version_size || in->struct_size > sizeof(T))
    fail(
        "{}->struct_size = {}: must be in [{}, {}]; set it to sizeof({}) or start from "
        "esamp_default_*()",
        name, in->struct_size, first_version_size, sizeof(T), type);
  std::memcpy(&defaults, in, in->struct_size);
  return defaults;
}

esamp::DistillerConfig to_config(const esamp_distiller_params& p) {
  esamp::DistillerConfig c;
  c.hidden_size = p.hidden_size;
  c.rank = p.rank;
  c.output_norm = p.output_norm;
  c.init_std = p.init_std;
  c.seed = p.seed;
  c.optimizer = to_enum<esamp::Optimizer>(p.optimizer, 2, "esamp_distiller_params", "optimizer",
                                          "esamp_optimizer");
  c.lr = p.lr;
  c.adam_beta1 = p.adam_beta1;
  c.adam_beta2 = p.adam_beta2;
  c.adam_eps = p.adam_eps;
  c.weight_decay = p.weight_decay;
  c.slots = p.slots;
  return c;
}

esamp::ExplorationConfig to_config(const esamp_exploration_params& p) {
  constexpr const char* kOwner = "esamp_exploration_params";
  esamp::ExplorationConfig c;
  c.beta = p.beta;
  c.source = {p.source.layer, to_site(p.source.site, kOwner, "source.site")};
  c.target = {p.target.layer, to_site(p.target.site, kOwner, "target.site")};
  c.mix = to_enum<esamp::MixMode>(p.mix, 2, kOwner, "mix", "esamp_mix_mode");
  c.warmup_updates = p.warmup_updates;
  c.sharing = to_enum<esamp::Sharing>(p.sharing, 2, kOwner, "sharing", "esamp_sharing");
  c.max_rows = p.max_rows;
  c.background_training = p.background_training;
  c.training_threads = p.training_threads;
  c.latent_mix =
      to_enum<esamp::LatentMix>(p.latent_mix, 3, kOwner, "latent_mix", "esamp_latent_mix");
  c.warm_start = p.warm_start;
  c.young_updates = p.young_updates;
  c.young_repeat = p.young_repeat;
  c.lr_decay_updates = p.lr_decay_updates;
  return c;
}

// Checks out->struct_size of the caller's growable `type`, then copies make()'s struct into *out
// up to it.
template <class T, class Make>
void fill_struct(T* out, std::size_t first_version_size, const char* type, Make&& make) {
  require(out, "out");
  if (out->struct_size < first_version_size || out->struct_size > sizeof(T))
    fail("out->struct_size = {}: must be in [{}, {}]; set it to sizeof({})", out->struct_size,
         first_version_size, sizeof(T), type);
  T full = make();
  full.struct_size = out->struct_size;
  std::memcpy(out, &full, out->struct_size);
}

// The caller's filter over the defaults (a NULL `filter` is an Error naming it).
esamp::Filter to_filter(const esamp_filter* filter) {
  const esamp_filter f =
      read_struct(filter, esamp_default_filter(), kFilterV1, "filter", "esamp_filter");
  return {f.temperature, f.top_k, f.top_p, f.min_p};
}

esamp::DistillerConfig read_config(const esamp_distiller_params* p) {
  return to_config(read_struct(p, esamp_default_distiller_params(), kDistillerParamsV1, "distiller",
                               "esamp_distiller_params"));
}
esamp::ExplorationConfig read_config(const esamp_exploration_params* p) {
  return to_config(read_struct(p, esamp_default_exploration_params(), kExplorationParamsV1,
                               "exploration", "esamp_exploration_params"));
}

template <class View>
esamp::DType view_dtype(const View& v, const char* name) {
  return to_enum<esamp::DType>(v.dtype, 3, name, "dtype", "esamp_dtype");
}
template <class View>
esamp::Device view_device(const View& v, const char* name) {
  return to_enum<esamp::Device>(v.device, 2, name, "device", "esamp_device");
}

esamp::ConstMatrixView to_view(const esamp_const_view& v, const char* name) {
  return {v.data, v.rows, v.cols, v.stride, view_dtype(v, name), view_device(v, name)};
}
esamp::MatrixView to_view(const esamp_view& v, const char* name) {
  return {v.data, v.rows, v.cols, v.stride, view_dtype(v, name), view_device(v, name)};
}

}  // namespace

extern "C" {

uint32_t esamp_version(void) {
  return ESAMP_MAKE_VERSION(ESAMP_VERSION_MAJOR, ESAMP_VERSION_MINOR, ESAMP_VERSION_PATCH);
}

const char* esamp_version_string(void) { return ESAMP_VERSION_STRING; }

const char* esamp_status_name(esamp_status status) {
  int raw;  // any int may arrive here: see to_enum
  std::memcpy(&raw, &status, sizeof raw);
  switch (raw) {
    case ESAMP_STATUS_OK:
      return "ESAMP_STATUS_OK";
    case ESAMP_STATUS_INVALID_ARGUMENT:
      return "ESAMP_STATUS_INVALID_ARGUMENT";
    case ESAMP_STATUS_BANK_FULL:
      return "ESAMP_STATUS_BANK_FULL";
    case ESAMP_STATUS_FILE_ERROR:
      return "ESAMP_STATUS_FILE_ERROR";
    case ESAMP_STATUS_OUT_OF_MEMORY:
      return "ESAMP_STATUS_OUT_OF_MEMORY";
    case ESAMP_STATUS_INTERNAL_ERROR:
      return "ESAMP_STATUS_INTERNAL_ERROR";
    case ESAMP_STATUS_UNSUPPORTED:
      return "ESAMP_STATUS_UNSUPPORTED";
  }
  return "ESAMP_STATUS_UNKNOWN";
}

const char* esamp_last_error(void) { return t_last_error; }

esamp_distiller_params esamp_default_distiller_params(void) {
  const esamp::DistillerConfig c;
  esamp_distiller_params p{};
  p.struct_size = sizeof p;
  p.hidden_size = c.hidden_size;
  p.rank = c.rank;
  p.output_norm = c.output_norm;
  p.init_std = c.init_std;
  p.seed = c.seed;
  p.optimizer = static_cast<esamp_optimizer>(c.optimizer);
  p.lr = c.lr;
  p.adam_beta1 = c.adam_beta1;
  p.adam_beta2 = c.adam_beta2;
  p.adam_eps = c.adam_eps;
  p.weight_decay = c.weight_decay;
  p.slots = c.slots;
  return p;
}

esamp_exploration_params esamp_default_exploration_params(void) {
  const esamp::ExplorationConfig c;
  esamp_exploration_params p{};
  p.struct_size = sizeof p;
  p.beta = c.beta;
  p.source = {c.source.layer, static_cast<esamp_site>(c.source.site)};
  p.target = {c.target.layer, static_cast<esamp_site>(c.target.site)};
  p.mix = static_cast<esamp_mix_mode>(c.mix);
  p.warmup_updates = c.warmup_updates;
  p.sharing = static_cast<esamp_sharing>(c.sharing);
  p.max_rows = c.max_rows;
  p.background_training = c.background_training;
  p.training_threads = c.training_threads;
  p.latent_mix = static_cast<esamp_latent_mix>(c.latent_mix);
  p.warm_start = c.warm_start;
  p.young_updates = c.young_updates;
  p.young_repeat = c.young_repeat;
  p.lr_decay_updates = c.lr_decay_updates;
  return p;
}

esamp_filter esamp_default_filter(void) {
  const esamp::Filter c;
  esamp_filter f{};
  f.struct_size = sizeof f;
  f.temperature = c.temperature;
  f.top_k = c.top_k;
  f.top_p = c.top_p;
  f.min_p = c.min_p;
  return f;
}

esamp_cuda_params esamp_default_cuda_params(void) {
  esamp_cuda_params p{};
  p.struct_size = sizeof p;
  p.stream = nullptr;
  p.device = -1;
  return p;
}

bool esamp_has_cuda(void) { return ESAMP_WITH_CUDA != 0; }

esamp_status esamp_sampler_create(int32_t num_layers, const esamp_distiller_params* distiller,
                                  const esamp_exploration_params* exploration,
                                  esamp_sampler** out) {
  if (out != nullptr) *out = nullptr;
  return guarded(__func__, [&] {
    require(out, "out");
    *out = new esamp_sampler{
        esamp::ExploratorySampler(num_layers, read_config(distiller), read_config(exploration))};
  });
}

esamp_status esamp_sampler_create_cuda(int32_t num_layers, const esamp_distiller_params* distiller,
                                       const esamp_exploration_params* exploration,
                                       const esamp_cuda_params* cuda, esamp_sampler** out) {
  if (out != nullptr) *out = nullptr;
  return guarded(__func__, [&] {
    require(out, "out");
    const esamp_cuda_params c =
        read_struct(cuda, esamp_default_cuda_params(), kCudaParamsV1, "cuda", "esamp_cuda_params");
    if (c.device < -1) fail("cuda->device = {}: must be a device ordinal >= 0, or -1", c.device);
#if ESAMP_WITH_CUDA
    esamp::cuda::BackendOptions options;
    options.stream = static_cast<cudaStream_t>(c.stream);
    options.device = c.device;
    *out = new esamp_sampler{esamp::ExploratorySampler(num_layers, read_config(distiller),
                                                       read_config(exploration),
                                                       esamp::cuda::backend(options))};
#else
    (void)num_layers;
    (void)distiller;
    (void)exploration;
    throw StatusError(ESAMP_STATUS_UNSUPPORTED,
                      "this esamp was built without CUDA (no nvcc found, or ESAMP_CUDA=OFF); "
                      "esamp_has_cuda() says so");
#endif
  });
}

void esamp_sampler_destroy(esamp_sampler* sampler) { delete sampler; }

esamp_status esamp_open_group(esamp_sampler* sampler, esamp_group* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    require(out, "out");
    *out = sampler->sampler.open_group();
  });
}

esamp_status esamp_open_group_with_beta(esamp_sampler* sampler, float beta, esamp_group* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    require(out, "out");
    *out = sampler->sampler.open_group(beta);
  });
}

esamp_status esamp_set_beta(esamp_sampler* sampler, esamp_group group, float beta) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.set_beta(group, beta);
  });
}

esamp_status esamp_close_group(esamp_sampler* sampler, esamp_group group) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.close_group(group);
  });
}

esamp_status esamp_begin_step(esamp_sampler* sampler, const esamp_group* row_groups,
                              size_t n_rows) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    if (n_rows > 0) require(row_groups, "row_groups");
    sampler->sampler.begin_step(esamp::Span<const esamp::GroupId>(row_groups, n_rows));
  });
}

esamp_status esamp_wants(const esamp_sampler* sampler, int32_t layer, esamp_site site, bool* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    require(out, "out");
    *out = sampler->sampler.wants(layer, to_site(site, "", "site"));
  });
}

esamp_status esamp_on_hidden(esamp_sampler* sampler, int32_t layer, esamp_site site,
                             esamp_const_view hidden) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.on_hidden(layer, to_site(site, "", "site"), to_view(hidden, "hidden"));
  });
}

esamp_status esamp_mix_hidden(esamp_sampler* sampler, esamp_view final_hidden) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.mix_hidden(to_view(final_hidden, "final_hidden"));
  });
}

esamp_status esamp_mix_logits(esamp_sampler* sampler, esamp_view logits, esamp_const_view lm_head,
                              const esamp_filter* filter) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.mix_logits(to_view(logits, "logits"), to_view(lm_head, "lm_head"),
                                to_filter(filter));
  });
}

esamp_status esamp_before_lm_head(esamp_sampler* sampler, esamp_view final_hidden) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.before_lm_head(to_view(final_hidden, "final_hidden"));
  });
}

esamp_status esamp_after_lm_head(esamp_sampler* sampler, esamp_view logits,
                                 esamp_const_view lm_head, const esamp_filter* filter) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    esamp::Filter f;
    if (filter != nullptr) f = to_filter(filter);
    sampler->sampler.after_lm_head(to_view(logits, "logits"), to_view(lm_head, "lm_head"),
                                   filter != nullptr ? &f : nullptr);
  });
}

esamp_status esamp_sampling_filter(const esamp_sampler* sampler, const esamp_filter* filter,
                                   esamp_filter* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    fill_struct(out, kFilterV1, "esamp_filter", [&] {
      const esamp::Filter f = sampler->sampler.sampling_filter(to_filter(filter));
      esamp_filter full{};
      full.temperature = f.temperature;
      full.top_k = f.top_k;
      full.top_p = f.top_p;
      full.min_p = f.min_p;
      return full;
    });
  });
}

esamp_status esamp_end_step(esamp_sampler* sampler) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    sampler->sampler.end_step();
  });
}

esamp_status esamp_get_stats(esamp_sampler* sampler, esamp_stats* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    fill_struct(out, kStatsV1, "esamp_stats", [&] {
      const esamp::Stats s = sampler->sampler.stats();
      esamp_stats full{};
      full.steps = s.steps;
      full.rows_trained = s.rows_trained;
      full.rows_mixed = s.rows_mixed;
      full.rows_skipped_nonfinite = s.rows_skipped_nonfinite;
      full.slot_updates = s.slot_updates;
      full.last_loss = s.last_loss;
      full.mean_loss = s.mean_loss;
      return full;
    });
  });
}

esamp_status esamp_get_group_stats(esamp_sampler* sampler, esamp_group group,
                                   esamp_group_stats* out) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    fill_struct(out, kGroupStatsV1, "esamp_group_stats", [&] {
      const esamp::GroupStats s = sampler->sampler.group_stats(group);
      esamp_group_stats full{};
      full.rows_trained = s.rows_trained;
      full.rows_mixed = s.rows_mixed;
      full.rows_skipped_nonfinite = s.rows_skipped_nonfinite;
      full.slot_updates = s.slot_updates;
      full.steps_trained = s.steps_trained;
      full.last_loss = s.last_loss;
      full.mean_loss = s.mean_loss;
      return full;
    });
  });
}

esamp_status esamp_save_bank(esamp_sampler* sampler, const char* path) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    require(path, "path");
    relabel(ESAMP_STATUS_FILE_ERROR, [&] { sampler->sampler.save_bank(path); });
  });
}

esamp_status esamp_load_bank(esamp_sampler* sampler, const char* path) {
  return guarded(__func__, [&] {
    require(sampler, "sampler");
    require(path, "path");
    // Inside a step the front end refuses the call itself: that is a misuse, not a file problem.
    relabel(sampler->sampler.in_step() ? ESAMP_STATUS_INVALID_ARGUMENT : ESAMP_STATUS_FILE_ERROR,
            [&] { sampler->sampler.load_bank(path); });
  });
}

}  // extern "C"
