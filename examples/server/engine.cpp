// The engine of esamp-server: see engine.hpp.
#include "engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "esamp/error.hpp"
#include "esamp/llama_cpp.hpp"
#include "llama_cpp_generation.hpp"

namespace esamp::server {
namespace {

struct ChainDeleter {
  void operator()(llama_sampler* chain) const { llama_sampler_free(chain); }
};

// The length of `text` that can be sent now: without a trailing incomplete UTF-8 character, and
// without a tail that may still grow into a stop string.
std::size_t final_length(const std::string& text, const std::vector<std::string>& stop) {
  std::size_t n = text.size(), continuation = 0;
  while (continuation < n && continuation < 3 &&
         (static_cast<unsigned char>(text[n - 1 - continuation]) & 0xC0) == 0x80)
    ++continuation;
  if (continuation < n) {
    const auto lead = static_cast<unsigned char>(text[n - 1 - continuation]);
    const std::size_t width = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (width > continuation + 1) n -= continuation + 1;
  }
  std::size_t kept = n;
  for (const std::string& s : stop)
    for (std::size_t k = std::min(s.size() - 1, n); k > 0; --k)
      if (text.compare(n - k, k, s, 0, k) == 0) {
        kept = std::min(kept, n - k);
        break;
      }
  return kept;
}

}  // namespace

struct Engine::Sequence {
  int choice = 0;  // among the job's choices
  llama_seq_id id = 0;
  std::unique_ptr<llama_sampler, ChainDeleter> chain;
  std::vector<llama_token> tokens;  // generated
  std::string text;
  std::size_t sent = 0;  // bytes of text handed out in events
  int output = -1;       // batch index of its token in the decode under way
  bool ended = false;
};

struct Engine::Group {
  std::shared_ptr<Job> job;
  const std::vector<llama_token>* prompt = nullptr;
  int prefilled = 0;       // prompt tokens decoded
  int prompt_output = -1;  // batch index of the prompt's last token in the decode under way
  std::vector<Sequence> sequences;
  int esamp_group = -1;  // the sampler's group, once the prompt is decoded
  int live = 0;          // sequences not ended
  int reserved = 0;      // KV cells held for it
  bool ended = false;
};

void Job::push(Event event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(event));
  changed_.notify_all();
}

void Job::finish(std::string error) {
  std::lock_guard<std::mutex> lock(mutex_);
  ended_ = true;
  error_ = std::move(error);
  changed_.notify_all();
}

bool Job::wait(std::vector<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return ended_ || !events_.empty(); });
  std::move(events_.begin(), events_.end(), std::back_inserter(out));
  events_.clear();
  return ended_;
}

std::string Job::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

