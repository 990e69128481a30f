// esamp-server's HTTP API: see api.hpp.
#include "api.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "engine.hpp"
#include "http.hpp"

namespace esamp::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A silent client is probed this often (a failed write is how a gone client shows).
constexpr auto kProbeInterval = std::chrono::milliseconds(500);

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What the log line of the request being served on this thread says (one connection is served
// by one thread from its handler to its logger).
struct RequestLog {
  std::uint64_t id = 0;
  int prompt_tokens = 0, n = 0, tokens_out = 0;
  float beta = 0.0f;
  Clock::time_point start = Clock::now();
};
thread_local RequestLog request_log;

class Api {
 public:
  Api(Engine& engine, RepliesInFlight& replies) : engine_(engine), replies_(replies) {}

  void completion(const httplib::Request& http, httplib::Response& response, bool chat) {
    const Limits limits = engine_.limits();
    Request request =
        chat ? parse_chat_request(http.body, limits) : parse_completion_request(http.body, limits);
    const std::shared_ptr<Job> job = engine_.submit(std::move(request));
    request_log.id = job->id;
    request_log.n = job->request.n;
    request_log.beta = job->beta;
    for (const auto& prompt : job->prompts) request_log.prompt_tokens += prompt.size();
    auto reply = std::make_shared<Reply>(Reply{job, chat, std::time(nullptr), Clock::now(), {}});
    // httplib calls the releaser once the reply is written whole or its client is gone.
    replies_.begin();
    const auto releaser = [job, this](bool success) {
      if (!success) job->cancel();
      replies_.end();
    };
    if (job->request.stream) {
      response.set_header("Cache-Control", "no-cache");
      response.set_chunked_content_provider(
          "text/event-stream",
          [this, reply](std::size_t, httplib::DataSink& sink) { return stream(*reply, sink); },
          releaser);
    } else {
      // Sent chunked, with JSON whitespace while it waits, so that a client gone is seen.
      response.set_chunked_content_provider(
          "application/json",
          [this, reply](std::size_t, httplib::DataSink& sink) { return whole(*reply, sink); },
          releaser);
    }
  }

  std::string models() const {
    return dump({{"object", "list"},
                 {"data",
                  {{{"id", engine_.model_name()},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "esamp"}}}}});
  }

  std::string metrics() const {
    const EngineMetrics m = engine_.metrics();
    std::string out;
    const auto metric = [&out](const char* name, const char* type, const char* help,
                               const std::string& samples) {
      out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{3}", name, help, type, samples);
    };
    const auto sample = [](const char* name, auto value) {
      return fmt::format("{} {}\n", name, value);
    };
    std::string by_status;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [status, count] : requests_by_status_)
        by_status += fmt::format("esamp_requests_total{{status=\"{}\"}} {}\n", status, count);
    }
    metric("esamp_requests_total", "counter", "Requests answered, by HTTP status.", by_status);
    metric("esamp_prompt_tokens_total", "counter", "Prompt tokens decoded.",
           sample("esamp_prompt_tokens_total", m.prompt_tokens));
    metric("esamp_generated_tokens_total", "counter", "Tokens generated (all choices).",
           sample("esamp_generated_tokens_total", m.generated_tokens));
    metric("esamp_decode_steps_total", "counter", "llama_decode steps of the decode thread.",
           sample("esamp_decode_steps_total", m.decode_steps));
    metric("esamp_queue_length", "gauge", "Requests waiting for room (--parallel, --ctx-size).",
           sample("esamp_queue_length", m.queue_length));
    metric("esamp_active_sequences", "gauge", "Sequences admitted and not ended.",
           sample("esamp_active_sequences", m.active_sequences));
    metric("esamp_open_groups", "gauge", "esamp groups open (one per prompt being generated).",
           sample("esamp_open_groups", m.open_groups));
    metric("esamp_rows_mixed_total", "counter",
           "Rows whose final hidden state esamp mixed (beta > 0, distiller warmed up).",
           sample("esamp_rows_mixed_total", m.rows_mixed));
    metric("esamp_rows_trained_total", "counter", "Rows that trained their group's distiller.",
           sample("esamp_rows_trained_total", m.rows_trained));
    metric("esamp_rows_skipped_total", "counter",
           "Rows left out of mixing and training: a tapped state not finite.",
           sample("esamp_rows_skipped_total", m.rows_skipped_nonfinite));
    metric("esamp_mean_loss", "gauge", "Mean distiller loss over every step that trained.",
           sample("esamp_mean_loss", m.mean_loss));
    return out;
  }

  void count(int status) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_by_status_[status];
  }

 private:
  struct Reply {
    std::shared_ptr<Job> job;
    bool chat;
    std::time_t created;
    Clock::time_point last_write;
    std::vector<bool> started;  // [choice] chat: the role was sent
  };

  std::string id_of(const Reply& reply) const {
    return fmt::format("{}-{}", reply.chat ? "chatcmpl" : "cmpl", reply.job->id);
  }

  json usage(const Job& job) const {
    const int out = std::accumulate(job.completion_tokens.begin(), job.completion_tokens.end(), 0);
    int in = 0;
    for (const auto& prompt : job.prompts) in += static_cast<int>(prompt.size());
    request_log.tokens_out = out;
    return {{"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}};
  }

  // The request's esamp counters (README, esamp-server): summed over its groups, and mean_loss
  // over every step that trained any of their distillers (null when none did).
  static json esamp_of(const Job& job) {
    GroupStats sum;
    double loss_sum = 0.0;
    for (const GroupStats& g : job.esamp_groups) {
      sum.rows_trained += g.rows_trained;
      sum.rows_mixed += g.rows_mixed;
      sum.rows_skipped_nonfinite += g.rows_skipped_nonfinite;
      sum.slot_updates += g.slot_updates;
      sum.steps_trained += g.steps_trained;
      loss_sum += g.mean_loss * static_cast<double>(g.steps_trained);
    }
    return {
        {"beta", job.beta},
        {"warm_start", job.request.warm_start},
        {"seed", job.seed},
        {"rows", sum.rows_trained + sum.rows_skipped_nonfinite},
        {"rows_mixed", sum.rows_mixed},
        {"rows_trained", sum.rows_trained},
        {"updates", sum.slot_updates},
        {"mean_loss",
         sum.steps_trained > 0 ? json(loss_sum / static_cast<double>(sum.steps_trained)) : json()}};
  }

  static bool write(httplib::DataSink& sink, const std::string& text) {
    return sink.write(text.data(), text.size());
  }

  // A non-streamed reply: whitespace while the job runs, then the whole body.
  bool whole(Reply& reply, httplib::DataSink& sink) {
    std::vector<Event> events;
    for (;;) {
      const auto waited = Clock::now() - reply.last_write;
      if (waited >= kProbeInterval) {
        reply.last_write = Clock::now();
        return write(sink, " ");
      }
      if (reply.job->wait(events, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      kProbeInterval - waited)))
        break;
      events.clear();  // the text is read whole at the end
    }
    const Job& job = *reply.job;
    const std::string error = job.error();
    if (!error.empty()) {
      write(sink, ApiError(500, error).body());
    } else {
      json choices = json::array();
      for (std::size_t i = 0; i < job.texts.size(); ++i) {
        json choice = {{"index", i}, {"finish_reason", job.finish_reasons[i]}};
        if (reply.chat) {
          choice["message"] = {{"role", "assistant"}, {"content", job.texts[i]}};
        } else {
          choice["text"] = job.texts[i];
          choice["logprobs"] = nullptr;
        }
        choices.push_back(std::move(choice));
      }
      write(sink, dump({{"id", id_of(reply)},
                        {"object", reply.chat ? "chat.completion" : "text_completion"},
                        {"created", reply.created},
                        {"model", engine_.model_name()},
                        {"choices", std::move(choices)},
                        {"usage", usage(job)},
                        {"esamp", esamp_of(job)}}));
    }
    sink.done();
    return true;
  }

  json chunk(const Reply& reply, json choices) const {
    return {{"id", id_of(reply)},
            {"object", reply.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", reply.created},
            {"model", engine_.model_name()},
            {"choices", std::move(choices)}};
  }

  // A streamed reply: one event per token per choice, then [DONE].
  bool stream(Reply& reply, httplib::DataSink& sink) {
    std::vector<Event> events;
    const bool ended = reply.job->wait(events, kProbeInterval);
    const Job& job = *reply.job;
    if (reply.started.empty()) reply.started.assign(job.texts.size(), false);
    std::string out;
    for (const Event& e : events) {
      json choice = {{"index", e.choice},
                     {"finish_reason", e.finish_reason.empty() ? json() : json(e.finish_reason)}};
      if (reply.chat) {
        json delta = {{"content", e.text}};
        if (!reply.started[static_cast<std::size_t>(e.choice)]) delta["role"] = "assistant";
        reply.started[static_cast<std::size_t>(e.choice)] = true;
        choice["delta"] = std::move(delta);
      } else {
        choice["text"] = e.text;
        choice["logprobs"] = nullptr;
      }
      out += "data: " + dump(chunk(reply, json::array({std::move(choice)}))) + "\n\n";
    }
    if (ended) {
      const std::string error = job.error();
      if (!error.empty()) {
        out += "data: " + ApiError(500, error).body() + "\n\n";
      } else {
        json last = chunk(reply, json::array());
        last["usage"] = usage(job);
        last["esamp"] = esamp_of(job);
        if (job.request.include_usage) out += "data: " + dump(last) + "\n\n";
      }
      out += "data: [DONE]\n\n";
    } else if (out.empty()) {
      if (Clock::now() - reply.last_write < kProbeInterval) return true;
      out = ": waiting\n\n";  // an SSE comment: clients skip it
    }
    reply.last_write = Clock::now();
    if (!write(sink, out)) return false;
    if (ended) sink.done();
    return true;
  }

  Engine& engine_;
  RepliesInFlight& replies_;
  mutable std::mutex mutex_;
  std::map<int, std::int64_t> requests_by_status_;
};

void error_reply(httplib::Response& response, const ApiError& error) {
  response.status = error.status;
  if (error.status == 503) response.set_header("Retry-After", "1");
  response.set_content(error.body(), "application/json");
}

}  // namespace

