// libFuzzer entry point for the C API as a state machine. The input decodes into a sequence of
// calls (create with random parameters, open/close groups, begin_step with random group ids and
// row counts, wants/on_hidden with random layers, sites, shapes, strides, dtypes and NaN/Inf rows,
// mix_hidden/mix_logits, end_step, get_stats and get_group_stats, save/load, destroy). A model of
// the sampler's state predicts whether each call is valid; the fuzzer checks that every call
// returns the predicted status with a message, that a failed call changes nothing (state, outputs,
// bank), that the counters add up, and that after an error (at once or some calls later, as the
// input decides; always at the end) a complete valid step still succeeds.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "esamp/detail/binary_file.hpp"
#include "esamp/esamp.h"
#include "esamp/tensor.hpp"
#include "temp_file.hpp"

extern "C" {
esamp_status fuzz_esamp_wants(const esamp_sampler* sampler, int32_t layer, int site, bool* out);
esamp_status fuzz_esamp_on_hidden(esamp_sampler* sampler, int32_t layer, int site,
                                  esamp_const_view hidden);
}

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "capi_fuzz: %s (esamp_last_error: \"%s\")\n", what.c_str(),
               esamp_last_error());
  std::abort();
}

// A call's status against the model's prediction; a failure must carry "<function>: <message>".
void expect(const char* function, esamp_status status, bool valid,
            esamp_status failure = ESAMP_STATUS_INVALID_ARGUMENT) {
  if (valid && status != ESAMP_STATUS_OK)
    finding(std::string(function) + " refused a valid call with " + esamp_status_name(status));
  if (!valid && status != failure)
    finding(std::string(function) + " returned " + esamp_status_name(status) + ", expected " +
            esamp_status_name(failure));
  if (status != ESAMP_STATUS_OK) {
    const std::string prefix = std::string(function) + ": ";
    if (std::strncmp(esamp_last_error(), prefix.c_str(), prefix.size()) != 0 ||
        std::strlen(esamp_last_error()) <= prefix.size())
      finding(std::string(function) + " failed without a message naming it");
  }
}

// A matrix the fuzzer hands over: the view as declared and storage large enough for it.
struct Buffer {
  std::vector<std::uint8_t> storage;
  esamp_view view{};
  bool well_formed = false;  // a CPU view with a sane stride, dtype and data, of any row count
  bool valid = false;        // well formed, and of the expected shape

  // Copied as bytes: the enum fields may hold values outside their enums.
  esamp_const_view const_view() const {
    static_assert(sizeof(esamp_const_view) == sizeof(esamp_view));
    esamp_const_view v;
    std::memcpy(&v, &view, sizeof v);
    return v;
  }
};

std::size_t element_size(int dtype) { return dtype == ESAMP_DTYPE_F32 ? 4 : 2; }

class Driver {
 public:
  explicit Driver(FuzzedDataProvider& in) : in_(in) {}

  ~Driver() { esamp_sampler_destroy(sampler_); }

  void run() {
    create();
    for (int op = 0; op < 256 && in_.remaining_bytes() > 0; ++op) {
      switch (in_.ConsumeIntegralInRange(0, 12)) {
        case 0:
          open_group();
          break;
        case 1:
          close_group();
          break;
        case 2:
          begin_step();
          break;
        case 3:
          wants();
          break;
        case 4:
          on_hidden(true);
          break;
        case 5:
          on_hidden(false);
          break;
        case 6:
          mix();
          break;
        case 7:
          end_step();
          break;
        case 8:
          get_stats();
          break;
        case 9:
          save();
          break;
        case 10:
          load();
          break;
        case 11:
          create();
          break;
        default:
          valid_step();
          break;
      }
      // After an error, the input decides whether a valid step follows at once (checked) or the
      // calls go on from the state the error left, to reach deeper states.
      if (failed_) {
        failed_ = false;
        if (in_.ConsumeBool()) valid_step();
      }
    }
    valid_step();
    get_stats();
  }

 private:
  // `valid` unless the input picks one of `others` (one time in eight); forced while recovering.
  template <class T>
  T choose(T valid, std::initializer_list<T> others) {
    if (forced_ || in_.ConsumeIntegralInRange(0, 7) < 7) return valid;
    return *(others.begin() + in_.ConsumeIntegralInRange<std::size_t>(0, others.size() - 1));
  }
  bool chance(int one_in) { return !forced_ && in_.ConsumeIntegralInRange(1, one_in) == one_in; }