Engine::Engine(const EngineOptions& options) : options_(options) {
  const auto max_sequences = static_cast<int>(llama_max_parallel_sequences());
  if (options.parallel < 1 || options.parallel > max_sequences / 2)
    fail("--parallel = {}: must be in [1, {}]", options.parallel, max_sequences / 2);
  if (options.ctx_size < 16) fail("--ctx-size = {}: must be >= 16", options.ctx_size);
  if (options.batch_size <= options.parallel)
    fail("--batch-size = {}: must be > --parallel = {}", options.batch_size, options.parallel);
  // Every request passes through the queue, if only until the next step.
  if (options.queue < 1) fail("--queue = {}: must be >= 1", options.queue);
  detail::check_beta("--beta", options.beta);

  model_.reset(llama_cpp::load_model(options.model_path).release());
  vocab_ = llama_model_get_vocab(model_.get());
  const std::size_t slash = options.model_path.find_last_of('/');
  model_name_ =
      slash == std::string::npos ? options.model_path : options.model_path.substr(slash + 1);

  llama_context_params params = llama_context_default_params();
  params.n_ctx = static_cast<std::uint32_t>(options.ctx_size);
  params.n_batch = params.n_ubatch = static_cast<std::uint32_t>(options.batch_size);
  // A sequence's id stays with its group until the group closes: twice --parallel ids.
  params.n_seq_max = static_cast<std::uint32_t>(2 * options.parallel);
  params.kv_unified = true;
  if (options.threads > 0) params.n_threads = params.n_threads_batch = options.threads;

  DistillerConfig distiller;
  distiller.hidden_size = llama_model_n_embd(model_.get());
  distiller.rank = std::min(distiller.rank, distiller.hidden_size);
  distiller.slots = options.parallel;
  ExplorationConfig exploration;
  exploration.beta = options.beta;
  exploration.max_rows = options.parallel;
  exploration.training_threads = params.n_threads;
  sampler_ = std::make_unique<ExploratorySampler>(llama_model_n_layer(model_.get()), distiller,
                                                  exploration, llama_cpp::backend());
  adapter_ = std::make_unique<llama_cpp::Adapter>(model_.get(), *sampler_);
  context_ = adapter_->init_context(params);
  batch_ = std::make_unique<llama_cpp::Batch>(options.batch_size, 1);
  for (int id = 2 * options.parallel - 1; id >= 0; --id) free_sequences_.push_back(id);
  thread_ = std::thread(&Engine::run, this);
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Limits Engine::limits() const {
  Limits limits;
  limits.max_sequences = options_.parallel;
  limits.max_tokens = options_.ctx_size;
  return limits;
}

std::vector<llama_token> Engine::tokenize_chat(const Request& request) const {
  const char* const tmpl = options_.chat_template.empty()
                               ? llama_model_chat_template(model_.get(), nullptr)
                               : options_.chat_template.c_str();
  if (tmpl == nullptr)
    throw ApiError(400,
                   fmt::format("the model {} has no chat template: use /v1/completions, or start "
                               "the server with --chat-template",
                               model_name_),
                   "messages", "no_chat_template");
  std::vector<llama_chat_message> messages;
  for (const ChatMessage& m : request.messages)
    messages.push_back({m.role.c_str(), m.content.c_str()});
  std::string text(1024, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::int32_t length =
        llama_chat_apply_template(tmpl, messages.data(), messages.size(), true, text.data(),
                                  static_cast<std::int32_t>(text.size()));
    if (length < 0)
      throw ApiError(400,
                     fmt::format("the chat template of {} is not one llama_chat_apply_template "
                                 "knows: use /v1/completions",
                                 model_name_),
                     "messages", "no_chat_template");
    const bool fits = static_cast<std::size_t>(length) <= text.size();
    text.resize(static_cast<std::size_t>(length));
    if (fits) break;
  }
  // The template writes special tokens as text: parse them.
  std::vector<llama_token> tokens(text.size() + 2);
  const std::int32_t count =
      llama_tokenize(vocab_, text.data(), static_cast<std::int32_t>(text.size()), tokens.data(),
                     static_cast<std::int32_t>(tokens.size()), true, true);
  if (count < 0) fail("llama_tokenize failed on a chat prompt");
  tokens.resize(static_cast<std::size_t>(count));
  return tokens;
}

std::shared_ptr<Job> Engine::submit(Request request) {
  std::vector<std::vector<llama_token>> prompts;
  if (request.chat) {
    prompts.push_back(tokenize_chat(request));
  } else {
    for (const std::string& prompt : request.prompts)
      prompts.push_back(llama_cpp::tokenize(model_.get(), prompt));
  }
  long long cells = 0;
  for (const auto& prompt : prompts) {
    const auto length = static_cast<long long>(prompt.size());
    if (length == 0)
      throw ApiError(400, "the prompt has no tokens (the model adds no BOS): give some text",
                     "prompt");
    if (length >= options_.ctx_size)
      throw ApiError(400,
                     fmt::format("the prompt is {} tokens: the context holds {} (--ctx-size)",
                                 length, options_.ctx_size),
                     request.chat ? "messages" : "prompt", "context_length_exceeded");
    cells += length + static_cast<long long>(request.n) * request.max_tokens;
  }
  if (cells > options_.ctx_size)
    throw ApiError(
        400,
        fmt::format("the prompts ({} tokens) and n = {} x max_tokens = {} need {} KV "
                    "cells: the context holds {} (--ctx-size)",
                    cells - static_cast<long long>(prompts.size()) * request.n * request.max_tokens,
                    request.n, request.max_tokens, cells, options_.ctx_size),
        "max_tokens", "context_length_exceeded");

  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.empty())
    throw ApiError(503, "the decode thread failed: " + failure_, "", "engine_failed");
  if (!accepting_) throw ApiError(503, "the server is shutting down", "", "shutting_down");
  if (static_cast<int>(queue_.size()) >= options_.queue)
    throw ApiError(
        503,
        fmt::format("the queue is full ({} requests wait, --queue): retry later", queue_.size()),
        "", "queue_full");
  const float beta = request.beta.value_or(options_.beta);
  const std::uint64_t seed =
      request.seed
          ? *request.seed
          : (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  auto job = std::make_shared<Job>(next_id_++, std::move(request), std::move(prompts));
  job->seed = seed;
  job->beta = beta;
  const std::size_t choices = job->prompts.size() * static_cast<std::size_t>(job->request.n);
  job->texts.resize(choices);
  job->finish_reasons.resize(choices);
  job->completion_tokens.resize(choices);
  job->esamp_groups.resize(job->prompts.size());
  queue_.push_back(job);
  ++running_jobs_;
  metrics_.queue_length = static_cast<int>(queue_.size());
  wake_.notify_all();
  return job;
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return metrics_;
}

std::string Engine::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

void Engine::stop_accepting() {
  std::lock_guard<std::mutex> lock(mutex_);
  accepting_ = false;
}

void Engine::drain(std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (idle_.wait_for(lock, timeout, [&] { return running_jobs_ == 0; })) return;
  for (const auto& job : queue_) job->cancel();
  cancel_all_ = true;
  wake_.notify_all();
  idle_.wait(lock, [&] { return running_jobs_ == 0; });
}

void Engine::run() {
  try {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !groups_.empty(); });
        if (stopping_) break;
      }
      step();
    }
  } catch (const std::exception& e) {
    // The sampler may be left mid-step: the engine serves no more.
    std::fprintf(stderr, "esamp-server: the decode thread failed: %s\n", e.what());
    std::lock_guard<std::mutex> lock(mutex_);
    accepting_ = false;
    failure_ = e.what();
  }
  std::vector<std::shared_ptr<Job>> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left.assign(queue_.begin(), queue_.end());
    queue_.clear();
  }
  for (const auto& group : groups_) left.push_back(group->job);
  for (const auto& job : left) job->finish(failure_.empty() ? "the server stopped" : failure_);
  std::lock_guard<std::mutex> lock(mutex_);
  running_jobs_ = 0;
  idle_.notify_all();
}