void add_routes(httplib::Server& server, Engine& engine, RepliesInFlight& replies) {
  auto api = std::make_shared<Api>(engine, replies);
  const auto guarded = [](auto handler) {
    return [handler](const httplib::Request& request, httplib::Response& response) {
      try {
        handler(request, response);
      } catch (const ApiError& e) {
        error_reply(response, e);
      }
    };
  };
  server.Post("/v1/completions", guarded([api](const auto& request, auto& response) {
                api->completion(request, response, false);
              }));
  server.Post("/v1/chat/completions", guarded([api](const auto& request, auto& response) {
                api->completion(request, response, true);
              }));
  server.Get("/v1/models", [api](const httplib::Request&, httplib::Response& response) {
    response.set_content(api->models(), "application/json");
  });
  server.Get("/health", [&engine](const httplib::Request&, httplib::Response& response) {
    const std::string failure = engine.failure();
    if (failure.empty()) {
      response.set_content(R"({"status":"ok"})", "application/json");
    } else {
      error_reply(response, ApiError(503, "the decode thread failed: " + failure));
    }
  });
  server.Get("/metrics", [api](const httplib::Request&, httplib::Response& response) {
    response.set_content(api->metrics(), "text/plain; version=0.0.4");
  });

  server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_log = RequestLog{};
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_payload_max_length(kMaxBodyBytes);
  server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;  // a handler's own error body
    if (response.status == 404) {
      error_reply(response,
                  ApiError(404, fmt::format("unknown route: {} {}", request.method, request.path),
                           "", "not_found"));
    } else if (response.status == 413) {
      error_reply(response,
                  ApiError(413, fmt::format("the request body is over {} bytes", kMaxBodyBytes), "",
                           "request_too_large"));
    } else {
      error_reply(response, ApiError(response.status, fmt::format("HTTP {}", response.status)));
    }
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        error_reply(response, ApiError(500, what));
      });
  server.set_logger([api](const httplib::Request& request, const httplib::Response& response) {
    api->count(response.status);
    if (request.path == "/health" || request.path == "/metrics") return;
    const RequestLog& log = request_log;
    const double seconds = std::chrono::duration<double>(Clock::now() - log.start).count();
    std::fprintf(
        stderr, "request %llu %s %s %d prompt_tokens=%d n=%d beta=%g tokens_out=%d time=%.3fs\n",
        static_cast<unsigned long long>(log.id), request.method.c_str(), request.path.c_str(),
        response.status, log.prompt_tokens, log.n, log.beta, log.tokens_out, seconds);
  });
}

}  // namespace esamp::server
