#include <catch2/catch.hpp>

#include "esamp/config.hpp"
#include "esamp/core.hpp"

using Catch::Matchers::Contains;
using esamp::DistillerConfig;
using esamp::ExplorationConfig;

namespace {
DistillerConfig valid_distiller() {
  DistillerConfig c;
  c.hidden_size = 64;
  c.rank = 16;
  return c;
}
}  // namespace

TEST_CASE("the default configs are valid", "[config]") {
  REQUIRE_NOTHROW(valid_distiller().validate());
  REQUIRE_NOTHROW(ExplorationConfig{}.validate(5));
}

TEST_CASE("a bad DistillerConfig field is an error naming the field, value and range", "[config]") {
  DistillerConfig c = valid_distiller();
  std::string expected;
  SECTION("hidden_size") {
    c.hidden_size = 0;
    expected = "DistillerConfig.hidden_size = 0: must be >= 1";
  }
  SECTION("rank zero") {
    c.rank = 0;
    expected = "DistillerConfig.rank = 0: must be in [1, hidden_size = 64]";
  }
  SECTION("rank above hidden size") {
    c.rank = 65;
    expected = "DistillerConfig.rank = 65";
  }
  SECTION("init_std") {
    c.init_std = -1.0f;
    expected = "DistillerConfig.init_std = -1";
  }
  SECTION("lr zero") {
    c.lr = 0.0f;
    expected = "DistillerConfig.lr = 0: must be finite and > 0";
  }
  SECTION("lr infinite") {
    c.lr = INFINITY;
    expected = "DistillerConfig.lr = inf";
  }
  SECTION("adam_beta1") {
    c.adam_beta1 = 1.0f;
    expected = "DistillerConfig.adam_beta1 = 1: must be in [0, 1)";
  }
  SECTION("adam_beta2") {
    c.adam_beta2 = -0.5f;
    expected = "DistillerConfig.adam_beta2 = -0.5: must be in [0, 1)";
  }
  SECTION("adam_eps") {
    c.adam_eps = 0.0f;
    expected = "DistillerConfig.adam_eps = 0";
  }
  SECTION("weight_decay") {
    c.weight_decay = 2.0f;
    expected = "DistillerConfig.weight_decay = 2: must be in [0, 1]";
  }
  SECTION("weight_decay NaN") {
    c.weight_decay = NAN;
    expected = "DistillerConfig.weight_decay = nan";
  }
  SECTION("slots") {
    c.slots = 0;
    expected = "DistillerConfig.slots = 0: must be in [1, 65536]";
  }
  REQUIRE_THROWS_WITH(c.validate(), Contains(expected));
  REQUIRE_THROWS_AS(c.validate(), esamp::Error);
  REQUIRE_THROWS_AS(c.validate(), std::invalid_argument);
}

