// The request parser of esamp-server: the JSON body of POST /v1/completions or
// /v1/chat/completions -> the request's parameters, or an ApiError (HTTP 400) whose message names
// the field and its allowed range. It knows nothing of the model: the prompt's length is checked
// where it is tokenized (engine.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "esamp/sampling.hpp"

namespace esamp::server {

// An error answered with OpenAI's body: {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
  ApiError(int http_status, const std::string& message, std::string field = "",
           std::string reason = "")
      : std::runtime_error(message),
        status(http_status),
        param(std::move(field)),
        code(std::move(reason)) {}
  int status;         // the HTTP status
  std::string param;  // the offending field ("" when none)
  std::string code;   // a short machine-readable reason ("" when none)
  std::string type() const;
  std::string body() const;  // the JSON body
};

struct ChatMessage {
  std::string role, content;
};

// What the parser checks against: the server's own bounds.
struct Limits {
  int max_sequences = 4;                   // --parallel: n times the number of prompts
  int max_tokens = 4096;                   // --ctx-size: a sequence cannot be longer
  int completion_default_max_tokens = 16;  // OpenAI's default
  int chat_default_max_tokens = 256;       // OpenAI's is "up to the context": bounded here
};

struct Request {
  bool chat = false;
  std::vector<std::string> prompts;   // completions: each its own group
  std::vector<ChatMessage> messages;  // chat: one prompt, rendered by the model's template
  int max_tokens = 16;                // new tokens per choice
  Filter filter;                      // temperature, top_k, top_p, min_p
  int n = 1;                          // choices per prompt: one esamp group
  std::optional<std::uint64_t> seed;  // absent: drawn at random
  std::vector<std::string> stop;      // at most 4, none empty
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<float> beta;   // esamp.beta; absent: the server's --beta
  bool warm_start = true;      // esamp.warm_start
};

// Throw ApiError(400) on a body that is not a JSON object, a field of the wrong type or out of
// range, a missing prompt (messages).
Request parse_completion_request(std::string_view body, const Limits& limits);
Request parse_chat_request(std::string_view body, const Limits& limits);

}  // namespace esamp::server
