/* test_capi.c: drives esamp through its C API only (esamp.h, compiled as C99): full latent and
 * candidates steps, stats, a bank save/load round trip, per-group beta, creating a CUDA sampler,
 * and the status and message of every error path. Usage: esamp_capi_test <directory for temporary
 * bank files>. Exit 0 only if every check passes; each failed check is printed with its line. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esamp/esamp.h"

enum { kLayers = 4, kHidden = 8, kRank = 4, kRows = 3, kVocab = 6, kTopK = 3 };

static int g_checks = 0;
static int g_failures = 0;

static void check(int ok, const char* what, int line) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    fprintf(stderr, "test_capi.c:%d: check failed: %s\n", line, what);
  }
}
#define CHECK(cond) check((cond) != 0, #cond, __LINE__)

static void check_ok(esamp_status got, const char* call, int line) {
  ++g_checks;
  if (got != ESAMP_STATUS_OK) {
    ++g_failures;
    fprintf(stderr, "test_capi.c:%d: %s returned %s: %s\n", line, call, esamp_status_name(got),
            esamp_last_error());
  }
}
#define CHECK_OK(call) check_ok((call), #call, __LINE__)

/* The call must fail with `expected`, and the message must name the C function and contain
 * `needle` (a needle of its own, so that an earlier failure's message cannot pass for it). */
