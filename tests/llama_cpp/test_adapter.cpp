// esamp::llama_cpp::Adapter against the real llama.cpp library and stories260K.gguf: the rows it
// taps, the group each row goes to, the user's own eval callback, and the configurations it
// refuses.
#include <array>
#include <cstring>

#include "esamp/distiller.hpp"
#include "generate/generation.hpp"
#include "llama/engine.hpp"
#include "llama/model.hpp"
#include "llama_cpp_test_support.hpp"

namespace esamp::llama_cpp::test {
namespace {

// Every tensor in float32 (no f16 KV cache, no flash attention), so that llama.cpp and the
// project's engine differ only by the order of float32 sums.
llama_context_params float32_params(int sequences, int tokens) {
  llama_context_params params = context_params({sequences, tokens, 1});
  params.type_k = params.type_v = GGML_TYPE_F32;
  params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  return params;
}

void prefill(llama_context* context, Span<const llama_token> tokens, llama_seq_id sequence) {
  Batch batch(static_cast<int>(tokens.size()), 1);
  for (std::size_t p = 0; p < tokens.size(); ++p)
    batch.add(tokens[p], static_cast<llama_pos>(p), Span<const llama_seq_id>(&sequence, 1),
              p + 1 == tokens.size());
  REQUIRE(llama_decode(context, batch.get()) == 0);
}

std::vector<float> logits_row(llama_context* context, int row) {
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(stories_model()));
  const float* logits = llama_get_logits_ith(context, row);
  return {logits, logits + vocab};
}

}  // namespace

TEST_CASE("the adapter taps the rows the project's engine computes for the same tokens") {
  llama_model* model = stories_model();
  const std::vector<llama_token> tokens =
      tokenize(model, "Once upon a time, there was a little girl named Lily.");
  const std::size_t prompt = 3;
  REQUIRE(tokens.size() > prompt + 4);
  ExplorationConfig exploration;
  exploration.beta = 0.0f;  // the taps only; the continuation is forced anyway
  exploration.max_rows = 1;
  // The target as attn_norm-4 (the last layer's normed input) or as result_norm (final norm).
  exploration.target.site = GENERATE(Site::layer_input_normed, Site::final_normed);
  INFO("target site " << name(exploration.target.site));

  Recording through_llama_cpp;
  const auto sampler = make_sampler(model, exploration, &through_llama_cpp);
  Adapter adapter(model, *sampler);
  llama_context* context = adapter.init_context(float32_params(1, static_cast<int>(tokens.size())));
  prefill(context, Span<const llama_token>(tokens.data(), prompt), 0);
  const llama_seq_id sequence = 0;
  const GroupId group = adapter.open_group(Span<const llama_seq_id>(&sequence, 1));
  Batch step(1, 1);
  for (std::size_t p = prompt; p < tokens.size(); ++p) {
    step.clear();
    step.add(tokens[p], static_cast<llama_pos>(p), Span<const llama_seq_id>(&sequence, 1), true);
    REQUIRE(adapter.decode(step.get()) == 0);
  }
  adapter.close_group(group);

  const llama::Model engine_model = llama::load_gguf(model_file("stories260K.gguf"));
  llama::Engine engine(engine_model);
  Recording through_engine;
  const auto engine_sampler = make_sampler(model, exploration, &through_engine);
  const llama::SequenceId engine_sequence = engine.open_sequence();
  engine.prefill(engine_sequence, Span<const llama::TokenId>(tokens.data(), prompt));
  const GroupId engine_group = engine_sampler->open_group();
  for (std::size_t p = prompt; p < tokens.size(); ++p) {
    const std::array<GroupId, 1> groups{engine_group};
    engine_sampler->begin_step(Span<const GroupId>(groups.data(), 1));
    const llama::StepRow row{engine_sequence, tokens[p]};
    engine.step(Span<const llama::StepRow>(&row, 1), {engine_sampler.get(), nullptr});
    engine_sampler->end_step();
  }

  const std::size_t steps = tokens.size() - prompt;
  REQUIRE(through_llama_cpp.sources.size() == steps);
  REQUIRE(through_engine.sources.size() == steps);
  REQUIRE(through_llama_cpp.targets.size() == steps);
  for (std::size_t t = 0; t < steps; ++t) {
    INFO("step " << t);
    // Layer 0's normed input is one RMS norm of the embedding row: a sum of 64 squares in float32
    // differs by at most ~64 ulp between summation orders, 64 * 2^-24 = 4e-6 of the row's scale.
    CHECK(relative_difference(through_llama_cpp.sources[t], through_engine.sources[t]) < 1e-5);
    // The last layer's input (or the final norm) went through 4-5 layers, each with dot products
    // of length <= 172 and a softmax over the context: ~10 such float32 reductions of <= 172
    // terms, 10 * 172 * 2^-24 = 1e-4 of the scale as a bound that rounding, not a wrong row,
    // stays under.
    CHECK(relative_difference(through_llama_cpp.targets[t], through_engine.targets[t]) < 1e-4);
  }
  // The bound is meaningful: consecutive steps' rows (other tokens) differ far beyond it.
  CHECK(relative_difference(through_llama_cpp.targets[0], through_engine.targets[1]) > 1e-2);
}

