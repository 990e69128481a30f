// The request parser: see request.hpp.
#include "request.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace esamp::server {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

// A field's value, or null when it is absent or null (OpenAI treats both as "not given").
const json& field(const json& object, const char* key) {
  static const json null_value;
  const auto it = object.find(key);
  return it == object.end() ? null_value : *it;
}

std::string type_name(const json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  return std::string("a ") + value.type_name();
}

// An integer field in [lo, hi] (absent: `fallback`).
int integer(const json& object, const char* key, long long lo, long long hi, int fallback) {
  const json& value = field(object, key);
  if (value.is_null()) return fallback;
  if (!value.is_number_integer())
    bad(key,
        fmt::format("'{}' must be an integer in [{}, {}], got {}", key, lo, hi, type_name(value)));
  const bool in_range =
      value.is_number_unsigned()
          ? value.get<unsigned long long>() <= static_cast<unsigned long long>(hi) &&
                (lo <= 0 || value.get<unsigned long long>() >= static_cast<unsigned long long>(lo))
          : value.get<long long>() >= lo && value.get<long long>() <= hi;
  if (!in_range) bad(key, fmt::format("'{}' = {}: must be in [{}, {}]", key, value.dump(), lo, hi));
  return static_cast<int>(value.get<long long>());
}

// A finite number field checked by `ok`, whose allowed range `range` reads like "[0, 2]".
template <class Check>
float number(const json& object, const char* key, float fallback, const char* range, Check ok,
             const std::string& param) {
  const json& value = field(object, key);
  if (value.is_null()) return fallback;
  if (!value.is_number())
    bad(param, fmt::format("'{}' must be a number in {}, got {}", param, range, type_name(value)));
  const double x = value.get<double>();
  if (!std::isfinite(x) || !ok(x))
    bad(param, fmt::format("'{}' = {}: must be in {}", param, x, range));
  return static_cast<float>(x);
}

bool boolean(const json& object, const char* key, bool fallback, const std::string& param) {
  const json& value = field(object, key);
  if (value.is_null()) return fallback;
  if (!value.is_boolean())
    bad(param, fmt::format("'{}' must be a boolean, got {}", param, type_name(value)));
  return value.get<bool>();
}

json parse_object(std::string_view body) {
  json root = json::parse(body.begin(), body.end(), nullptr, false);
  if (root.is_discarded()) bad("", "the request body is not valid JSON");
  if (!root.is_object())
    bad("", fmt::format("the request body must be a JSON object, got {}", type_name(root)));
  return root;
}

// The fields both endpoints share.
void parse_common(const json& root, const Limits& limits, int default_max_tokens, Request& r) {
  const json& model = field(root, "model");
  if (!model.is_null() && !model.is_string())
    bad("model", fmt::format("'model' must be a string, got {}", type_name(model)));
  r.max_tokens = integer(root, "max_tokens", 1, limits.max_tokens, default_max_tokens);
  if (r.chat)
    r.max_tokens = integer(root, "max_completion_tokens", 1, limits.max_tokens, r.max_tokens);
  r.filter.temperature = number(
      root, "temperature", 1.0f, "[0, 2]", [](double x) { return x >= 0 && x <= 2; },
      "temperature");
  r.filter.top_p = number(
      root, "top_p", 1.0f, "(0, 1]", [](double x) { return x > 0 && x <= 1; }, "top_p");
  r.filter.min_p = number(
      root, "min_p", 0.0f, "[0, 1]", [](double x) { return x >= 0 && x <= 1; }, "min_p");
  r.filter.top_k = integer(root, "top_k", 0, std::numeric_limits<int>::max(), 0);
  r.n = integer(root, "n", 1, limits.max_sequences, 1);

  const json& seed = field(root, "seed");
  if (!seed.is_null()) {
    if (!seed.is_number_integer())
      bad("seed", fmt::format("'seed' must be an integer, got {}", type_name(seed)));
    r.seed = seed.is_number_unsigned() ? seed.get<std::uint64_t>()
                                       : static_cast<std::uint64_t>(seed.get<std::int64_t>());
  }

  const json& stop = field(root, "stop");
  if (stop.is_string()) {
    r.stop.push_back(stop.get<std::string>());
  } else if (stop.is_array()) {
    if (stop.size() > 4) bad("stop", fmt::format("'stop' has {} strings: at most 4", stop.size()));
    for (const json& s : stop) {
      if (!s.is_string())
        bad("stop",
            fmt::format("'stop' must be a string or a list of strings, holds {}", type_name(s)));
      r.stop.push_back(s.get<std::string>());
    }
  } else if (!stop.is_null()) {
    bad("stop",
        fmt::format("'stop' must be a string or a list of strings, got {}", type_name(stop)));
  }
  for (const std::string& s : r.stop)
    if (s.empty()) bad("stop", "'stop' holds an empty string");

  r.stream = boolean(root, "stream", false, "stream");
  const json& options = field(root, "stream_options");
  if (!options.is_null()) {
    if (!options.is_object())
      bad("stream_options",
          fmt::format("'stream_options' must be an object, got {}", type_name(options)));
    r.include_usage = boolean(options, "include_usage", false, "stream_options.include_usage");
  }

  const json& esamp = field(root, "esamp");
  if (!esamp.is_null()) {
    if (!esamp.is_object())
      bad("esamp", fmt::format("'esamp' must be an object with 'beta' and 'warm_start', got {}",
                               type_name(esamp)));
    for (const auto& item : esamp.items())
      if (item.key() != "beta" && item.key() != "warm_start")
        bad("esamp." + item.key(),
            fmt::format("'esamp.{}' is unknown: 'esamp' takes 'beta' and 'warm_start'",
                        item.key()));
    if (!field(esamp, "beta").is_null())
      r.beta = number(
          esamp, "beta", 0.0f, "[0, inf) (finite)", [](double x) { return x >= 0; }, "esamp.beta");
    r.warm_start = boolean(esamp, "warm_start", true, "esamp.warm_start");
  }
}

}  // namespace