static void check_fails(esamp_status got, esamp_status expected, const char* function,
                        const char* needle, const char* call, int line) {
  const char* message = esamp_last_error();
  ++g_checks;
  if (got != expected || strncmp(message, function, strlen(function)) != 0 ||
      strstr(message, needle) == NULL) {
    ++g_failures;
    fprintf(stderr,
            "test_capi.c:%d: %s returned %s (expected %s), message \"%s\" (expected \"%s: "
            "...%s...\")\n",
            line, call, esamp_status_name(got), esamp_status_name(expected), message, function,
            needle);
  }
}
#define CHECK_FAILS(call, expected, function, needle) \
  check_fails((call), (expected), (function), (needle), #call, __LINE__)

/* Deterministic values in [-1, 1) from a 32-bit LCG. */
static void fill(float* out, size_t n, unsigned seed) {
  unsigned state = seed * 2654435761u + 12345u;
  size_t i;
  for (i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    out[i] = (float)(state >> 8) / 8388608.0f - 1.0f;
  }
}

static esamp_const_view const_view(const float* data, int64_t rows, int64_t cols) {
  esamp_const_view v = {data, rows, cols, cols, ESAMP_DTYPE_F32, ESAMP_DEVICE_CPU};
  return v;
}

static esamp_view view(float* data, int64_t rows, int64_t cols) {
  esamp_view v = {data, rows, cols, cols, ESAMP_DTYPE_F32, ESAMP_DEVICE_CPU};
  return v;
}

static esamp_distiller_params distiller_params(int32_t hidden_size) {
  esamp_distiller_params p = esamp_default_distiller_params();
  p.hidden_size = hidden_size;
  p.rank = kRank;
  p.slots = 2;
  p.seed = 7;
  return p;
}

/* The plain schedule (a seeded slot per group, one update per step) with the last layer's normed
 * input as the target, which the tests below deliver themselves. */
static esamp_exploration_params exploration_params(esamp_mix_mode mix) {
  esamp_exploration_params p = esamp_default_exploration_params();
  p.beta = 0.5f;
  p.mix = mix;
  p.max_rows = kRows;
  p.target.layer = -1;
  p.target.site = ESAMP_SITE_LAYER_INPUT_NORMED;
  p.warm_start = false;
  p.young_updates = 0;
  return p;
}

/* Hands over every tensor the sampler wants, asking at every (layer, site) as an engine would:
 * the source (layer 0) gets x, the target (the last layer) gets y. */
static void deliver_taps(esamp_sampler* s, const float* x, const float* y, size_t rows) {
  int layer, site, wanted = 0;
  for (layer = 0; layer < kLayers; ++layer) {
    for (site = ESAMP_SITE_LAYER_INPUT; site <= ESAMP_SITE_FINAL_NORMED; ++site) {
      bool wants = false;
      CHECK_OK(esamp_wants(s, layer, (esamp_site)site, &wants));
      if (!wants) continue;
      ++wanted;
      CHECK(site == ESAMP_SITE_LAYER_INPUT_NORMED && (layer == 0 || layer == kLayers - 1));
      CHECK_OK(esamp_on_hidden(s, layer, (esamp_site)site,
                               const_view(layer == 0 ? x : y, (int64_t)rows, kHidden)));
    }
  }
  CHECK(wanted == 2);
}

/* One latent step; `final_hidden` [rows, kHidden] is filled from `seed`, then mixed in place. */
static void latent_step(esamp_sampler* s, const esamp_group* groups, size_t rows, unsigned seed,
                        float* final_hidden) {
  float x[kRows * kHidden], y[kRows * kHidden];
  fill(x, rows * kHidden, seed);
  fill(y, rows * kHidden, seed + 1);
  fill(final_hidden, rows * kHidden, seed + 2);
  CHECK_OK(esamp_begin_step(s, groups, rows));
  deliver_taps(s, x, y, rows);
  CHECK_OK(esamp_mix_hidden(s, view(final_hidden, (int64_t)rows, kHidden)));
  CHECK_OK(esamp_end_step(s));
}

/* Rows of a [rows, kHidden] matrix that differ from `seed`'s unmixed values. */
static int rows_changed(const float* final_hidden, size_t rows, unsigned seed) {
  float base[kRows * kHidden];
  size_t r;
  int changed = 0;
  fill(base, rows * kHidden, seed + 2);
  for (r = 0; r < rows; ++r)
    changed += memcmp(base + r * kHidden, final_hidden + r * kHidden, sizeof(float) * kHidden) != 0;
  return changed;
}

static void test_version(void) {
  const uint32_t v = esamp_version();
  char expected[32];
  snprintf(expected, sizeof expected, "%u.%u.%u", (unsigned)(v >> 16), (unsigned)((v >> 8) & 255u),
           (unsigned)(v & 255u));
  CHECK(strcmp(esamp_version_string(), expected) == 0);
  CHECK(strcmp(esamp_status_name(ESAMP_STATUS_BANK_FULL), "ESAMP_STATUS_BANK_FULL") == 0);
  CHECK(strcmp(esamp_status_name((esamp_status)99), "ESAMP_STATUS_UNKNOWN") == 0);
}

static void test_bad_configs(void) {
  const esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
  esamp_distiller_params d = distiller_params(kHidden);
  esamp_exploration_params bad_e = e;
  esamp_sampler* s = (esamp_sampler*)&d; /* not NULL: a failed create must reset it */
  const char* f = "esamp_sampler_create";

  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, NULL), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "out is NULL");
  CHECK_FAILS(esamp_sampler_create(kLayers, NULL, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "distiller is NULL");
  CHECK(s == NULL);
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, NULL, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "exploration is NULL");
  CHECK_FAILS(esamp_sampler_create(0, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "num_layers = 0");

  d = esamp_default_distiller_params(); /* hidden_size has no default */
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "hidden_size = 0");
  d = distiller_params(kHidden);
  d.rank = 0;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "rank = 0");
  d = distiller_params(kHidden);
  d.lr = -1.0f;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "lr = -1");
  d = distiller_params(kHidden);
  d.optimizer = (esamp_optimizer)7;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "optimizer = 7");
  d = distiller_params(kHidden);
  d.struct_size = 0;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "distiller->struct_size = 0");
  d.struct_size = sizeof d + 8; /* a newer esamp.h than this library */
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "distiller->struct_size");

  d = distiller_params(kHidden);
  bad_e.beta = -1.0f;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "beta = -1");
  bad_e = e;
  bad_e.source.site = (esamp_site)5;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "source.site = 5");
  bad_e = e;
  bad_e.target.layer = kLayers;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "target.layer = 4");
  bad_e = e;
  bad_e.sharing = (esamp_sharing)-1;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "sharing = -1");
  bad_e = e;
  bad_e.training_threads = 0;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "training_threads = 0");
  bad_e = e;
  bad_e.latent_mix = (esamp_latent_mix)3;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "latent_mix = 3");
  bad_e = e;
  bad_e.young_repeat = 0;
  CHECK_FAILS(esamp_sampler_create(kLayers, &d, &bad_e, &s), ESAMP_STATUS_INVALID_ARGUMENT, f,
              "young_repeat = 0");
  CHECK(s == NULL);
  /* A caller built against an esamp.h from before training_threads gets its default. */
  bad_e = e;
  bad_e.training_threads = 0;
  bad_e.struct_size = offsetof(esamp_exploration_params, training_threads);
  CHECK_OK(esamp_sampler_create(kLayers, &d, &bad_e, &s));
  esamp_sampler_destroy(s);
}