  void check(const char* function, esamp_status status, bool valid,
             esamp_status failure = ESAMP_STATUS_INVALID_ARGUMENT) {
    expect(function, status, valid, failure);
    if (status != ESAMP_STATUS_OK) {
      if (forced_) finding(std::string(function) + " failed while recovering with a valid step");
      failed_ = true;
    }
  }

  // A random creation (checked for status and handle only), then the sampler the model follows.
  void create() {
    esamp_sampler_destroy(sampler_);
    sampler_ = nullptr;
    num_layers_ = in_.ConsumeIntegralInRange(2, 5);
    esamp_distiller_params d = esamp_default_distiller_params();
    d.hidden_size = in_.ConsumeIntegralInRange(1, 6);
    d.rank = in_.ConsumeIntegralInRange(1, d.hidden_size);
    d.slots = in_.ConsumeIntegralInRange(1, 3);
    d.output_norm = in_.ConsumeBool();
    d.optimizer = in_.ConsumeBool() ? ESAMP_OPTIMIZER_SGD : ESAMP_OPTIMIZER_ADAMW;
    d.lr = in_.PickValueInArray({1e-3f, 0.1f, 10.0f});
    d.seed = in_.ConsumeIntegral<std::uint8_t>();
    esamp_exploration_params e = esamp_default_exploration_params();
    e.beta = in_.PickValueInArray({0.0f, 0.5f, 1.5f});
    const int source = in_.ConsumeIntegralInRange(0, num_layers_ - 2);
    const int target = in_.ConsumeIntegralInRange(source + 1, num_layers_ - 1);
    e.source = {source, static_cast<esamp_site>(in_.ConsumeIntegralInRange(0, 2))};
    e.target = {in_.ConsumeBool() ? target - num_layers_ : target,
                static_cast<esamp_site>(in_.ConsumeIntegralInRange(0, 2))};
    e.mix = in_.ConsumeBool() ? ESAMP_MIX_CANDIDATES : ESAMP_MIX_LATENT;
    e.sharing =
        in_.ConsumeIntegralInRange(0, 3) == 0 ? ESAMP_SHARING_GLOBAL : ESAMP_SHARING_PER_GROUP;
    e.warmup_updates = in_.ConsumeIntegralInRange(0, 2);
    e.max_rows = in_.ConsumeIntegralInRange(1, 6);
    e.background_training = in_.ConsumeIntegralInRange(0, 7) == 0;  // thread handoffs are slow
    if (chance(3)) try_invalid_create(d, e);
    esamp_sampler* out = nullptr;
    check("esamp_sampler_create", esamp_sampler_create(num_layers_, &d, &e, &out), true);
    if (out == nullptr) finding("esamp_sampler_create succeeded without a sampler");
    sampler_ = out;
    hidden_ = d.hidden_size;
    slots_ = e.sharing == ESAMP_SHARING_GLOBAL ? 1 : d.slots;
    per_group_ = e.sharing == ESAMP_SHARING_PER_GROUP;
    max_rows_ = e.max_rows;
    mix_ = e.mix;
    beta_ = e.beta;
    source_ = {e.source.layer, e.source.site};
    target_ = {e.target.layer < 0 ? e.target.layer + num_layers_ : e.target.layer, e.target.site};
    open_.clear();
    closed_.clear();
    in_step_ = false;
    rows_.clear();
    steps_ = rows_ended_ = 0;
    saved_ = false;
    std::remove(bank_.path().c_str());  // another sampler's save
  }

