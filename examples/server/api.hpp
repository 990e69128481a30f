// esamp-server's HTTP API on cpp-httplib: the OpenAI routes (/v1/completions,
// /v1/chat/completions, /v1/models), /health and /metrics, OpenAI error bodies for every error,
// one log line per request.
#pragma once

#include <cstddef>

namespace httplib {
class Server;
}  // namespace httplib

namespace esamp::server {

class Engine;

constexpr std::size_t kMaxBodyBytes = 1 << 20;  // a larger body is 413

// Installs the routes on `server`; `engine` must outlive it.
void add_routes(httplib::Server& server, Engine& engine);

}  // namespace esamp::server