static void test_null_handles(esamp_sampler* s) {
  const esamp_group group = 0;
  float data[kHidden] = {0};
  bool wants = false;
  esamp_stats stats;
  esamp_group_stats group_stats;
  esamp_filter filter = esamp_default_filter();
  const esamp_status invalid = ESAMP_STATUS_INVALID_ARGUMENT;

  stats.struct_size = sizeof stats;
  group_stats.struct_size = sizeof group_stats;
  CHECK_FAILS(esamp_open_group(NULL, NULL), invalid, "esamp_open_group", "sampler is NULL");
  CHECK_FAILS(esamp_open_group(s, NULL), invalid, "esamp_open_group", "out is NULL");
  CHECK_FAILS(esamp_close_group(NULL, group), invalid, "esamp_close_group", "sampler is NULL");
  CHECK_FAILS(esamp_begin_step(NULL, &group, 1), invalid, "esamp_begin_step", "sampler is NULL");
  CHECK_FAILS(esamp_begin_step(s, NULL, 2), invalid, "esamp_begin_step", "row_groups is NULL");
  CHECK_FAILS(esamp_wants(NULL, 0, ESAMP_SITE_LAYER_INPUT, &wants), invalid, "esamp_wants",
              "sampler is NULL");
  CHECK_FAILS(esamp_wants(s, 0, ESAMP_SITE_LAYER_INPUT, NULL), invalid, "esamp_wants",
              "out is NULL");
  CHECK_FAILS(esamp_on_hidden(NULL, 0, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(data, 1, kHidden)),
              invalid, "esamp_on_hidden", "sampler is NULL");
  CHECK_FAILS(esamp_mix_hidden(NULL, view(data, 1, kHidden)), invalid, "esamp_mix_hidden",
              "sampler is NULL");
  CHECK_FAILS(esamp_mix_logits(NULL, view(data, 1, kHidden), const_view(data, 1, kHidden), &filter),
              invalid, "esamp_mix_logits", "sampler is NULL");
  CHECK_FAILS(esamp_end_step(NULL), invalid, "esamp_end_step", "sampler is NULL");
  CHECK_FAILS(esamp_get_stats(NULL, &stats), invalid, "esamp_get_stats", "sampler is NULL");
  CHECK_FAILS(esamp_get_stats(s, NULL), invalid, "esamp_get_stats", "out is NULL");
  CHECK_FAILS(esamp_get_group_stats(NULL, group, &group_stats), invalid, "esamp_get_group_stats",
              "sampler is NULL");
  CHECK_FAILS(esamp_get_group_stats(s, group, NULL), invalid, "esamp_get_group_stats",
              "out is NULL");
  CHECK_FAILS(esamp_save_bank(NULL, "x"), invalid, "esamp_save_bank", "sampler is NULL");
  CHECK_FAILS(esamp_save_bank(s, NULL), invalid, "esamp_save_bank", "path is NULL");
  CHECK_FAILS(esamp_load_bank(NULL, "x"), invalid, "esamp_load_bank", "sampler is NULL");
  CHECK_FAILS(esamp_load_bank(s, NULL), invalid, "esamp_load_bank", "path is NULL");
  esamp_sampler_destroy(NULL); /* a no-op, as free(NULL) */

  /* A success leaves the last failure's message as it was. */
  CHECK_OK(esamp_wants(s, 0, ESAMP_SITE_LAYER_INPUT, &wants));
  CHECK(!wants); /* outside a step nothing is wanted */
  CHECK(strstr(esamp_last_error(), "path is NULL") != NULL);
}

/* Opens two groups in a two-slot bank and checks the full bank; returns them in `groups`. */
static void test_groups(esamp_sampler* s, esamp_group* groups) {
  esamp_group extra = -1;
  CHECK_OK(esamp_open_group(s, &groups[0]));
  CHECK_OK(esamp_open_group(s, &groups[1]));
  CHECK(groups[0] != groups[1]);
  CHECK_FAILS(esamp_open_group(s, &extra), ESAMP_STATUS_BANK_FULL, "esamp_open_group",
              "all 2 slots are in use");
  CHECK(extra == -1);
  CHECK_OK(esamp_close_group(s, groups[1]));
  CHECK_OK(esamp_open_group(s, &groups[1]));
  CHECK(groups[1] != groups[0]);
  CHECK_FAILS(esamp_close_group(s, 12345), ESAMP_STATUS_INVALID_ARGUMENT, "esamp_close_group",
              "group 12345 is unknown");
}

/* Two latent steps on rows {g0, g0, g1}: the first is left bit for bit (warm-up), the second
 * mixes every row; the counters follow, each group's summing to the sampler's. */