void Engine::admit() {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!queue_.empty()) {
    const std::shared_ptr<Job> job = queue_.front();
    if (job->cancelled()) {
      queue_.pop_front();
      job->finish("cancelled");
      --running_jobs_;
      continue;
    }
    const int n = job->request.n;
    const auto sequences = static_cast<int>(job->prompts.size()) * n;
    int cells = 0;
    for (const auto& prompt : job->prompts)
      cells += static_cast<int>(prompt.size()) + n * job->request.max_tokens;
    if (decoding_sequences_ + sequences > options_.parallel ||
        static_cast<int>(free_sequences_.size()) < sequences ||
        reserved_cells_ + cells > options_.ctx_size)
      break;
    queue_.pop_front();
    decoding_sequences_ += sequences;
    reserved_cells_ += cells;
    job->groups_left = static_cast<int>(job->prompts.size());
    for (std::size_t p = 0; p < job->prompts.size(); ++p) {
      auto group = std::make_unique<Group>();
      group->job = job;
      group->prompt = &job->prompts[p];
      group->live = n;
      group->reserved = static_cast<int>(job->prompts[p].size()) + n * job->request.max_tokens;
      for (int j = 0; j < n; ++j) {
        Sequence s;
        s.choice = static_cast<int>(p) * n + j;
        s.id = free_sequences_.back();
        free_sequences_.pop_back();
        s.chain.reset(llama_cpp::make_sampler_chain(
            job->request.filter,
            llama_cpp::chain_seed(job->seed, static_cast<std::uint64_t>(s.choice))));
        group->sequences.push_back(std::move(s));
      }
      groups_.push_back(std::move(group));
    }
  }
  metrics_.queue_length = static_cast<int>(queue_.size());
}