TEST_CASE("a batch with its sequences out of order maps each row to its own group") {
  llama_model* model = stories_model();
  const std::array<std::vector<llama_token>, 3> texts = {
      tokenize(model, "Tom had a big red ball. One day he kicked it"),
      tokenize(model, "There was a small bird who could not fly at all"),
      tokenize(model, "Lily and her mom went to the park to see the ducks"),
  };
  const std::size_t prompt = 4, steps = 5;
  const int context_tokens = 32;
  const std::array<llama_seq_id, 3> batch_order = {2, 0, 1};
  ExplorationConfig exploration;
  exploration.beta = 1.0f;  // strong mixing: a row mixed with another group's prediction shows
  exploration.max_rows = 3;

  // Runs `order`'s sequences together for `steps` forced tokens; returns [steps][rows] logits and
  // the sampler (its slot s serves sequence s: the groups are opened in sequence order).
  const auto run = [&](const std::vector<llama_seq_id>& order, Recording& recording,
                       std::unique_ptr<ExploratorySampler>& sampler) {
    sampler = make_sampler(model, exploration, &recording);
    Adapter adapter(model, *sampler);
    llama_context* context = adapter.init_context(float32_params(3, context_tokens));
    for (const llama_seq_id s : order)
      prefill(context, Span<const llama_token>(texts[static_cast<std::size_t>(s)].data(), prompt),
              s);
    std::array<GroupId, 3> groups{};
    for (llama_seq_id s = 0; s < 3; ++s)
      groups[static_cast<std::size_t>(s)] = adapter.open_group(Span<const llama_seq_id>(&s, 1));
    std::vector<std::vector<std::vector<float>>> logits;
    Batch step(3, 1);
    for (std::size_t t = 0; t < steps; ++t) {
      step.clear();
      for (const llama_seq_id s : order)
        step.add(texts[static_cast<std::size_t>(s)][prompt + t], static_cast<llama_pos>(prompt + t),
                 Span<const llama_seq_id>(&s, 1), true);
      REQUIRE(adapter.decode(step.get()) == 0);
      logits.emplace_back();
      for (std::size_t r = 0; r < order.size(); ++r)
        logits.back().push_back(logits_row(context, static_cast<int>(r)));
    }
    for (const GroupId g : groups) adapter.close_group(g);
    return logits;
  };

  Recording batched_recording;
  std::unique_ptr<ExploratorySampler> batched_sampler;
  const auto batched =
      run({batch_order.begin(), batch_order.end()}, batched_recording, batched_sampler);
  for (const auto& slots : batched_recording.row_slots) CHECK(slots == std::vector<int>{2, 0, 1});

  for (std::size_t r = 0; r < batch_order.size(); ++r) {
    const llama_seq_id s = batch_order[r];
    INFO("batch row " << r << ", sequence " << s);
    Recording solo_recording;
    std::unique_ptr<ExploratorySampler> solo_sampler;
    const auto solo = run({s}, solo_recording, solo_sampler);
    for (std::size_t t = 0; t < steps; ++t) {
      INFO("step " << t);
      // Batch size changes only the float32 summation order of the same products.
      CHECK(relative_difference({batched_recording.sources[t][r]}, solo_recording.sources[t]) <
            1e-5);
      CHECK(relative_difference({batched[t][r]}, solo[t]) < 1e-4);
      // Against the next row's sequence the same comparison fails: a swap would be caught.
      const std::size_t other = (r + 1) % batch_order.size();
      CHECK(relative_difference({batched[t][other]}, solo[t]) > 1e-2);
    }
    const DistillerParams trained = LatentDistiller(batched_sampler->bank()).parameters(s);
    const DistillerParams alone = LatentDistiller(solo_sampler->bank()).parameters(s);
    REQUIRE(trained.B.size() == alone.B.size());
    CHECK(relative_difference({{trained.B.data(), trained.B.data() + trained.B.size()}},
                              {{alone.B.data(), alone.B.data() + alone.B.size()}}) < 1e-4);
  }
}