static void test_latent_steps(esamp_sampler* s, const esamp_group* groups) {
  const esamp_group rows[kRows] = {groups[0], groups[0], groups[1]};
  const esamp_group unknown[kRows] = {groups[0], 12345, groups[1]};
  float final_hidden[kRows * kHidden];
  esamp_stats stats;
  esamp_group_stats g0, g1;

  CHECK_FAILS(esamp_begin_step(s, unknown, kRows), ESAMP_STATUS_INVALID_ARGUMENT,
              "esamp_begin_step", "group 12345 is unknown");
  CHECK_FAILS(esamp_end_step(s), ESAMP_STATUS_INVALID_ARGUMENT, "esamp_end_step", "outside a step");

  latent_step(s, rows, kRows, 10, final_hidden);
  CHECK(rows_changed(final_hidden, kRows, 10) == 0);
  latent_step(s, rows, kRows, 20, final_hidden);
  CHECK(rows_changed(final_hidden, kRows, 20) == kRows);

  memset(&stats, 0xff, sizeof stats);
  stats.struct_size = sizeof stats;
  CHECK_OK(esamp_get_stats(s, &stats));
  CHECK(stats.struct_size == sizeof stats);
  CHECK(stats.steps == 2);
  CHECK(stats.rows_trained == 2 * kRows);
  CHECK(stats.rows_mixed == kRows);
  CHECK(stats.rows_skipped_nonfinite == 0);
  CHECK(stats.slot_updates == 4); /* two slots, two steps */
  CHECK(isfinite(stats.last_loss) && stats.last_loss > 0.0);
  CHECK(isfinite(stats.mean_loss) && stats.mean_loss > 0.0);
  stats.struct_size = 0;
  CHECK_FAILS(esamp_get_stats(s, &stats), ESAMP_STATUS_INVALID_ARGUMENT, "esamp_get_stats",
              "out->struct_size = 0");

  memset(&g0, 0xff, sizeof g0);
  memset(&g1, 0xff, sizeof g1);
  g0.struct_size = sizeof g0;
  g1.struct_size = sizeof g1;
  CHECK_OK(esamp_get_group_stats(s, groups[0], &g0));
  CHECK_OK(esamp_get_group_stats(s, groups[1], &g1));
  CHECK(g0.struct_size == sizeof g0);
  CHECK(g0.rows_trained == 4 && g1.rows_trained == 2);
  CHECK(g0.rows_mixed == 2 && g1.rows_mixed == 1);
  CHECK(g0.rows_skipped_nonfinite == 0 && g1.rows_skipped_nonfinite == 0);
  CHECK(g0.slot_updates == 2 && g1.slot_updates == 2);
  CHECK(g0.steps_trained == 2 && g1.steps_trained == 2);
  CHECK(g0.rows_trained + g1.rows_trained == stats.rows_trained);
  CHECK(g0.rows_mixed + g1.rows_mixed == stats.rows_mixed);
  CHECK(g0.slot_updates + g1.slot_updates == stats.slot_updates);
  CHECK(isfinite(g0.last_loss) && g0.last_loss > 0.0);
  CHECK(isfinite(g1.mean_loss) && g1.mean_loss > 0.0);
  CHECK_FAILS(esamp_get_group_stats(s, 12345, &g0), ESAMP_STATUS_INVALID_ARGUMENT,
              "esamp_get_group_stats", "group 12345 is unknown");
  g0.struct_size = sizeof g0 + 1;
  CHECK_FAILS(esamp_get_group_stats(s, groups[0], &g0), ESAMP_STATUS_INVALID_ARGUMENT,
              "esamp_get_group_stats", "out->struct_size = ");
}

/* Every malformed hook call inside a step, then the step completed properly. */
static void test_bad_hooks(esamp_sampler* s, const esamp_group* groups) {
  const esamp_group rows[kRows] = {groups[0], groups[0], groups[1]};
  float x[kRows * (kHidden + 1)];
  esamp_const_view bad;
  esamp_view bad_out;
  const esamp_status invalid = ESAMP_STATUS_INVALID_ARGUMENT;
  const char* on_hidden = "esamp_on_hidden";

  fill(x, kRows * (kHidden + 1), 30);
  CHECK_OK(esamp_begin_step(s, rows, kRows));
  CHECK_FAILS(esamp_begin_step(s, rows, kRows), invalid, "esamp_begin_step", "was not ended");
  CHECK_FAILS(
      esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(x, kRows, kHidden + 1)),
      invalid, on_hidden, "has 9 columns, expected 8");
  CHECK_FAILS(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(x, 2, kHidden)),
              invalid, on_hidden, "has 2 rows, the step has 3");
  bad = const_view(x, kRows, kHidden);
  bad.stride = kHidden - 1;
  CHECK_FAILS(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, bad), invalid, on_hidden,
              "row stride 7");
  bad = const_view(x, kRows, kHidden);
  bad.dtype = (esamp_dtype)9;
  CHECK_FAILS(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, bad), invalid, on_hidden,
              "hidden.dtype = 9");
  bad = const_view(x, kRows, kHidden);
  bad.device = ESAMP_DEVICE_CUDA;
  CHECK_FAILS(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, bad), invalid, on_hidden,
              "is on device cuda, expected cpu");
  bad = const_view(NULL, kRows, kHidden);
  CHECK_FAILS(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, bad), invalid, on_hidden,
              "data is null");
  CHECK_FAILS(esamp_on_hidden(s, 0, (esamp_site)7, const_view(x, kRows, kHidden)), invalid,
              on_hidden, "site = 7");
  CHECK_FAILS(esamp_on_hidden(s, 2, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(x, kRows, kHidden)),
              invalid, on_hidden, "not a tap");
  CHECK_FAILS(esamp_load_bank(s, "unused.bank"), invalid, "esamp_load_bank", "inside a step");

  CHECK_OK(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(x, kRows, kHidden)));
  CHECK_FAILS(esamp_end_step(s), invalid, "esamp_end_step", "the target tap (layer 3");
  bad_out = view(x, kRows, kHidden);
  bad_out.cols = kHidden + 1;
  CHECK_FAILS(esamp_mix_hidden(s, bad_out), invalid, "esamp_mix_hidden", "final_hidden: has 9");
  CHECK_OK(esamp_on_hidden(s, kLayers - 1, ESAMP_SITE_LAYER_INPUT_NORMED,
                           const_view(x, kRows, kHidden)));
  CHECK_OK(esamp_end_step(s));

  /* A step with no rows needs no groups and no taps. */
  CHECK_OK(esamp_begin_step(s, NULL, 0));
  CHECK_OK(esamp_end_step(s));
}