void Engine::step() {
  admit();
  bool cancel_all = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_all = cancel_all_;
  }
  for (const auto& group : groups_)
    if (cancel_all || group->job->cancelled()) {
      for (Sequence& s : group->sequences)
        if (!s.ended) end_sequence(*group, s, nullptr);
      if (!group->ended) end_group(*group);
    }
  sweep();
  if (groups_.empty()) return publish();

  // The decode rows: one token per sequence of every group past its prompt.
  llama_cpp::Batch& batch = *batch_;
  batch.clear();
  int rows = 0;
  for (const auto& group : groups_) {
    if (group->esamp_group < 0) continue;
    const auto prompt_length = static_cast<llama_pos>(group->prompt->size());
    for (Sequence& s : group->sequences) {
      if (s.ended) continue;
      s.output = batch.get().n_tokens;
      batch.add(s.tokens.back(), prompt_length + static_cast<llama_pos>(s.tokens.size()) - 1,
                Span<const llama_seq_id>(&s.id, 1), true);
      ++rows;
    }
  }
  if (options_.separate_prefill && rows > 0) {
    decode_and_draw();
    batch.clear();
  }
  // Then the prompts' next chunks (under their first sequence) while the batch has room.
  for (const auto& group : groups_) {
    if (group->esamp_group >= 0 || group->ended) continue;
    const int room = options_.batch_size - batch.get().n_tokens;
    const int length = static_cast<int>(group->prompt->size());
    const int take = std::min(room, length - group->prefilled);
    if (take <= 0) break;
    for (int k = 0; k < take; ++k) {
      const int p = group->prefilled + k;
      if (p + 1 == length) group->prompt_output = batch.get().n_tokens;
      batch.add((*group->prompt)[static_cast<std::size_t>(p)], p,
                Span<const llama_seq_id>(&group->sequences.front().id, 1), p + 1 == length);
    }
    group->prefilled += take;
  }
  if (batch.get().n_tokens > 0) decode_and_draw();
  sweep();
  publish();
}

void Engine::decode_and_draw() {
  if (const int status = adapter_->decode(batch_->get()); status != 0)
    fail("llama_decode returned {}", status);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++metrics_.decode_steps;
  }
  llama_memory_t memory = llama_get_memory(context_);
  for (const auto& group : groups_) {
    if (group->esamp_group >= 0) {
      for (Sequence& s : group->sequences)
        if (!s.ended && s.output >= 0) draw(*group, s, s.output);
    } else if (group->prompt_output >= 0) {
      // The prompt is decoded: its KV cells go to every sequence, each draws its first token.
      const Sequence& first = group->sequences.front();
      for (std::size_t j = 1; j < group->sequences.size(); ++j)
        llama_memory_seq_cp(memory, first.id, group->sequences[j].id, -1, -1);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        metrics_.prompt_tokens += static_cast<std::int64_t>(group->prompt->size());
      }
      for (Sequence& s : group->sequences) draw(*group, s, group->prompt_output);
      group->prompt_output = -1;
      std::vector<llama_seq_id> live;
      for (const Sequence& s : group->sequences)
        if (!s.ended) live.push_back(s.id);
      if (!live.empty())
        group->esamp_group =
            adapter_->open_group(Span<const llama_seq_id>(live.data(), live.size()),
                                 group->job->beta, group->job->request.warm_start);
    }
    for (Sequence& s : group->sequences) s.output = -1;
  }
}

