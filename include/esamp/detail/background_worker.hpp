// A thread that runs one fixed task on request, so a hook can hand work off and a later hook can
// wait.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace esamp::detail {

class BackgroundWorker {
 public:
  explicit BackgroundWorker(std::function<void()> task)
      : task_(std::move(task)), thread_([this] { loop(); }) {}
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;
  ~BackgroundWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  // Starts one run of the task; the previous run must have been waited for.
  void start() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_ = true;
    }
    wake_.notify_all();
  }

  // Returns once no run is pending; rethrows what the last run threw.
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return !pending_; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return pending_ || stopping_; });
      if (!pending_) return;
      lock.unlock();
      std::exception_ptr error;
      try {
        task_();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      error_ = error;
      pending_ = false;
      done_.notify_all();
    }
  }

  std::function<void()> task_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  bool pending_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts after every other member is ready
};

}  // namespace esamp::detail
