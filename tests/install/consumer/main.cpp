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
  sampler.on_hidden(0, esamp::Site::layer_input_normed,
                    esamp::ConstMatrixView(hidden.data(), 1, 8));
  sampler.on_hidden(1, esamp::Site::layer_input_normed,
                    esamp::ConstMatrixView(hidden.data(), 1, 8));
  sampler.mix_hidden(esamp::MatrixView(hidden.data(), 1, 8));
  sampler.end_step();
  const bool ok = sampler.stats().steps == 1 && sampler.stats().rows_trained == 1;
  std::puts(ok ? "consumer: ok" : "consumer: unexpected stats");
  return ok ? 0 : 1;
}