void Engine::draw(Group& group, Sequence& s, int output) {
  const Request& request = group.job->request;
  const llama_token token = llama_sampler_sample(s.chain.get(), context_, output);
  if (llama_vocab_is_eog(vocab_, token)) return end_sequence(group, s, "stop");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++metrics_.generated_tokens;
  }
  s.tokens.push_back(token);
  const std::size_t before = s.text.size();
  s.text += llama_cpp::detokenize(model_.get(), {token});
  std::size_t stop_at = std::string::npos;
  for (const std::string& stop : request.stop) {
    const std::size_t from = before >= stop.size() ? before - (stop.size() - 1) : 0;
    stop_at = std::min(stop_at, s.text.find(stop, from));
  }
  if (stop_at != std::string::npos) {
    s.text.resize(stop_at);
    return end_sequence(group, s, "stop");
  }
  if (static_cast<int>(s.tokens.size()) == request.max_tokens)
    return end_sequence(group, s, "length");
  const std::size_t length = std::max(s.sent, final_length(s.text, request.stop));
  group.job->push({s.choice, s.text.substr(s.sent, length - s.sent), ""});
  s.sent = length;
}

void Engine::end_sequence(Group& group, Sequence& s, const char* reason) {
  s.ended = true;
  Job& job = *group.job;
  if (reason != nullptr) {
    job.push({s.choice, s.text.substr(s.sent), reason});
    job.texts[static_cast<std::size_t>(s.choice)] = s.text;
    job.finish_reasons[static_cast<std::size_t>(s.choice)] = reason;
    job.completion_tokens[static_cast<std::size_t>(s.choice)] = static_cast<int>(s.tokens.size());
  }
  s.sent = s.text.size();
  // Its own cells go at once; the prompt's stay while another sequence of the group holds them.
  llama_memory_seq_rm(llama_get_memory(context_), s.id, -1, -1);
  --decoding_sequences_;
  reserved_cells_ -= job.request.max_tokens;
  group.reserved -= job.request.max_tokens;
  if (--group.live == 0) end_group(group);
}

void Engine::end_group(Group& group) {
  group.ended = true;
  if (group.esamp_group >= 0) {
    // Read before the group closes: its slot then serves the next group.
    const auto prompt = static_cast<std::size_t>(group.prompt - group.job->prompts.data());
    group.job->esamp_groups[prompt] = sampler_->group_stats(group.esamp_group);
    adapter_->close_group(group.esamp_group);
  }
  for (const Sequence& s : group.sequences) free_sequences_.push_back(s.id);
  reserved_cells_ -= group.reserved;
  group.reserved = 0;
  if (--group.job->groups_left > 0) return;
  group.job->finish(group.job->cancelled() ? "cancelled" : "");
  std::lock_guard<std::mutex> lock(mutex_);
  --running_jobs_;
  idle_.notify_all();
}

void Engine::sweep() {
  groups_.erase(std::remove_if(groups_.begin(), groups_.end(),
                               [](const std::unique_ptr<Group>& g) { return g->ended; }),
                groups_.end());
}

void Engine::publish() {
  const Stats stats = sampler_->stats();
  std::lock_guard<std::mutex> lock(mutex_);
  metrics_.active_sequences = decoding_sequences_;
  int open = 0;
  for (const auto& group : groups_) open += group->esamp_group >= 0 ? 1 : 0;
  metrics_.open_groups = open;
  metrics_.rows_mixed = stats.rows_mixed;
  metrics_.rows_trained = stats.rows_trained;
  metrics_.rows_skipped_nonfinite = stats.rows_skipped_nonfinite;
  metrics_.mean_loss = stats.mean_loss;
}

}  // namespace esamp::server