TEST_CASE("a bad ExplorationConfig field is an error naming the field, value and range",
          "[config]") {
  ExplorationConfig c;
  int layers = 5;
  std::string expected;
  SECTION("beta negative") {
    c.beta = -0.1f;
    expected = "ExplorationConfig.beta = -0.1: must be finite and >= 0";
  }
  SECTION("beta NaN") {
    c.beta = NAN;
    expected = "ExplorationConfig.beta = nan";
  }
  SECTION("source layer beyond the model") {
    c.source.layer = 5;
    expected = "ExplorationConfig.source.layer = 5: must be in [-5, 4] for a 5-layer model";
  }
  SECTION("target layer before the model") {
    c.target.layer = -6;
    expected = "ExplorationConfig.target.layer = -6";
  }
  SECTION("target before the source") {
    c.source.layer = 3;
    c.target = {1, esamp::Site::layer_input_normed};
    expected =
        "ExplorationConfig.target = (layer 1, layer_input_normed): must come after the "
        "source (layer 3, layer_input_normed)";
  }
  SECTION("target at the source") {
    c.source.layer = 4;
    c.target = {4, esamp::Site::layer_input_normed};
    expected = "must come after the source";
  }
  SECTION("the final norm as the source") {
    c.source = {-1, esamp::Site::final_normed};
    expected = "ExplorationConfig.source.site = final_normed: the source must be a layer's tensor";
  }
  SECTION("the final norm at another layer") {
    c.target = {2, esamp::Site::final_normed};
    expected =
        "ExplorationConfig.target = (layer 2, final_normed): the final norm follows the last "
        "layer, 4 (or -1)";
  }
  SECTION("warmup_updates") {
    c.warmup_updates = -1;
    expected = "ExplorationConfig.warmup_updates = -1: must be in [0, 1000000]";
  }
  SECTION("young_updates") {
    c.young_updates = -1;
    expected = "ExplorationConfig.young_updates = -1: must be in [0, 1000000]";
  }
  SECTION("young_repeat") {
    c.young_repeat = 0;
    expected = "ExplorationConfig.young_repeat = 0: must be in [1, 64]";
  }
  SECTION("lr_decay_updates") {
    c.lr_decay_updates = -2;
    expected = "ExplorationConfig.lr_decay_updates = -2: must be in [0, 1000000]";
  }
  SECTION("max_rows") {
    c.max_rows = 0;
    expected = "ExplorationConfig.max_rows = 0: must be in [1, 1048576]";
  }
  SECTION("num_layers") {
    layers = 0;
    expected = "num_layers = 0: must be >= 1";
  }
  REQUIRE_THROWS_WITH(c.validate(layers), Contains(expected));
}

TEST_CASE("a target later in the same layer than the source is valid", "[config]") {
  ExplorationConfig c;
  c.source = {2, esamp::Site::layer_input_normed};
  c.target = {2, esamp::Site::layer_output};
  REQUIRE_NOTHROW(c.validate(5));
  c.target = {-1, esamp::Site::final_normed};
  REQUIRE_NOTHROW(c.validate(5));
  c.source = {4, esamp::Site::layer_output};  // still before the final norm
  REQUIRE_NOTHROW(c.validate(5));
}

TEST_CASE("the defaults are the best measured settings (bench/results/quality.md)", "[config]") {
  const DistillerConfig d;
  const ExplorationConfig e;
  CHECK(d.lr == 1e-2f);
  CHECK(d.rank == 128);
  CHECK(e.beta == 0.5f);
  CHECK(e.source.layer == 0);
  CHECK(e.source.site == esamp::Site::layer_input_normed);
  CHECK(e.target.layer == -1);
  CHECK(e.target.site == esamp::Site::final_normed);
  CHECK(e.mix == esamp::MixMode::latent);
  CHECK(e.sharing == esamp::Sharing::per_group);
  CHECK(e.warm_start);
  CHECK(e.has_prior());
  CHECK(e.young_updates == 16);
  CHECK(e.young_repeat == 2);
  CHECK(e.lr_decay_updates == 0);
}

TEST_CASE("warm_start keeps a prior with per-group sharing only", "[config]") {
  ExplorationConfig e;
  e.sharing = esamp::Sharing::global;
  REQUIRE_NOTHROW(e.validate(5));  // the default warm_start is no error with global sharing...
  CHECK_FALSE(e.has_prior());      // ...it has nothing to do there
  e.sharing = esamp::Sharing::per_group;
  e.warm_start = false;
  CHECK_FALSE(e.has_prior());
}

TEST_CASE("update_bytes counts the forward's read, the backward's read of B and the update",
          "[config]") {
  DistillerConfig config;
  config.hidden_size = 2048;
  config.rank = 128;
  // A slot: 3 H r + r + 2 H = 790656 floats; B: H r = 262144.
  CHECK(esamp::update_bytes(config) == 4 * (790656 + 262144 + 2 * 3 * 790656));  // AdamW: p, m, v
  config.optimizer = esamp::Optimizer::sgd;
  CHECK(esamp::update_bytes(config) == 4 * (790656 + 262144 + 2 * 790656));  // SGD: p only
}