/* Saves the bank, fails to load three bad files, runs a step, loads the bank back and runs the
 * same step: the outputs must be equal bit for bit (so the failed loads changed nothing), and
 * differ from a third run on the bank trained further (so the load did restore something). */
static void test_bank_round_trip(esamp_sampler* s, const esamp_group* groups, const char* dir) {
  const esamp_group rows[kRows] = {groups[0], groups[0], groups[1]};
  float first[kRows * kHidden], again[kRows * kHidden], later[kRows * kHidden];
  char path[1024], missing[1024], garbage[1024], unwritable[1024];
  esamp_sampler* other = NULL;
  const esamp_distiller_params wide = distiller_params(2 * kHidden);
  const esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
  FILE* file;

  snprintf(path, sizeof path, "%s/esamp_capi_test.bank", dir);
  snprintf(missing, sizeof missing, "%s/esamp_capi_test_missing.bank", dir);
  snprintf(garbage, sizeof garbage, "%s/esamp_capi_test_garbage.bank", dir);
  snprintf(unwritable, sizeof unwritable, "%s/no_such_directory/x.bank", dir);
  file = fopen(garbage, "wb");
  CHECK(file != NULL);
  if (file) {
    fputs("not a bank at all", file);
    fclose(file);
  }

  CHECK_OK(esamp_save_bank(s, path));
  CHECK_FAILS(esamp_save_bank(s, unwritable), ESAMP_STATUS_FILE_ERROR, "esamp_save_bank",
              "cannot open for writing");
  CHECK_FAILS(esamp_load_bank(s, missing), ESAMP_STATUS_FILE_ERROR, "esamp_load_bank",
              "cannot open for reading");
  CHECK_FAILS(esamp_load_bank(s, garbage), ESAMP_STATUS_FILE_ERROR, "esamp_load_bank",
              "not an esamp bank file");
  CHECK_OK(esamp_sampler_create(kLayers, &wide, &e, &other));
  CHECK_FAILS(esamp_load_bank(other, path), ESAMP_STATUS_FILE_ERROR, "esamp_load_bank",
              "hidden_size = 8, this bank has 16");
  esamp_sampler_destroy(other);

  latent_step(s, rows, kRows, 40, first);
  CHECK_OK(esamp_load_bank(s, path));
  latent_step(s, rows, kRows, 40, again);
  latent_step(s, rows, kRows, 40, later);
  CHECK(memcmp(first, again, sizeof first) == 0);
  CHECK(memcmp(first, later, sizeof first) != 0);
  remove(path);
  remove(garbage);
}

/* Candidates mode: the filter keeps kTopK logits per row, mixed once the slot is warm; every
 * other logit becomes -inf. */
