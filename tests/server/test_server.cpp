// esamp-server against stories260K.gguf on a free loopback port: what it generates, its
// continuous batching, its answers to bad input, and its faults.
#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <thread>

#include "llama_cpp_generation.hpp"
#include "server_process.hpp"

namespace esamp::server::test {
namespace {

std::vector<std::string> texts_of(const json& reply) {
  std::vector<std::string> texts;
  for (const json& choice : reply.at("choices")) texts.push_back(choice.at("text"));
  return texts;
}

json seeded(int n, int max_tokens, float beta, std::uint64_t seed) {
  return {{"prompt", "Tom had a big red ball."},
          {"n", n},
          {"max_tokens", max_tokens},
          {"temperature", 0.9},
          {"top_k", 40},
          {"top_p", 0.95},
          {"min_p", 0.02},
          {"seed", seed},
          {"esamp", {{"beta", beta}, {"warm_start", false}}}};
}

// A valid request still gets a reply.
void check_serving(const ServerProcess& server) {
  const auto reply = server.post("/v1/completions", json{{"prompt", "Lily"}, {"max_tokens", 4}});
  CHECK(reply.status == 200);
}

}  // namespace

TEST_CASE("a greedy completion with beta 0 is the reference text") {
  ServerProcess server;
  std::ifstream file(esamp::test::model_file("stories260K.greedy.txt"));
  const std::string reference{std::istreambuf_iterator<char>(file),
                              std::istreambuf_iterator<char>()};
  const auto reply = server.post("/v1/completions", json{{"prompt", ""},
                                                         {"n", 3},
                                                         {"max_tokens", 200},
                                                         {"temperature", 0},
                                                         {"esamp", {{"beta", 0}}}});
  REQUIRE(reply.status == 200);
  const auto texts = texts_of(reply.json_body);
  REQUIRE(texts.size() == 3);
  // SentencePiece's first piece carries a space; the reference (llama2.c) strips it.
  for (const std::string& text : texts) CHECK(text + "\n" == " " + reference);
  CHECK(reply.json_body.at("usage").at("completion_tokens") == 600);
  CHECK(reply.json_body.at("usage").at("prompt_tokens") == 1);
}

TEST_CASE("n = 4 gives four choices, each with its index and finish reason") {
  ServerProcess server;
  const auto reply = server.post(
      "/v1/completions",
      json{{"prompt", "Once upon a time"}, {"n", 4}, {"max_tokens", 12}, {"model", "anything"}});
  REQUIRE(reply.status == 200);
  const json& body = reply.json_body;
  CHECK(body.at("object") == "text_completion");
  CHECK(body.at("model") == "stories260K.gguf");
  REQUIRE(body.at("choices").size() == 4);
  int tokens = 0;
  for (int i = 0; i < 4; ++i) {
    const json& choice = body.at("choices")[static_cast<std::size_t>(i)];
    CHECK(choice.at("index") == i);
    const std::string reason = choice.at("finish_reason");
    CHECK((reason == "length" || reason == "stop"));
    CHECK_FALSE(choice.at("text").get<std::string>().empty());
  }
  tokens = body.at("usage").at("completion_tokens");
  CHECK(tokens > 4);
  CHECK(tokens <= 48);
  CHECK(body.at("esamp").at("beta") == 0.5);
  CHECK(body.at("esamp").at("warm_start") == true);
  CHECK(body.at("esamp").at("rows").get<int>() > 0);
  CHECK(body.at("esamp").at("updates").get<int>() > 0);
}

TEST_CASE("a list of prompts gives each its own group of n choices") {
  ServerProcess server;
  json body = seeded(2, 16, 0.0f, 5);
  body["prompt"] = {"Tom had a big red ball.", "Tom had a big red ball."};
  const auto reply = server.post("/v1/completions", body);
  REQUIRE(reply.status == 200);
  const auto texts = texts_of(reply.json_body);
  REQUIRE(texts.size() == 4);
  // Choice i draws with the seed's stream i: the same prompt twice gives four different draws.
  CHECK(texts[0] != texts[2]);
  // The esamp counters are the request's: both groups trained, at β = 0 none mixed.
  const json& esamp = reply.json_body.at("esamp");
  CHECK(esamp.at("rows_mixed") == 0);
  CHECK(esamp.at("rows_trained") == esamp.at("rows"));
  CHECK(esamp.at("updates").get<int>() > 0);
  CHECK(std::isfinite(esamp.at("mean_loss").get<double>()));
}

TEST_CASE("beta 0 samples plain llama.cpp's tokens for the same seed, beta 1 does not") {
  // Plain llama.cpp, as the adapter's tests run it: one batch of 4 samples, seeded per sample.
  const llama_cpp::ModelPtr model =
      llama_cpp::load_model(esamp::test::model_file("stories260K.gguf"));
  generation::GenerationSettings settings;
  settings.samples = 4;
  settings.max_new_tokens = 48;
  settings.filter = {0.9f, 40, 0.95f, 0.02f};
  settings.seed = 11;
  settings.stop_at_end_of_text = false;
  settings.score_with_base_model = false;
  llama_cpp::Generator generator(model.get(), {4, 256, 1}, nullptr);
  const generation::GenerationResult plain =
      generator.generate("Tom had a big red ball.", settings);
  std::vector<std::string> expected;
  for (const auto& sample : plain.samples) expected.push_back(sample.text);

  ServerProcess server;
  const auto zero = server.post("/v1/completions", seeded(4, 48, 0.0f, 11));
  REQUIRE(zero.status == 200);
  CHECK(texts_of(zero.json_body) == expected);
  const auto one = server.post("/v1/completions", seeded(4, 48, 1.0f, 11));
  REQUIRE(one.status == 200);
  CHECK(texts_of(one.json_body) != expected);
  CHECK(server.metric("esamp_rows_mixed_total") > 0);
  // Each reply counts its own request's rows: at β = 0 the distiller trains but mixes nothing.
  const json& unmixed = zero.json_body.at("esamp");
  CHECK(unmixed.at("rows_mixed") == 0);
  CHECK(unmixed.at("rows_trained").get<int>() > 0);
  CHECK(std::isfinite(unmixed.at("mean_loss").get<double>()));
  const json& mixed = one.json_body.at("esamp");
  CHECK(mixed.at("rows_mixed").get<int>() > 0);
  CHECK(mixed.at("rows_mixed").get<int>() <= mixed.at("rows").get<int>());
  CHECK(std::isfinite(mixed.at("mean_loss").get<double>()));
  CHECK(mixed.at("mean_loss").get<double>() > 0.0);
}

TEST_CASE("a prompt longer than --batch-size is decoded in chunks to the same text") {
  std::string prompt;
  for (int i = 0; i < 12; ++i) prompt += "Tom had a big red ball. ";
  const json request = seeded(2, 24, 0.5f, 9);
  json long_prompt = request;
  long_prompt["prompt"] = prompt;
  ServerProcess whole, chunked({"--batch-size", "16"});
  const auto reply = whole.post("/v1/completions", long_prompt);
  REQUIRE(reply.status == 200);
  CHECK(reply.json_body.at("usage").at("prompt_tokens").get<int>() > 3 * 16);
  CHECK(texts_of(chunked.post("/v1/completions", long_prompt).json_body) ==
        texts_of(reply.json_body));
}

TEST_CASE("two concurrent requests with different beta each get what they get alone") {
  ServerProcess server({"--parallel", "5"});  // room for both at once
  const json a = seeded(2, 96, 0.3f, 21), b = seeded(3, 96, 1.5f, 22);
  const double steps_before = server.metric("esamp_decode_steps_total");
  const auto alone_a = texts_of(server.post("/v1/completions", a).json_body);
  const double steps_a = server.metric("esamp_decode_steps_total") - steps_before;
  const auto alone_b = texts_of(server.post("/v1/completions", b).json_body);
  const double steps_b = server.metric("esamp_decode_steps_total") - steps_before - steps_a;
  REQUIRE(alone_a.size() == 2);
  REQUIRE(alone_b.size() == 3);

  // Several rounds, so that the two overlap; warm start off: neither depends on the other.
  int overlapped = 0;  // rounds that took fewer decode steps than the two alone
  for (int round = 0; round < 3; ++round) {
    const double before = server.metric("esamp_decode_steps_total");
    std::vector<std::string> together_a, together_b;
    std::thread other([&] { together_b = texts_of(server.post("/v1/completions", b).json_body); });
    together_a = texts_of(server.post("/v1/completions", a).json_body);
    other.join();
    CHECK(together_a == alone_a);
    CHECK(together_b == alone_b);
    const double steps = server.metric("esamp_decode_steps_total") - before;
    INFO("round " << round << ": " << steps << " steps, alone " << steps_a << " + " << steps_b);
    CHECK(steps <= steps_a + steps_b);
    if (steps < steps_a + steps_b) ++overlapped;
  }
  CHECK(overlapped > 0);
  CHECK(alone_a != texts_of(server.post("/v1/completions", seeded(2, 96, 1.5f, 21)).json_body));
}

TEST_CASE("a request's text without the warm start does not depend on the requests before it") {
  ServerProcess server;
  const json request = seeded(2, 64, 0.8f, 7);
  const auto first = texts_of(server.post("/v1/completions", request).json_body);
  // Other groups train and close in between (with the warm start on, they set the prior).
  json other = seeded(4, 64, 2.0f, 8);
  other["esamp"]["warm_start"] = true;
  for (int i = 0; i < 3; ++i) REQUIRE(server.post("/v1/completions", other).status == 200);
  CHECK(texts_of(server.post("/v1/completions", request).json_body) == first);
}

TEST_CASE("the streamed chunks concatenate to the non-streamed text") {
  ServerProcess server;
  for (const json& stop : {json(nullptr), json("Tom"), json({"ball", ".", "x y"})}) {
    json request = seeded(3, 40, 0.5f, 3);
    request["stop"] = stop;
    const auto whole = server.post("/v1/completions", request);
    REQUIRE(whole.status == 200);
    request["stream"] = true;
    request["stream_options"] = {{"include_usage", true}};
    const auto streamed = server.post("/v1/completions", request);
    REQUIRE(streamed.status == 200);
    const Streamed s = parse_stream(streamed.body, 3);
    INFO("stop " << stop.dump());
    CHECK(s.texts == texts_of(whole.json_body));
    for (std::size_t i = 0; i < 3; ++i)
      CHECK(s.finish_reasons[i] == whole.json_body.at("choices")[i].at("finish_reason"));
    // One event per generated token (and per choice's end).
    const int tokens = whole.json_body.at("usage").at("completion_tokens");
    CHECK(s.events >= tokens);
    CHECK(s.events <= tokens + 3);
    CHECK(s.last_chunk.at("usage") == whole.json_body.at("usage"));
    CHECK(s.last_chunk.at("esamp") == whole.json_body.at("esamp"));  // seeded, no warm start
    if (!stop.is_null())
      for (const std::string& text : s.texts)
        for (const std::string& word : stop.is_string() ? std::vector<std::string>{stop}
                                                        : stop.get<std::vector<std::string>>())
          CHECK(text.find(word) == std::string::npos);
  }
}

TEST_CASE("chat completions through a chat template, streamed and not") {
  ServerProcess server({"--chat-template", "chatml"});
  const json request = {{"messages",
                         {{{"role", "system"}, {"content", "Tell a story."}},
                          {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Lily"}}}}}}},
                        {"max_tokens", 24},
                        {"n", 2},
                        {"seed", 4},
                        {"esamp", {{"beta", 0.5}, {"warm_start", false}}}};
  const auto whole = server.post("/v1/chat/completions", request);
  REQUIRE(whole.status == 200);
  const json& body = whole.json_body;
  CHECK(body.at("object") == "chat.completion");
  REQUIRE(body.at("choices").size() == 2);
  // chatml wraps each message in <|im_start|>role ... <|im_end|>: far more than the two words.
  CHECK(body.at("usage").at("prompt_tokens").get<int>() > 10);
  std::vector<std::string> texts;
  for (const json& choice : body.at("choices")) {
    CHECK(choice.at("message").at("role") == "assistant");
    texts.push_back(choice.at("message").at("content"));
  }
  json streamed_request = request;
  streamed_request["stream"] = true;
  const auto streamed = server.post("/v1/chat/completions", streamed_request);
  REQUIRE(streamed.status == 200);
  const Streamed s = parse_stream(streamed.body, 2);
  CHECK(s.texts == texts);
  CHECK(streamed.body.find("\"object\":\"chat.completion.chunk\"") != std::string::npos);
  CHECK(streamed.body.find("\"role\":\"assistant\"") != std::string::npos);
}

TEST_CASE(
    "every bad input gets OpenAI's error body naming the field, and the server keeps serving") {
  ServerProcess server({"--ctx-size", "256", "--parallel", "4"});
  struct Case {
    std::string body;
    int status;
    std::string param;    // "" for none
    std::string message;  // a part of the message
  };
  const std::string long_prompt = [] {
    std::string p;
    for (int i = 0; i < 300; ++i) p += " ball";
    return p;
  }();
  const std::vector<Case> cases = {
      {"{\"prompt\": \"a\",", 400, "", "not valid JSON"},
      {"[1, 2]", 400, "", "must be a JSON object"},
      {R"({"max_tokens": 4})", 400, "prompt", "'prompt' is missing"},
      {R"({"prompt": 7})", 400, "prompt", "must be a string or a non-empty list"},
      {R"({"prompt": [1, 2]})", 400, "prompt", "must be a string or a list of strings"},
      {R"({"prompt": "a", "max_tokens": "ten"})", 400, "max_tokens", "must be an integer"},
      {R"({"prompt": "a", "max_tokens": 0})", 400, "max_tokens", "must be in [1, 256]"},
      {R"({"prompt": "a", "max_tokens": 100000})", 400, "max_tokens", "must be in [1, 256]"},
      {R"({"prompt": "a", "n": 0})", 400, "n", "must be in [1, 4]"},
      {R"({"prompt": "a", "n": 5})", 400, "n", "must be in [1, 4]"},
      {R"({"prompt": "a", "n": 2.5})", 400, "n", "must be an integer"},
      {R"({"prompt": ["a", "b", "c"], "n": 2})", 400, "n", "at most 4 (--parallel)"},
      {R"({"prompt": "a", "temperature": 2.5})", 400, "temperature", "must be in [0, 2]"},
      {R"({"prompt": "a", "temperature": "hot"})", 400, "temperature", "must be a number"},
      {R"({"prompt": "a", "top_p": 0})", 400, "top_p", "must be in (0, 1]"},
      {R"({"prompt": "a", "top_p": 1.5})", 400, "top_p", "must be in (0, 1]"},
      {R"({"prompt": "a", "min_p": -0.1})", 400, "min_p", "must be in [0, 1]"},
      {R"({"prompt": "a", "top_k": -1})", 400, "top_k", "must be in [0, "},
      {R"({"prompt": "a", "seed": "x"})", 400, "seed", "must be an integer"},
      {R"({"prompt": "a", "stop": 3})", 400, "stop", "must be a string or a list"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", 400, "stop", "at most 4"},
      {R"({"prompt": "a", "stop": ""})", 400, "stop", "empty string"},
      {R"({"prompt": "a", "stream": "yes"})", 400, "stream", "must be a boolean"},
      {R"({"prompt": "a", "esamp": 0.5})", 400, "esamp", "must be an object"},
      {R"({"prompt": "a", "esamp": {"beta": -0.5}})", 400, "esamp.beta", "must be in [0, inf)"},
      // JSON has no infinity: a number too large for a double is not valid JSON.
      {R"({"prompt": "a", "esamp": {"beta": 1e999}})", 400, "", "not valid JSON"},
      {R"({"prompt": "a", "esamp": {"beta": "big"}})", 400, "esamp.beta", "must be a number"},
      {R"({"prompt": "a", "esamp": {"warm_start": 1}})", 400, "esamp.warm_start", "boolean"},
      {R"({"prompt": "a", "esamp": {"betta": 1}})", 400, "esamp.betta", "is unknown"},
      {json{{"prompt", long_prompt}}.dump(), 400, "prompt", "the context holds 256"},
      {json{{"prompt", "a"}, {"n", 4}, {"max_tokens", 100}}.dump(), 400, "max_tokens",
       "the context holds 256"},
  };
  for (const Case& c : cases) {
    INFO("body " << c.body);
    const auto reply = server.post("/v1/completions", c.body);
    CHECK(reply.status == c.status);
    REQUIRE(reply.json_body.is_object());
    const json& error = reply.json_body.at("error");
    CHECK(error.at("type") == "invalid_request_error");
    CHECK(error.at("message").get<std::string>().find(c.message) != std::string::npos);
    CHECK(error.at("param") == (c.param.empty() ? json() : json(c.param)));
    CHECK(error.contains("code"));
  }
  check_serving(server);

  SECTION("chat without a chat template") {
    const auto reply = server.post("/v1/chat/completions",
                                   json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
    CHECK(reply.status == 400);
    CHECK(reply.json_body.at("error").at("message").get<std::string>().find("no chat template") !=
          std::string::npos);
    CHECK(server.post("/v1/chat/completions", json{{"messages", json::array()}}).status == 400);
    CHECK(server.post("/v1/chat/completions", json{{"messages", {{{"role", "user"}}}}})
              .json_body.at("error")
              .at("param") == "messages[0].content");
  }
  SECTION("an unknown route") {
    const auto reply = server.get("/v1/nothing");
    CHECK(reply.status == 404);
    CHECK(reply.json_body.at("error").at("message") == "unknown route: GET /v1/nothing");
  }
  SECTION("a body over the limit") {
    const auto reply =
        server.post("/v1/completions", json{{"prompt", std::string(2 << 20, 'a')}}.dump());
    CHECK(reply.status == 413);
    CHECK(reply.json_body.at("error").at("code") == "request_too_large");
  }
  check_serving(server);
}

TEST_CASE("a full queue is 503 with Retry-After") {
  ServerProcess server({"--parallel", "1", "--queue", "1", "--ctx-size", "4096"});
  // One long request runs, one waits, the next is refused.
  json slow = {{"prompt", "Once"}, {"max_tokens", 4000}, {"stream", true}};
  RawConnection running(server.port(), "/v1/completions", slow.dump());
  running.read_until("data: ");
  std::thread waiting([&] {
    server.post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", 2}});
  });
  CHECK(server.metric_reaches("esamp_queue_length", 1));
  const auto refused = server.post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", 2}});
  CHECK(refused.status == 503);
  CHECK(refused.retry_after == "1");
  CHECK(refused.json_body.at("error").at("code") == "queue_full");
  CHECK(refused.json_body.at("error").at("type") == "server_error");
  running.hang_up();
  waiting.join();
  CHECK(server.metric_reaches("esamp_active_sequences", 0));
  check_serving(server);
}

TEST_CASE("a client that disconnects frees its sequences") {
  ServerProcess server({"--parallel", "4", "--ctx-size", "8192"});
  SECTION("mid-stream") {
    RawConnection c(
        server.port(), "/v1/completions",
        json{{"prompt", "Once"}, {"n", 4}, {"max_tokens", 2000}, {"stream", true}}.dump());
    c.read_until("data: ");
    CHECK(server.metric_reaches("esamp_active_sequences", 4));
    c.hang_up();
  }
  SECTION("while a non-streamed reply is generated") {
    RawConnection c(server.port(), "/v1/completions",
                    json{{"prompt", "Once"}, {"n", 4}, {"max_tokens", 2000}}.dump());
    CHECK(server.metric_reaches("esamp_active_sequences", 4));
    c.hang_up();
  }
  CHECK(server.metric_reaches("esamp_active_sequences", 0));
  CHECK(server.metric("esamp_open_groups") == 0);
  check_serving(server);
  CHECK(server.metric("esamp_requests_total{status=\"200\"}") >= 1);
}

TEST_CASE("/v1/models, /health and /metrics") {
  ServerProcess server;
  const auto models = server.get("/v1/models");
  CHECK(models.status == 200);
  CHECK(models.json_body.at("data")[0].at("id") == "stories260K.gguf");
  const auto health = server.get("/health");
  CHECK(health.status == 200);
  CHECK(health.json_body.at("status") == "ok");
  check_serving(server);
  CHECK(server.post("/v1/completions", json{{"n", 2}}).status == 400);
  // Both are published a moment after the reply: the gauge after the step, the count after
  // the response is written.
  CHECK(server.metric_reaches("esamp_active_sequences", 0));
  CHECK(server.metric_reaches("esamp_requests_total{status=\"400\"}", 1));
  const std::string metrics = server.get("/metrics").body;
  for (const char* name :
       {"esamp_requests_total{status=\"200\"}", "esamp_prompt_tokens_total 2",
        "esamp_generated_tokens_total", "esamp_queue_length 0", "esamp_active_sequences 0",
        "esamp_rows_mixed_total", "esamp_rows_trained_total", "esamp_rows_skipped_total",
        "esamp_mean_loss", "# TYPE esamp_requests_total counter"}) {
    INFO(name << " in\n" << metrics);
    CHECK(metrics.find(name) != std::string::npos);
  }
}

TEST_CASE("SIGTERM finishes the requests in flight and exits 0") {
  ServerProcess server;
  RawConnection c(server.port(), "/v1/completions",
                  json{{"prompt", "Once"}, {"max_tokens", 600}, {"stream", true}}.dump());
  c.read_until("data: ");
  std::atomic<int> status{-2};
  std::thread stopper([&] { status = server.stop(); });
  CHECK(c.read_until("data: [DONE]").find("\"finish_reason\":\"length\"") != std::string::npos);
  stopper.join();
  CHECK(status == 0);
}

}  // namespace esamp::server::test
