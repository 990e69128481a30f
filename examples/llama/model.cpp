// The GGUF and llama2.c loaders of llama models.
#include "llama/model.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"

namespace esamp::llama {
namespace {

constexpr std::uint64_t kSaturated = std::numeric_limits<std::uint64_t>::max();

// The product of non-negative sizes, or kSaturated when it overflows (no file is that large).
std::uint64_t element_count(std::initializer_list<std::int64_t> sizes) {
  std::uint64_t product = 1;
  for (const std::int64_t size : sizes) {
    const auto factor = static_cast<std::uint64_t>(size);
    if (factor != 0 && product > kSaturated / factor) return kSaturated;
    product *= factor;
  }
  return product;
}

std::uint64_t saturating_sum(std::initializer_list<std::uint64_t> terms) {
  std::uint64_t sum = 0;
  for (const std::uint64_t term : terms) sum = term > kSaturated - sum ? kSaturated : sum + term;
  return sum;
}

int metadata_int(const GgufFile& file, const std::string& key) {
  const std::uint64_t value = file.get_uint(key);
  if (value > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
    fail("{}: metadata key '{}' = {} is too large", file.file_name(), key, value);
  return static_cast<int>(value);
}

const GgufTensorInfo& tensor_with_shape(const GgufFile& file, const std::string& name,
                                        const std::vector<std::uint64_t>& ggml_dims) {
  const GgufTensorInfo* tensor = file.find_tensor(name);
  if (tensor == nullptr) fail("{}: tensor '{}' is missing", file.file_name(), name);
  if (tensor->dims != ggml_dims)
    fail("{}: tensor '{}' has shape [{}], expected [{}]", file.file_name(), name,
         fmt::join(tensor->dims, ", "), fmt::join(ggml_dims, ", "));
  return *tensor;
}

RowMatrix gguf_matrix(const GgufFile& file, const std::string& name, int rows, int cols) {
  const GgufTensorInfo& tensor = tensor_with_shape(
      file, name, {static_cast<std::uint64_t>(cols), static_cast<std::uint64_t>(rows)});
  RowMatrix matrix(rows, cols);
  file.read_tensor(tensor, matrix.data());
  return matrix;
}

Eigen::RowVectorXf gguf_vector(const GgufFile& file, const std::string& name, int size) {
  const GgufTensorInfo& tensor = tensor_with_shape(file, name, {static_cast<std::uint64_t>(size)});
  Eigen::RowVectorXf vector(size);
  file.read_tensor(tensor, vector.data());
  return vector;
}

std::string replace_sentencepiece_spaces(std::string piece) {
  for (std::size_t at = piece.find(kSentencePieceSpace); at != std::string::npos;
       at = piece.find(kSentencePieceSpace, at + 1))
    piece.replace(at, kSentencePieceSpace.size(), " ");
  return piece;
}

Vocabulary gguf_vocabulary(const GgufFile& file) {
  if (file.has("tokenizer.ggml.model") && file.get_string("tokenizer.ggml.model") != "llama")
    fail("{}: tokenizer.ggml.model = '{}', only 'llama' (SentencePiece BPE) is supported",
         file.file_name(), file.get_string("tokenizer.ggml.model"));
  Vocabulary vocabulary;
  vocabulary.source = file.file_name();
  for (std::string& piece : file.get_string_array("tokenizer.ggml.tokens"))
    vocabulary.pieces.push_back(replace_sentencepiece_spaces(std::move(piece)));
  vocabulary.scores = file.get_float_array("tokenizer.ggml.scores");
  if (file.has("tokenizer.ggml.token_type")) {
    for (const std::int64_t type : file.get_int_array("tokenizer.ggml.token_type")) {
      if (type < static_cast<int>(TokenType::normal) || type > static_cast<int>(TokenType::byte))
        fail("{}: tokenizer.ggml.token_type has {}, expected 1 to 6", file.file_name(), type);
      vocabulary.types.push_back(static_cast<TokenType>(type));
    }
  }
  const auto special_id = [&](const std::string& key, TokenId fallback) {
    return file.has(key) ? static_cast<TokenId>(std::min<std::uint64_t>(
                               file.get_uint(key), std::numeric_limits<TokenId>::max()))
                         : fallback;
  };
  vocabulary.unknown = special_id("tokenizer.ggml.unknown_token_id", 0);
  vocabulary.bos = special_id("tokenizer.ggml.bos_token_id", 1);
  vocabulary.eos = special_id("tokenizer.ggml.eos_token_id", 2);
  return vocabulary;
}

// llama2.c's tokenizer file: int32 max_token_length, then per token a float score, an int32
// length and the piece's bytes.
Vocabulary read_llama2c_vocabulary(const std::string& tokenizer_path, int vocab_size) {
  const std::vector<std::uint8_t> bytes = detail::read_file(tokenizer_path);
  detail::ByteReader in(bytes, tokenizer_path);
  Vocabulary vocabulary;
  vocabulary.source = tokenizer_path;
  in.value<std::int32_t>();  // max_token_length: only a buffer size for llama2.c
  for (int id = 0; id < vocab_size; ++id) {
    vocabulary.scores.push_back(in.value<float>());
    const auto length = in.value<std::int32_t>();
    if (length < 0 || static_cast<std::size_t>(length) > in.remaining())
      fail("{}: token {} has length {}, expected 0 to the {} bytes left", tokenizer_path, id,
           length, in.remaining());
    std::string piece(static_cast<std::size_t>(length), '\0');
    in.bytes(piece.data(), piece.size());
    vocabulary.pieces.push_back(std::move(piece));
  }
  if (in.remaining() != 0)
    fail("{}: {} bytes left after the {} tokens the checkpoint's vocab_size asks for",
         tokenizer_path, in.remaining(), vocab_size);
  return vocabulary;
}

}  // namespace

void Hyperparameters::validate(const std::string& source) const {
  const auto check_positive = [&](const char* field, int value) {
    if (value < 1) fail("{}: {} = {}, must be >= 1", source, field, value);
  };
  check_positive("dim", dim);
  check_positive("hidden_dim", hidden_dim);
  check_positive("layer_count", layer_count);
  check_positive("head_count", head_count);
  check_positive("kv_head_count", kv_head_count);
  check_positive("vocab_size", vocab_size);
  check_positive("context_length", context_length);
  if (dim % head_count != 0 || head_size() % 2 != 0)
    fail("{}: dim = {} over head_count = {} must give an even head size", source, dim, head_count);
  if (head_count % kv_head_count != 0)
    fail("{}: head_count = {} must be a multiple of kv_head_count = {}", source, head_count,
         kv_head_count);
  if (!(rms_norm_eps > 0.0f) || !(rope_freq_base > 0.0f))
    fail("{}: rms_norm_eps = {} and rope_freq_base = {} must be > 0", source, rms_norm_eps,
         rope_freq_base);
}

Model random_model(const Hyperparameters& hparams, Vocabulary vocabulary, std::uint32_t seed) {
  hparams.validate("random_model");
  if (vocabulary.pieces.size() != static_cast<std::size_t>(hparams.vocab_size))
    fail("random_model: {} vocabulary pieces for vocab_size = {}", vocabulary.pieces.size(),
         hparams.vocab_size);
  std::mt19937 generator(seed);
  const auto random = [&generator](int rows, int cols) {
    // Scaled so activations keep their size through each layer.
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    return RowMatrix(RowMatrix::NullaryExpr(rows, cols, [&] { return normal(generator); }));
  };
  const Hyperparameters& hp = hparams;
  Model model;
  model.hparams = hparams;
  model.vocabulary = std::move(vocabulary);
  Weights& w = model.weights;
  w.token_embedding = random(hp.vocab_size, hp.dim);
  for (int l = 0; l < hp.layer_count; ++l) {
    LayerWeights layer;
    layer.attention_norm = Eigen::RowVectorXf::Ones(hp.dim);
    layer.query = random(hp.dim, hp.dim);
    layer.key = random(hp.kv_dim(), hp.dim);
    layer.value = random(hp.kv_dim(), hp.dim);
    layer.attention_output = random(hp.dim, hp.dim);
    layer.ffn_norm = Eigen::RowVectorXf::Ones(hp.dim);
    layer.ffn_gate = random(hp.hidden_dim, hp.dim);
    layer.ffn_down = random(hp.dim, hp.hidden_dim);
    layer.ffn_up = random(hp.hidden_dim, hp.dim);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = Eigen::RowVectorXf::Ones(hp.dim);
  w.lm_head = random(hp.vocab_size, hp.dim);
  return model;
}

Model load_gguf(const std::string& path) { return load_gguf(GgufFile::open(path)); }

Model load_gguf(const GgufFile& file) {
  const std::string& architecture = file.get_string("general.architecture");
  if (architecture != "llama")
    fail("{}: general.architecture = '{}', only 'llama' is supported", file.file_name(),
         architecture);
  Model model;
  Hyperparameters& hp = model.hparams;
  hp.dim = metadata_int(file, "llama.embedding_length");
  hp.hidden_dim = metadata_int(file, "llama.feed_forward_length");
  hp.layer_count = metadata_int(file, "llama.block_count");
  hp.head_count = metadata_int(file, "llama.attention.head_count");
  hp.kv_head_count = file.has("llama.attention.head_count_kv")
                         ? metadata_int(file, "llama.attention.head_count_kv")
                         : hp.head_count;
  hp.context_length = metadata_int(file, "llama.context_length");
  hp.rms_norm_eps = static_cast<float>(file.get_float("llama.attention.layer_norm_rms_epsilon"));
  if (file.has("llama.rope.freq_base"))
    hp.rope_freq_base = static_cast<float>(file.get_float("llama.rope.freq_base"));
  model.vocabulary = gguf_vocabulary(file);
  hp.vocab_size = static_cast<int>(model.vocabulary.pieces.size());
  hp.validate(file.file_name());
  if (file.has("llama.rope.dimension_count") &&
      metadata_int(file, "llama.rope.dimension_count") != hp.head_size())
    fail("{}: llama.rope.dimension_count = {}, only rotary over the whole head ({}) is supported",
         file.file_name(), metadata_int(file, "llama.rope.dimension_count"), hp.head_size());

  Weights& w = model.weights;
  w.token_embedding = gguf_matrix(file, "token_embd.weight", hp.vocab_size, hp.dim);
  for (int l = 0; l < hp.layer_count; ++l) {
    const std::string prefix = fmt::format("blk.{}.", l);
    LayerWeights layer;
    layer.attention_norm = gguf_vector(file, prefix + "attn_norm.weight", hp.dim);
    layer.query = gguf_matrix(file, prefix + "attn_q.weight", hp.dim, hp.dim);
    layer.key = gguf_matrix(file, prefix + "attn_k.weight", hp.kv_dim(), hp.dim);
    layer.value = gguf_matrix(file, prefix + "attn_v.weight", hp.kv_dim(), hp.dim);
    layer.attention_output = gguf_matrix(file, prefix + "attn_output.weight", hp.dim, hp.dim);
    layer.ffn_norm = gguf_vector(file, prefix + "ffn_norm.weight", hp.dim);
    layer.ffn_gate = gguf_matrix(file, prefix + "ffn_gate.weight", hp.hidden_dim, hp.dim);
    layer.ffn_down = gguf_matrix(file, prefix + "ffn_down.weight", hp.dim, hp.hidden_dim);
    layer.ffn_up = gguf_matrix(file, prefix + "ffn_up.weight", hp.hidden_dim, hp.dim);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = gguf_vector(file, "output_norm.weight", hp.dim);
  w.lm_head = file.find_tensor("output.weight")
                  ? gguf_matrix(file, "output.weight", hp.vocab_size, hp.dim)
                  : w.token_embedding;
  return model;
}

Model load_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path) {
  Model model;
  Hyperparameters& hp = model.hparams;
  const std::vector<std::uint8_t> checkpoint = detail::read_file(checkpoint_path);
  detail::ByteReader in(checkpoint, checkpoint_path);
  hp.dim = in.value<std::int32_t>();
  hp.hidden_dim = in.value<std::int32_t>();
  hp.layer_count = in.value<std::int32_t>();
  hp.head_count = in.value<std::int32_t>();
  hp.kv_head_count = in.value<std::int32_t>();
  const auto signed_vocab_size = in.value<std::int32_t>();
  hp.context_length = in.value<std::int32_t>();
  // llama2.c's convention: a negative vocab_size means the classifier is stored after the rest.
  const bool shared_classifier = signed_vocab_size > 0;
  hp.vocab_size = signed_vocab_size == std::numeric_limits<std::int32_t>::min()
                      ? 0
                      : (shared_classifier ? signed_vocab_size : -signed_vocab_size);
  hp.validate(checkpoint_path);

  const std::uint64_t expected_floats = saturating_sum({
      element_count({hp.vocab_size, hp.dim}),                         // token_embedding_table
      element_count({hp.layer_count, hp.dim}),                        // rms_att_weight
      element_count({hp.layer_count, hp.dim, hp.dim}),                // wq
      element_count({2, hp.layer_count, hp.kv_dim(), hp.dim}),        // wk, wv
      element_count({hp.layer_count, hp.dim, hp.dim}),                // wo
      element_count({hp.layer_count, hp.dim}),                        // rms_ffn_weight
      element_count({3, hp.layer_count, hp.hidden_dim, hp.dim}),      // w1, w2, w3
      element_count({hp.dim}),                                        // rms_final_weight
      element_count({hp.context_length, hp.head_size()}),             // freq_cis_real, _imag
      element_count({shared_classifier ? 0 : hp.vocab_size, hp.dim})  // wcls
  });
  const std::uint64_t expected_bytes =
      saturating_sum({checkpoint.size() - in.remaining(),
                      expected_floats > kSaturated / 4 ? kSaturated : 4 * expected_floats});
  if (checkpoint.size() != expected_bytes)
    fail(
        "{}: {} bytes, but its header (dim {}, hidden_dim {}, n_layers {}, n_heads {}, n_kv_heads "
        "{}, vocab_size {}, seq_len {}) needs {} bytes",
        checkpoint_path, checkpoint.size(), hp.dim, hp.hidden_dim, hp.layer_count, hp.head_count,
        hp.kv_head_count, signed_vocab_size, hp.context_length, expected_bytes);

  // The size check above guarantees every read below stays in the file.
  const auto read_into = [&in](auto& tensor, Eigen::Index rows, Eigen::Index cols) {
    tensor.resize(rows, cols);
    in.bytes(tensor.data(), static_cast<std::size_t>(tensor.size()) * sizeof(float));
  };
  Weights& w = model.weights;
  read_into(w.token_embedding, hp.vocab_size, hp.dim);
  w.layers.resize(hp.layer_count);
  // llama2.c stores each kind of weight for all layers before the next kind.
  const auto read_layers = [&](auto member, int rows, int cols) {
    for (LayerWeights& layer : w.layers) read_into(layer.*member, rows, cols);
  };
  read_layers(&LayerWeights::attention_norm, 1, hp.dim);
  read_layers(&LayerWeights::query, hp.dim, hp.dim);
  read_layers(&LayerWeights::key, hp.kv_dim(), hp.dim);
  read_layers(&LayerWeights::value, hp.kv_dim(), hp.dim);
  read_layers(&LayerWeights::attention_output, hp.dim, hp.dim);
  read_layers(&LayerWeights::ffn_norm, 1, hp.dim);
  read_layers(&LayerWeights::ffn_gate, hp.hidden_dim, hp.dim);
  read_layers(&LayerWeights::ffn_down, hp.dim, hp.hidden_dim);
  read_layers(&LayerWeights::ffn_up, hp.hidden_dim, hp.dim);
  read_into(w.final_norm, 1, hp.dim);
  if (shared_classifier) {
    w.lm_head = w.token_embedding;
  } else {
    // wcls is the file's last vocab x dim floats, after the unused freq_cis tables.
    w.lm_head.resize(hp.vocab_size, hp.dim);
    const std::size_t lm_head_bytes = static_cast<std::size_t>(w.lm_head.size()) * sizeof(float);
    std::memcpy(w.lm_head.data(), checkpoint.data() + checkpoint.size() - lm_head_bytes,
                lm_head_bytes);
  }
  model.vocabulary = read_llama2c_vocabulary(tokenizer_path, hp.vocab_size);
  return model;
}

}  // namespace esamp::llama
