/* esamp.h: the C ABI of esamp (Exploratory Sampling, DESIGN.md), for engines and bindings in any
 * language: an opaque sampler handle, growable parameter structs, status codes, no exceptions.
 *
 * Conventions:
 * - Every call that can fail returns an esamp_status; on failure, esamp_last_error() holds a
 *   message naming the function, the offending value and what was expected. Outputs are written
 *   only on success (esamp_sampler_create sets *out to NULL on failure).
 * - A struct with a `struct_size` first field may grow: new fields are only ever appended after
 *   the previous version's sizeof. Get one from esamp_default_*(), change what you need, pass it.
 *   A caller built against an older, shorter esamp.h gets the defaults for the fields it does not
 *   know; a struct_size larger than this library knows is refused.
 * - A sampler is not thread-safe: one thread drives it (distinct samplers may run on distinct
 *   threads). esamp_last_error() is per thread.
 * - The hook order of one decode step (DESIGN.md §2): esamp_begin_step; for each tapped tensor,
 *   esamp_wants then esamp_on_hidden; esamp_mix_hidden (latent) or esamp_mix_logits (candidates);
 *   esamp_end_step.
 */
#ifndef ESAMP_ESAMP_H
#define ESAMP_ESAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* esamp_version() encodes major.minor.patch as one comparable number. */
#define ESAMP_MAKE_VERSION(major, minor, patch) \
  (((uint32_t)(major) << 16) | ((uint32_t)(minor) << 8) | (uint32_t)(patch))

typedef enum esamp_status {
  ESAMP_STATUS_OK = 0,
  /* A NULL pointer, a bad struct_size, enum or config field, a view of the wrong shape, dtype or
   * device, an unknown group, or a hook called out of order: the message says which. */
  ESAMP_STATUS_INVALID_ARGUMENT = 1,
  ESAMP_STATUS_BANK_FULL = 2,  /* esamp_open_group: every slot is taken; close a group first */
  ESAMP_STATUS_FILE_ERROR = 3, /* a bank file unreadable, unwritable, corrupt or of another shape */
  ESAMP_STATUS_OUT_OF_MEMORY = 4,
  ESAMP_STATUS_INTERNAL_ERROR = 5, /* a bug in esamp: please report the message */
  ESAMP_STATUS_UNSUPPORTED = 6     /* not in this build, e.g. a CUDA sampler without CUDA */
} esamp_status;

/* Where in a decoder layer a hidden state is tapped. */
typedef enum esamp_site {
  ESAMP_SITE_LAYER_INPUT = 0,        /* the residual stream entering the layer */
  ESAMP_SITE_LAYER_INPUT_NORMED = 1, /* after the layer's input norm (llama.cpp attn_norm) */
  ESAMP_SITE_LAYER_OUTPUT = 2,       /* the residual stream leaving the layer */
  ESAMP_SITE_FINAL_NORMED = 3        /* after the final norm: what the LM head reads (last layer) */
} esamp_site;

typedef enum esamp_mix_mode {
  ESAMP_MIX_LATENT = 0,    /* mix the final hidden state before the LM head (esamp_mix_hidden) */
  ESAMP_MIX_CANDIDATES = 1 /* mix the filter's candidate logits after it (esamp_mix_logits) */
} esamp_mix_mode;

/* What latent mixing does with the prediction's part along h (ExplorationConfig::latent_mix). */
typedef enum esamp_latent_mix {
  ESAMP_LATENT_MIX_FULL = 0,       /* (1+beta) h - beta y_hat, the paper's rule */
  ESAMP_LATENT_MIX_ORTHOGONAL = 1, /* only y_hat's part orthogonal to h moves h */
  ESAMP_LATENT_MIX_NORM_KEPT = 2   /* the full mix rescaled to |h| per row */
} esamp_latent_mix;

typedef enum esamp_sharing {
  ESAMP_SHARING_PER_GROUP = 0, /* one bank slot per open group */
  ESAMP_SHARING_GLOBAL = 1     /* one slot for every row */
} esamp_sharing;

typedef enum esamp_optimizer { ESAMP_OPTIMIZER_ADAMW = 0, ESAMP_OPTIMIZER_SGD = 1 } esamp_optimizer;

typedef enum esamp_dtype {
  ESAMP_DTYPE_F32 = 0,
  ESAMP_DTYPE_F16 = 1,
  ESAMP_DTYPE_BF16 = 2
} esamp_dtype;

typedef enum esamp_device { ESAMP_DEVICE_CPU = 0, ESAMP_DEVICE_CUDA = 1 } esamp_device;

typedef struct esamp_sampler esamp_sampler;

/* A group: the samples of one prompt, which explore together. */
typedef int32_t esamp_group;

/* The LatentDistiller bank (DESIGN.md §1). */
typedef struct esamp_distiller_params {
  size_t struct_size;  /* sizeof(esamp_distiller_params) */
  int32_t hidden_size; /* H of the host model: no default, must be set */
  int32_t rank;
  bool output_norm;
  float init_std;
  uint64_t seed;
  esamp_optimizer optimizer;
  float lr;
  float adam_beta1;
  float adam_beta2;
  float adam_eps;
  float weight_decay;
  int32_t slots; /* bank size: the most groups open at once (1 with ESAMP_SHARING_GLOBAL) */
} esamp_distiller_params;

