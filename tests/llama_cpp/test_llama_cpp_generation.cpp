// Generation through real llama.cpp with the adapter: greedy gives the reference text, β = 0 gives
// plain llama.cpp's tokens, and esamp through llama.cpp measures like esamp through the project's
// engine.
#include <fstream>

#include "../program_run.hpp"
#include "generate/quality.hpp"
#include "interval.hpp"
#include "llama/model.hpp"
#include "llama/tokenizer.hpp"
#include "llama_cpp_test_support.hpp"

namespace esamp::llama_cpp::test {
namespace {

std::vector<std::vector<std::int32_t>> sample_tokens(const generation::GenerationResult& result) {
  std::vector<std::vector<std::int32_t>> tokens;
  for (const generation::Sample& sample : result.samples) tokens.push_back(sample.tokens);
  return tokens;
}

generation::GenerationResult generate(ExploratorySampler* sampler, std::string_view prompt,
                                      const generation::GenerationSettings& settings) {
  Generator generator(stories_model(), {settings.samples, 256, 1}, sampler);
  return generator.generate(prompt, settings);
}

}  // namespace

TEST_CASE("greedy decoding through the adapter gives the reference text") {
  const std::string reference = esamp::test::file_text(model_file("stories260K.greedy.txt"));
  ExplorationConfig exploration;
  exploration.beta = 0.0f;
  exploration.max_rows = 3;
  const auto sampler = make_sampler(stories_model(), exploration);
  generation::GenerationSettings settings;
  settings.samples = 3;
  settings.max_new_tokens = 200;
  settings.filter.temperature = 0.0f;
  settings.score_with_base_model = false;
  const generation::GenerationResult result = generate(sampler.get(), "", settings);
  CHECK(sampler->stats().steps > 0);  // the hooks ran
  for (const generation::Sample& sample : result.samples)
    // SentencePiece's first piece carries a space; the reference (llama2.c) strips it.
    CHECK(result.prompt_text + sample.text + "\n" == " " + reference);
}

TEST_CASE("beta 0 through the adapter samples plain llama.cpp's tokens, beta 1 does not") {
  generation::GenerationSettings settings;
  settings.samples = 4;
  settings.max_new_tokens = 48;
  settings.filter.temperature = 0.9f;
  settings.filter.top_k = 40;
  settings.filter.top_p = 0.95f;
  settings.filter.min_p = 0.02f;
  settings.seed = 11;
  settings.score_with_base_model = false;
  const std::string prompt = "Tom had a big red ball.";
  const auto plain = sample_tokens(generate(nullptr, prompt, settings));

  ExplorationConfig exploration;
  exploration.beta = 0.0f;
  exploration.max_rows = settings.samples;
  const auto beta_zero = make_sampler(stories_model(), exploration);
  CHECK(sample_tokens(generate(beta_zero.get(), prompt, settings)) == plain);
  CHECK(beta_zero->stats().steps > 0);

  exploration.beta = 1.0f;
  const auto beta_one = make_sampler(stories_model(), exploration);
  CHECK(sample_tokens(generate(beta_one.get(), prompt, settings)) != plain);
  CHECK(beta_one->stats().rows_mixed > 0);
}

TEST_CASE("esamp through llama.cpp and through the project's engine measure alike") {
  // A small grid over 12 story openings, 8 samples of 40 tokens each: per-prompt figures, their
  // 95% intervals over prompts, which must overlap between the two engines.
  std::vector<std::string> prompts;
  {
    std::ifstream in(std::string(ESAMP_SOURCE_DIR) + "/bench/prompts/stories.txt");
    for (std::string line; prompts.size() < 12 && std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
  }
  REQUIRE(prompts.size() == 12);
  const llama::Model engine_model = llama::load_gguf(model_file("stories260K.gguf"));
  const llama::Tokenizer tokenizer(engine_model.vocabulary);

  struct Point {
    float beta, temperature, min_p;
  };
  for (const Point point :
       {Point{0.0f, 1.0f, 0.0f}, Point{0.5f, 1.0f, 0.0f}, Point{1.0f, 0.8f, 0.05f}}) {
    INFO("beta " << point.beta << ", temperature " << point.temperature << ", min-p "
                 << point.min_p);
    generation::GenerationSettings settings;
    settings.samples = 8;
    settings.max_new_tokens = 40;
    settings.filter.temperature = point.temperature;
    settings.filter.min_p = point.min_p;
    ExplorationConfig exploration;
    exploration.beta = point.beta;
    exploration.max_rows = settings.samples;
    DistillerConfig distiller;
    distiller.rank = 64;

    std::vector<double> perplexity[2], distinct2[2], vendi[2];
    const auto add = [&](int engine, const generation::GenerationResult& result) {
      const generation::QualitySummary s = generation::summarize({result});
      perplexity[engine].push_back(s.perplexity);
      distinct2[engine].push_back(s.distinct_words[1]);
      vendi[engine].push_back(s.ngram_vendi);
    };
    {
      distiller.hidden_size = llama_model_n_embd(stories_model());
      ExploratorySampler sampler(llama_model_n_layer(stories_model()), distiller, exploration);
      Generator generator(stories_model(), {settings.samples, 256, 1}, &sampler);
      for (std::size_t p = 0; p < prompts.size(); ++p) {
        settings.first_sequence = p * settings.samples;
        add(0, generator.generate(prompts[p], settings));
      }
    }
    {
      const auto sampler = generation::make_sampler(engine_model.hparams, distiller, exploration);
      llama::Engine engine(engine_model);
      for (std::size_t p = 0; p < prompts.size(); ++p) {
        settings.first_sequence = p * settings.samples;
        add(1, generation::generate(engine, tokenizer, sampler.get(), prompts[p], settings));
      }
    }
    for (const auto* metric : {perplexity, distinct2, vendi}) {
      const eval::Interval through_llama_cpp = eval::mean_interval(metric[0]);
      const eval::Interval through_engine = eval::mean_interval(metric[1]);
      INFO("metric " << (metric == perplexity  ? "perplexity"
                         : metric == distinct2 ? "distinct-2"
                                               : "n-gram Vendi")
                     << ": llama.cpp " << through_llama_cpp.mean << " [" << through_llama_cpp.lo
                     << ", " << through_llama_cpp.hi << "], engine " << through_engine.mean << " ["
                     << through_engine.lo << ", " << through_engine.hi << "]");
      CHECK(through_llama_cpp.lo <= through_engine.hi);
      CHECK(through_engine.lo <= through_llama_cpp.hi);
    }
  }
}

}  // namespace esamp::llama_cpp::test