static void test_candidates(void) {
  const esamp_distiller_params d = distiller_params(kHidden);
  esamp_exploration_params e = exploration_params(ESAMP_MIX_CANDIDATES);
  esamp_sampler* s = NULL;
  esamp_group group, rows[2];
  float x[2 * kHidden], y[2 * kHidden], lm_head[kVocab * kHidden], logits[2 * kVocab],
      base[2 * kVocab];
  esamp_filter filter = esamp_default_filter();
  int step, i;

  e.max_rows = 2;
  CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
  if (!s) return;
  CHECK_OK(esamp_open_group(s, &group));
  rows[0] = rows[1] = group;
  fill(lm_head, kVocab * kHidden, 50);
  filter.top_k = kTopK;
  for (step = 0; step < 2; ++step) {
    int kept = 0, changed = 0;
    fill(x, 2 * kHidden, 60 + 3 * (unsigned)step);
    fill(y, 2 * kHidden, 61 + 3 * (unsigned)step);
    fill(base, 2 * kVocab, 62 + 3 * (unsigned)step);
    memcpy(logits, base, sizeof logits);
    CHECK_OK(esamp_begin_step(s, rows, 2));
    deliver_taps(s, x, y, 2);
    if (step == 0) {
      filter.top_p = 0.0f;
      CHECK_FAILS(esamp_mix_logits(s, view(logits, 2, kVocab), const_view(lm_head, kVocab, kHidden),
                                   &filter),
                  ESAMP_STATUS_INVALID_ARGUMENT, "esamp_mix_logits", "top_p = 0");
      filter.top_p = 1.0f;
      CHECK_FAILS(
          esamp_mix_logits(s, view(logits, 2, kVocab), const_view(lm_head, kVocab, kHidden), NULL),
          ESAMP_STATUS_INVALID_ARGUMENT, "esamp_mix_logits", "filter is NULL");
      CHECK_FAILS(esamp_mix_hidden(s, view(x, 2, kHidden)), ESAMP_STATUS_INVALID_ARGUMENT,
                  "esamp_mix_hidden", "mix = candidates");
      /* Found by the C API fuzzer: a NaN in a later row failed the call after the earlier rows
       * were written, and the step counted as mixed, so the valid call below was refused. */
      logits[kVocab + 1] = NAN;
      CHECK_FAILS(esamp_mix_logits(s, view(logits, 2, kVocab), const_view(lm_head, kVocab, kHidden),
                                   &filter),
                  ESAMP_STATUS_INVALID_ARGUMENT, "esamp_mix_logits", "must be finite or -inf");
      logits[kVocab + 1] = base[kVocab + 1];
      CHECK(memcmp(logits, base, sizeof logits) == 0);
    }
    if (step == 0) {
      CHECK_OK(esamp_mix_logits(s, view(logits, 2, kVocab), const_view(lm_head, kVocab, kHidden),
                                &filter));
    } else { /* the mode-free mixing points: the first does nothing in candidates mode */
      CHECK_OK(esamp_before_lm_head(s, view(x, 2, kHidden)));
      CHECK_FAILS(esamp_after_lm_head(s, view(logits, 2, kVocab),
                                      const_view(lm_head, kVocab, kHidden), NULL),
                  ESAMP_STATUS_INVALID_ARGUMENT, "esamp_after_lm_head", "the filter is null");
      CHECK_OK(esamp_after_lm_head(s, view(logits, 2, kVocab), const_view(lm_head, kVocab, kHidden),
                                   &filter));
    }
    CHECK_OK(esamp_end_step(s));
    for (i = 0; i < 2 * kVocab; ++i) {
      if (isinf(logits[i]) && logits[i] < 0.0f) continue;
      ++kept;
      changed += logits[i] != base[i];
    }
    CHECK(kept == 2 * kTopK);
    CHECK(changed == (step == 0 ? 0 : 2 * kTopK)); /* step 0: the slot is still warming up */
  }
  {
    esamp_filter draw;
    draw.struct_size = sizeof draw;
    filter.temperature = 0.7f;
    CHECK_OK(esamp_sampling_filter(s, &filter, &draw));
    CHECK(draw.top_k == 0 && draw.top_p == 1.0f && draw.min_p == 0.0f);
    CHECK(draw.temperature == 0.7f);
  }
  esamp_sampler_destroy(s);
}

/* Per-group beta: a group opened at beta 0 is left bit for bit beside a mixed one; esamp_set_beta
 * switches it on from the next step; a non-finite beta is refused. */
static void test_beta(void) {
  const esamp_distiller_params d = distiller_params(kHidden);
  const esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
  esamp_sampler* s = NULL;
  esamp_group mixed = -1, off = -1, extra = -1;
  esamp_group rows[kRows];
  float h[kRows * kHidden];
  const esamp_status invalid = ESAMP_STATUS_INVALID_ARGUMENT;
  int step;
  CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
  if (!s) return;
  CHECK_OK(esamp_open_group_with_beta(s, 1.0f, &mixed));
  CHECK_OK(esamp_open_group_with_beta(s, 0.0f, &off));
  rows[0] = off;
  rows[1] = mixed;
  rows[2] = off;
  for (step = 0; step < 4; ++step) {
    if (step == 2) CHECK_OK(esamp_set_beta(s, off, 2.0f));
    latent_step(s, rows, kRows, 900 + 10 * (unsigned)step, h);
    if (step == 0) continue; /* warm-up: nothing mixed yet */
    /* Row 1 always; rows 0 and 2 once their group's beta is no longer 0. */
    CHECK(rows_changed(h, kRows, 900 + 10 * (unsigned)step) == (step < 2 ? 1 : 3));
  }
  { /* the mode-free mixing points mix in latent mode, with no filter needed */
    float x[kRows * kHidden], y[kRows * kHidden];
    esamp_filter f = esamp_default_filter(), draw;
    fill(x, kRows * kHidden, 990);
    fill(y, kRows * kHidden, 991);
    fill(h, kRows * kHidden, 992);
    CHECK_OK(esamp_begin_step(s, rows, kRows));
    deliver_taps(s, x, y, kRows);
    CHECK_OK(esamp_before_lm_head(s, view(h, kRows, kHidden)));
    CHECK_OK(esamp_after_lm_head(s, view(y, kRows, kHidden), const_view(x, kRows, kHidden), NULL));
    CHECK_OK(esamp_end_step(s));
    CHECK(rows_changed(h, kRows, 990) == 3);
    f.top_k = 5;
    draw.struct_size = sizeof draw;
    CHECK_OK(esamp_sampling_filter(s, &f, &draw));
    CHECK(draw.top_k == 5); /* latent mode samples with the engine's filter as it is */
  }
  CHECK_FAILS(esamp_set_beta(s, off, INFINITY), invalid, "esamp_set_beta",
              "beta = inf: must be finite and >= 0");
  CHECK_FAILS(esamp_set_beta(s, 777, 1.0f), invalid, "esamp_set_beta", "group 777 is unknown");
  CHECK_FAILS(esamp_open_group_with_beta(s, -1.0f, &extra), invalid, "esamp_open_group_with_beta",
              "beta = -1: must be finite and >= 0");
  CHECK_FAILS(esamp_open_group_with_beta(s, 1.0f, NULL), invalid, "esamp_open_group_with_beta",
              "out is NULL");
  CHECK_FAILS(esamp_set_beta(NULL, off, 1.0f), invalid, "esamp_set_beta", "sampler is NULL");
  esamp_sampler_destroy(s);
}

