// One problem's samples as one group: see group_decoder.hpp.
#include "group_decoder.hpp"

#include <algorithm>

#include "esamp/error.hpp"
#include "passk.hpp"

namespace esamp::passk {
namespace {

struct ChainDeleter {
  void operator()(llama_sampler* chain) const { llama_sampler_free(chain); }
};

}  // namespace

GroupDecoder::GroupDecoder(llama_model* model, int max_samples, int max_sequence_tokens,
                           int threads, ExploratorySampler* sampler)
    : model_(model),
      max_samples_(max_samples),
      max_sequence_tokens_(max_sequence_tokens),
      prefix_sequence_(max_samples) {
  if (max_samples < 1 || max_sequence_tokens < 2)
    fail("GroupDecoder: max_samples = {} must be >= 1 and max_sequence_tokens = {} >= 2",
         max_samples, max_sequence_tokens);
  // One more sequence than samples: the cached prefix's.
  const llama_context_params params =
      llama_cpp::context_params({max_samples + 1, max_sequence_tokens, threads});
  if (sampler != nullptr) {
    adapter_ = std::make_unique<llama_cpp::Adapter>(model, *sampler);
    context_ = adapter_->init_context(params);
  } else {
    plain_context_.reset(llama_init_from_model(model, params));
    if (!plain_context_) fail("llama_init_from_model failed");
    context_ = plain_context_.get();
  }
}

int GroupDecoder::step(const llama_batch& batch) {
  return adapter_ ? adapter_->decode(batch) : llama_decode(context_, batch);
}

void GroupDecoder::cache_prefix(std::string_view prefix) {
  std::vector<llama_token> tokens = llama_cpp::tokenize(model_, prefix);
  if (tokens.empty() || static_cast<int>(tokens.size()) >= max_sequence_tokens_)
    fail("the prefix ({} tokens) must leave room in a sequence of {} tokens", tokens.size(),
         max_sequence_tokens_);
  llama_memory_seq_rm(llama_get_memory(context_), prefix_sequence_, -1, -1);
  llama_cpp::Batch batch(static_cast<int>(tokens.size()), 1);
  for (std::size_t p = 0; p < tokens.size(); ++p)
    batch.add(tokens[p], static_cast<llama_pos>(p), Span<const llama_seq_id>(&prefix_sequence_, 1),
              p + 1 == tokens.size());
  if (const int status = llama_decode(context_, batch.get()); status != 0)
    fail("llama_decode of the prefix returned {}", status);
  prefix_tokens_ = std::move(tokens);
}

std::vector<DecodedSample> GroupDecoder::decode(std::string_view prompt,
                                                const DecodeSettings& settings) {
  settings.filter.validate();
  if (settings.samples < 1 || settings.samples > max_samples_)
    fail("DecodeSettings.samples = {}: must be in [1, {}]", settings.samples, max_samples_);
  const std::vector<llama_token> tokens = llama_cpp::tokenize(model_, prompt);
  const auto length = static_cast<int>(tokens.size());
  if (length < 1 || length + settings.max_new_tokens > max_sequence_tokens_)
    fail("the prompt ({} tokens) + {} new tokens exceed the context's {} tokens per sequence",
         length, settings.max_new_tokens, max_sequence_tokens_);
  const auto samples = static_cast<std::size_t>(settings.samples);

  // The tokens shared with the cached prefix come from its cache; the last one is decoded anyway,
  // for its logits.
  const auto shared =
      std::mismatch(prefix_tokens_.begin(), prefix_tokens_.end(), tokens.begin(), tokens.end());
  const int reused = std::min(static_cast<int>(shared.first - prefix_tokens_.begin()), length - 1);
  llama_memory_t memory = llama_get_memory(context_);
  std::vector<llama_seq_id> sequences(samples);
  for (llama_seq_id s = 0; s < max_samples_; ++s) llama_memory_seq_rm(memory, s, -1, -1);
  for (std::size_t s = 0; s < samples; ++s) {
    sequences[s] = static_cast<llama_seq_id>(s);
    if (reused > 0) llama_memory_seq_cp(memory, prefix_sequence_, sequences[s], 0, reused);
  }

  std::vector<std::unique_ptr<llama_sampler, ChainDeleter>> chains;
  for (std::size_t s = 0; s < samples; ++s)
    chains.emplace_back(llama_cpp::make_sampler_chain(
        settings.filter, llama_cpp::chain_seed(settings.seed, settings.first_sequence + s)));
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  std::vector<DecodedSample> result(samples);
  std::vector<std::size_t> active(samples);  // the samples still decoding, one row each
  for (std::size_t s = 0; s < samples; ++s) active[s] = s;
  std::vector<llama_token> last_token(samples);
  // Draws one token per active row (row r = output r of the last decode); ended rows leave.
  const auto draw = [&](bool from_prefill) {
    std::size_t kept = 0;
    for (std::size_t r = 0; r < active.size(); ++r) {
      const std::size_t s = active[r];
      DecodedSample& sample = result[s];
      const int output = from_prefill ? length - reused - 1 : static_cast<int>(r);
      const llama_token token = llama_sampler_sample(chains[s].get(), context_, output);
      if (llama_vocab_is_eog(vocab, token) || token == llama_vocab_bos(vocab)) continue;
      ++sample.tokens;
      sample.text += llama_cpp::detokenize(model_, {token});
      last_token[s] = token;
      if (!answer_finished(sample.text) && sample.tokens < settings.max_new_tokens)
        active[kept++] = s;
    }
    const auto drawn = static_cast<int>(active.size());
    active.resize(kept);
    if (settings.on_tokens) settings.on_tokens(drawn);
  };

  // The rest of the prompt, shared by every sample, without hooks (DESIGN.md §1); every row then
  // draws from its last output.
  {
    llama_cpp::Batch prefill(length - reused, settings.samples);
    for (int p = reused; p < length; ++p)
      prefill.add(tokens[static_cast<std::size_t>(p)], p,
                  Span<const llama_seq_id>(sequences.data(), samples), p + 1 == length);
    if (const int status = llama_decode(context_, prefill.get()); status != 0)
      fail("llama_decode of the prompt returned {}", status);
    draw(/*from_prefill=*/true);
  }

  const GroupId group =
      adapter_ ? adapter_->open_group(Span<const llama_seq_id>(sequences.data(), samples))
               : GroupId{0};
  llama_cpp::Batch batch(settings.samples, 1);
  while (!active.empty()) {
    batch.clear();
    for (const std::size_t s : active)
      batch.add(last_token[s], static_cast<llama_pos>(length + result[s].tokens - 1),
                Span<const llama_seq_id>(&sequences[s], 1), true);
    if (const int status = step(batch.get()); status != 0) fail("llama_decode returned {}", status);
    draw(/*from_prefill=*/false);
  }
  if (adapter_) adapter_->close_group(group);
  return result;
}

}  // namespace esamp::passk
