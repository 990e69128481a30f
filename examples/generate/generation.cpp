// The batched decode loop of esamp-generate and the base-model re-scoring of its samples.
#include "generation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "esamp/error.hpp"

namespace esamp::generation {
namespace {

using llama::Engine;
using llama::RowMatrix;
using llama::SequenceId;
using llama::StepHooks;
using llama::StepRow;
using llama::TokenId;

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(),
                                                      suffix.data(), suffix.size()) == 0;
}

// log softmax(logits)[token], in double so that a 128-token sum keeps its digits.
double log_probability(const float* logits, Eigen::Index count, TokenId token) {
  const double max_logit = *std::max_element(logits, logits + count);
  double total = 0.0;
  for (Eigen::Index v = 0; v < count; ++v) total += std::exp(logits[v] - max_logit);
  return logits[token] - max_logit - std::log(total);
}

// Re-reads prompt + tokens of every sample through the base model as one batch (a plain forward,
// no hooks) and fills each sample's base_logprobs and mean_final_hidden.
void score_with_base_model(Engine& engine, const std::vector<TokenId>& prompt_tokens,
                           std::vector<Sample>& samples) {
  const llama::Hyperparameters& hp = engine.hparams();
  const std::size_t prompt_length = prompt_tokens.size();
  std::vector<SequenceId> sequences;
  std::size_t longest = 0;
  for (Sample& sample : samples) {
    sequences.push_back(engine.open_sequence());
    sample.base_logprobs.clear();
    sample.mean_final_hidden = Eigen::VectorXd::Zero(hp.dim);
    longest = std::max(longest, prompt_length + sample.tokens.size());
  }
  const auto token_at = [&](const Sample& sample, std::size_t position) {
    return position < prompt_length ? prompt_tokens[position]
                                    : sample.tokens[position - prompt_length];
  };

  std::vector<StepRow> rows;
  std::vector<std::size_t> row_samples;  // [rows] the sample each row reads
  for (std::size_t position = 0; position < longest; ++position) {
    rows.clear();
    row_samples.clear();
    for (std::size_t s = 0; s < samples.size(); ++s) {
      if (position < prompt_length + samples[s].tokens.size()) {
        rows.push_back({sequences[s], token_at(samples[s], position)});
        row_samples.push_back(s);
      }
    }
    const RowMatrix& logits = engine.step(rows);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      Sample& sample = samples[row_samples[r]];
      const auto row = static_cast<Eigen::Index>(r);
      const std::size_t next = position + 1;
      if (next >= prompt_length && next < prompt_length + sample.tokens.size())
        sample.base_logprobs.push_back(static_cast<float>(
            log_probability(logits.row(row).data(), logits.cols(), token_at(sample, next))));
      if (position >= prompt_length)
        sample.mean_final_hidden += engine.final_hidden().row(row).transpose().cast<double>();
    }
  }
  for (std::size_t s = 0; s < samples.size(); ++s) {
    Sample& sample = samples[s];
    if (!sample.tokens.empty())
      sample.mean_final_hidden /= static_cast<double>(sample.tokens.size());
    engine.close_sequence(sequences[s]);
  }
}

}  // namespace

llama::Model load_model(const std::string& model_path, const std::string& tokenizer_path) {
  if (tokenizer_path.empty()) {
    if (ends_with(model_path, ".bin"))
      fail("{}: a llama2.c checkpoint needs its tokenizer file (--tokenizer PATH)", model_path);
    return llama::load_gguf(model_path);
  }
  return llama::load_llama2c(model_path, tokenizer_path);
}

int default_rank(int hidden_size) { return std::min(DistillerConfig{}.rank, hidden_size); }

std::unique_ptr<ExploratorySampler> make_sampler(const llama::Hyperparameters& hparams,
                                                 DistillerConfig distiller,
                                                 const ExplorationConfig& exploration) {
  distiller.hidden_size = hparams.dim;
  return std::make_unique<ExploratorySampler>(hparams.layer_count, distiller, exploration);
}

