// The generation library: base-model re-scoring against a plain forward pass, batch bookkeeping,
// the context check and the quality summary.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>

#include "esamp/error.hpp"
#include "esamp/metrics.hpp"
#include "generate/generation.hpp"
#include "generate/quality.hpp"
#include "generate_test_support.hpp"

namespace esamp::generation::test {
namespace {

const llama::Model& gguf_model() {
  static const llama::Model model = load_model(model_file("stories260K.gguf"), "");
  return model;
}

GenerationSettings short_settings() {
  GenerationSettings settings;
  settings.samples = 4;
  settings.max_new_tokens = 20;
  settings.seed = 5;
  return settings;
}

}  // namespace

TEST_CASE("base-model log-probs and pooled hidden states match a plain forward of each sample") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  DistillerConfig distiller;
  distiller.rank = default_rank(model.hparams);
  ExplorationConfig
      exploration;  // the default beta: the samples are mixed, their scores must not be
  exploration.mix = GENERATE(MixMode::latent, MixMode::candidates);
  CAPTURE(name(exploration.mix));
  const auto sampler = make_sampler(model.hparams, distiller, exploration);
  llama::Engine engine(model);
  const GenerationResult result =
      generate(engine, tokenizer, sampler.get(), "Once upon a time", short_settings());
  REQUIRE(result.samples.size() == 4);

  for (const Sample& sample : result.samples) {
    REQUIRE(sample.base_logprobs.size() == sample.tokens.size());
    REQUIRE(sample.mean_final_hidden.size() == model.hparams.dim);
    // Alone in a fresh engine, without hooks: logits after the prompt and after each token.
    llama::Engine plain(model);
    const llama::SequenceId sequence = plain.open_sequence();
    Eigen::RowVectorXf logits = plain.prefill(sequence, result.prompt_tokens).row(0);
    Eigen::RowVectorXd generated_logits_sum = Eigen::RowVectorXd::Zero(model.hparams.vocab_size);
    for (std::size_t t = 0; t < sample.tokens.size(); ++t) {
      const double max_logit = logits.maxCoeff();
      const double log_total =
          std::log((logits.cast<double>().array() - max_logit).exp().sum()) + max_logit;
      CHECK_THAT(sample.base_logprobs[t],
                 Catch::Matchers::WithinAbs(logits[sample.tokens[t]] - log_total, 1e-4));
      const llama::StepRow row{sequence, sample.tokens[t]};
      logits = plain.step(Span<const llama::StepRow>(&row, 1)).row(0);
      generated_logits_sum += logits.cast<double>();
    }
    if (sample.tokens.empty()) continue;
    // The LM head is linear: W · mean(h) is the mean of the logits after each generated token.
    const Eigen::RowVectorXd pooled_logits =
        sample.mean_final_hidden.transpose() * model.weights.lm_head.transpose().cast<double>();
    const Eigen::RowVectorXd expected =
        generated_logits_sum / static_cast<double>(sample.tokens.size());
    CHECK((pooled_logits - expected).cwiseAbs().maxCoeff() < 1e-3);
  }
}

TEST_CASE("every row draws its budget when end of text does not stop it, and draws are counted") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  llama::Engine engine(model);
  GenerationSettings settings = short_settings();
  settings.stop_at_end_of_text = false;
  settings.score_with_base_model = false;
  std::int64_t reported = 0;
  settings.on_tokens = [&reported](int tokens) { reported += tokens; };
  const GenerationResult result = generate(engine, tokenizer, nullptr, "", settings);
  CHECK(result.sampled_tokens == 4 * 20);
  CHECK(reported == result.sampled_tokens);
  CHECK(result.tokens_per_second() > 0.0);
  for (const Sample& sample : result.samples) {
    CHECK(sample.tokens.size() == 20);
    CHECK_FALSE(sample.stopped);
    CHECK(sample.base_logprobs.empty());
  }
}

TEST_CASE("a sampler with one slot serves prompt after prompt: each generation closes its group") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  DistillerConfig distiller;
  distiller.rank = 8;
  const auto sampler = make_sampler(model.hparams, distiller, ExplorationConfig{});
  llama::Engine engine(model);
  GenerationSettings settings = short_settings();
  const GenerationResult first = generate(engine, tokenizer, sampler.get(), "A cat", settings);
  settings.first_sequence = 4;
  const GenerationResult second = generate(engine, tokenizer, sampler.get(), "A dog", settings);
  CHECK(sampler->stats().rows_trained > 0);
  CHECK(first.prompt_text == "A cat");
  CHECK(second.prompt_text == "A dog");
}

