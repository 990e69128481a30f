// Curve specs: the product of their values, the keys, labels, and the errors they raise.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "generate/option_values.hpp"
#include "grid.hpp"

namespace esamp::eval {

using generation::UsageError;

TEST_CASE("a plain curve is one configuration per temperature, in the order written") {
  const std::vector<EvalConfig> curve = parse_curve("temperature: T=0.5,1,1.5");
  REQUIRE(curve.size() == 3);
  CHECK(curve[0].filter.temperature == 0.5f);
  CHECK(curve[1].filter.temperature == 1.0f);
  CHECK(curve[2].filter.temperature == 1.5f);
  for (const EvalConfig& c : curve) {
    CHECK(c.curve == "temperature");
    CHECK_FALSE(c.esamp);
    CHECK(c.filter.min_p == 0.0f);
    CHECK(c.method() == "plain");
  }
  CHECK(curve[2].label() == "T=1.5");
}

TEST_CASE("several keys give their cartesian product, the last key varying fastest") {
  const std::vector<EvalConfig> curve = parse_curve("mp:T=1,2;min_p=0.1,0.2,0.3");
  REQUIRE(curve.size() == 6);
  const std::vector<std::pair<float, float>> expected = {{1, 0.1f}, {1, 0.2f}, {1, 0.3f},
                                                         {2, 0.1f}, {2, 0.2f}, {2, 0.3f}};
  for (std::size_t i = 0; i < curve.size(); ++i) {
    CHECK(curve[i].filter.temperature == expected[i].first);
    CHECK(curve[i].filter.min_p == expected[i].second);
  }
  CHECK(curve[4].label() == "T=2 min_p=0.2");
}

TEST_CASE("an esamp key makes an esamp curve, with the library's defaults elsewhere") {
  const std::vector<EvalConfig> curve = parse_curve("esamp: beta=0.5, 2");
  REQUIRE(curve.size() == 2);
  const ExplorationConfig defaults;
  CHECK(curve[0].esamp);
  CHECK(curve[0].method() == "esamp-latent");
  CHECK(curve[1].exploration.beta == 2.0f);
  CHECK(curve[1].exploration.mix == MixMode::latent);
  CHECK(curve[1].exploration.sharing == Sharing::per_group);
  CHECK(curve[1].exploration.source.layer == defaults.source.layer);
  CHECK(curve[1].exploration.target.layer == defaults.target.layer);
  CHECK(curve[1].rank == 0);
  CHECK(curve[1].label() == "T=1 beta=2 latent group");
  CHECK(parse_curve("g: sharing=global").front().esamp);  // no beta: the default
  CHECK(parse_curve("g: sharing=global").front().exploration.beta == defaults.beta);
}

TEST_CASE("every esamp key is parsed and shows in the label") {
  const EvalConfig c =
      parse_curve(
          "x: T=1.2; min_p=0.05; beta=1; mix=candidates; sharing=global; rank=16; lr=0.02; "
          "warmup=4; source=1@layer_input; target=-2@layer_output")
          .front();
  CHECK(c.method() == "esamp-candidates");
  CHECK(c.exploration.sharing == Sharing::global);
  CHECK(c.rank == 16);
  CHECK(c.lr == 0.02f);
  CHECK(c.exploration.warmup_updates == 4);
  CHECK(c.exploration.source.layer == 1);
  CHECK(c.exploration.source.site == Site::layer_input);
  CHECK(c.exploration.target.layer == -2);
  CHECK(c.exploration.target.site == Site::layer_output);
  CHECK(c.label() ==
        "T=1.2 min_p=0.05 beta=1 candidates global rank=16 lr=0.02 warmup=4 source=1@layer_input "
        "target=-2@layer_output");
}

TEST_CASE("warm_start, young, young_repeat and lr_decay are parsed and show in the label") {
  const EvalConfig c =
      parse_curve("w: warm_start=0; young=32; young_repeat=4; lr_decay=16").front();
  CHECK(c.esamp);
  CHECK_FALSE(c.exploration.warm_start);
  CHECK(c.exploration.young_updates == 32);
  CHECK(c.exploration.young_repeat == 4);
  CHECK(c.exploration.lr_decay_updates == 16);
  // The label names what differs from the library's defaults (warm_start=1 is one).
  CHECK(c.label() == "T=1 beta=0.5 latent group warm_start=0 young=32 young_repeat=4 lr_decay=16");
  CHECK(parse_curve("w: warm_start=1").front().exploration.warm_start);
  CHECK(parse_curve("w: warm_start=1").front().label() == "T=1 beta=0.5 latent group");
  CHECK_THROWS_AS(parse_curve("w: warm_start=2"), UsageError);
  CHECK_THROWS_AS(parse_curve("w: young_repeat=0"), UsageError);
}

TEST_CASE("target=final trains on h: the sampler's target is the final-normed state") {
  const EvalConfig c = parse_curve("f: target=final").front();
  CHECK(c.exploration.target.layer == -1);
  CHECK(c.exploration.target.site == Site::final_normed);
  CHECK(c.label() == "T=1 beta=0.5 latent group");  // the default target
  const EvalConfig layer = parse_curve("l: target=-1@layer_input_normed").front();
  CHECK(layer.exploration.target.site == Site::layer_input_normed);
  CHECK(layer.label() == "T=1 beta=0.5 latent group target=-1@layer_input_normed");
}

TEST_CASE("a bad curve spec is a UsageError naming the spec, the key and the value") {
  const auto [spec, message] = GENERATE(table<std::string, std::string>({
      {"no colon", "--curve 'no colon': expected NAME: key=v1,v2; key=v"},
      {"bad name!: T=1", "--curve 'bad name!: T=1': expected NAME"},
      {"c: temperature=1", "--curve c: 'temperature=1': expected key=value with a key among T"},
      {"c: T", "--curve c: 'T': expected key=value"},
      {"c: T=1; T=2", "--curve c: the key T is given twice"},
      {"c: T=0", "--curve c: T 0: expected a number in (0, 100]"},
      {"c: T=1,,2", "--curve c: T '': expected a number"},
      {"c: min_p=1.5", "--curve c: min_p 1.5: expected a number in [0, 1]"},
      {"c: beta=-1", "--curve c: beta -1: expected a number in [0,"},
      {"c: mix=hidden", "--curve c: mix 'hidden': expected latent or candidates"},
      {"c: sharing=all", "--curve c: sharing 'all': expected group or global"},
      {"c: rank=0", "--curve c: rank 0: expected an integer in [1,"},
      {"c: source=0@attn", "--curve c: source 'attn': expected layer_input or"},
      {"c: target=x@layer_output", "--curve c: target 'x': expected an integer"},
  }));
  CAPTURE(spec);
  CHECK_THROWS_AS(parse_curve(spec), UsageError);
  CHECK_THROWS_WITH(parse_curve(spec), Catch::Contains(message));
}

TEST_CASE("top_p, latent_mix and sharing=sample reach the configuration and its label") {
  const std::vector<EvalConfig> curve =
      parse_curve("s: top_p=0.9; sharing=sample,group; latent_mix=orthogonal; beta=1");
  REQUIRE(curve.size() == 2);
  CHECK(curve[0].filter.top_p == 0.9f);
  CHECK(curve[0].exploration.latent_mix == LatentMix::orthogonal);
  CHECK(curve[0].group_per_sample);
  CHECK(curve[0].exploration.sharing == Sharing::per_group);
  CHECK_FALSE(curve[1].group_per_sample);
  CHECK(curve[0].label() == "T=1 top_p=0.9 beta=1 latent sample latent_mix=orthogonal");
  CHECK(curve[1].label() == "T=1 top_p=0.9 beta=1 latent group latent_mix=orthogonal");
  CHECK_THROWS_AS(parse_curve("s: latent_mix=half"), UsageError);
}

TEST_CASE("a grid joins its curves in order and refuses two curves of one name") {
  const std::vector<EvalConfig> grid = parse_grid({"a: T=1,2", "b: beta=1"});
  REQUIRE(grid.size() == 3);
  CHECK(grid[2].curve == "b");
  CHECK_THROWS_MATCHES(parse_grid({"a: T=1", "a: T=2"}), UsageError,
                       Catch::Message("--curve a: two curves have this name"));
}

TEST_CASE("the default grid has every method the evaluation compares, and stays small") {
  const std::vector<EvalConfig> grid = parse_grid(default_curves());
  const auto count = [&grid](auto&& predicate) {
    return std::count_if(grid.begin(), grid.end(), predicate);
  };
  CHECK(count([](const EvalConfig& c) { return !c.esamp && c.filter.min_p == 0.0f; }) >= 5);
  CHECK(count([](const EvalConfig& c) { return !c.esamp && c.filter.min_p > 0.0f; }) >= 3);
  CHECK(count([](const EvalConfig& c) { return c.method() == "esamp-latent"; }) >= 3);
  CHECK(count([](const EvalConfig& c) { return c.method() == "esamp-candidates"; }) >= 2);
  CHECK(count([](const EvalConfig& c) {
          return c.method() == "esamp-candidates" && c.filter.min_p > 0.0f && c.filter.top_p < 1.0f;
        }) >= 2);
  // The ablation of collaborative exploration: per sample and global beside per group.
  CHECK(count([](const EvalConfig& c) { return c.exploration.sharing == Sharing::global; }) >= 1);
  CHECK(count([](const EvalConfig& c) { return c.group_per_sample; }) >= 1);
  // Each costs ~1,000 sentence-encoder passes on 64 prompts: the 15-minute budget.
  CHECK(grid.size() <= 24);
}

}  // namespace esamp::eval
