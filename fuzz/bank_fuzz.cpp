// libFuzzer entry point for LatentDistiller::load. The last input byte picks the bank's shape and
// whether to repair the file's checksum (so that mutations reach the checks behind it); the rest
// is the file. Any bytes must either load or give an esamp::Error, and on an Error the bank in
// memory must be bit-identical to before. A loaded bank must save back to the same bytes and
// train a step.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bank_shape.hpp"
#include "esamp/detail/binary_file.hpp"
#include "esamp/distiller.hpp"
#include "esamp/error.hpp"
#include "temp_file.hpp"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "bank_fuzz: %s\n", what);
  std::abort();
}

// Every bit of the bank's state: per slot the update count, parameters and moments.
std::vector<std::uint8_t> state_of(const esamp::LatentDistiller& bank) {
  esamp::detail::ByteWriter out;
  for (int s = 0; s < bank.slots(); ++s) {
    out.value(bank.updates(s));
    for (const auto array : {esamp::BankArray::parameters, esamp::BankArray::first_moment,
                             esamp::BankArray::second_moment}) {
      const auto values = bank.slot_array(array, s);
      out.bytes(values.data(), values.size() * sizeof(float));
    }
  }
  return out.data();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const esamp::fuzz::TempFile file("bank.bin"), resaved("bank_resaved.bin");
  if (size == 0) return 0;
  const std::uint8_t shape = data[size - 1];
  std::vector<std::uint8_t> bytes(data, data + size - 1);
  if ((shape & 0x80) && bytes.size() >= 8) {
    const std::uint64_t sum = esamp::detail::fnv1a64({bytes.data(), bytes.size() - 8});
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, sizeof sum);
  }
  file.write(bytes.data(), bytes.size());

  esamp::LatentDistiller bank(esamp::fuzz::bank_config(shape));
  esamp::fuzz::train(bank, 2);
  const std::vector<std::uint8_t> before = state_of(bank);
  try {
    bank.load(file.path());
  } catch (const esamp::Error&) {
    if (state_of(bank) != before) finding("a failed load changed the bank");
    return 0;
  }
  bank.save(resaved.path());
  if (esamp::detail::read_file(resaved.path()) != bytes)
    finding("a loaded bank does not save back to the file it came from");
  esamp::fuzz::train(bank, 1);
  return 0;
}