std::string ApiError::type() const {
  return status >= 500 ? "server_error" : "invalid_request_error";
}

std::string ApiError::body() const {
  json error = {{"message", what()},
                {"type", type()},
                {"param", param.empty() ? json() : json(param)},
                {"code", code.empty() ? json() : json(code)}};
  return json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

Request parse_completion_request(std::string_view body, const Limits& limits) {
  const json root = parse_object(body);
  Request r;
  const json& prompt = field(root, "prompt");
  if (prompt.is_string()) {
    r.prompts.push_back(prompt.get<std::string>());
  } else if (prompt.is_array() && !prompt.empty()) {
    for (const json& p : prompt) {
      if (!p.is_string())
        bad("prompt",
            fmt::format("'prompt' must be a string or a list of strings, holds {}", type_name(p)));
      r.prompts.push_back(p.get<std::string>());
    }
  } else if (prompt.is_null()) {
    bad("prompt", "'prompt' is missing: a string or a list of strings");
  } else {
    bad("prompt", fmt::format("'prompt' must be a string or a non-empty list of strings, got {}",
                              prompt.is_array() ? "an empty list" : type_name(prompt)));
  }
  parse_common(root, limits, limits.completion_default_max_tokens, r);
  const auto sequences = static_cast<long long>(r.prompts.size()) * r.n;
  if (sequences > limits.max_sequences)
    bad("n", fmt::format("{} prompts x n = {} = {} sequences: at most {} (--parallel)",
                         r.prompts.size(), r.n, sequences, limits.max_sequences));
  return r;
}

Request parse_chat_request(std::string_view body, const Limits& limits) {
  const json root = parse_object(body);
  Request r;
  r.chat = true;
  const json& messages = field(root, "messages");
  if (messages.is_null()) bad("messages", "'messages' is missing: a list of {role, content}");
  if (!messages.is_array() || messages.empty())
    bad("messages", fmt::format("'messages' must be a non-empty list of {{role, content}}, got {}",
                                messages.is_array() ? "an empty list" : type_name(messages)));
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object())
      bad(where,
          fmt::format("'{}' must be an object with role and content, got {}", where, type_name(m)));
    const json& role = field(m, "role");
    if (!role.is_string()) bad(where + ".role", fmt::format("'{}.role' must be a string", where));
    const json& content = field(m, "content");
    std::string text;
    if (content.is_string()) {
      text = content.get<std::string>();
    } else if (content.is_array()) {  // content parts: only text ones
      for (const json& part : content) {
        if (!part.is_object() || field(part, "type") != "text" || !field(part, "text").is_string())
          bad(where + ".content",
              fmt::format("'{}.content' parts must be {{\"type\": \"text\", \"text\": ...}}",
                          where));
        text += field(part, "text").get<std::string>();
      }
    } else {
      bad(where + ".content",
          fmt::format("'{}.content' must be a string or a list of text parts, got {}", where,
                      type_name(content)));
    }
    r.messages.push_back({role.get<std::string>(), std::move(text)});
  }
  parse_common(root, limits, limits.chat_default_max_tokens, r);
  return r;
}

}  // namespace esamp::server
