// The llama2.c loader: bit-identical to the GGUF loader on the same model, and bounds-checked.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine_test_support.hpp"

namespace esamp::llama::test {
namespace {

using Catch::Contains;

bool bit_equal(const RowMatrix& a, const RowMatrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}
bool bit_equal(const Eigen::RowVectorXf& a, const Eigen::RowVectorXf& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

// A file in the temporary directory, removed when the test ends.
class TempFile {
 public:
  TempFile(const std::string& name, const std::vector<std::uint8_t>& bytes)
      : path_((std::filesystem::temp_directory_path() / ("esamp_engine_test_" + name)).string()) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void set_int32(std::vector<std::uint8_t>& bytes, std::size_t at, std::int32_t value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

}  // namespace

TEST_CASE("the llama2.c and GGUF loaders give bit-identical weights and vocabularies") {
  const Model& from_bin = llama2c_model();
  const Model& from_gguf = gguf_model();
  const Hyperparameters& a = from_bin.hparams;
  const Hyperparameters& b = from_gguf.hparams;
  CHECK(a.dim == b.dim);
  CHECK(a.hidden_dim == b.hidden_dim);
  CHECK(a.layer_count == b.layer_count);
  CHECK(a.head_count == b.head_count);
  CHECK(a.kv_head_count == b.kv_head_count);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.rms_norm_eps == b.rms_norm_eps);
  CHECK(a.rope_freq_base == b.rope_freq_base);
  CHECK(a.context_length == 512);
  CHECK(b.context_length == 2048);  // the GGUF converter's default, not the trained context

  const Weights& x = from_bin.weights;
  const Weights& y = from_gguf.weights;
  CHECK(bit_equal(x.token_embedding, y.token_embedding));
  CHECK(bit_equal(x.final_norm, y.final_norm));
  CHECK(bit_equal(x.lm_head, y.lm_head));
  REQUIRE(x.layers.size() == y.layers.size());
  for (std::size_t l = 0; l < x.layers.size(); ++l) {
    INFO("layer " << l);
    CHECK(bit_equal(x.layers[l].attention_norm, y.layers[l].attention_norm));
    CHECK(bit_equal(x.layers[l].query, y.layers[l].query));
    CHECK(bit_equal(x.layers[l].key, y.layers[l].key));
    CHECK(bit_equal(x.layers[l].value, y.layers[l].value));
    CHECK(bit_equal(x.layers[l].attention_output, y.layers[l].attention_output));
    CHECK(bit_equal(x.layers[l].ffn_norm, y.layers[l].ffn_norm));
    CHECK(bit_equal(x.layers[l].ffn_gate, y.layers[l].ffn_gate));
    CHECK(bit_equal(x.layers[l].ffn_down, y.layers[l].ffn_down));
    CHECK(bit_equal(x.layers[l].ffn_up, y.layers[l].ffn_up));
  }

  const Vocabulary& p = from_bin.vocabulary;
  const Vocabulary& q = from_gguf.vocabulary;
  CHECK(p.scores == q.scores);
  CHECK(p.bos == q.bos);
  CHECK(p.eos == q.eos);
  REQUIRE(p.pieces.size() == q.pieces.size());
  // Only the control tokens are spelled differently: "\n<s>\n" in llama2.c, "<s>" in the GGUF.
  CHECK(p.pieces[1] == "\n<s>\n");
  CHECK(q.pieces[1] == "<s>");
  for (std::size_t id = 3; id < p.pieces.size(); ++id) CHECK(p.pieces[id] == q.pieces[id]);
  CHECK(Tokenizer(p).vocabulary().types == Tokenizer(q).vocabulary().types);
}

TEST_CASE("a llama2.c checkpoint whose size or header is wrong is an esamp::Error naming it") {
  const std::vector<std::uint8_t> whole = file_bytes(model_file("stories260K.bin"));
  const std::string tokenizer = model_file("tok512.bin");
  const auto load = [&](const std::vector<std::uint8_t>& bytes) {
    const TempFile file("bad.bin", bytes);
    load_llama2c(file.path(), tokenizer);
  };
  for (const std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{27}, std::size_t{28},
                                std::size_t{1000}, whole.size() / 2, whole.size() - 1}) {
    INFO("cut at " << cut);
    CHECK_THROWS_WITH(load({whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut)}),
                      Contains("bad.bin"));
  }
  std::vector<std::uint8_t> longer = whole;
  longer.push_back(0);
  CHECK_THROWS_WITH(load(longer), Contains("bad.bin") && Contains("1056541 bytes") &&
                                      Contains("needs 1056540 bytes"));
  struct HeaderChange {
    std::size_t field;
    std::int32_t value;
    const char* message;
  };
  for (const HeaderChange& change :
       {HeaderChange{0, 0, "dim = 0"}, HeaderChange{0, -64, "dim = -64"},
        HeaderChange{3, 3, "even head size"}, HeaderChange{4, 3, "multiple of kv_head_count = 3"},
        HeaderChange{0, 1 << 30, "needs"}, HeaderChange{1, 0x7fffffff, "needs"},
        HeaderChange{2, 0x7fffffff, "needs"}, HeaderChange{5, -0x7fffffff - 1, "vocab_size = 0"},
        HeaderChange{6, 0x7fffffff, "needs"}}) {
    INFO("header field " << change.field << " = " << change.value);
    std::vector<std::uint8_t> changed = whole;
    set_int32(changed, 4 * change.field, change.value);
    CHECK_THROWS_WITH(load(changed), Contains("bad.bin") && Contains(change.message));
  }
}

TEST_CASE("a negative vocab_size in a llama2.c checkpoint reads the classifier stored last") {
  const std::vector<std::uint8_t> whole = file_bytes(model_file("stories260K.bin"));
  std::vector<std::uint8_t> unshared = whole;
  set_int32(unshared, 20, -512);
  const Model& shared = llama2c_model();
  const RowMatrix classifier = 2.0f * shared.weights.token_embedding;
  const auto* classifier_bytes = reinterpret_cast<const std::uint8_t*>(classifier.data());
  unshared.insert(unshared.end(), classifier_bytes,
                  classifier_bytes + classifier.size() * sizeof(float));
  const TempFile file("unshared.bin", unshared);
  const Model model = load_llama2c(file.path(), model_file("tok512.bin"));
  CHECK(model.hparams.vocab_size == 512);
  CHECK(model.weights.lm_head == classifier);
  CHECK(model.weights.token_embedding == shared.weights.token_embedding);
}

TEST_CASE(
    "a llama2.c tokenizer file that is cut, too long or corrupt is an esamp::Error naming it") {
  const std::string checkpoint = model_file("stories260K.bin");
  const std::vector<std::uint8_t> whole = file_bytes(model_file("tok512.bin"));
  const auto load = [&](const std::vector<std::uint8_t>& bytes) {
    const TempFile file("bad_tok.bin", bytes);
    load_llama2c(checkpoint, file.path());
  };
  for (std::size_t cut = 0; cut < whole.size(); cut += 97) {
    INFO("cut at " << cut);
    CHECK_THROWS_WITH(load({whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut)}),
                      Contains("bad_tok.bin"));
  }
  std::vector<std::uint8_t> longer = whole;
  longer.push_back(0);
  CHECK_THROWS_WITH(load(longer), Contains("bad_tok.bin") && Contains("1 bytes left"));
  std::vector<std::uint8_t> negative_length = whole;
  set_int32(negative_length, 8, -1);  // the first token's length
  CHECK_THROWS_WITH(load(negative_length), Contains("bad_tok.bin") && Contains("length -1"));
  std::vector<std::uint8_t> huge_length = whole;
  set_int32(huge_length, 8, 0x7fffffff);
  CHECK_THROWS_WITH(load(huge_length), Contains("bad_tok.bin") && Contains("length 2147483647"));
  CHECK_THROWS_WITH(load_llama2c(checkpoint, "/nonexistent/tok.bin"),
                    Contains("/nonexistent/tok.bin") && Contains("cannot open"));
}

}  // namespace esamp::llama::test
