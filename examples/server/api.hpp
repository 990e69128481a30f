// esamp-server's HTTP API on cpp-httplib: the OpenAI routes (/v1/completions,
// /v1/chat/completions, /v1/models), /health and /metrics, OpenAI error bodies for every error,
// one log line per request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace httplib {
class Server;
}  // namespace httplib

namespace esamp::server {

class Engine;

constexpr std::size_t kMaxBodyBytes = 1 << 20;  // a larger body is 413

// The completion replies still being written. httplib's Server::stop() cuts a chunked reply short,
// so a shutdown waits for these after the engine has finished its jobs.
class RepliesInFlight {
 public:
  void begin() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++count_;
  }
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--count_ == 0) idle_.notify_all();
  }
  // Waits until every reply begun has ended, for at most `timeout`; false when some still run.
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int count_ = 0;
};

// Installs the routes on `server`; `engine` and `replies` must outlive it.
void add_routes(httplib::Server& server, Engine& engine, RepliesInFlight& replies);

}  // namespace esamp::server