TEST_CASE("training on llama.cpp's own threads gives the bits of the backend's own threads") {
  llama_model* model = stories_model();
  const std::array<std::vector<llama_token>, 2> texts = {
      tokenize(model, "Tom had a big red ball. One day he kicked it"),
      tokenize(model, "There was a small bird who could not fly at all"),
  };
  const std::size_t prompt = 4, steps = 6;
  // One group of both sequences, `steps` forced tokens on 2 llama.cpp threads; the bank after.
  const auto run = [&](int training_threads, const BackendFactory& backend) {
    DistillerConfig distiller;
    distiller.hidden_size = llama_model_n_embd(model);
    distiller.rank = 16;
    distiller.seed = 3;
    ExplorationConfig exploration;
    exploration.max_rows = 2;
    exploration.training_threads = training_threads;
    ExploratorySampler sampler(llama_model_n_layer(model), distiller, exploration, backend);
    Adapter adapter(model, sampler);
    llama_context_params params = float32_params(2, 32);
    params.n_threads = params.n_threads_batch = 2;
    llama_context* context = adapter.init_context(params);
    const std::array<llama_seq_id, 2> sequences = {0, 1};
    for (const llama_seq_id s : sequences)
      prefill(context, Span<const llama_token>(texts[static_cast<std::size_t>(s)].data(), prompt),
              s);
    adapter.open_group(Span<const llama_seq_id>(sequences.data(), sequences.size()));
    Batch step(2, 1);
    for (std::size_t t = 0; t < steps; ++t) {
      step.clear();
      for (const llama_seq_id s : sequences)
        step.add(texts[static_cast<std::size_t>(s)][prompt + t], static_cast<llama_pos>(prompt + t),
                 Span<const llama_seq_id>(&s, 1), true);
      REQUIRE(adapter.decode(step.get()) == 0);
    }
    REQUIRE(sampler.stats().slot_updates > 0);
    return sampler.bank();
  };
  const BankState own = run(1, cpu::backend());
  const BankState team = run(2, llama_cpp::backend());
  for (const auto array :
       {BankArray::parameters, BankArray::first_moment, BankArray::second_moment})
    REQUIRE(own.whole(array) == team.whole(array));
}