/* A hidden state in the host model: `layer` counts from 0; -1 is the last layer. */
typedef struct esamp_tap {
  int32_t layer;
  esamp_site site;
} esamp_tap;

/* How the sampler taps, mixes and shares (DESIGN.md §1, §2). */
typedef struct esamp_exploration_params {
  size_t struct_size; /* sizeof(esamp_exploration_params) */
  float beta; /* exploration strength >= 0 of a group opened without one; 0 leaves outputs as they
                 are */
  esamp_tap source;
  esamp_tap target;
  esamp_mix_mode mix;
  int32_t warmup_updates; /* a group's rows are mixed once its slot has this many updates */
  esamp_sharing sharing;
  int32_t max_rows;            /* the most rows in one step: buffers are sized for it at creation */
  bool background_training;    /* CPU: end_step trains on a worker thread */
  int32_t training_threads;    /* CPU: threads sharing each training step's update (default 1) */
  esamp_latent_mix latent_mix; /* latent mode only */
  bool warm_start;             /* per-group: a group starts from the last trained one closed */
  int32_t young_updates;       /* a slot with fewer updates than this is young... */
  int32_t young_repeat;        /* ...and is updated this many times per step */
  int32_t lr_decay_updates;    /* > 0 decays a group's lr as lr d / (d + n) */
} esamp_exploration_params;

/* Where a CUDA sampler runs (esamp_sampler_create_cuda); views it is given hold device memory. */
typedef struct esamp_cuda_params {
  size_t struct_size; /* sizeof(esamp_cuda_params) */
  void* stream;       /* the engine's cudaStream_t, which the hooks enqueue on; NULL = default */
  int32_t device;     /* CUDA device ordinal of the sampler's memory and work; -1 = the current */
} esamp_cuda_params;

/* The token filter that picks the candidates in ESAMP_MIX_CANDIDATES mode. */
typedef struct esamp_filter {
  size_t struct_size; /* sizeof(esamp_filter) */
  float temperature;  /* 0 = greedy */
  int32_t top_k;      /* 0 = off */
  float top_p;        /* 1 = off */
  float min_p;        /* 0 = off */
} esamp_filter;

/* Counters since creation; filled by esamp_get_stats up to out->struct_size bytes. */
typedef struct esamp_stats {
  size_t struct_size; /* set to sizeof(esamp_stats) before calling esamp_get_stats */
  int64_t steps;
  int64_t rows_trained;
  int64_t rows_mixed;
  int64_t rows_skipped_nonfinite; /* source or target not finite */
  int64_t slot_updates;           /* optimizer steps, summed over slots */
  double last_loss;               /* mean loss of the last step that trained */
  double mean_loss;               /* mean of that over every step that trained */
} esamp_stats;

/* The counters of one group since it opened: esamp_stats' fields for its rows and its slot (with
 * ESAMP_SHARING_GLOBAL every group shares the one slot and reports all rows since creation); filled
 * by esamp_get_group_stats up to out->struct_size bytes. */
typedef struct esamp_group_stats {
  size_t struct_size; /* set to sizeof(esamp_group_stats) before calling esamp_get_group_stats */
  int64_t rows_trained;
  int64_t rows_mixed;
  int64_t rows_skipped_nonfinite; /* source or target not finite */
  int64_t slot_updates;           /* optimizer steps of the group's slot */
  int64_t steps_trained;          /* steps that updated it */
  double last_loss;               /* the slot's mean loss in the last step that trained it */
  double mean_loss;               /* mean of that over every step that trained it */
} esamp_group_stats;

/* A row-major [rows, cols] matrix in the engine's memory; `stride` is the distance between rows
 * in elements (>= cols). The sampler copies what it keeps: the buffer is free on return. */
typedef struct esamp_const_view {
  const void* data;
  int64_t rows;
  int64_t cols;
  int64_t stride;
  esamp_dtype dtype;
  esamp_device device;
} esamp_const_view;

/* The same, for a matrix the sampler writes in place. */
typedef struct esamp_view {
  void* data;
  int64_t rows;
  int64_t cols;
  int64_t stride;
  esamp_dtype dtype;
  esamp_device device;
} esamp_view;

/* The library's version, ESAMP_MAKE_VERSION(major, minor, patch), and as "major.minor.patch". */
uint32_t esamp_version(void);
const char* esamp_version_string(void);

/* "ESAMP_STATUS_OK", ...; "ESAMP_STATUS_UNKNOWN" for a value that is none of them. */
const char* esamp_status_name(esamp_status status);

/* The message of the last failed esamp call on this thread ("" if none has failed). Valid until
 * the next failing call on this thread; successful calls leave it as it is. */
const char* esamp_last_error(void);

