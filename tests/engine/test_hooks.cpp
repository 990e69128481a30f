// esamp's hooks in the llama engine: β = 0 changes nothing, β > 0 changes the tokens, every tap
// site and both mix modes are wired in.
#include <catch2/catch.hpp>

#include "engine_test_support.hpp"

namespace esamp::llama::test {
namespace {

constexpr int kSteps = 60;

std::unique_ptr<ExploratorySampler> make_sampler(const Model& model, float beta, MixMode mix,
                                                 Tap source = {0, Site::layer_input_normed},
                                                 Tap target = {-1, Site::layer_input_normed}) {
  DistillerConfig distiller;
  distiller.hidden_size = model.hparams.dim;
  distiller.rank = 16;
  distiller.seed = 7;
  distiller.lr = 1e-2f;
  distiller.slots = 2;
  ExplorationConfig exploration;
  exploration.beta = beta;
  exploration.mix = mix;
  exploration.source = source;
  exploration.target = target;
  return std::make_unique<ExploratorySampler>(model.hparams.layer_count, distiller, exploration);
}

}  // namespace

TEST_CASE("with beta = 0 the hooks change no token, in either mix mode") {
  const Model& model = gguf_model();
  const Generation plain = greedy_generation(model, kSteps);
  const Filter candidate_filter{1.0f, 40, 1.0f, 0.0f};
  for (const MixMode mix : {MixMode::latent, MixMode::candidates}) {
    const auto sampler = make_sampler(model, 0.0f, mix);
    const Generation hooked = greedy_generation(model, kSteps, sampler.get(), &candidate_filter);
    CHECK(hooked.tokens == plain.tokens);
    // The hooks did run: every decode step trained the distiller on its taps.
    const Stats& stats = sampler->stats();
    CHECK(stats.steps == kSteps - 1);
    CHECK(stats.rows_trained == kSteps - 1);
    CHECK(stats.rows_mixed == 0);
  }
}

TEST_CASE("with beta > 0 the hooks change the tokens, in either mix mode") {
  const Model& model = gguf_model();
  const Generation plain = greedy_generation(model, kSteps);
  const Filter candidate_filter{1.0f, 40, 1.0f, 0.0f};
  for (const MixMode mix : {MixMode::latent, MixMode::candidates}) {
    const auto sampler = make_sampler(model, 2.0f, mix);
    const Generation hooked = greedy_generation(model, kSteps, sampler.get(), &candidate_filter);
    CHECK(hooked.tokens != plain.tokens);
    CHECK(sampler->stats().rows_mixed > 0);
  }
}

TEST_CASE("every tap site of every layer reaches the sampler") {
  const Model& model = gguf_model();
  const int last = model.hparams.layer_count - 1;
  const auto [source, target] =
      GENERATE_COPY(std::make_pair(Tap{0, Site::layer_input}, Tap{0, Site::layer_output}),
                    std::make_pair(Tap{1, Site::layer_input_normed}, Tap{last, Site::layer_input}),
                    std::make_pair(Tap{2, Site::layer_output}, Tap{last, Site::layer_output}),
                    std::make_pair(Tap{0, Site::layer_input_normed}, Tap{-1, Site::final_normed}));
  const auto sampler = make_sampler(model, 0.5f, MixMode::latent, source, target);
  // end_step fails when a tap was not delivered; training needs both.
  greedy_generation(model, 10, sampler.get());
  CHECK(sampler->stats().rows_trained == 9);
}

TEST_CASE("candidates mode without a filter is an error") {
  const Model& model = gguf_model();
  const auto sampler = make_sampler(model, 0.5f, MixMode::candidates);
  CHECK_THROWS_WITH(
      greedy_generation(model, 3, sampler.get(), nullptr),
      Catch::Contains(
          "candidates needs the filter that picks the candidates, and the filter is null"));
}

TEST_CASE("rows of several groups in one batch are hooked together") {
  const Model& model = gguf_model();
  const auto sampler = make_sampler(model, 1.0f, MixMode::latent);
  Engine engine(model);
  const std::vector<GroupId> groups{sampler->open_group(), sampler->open_group()};
  std::vector<StepRow> rows;
  for (int i = 0; i < 4; ++i) {
    const SequenceId sequence = engine.open_sequence();
    engine.prefill(sequence, std::vector<TokenId>{1, static_cast<TokenId>(100 + i)});
    rows.push_back({sequence, static_cast<TokenId>(200 + i)});
  }
  const std::vector<GroupId> row_groups{groups[0], groups[0], groups[1], groups[1]};
  for (int step = 0; step < 5; ++step) {
    sampler->begin_step(row_groups);
    const RowMatrix& logits = engine.step(rows, StepHooks{sampler.get(), nullptr});
    sampler->end_step();
    for (std::size_t r = 0; r < rows.size(); ++r)
      rows[r].token = argmax(logits.row(static_cast<Eigen::Index>(r)).data(), logits.cols());
  }
  const Stats& stats = sampler->stats();
  CHECK(stats.rows_trained == 20);
  CHECK(stats.rows_mixed == 16);  // every step after the first update
}

}  // namespace esamp::llama::test
