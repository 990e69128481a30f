#include <catch2/catch.hpp>
#include <cstdlib>
#include <esamp/error.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../scoped_env.hpp"
#include "embed/sentence_encoder.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using esamp::embed::SentenceEncoder;
using esamp::test::ScopedEnv;

namespace {

// The encoder's folder (find_embedder_dir: ESAMP_EMBEDDER_DIR, else the cache), failing (never
// skipping) the test when the encoder is not there.
std::string embedder_dir() {
  const auto dir = esamp::embed::find_embedder_dir();
  if (!dir)
    FAIL(
        "no sentence encoder: run scripts/fetch-embedder (into ~/.cache/esamp/all-minilm-l6-v2) "
        "or set ESAMP_EMBEDDER_DIR to a folder holding model.safetensors and tokenizer.json");
  return *dir;
}

const SentenceEncoder& encoder() {
  static const SentenceEncoder loaded = SentenceEncoder::load(embedder_dir());
  return loaded;
}

std::string scratch_folder(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/esamp_test_embed_" + name;
}

// A scratch folder holding the real tokenizer.json and `model` as model.safetensors.
std::string model_folder(const std::string& name, const std::string& model) {
  const std::string dir = scratch_folder(name);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(embedder_dir() + "/tokenizer.json", dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << model;
  return dir;
}

// A safetensors file of one F32 tensor `name` of `shape`, its data zeros.
std::string one_tensor(const std::string& name, const std::string& shape, std::size_t bytes) {
  const std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape +
                             ",\"data_offsets\":[0," + std::to_string(bytes) + "]}}";
  std::string file(8, '\0');
  file[0] = static_cast<char>(header.size());
  return file + header + std::string(bytes, '\0');
}

}  // namespace

TEST_CASE("The encoder reproduces the model card's example similarities") {
  const Eigen::MatrixXf e = encoder().encode(
      {"The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."});
  REQUIRE(e.rows() == 3);
  REQUIRE(e.cols() == 384);
  for (Eigen::Index i = 0; i < 3; ++i) REQUIRE_THAT(e.row(i).norm(), WithinAbs(1.0, 1e-6));
  // The card's 4 decimals; the float64 reference gives 0.665955, 0.104584, 0.141145.
  CHECK_THAT(e.row(0).dot(e.row(1)), WithinAbs(0.6660, 5e-5));
  CHECK_THAT(e.row(0).dot(e.row(2)), WithinAbs(0.1046, 5e-5));
  CHECK_THAT(e.row(1).dot(e.row(2)), WithinAbs(0.1411, 5e-5));
}

TEST_CASE("A text's embedding does not depend on the texts batched with it") {
  const std::vector<std::string> texts = {"Once upon a time there was a little girl named Lily.",
                                          "",
                                          "Tom and his dog went to the park.",
                                          std::string(2000, 'a') + " long",
                                          "She smiled.",
                                          "The sun was bright and the sky was blue."};
  const Eigen::MatrixXf together = encoder().encode(texts);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const Eigen::MatrixXf alone = encoder().encode({texts[i]});
    INFO("text " << i);
    REQUIRE((alone.row(0) - together.row(static_cast<Eigen::Index>(i))).cwiseAbs().maxCoeff() <
            1e-6f);
  }
  REQUIRE(encoder().encode({}).rows() == 0);
}

TEST_CASE("Texts past max_tokens are truncated to [CLS], max_tokens - 2 pieces, [SEP]") {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "word ";
  const std::vector<int> ids = encoder().tokenize(text);
  REQUIRE(ids.size() == static_cast<std::size_t>(encoder().max_tokens()));
  REQUIRE(ids.front() == 101);
  REQUIRE(ids.back() == 102);
  REQUIRE(encoder().tokenize("The weather is lovely today.") ==
          std::vector<int>{101, 1996, 4633, 2003, 8403, 2651, 1012, 102});
}

TEST_CASE("Loading an encoder from a folder without its files is an error naming the file") {
  REQUIRE_THROWS_AS(SentenceEncoder::load("/nonexistent"), esamp::Error);
  REQUIRE_THROWS_WITH(SentenceEncoder::load("/nonexistent"),
                      Contains("/nonexistent/tokenizer.json"));
}

TEST_CASE("Loading a truncated or mis-shaped model.safetensors is an error naming the tensor") {
  std::ifstream real(embedder_dir() + "/model.safetensors", std::ios::binary);
  std::string head(1 << 20, '\0');
  real.read(head.data(), static_cast<std::streamsize>(head.size()));
  REQUIRE_THROWS_WITH(SentenceEncoder::load(model_folder("truncated", head)),
                      Contains("outside the 1037160-byte data section"));
  REQUIRE_THROWS_WITH(
      SentenceEncoder::load(
          model_folder("misshaped", one_tensor("embeddings.word_embeddings.weight", "[1,4]", 16))),
      Contains(
          "tensor \"embeddings.word_embeddings.weight\" has shape [1, 4], expected [30522, 384]"));
  REQUIRE_THROWS_WITH(SentenceEncoder::load(model_folder("missing", one_tensor("x", "[4]", 16))),
                      Contains("no tensor \"embeddings.word_embeddings.weight\""));
  for (const char* name : {"truncated", "misshaped", "missing"})
    std::filesystem::remove_all(scratch_folder(name));
}

TEST_CASE("find_embedder_dir: ESAMP_EMBEDDER_DIR, else the cache, and empty without the files") {
  {
    ScopedEnv env("ESAMP_EMBEDDER_DIR", "/nonexistent");
    REQUIRE_FALSE(esamp::embed::find_embedder_dir().has_value());
  }
  const std::string home = scratch_folder("home");
  const auto fill = [](const std::string& dir) {
    std::filesystem::create_directories(dir);
    for (const char* file : {"model.safetensors", "tokenizer.json"})
      std::ofstream(dir + "/" + file);
  };
  ScopedEnv unset("ESAMP_EMBEDDER_DIR", nullptr);
  ScopedEnv home_env("HOME", home.c_str());
  {
    ScopedEnv xdg("XDG_CACHE_HOME", (home + "/xdg").c_str());
    REQUIRE_FALSE(esamp::embed::find_embedder_dir().has_value());  // no files there yet
    fill(home + "/xdg/esamp/all-minilm-l6-v2");
    REQUIRE(esamp::embed::find_embedder_dir() == home + "/xdg/esamp/all-minilm-l6-v2");
  }
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/cache");  // ignored, as the XDG spec says
    fill(home + "/.cache/esamp/all-minilm-l6-v2");
    REQUIRE(esamp::embed::find_embedder_dir() == home + "/.cache/esamp/all-minilm-l6-v2");
  }
  std::filesystem::remove_all(home);
}
