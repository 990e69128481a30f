/* The C API fuzzer's calls that pass an enum argument by value: in C any int converts to an enum
 * type, as an engine written in C may do; in C++ a value outside the enum's range would be
 * undefined behaviour in the fuzzer itself. */
#include "esamp/esamp.h"

esamp_status fuzz_esamp_wants(const esamp_sampler* sampler, int32_t layer, int site, bool* out) {
  return esamp_wants(sampler, layer, (esamp_site)site, out);
}

esamp_status fuzz_esamp_on_hidden(esamp_sampler* sampler, int32_t layer, int site,
                                  esamp_const_view hidden) {
  return esamp_on_hidden(sampler, layer, (esamp_site)site, hidden);
}
