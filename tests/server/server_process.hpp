// esamp-server as a child process for the tests: started on a free loopback port (--port 0, read
// back from its first line on stdout), called with cpp-httplib or, where a test must cut the
// connection itself, over a raw socket; stopped with SIGTERM.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../model_dir.hpp"
#include "http.hpp"

namespace esamp::server::test {

using nlohmann::json;

class ServerProcess {
 public:
  // esamp-server on stories260K.gguf with `arguments` added.
  explicit ServerProcess(std::vector<std::string> arguments = {}) {
    std::vector<std::string> words = {
        ESAMP_SERVER_PROGRAM, "--model", esamp::test::model_file("stories260K.gguf"), "--port", "0",
        "--threads",          "1"};
    words.insert(words.end(), arguments.begin(), arguments.end());
    int out[2];
    REQUIRE(pipe(out) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (std::string& w : words) argv.push_back(w.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* const stream = fdopen(out[0], "r");
    char line[512] = {};
    const bool got = std::fgets(line, sizeof line, stream) != nullptr;
    std::fclose(stream);
    INFO("esamp-server's first line: " << line);
    REQUIRE(got);
    const std::string text = line;
    const std::size_t colon = text.rfind(':', text.find(" (parallel"));
    REQUIRE(colon != std::string::npos);
    port_ = std::stoi(text.substr(colon + 1));
  }
  ~ServerProcess() {
    if (pid_ > 0) stop();
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }

  // SIGTERM; returns the exit status (-1 when it did not exit normally).
  int stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds(60));
    return c;
  }

  struct Reply {
    int status = 0;
    std::string body;
    json json_body;  // null when the body is not JSON
    std::string retry_after;
  };
  Reply post(const std::string& path, const std::string& body) const {
    httplib::Client c = client();
    const auto result = c.Post(path.c_str(), body, "application/json");
    REQUIRE(result);
    Reply reply{result->status, result->body, json::parse(result->body, nullptr, false),
                result->get_header_value("Retry-After")};
    if (reply.json_body.is_discarded()) reply.json_body = nullptr;
    return reply;
  }
  Reply post(const std::string& path, const json& body) const { return post(path, body.dump()); }
  Reply get(const std::string& path) const {
    httplib::Client c = client();
    const auto result = c.Get(path.c_str());
    REQUIRE(result);
    Reply reply{result->status, result->body, json::parse(result->body, nullptr, false), ""};
    if (reply.json_body.is_discarded()) reply.json_body = nullptr;
    return reply;
  }

  // A value of /metrics (its first sample line starting with `name`), if there is one.
  std::optional<double> find_metric(const std::string& name) const {
    const std::string text = get("/metrics").body;
    const std::size_t at = text.find("\n" + name + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + name.size() + 2));
  }
  double metric(const std::string& name) const {
    const std::optional<double> value = find_metric(name);
    if (!value) FAIL("no metric " << name << " in /metrics");
    return *value;
  }

  // Polls `name` until it equals `value`, up to `seconds`; returns whether it did.
  bool metric_reaches(const std::string& name, double value, double seconds = 10) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (find_metric(name) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// A POST over a raw socket, so that a test can read part of the reply and then hang up.
class RawConnection {
 public:
  RawConnection(int port, const std::string& path, const std::string& body) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const std::string request = "POST " + path +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                "application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    REQUIRE(send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
  }
  ~RawConnection() { hang_up(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Reads until the reply so far holds `text`; returns what was read.
  std::string read_until(const std::string& text) {
    char buffer[4096];
    while (received_.find(text) == std::string::npos) {
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      REQUIRE(n > 0);
      received_.append(buffer, static_cast<std::size_t>(n));
    }
    return received_;
  }
  void hang_up() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::string received_;
};

// The choices' texts of a streamed reply (the SSE body), concatenated per choice; also checks the
// stream's shape: "data: " events, the last one [DONE].
struct Streamed {
  std::vector<std::string> texts;
  std::vector<std::string> finish_reasons;
  int events = 0;
  json last_chunk;  // the last JSON event (the usage one when asked for)
};
inline Streamed parse_stream(const std::string& body, int choices) {
  Streamed s;
  s.texts.resize(static_cast<std::size_t>(choices));
  s.finish_reasons.resize(static_cast<std::size_t>(choices));
  std::size_t at = 0;
  bool done = false;
  while (at < body.size()) {
    const std::size_t end = body.find("\n\n", at);
    REQUIRE(end != std::string::npos);
    const std::string event = body.substr(at, end - at);
    at = end + 2;
    if (event[0] == ':') continue;  // an SSE comment
    REQUIRE(event.rfind("data: ", 0) == 0);
    REQUIRE_FALSE(done);
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json chunk = json::parse(data);
    s.last_chunk = chunk;
    for (const json& choice : chunk.at("choices")) {
      const auto index = choice.at("index").get<std::size_t>();
      REQUIRE(index < s.texts.size());
      s.texts[index] += choice.contains("text")
                            ? choice.at("text").get<std::string>()
                            : choice.at("delta").value("content", std::string());
      if (!choice.at("finish_reason").is_null())
        s.finish_reasons[index] = choice.at("finish_reason").get<std::string>();
      ++s.events;
    }
  }
  CHECK(done);
  return s;
}

}  // namespace esamp::server::test
