// The llama forward of llama2.c's run.c, batched over the rows of a step, with esamp's taps.
#include "llama/engine.hpp"

#include <algorithm>
#include <cmath>

#include "esamp/error.hpp"
#include "esamp/sampler.hpp"
#include "esamp/tensor.hpp"

namespace esamp::llama {
namespace {

using ConstRowMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;

ConstMatrixView view_of(const RowMatrix& matrix) {
  return {matrix.data(), matrix.rows(), matrix.cols()};
}

MatrixView mutable_view_of(RowMatrix& matrix) {
  return {matrix.data(), matrix.rows(), matrix.cols()};
}

// The cache of an open sequence (const or not, as `sequences` is); `caller` names the API call.
template <class Sequences>
auto& cache_of(Sequences& sequences, SequenceId sequence, const char* caller) {
  const auto found = sequences.find(sequence);
  if (found == sequences.end()) fail("Engine::{}: no open sequence {}", caller, sequence);
  return found->second;
}

}  // namespace

Engine::Engine(const Model& model) : model_(model) {
  const Hyperparameters& hp = model_.hparams;
  hp.validate("Engine");
  rope_inverse_frequencies_.resize(hp.head_size() / 2);
  for (int pair = 0; pair < hp.head_size() / 2; ++pair)
    rope_inverse_frequencies_[pair] =
        1.0f / std::pow(hp.rope_freq_base, static_cast<float>(2 * pair) / hp.head_size());
}

SequenceId Engine::open_sequence() {
  const SequenceId id = next_sequence_id_++;
  SequenceCache& cache = sequences_[id];
  cache.keys.resize(model_.hparams.layer_count);
  cache.values.resize(model_.hparams.layer_count);
  return id;
}

void Engine::close_sequence(SequenceId sequence) {
  if (sequences_.erase(sequence) == 0)
    fail("Engine::close_sequence: no open sequence {}", sequence);
}

int Engine::sequence_length(SequenceId sequence) const {
  return cache_of(sequences_, sequence, "sequence_length").length;
}

void Engine::check_rows(Span<const StepRow> rows) {
  const Hyperparameters& hp = model_.hparams;
  row_caches_.clear();
  for (const StepRow& row : rows) {
    SequenceCache& cache = cache_of(sequences_, row.sequence, "step");
    if (std::find(row_caches_.begin(), row_caches_.end(), &cache) != row_caches_.end())
      fail("Engine::step: sequence {} appears in more than one row of the step", row.sequence);
    if (cache.length >= hp.context_length)
      fail("Engine::step: sequence {} already holds {} tokens, the model's context length",
           row.sequence, hp.context_length);
    if (row.token < 0 || row.token >= hp.vocab_size)
      fail("Engine::step: token {} of sequence {} is outside the vocabulary [0, {})", row.token,
           row.sequence, hp.vocab_size);
    row_caches_.push_back(&cache);
  }
}

void Engine::rms_norm(const Eigen::RowVectorXf& weight) {
  const float eps = model_.hparams.rms_norm_eps;
  normed_.resize(residual_.rows(), residual_.cols());
  for (Eigen::Index r = 0; r < residual_.rows(); ++r) {
    const float mean_square = residual_.row(r).squaredNorm() / static_cast<float>(residual_.cols());
    const float scale = 1.0f / std::sqrt(mean_square + eps);
    normed_.row(r) = weight.cwiseProduct(scale * residual_.row(r));
  }
}

void Engine::apply_rope(RowMatrix& heads) {
  const int head_size = model_.hparams.head_size();
  for (Eigen::Index r = 0; r < heads.rows(); ++r) {
    float* row = heads.row(r).data();
    for (Eigen::Index start = 0; start < heads.cols(); start += head_size) {
      for (int pair = 0; pair < head_size / 2; ++pair) {
        float& even = row[start + 2 * pair];
        float& odd = row[start + 2 * pair + 1];
        const float c = rope_cos_(r, pair);
        const float s = rope_sin_(r, pair);
        const float rotated_even = even * c - odd * s;
        odd = even * s + odd * c;
        even = rotated_even;
      }
    }
  }
}

void Engine::attend(int layer) {
  const Hyperparameters& hp = model_.hparams;
  const int head_size = hp.head_size();
  const int queries_per_kv_head = hp.head_count / hp.kv_head_count;
  const float score_scale = 1.0f / std::sqrt(static_cast<float>(head_size));
  // Grown to the longest sequence seen, not sized by the context length a file may inflate.
  Eigen::Index longest = 0;
  for (const SequenceCache* cache : row_caches_)
    longest = std::max<Eigen::Index>(longest, cache->length + 1);
  if (scores_.size() < longest) scores_.resize(longest);
  for (Eigen::Index r = 0; r < query_.rows(); ++r) {
    const SequenceCache& cache = *row_caches_[r];
    const Eigen::Index length = cache.length + 1;  // this step's key and value are in the cache
    for (int head = 0; head < hp.head_count; ++head) {
      const int kv_offset = (head / queries_per_kv_head) * head_size;
      const ConstRowMap keys(cache.keys[layer].data() + kv_offset, length, head_size,
                             Eigen::OuterStride<>(hp.kv_dim()));
      const ConstRowMap values(cache.values[layer].data() + kv_offset, length, head_size,
                               Eigen::OuterStride<>(hp.kv_dim()));
      auto scores = scores_.head(length);
      scores.noalias() = keys * query_.row(r).segment(head * head_size, head_size).transpose();
      scores *= score_scale;
      scores = (scores.array() - scores.maxCoeff()).exp();
      scores /= scores.sum();
      attention_.row(r).segment(head * head_size, head_size).noalias() =
          scores.transpose() * values;
    }
  }
}

const RowMatrix& Engine::step(Span<const StepRow> rows, const StepHooks& hooks) {
  const Hyperparameters& hp = model_.hparams;
  const Weights& w = model_.weights;
  check_rows(rows);
  ExploratorySampler* const sampler = hooks.sampler;
  const auto row_count = static_cast<Eigen::Index>(rows.size());

  residual_.resize(row_count, hp.dim);
  attention_.resize(row_count, hp.dim);
  rope_cos_.resize(row_count, hp.head_size() / 2);
  rope_sin_.resize(row_count, hp.head_size() / 2);
  for (Eigen::Index r = 0; r < row_count; ++r) {
    residual_.row(r) = w.token_embedding.row(rows[r].token);
    const auto position = static_cast<float>(row_caches_[r]->length);
    for (Eigen::Index pair = 0; pair < rope_cos_.cols(); ++pair) {
      const float angle = position * rope_inverse_frequencies_[pair];
      rope_cos_(r, pair) = std::cos(angle);
      rope_sin_(r, pair) = std::sin(angle);
    }
  }
  // Grows each row's caches, by doubling up to the context length, to hold this step's position.
  for (SequenceCache* cache : row_caches_) {
    if (cache->length < cache->keys.front().rows()) continue;
    const Eigen::Index capacity =
        std::min<Eigen::Index>(std::max<Eigen::Index>(16, 2 * cache->length), hp.context_length);
    for (int l = 0; l < hp.layer_count; ++l) {
      cache->keys[l].conservativeResize(capacity, hp.kv_dim());
      cache->values[l].conservativeResize(capacity, hp.kv_dim());
    }
  }

  const auto tap = [sampler](int layer, Site site, const RowMatrix& hidden) {
    if (sampler != nullptr && sampler->wants(layer, site))
      sampler->on_hidden(layer, site, view_of(hidden));
  };
  for (int l = 0; l < hp.layer_count; ++l) {
    const LayerWeights& layer = w.layers[l];
    tap(l, Site::layer_input, residual_);
    rms_norm(layer.attention_norm);
    tap(l, Site::layer_input_normed, normed_);

    query_.noalias() = normed_ * layer.query.transpose();
    key_.noalias() = normed_ * layer.key.transpose();
    value_.noalias() = normed_ * layer.value.transpose();
    apply_rope(query_);
    apply_rope(key_);
    for (Eigen::Index r = 0; r < row_count; ++r) {
      SequenceCache& cache = *row_caches_[r];
      cache.keys[l].row(cache.length) = key_.row(r);
      cache.values[l].row(cache.length) = value_.row(r);
    }
    attend(l);
    residual_.noalias() += attention_ * layer.attention_output.transpose();

    rms_norm(layer.ffn_norm);
    gate_.noalias() = normed_ * layer.ffn_gate.transpose();
    up_.noalias() = normed_ * layer.ffn_up.transpose();
    // SwiGLU: silu(gate) * up.
    gate_.array() = gate_.array() * (1.0f / (1.0f + (-gate_.array()).exp())) * up_.array();
    residual_.noalias() += gate_ * layer.ffn_down.transpose();
    tap(l, Site::layer_output, residual_);
  }
  for (SequenceCache* cache : row_caches_) ++cache->length;

  rms_norm(w.final_norm);
  tap(hp.layer_count - 1, Site::final_normed, normed_);
  // The sampler mixes at whichever of the two points its mode says.
  if (sampler != nullptr) sampler->before_lm_head(mutable_view_of(normed_));
  logits_.noalias() = normed_ * w.lm_head.transpose();
  if (sampler != nullptr)
    sampler->after_lm_head(mutable_view_of(logits_), view_of(w.lm_head), hooks.filter);
  return logits_;
}

const RowMatrix& Engine::prefill(SequenceId sequence, Span<const TokenId> tokens) {
  if (tokens.empty()) fail("Engine::prefill: no tokens for sequence {}", sequence);
  for (const TokenId token : tokens) {
    const StepRow row{sequence, token};
    step(Span<const StepRow>(&row, 1));
  }
  return logits_;
}

}  // namespace esamp::llama
