#include "sentence_encoder.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <esamp/error.hpp>
#include <exception>
#include <fstream>
#include <mutex>
#include <numeric>
#include <thread>
#include <unsupported/Eigen/SpecialFunctions>

#include "models/model_dir.hpp"
#include "safetensors.hpp"
#include "wordpiece.hpp"

namespace esamp::embed {
namespace {

// all-MiniLM-L6-v2's architecture (config.json); every tensor's shape is checked against it.
constexpr int kHidden = 384, kHeads = 12, kHeadDim = kHidden / kHeads, kFfn = 1536, kLayers = 6;
constexpr int kVocab = 30522, kPositions = 512;
constexpr int kMaxTokens = 256;  // sentence-transformers' max_seq_length for this model
constexpr float kLayerNormEps = 1e-12f;
constexpr float kInvSqrt2 = 0.70710678118654752f;  // GELU(x) = x/2 (1 + erf(x/sqrt 2))
// Tokens per forward pass: wide enough for efficient GEMMs, small enough to balance the threads.
constexpr int kBatchTokens = 2048;

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace

// Linear layers are [out, in] (y = W x + b, activations one column per token).
struct BertLayer {
  Eigen::MatrixXf qkv;  // [3 * hidden, hidden]: query rows pre-scaled by 1/sqrt(head_dim)
  Eigen::VectorXf qkv_bias;
  Eigen::MatrixXf attention_out;
  Eigen::VectorXf attention_out_bias, attention_norm_weight, attention_norm_bias;
  Eigen::MatrixXf ffn_in;  // [ffn, hidden]
  Eigen::VectorXf ffn_in_bias;
  Eigen::MatrixXf ffn_out;  // [hidden, ffn]
  Eigen::VectorXf ffn_out_bias, output_norm_weight, output_norm_bias;
};

struct BertWeights {
  Eigen::MatrixXf word_embeddings;      // [hidden, vocab]
  Eigen::MatrixXf position_embeddings;  // [hidden, positions], token type 0 folded in
  Eigen::VectorXf embedding_norm_weight, embedding_norm_bias;
  std::vector<BertLayer> layers;
};

namespace {

Eigen::MatrixXf read_linear(const SafetensorsFile& file, const std::string& name, int out, int in) {
  const std::vector<float> data = file.read_f32(name, {out, in});
  return Eigen::Map<const RowMajor>(data.data(), out, in);
}

Eigen::VectorXf read_vector(const SafetensorsFile& file, const std::string& name, int size) {
  const std::vector<float> data = file.read_f32(name, {size});
  return Eigen::Map<const Eigen::VectorXf>(data.data(), size);
}

BertWeights read_weights(const SafetensorsFile& file) {
  BertWeights w;
  const std::vector<float> words =
      file.read_f32("embeddings.word_embeddings.weight", {kVocab, kHidden});
  w.word_embeddings = Eigen::Map<const Eigen::MatrixXf>(words.data(), kHidden, kVocab);
  const std::vector<float> positions =
      file.read_f32("embeddings.position_embeddings.weight", {kPositions, kHidden});
  w.position_embeddings = Eigen::Map<const Eigen::MatrixXf>(positions.data(), kHidden, kPositions);
  const std::vector<float> types =
      file.read_f32("embeddings.token_type_embeddings.weight", {2, kHidden});
  w.position_embeddings.colwise() += Eigen::Map<const Eigen::VectorXf>(types.data(), kHidden);
  w.embedding_norm_weight = read_vector(file, "embeddings.LayerNorm.weight", kHidden);
  w.embedding_norm_bias = read_vector(file, "embeddings.LayerNorm.bias", kHidden);

  const float query_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = fmt::format("encoder.layer.{}.", i);
    BertLayer l;
    l.qkv.resize(3 * kHidden, kHidden);
    l.qkv_bias.resize(3 * kHidden);
    const char* parts[] = {"query", "key", "value"};
    for (int k = 0; k < 3; ++k) {
      const std::string name = p + "attention.self." + parts[k];
      const float scale = k == 0 ? query_scale : 1.0f;
      l.qkv.middleRows(k * kHidden, kHidden) =
          scale * read_linear(file, name + ".weight", kHidden, kHidden);
      l.qkv_bias.segment(k * kHidden, kHidden) = scale * read_vector(file, name + ".bias", kHidden);
    }
    l.attention_out = read_linear(file, p + "attention.output.dense.weight", kHidden, kHidden);
    l.attention_out_bias = read_vector(file, p + "attention.output.dense.bias", kHidden);
    l.attention_norm_weight = read_vector(file, p + "attention.output.LayerNorm.weight", kHidden);
    l.attention_norm_bias = read_vector(file, p + "attention.output.LayerNorm.bias", kHidden);
    l.ffn_in = read_linear(file, p + "intermediate.dense.weight", kFfn, kHidden);
    l.ffn_in_bias = read_vector(file, p + "intermediate.dense.bias", kFfn);
    l.ffn_out = read_linear(file, p + "output.dense.weight", kHidden, kFfn);
    l.ffn_out_bias = read_vector(file, p + "output.dense.bias", kHidden);
    l.output_norm_weight = read_vector(file, p + "output.LayerNorm.weight", kHidden);
    l.output_norm_bias = read_vector(file, p + "output.LayerNorm.bias", kHidden);
    w.layers.push_back(std::move(l));
  }
  return w;
}

// LayerNorm of each column of x (in place).
template <class Block>
void layer_norm(Block x, const Eigen::VectorXf& weight, const Eigen::VectorXf& bias) {
  for (Eigen::Index t = 0; t < x.cols(); ++t) {
    auto col = x.col(t);
    const float mean = col.mean();
    col.array() -= mean;
    const float inv_std =
        1.0f / std::sqrt(col.squaredNorm() / static_cast<float>(col.size()) + kLayerNormEps);
    col = (col.array() * inv_std * weight.array() + bias.array()).matrix();
  }
}

// The buffers of a forward pass over sequences packed side by side (no padding), sized once per
// thread for the largest batch and reused across its batches.
class Workspace {
 public:
  explicit Workspace(Eigen::Index tokens)
      : x_(kHidden, tokens),
        qkv_(3 * kHidden, tokens),
        context_(kHidden, tokens),
        sum_(kHidden, tokens),
        ffn_(kFfn, tokens),
        scores_(kMaxTokens, kMaxTokens) {}