/* A CUDA sampler where the library has CUDA; a clear ESAMP_STATUS_UNSUPPORTED where it has not.
 * Creating one needs no device work beyond allocation, so only the no-CUDA build can check the
 * outcome here; with CUDA it is the struct checks (the GPU tests drive the sampler itself). */
static void test_cuda_create(void) {
  const esamp_distiller_params d = distiller_params(kHidden);
  const esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
  esamp_cuda_params c = esamp_default_cuda_params();
  esamp_sampler* s = (esamp_sampler*)&c; /* must be reset to NULL on failure */
  CHECK(c.struct_size == sizeof c);
  CHECK(c.stream == NULL);
  CHECK(c.device == -1);
  c.device = -2;
  CHECK_FAILS(esamp_sampler_create_cuda(kLayers, &d, &e, &c, &s), ESAMP_STATUS_INVALID_ARGUMENT,
              "esamp_sampler_create_cuda", "cuda->device = -2");
  CHECK(s == NULL);
  CHECK_FAILS(esamp_sampler_create_cuda(kLayers, &d, &e, NULL, &s), ESAMP_STATUS_INVALID_ARGUMENT,
              "esamp_sampler_create_cuda", "cuda is NULL");
  if (!esamp_has_cuda()) {
    c.device = -1;
    CHECK_FAILS(esamp_sampler_create_cuda(kLayers, &d, &e, &c, &s), ESAMP_STATUS_UNSUPPORTED,
                "esamp_sampler_create_cuda", "built without CUDA");
    CHECK(s == NULL);
  }
  CHECK(strcmp(esamp_status_name(ESAMP_STATUS_UNSUPPORTED), "ESAMP_STATUS_UNSUPPORTED") == 0);
}

/* The training and mixing options reach the sampler: a young slot is updated young_repeat times
 * per step, with warm_start a group starts from the last trained group closed, norm_kept mixing
 * keeps each row's norm. */
static void test_exploration_options(void) {
  const esamp_distiller_params d = distiller_params(kHidden);
  const struct {
    bool warm_start;
    int32_t young_updates, young_repeat;
    int64_t slot_updates; /* after one step of one group */
  } cases[] = {{false, 0, 1, 1}, {true, 0, 1, 1}, {false, 4, 3, 3}};
  int warm;
  size_t c;
  for (c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
    esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
    esamp_sampler* s = NULL;
    esamp_group g = -1;
    esamp_group rows[kRows];
    float final_hidden[kRows * kHidden];
    esamp_stats stats;
    size_t r;
    e.warm_start = cases[c].warm_start;
    e.young_updates = cases[c].young_updates;
    e.young_repeat = cases[c].young_repeat;
    CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
    if (!s) continue;
    CHECK_OK(esamp_open_group(s, &g));
    for (r = 0; r < kRows; ++r) rows[r] = g;
    latent_step(s, rows, kRows, 30, final_hidden);
    stats.struct_size = sizeof stats;
    CHECK_OK(esamp_get_stats(s, &stats));
    CHECK(stats.slot_updates == cases[c].slot_updates);
    esamp_sampler_destroy(s);
  }
  /* The same first step of a group opened after a trained one closed: mixed as the first group's
   * was with seeded slots, otherwise with the closed group's distiller. */
  for (warm = 0; warm < 2; ++warm) {
    esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
    esamp_sampler* s = NULL;
    esamp_group g = -1;
    esamp_group rows[kRows];
    float first[kRows * kHidden], again[kRows * kHidden];
    size_t r;
    e.warm_start = warm == 1;
    e.warmup_updates = 0; /* mix from a slot's first step */
    CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
    if (!s) continue;
    CHECK_OK(esamp_open_group(s, &g));
    for (r = 0; r < kRows; ++r) rows[r] = g;
    latent_step(s, rows, kRows, 70, first);
    CHECK_OK(esamp_close_group(s, g));
    CHECK_OK(esamp_open_group(s, &g));
    for (r = 0; r < kRows; ++r) rows[r] = g;
    latent_step(s, rows, kRows, 70, again);
    CHECK((memcmp(first, again, sizeof first) != 0) == (warm == 1));
    esamp_sampler_destroy(s);
  }
  {
    esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
    esamp_sampler* s = NULL;
    esamp_group g = -1;
    esamp_group rows[kRows];
    float final_hidden[kRows * kHidden], base[kRows * kHidden];
    size_t r, j;
    e.latent_mix = ESAMP_LATENT_MIX_NORM_KEPT;
    CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
    if (!s) return;
    CHECK_OK(esamp_open_group(s, &g));
    for (r = 0; r < kRows; ++r) rows[r] = g;
    latent_step(s, rows, kRows, 40, final_hidden);
    latent_step(s, rows, kRows, 50, final_hidden);
    CHECK(rows_changed(final_hidden, kRows, 50) == kRows);
    fill(base, kRows * kHidden, 50 + 2);
    for (r = 0; r < kRows; ++r) {
      double before = 0.0, after = 0.0;
      for (j = 0; j < kHidden; ++j) {
        before += (double)base[r * kHidden + j] * base[r * kHidden + j];
        after += (double)final_hidden[r * kHidden + j] * final_hidden[r * kHidden + j];
      }
      CHECK(fabs(sqrt(after) - sqrt(before)) <= 1e-5 * sqrt(before));
    }
    esamp_sampler_destroy(s);
  }
}

