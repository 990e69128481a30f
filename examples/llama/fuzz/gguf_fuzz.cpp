// libFuzzer entry point: any bytes given to the GGUF reader, and to the model loader, tokenizer and
// forward when they parse, must give a model or an esamp::Error, never a crash, a leak or a huge
// allocation.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "esamp/error.hpp"
#include "llama/engine.hpp"
#include "llama/gguf.hpp"
#include "llama/model.hpp"
#include "llama/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace esamp::llama;
  try {
    const GgufFile file =
        GgufFile::parse("fuzz.gguf", std::vector<std::uint8_t>(data, data + size));
    std::vector<float> values;
    for (const GgufTensorInfo& tensor : file.tensors()) {
      values.resize(tensor.element_count);
      file.read_tensor(tensor, values.data());
    }
    const Model model = load_gguf(file);
    const Tokenizer tokenizer(model.vocabulary);
    const std::vector<TokenId> tokens =
        tokenizer.encode("Once upon a time, \xF0\x9F\x98\x80", true, true);
    tokenizer.decode(tokens);
    Engine engine(model);
    const SequenceId sequence = engine.open_sequence();
    engine.prefill(sequence, std::vector<TokenId>{tokenizer.bos(), tokenizer.eos()});
  } catch (const esamp::Error&) {
    // A rejected file is the expected outcome for most inputs.
  }
  return 0;
}