  // Writes the normalised mean-pooled embedding of sequence s into out.row(rows[s]).
  void run(const BertWeights& w, const std::vector<const std::vector<int>*>& sequences,
           const std::vector<Eigen::Index>& rows, Eigen::Map<Eigen::MatrixXf>& out) {
    Eigen::Index tokens = 0;
    for (const auto* ids : sequences) {
      for (std::size_t p = 0; p < ids->size(); ++p, ++tokens)
        x_.col(tokens) = w.word_embeddings.col((*ids)[p]) +
                         w.position_embeddings.col(static_cast<Eigen::Index>(p));
    }
    auto x = x_.leftCols(tokens);
    auto qkv = qkv_.leftCols(tokens);
    auto context = context_.leftCols(tokens);
    auto sum = sum_.leftCols(tokens);
    auto ffn = ffn_.leftCols(tokens);
    layer_norm(x, w.embedding_norm_weight, w.embedding_norm_bias);
    for (const BertLayer& l : w.layers) {
      qkv.noalias() = l.qkv * x;
      qkv.colwise() += l.qkv_bias;
      Eigen::Index offset = 0;
      for (const auto* ids : sequences) {
        const auto n = static_cast<Eigen::Index>(ids->size());
        auto scores = scores_.topLeftCorner(n, n);  // [keys, queries]
        for (int h = 0; h < kHeads; ++h) {
          const auto q = qkv.block(h * kHeadDim, offset, kHeadDim, n);
          const auto k = qkv.block(kHidden + h * kHeadDim, offset, kHeadDim, n);
          const auto v = qkv.block(2 * kHidden + h * kHeadDim, offset, kHeadDim, n);
          scores.noalias() = k.transpose() * q;
          for (Eigen::Index j = 0; j < n; ++j) {
            auto col = scores.col(j);
            col = (col.array() - col.maxCoeff()).exp().matrix();
            col /= col.sum();
          }
          context.block(h * kHeadDim, offset, kHeadDim, n).noalias() = v * scores;
        }
        offset += n;
      }
      sum.noalias() = l.attention_out * context;
      sum.colwise() += l.attention_out_bias;
      sum += x;
      layer_norm(sum, l.attention_norm_weight, l.attention_norm_bias);
      x = sum;
      ffn.noalias() = l.ffn_in * x;
      ffn.colwise() += l.ffn_in_bias;
      ffn = (0.5f * ffn.array() * (1.0f + (ffn.array() * kInvSqrt2).erf())).matrix();
      sum.noalias() = l.ffn_out * ffn;
      sum.colwise() += l.ffn_out_bias;
      sum += x;
      layer_norm(sum, l.output_norm_weight, l.output_norm_bias);
      x = sum;
    }
    Eigen::Index offset = 0;
    for (std::size_t s = 0; s < sequences.size(); ++s) {
      const auto n = static_cast<Eigen::Index>(sequences[s]->size());
      const Eigen::VectorXf pooled = x.middleCols(offset, n).rowwise().mean();
      out.row(rows[s]) = pooled.transpose() / pooled.norm();
      offset += n;
    }
  }

