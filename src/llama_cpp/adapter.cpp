// The llama.cpp adapter: see include/esamp/llama_cpp.hpp and DESIGN.md §2.
#include <fmt/format.h>
#include <ggml-backend.h>
#include <ggml.h>

#include <algorithm>
#include <cstring>

#include "esamp/error.hpp"
#include "esamp/llama_cpp.hpp"

namespace esamp::llama_cpp {
namespace {

bool eval_trampoline(ggml_tensor* tensor, bool ask, void* user_data) {
  return static_cast<Adapter*>(user_data)->on_eval(tensor, ask);
}

std::string model_description(const llama_model* model) {
  char text[256];
  llama_model_desc(model, text, sizeof(text));
  return text;
}

int resolve_layer(int layer, int layers) { return layer < 0 ? layer + layers : layer; }

// Calls copy(first row in `rows`, byte offset in `tensor`, bytes) for each run of consecutive
// tensor rows in `rows`: one backend transfer per run when the tensor's rows are packed.
template <class Copy>
void for_each_run(const ggml_tensor* tensor, const std::vector<std::int64_t>& rows, Copy&& copy) {
  const std::size_t row_bytes = static_cast<std::size_t>(tensor->ne[0]) * sizeof(float);
  const bool packed = tensor->nb[1] == row_bytes;
  for (std::size_t r = 0; r < rows.size();) {
    std::size_t run = 1;
    while (packed && r + run < rows.size() &&
           rows[r + run] == rows[r] + static_cast<std::int64_t>(run))
      ++run;
    copy(r, static_cast<std::size_t>(rows[r]) * tensor->nb[1], run * row_bytes);
    r += run;
  }
}

}  // namespace

Adapter::Adapter(llama_model* model, ExploratorySampler& sampler)
    : model_(model), sampler_(sampler) {
  if (model_ == nullptr) fail("llama_cpp::Adapter: the model is null");
  const int layers = llama_model_n_layer(model_);
  hidden_ = llama_model_n_embd(model_);
  if (sampler_.num_layers() != layers)
    fail("llama_cpp::Adapter: the sampler is built for {} layers, the model ({}) has {}",
         sampler_.num_layers(), model_description(model_), layers);
  if (sampler_.distiller_config().hidden_size != hidden_)
    fail("llama_cpp::Adapter: DistillerConfig.hidden_size = {}, the model's n_embd is {}",
         sampler_.distiller_config().hidden_size, hidden_);
  if (sampler_.device() != Device::cpu)
    fail("llama_cpp::Adapter: the sampler runs on {}; the adapter hands it host copies (cpu)",
         name(sampler_.device()));
  const ExplorationConfig& exploration = sampler_.exploration();
  if (exploration.mix != MixMode::latent)
    fail("llama_cpp::Adapter: ExplorationConfig.mix = {}: the adapter serves latent mode only",
         name(exploration.mix));
  if (exploration.source.site != Site::layer_input_normed)
    fail(
        "llama_cpp::Adapter: ExplorationConfig.source.site = {}: llama.cpp names only {} "
        "(attn_norm-<layer>) for every token",
        name(exploration.source.site), name(Site::layer_input_normed));
  if (exploration.target.site != Site::layer_input_normed &&
      exploration.target.site != Site::final_normed)
    fail("llama_cpp::Adapter: ExplorationConfig.target.site = {}: must be {} or {}",
         name(exploration.target.site), name(Site::layer_input_normed), name(Site::final_normed));
  source_layer_ = resolve_layer(exploration.source.layer, layers);
  target_layer_ = resolve_layer(exploration.target.layer, layers);
  target_is_final_ = exploration.target.site == Site::final_normed;
  source_name_ = fmt::format("attn_norm-{}", source_layer_);
  target_name_ = target_is_final_ ? "result_norm" : fmt::format("attn_norm-{}", target_layer_);
}

Adapter::~Adapter() = default;

llama_context* Adapter::init_context(llama_context_params params) {
  if (context_) fail("llama_cpp::Adapter::init_context: the adapter already has a context");
  if (params.n_seq_max > 1 && !params.kv_unified)
    fail(
        "llama_context_params.kv_unified = false with n_seq_max = {}: llama.cpp then regroups a "
        "batch's rows by sequence in an order its API does not reveal; set kv_unified = true",
        params.n_seq_max);
  params.n_ubatch = std::max(params.n_ubatch, params.n_batch);
  user_callback_ = params.cb_eval;
  user_data_ = params.cb_eval_user_data;
  params.cb_eval = eval_trampoline;
  params.cb_eval_user_data = this;
  context_.reset(llama_init_from_model(model_, params));
  if (!context_) fail("llama_cpp::Adapter::init_context: llama_init_from_model failed");
  if (llama_n_ubatch(context_.get()) < llama_n_batch(context_.get()))
    fail(
        "llama_cpp::Adapter::init_context: the context has n_ubatch = {} < n_batch = {}: a "
        "step's rows would be split over several ubatches",
        llama_n_ubatch(context_.get()), llama_n_batch(context_.get()));
  return context_.get();
}

GroupId Adapter::open_group(Span<const llama_seq_id> sequences) {
  return open_group(sequences, sampler_.exploration().beta, true);
}

GroupId Adapter::open_group(Span<const llama_seq_id> sequences, float beta, bool warm_start) {
  for (const llama_seq_id sequence : sequences)
    if (group_of_sequence_.count(sequence) > 0)
      fail("llama_cpp::Adapter::open_group: sequence {} is already in group {}", sequence,
           group_of_sequence_.at(sequence));
  const GroupId group = sampler_.open_group(beta, warm_start);
  for (const llama_seq_id sequence : sequences) group_of_sequence_.emplace(sequence, group);
  return group;
}

void Adapter::close_group(GroupId group) {
  sampler_.close_group(group);
  for (auto it = group_of_sequence_.begin(); it != group_of_sequence_.end();)
    it = it->second == group ? group_of_sequence_.erase(it) : std::next(it);
}

int Adapter::decode(const llama_batch& batch) {
  if (!context_) fail("llama_cpp::Adapter::decode: no context (call init_context first)");
  token_rows_.clear();
  output_rows_.clear();
  row_groups_.clear();
  step_sequences_.clear();
  std::int64_t outputs = 0;
  for (std::int64_t i = 0; i < batch.n_tokens; ++i) {
    // llama.h: without a logits array only the last token is output; without seq_ids all are 0.
    const bool output = batch.logits ? batch.logits[i] != 0 : i + 1 == batch.n_tokens;
    const int n_seq = batch.seq_id ? batch.n_seq_id[i] : 1;
    for (int k = 0; k < n_seq; ++k) {
      const llama_seq_id sequence = batch.seq_id ? batch.seq_id[i][k] : 0;
      const auto group = group_of_sequence_.find(sequence);
      if (group == group_of_sequence_.end()) continue;
      if (n_seq != 1)
        fail(
            "llama_cpp::Adapter::decode: token {} belongs to {} sequences, grouped sequence {} "
            "among them: a shared token is prefill (llama_decode it before the group's steps)",
            i, n_seq, sequence);
      if (!output)
        fail(
            "llama_cpp::Adapter::decode: token {} of grouped sequence {} has no logits flag: a "
            "step row needs its logits",
            i, sequence);
      if (!step_sequences_.emplace(sequence, i).second)
        fail(
            "llama_cpp::Adapter::decode: grouped sequence {} has tokens {} and {} in the batch: "
            "a step has one token per sequence (prefill goes through llama_decode)",
            sequence, step_sequences_.at(sequence), i);
      token_rows_.push_back(i);
      output_rows_.push_back(outputs);
      row_groups_.push_back(group->second);
    }
    if (output) ++outputs;
  }
  if (token_rows_.empty()) return llama_decode(context_.get(), batch);

  step_tokens_ = batch.n_tokens;
  step_outputs_ = outputs;
  seen_source_ = seen_target_ = seen_final_ = false;
  error_ = nullptr;
  sampler_.begin_step(Span<const GroupId>(row_groups_.data(), row_groups_.size()));
  armed_ = true;
  const int status = llama_decode(context_.get(), batch);
  armed_ = false;
  if (error_) std::rethrow_exception(error_);
  if (status != 0) fail("llama_cpp::Adapter::decode: llama_decode returned {} in a step", status);
  const auto missing = [this](const std::string& tensor) {
    fail(
        "llama_cpp::Adapter::decode: the graph of {} has no node '{}' (the adapter knows llama's "
        "tensor names: attn_norm-<layer>, result_norm)",
        model_description(model_), tensor);
  };
  if (!seen_source_) missing(source_name_);
  if (!seen_target_) missing(target_name_);
  if (!seen_final_) missing("result_norm");
  sampler_.end_step();
  return status;
}

Adapter::Tensor Adapter::classify(const ggml_tensor* tensor) const {
  if (std::strcmp(tensor->name, "result_norm") == 0) return Tensor::final;
  if (std::strcmp(tensor->name, source_name_.c_str()) == 0) return Tensor::source;
  if (!target_is_final_ && std::strcmp(tensor->name, target_name_.c_str()) == 0)
    return Tensor::target;
  return Tensor::none;
}

bool Adapter::on_eval(ggml_tensor* tensor, bool ask) {
  const Tensor kind = armed_ ? classify(tensor) : Tensor::none;
  if (ask) {
    user_wanted_last_ = user_callback_ != nullptr && user_callback_(tensor, true, user_data_);
    return kind != Tensor::none || user_wanted_last_;
  }
  bool keep_going = true;
  if (kind != Tensor::none && !error_) {
    try {
      deliver(kind, tensor);
    } catch (...) {
      error_ = std::current_exception();  // C frames lie between here and decode()
      keep_going = false;
    }
  }
  if (user_wanted_last_) keep_going = user_callback_(tensor, false, user_data_) && keep_going;
  return keep_going;
}

void Adapter::deliver(Tensor kind, ggml_tensor* tensor) {
  bool& seen =
      kind == Tensor::source ? seen_source_ : (kind == Tensor::target ? seen_target_ : seen_final_);
  if (seen)
    fail(
        "llama_cpp::Adapter: '{}' was computed twice in one decode: the batch was split into "
        "ubatches (raise n_ubatch to n_batch)",
        tensor->name);
  seen = true;
  const auto rows = static_cast<std::int64_t>(token_rows_.size());
  if (kind == Tensor::source || kind == Tensor::target) {
    check_rows(tensor, step_tokens_);
    gather(tensor, token_rows_);
    sampler_.on_hidden(kind == Tensor::source ? source_layer_ : target_layer_,
                       Site::layer_input_normed,
                       ConstMatrixView(rows_buffer_.data(), rows, hidden_));
    return;
  }
  // result_norm holds only the rows with the logits flag, in batch order.
  check_rows(tensor, step_outputs_);
  gather(tensor, output_rows_);
  if (target_is_final_) {
    sampler_.on_hidden(target_layer_, Site::final_normed,
                       ConstMatrixView(rows_buffer_.data(), rows, hidden_));
    seen_target_ = true;
  }
  sampler_.before_lm_head(MatrixView(rows_buffer_.data(), rows, hidden_));
  scatter(tensor, output_rows_);
}

void Adapter::check_rows(const ggml_tensor* tensor, std::int64_t expected) const {
  if (tensor->type != GGML_TYPE_F32 || tensor->nb[0] != sizeof(float))
    fail("llama_cpp::Adapter: '{}' is {} with element stride {}: expected contiguous f32 rows",
         tensor->name, ggml_type_name(tensor->type), tensor->nb[0]);
  if (tensor->ne[0] != hidden_ || tensor->ne[2] != 1 || tensor->ne[3] != 1)
    fail("llama_cpp::Adapter: '{}' has shape [{}, {}, {}, {}]: expected [{}, rows]", tensor->name,
         tensor->ne[0], tensor->ne[1], tensor->ne[2], tensor->ne[3], hidden_);
  if (tensor->ne[1] != expected)
    fail(
        "llama_cpp::Adapter: '{}' has {} rows in this ubatch, the batch {}: the batch was split "
        "into ubatches (raise n_ubatch to n_batch)",
        tensor->name, tensor->ne[1], expected);
}

void Adapter::gather(ggml_tensor* tensor, const std::vector<std::int64_t>& rows) {
  rows_buffer_.resize(rows.size() * static_cast<std::size_t>(hidden_));
  for_each_run(tensor, rows, [&](std::size_t first, std::size_t offset, std::size_t bytes) {
    ggml_backend_tensor_get(tensor, rows_buffer_.data() + first * hidden_, offset, bytes);
  });
}

void Adapter::scatter(ggml_tensor* tensor, const std::vector<std::int64_t>& rows) const {
  for_each_run(tensor, rows, [&](std::size_t first, std::size_t offset, std::size_t bytes) {
    ggml_backend_tensor_set(tensor, rows_buffer_.data() + first * hidden_, offset, bytes);
  });
}

}  // namespace esamp::llama_cpp