GenerationResult generate(Engine& engine, const llama::Tokenizer& tokenizer,
                          ExploratorySampler* sampler, std::string_view prompt,
                          const GenerationSettings& settings) {
  settings.filter.validate();
  if (settings.samples < 1) fail("GenerationSettings.samples = {}: must be >= 1", settings.samples);
  if (settings.max_new_tokens < 1)
    fail("GenerationSettings.max_new_tokens = {}: must be >= 1", settings.max_new_tokens);
  GenerationResult result;
  result.prompt_tokens = tokenizer.encode(prompt, /*add_bos=*/true, /*add_eos=*/false);
  result.prompt_text = tokenizer.decode(result.prompt_tokens);
  const std::size_t prompt_length = result.prompt_tokens.size();
  const int context_length = engine.hparams().context_length;
  // The last sampled token is read too when re-scoring, so all of them must fit.
  if (prompt_length + static_cast<std::size_t>(settings.max_new_tokens) >
      static_cast<std::size_t>(context_length))
    fail("the prompt ({} tokens with BOS) + {} new tokens exceed the model's context of {} tokens",
         prompt_length, settings.max_new_tokens, context_length);
  // The sampler may have applied the filter's truncation already (candidates mode, DESIGN.md §1).
  const Filter draw_filter =
      sampler != nullptr ? sampler->sampling_filter(settings.filter) : settings.filter;
  const auto samples = static_cast<std::size_t>(settings.samples);
  result.samples.resize(samples);

  const auto start = std::chrono::steady_clock::now();
  std::vector<SequenceId> sequences(samples);
  for (SequenceId& sequence : sequences) sequence = engine.open_sequence();
  std::vector<std::size_t> active(samples);  // the samples still decoding, one row each
  for (std::size_t s = 0; s < samples; ++s) active[s] = s;
  std::vector<TokenId> last_token(samples, result.prompt_tokens.back());
  std::vector<StepRow> rows;
  std::vector<int> scratch;

  // Draws one token per active row from `logits` [rows, vocab]; rows that end leave `active`.
  const auto draw = [&](const RowMatrix& logits) {
    std::size_t kept = 0;
    for (std::size_t r = 0; r < active.size(); ++r) {
      const std::size_t s = active[r];
      Sample& sample = result.samples[s];
      const auto position = static_cast<std::uint32_t>(prompt_length + sample.tokens.size());
      const SampleKey key{settings.seed, settings.first_sequence + s, position};
      const auto row = static_cast<Eigen::Index>(r);
      const TokenId token = esamp::sample(
          Span<const float>(logits.row(row).data(), static_cast<std::size_t>(logits.cols())),
          draw_filter, key, scratch);
      ++result.sampled_tokens;
      const bool end_of_text = token == tokenizer.eos() || token == tokenizer.bos();
      if (settings.stop_at_end_of_text && end_of_text) {
        sample.stopped = true;
      } else {
        sample.text += tokenizer.decode(last_token[s], token);
        sample.tokens.push_back(token);
        last_token[s] = token;
      }
      if (sample.stopped ||
          sample.tokens.size() == static_cast<std::size_t>(settings.max_new_tokens)) {
        engine.close_sequence(sequences[s]);
      } else {
        active[kept++] = s;
      }
    }
    const auto drawn = static_cast<int>(active.size());
    active.resize(kept);
    if (settings.on_tokens) settings.on_tokens(drawn);
  };

  // Prefill: the rows read the prompt together, without hooks (DESIGN.md §1: no intervention).
  for (std::size_t position = 0; position < prompt_length; ++position) {
    rows.clear();
    for (const SequenceId sequence : sequences)
      rows.push_back({sequence, result.prompt_tokens[position]});
    const RowMatrix& logits = engine.step(rows);
    if (position + 1 == prompt_length) draw(logits);
  }

  std::vector<GroupId> groups(settings.group_per_sample ? samples : 1, GroupId{0});  // [groups]
  if (sampler != nullptr)
    for (GroupId& group : groups) group = sampler->open_group();
  std::vector<GroupId> row_groups;
  const StepHooks hooks{sampler, &settings.filter};
  while (!active.empty()) {
    rows.clear();
    row_groups.clear();
    for (const std::size_t s : active) {
      rows.push_back({sequences[s], last_token[s]});
      row_groups.push_back(groups[settings.group_per_sample ? s : 0]);
    }
    if (sampler != nullptr) sampler->begin_step(row_groups);
    const RowMatrix& logits = engine.step(rows, hooks);
    if (sampler != nullptr) sampler->end_step();
    draw(logits);
  }
  if (sampler != nullptr)
    for (const GroupId group : groups) sampler->close_group(group);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (settings.score_with_base_model)
    score_with_base_model(engine, result.prompt_tokens, result.samples);
  return result;
}

}  // namespace esamp::generation
