// The GGUF reader: real and hand-made files, every metadata type, F16/BF16 tensors, and corrupt
// files that must be an esamp::Error naming the file, never a crash or a huge allocation.
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>

#include "engine_test_support.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/tensor.hpp"
#include "llama/gguf_writer.hpp"

namespace esamp::llama::test {
namespace {

using Catch::Contains;
using detail::ByteWriter;

constexpr const char* kName = "hand-made.gguf";

GgufValue uint_value(GgufType type, std::uint64_t v) { return {type, v}; }
GgufValue int_value(GgufType type, std::int64_t v) { return {type, v}; }
GgufValue float_value(GgufType type, double v) { return {type, v}; }
GgufValue string_value(std::string text) { return {GgufType::string, std::move(text)}; }

// The start of a GGUF file by hand: header, then whatever the test appends.
ByteWriter gguf_header(std::uint64_t tensor_count, std::uint64_t metadata_count) {
  ByteWriter out;
  out.value(kGgufMagic);
  out.value(kGgufVersion);
  out.value(tensor_count);
  out.value(metadata_count);
  return out;
}

void write_string(ByteWriter& out, const std::string& text) {
  out.value<std::uint64_t>(text.size());
  out.bytes(text.data(), text.size());
}

void write_tensor_info(ByteWriter& out, const std::string& name,
                       const std::vector<std::uint64_t>& dims, std::uint32_t type,
                       std::uint64_t offset) {
  write_string(out, name);
  out.value(static_cast<std::uint32_t>(dims.size()));
  for (const std::uint64_t size : dims) out.value(size);
  out.value(type);
  out.value(offset);
}

// `out` padded to 32 bytes, then `data_bytes` zero bytes of tensor data.
std::vector<std::uint8_t> with_data(ByteWriter out, std::size_t data_bytes) {
  while (out.data().size() % 32 != 0) out.value<std::uint8_t>(0);
  const std::vector<std::uint8_t> zeros(data_bytes, 0);
  out.bytes(zeros.data(), zeros.size());
  return out.data();
}

void check_parse_fails(std::vector<std::uint8_t> bytes, const std::string& what) {
  CHECK_THROWS_WITH(GgufFile::parse(kName, std::move(bytes)), Contains(kName) && Contains(what));
}

// The real model file rebuilt through the writer, after `change` edits the metadata or tensors.
std::vector<std::uint8_t> rebuilt_model(
    const GgufFile& file, const std::function<void(std::string&, GgufValue&)>& change_metadata,
    const std::function<void(std::string&, std::vector<std::uint64_t>&)>& change_tensor) {
  GgufWriter writer;
  for (const auto& [stored_key, stored_value] : file.metadata()) {
    std::string key = stored_key;
    GgufValue value = stored_value;
    change_metadata(key, value);
    if (!key.empty()) writer.add_metadata(key, value);
  }
  for (const GgufTensorInfo& tensor : file.tensors()) {
    std::vector<float> values(tensor.element_count);
    file.read_tensor(tensor, values.data());
    std::string name = tensor.name;
    std::vector<std::uint64_t> dims = tensor.dims;
    change_tensor(name, dims);
    if (!name.empty()) writer.add_tensor(name, dims, tensor.type, values);
  }
  return writer.bytes();
}

void keep_metadata(std::string&, GgufValue&) {}
void keep_tensor(std::string&, std::vector<std::uint64_t>&) {}

}  // namespace

TEST_CASE("the GGUF reader reads stories260K.gguf's header, metadata and tensor infos") {
  const GgufFile file = GgufFile::open(model_file("stories260K.gguf"));
  CHECK(file.alignment() == 32);
  CHECK(file.metadata().size() == 19);
  CHECK(file.tensors().size() == 48);
  CHECK(file.get_string("general.architecture") == "llama");
  CHECK(file.get_uint("llama.embedding_length") == 64);
  CHECK(file.get_uint("llama.context_length") == 2048);
  CHECK(file.get_float("llama.attention.layer_norm_rms_epsilon") == Approx(1e-5));
  CHECK(file.get_string_array("tokenizer.ggml.tokens").size() == 512);
  CHECK(file.get_string_array("tokenizer.ggml.tokens")[1] == "<s>");
  CHECK(file.get_int_array("tokenizer.ggml.token_type")[3] == 6);
  const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
  REQUIRE(embedding != nullptr);
  CHECK(embedding->dims == std::vector<std::uint64_t>{64, 512});
  CHECK(embedding->type == GgmlType::f32);
  CHECK(file.find_tensor("no.such.tensor") == nullptr);

  const Model& model = gguf_model();
  CHECK(model.hparams.dim == 64);
  CHECK(model.hparams.hidden_dim == 172);
  CHECK(model.hparams.layer_count == 5);
  CHECK(model.hparams.head_count == 8);
  CHECK(model.hparams.kv_head_count == 4);
  CHECK(model.hparams.vocab_size == 512);
  CHECK(model.hparams.rope_freq_base == 10000.0f);
}

TEST_CASE("every GGUF metadata type and tensor type survives a write and a read") {
  GgufWriter writer;
  writer.add_metadata("general.alignment", uint_value(GgufType::uint32, 64));
  writer.add_metadata("u8", uint_value(GgufType::uint8, 250));
  writer.add_metadata("u16", uint_value(GgufType::uint16, 65000));
  writer.add_metadata("u32", uint_value(GgufType::uint32, 4000000000u));
  writer.add_metadata("u64", uint_value(GgufType::uint64, 1ull << 60));
  writer.add_metadata("i8", int_value(GgufType::int8, -100));
  writer.add_metadata("i16", int_value(GgufType::int16, -30000));
  writer.add_metadata("i32", int_value(GgufType::int32, -2000000000));
  writer.add_metadata("i64", int_value(GgufType::int64, -(1ll << 60)));
  writer.add_metadata("f32", float_value(GgufType::float32, 0.25));
  writer.add_metadata("f64", float_value(GgufType::float64, 1e300));
  writer.add_metadata("yes", GgufValue{GgufType::boolean, true});
  writer.add_metadata("text", string_value("héllo \n world"));
  writer.add_metadata(
      "strings",
      {GgufType::array,
       GgufArray{GgufType::string, {string_value("a"), string_value(""), string_value("ccc")}}});
  writer.add_metadata("floats", {GgufType::array, GgufArray{GgufType::float64,
                                                            {float_value(GgufType::float64, 1.5),
                                                             float_value(GgufType::float64, -2)}}});
  writer.add_metadata(
      "ints", {GgufType::array, GgufArray{GgufType::uint16, {uint_value(GgufType::uint16, 7)}}});
  writer.add_metadata(
      "nested",
      {GgufType::array,
       GgufArray{GgufType::array,
                 {GgufValue{GgufType::array,
                            GgufArray{GgufType::int8, {int_value(GgufType::int8, -1)}}}}}});
  writer.add_metadata("empty", {GgufType::array, GgufArray{GgufType::int32, {}}});
  const std::vector<float> values{1.0f, -2.5f, 0.1f, 65504.0f, 1e-7f, -0.0f};
  writer.add_tensor("f32", {3, 2}, GgmlType::f32, values);
  writer.add_tensor("f16", {6}, GgmlType::f16, values);
  writer.add_tensor("bf16", {2, 3}, GgmlType::bf16, values);

  const GgufFile file = GgufFile::parse(kName, writer.bytes());
  CHECK(file.alignment() == 64);
  CHECK(file.get_uint("u8") == 250);
  CHECK(file.get_uint("u16") == 65000);
  CHECK(file.get_uint("u32") == 4000000000u);
  CHECK(file.get_uint("u64") == 1ull << 60);
  CHECK(std::get<std::int64_t>(file.metadata().at("i8").value) == -100);
  CHECK(std::get<std::int64_t>(file.metadata().at("i16").value) == -30000);
  CHECK(std::get<std::int64_t>(file.metadata().at("i32").value) == -2000000000);
  CHECK(std::get<std::int64_t>(file.metadata().at("i64").value) == -(1ll << 60));
  CHECK(file.metadata().at("i64").type == GgufType::int64);
  CHECK(file.get_float("f32") == 0.25);
  CHECK(file.get_float("f64") == 1e300);
  CHECK(std::get<bool>(file.metadata().at("yes").value));
  CHECK(file.get_string("text") == "héllo \n world");
  CHECK(file.get_string_array("strings") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(file.get_float_array("floats") == std::vector<float>{1.5f, -2.0f});
  CHECK(file.get_int_array("ints") == std::vector<std::int64_t>{7});
  CHECK(file.get_int_array("empty").empty());
  const GgufArray& outer = std::get<GgufArray>(file.metadata().at("nested").value);
  REQUIRE(outer.elements.size() == 1);
  CHECK(std::get<std::int64_t>(std::get<GgufArray>(outer.elements[0].value).elements[0].value) ==
        -1);

  SECTION("wrong types and missing keys are errors naming the file and the key") {
    CHECK_THROWS_WITH(file.get_uint("text"), Contains(kName) && Contains("'text' is a string"));
    CHECK_THROWS_WITH(file.get_uint("i8"), Contains("expected a non-negative integer"));
    CHECK_THROWS_WITH(file.get_float("u8"), Contains("expected a float32 or float64"));
    CHECK_THROWS_WITH(file.get_string("strings"), Contains("is a array, expected a string"));
    CHECK_THROWS_WITH(file.get_string_array("floats"), Contains("expected an array of string"));
    CHECK_THROWS_WITH(file.get_float_array("strings"), Contains("expected an array of float32"));
    CHECK_THROWS_WITH(file.get_int_array("strings"), Contains("expected an array of integers"));
    CHECK_THROWS_WITH(file.get_uint("absent"), Contains(kName) && Contains("'absent' is missing"));
  }
  SECTION("tensors convert to float from F32, F16 and BF16") {
    for (const char* name : {"f32", "f16", "bf16"}) {
      const GgufTensorInfo& tensor = *file.find_tensor(name);
      REQUIRE(tensor.element_count == values.size());
      std::vector<float> read(values.size());
      file.read_tensor(tensor, read.data());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const float expected = tensor.type == GgmlType::f32 ? values[i]
                               : tensor.type == GgmlType::f16
                                   ? half_to_float(float_to_half(values[i]))
                                   : bfloat16_to_float(float_to_bfloat16(values[i]));
        CHECK(std::memcmp(&read[i], &expected, sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("a model written as F16 or BF16 GGUF loads its rounded weights") {
  const Model& model = gguf_model();
  const GgmlType type = GENERATE(GgmlType::f16, GgmlType::bf16);
  const Model rounded = load_gguf(GgufFile::parse(kName, to_gguf(model, type)));
  const auto round = [type](float value) {
    return type == GgmlType::f16 ? half_to_float(float_to_half(value))
                                 : bfloat16_to_float(float_to_bfloat16(value));
  };
  const RowMatrix expected = model.weights.layers[3].ffn_down.unaryExpr(round);
  CHECK(rounded.weights.layers[3].ffn_down == expected);
  CHECK(rounded.weights.lm_head == model.weights.lm_head.unaryExpr(round));
  CHECK(rounded.vocabulary.pieces == model.vocabulary.pieces);
}

TEST_CASE("a GGUF truncated anywhere is an esamp::Error naming the file") {
  const std::vector<std::uint8_t> whole = file_bytes(model_file("stories260K.gguf"));
  const std::size_t header_end = 14176;  // where the tensor data starts
  std::vector<std::size_t> cuts;
  for (std::size_t cut = 0; cut < header_end; ++cut) cuts.push_back(cut);
  for (std::size_t cut = header_end; cut < whole.size(); cut += whole.size() / 64)
    cuts.push_back(cut);
  cuts.push_back(whole.size() - 1);
  for (const std::size_t cut : cuts) {
    INFO("cut at " << cut);
    const std::vector<std::uint8_t> truncated(whole.begin(), whole.begin() + cut);
    REQUIRE_THROWS_WITH(GgufFile::parse("cut.gguf", truncated), Contains("cut.gguf"));
  }
}

TEST_CASE("flipping any header byte of a GGUF loads or fails with an esamp::Error, never crashes") {
  SECTION("stories260K.gguf, every byte before the tensor data") {
    const std::vector<std::uint8_t> whole = file_bytes(model_file("stories260K.gguf"));
    int rejected = 0;
    for (std::size_t at = 0; at < 14176; ++at) {
      std::vector<std::uint8_t> flipped = whole;
      flipped[at] ^= 0xFF;
      try {
        GgufFile::parse("flipped.gguf", std::move(flipped));
      } catch (const Error& error) {
        ++rejected;
        REQUIRE_THAT(error.what(), Contains("flipped.gguf"));
      }
    }
    CHECK(rejected > 1000);
  }
  SECTION("a tiny model, every byte, parsed, loaded and run") {
    const std::vector<std::uint8_t> whole = to_gguf(tiny_model(), GgmlType::f16);
    CHECK_NOTHROW(load_gguf(GgufFile::parse("tiny.gguf", whole)));
    for (std::size_t at = 0; at < whole.size(); ++at) {
      std::vector<std::uint8_t> flipped = whole;
      flipped[at] ^= static_cast<std::uint8_t>(1u << (at % 8));  // every bit position in turn
      try {
        const Model loaded = load_gguf(GgufFile::parse("flipped.gguf", std::move(flipped)));
        Engine engine(loaded);
        const SequenceId sequence = engine.open_sequence();
        engine.prefill(sequence, std::vector<TokenId>{1, 2, 3});
        const Tokenizer tokenizer(loaded.vocabulary);
        tokenizer.decode(tokenizer.encode("a ab ba", true, false));
      } catch (const Error& error) {
        REQUIRE_THAT(error.what(), Contains("flipped.gguf"));
      }
    }
  }
}

TEST_CASE("absurd counts, lengths, types and offsets in a GGUF are errors, not allocations") {
  const auto one_key = [](std::uint32_t type) {
    ByteWriter out = gguf_header(0, 1);
    write_string(out, "key");
    out.value(type);
    return out;
  };
  SECTION("the header") {
    ByteWriter bad_magic;
    bad_magic.value<std::uint32_t>(0x46554746);
    bad_magic.value(kGgufVersion);
    check_parse_fails(bad_magic.data(), "not a GGUF file");
    ByteWriter version_2;
    version_2.value(kGgufMagic);
    version_2.value<std::uint32_t>(2);
    check_parse_fails(version_2.data(), "GGUF version 2 is not supported");
    check_parse_fails(gguf_header(1ull << 60, 0).data(), "the tensor count = 1152921504606846976");
    check_parse_fails(gguf_header(0, 1ull << 60).data(),
                      "the metadata count = 1152921504606846976");
    check_parse_fails(gguf_header(~0ull, ~0ull).data(), "cannot fit");
  }
  SECTION("metadata") {
    ByteWriter long_key = gguf_header(0, 1);
    long_key.value<std::uint64_t>(1ull << 62);
    long_key.value<std::uint64_t>(0);
    check_parse_fails(long_key.data(), "a metadata key length = 4611686018427387904");
    ByteWriter long_string = one_key(8);
    long_string.value<std::uint64_t>(100);
    long_string.bytes("short", 5);
    check_parse_fails(long_string.data(), "a string length = 100 cannot fit in the 5 bytes left");
    ByteWriter long_array = one_key(9);
    long_array.value<std::uint32_t>(4);
    long_array.value<std::uint64_t>(1ull << 61);
    check_parse_fails(long_array.data(), "an array length = 2305843009213693952");
    check_parse_fails(one_key(13).data(), "unknown value type 13");
    ByteWriter bad_element = one_key(9);
    bad_element.value<std::uint32_t>(99);
    check_parse_fails(bad_element.data(), "unknown value type 99");
    ByteWriter bad_bool = one_key(7);
    bad_bool.value<std::uint8_t>(2);
    check_parse_fails(bad_bool.data(), "bool byte 2");
    ByteWriter deep = one_key(9);
    for (int level = 0; level < 10; ++level) {
      deep.value<std::uint32_t>(9);
      deep.value<std::uint64_t>(1);
    }
    check_parse_fails(deep.data(), "nests arrays deeper than");
    ByteWriter twice = gguf_header(0, 2);
    for (int i = 0; i < 2; ++i) {
      write_string(twice, "key");
      twice.value<std::uint32_t>(4);
      twice.value<std::uint32_t>(1);
    }
    check_parse_fails(twice.data(), "'key' appears twice");
    ByteWriter alignment = gguf_header(0, 1);
    write_string(alignment, "general.alignment");
    alignment.value<std::uint32_t>(4);
    alignment.value<std::uint32_t>(48);
    check_parse_fails(alignment.data(), "general.alignment = 48");
  }
  SECTION("tensor infos") {
    const auto one_tensor = [](const std::vector<std::uint64_t>& dims, std::uint32_t type,
                               std::uint64_t offset, std::size_t data_bytes) {
      ByteWriter out = gguf_header(1, 0);
      write_tensor_info(out, "w", dims, type, offset);
      return with_data(out, data_bytes);
    };
    check_parse_fails(one_tensor({1, 1, 1, 1, 1}, 0, 0, 4), "has 5 dimensions");
    check_parse_fails(one_tensor({}, 0, 0, 4), "has 0 dimensions");
    check_parse_fails(one_tensor({1ull << 40, 1ull << 40}, 0, 0, 64), "more elements than");
    check_parse_fails(one_tensor({~0ull, ~0ull, ~0ull, ~0ull}, 0, 0, 64), "more elements than");
    check_parse_fails(one_tensor({32}, 2, 0, 64), "ggml type 2");
    check_parse_fails(one_tensor({4}, 0, 4, 64), "offset 4, not a multiple of the alignment 32");
    check_parse_fails(one_tensor({4}, 0, 32, 32), "runs past the end");
    check_parse_fails(one_tensor({4}, 0, 1ull << 62, 32), "runs past the end");
    check_parse_fails(one_tensor({9}, 0, 0, 32), "runs past the end");
    CHECK_NOTHROW(GgufFile::parse(kName, one_tensor({8}, 0, 0, 32)));

    ByteWriter same_name = gguf_header(2, 0);
    write_tensor_info(same_name, "a", {8}, 0, 0);
    write_tensor_info(same_name, "a", {8}, 0, 32);
    check_parse_fails(with_data(same_name, 64), "tensor 'a' appears twice");
    ByteWriter overlap = gguf_header(2, 0);
    write_tensor_info(overlap, "a", {16}, 1, 0);
    write_tensor_info(overlap, "b", {16}, 0, 0);
    check_parse_fails(with_data(overlap, 64), "overlaps tensor");
    ByteWriter no_room_for_data = gguf_header(1, 0);
    write_tensor_info(no_room_for_data, "a", {0}, 0, 0);
    check_parse_fails(no_room_for_data.data(), "past the end of the");
  }
}

TEST_CASE("load_gguf names the missing key, the wrong type or the wrong shape") {
  const GgufFile file = GgufFile::open(model_file("stories260K.gguf"));
  const auto load = [](std::vector<std::uint8_t> bytes) {
    return load_gguf(GgufFile::parse(kName, std::move(bytes)));
  };
  CHECK_NOTHROW(load(rebuilt_model(file, keep_metadata, keep_tensor)));
  const auto without = [&](const std::string& key) {
    return rebuilt_model(
        file,
        [&](std::string& k, GgufValue&) {
          if (k == key) k.clear();
        },
        keep_tensor);
  };
  CHECK_THROWS_WITH(load(without("llama.block_count")),
                    Contains(kName) && Contains("'llama.block_count' is missing"));
  CHECK_THROWS_WITH(load(without("tokenizer.ggml.scores")), Contains("is missing"));
  CHECK_THROWS_WITH(load(without("general.architecture")), Contains("is missing"));
  CHECK_THROWS_WITH(load(rebuilt_model(
                        file,
                        [](std::string& k, GgufValue& v) {
                          if (k == "llama.embedding_length") v = string_value("64");
                        },
                        keep_tensor)),
                    Contains("'llama.embedding_length' is a string, expected an integer"));
  CHECK_THROWS_WITH(load(rebuilt_model(
                        file,
                        [](std::string& k, GgufValue& v) {
                          if (k == "general.architecture") v = string_value("gpt2");
                        },
                        keep_tensor)),
                    Contains("only 'llama' is supported"));
  CHECK_THROWS_WITH(load(rebuilt_model(
                        file,
                        [](std::string& k, GgufValue& v) {
                          if (k == "llama.attention.head_count")
                            v = uint_value(GgufType::uint32, 6);
                        },
                        keep_tensor)),
                    Contains("head_count = 6"));
  CHECK_THROWS_WITH(load(rebuilt_model(file, keep_metadata,
                                       [](std::string& name, std::vector<std::uint64_t>& dims) {
                                         if (name == "blk.2.attn_k.weight")
                                           std::swap(dims[0], dims[1]);
                                       })),
                    Contains("tensor 'blk.2.attn_k.weight' has shape [32, 64], expected [64, 32]"));
  CHECK_THROWS_WITH(load(rebuilt_model(file, keep_metadata,
                                       [](std::string& name, std::vector<std::uint64_t>&) {
                                         if (name == "blk.4.ffn_up.weight") name.clear();
                                       })),
                    Contains("tensor 'blk.4.ffn_up.weight' is missing"));
  const Model tied =
      load(rebuilt_model(file, keep_metadata, [](std::string& name, std::vector<std::uint64_t>&) {
        if (name == "output.weight") name.clear();
      }));
  CHECK(tied.weights.lm_head == tied.weights.token_embedding);
}

}  // namespace esamp::llama::test
