// The engine of esamp-server: continuous batching on one llama.cpp context with esamp. One decode
// thread owns the llama_context, the esamp::llama_cpp::Adapter and the sampler. A request's prompt
// is decoded once (in chunks, beside the other requests' decode tokens) and its KV cells are copied
// to its n sequences, which form one esamp group with the request's β. Requests join between
// decode steps; a sequence that ends leaves the batch and frees its KV cells at once; the last one
// closes the group. HTTP threads talk to it through Jobs.
#pragma once

#include <llama.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "esamp/sampler.hpp"
#include "request.hpp"

namespace esamp::llama_cpp {
class Adapter;
class Batch;
}  // namespace esamp::llama_cpp

namespace esamp::server {

struct EngineOptions {
  std::string model_path;
  int parallel = 4;               // sequences decoded at once; the bank's slots
  int ctx_size = 4096;            // KV cells shared by every sequence
  int batch_size = 512;           // tokens per decode step: decode rows, then prompt chunks
  int queue = 16;                 // requests waiting for room (>= 1); more are refused (503)
  int threads = 0;                // llama.cpp's threads (0: its default)
  float beta = 0.5f;              // a request's β when it gives none
  bool separate_prefill = false;  // prompt chunks in a llama_decode of their own
  // A template llama_chat_apply_template knows ("chatml", "gemma", ...) instead of the model's.
  std::string chat_template;
};

// One piece of a choice's text, in order: one per generated token (the text that became final
// with it: a token may complete no character yet), the last with the finish reason.
struct Event {
  int choice = 0;
  std::string text;
  std::string finish_reason;  // "" until the choice ends; then "stop" or "length"
};

// A request between an HTTP thread and the decode thread.
class Job {
 public:
  Job(std::uint64_t job_id, Request parsed, std::vector<std::vector<llama_token>> tokenized)
      : id(job_id), request(std::move(parsed)), prompts(std::move(tokenized)) {}

  // Waits up to `timeout` for events and moves them to `out`; returns whether the job has ended
  // (every choice finished, or failed: see error()) and no event is left.
  bool wait(std::vector<Event>& out, std::chrono::milliseconds timeout);
  // The client left: the job's sequences stop at the next step, its KV cells and slot are freed.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  // After the job ended: "" or what went wrong in the engine.
  std::string error() const;

  const std::uint64_t id;
  const Request request;
  const std::vector<std::vector<llama_token>> prompts;  // tokenized, one per group
  std::uint64_t seed = 0;                               // the request's, or drawn
  float beta = 0.0f;                                    // the β every group uses

  // Engine side.
  void push(Event event);
  void finish(std::string error = "");
  int groups_left = 0;  // groups (prompts) not ended

  // Readable after the job ended (or by the decode thread).
  std::vector<std::string> texts;           // [choice] the final text of each choice
  std::vector<std::string> finish_reasons;  // [choice]
  std::vector<int> completion_tokens;       // [choice]
  std::vector<GroupStats> esamp_groups;     // [prompt] its group's counters, read as it closed

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
  bool ended_ = false;
  std::string error_;
  std::atomic<bool> cancelled_{false};
};

// What /metrics shows.
struct EngineMetrics {
  std::int64_t prompt_tokens = 0, generated_tokens = 0, decode_steps = 0;
  int queue_length = 0, active_sequences = 0, open_groups = 0;
  std::int64_t rows_mixed = 0, rows_trained = 0, rows_skipped_nonfinite = 0;
  double mean_loss = 0.0;
};

class Engine {
 public:
  explicit Engine(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const { return options_; }
  const std::string& model_name() const { return model_name_; }
  Limits limits() const;

  // Tokenizes (chat: through the model's template) and checks the lengths (ApiError 400), then
  // queues the job; a full queue, or a server shutting down, is ApiError 503.
  std::shared_ptr<Job> submit(Request request);

  EngineMetrics metrics() const;
  // "" while the decode thread serves; why it stopped after it failed.
  std::string failure() const;

  // Refuses new jobs from now on (503), lets the queued and running ones finish.
  void stop_accepting();
  // Waits until no job is queued or running, up to `timeout`; then cancels what is left.
  void drain(std::chrono::seconds timeout);

 private:
  struct Sequence;
  struct Group;
  struct ModelDeleter {
    void operator()(llama_model* model) const { llama_model_free(model); }
  };

  void run();  // the decode thread
  void admit();
  void step();
  void decode_and_draw();
  void draw(Group& group, Sequence& sequence, int output);
  // reason: "stop" or "length"; null when the job was cancelled.
  void end_sequence(Group& group, Sequence& sequence, const char* reason);
  void end_group(Group& group);
  void sweep();  // drops the ended groups
  void publish();
  std::vector<llama_token> tokenize_chat(const Request& request) const;

  EngineOptions options_;
  std::string model_name_;
  std::unique_ptr<llama_model, ModelDeleter> model_;
  const llama_vocab* vocab_ = nullptr;
  std::unique_ptr<ExploratorySampler> sampler_;
  std::unique_ptr<llama_cpp::Adapter> adapter_;
  llama_context* context_ = nullptr;  // the adapter's
  std::unique_ptr<llama_cpp::Batch> batch_;

  mutable std::mutex mutex_;  // guards what follows, up to the decode thread's own state
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool accepting_ = true, stopping_ = false, cancel_all_ = false;
  std::string failure_;  // why the decode thread stopped, when it failed
  int running_jobs_ = 0;
  std::condition_variable idle_;
  EngineMetrics metrics_;
  std::uint64_t next_id_ = 1;

  // The decode thread's own.
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<llama_seq_id> free_sequences_;
  int decoding_sequences_ = 0;
  int reserved_cells_ = 0;
  std::thread thread_;
};

}  // namespace esamp::server
