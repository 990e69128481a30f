// The all-MiniLM-L6-v2 sentence encoder, natively: WordPiece tokenizer, 6-layer BERT, mean pooling
// over every token (including [CLS]/[SEP]) and L2 normalisation. Evaluation tooling beside the
// engine (target esamp::embed), not part of the core library.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "export.hpp"

namespace esamp::embed {

class WordPieceTokenizer;
struct BertWeights;

class ESAMP_EMBED_API SentenceEncoder {
 public:
  // Reads `dir`/model.safetensors (fp32) and `dir`/tokenizer.json; a missing, truncated or
  // malformed file, or a tensor of the wrong name or shape, is an esamp::Error naming it.
  static SentenceEncoder load(const std::string& dir);

  // One row per text: [texts, dim()], mean-pooled and L2-normalised, so a dot product of two rows
  // is their cosine similarity. Texts longer than max_tokens() are truncated. Uses one thread per
  // core; safe to call from several threads at once.
  Eigen::MatrixXf encode(const std::vector<std::string>& texts) const {
    Eigen::MatrixXf out(static_cast<Eigen::Index>(texts.size()), dim());
    encode_into(texts, out.data());
    return out;
  }
  // encode() into `out`, column-major [texts, dim()]. The library's own Eigen code (compiled for
  // this CPU, possibly with another alignment) never allocates what its callers free.
  void encode_into(const std::vector<std::string>& texts, float* out) const;

  // The token ids the encoder sees for `text`: [CLS], WordPiece ids, [SEP], at most max_tokens().
  std::vector<int> tokenize(const std::string& text) const;

  int dim() const;
  int max_tokens() const;

 private:
  SentenceEncoder(std::shared_ptr<const WordPieceTokenizer> tokenizer,
                  std::shared_ptr<const BertWeights> weights);

  std::shared_ptr<const WordPieceTokenizer> tokenizer_;
  std::shared_ptr<const BertWeights> weights_;
};

// The encoder's folder: ESAMP_EMBEDDER_DIR when set, else the cache folder all-minilm-l6-v2 in
// esamp::models::cache_dir() (~/.cache/esamp by default; scripts/fetch-embedder puts it there); an
// empty optional when model.safetensors or tokenizer.json is absent there.
ESAMP_EMBED_API std::optional<std::string> find_embedder_dir();

}  // namespace esamp::embed
