// Drives one decode step through the installed headers; exits non-zero if anything is off.
#include <cstdio>
#include <esamp/sampler.hpp>
#include <vector>

int main() {
  esamp::DistillerConfig distiller;
  distiller.hidden_size = 8;
  distiller.rank = 2;
  esamp::ExploratorySampler sampler(2, distiller, esamp::ExplorationConfig{});
  const esamp::GroupId group = sampler.open_group();
  std::vector<float> hidden(8, 0.5f);
  sampler.begin_step(std::vector<esamp::GroupId>{group});
  for (int layer = 0; layer < 2; ++layer)  // the default source: layer 0's normed input
    if (sampler.wants(layer, esamp::Site::layer_input_normed))
      sampler.on_hidden(layer, esamp::Site::layer_input_normed,
                        esamp::ConstMatrixView(hidden.data(), 1, 8));
  // The default target is the final-normed state, handed over here.
  sampler.before_lm_head(esamp::MatrixView(hidden.data(), 1, 8));
  sampler.end_step();
  const bool ok = sampler.stats().steps == 1 && sampler.stats().rows_trained == 1;
  std::puts(ok ? "consumer: ok" : "consumer: unexpected stats");
  return ok ? 0 : 1;
}
