// libFuzzer entry point for the llama2.c loader: the input is a u32 length L, then L bytes of
// checkpoint and the rest as its tokenizer file. Any bytes must give a model (whose tokenizer and
// forward then run) or an esamp::Error, never a crash, a leak or a huge allocation.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "esamp/error.hpp"
#include "llama/engine.hpp"
#include "llama/model.hpp"
#include "llama/tokenizer.hpp"
#include "temp_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace esamp::llama;
  static const esamp::fuzz::TempFile checkpoint("llama2c.bin");
  static const esamp::fuzz::TempFile tokenizer_file("llama2c_tok.bin");
  if (size < 4) return 0;
  std::uint32_t checkpoint_size;
  std::memcpy(&checkpoint_size, data, sizeof checkpoint_size);
  const std::size_t split = std::min<std::size_t>(checkpoint_size, size - 4);
  checkpoint.write(data + 4, split);
  tokenizer_file.write(data + 4 + split, size - 4 - split);
  try {
    const Model model = load_llama2c(checkpoint.path(), tokenizer_file.path());
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