  // One field set to a value outside what its type or range allows, or a bad struct_size: the
  // call may succeed (a value that happens to be fine) but must never crash or leave a handle
  // behind on failure.
  void try_invalid_create(esamp_distiller_params d, esamp_exploration_params e) {
    // Values past each range's ends that stay small enough to allocate.
    const int raw = in_.PickValueInArray({-3, -1, 0, 1, 2, 4, 7, 65537, 1048577, INT32_MIN});
    const int size = in_.PickValueInArray({-1, 0, 7, 64});
    const float value = in_.PickValueInArray({kNaN, kInf, -1.0f, 0.0f, 1.0f, 2.0f, 1e30f});
    switch (in_.ConsumeIntegralInRange(0, 16)) {
      case 0:
        d.struct_size = static_cast<std::size_t>(raw);
        break;
      case 1:
        e.struct_size = static_cast<std::size_t>(raw);
        break;
      case 2:
        d.hidden_size = size;
        break;
      case 3:
        d.rank = size;
        break;
      case 4:
        d.slots = raw;
        break;
      case 5:
        std::memcpy(&d.optimizer, &raw, sizeof raw);
        break;
      case 6:
        d.lr = value;
        break;
      case 7:
        d.adam_beta1 = value;
        break;
      case 8:
        d.adam_eps = value;
        break;
      case 9:
        d.init_std = value;
        break;
      case 10:
        e.beta = value;
        break;
      case 11:
        e.source.layer = raw;
        break;
      case 12:
        std::memcpy(&e.target.site, &raw, sizeof raw);
        break;
      case 13:
        std::memcpy(&e.mix, &raw, sizeof raw);
        break;
      case 14:
        std::memcpy(&e.sharing, &raw, sizeof raw);
        break;
      case 15:
        e.max_rows = raw;
        break;
      default:
        e.warmup_updates = raw;
        break;
    }
    const int layers = chance(4) ? raw : num_layers_;
    esamp_sampler* out = reinterpret_cast<esamp_sampler*>(&d);  // must be overwritten
    const esamp_status status = esamp_sampler_create(layers, &d, &e, &out);
    if (status == ESAMP_STATUS_OK) {
      if (out == nullptr) finding("esamp_sampler_create succeeded without a sampler");
      esamp_sampler_destroy(out);
    } else {
      expect("esamp_sampler_create", status, false);
      if (out != nullptr) finding("a failed esamp_sampler_create left *out set");
    }
  }

  bool is_open(esamp_group g) const {
    return std::find(open_.begin(), open_.end(), g) != open_.end();
  }

  // A group id: mostly an open one, else a closed or made-up one.
  esamp_group pick_group() {
    if (!open_.empty() && (forced_ || in_.ConsumeIntegralInRange(0, 7) > 0))
      return open_[in_.ConsumeIntegralInRange<std::size_t>(0, open_.size() - 1)];
    if (!closed_.empty() && in_.ConsumeBool())
      return closed_[in_.ConsumeIntegralInRange<std::size_t>(0, closed_.size() - 1)];
    return in_.ConsumeIntegral<esamp_group>();
  }

  void open_group() {
    const bool full = per_group_ && static_cast<int>(open_.size()) == slots_;
    esamp_group g = -1;
    esamp_group* out = chance(16) ? nullptr : &g;
    const esamp_status status = esamp_open_group(sampler_, out);
    check("esamp_open_group", status, out && !full,
          out ? ESAMP_STATUS_BANK_FULL : ESAMP_STATUS_INVALID_ARGUMENT);
    if (status == ESAMP_STATUS_OK) {
      if (is_open(g)) finding("esamp_open_group returned an id that is already open");
      open_.push_back(g);
    }
  }

  void close_group() {
    const esamp_group g = pick_group();
    const bool in_rows = in_step_ && std::count(rows_.begin(), rows_.end(), g) > 0;
    const esamp_status status = esamp_close_group(sampler_, g);
    check("esamp_close_group", status, is_open(g) && !in_rows);
    if (status == ESAMP_STATUS_OK) {
      open_.erase(std::find(open_.begin(), open_.end(), g));
      closed_.push_back(g);
    }
  }

  void begin_step() {
    if (forced_ && open_.empty()) open_group();
    const int n = forced_ ? std::min<int>(max_rows_, static_cast<int>(open_.size()) + 1)
                          : in_.ConsumeIntegralInRange(0, max_rows_ + 1);
    std::vector<esamp_group> rows;
    for (int i = 0; i < n; ++i) rows.push_back(pick_group());
    const bool null_rows = n > 0 && chance(16);
    const bool valid =
        !in_step_ && n <= max_rows_ && !null_rows &&
        std::all_of(rows.begin(), rows.end(), [&](esamp_group g) { return is_open(g); });
    check("esamp_begin_step",
          esamp_begin_step(sampler_, null_rows ? nullptr : rows.data(), rows.size()), valid);
    if (valid) {
      in_step_ = true;
      rows_ = rows;
      have_source_ = have_target_ = mixed_ = false;
    }
  }

