// esamp-server: an OpenAI-compatible HTTP server on llama.cpp in which every request explores with
// its own β (README, "esamp-server").
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "api.hpp"
#include "engine.hpp"
#include "esamp/error.hpp"
#include "http.hpp"

namespace {

constexpr const char* kUsage = R"(usage: esamp-server --model M.gguf [options]

  --model PATH        the GGUF model (required)
  --host HOST         address to listen on (default 127.0.0.1)
  --port PORT         port (default 8080; 0: any free port, printed on stdout)
  --parallel N        sequences decoded at once, and esamp's bank slots (default 4)
  --ctx-size C        KV cells shared by every sequence (default 4096)
  --batch-size B      tokens per decode step: decode rows, then prompt chunks (default 512)
  --queue Q           requests that may wait for room; more get 503 (default 16)
  --threads T         llama.cpp threads (default: llama.cpp's)
  --beta B            a request's exploration strength when it gives none (default 0.5)
  --separate-prefill  decode prompt chunks in a llama_decode of their own
  --chat-template T   a chat template llama_chat_apply_template knows (chatml, gemma, llama3, ...)
                      for /v1/chat/completions, instead of the model's own
  --help              this text

A request's n samples of one prompt are one esamp group; esamp.beta and esamp.warm_start in the
body set its exploration. SIGTERM or SIGINT: stop accepting, finish what is in flight, exit 0.
)";

struct Options {
  esamp::server::EngineOptions engine;
  std::string host = "127.0.0.1";
  int port = 8080;
};

int to_int(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  int parsed = 0;
  try {
    parsed = std::stoi(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty())
    esamp::fail("{} = '{}': must be an integer", flag, value);
  return parsed;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--separate-prefill") {
      o.engine.separate_prefill = true;
      continue;
    }
    if (i + 1 >= argc) esamp::fail("{} needs a value (see --help)", flag);
    const std::string value = argv[++i];
    if (flag == "--model") {
      o.engine.model_path = value;
    } else if (flag == "--host") {
      o.host = value;
    } else if (flag == "--port") {
      o.port = to_int(flag, value);
    } else if (flag == "--parallel") {
      o.engine.parallel = to_int(flag, value);
    } else if (flag == "--ctx-size") {
      o.engine.ctx_size = to_int(flag, value);
    } else if (flag == "--batch-size") {
      o.engine.batch_size = to_int(flag, value);
    } else if (flag == "--queue") {
      o.engine.queue = to_int(flag, value);
    } else if (flag == "--chat-template") {
      o.engine.chat_template = value;
    } else if (flag == "--threads") {
      o.engine.threads = to_int(flag, value);
    } else if (flag == "--beta") {
      std::size_t used = 0;
      try {
        o.engine.beta = std::stof(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size()) esamp::fail("--beta = '{}': must be a number", value);
    } else {
      esamp::fail("unknown option {} (see --help)", flag);
    }
  }
  if (o.engine.model_path.empty()) esamp::fail("--model is required (see --help)");
  if (o.port < 0 || o.port > 65535) esamp::fail("--port = {}: must be in [0, 65535]", o.port);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGTERM and SIGINT go to one thread of their own, which shuts the server down in order; every
  // other thread (started below) inherits the mask. A gone client must not kill the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    const Options options = parse(argc, argv);
    esamp::server::Engine engine(options.engine);
    esamp::server::RepliesInFlight replies;
    httplib::Server server;
    const auto threads =
        static_cast<std::size_t>(options.engine.parallel + options.engine.queue + 8);
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    esamp::server::add_routes(server, engine, replies);

    int port = options.port;
    if (port == 0) {
      port = server.bind_to_any_port(options.host);
    } else if (!server.bind_to_port(options.host, port)) {
      port = -1;
    }
    if (port < 0) esamp::fail("cannot listen on {}:{}", options.host, options.port);
    std::printf("esamp-server: %s on http://%s:%d (parallel %d, ctx %d)\n",
                engine.model_name().c_str(), options.host.c_str(), port, options.engine.parallel,
                options.engine.ctx_size);
    std::fflush(stdout);

    std::thread stopper([&] {
      int signal_number = 0;
      sigwait(&stop_signals, &signal_number);
      std::fprintf(stderr, "esamp-server: signal %d: finishing the requests in flight\n",
                   signal_number);
      engine.stop_accepting();
      engine.drain(std::chrono::seconds(30));
      // The engine's jobs are done; their replies may still be on their way to the clients.
      if (!replies.wait(std::chrono::seconds(10)))
        std::fprintf(stderr, "esamp-server: replies still unwritten after 10 s: cut short\n");
      server.stop();
    });
    const bool listened = server.listen_after_bind();
    if (!listened) {
      std::fprintf(stderr, "esamp-server: the listening socket failed\n");
      stopper.detach();
      return 1;
    }
    stopper.join();
    std::fprintf(stderr, "esamp-server: stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "esamp-server: %s\n", e.what());
    return 1;
  }
}
