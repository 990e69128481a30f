// The llama engine: llama2.c's greedy reference from both file formats, batching, sequence
// handling.
#include <catch2/catch.hpp>
#include <map>
#include <memory>

#include "engine_test_support.hpp"

namespace esamp::llama::test {
namespace {

std::string reference_text() {
  const std::vector<std::uint8_t> bytes = file_bytes(test_data_file("stories260K.greedy.txt"));
  return {bytes.begin(), bytes.end()};
}

}  // namespace

TEST_CASE("greedy decoding of stories260K.gguf prints llama2.c's reference byte for byte") {
  const Generation generation = greedy_generation(gguf_model(), 200);
  CHECK(generation.tokens.size() == 201);
  REQUIRE(generation.text == reference_text());
}

TEST_CASE("greedy decoding of stories260K.bin prints llama2.c's reference byte for byte") {
  const Generation generation = greedy_generation(llama2c_model(), 200);
  CHECK(generation.tokens.size() == 201);
  REQUIRE(generation.text == reference_text());
}

TEST_CASE("a batch of sequences of different lengths gives each sequence's logits when run alone") {
  const Model& model = gguf_model();
  const Tokenizer tokenizer(model.vocabulary);
  const std::vector<std::string> prompts{"", "Tom", "The cat sat on the mat.",
                                         "Once upon a time, there was a little dog named Max."};
  Engine batched(model);
  // Each sequence also runs alone in its own engine; token i of every sequence is teacher-forced,
  // so both engines see the same inputs whatever their logits.
  std::map<SequenceId, std::unique_ptr<Engine>> alone_engines;
  std::map<SequenceId, SequenceId> alone_id;
  std::map<SequenceId, std::vector<TokenId>> pending_tokens;
  const auto open = [&](const std::string& prompt) {
    const SequenceId id = batched.open_sequence();
    auto alone = std::make_unique<Engine>(model);
    alone_id[id] = alone->open_sequence();
    alone_engines[id] = std::move(alone);
    std::vector<TokenId> tokens = tokenizer.encode(prompt, true, false);
    for (int i = 0; i < 12; ++i) tokens.push_back(static_cast<TokenId>((37 * i + 11 * id) % 512));
    pending_tokens[id] = tokens;
    return id;
  };
  for (const std::string& prompt : prompts) open(prompt);

  int steps = 0;
  while (!pending_tokens.empty()) {
    std::vector<StepRow> rows;
    for (auto& [id, tokens] : pending_tokens) rows.push_back({id, tokens.front()});
    const RowMatrix batched_logits = batched.step(rows);
    REQUIRE(batched_logits.rows() == static_cast<Eigen::Index>(rows.size()));
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const SequenceId id = rows[r].sequence;
      const std::vector<StepRow> alone_row{{alone_id[id], rows[r].token}};
      const RowMatrix& alone_logits = alone_engines[id]->step(alone_row);
      // fp32 sums in another order: about 1e-6 relative per layer on logits of magnitude ~10.
      for (Eigen::Index v = 0; v < alone_logits.cols(); ++v)
        REQUIRE_THAT(batched_logits(static_cast<Eigen::Index>(r), v),
                     Catch::Matchers::WithinAbs(alone_logits(0, v), 1e-4));
      CHECK(batched.sequence_length(id) == alone_engines[id]->sequence_length(alone_id[id]));
      auto& tokens = pending_tokens[id];
      tokens.erase(tokens.begin());
      if (tokens.empty()) {
        batched.close_sequence(id);
        pending_tokens.erase(id);
      }
    }
    // Sequences join while others are mid-way.
    if (++steps == 5) open("A new story joins late.");
  }
  CHECK(steps > 12);
}

TEST_CASE("the engine refuses a token beyond the model's context length") {
  const Model& model = llama2c_model();
  REQUIRE(model.hparams.context_length == 512);
  Engine engine(model);
  const SequenceId sequence = engine.open_sequence();
  const std::vector<TokenId> tokens(512, 5);
  engine.prefill(sequence, tokens);
  CHECK(engine.sequence_length(sequence) == 512);
  const std::vector<StepRow> rows{{sequence, 5}};
  CHECK_THROWS_WITH(engine.step(rows), Catch::Contains("already holds 512 tokens"));
  CHECK(engine.sequence_length(sequence) == 512);
}

TEST_CASE("unknown, closed or repeated sequences and tokens outside the vocabulary are errors") {
  Engine engine(gguf_model());
  const SequenceId first = engine.open_sequence();
  const SequenceId second = engine.open_sequence();
  CHECK(first != second);
  const std::vector<StepRow> repeated{{first, 1}, {first, 2}};
  CHECK_THROWS_WITH(engine.step(repeated), Catch::Contains("appears in more than one row"));
  const std::vector<StepRow> bad_token{{second, 512}};
  CHECK_THROWS_WITH(engine.step(bad_token), Catch::Contains("outside the vocabulary"));
  const std::vector<StepRow> negative_token{{second, -1}};
  CHECK_THROWS_WITH(engine.step(negative_token), Catch::Contains("outside the vocabulary"));
  engine.close_sequence(first);
  const std::vector<StepRow> closed{{first, 1}};
  CHECK_THROWS_WITH(engine.step(closed), Catch::Contains("no open sequence"));
  CHECK_THROWS_WITH(engine.close_sequence(first), Catch::Contains("no open sequence"));
  CHECK_THROWS_WITH(engine.sequence_length(first), Catch::Contains("no open sequence"));
  CHECK_THROWS_WITH(engine.prefill(second, std::vector<TokenId>{}), Catch::Contains("no tokens"));
  // A rejected step leaves the sequences as they were.
  CHECK(engine.sequence_length(second) == 0);
  const std::vector<StepRow> fine{{second, 1}};
  CHECK(engine.step(fine).rows() == 1);
  CHECK(engine.sequence_length(second) == 1);
}

TEST_CASE("a step with no rows returns no logits") {
  Engine engine(gguf_model());
  const std::vector<StepRow> none;
  const RowMatrix& logits = engine.step(none);
  CHECK(logits.rows() == 0);
  CHECK(logits.cols() == 512);
}

}  // namespace esamp::llama::test