/* The defaults: the source is layer 0's normed input, the target the final-normed rows that
 * esamp_before_lm_head hands over itself; a slot is updated twice per step while young. */
static void test_defaults(void) {
  const esamp_distiller_params d = distiller_params(kHidden);
  const esamp_exploration_params e = esamp_default_exploration_params();
  esamp_sampler* s = NULL;
  esamp_group g = -1;
  esamp_group rows[kRows];
  float x[kRows * kHidden], final_hidden[kRows * kHidden];
  esamp_stats stats;
  bool wants = false;
  size_t r;
  CHECK(e.beta == 0.5f && e.warm_start && e.young_updates == 16 && e.young_repeat == 2);
  CHECK(e.target.layer == -1 && e.target.site == ESAMP_SITE_FINAL_NORMED);
  CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
  if (!s) return;
  CHECK_OK(esamp_open_group(s, &g));
  for (r = 0; r < kRows; ++r) rows[r] = g;
  fill(x, kRows * kHidden, 60);
  fill(final_hidden, kRows * kHidden, 61);
  CHECK_OK(esamp_begin_step(s, rows, kRows));
  CHECK_OK(esamp_wants(s, kLayers - 1, ESAMP_SITE_FINAL_NORMED, &wants));
  CHECK(wants);
  CHECK_OK(esamp_on_hidden(s, 0, ESAMP_SITE_LAYER_INPUT_NORMED, const_view(x, kRows, kHidden)));
  CHECK_OK(esamp_before_lm_head(s, view(final_hidden, kRows, kHidden)));
  CHECK_OK(esamp_end_step(s));
  stats.struct_size = sizeof stats;
  CHECK_OK(esamp_get_stats(s, &stats));
  CHECK(stats.rows_trained == kRows);
  CHECK(stats.slot_updates == 2); /* the group's slot twice (young) */
  esamp_sampler_destroy(s);
}

int main(int argc, char** argv) {
  const esamp_distiller_params d = distiller_params(kHidden);
  esamp_exploration_params e = exploration_params(ESAMP_MIX_LATENT);
  int mode;

  if (argc != 2) {
    fprintf(stderr, "usage: %s <directory for temporary files>\n", argv[0]);
    return 2;
  }
  test_version();
  test_bad_configs();
  /* Every check with training on the calling thread, on a worker thread, then shared by the
     calling thread and one more. */
  for (mode = 0; mode < 3; ++mode) {
    esamp_sampler* s = NULL;
    esamp_group groups[2] = {-1, -1};
    e.background_training = mode == 1;
    e.training_threads = mode == 2 ? 2 : 1;
    CHECK_OK(esamp_sampler_create(kLayers, &d, &e, &s));
    if (!s) continue;
    test_null_handles(s);
    test_groups(s, groups);
    test_latent_steps(s, groups);
    test_bad_hooks(s, groups);
    test_bank_round_trip(s, groups, argv[1]);
    esamp_sampler_destroy(s);
  }
  test_candidates();
  test_beta();
  test_exploration_options();
  test_defaults();
  test_cuda_create();

  if (g_failures) {
    fprintf(stderr, "%d of %d checks failed\n", g_failures, g_checks);
    return 1;
  }
  printf("all %d checks passed\n", g_checks);
  return 0;
}