esamp_distiller_params esamp_default_distiller_params(void);
esamp_exploration_params esamp_default_exploration_params(void);
esamp_filter esamp_default_filter(void);
esamp_cuda_params esamp_default_cuda_params(void);

/* Whether this library was built with the CUDA backend. */
bool esamp_has_cuda(void);

/* A CPU sampler for a model with `num_layers` decoder layers. Every field is validated here. */
esamp_status esamp_sampler_create(int32_t num_layers, const esamp_distiller_params* distiller,
                                  const esamp_exploration_params* exploration, esamp_sampler** out);
/* A CUDA sampler (DESIGN.md §2, CUDA timeline): views are device memory, hooks enqueue on
 * cuda->stream and never synchronise. ESAMP_STATUS_UNSUPPORTED when built without CUDA. */
esamp_status esamp_sampler_create_cuda(int32_t num_layers, const esamp_distiller_params* distiller,
                                       const esamp_exploration_params* exploration,
                                       const esamp_cuda_params* cuda, esamp_sampler** out);
/* Waits for scheduled training and frees the sampler; NULL is a no-op, as with free(). */
void esamp_sampler_destroy(esamp_sampler* sampler);

/* A new group with a freshly initialised slot; ESAMP_STATUS_BANK_FULL when every slot is taken.
 * Its exploration strength is esamp_exploration_params.beta, or `beta` (finite, >= 0). */
esamp_status esamp_open_group(esamp_sampler* sampler, esamp_group* out);
esamp_status esamp_open_group_with_beta(esamp_sampler* sampler, float beta, esamp_group* out);
/* Changes a group's exploration strength (finite, >= 0) from the next esamp_begin_step on. */
esamp_status esamp_set_beta(esamp_sampler* sampler, esamp_group group, float beta);
/* Frees the group's slot; not while the group has rows in the step under way. */
esamp_status esamp_close_group(esamp_sampler* sampler, esamp_group group);

/* Starts a decode step: row i of every tensor of this step belongs to row_groups[i]
 * (row_groups may be NULL when n_rows is 0). */
esamp_status esamp_begin_step(esamp_sampler* sampler, const esamp_group* row_groups, size_t n_rows);
/* Whether the engine should hand over this tensor this step (false outside a step). */
esamp_status esamp_wants(const esamp_sampler* sampler, int32_t layer, esamp_site site, bool* out);
/* A tapped tensor [rows of the step, hidden_size]. */
esamp_status esamp_on_hidden(esamp_sampler* sampler, int32_t layer, esamp_site site,
                             esamp_const_view hidden);
/* Latent mode: (1+beta)*h - beta*prediction in place on the final-normed hidden states
 * [rows, hidden_size], before the LM head. */
esamp_status esamp_mix_hidden(esamp_sampler* sampler, esamp_view final_hidden);
/* Candidates mode: on the base logits [rows, vocab], keeps the filter's candidates, mixed, and
 * sets every other logit to -inf; lm_head is [vocab, hidden_size]. Sample the result with the
 * filter's temperature and no other truncation. */
esamp_status esamp_mix_logits(esamp_sampler* sampler, esamp_view logits, esamp_const_view lm_head,
                              const esamp_filter* filter);
/* The engine's two mixing points, whatever the mix mode: call both, in this order, and the sampler
 * mixes where esamp_exploration_params.mix says (latent: esamp_mix_hidden before the LM head;
 * candidates: esamp_mix_logits after it), so the engine never branches on the mode. `filter` is the
 * one the engine samples with; it may be NULL in latent mode. */
esamp_status esamp_before_lm_head(esamp_sampler* sampler, esamp_view final_hidden);
esamp_status esamp_after_lm_head(esamp_sampler* sampler, esamp_view logits,
                                 esamp_const_view lm_head, const esamp_filter* filter);
/* The filter to sample the mixed logits with: `filter` itself, or in candidates mode its
 * temperature only (the candidates are chosen already). Fills *out up to out->struct_size bytes. */
esamp_status esamp_sampling_filter(const esamp_sampler* sampler, const esamp_filter* filter,
                                   esamp_filter* out);
/* Ends the step and trains every slot present on its (source, target) rows. */
esamp_status esamp_end_step(esamp_sampler* sampler);

/* Fills *out up to out->struct_size bytes; waits for scheduled training. */
esamp_status esamp_get_stats(esamp_sampler* sampler, esamp_stats* out);
/* The same for one open group: ESAMP_STATUS_INVALID_ARGUMENT for a group never opened or already
 * closed, so read a group's counters before esamp_close_group. */
esamp_status esamp_get_group_stats(esamp_sampler* sampler, esamp_group group,
                                   esamp_group_stats* out);

/* The whole bank with its optimizer state. Groups are not in the file: after a load, an open
 * group keeps its slot and continues from the loaded state. Load only between steps; on any
 * failure the bank is unchanged. */
esamp_status esamp_save_bank(esamp_sampler* sampler, const char* path);
esamp_status esamp_load_bank(esamp_sampler* sampler, const char* path);

#ifdef __cplusplus
}
#endif

#endif /* ESAMP_ESAMP_H */