  bool is_tap(esamp_tap tap, int layer, int site) const {
    return tap.layer == layer && static_cast<int>(tap.site) == site;
  }

  void wants() {
    const int layer = in_.ConsumeIntegralInRange(-2, num_layers_);
    const int site = in_.ConsumeIntegralInRange(-1, 4);
    bool out = false;
    check("esamp_wants", fuzz_esamp_wants(sampler_, layer, site, &out), site >= 0 && site <= 3);
    const bool expected =
        in_step_ && (is_tap(source_, layer, site) || is_tap(target_, layer, site));
    if (!failed_ && out != expected) finding("esamp_wants answered wrongly");
  }

  // Fills a matrix of `rows` x `cols` (as the fuzzer declares it, maybe wrongly) with values from
  // the input; some rows are NaN or Inf, in bursts.
  Buffer make_buffer(std::int64_t rows, std::int64_t cols, bool finite) {
    Buffer b;
    const std::int64_t want_rows = rows, want_cols = cols;
    rows = choose<std::int64_t>(rows, {rows + 1, rows - 1, 0});
    cols = choose<std::int64_t>(cols, {cols + 1, cols - 1, 0});
    const std::int64_t stride = choose<std::int64_t>(cols, {cols + 1, cols + 3, cols - 1});
    const int dtype =
        forced_ ? ESAMP_DTYPE_F32 : choose(in_.ConsumeIntegralInRange(0, 2), {-1, 3, 1 << 20});
    const int device = choose(0, {1, 2, -1});
    const bool null_data = chance(16);
    b.well_formed = rows >= 0 && cols == want_cols && stride >= cols && dtype >= 0 && dtype <= 2 &&
                    device == 0 && (rows == 0 || !null_data);
    b.valid = b.well_formed && rows == want_rows;
    const std::int64_t elements =
        rows > 0 && cols >= 0
            ? rows * std::max<std::int64_t>(std::max<std::int64_t>(stride, cols), 1)
            : 0;
    b.storage.assign(static_cast<std::size_t>(elements) * element_size(dtype), 0);
    b.view.data = null_data ? nullptr : b.storage.data();
    b.view.rows = rows;
    b.view.cols = cols;
    b.view.stride = stride;
    std::memcpy(&b.view.dtype, &dtype, sizeof dtype);
    std::memcpy(&b.view.device, &device, sizeof device);
    if (elements == 0 || cols == 0 || dtype < 0 || dtype > 2 || stride < cols) return b;
    const esamp::MatrixView fill(b.storage.data(), rows, cols, stride,
                                 static_cast<esamp::DType>(dtype));
    const std::uint8_t seed = in_.ConsumeIntegral<std::uint8_t>();
    const bool burst = !finite && !forced_ && in_.ConsumeIntegralInRange(0, 3) == 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float poison = !burst ? 0.0f : in_.PickValueInArray({0.0f, kNaN, kInf, -kInf, 0.0f});
      for (std::int64_t c = 0; c < cols; ++c) {
        const float value = static_cast<float>((seed + 7 * r + 3 * c) % 17) / 8.0f - 1.0f;
        fill.set(r, c, poison != 0.0f && c == (r + seed) % cols ? poison : value);
      }
    }
    return b;
  }

  void on_hidden(bool source) {
    const esamp_tap& tap = source ? source_ : target_;
    const int layer = choose(tap.layer, {tap.layer + 1, tap.layer - num_layers_, -1, num_layers_});
    const int site =
        choose(static_cast<int>(tap.site), {(static_cast<int>(tap.site) + 1) % 4, -1, 4});
    const Buffer b = make_buffer(static_cast<std::int64_t>(rows_.size()), hidden_, false);
    const bool is_source = is_tap(source_, layer, site), is_target = is_tap(target_, layer, site);
    bool& delivered = is_source ? have_source_ : have_target_;
    const bool valid = in_step_ && b.valid && (is_source || is_target) && !delivered;
    check("esamp_on_hidden", fuzz_esamp_on_hidden(sampler_, layer, site, b.const_view()), valid);
    if (valid) delivered = true;
  }

  void mix() {
    const bool ready = in_step_ && (rows_.empty() || have_source_) && !mixed_;
    const auto n = static_cast<std::int64_t>(rows_.size());
    const bool latent = choose(mix_ == ESAMP_MIX_LATENT, {mix_ != ESAMP_MIX_LATENT});
    bool valid = ready && latent == (mix_ == ESAMP_MIX_LATENT);
    Buffer out;
    std::vector<std::uint8_t> before;
    esamp_status status;
    if (latent) {
      out = make_buffer(n, hidden_, false);
      before = out.storage;
      valid = valid && out.valid;
      status = esamp_mix_hidden(sampler_, out.view);
      check("esamp_mix_hidden", status, valid);
      if (status == ESAMP_STATUS_OK && beta_ == 0.0f && out.storage != before)
        finding("esamp_mix_hidden with beta 0 changed the hidden states");
    } else {
      const std::int64_t vocab = choose<std::int64_t>(4, {1, 2, 0, 7});
      const Buffer lm_head = make_buffer(vocab, hidden_, true);
      out = make_buffer(n, lm_head.view.rows, false);
      before = out.storage;
      const bool logits_ok = out.valid && logits_selectable(out);
      esamp_filter filter = esamp_default_filter();
      filter.temperature = choose(1.0f, {0.0f, 0.5f, -1.0f, kNaN});
      filter.top_k = choose(0, {1, 2, -1});
      filter.top_p = choose(1.0f, {0.5f, 0.0f, 1.5f});
      filter.min_p = choose(0.0f, {0.2f, -0.1f, 2.0f});
      filter.struct_size = choose(sizeof filter, {std::size_t{0}, sizeof filter + 8});
      const bool null_filter = chance(16);
      const bool filter_ok = !null_filter && filter.struct_size == sizeof filter &&
                             filter.temperature >= 0.0f && filter.top_k >= 0 &&
                             filter.top_p > 0.0f && filter.top_p <= 1.0f && filter.min_p >= 0.0f &&
                             filter.min_p <= 1.0f;
      valid = valid && filter_ok && lm_head.well_formed && logits_ok;
      status = esamp_mix_logits(sampler_, out.view, lm_head.const_view(),
                                null_filter ? nullptr : &filter);
      check("esamp_mix_logits", status, valid);
    }
    if (status != ESAMP_STATUS_OK && out.storage != before)
      finding("a failed mix call wrote to its output");
    if (valid) mixed_ = true;
  }

  // Whether every row of the logits has a token to keep and no NaN or +inf (select_candidates).
  static bool logits_selectable(const Buffer& b) {
    const esamp::ConstMatrixView v(b.view.data, b.view.rows, b.view.cols, b.view.stride,
                                   static_cast<esamp::DType>(b.view.dtype));
    for (std::int64_t r = 0; r < v.rows; ++r) {
      bool any = false;
      for (std::int64_t c = 0; c < v.cols; ++c) {
        const float l = v.at(r, c);
        if (std::isnan(l) || l == kInf) return false;
        any = any || l != -kInf;
      }
      if (!any) return false;
    }
    return true;
  }

  void end_step() {
    const bool valid = in_step_ && (rows_.empty() || (have_source_ && have_target_));
    check("esamp_end_step", esamp_end_step(sampler_), valid);
    if (valid) {
      in_step_ = false;
      ++steps_;
      rows_ended_ += static_cast<std::int64_t>(rows_.size());
    }
  }

  void get_stats() {
    esamp_stats stats{};
    stats.struct_size = choose(sizeof stats, {std::size_t{0}, sizeof stats - 1, sizeof stats + 8});
    const esamp_status status = esamp_get_stats(sampler_, &stats);
    check("esamp_get_stats", status, stats.struct_size == sizeof stats);
    if (status != ESAMP_STATUS_OK) return;
    if (stats.steps != steps_) finding("esamp_stats.steps differs from the steps ended");
    if (stats.rows_trained + stats.rows_skipped_nonfinite != rows_ended_)
      finding("rows_trained + rows_skipped_nonfinite differs from the rows of the ended steps");
    if (stats.rows_mixed < 0 ||
        stats.rows_mixed > rows_ended_ + static_cast<std::int64_t>(in_step_ ? rows_.size() : 0))
      finding("rows_mixed exceeds the rows that could be mixed");
    get_group_stats(stats);
  }

  // A group's counters: an open group's are part of the sampler's `total`; any other is an error.
  void get_group_stats(const esamp_stats& total) {
    const esamp_group g = pick_group();
    esamp_group_stats stats{};
    stats.struct_size = choose(sizeof stats, {std::size_t{0}, sizeof stats - 1, sizeof stats + 8});
    const esamp_status status = esamp_get_group_stats(sampler_, g, &stats);
    check("esamp_get_group_stats", status, is_open(g) && stats.struct_size == sizeof stats);
    if (status != ESAMP_STATUS_OK) return;
    if (stats.rows_trained < 0 || stats.rows_trained > total.rows_trained ||
        stats.rows_skipped_nonfinite < 0 ||
        stats.rows_skipped_nonfinite > total.rows_skipped_nonfinite || stats.rows_mixed < 0 ||
        stats.rows_mixed > total.rows_mixed || stats.slot_updates < 0 ||
        stats.slot_updates > total.slot_updates)
      finding("a group's counters exceed the sampler's");
  }

  std::vector<std::uint8_t> saved_bank() {
    if (esamp_save_bank(sampler_, probe_.path().c_str()) != ESAMP_STATUS_OK)
      finding("esamp_save_bank failed on a writable path");
    return esamp::detail::read_file(probe_.path());
  }

  void save() {
    const int where = choose(0, {1, 2});
    const char* path = where == 0   ? bank_.path().c_str()
                       : where == 1 ? "/nonexistent/bank"
                                    : nullptr;
    const esamp_status status = esamp_save_bank(sampler_, path);
    check("esamp_save_bank", status, where == 0,
          where == 1 ? ESAMP_STATUS_FILE_ERROR : ESAMP_STATUS_INVALID_ARGUMENT);
    if (status == ESAMP_STATUS_OK) saved_ = true;
  }

  void load() {
    const int what = choose(0, {1, 2, 3});  // the last save, input bytes, a missing file, NULL
    if (what == 1) {
      const std::vector<std::uint8_t> bytes =
          in_.ConsumeBytes<std::uint8_t>(in_.ConsumeIntegralInRange<std::size_t>(0, 512));
      garbage_.write(bytes.data(), bytes.size());
    }
    const char* path = what == 0   ? bank_.path().c_str()
                       : what == 1 ? garbage_.path().c_str()
                       : what == 2 ? "/nonexistent/bank"
                                   : nullptr;
    const std::vector<std::uint8_t> before = saved_bank();
    const esamp_status status = esamp_load_bank(sampler_, path);
    const bool valid = what == 0 && saved_ && !in_step_;
    if (what == 1 && status == ESAMP_STATUS_OK && !in_step_) return;  // bytes that form a bank
    check("esamp_load_bank", status, valid,
          path == nullptr || in_step_ ? ESAMP_STATUS_INVALID_ARGUMENT : ESAMP_STATUS_FILE_ERROR);
    const std::vector<std::uint8_t> after = saved_bank();
    if (status != ESAMP_STATUS_OK && after != before) finding("a failed load changed the bank");
    if (status == ESAMP_STATUS_OK && after != esamp::detail::read_file(bank_.path()))
      finding("a loaded bank does not save back to its file");
  }

  // A complete, valid step from wherever the sampler is: every call must succeed.
  void valid_step() {
    forced_ = true;
    if (!in_step_) begin_step();
    if (!have_source_) on_hidden(true);
    if (!have_target_) on_hidden(false);
    if (!mixed_) mix();
    end_step();
    forced_ = false;
  }

  FuzzedDataProvider& in_;
  esamp::fuzz::TempFile bank_{"capi_bank.bin"}, probe_{"capi_probe.bin"},
      garbage_{"capi_garbage.bin"};
  esamp_sampler* sampler_ = nullptr;
  int num_layers_ = 0, hidden_ = 0, slots_ = 0, max_rows_ = 0;
  bool per_group_ = true;
  esamp_mix_mode mix_ = ESAMP_MIX_LATENT;
  float beta_ = 0.0f;
  esamp_tap source_{}, target_{};  // resolved layers
  std::vector<esamp_group> open_, closed_;
  bool in_step_ = false, have_source_ = false, have_target_ = false, mixed_ = false;
  std::vector<esamp_group> rows_;
  std::int64_t steps_ = 0, rows_ended_ = 0;
  bool saved_ = false;  // bank_ holds a save of this sampler
  bool forced_ = false, failed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Driver(in).run();
  return 0;
}
