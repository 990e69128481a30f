// GGUF v3 writing, the mirror of gguf.cpp's parsing.
#include "llama/gguf_writer.hpp"

#include <cstring>

#include "esamp/detail/binary_file.hpp"
#include "esamp/error.hpp"
#include "esamp/tensor.hpp"

namespace esamp::llama {
namespace {

using detail::ByteWriter;

template <class T>
const T& alternative(const GgufValue& value) {
  const T* held = std::get_if<T>(&value.value);
  if (held == nullptr)
    fail("GgufWriter: a value of GGUF type {} holds another kind of value",
         static_cast<std::uint32_t>(value.type));
  return *held;
}

void write_string(ByteWriter& out, const std::string& text) {
  out.value<std::uint64_t>(text.size());
  out.bytes(text.data(), text.size());
}

void write_value(ByteWriter& out, const GgufValue& value) {
  switch (value.type) {
    case GgufType::uint8:
      out.value(static_cast<std::uint8_t>(alternative<std::uint64_t>(value)));
      break;
    case GgufType::uint16:
      out.value(static_cast<std::uint16_t>(alternative<std::uint64_t>(value)));
      break;
    case GgufType::uint32:
      out.value(static_cast<std::uint32_t>(alternative<std::uint64_t>(value)));
      break;
    case GgufType::uint64:
      out.value(alternative<std::uint64_t>(value));
      break;
    case GgufType::int8:
      out.value(static_cast<std::int8_t>(alternative<std::int64_t>(value)));
      break;
    case GgufType::int16:
      out.value(static_cast<std::int16_t>(alternative<std::int64_t>(value)));
      break;
    case GgufType::int32:
      out.value(static_cast<std::int32_t>(alternative<std::int64_t>(value)));
      break;
    case GgufType::int64:
      out.value(alternative<std::int64_t>(value));
      break;
    case GgufType::float32:
      out.value(static_cast<float>(alternative<double>(value)));
      break;
    case GgufType::float64:
      out.value(alternative<double>(value));
      break;
    case GgufType::boolean:
      out.value<std::uint8_t>(alternative<bool>(value) ? 1 : 0);
      break;
    case GgufType::string:
      write_string(out, alternative<std::string>(value));
      break;
    case GgufType::array: {
      const GgufArray& array = alternative<GgufArray>(value);
      out.value(static_cast<std::uint32_t>(array.element_type));
      out.value<std::uint64_t>(array.elements.size());
      for (const GgufValue& element : array.elements) {
        if (element.type != array.element_type)
          fail("GgufWriter: an array of GGUF type {} holds an element of type {}",
               static_cast<std::uint32_t>(array.element_type),
               static_cast<std::uint32_t>(element.type));
        write_value(out, element);
      }
      break;
    }
  }
}

void pad_to(ByteWriter& out, std::uint64_t alignment) {
  static constexpr std::uint8_t kZero = 0;
  while (out.data().size() % alignment != 0) out.value(kZero);
}

GgufValue uint32_value(int value) { return {GgufType::uint32, static_cast<std::uint64_t>(value)}; }
GgufValue int32_value(int value) { return {GgufType::int32, std::int64_t{value}}; }
GgufValue float32_value(float value) { return {GgufType::float32, double{value}}; }
GgufValue string_value(std::string text) { return {GgufType::string, std::move(text)}; }

}  // namespace

void GgufWriter::add_metadata(std::string key, GgufValue value) {
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::add_tensor(std::string name, std::vector<std::uint64_t> ggml_dims, GgmlType type,
                            Span<const float> values) {
  Tensor tensor{std::move(name), std::move(ggml_dims), type, {}};
  ByteWriter data;
  for (const float value : values) {
    switch (type) {
      case GgmlType::f32:
        data.value(value);
        break;
      case GgmlType::f16:
        data.value(float_to_half(value));
        break;
      case GgmlType::bf16:
        data.value(float_to_bfloat16(value));
        break;
    }
  }
  tensor.data = data.data();
  tensors_.push_back(std::move(tensor));
}

std::vector<std::uint8_t> GgufWriter::bytes() const {
  std::uint64_t alignment = kGgufDefaultAlignment;
  for (const auto& [key, value] : metadata_)
    if (key == "general.alignment") alignment = alternative<std::uint64_t>(value);

  ByteWriter out;
  out.value(kGgufMagic);
  out.value(kGgufVersion);
  out.value<std::uint64_t>(tensors_.size());
  out.value<std::uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    write_string(out, key);
    out.value(static_cast<std::uint32_t>(value.type));
    write_value(out, value);
  }
  std::uint64_t offset = 0;
  for (const Tensor& tensor : tensors_) {
    write_string(out, tensor.name);
    out.value(static_cast<std::uint32_t>(tensor.ggml_dims.size()));
    for (const std::uint64_t size : tensor.ggml_dims) out.value(size);
    out.value(static_cast<std::uint32_t>(tensor.type));
    out.value(offset);
    offset = (offset + tensor.data.size() + alignment - 1) / alignment * alignment;
  }
  for (const Tensor& tensor : tensors_) {
    pad_to(out, alignment);
    out.bytes(tensor.data.data(), tensor.data.size());
  }
  return out.data();
}

std::vector<std::uint8_t> to_gguf(const Model& model, GgmlType tensor_type) {
  const Hyperparameters& hp = model.hparams;
  // The tokenizer fills in the token types a llama2.c vocabulary leaves out.
  const Tokenizer tokenizer(model.vocabulary);
  const Vocabulary& vocabulary = tokenizer.vocabulary();

  GgufWriter writer;
  writer.add_metadata("general.architecture", string_value("llama"));
  writer.add_metadata("llama.context_length", uint32_value(hp.context_length));
  writer.add_metadata("llama.embedding_length", uint32_value(hp.dim));
  writer.add_metadata("llama.feed_forward_length", uint32_value(hp.hidden_dim));
  writer.add_metadata("llama.block_count", uint32_value(hp.layer_count));
  writer.add_metadata("llama.attention.head_count", uint32_value(hp.head_count));
  writer.add_metadata("llama.attention.head_count_kv", uint32_value(hp.kv_head_count));
  writer.add_metadata("llama.rope.dimension_count", uint32_value(hp.head_size()));
  writer.add_metadata("llama.rope.freq_base", float32_value(hp.rope_freq_base));
  writer.add_metadata("llama.attention.layer_norm_rms_epsilon", float32_value(hp.rms_norm_eps));

  writer.add_metadata("tokenizer.ggml.model", string_value("llama"));
  GgufArray pieces{GgufType::string, {}};
  GgufArray scores{GgufType::float32, {}};
  GgufArray types{GgufType::int32, {}};
  for (int id = 0; id < tokenizer.size(); ++id) {
    std::string piece = vocabulary.pieces[id];
    for (std::size_t at = piece.find(' '); at != std::string::npos;
         at = piece.find(' ', at + kSentencePieceSpace.size()))
      piece.replace(at, 1, kSentencePieceSpace);
    pieces.elements.push_back(string_value(std::move(piece)));
    scores.elements.push_back(float32_value(vocabulary.scores[id]));
    types.elements.push_back(int32_value(static_cast<int>(vocabulary.types[id])));
  }
  writer.add_metadata("tokenizer.ggml.tokens", {GgufType::array, std::move(pieces)});
  writer.add_metadata("tokenizer.ggml.scores", {GgufType::array, std::move(scores)});
  writer.add_metadata("tokenizer.ggml.token_type", {GgufType::array, std::move(types)});
  writer.add_metadata("tokenizer.ggml.unknown_token_id", uint32_value(vocabulary.unknown));
  writer.add_metadata("tokenizer.ggml.bos_token_id", uint32_value(vocabulary.bos));
  writer.add_metadata("tokenizer.ggml.eos_token_id", uint32_value(vocabulary.eos));

  const auto add = [&](const std::string& name, const auto& tensor) {
    std::vector<std::uint64_t> ggml_dims{static_cast<std::uint64_t>(tensor.cols())};
    if (tensor.rows() > 1) ggml_dims.push_back(static_cast<std::uint64_t>(tensor.rows()));
    writer.add_tensor(name, std::move(ggml_dims), tensor_type,
                      Span<const float>(tensor.data(), static_cast<std::size_t>(tensor.size())));
  };
  const Weights& w = model.weights;
  add("token_embd.weight", w.token_embedding);
  add("output_norm.weight", w.final_norm);
  add("output.weight", w.lm_head);
  for (int l = 0; l < hp.layer_count; ++l) {
    const LayerWeights& layer = w.layers[l];
    const std::string prefix = fmt::format("blk.{}.", l);
    add(prefix + "attn_q.weight", layer.query);
    add(prefix + "attn_k.weight", layer.key);
    add(prefix + "attn_v.weight", layer.value);
    add(prefix + "attn_output.weight", layer.attention_output);
    add(prefix + "attn_norm.weight", layer.attention_norm);
    add(prefix + "ffn_gate.weight", layer.ffn_gate);
    add(prefix + "ffn_down.weight", layer.ffn_down);
    add(prefix + "ffn_up.weight", layer.ffn_up);
    add(prefix + "ffn_norm.weight", layer.ffn_norm);
  }
  return writer.bytes();
}

}  // namespace esamp::llama