 private:
  Eigen::MatrixXf x_, qkv_, context_, sum_, ffn_, scores_;
};

bool readable(const std::string& path) { return static_cast<bool>(std::ifstream(path)); }

}  // namespace

SentenceEncoder::SentenceEncoder(std::shared_ptr<const WordPieceTokenizer> tokenizer,
                                 std::shared_ptr<const BertWeights> weights)
    : tokenizer_(std::move(tokenizer)), weights_(std::move(weights)) {}

SentenceEncoder SentenceEncoder::load(const std::string& dir) {
  auto tokenizer =
      std::make_shared<const WordPieceTokenizer>(WordPieceTokenizer::load(dir + "/tokenizer.json"));
  if (tokenizer->max_id() >= kVocab)
    fail("{}/tokenizer.json: token id {} is outside the model's {} embeddings", dir,
         tokenizer->max_id(), kVocab);
  auto weights = std::make_shared<const BertWeights>(
      read_weights(SafetensorsFile::open(dir + "/model.safetensors")));
  return SentenceEncoder(std::move(tokenizer), std::move(weights));
}

std::vector<int> SentenceEncoder::tokenize(const std::string& text) const {
  return tokenizer_->encode(text, kMaxTokens);
}

int SentenceEncoder::dim() const { return kHidden; }
int SentenceEncoder::max_tokens() const { return kMaxTokens; }

void SentenceEncoder::encode_into(const std::vector<std::string>& texts, float* out_data) const {
  const std::size_t count = texts.size();
  std::vector<std::vector<int>> ids(count);
  for (std::size_t i = 0; i < count; ++i) ids[i] = tokenize(texts[i]);

  // Batches of length-sorted sequences, so that each thread's batches cost about the same.
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::size_t total = 0;
  for (const auto& s : ids) total += s.size();
  const std::size_t budget =
      std::clamp<std::size_t>((total + threads - 1) / threads, kMaxTokens, kBatchTokens);
  std::vector<std::vector<std::size_t>> batches;
  std::size_t batch_tokens = 0;
  for (std::size_t i : order) {
    if (batches.empty() || batch_tokens + ids[i].size() > budget) {
      batches.emplace_back();
      batch_tokens = 0;
    }
    batches.back().push_back(i);
    batch_tokens += ids[i].size();
  }

  Eigen::Map<Eigen::MatrixXf> out(out_data, static_cast<Eigen::Index>(count), kHidden);
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      Workspace workspace(static_cast<Eigen::Index>(budget));
      std::vector<const std::vector<int>*> sequences;
      std::vector<Eigen::Index> rows;
      for (std::size_t b; (b = next.fetch_add(1)) < batches.size();) {
        sequences.clear();
        rows.clear();
        for (std::size_t i : batches[b]) {
          sequences.push_back(&ids[i]);
          rows.push_back(static_cast<Eigen::Index>(i));
        }
        workspace.run(*weights_, sequences, rows, out);
      }
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  const std::size_t workers = std::min<std::size_t>(threads, batches.size());
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  if (workers > 0) work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::optional<std::string> find_embedder_dir() {
  std::string dir;
  if (const char* env = std::getenv("ESAMP_EMBEDDER_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else if (const auto cache = models::cache_dir()) {
    dir = *cache + "/all-minilm-l6-v2";
  } else {
    return std::nullopt;
  }
  if (!readable(dir + "/model.safetensors") || !readable(dir + "/tokenizer.json"))
    return std::nullopt;
  return dir;
}

}  // namespace esamp::embed
