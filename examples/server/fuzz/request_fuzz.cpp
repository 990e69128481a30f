// libFuzzer entry point for esamp-server's request parser. Any bytes, as the body of
// /v1/completions and of /v1/chat/completions, must either parse into parameters inside the
// limits (every field in its documented range) or give an ApiError 400 whose message is not empty
// and whose body is OpenAI's error object; any other exception is a finding.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "request.hpp"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "request_fuzz: %s\n", what);
  std::abort();
}

void check(const esamp::server::Request& r, const esamp::server::Limits& limits) {
  if (r.chat ? r.messages.empty() || !r.prompts.empty() : r.prompts.empty())
    finding("a request without a prompt was accepted");
  if (r.max_tokens < 1 || r.max_tokens > limits.max_tokens) finding("max_tokens out of range");
  if (r.n < 1 || r.n * static_cast<int>(r.chat ? 1 : r.prompts.size()) > limits.max_sequences)
    finding("n out of range");
  const esamp::Filter& f = r.filter;
  if (!(f.temperature >= 0 && f.temperature <= 2) || !(f.top_p > 0 && f.top_p <= 1) ||
      !(f.min_p >= 0 && f.min_p <= 1) || f.top_k < 0)
    finding("a sampling parameter out of range");
  if (r.beta && !(*r.beta >= 0 && std::isfinite(*r.beta))) finding("beta negative or not finite");
  if (r.stop.size() > 4) finding("more than 4 stop strings");
  for (const auto& s : r.stop)
    if (s.empty()) finding("an empty stop string");
}

void run(std::string_view body, bool chat) {
  esamp::server::Limits limits;
  limits.max_sequences = 4;
  limits.max_tokens = 512;
  try {
    const auto r = chat ? esamp::server::parse_chat_request(body, limits)
                        : esamp::server::parse_completion_request(body, limits);
    check(r, limits);
  } catch (const esamp::server::ApiError& e) {
    if (e.status != 400) finding("a parse error that is not 400");
    if (std::string_view(e.what()).empty()) finding("an error without a message");
    const auto error = nlohmann::json::parse(e.body(), nullptr, false);
    if (error.is_discarded() || !error.at("error").at("message").is_string() ||
        error.at("error").at("type") != "invalid_request_error")
      finding("an error body that is not OpenAI's");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  run(body, false);
  run(body, true);
  return 0;
}