TEST_CASE("the adapter chains the eval callback the context params already had") {
  struct Seen {
    int asked_for_l_out = 0, handed_l_out = 0;
  } seen;
  llama_context_params params = context_params({1, 16, 1});
  params.cb_eval = [](ggml_tensor* tensor, bool ask, void* data) {
    auto& s = *static_cast<Seen*>(data);
    const bool mine = std::strcmp(tensor->name, "l_out-1") == 0;
    if (mine) ++(ask ? s.asked_for_l_out : s.handed_l_out);
    return ask ? mine : true;
  };
  params.cb_eval_user_data = &seen;
  llama_model* model = stories_model();
  ExplorationConfig exploration;
  exploration.max_rows = 1;
  const auto sampler = make_sampler(model, exploration);
  Adapter adapter(model, *sampler);
  llama_context* context = adapter.init_context(params);
  const std::vector<llama_token> tokens = tokenize(model, "Once upon a time");
  prefill(context, Span<const llama_token>(tokens.data(), tokens.size() - 1), 0);
  CHECK(seen.handed_l_out == 1);  // prefill: the user's callback alone
  const llama_seq_id sequence = 0;
  adapter.open_group(Span<const llama_seq_id>(&sequence, 1));
  Batch step(1, 1);
  step.add(tokens.back(), static_cast<llama_pos>(tokens.size() - 1),
           Span<const llama_seq_id>(&sequence, 1), true);
  REQUIRE(adapter.decode(step.get()) == 0);
  CHECK(seen.handed_l_out == 2);
  CHECK(seen.asked_for_l_out == 2);
  CHECK(sampler->stats().steps == 1);
}

TEST_CASE("configurations the adapter cannot serve are errors naming the setting") {
  llama_model* model = stories_model();
  ExplorationConfig exploration;
  exploration.max_rows = 4;
  const auto message = [](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };

  SECTION("a sampler built for another layer count") {
    DistillerConfig distiller;
    distiller.hidden_size = llama_model_n_embd(model);
    distiller.rank = 8;
    ExploratorySampler wrong(llama_model_n_layer(model) + 1, distiller, exploration);
    CHECK_THAT(message([&] { Adapter adapter(model, wrong); }),
               Catch::Contains("built for 6 layers"));
  }
  SECTION("candidates mode") {
    exploration.mix = MixMode::candidates;
    const auto sampler = make_sampler(model, exploration);
    CHECK_THAT(message([&] { Adapter adapter(model, *sampler); }),
               Catch::Contains("ExplorationConfig.mix = candidates"));
  }
  SECTION("a tap llama.cpp does not name for every token") {
    exploration.source = {1, Site::layer_output};
    const auto sampler = make_sampler(model, exploration);
    CHECK_THAT(message([&] { Adapter adapter(model, *sampler); }),
               Catch::Contains("source.site = layer_output"));
  }
  SECTION("non-unified KV cache with several sequences") {
    const auto sampler = make_sampler(model, exploration);
    Adapter adapter(model, *sampler);
    llama_context_params params = context_params({4, 16, 1});
    params.kv_unified = false;
    CHECK_THAT(message([&] { adapter.init_context(params); }),
               Catch::Contains("kv_unified = false with n_seq_max = 4"));
  }
  SECTION("a grouped sequence with several tokens in a step (prefill through the hooks)") {
    const auto sampler = make_sampler(model, exploration);
    Adapter adapter(model, *sampler);
    adapter.init_context(context_params({1, 16, 1}));
    const llama_seq_id sequence = 0;
    adapter.open_group(Span<const llama_seq_id>(&sequence, 1));
    const std::vector<llama_token> tokens = tokenize(model, "Once upon a time");
    Batch batch(static_cast<int>(tokens.size()), 1);
    for (std::size_t p = 0; p < tokens.size(); ++p)
      batch.add(tokens[p], static_cast<llama_pos>(p), Span<const llama_seq_id>(&sequence, 1), true);
    CHECK_THAT(message([&] { adapter.decode(batch.get()); }),
               Catch::Contains("grouped sequence 0 has tokens 0 and 1"));
    CHECK(sampler->stats().steps == 0);  // refused before llama_decode
  }
  SECTION("a step row without its logits flag") {
    const auto sampler = make_sampler(model, exploration);
    Adapter adapter(model, *sampler);
    adapter.init_context(context_params({1, 16, 1}));
    const llama_seq_id sequence = 0;
    adapter.open_group(Span<const llama_seq_id>(&sequence, 1));
    Batch batch(1, 1);
    batch.add(1, 0, Span<const llama_seq_id>(&sequence, 1), false);
    CHECK_THAT(message([&] { adapter.decode(batch.get()); }), Catch::Contains("no logits flag"));
  }
}

}  // namespace esamp::llama_cpp::test