TEST_CASE("a prompt and budget beyond the model's context is an esamp::Error") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  llama::Engine engine(model);
  GenerationSettings settings = short_settings();
  settings.max_new_tokens = model.hparams.context_length;  // + BOS does not fit
  CHECK_THROWS_MATCHES(generate(engine, tokenizer, nullptr, "", settings), Error,
                       Catch::Matchers::Message(
                           "the prompt (1 tokens with BOS) + 2048 new tokens exceed the model's "
                           "context of 2048 tokens"));
}

TEST_CASE(
    "the summary averages diversity over prompts and leaves pairwise cosines NaN for one sample") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  llama::Engine engine(model);
  GenerationSettings settings = short_settings();
  const std::vector<GenerationResult> results = {
      generate(engine, tokenizer, nullptr, "Once", settings),
      generate(engine, tokenizer, nullptr, "Tom", settings)};
  const QualitySummary summary = summarize(results);
  CHECK(summary.prompts == 2);
  CHECK(summary.samples == 8);
  CHECK(summary.sampled_tokens == results[0].sampled_tokens + results[1].sampled_tokens);
  const auto texts_of = [](const GenerationResult& result) {
    std::vector<std::string> texts;
    for (const Sample& sample : result.samples) texts.push_back(sample.text);
    return texts;
  };
  const double distinct_1 =
      (distinct_n_words(texts_of(results[0]), 1) + distinct_n_words(texts_of(results[1]), 1)) / 2.0;
  CHECK_THAT(summary.distinct_words[0], Catch::Matchers::WithinAbs(distinct_1, 1e-12));
  // Perplexity and repetition are each prompt's (pooled over its samples), averaged over prompts.
  const auto per_prompt = [&](const std::function<double(const GenerationResult&)>& metric) {
    return (metric(results[0]) + metric(results[1])) / 2.0;
  };
  const double pooled = per_prompt([](const GenerationResult& result) {
    std::vector<Span<const float>> logprobs;
    for (const Sample& sample : result.samples) logprobs.emplace_back(sample.base_logprobs);
    return pooled_perplexity(logprobs);
  });
  CHECK(summary.perplexity > 1.0);
  CHECK_THAT(summary.perplexity, Catch::Matchers::WithinRel(pooled, 1e-12));
  CHECK_THAT(summary.seq_rep_4,
             Catch::Matchers::WithinAbs(per_prompt([&](const GenerationResult& r) {
                                          return seq_rep_n_words(texts_of(r), 4);
                                        }),
                                        1e-12));
  CHECK(std::isnan(summary.relevance));  // no sentence encoder
  CHECK(summary.hidden_vendi >= 1.0);
  CHECK(summary.hidden_vendi <= 4.0);

  settings.samples = 1;
  const QualitySummary single = summarize({generate(engine, tokenizer, nullptr, "Once", settings)});
  CHECK(std::isnan(single.ngram_cosine));
  CHECK(std::isnan(single.hidden_cosine));
  CHECK_THAT(single.ngram_vendi, Catch::Matchers::WithinAbs(1.0, 1e-12));

  settings.score_with_base_model = false;
  CHECK_THROWS_AS(summarize({generate(engine, tokenizer, nullptr, "Once", settings)}), Error);
}

TEST_CASE("the summary keeps a sample that ended at its first token") {
  const llama::Model& model = gguf_model();
  const llama::Tokenizer tokenizer(model.vocabulary);
  llama::Engine engine(model);
  GenerationResult result = generate(engine, tokenizer, nullptr, "Once", short_settings());
  const QualitySummary before = summarize({result});
  // A sample whose first draw ended it: no token, no text, no base-model log-probability.
  Sample ended;
  ended.stopped = true;
  ended.mean_final_hidden = Eigen::VectorXd::Zero(model.hparams.dim);
  result.samples.push_back(ended);
  const QualitySummary after = summarize({result});
  CHECK(after.samples == before.samples + 1);
  // It adds no token to the pooled perplexity, nor a 4-gram, and no loop.
  CHECK_THAT(after.perplexity, Catch::Matchers::WithinRel(before.perplexity, 1e-12));
  CHECK_THAT(after.seq_rep_4, Catch::Matchers::WithinAbs(before.seq_rep_4, 1e-12));
  CHECK(after.loop_share <= before.loop_share);
  CHECK(std::isfinite(after.median_perplexity));
  CHECK(std::isfinite(after.ngram_vendi));
}

}  // namespace esamp::generation::test
