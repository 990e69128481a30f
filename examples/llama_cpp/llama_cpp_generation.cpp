// Generation through real llama.cpp: see llama_cpp_generation.hpp.
#include "llama_cpp_generation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "esamp/error.hpp"

namespace esamp::llama_cpp {
namespace {

void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

struct ChainDeleter {
  void operator()(llama_sampler* chain) const { llama_sampler_free(chain); }
};

double log_probability(const float* logits, int count, llama_token token) {
  const float max_logit = *std::max_element(logits, logits + count);
  double total = 0.0;
  for (int v = 0; v < count; ++v) total += std::exp(static_cast<double>(logits[v] - max_logit));
  return static_cast<double>(logits[token] - max_logit) - std::log(total);
}

}  // namespace

ModelPtr load_model(const std::string& path, bool verbose) {
  if (!verbose) llama_log_set(quiet_log, nullptr);
  llama_backend_init();
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = 0;
  ModelPtr model(llama_model_load_from_file(path.c_str(), params));
  if (!model) fail("{}: llama.cpp could not load the model", path);
  return model;
}

std::vector<llama_token> tokenize(const llama_model* model, std::string_view text) {
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const auto length = static_cast<std::int32_t>(text.size());
  std::vector<llama_token> tokens(text.size() + 2);
  std::int32_t count = llama_tokenize(vocab, text.data(), length, tokens.data(),
                                      static_cast<std::int32_t>(tokens.size()), true, false);
  if (count < 0) {
    tokens.resize(static_cast<std::size_t>(-count));
    count = llama_tokenize(vocab, text.data(), length, tokens.data(),
                           static_cast<std::int32_t>(tokens.size()), true, false);
  }
  if (count < 0) fail("llama_tokenize failed on '{}'", text);
  tokens.resize(static_cast<std::size_t>(count));
  return tokens;
}

std::string detokenize(const llama_model* model, const std::vector<llama_token>& tokens) {
  const llama_vocab* vocab = llama_model_get_vocab(model);
  std::string text;
  char piece[256];
  for (const llama_token token : tokens) {
    const std::int32_t n = llama_token_to_piece(vocab, token, piece, sizeof(piece), 0, false);
    if (n < 0) fail("llama_token_to_piece: token {} has a piece longer than {}", token, -n);
    text.append(piece, static_cast<std::size_t>(n));
  }
  return text;
}

llama_sampler* make_sampler_chain(const Filter& filter, std::uint32_t seed) {
  filter.validate();
  llama_sampler* chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  if (filter.temperature == 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  llama_sampler_chain_add(chain, llama_sampler_init_temp(filter.temperature));
  if (filter.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(filter.top_k));
  if (filter.top_p < 1.0f)
    llama_sampler_chain_add(chain, llama_sampler_init_top_p(filter.top_p, 1));
  if (filter.min_p > 0.0f)
    llama_sampler_chain_add(chain, llama_sampler_init_min_p(filter.min_p, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
  return chain;
}

std::uint32_t chain_seed(std::uint64_t seed, std::uint64_t sequence) {
  // SplitMix64 of (seed, sequence); LLAMA_DEFAULT_SEED would mean "random", so it is avoided.
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (sequence + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  const auto value = static_cast<std::uint32_t>(z ^ (z >> 31));
  return value == LLAMA_DEFAULT_SEED ? 0u : value;
}

llama_context_params context_params(const ContextShape& shape) {
  llama_context_params params = llama_context_default_params();
  params.n_seq_max = static_cast<std::uint32_t>(shape.max_samples);
  params.n_ctx = static_cast<std::uint32_t>(shape.max_samples * shape.max_sequence_tokens);
  params.n_batch =
      static_cast<std::uint32_t>(std::max(shape.max_samples, shape.max_sequence_tokens));
  params.n_ubatch = params.n_batch;
  params.kv_unified = true;
  if (shape.threads > 0) params.n_threads = params.n_threads_batch = shape.threads;
  return params;
}

Generator::Generator(llama_model* model, const ContextShape& shape, ExploratorySampler* sampler)
    : model_(model), shape_(shape) {
  if (shape.max_samples < 1 || shape.max_sequence_tokens < 1)
    fail("ContextShape: max_samples = {} and max_sequence_tokens = {} must be >= 1",
         shape.max_samples, shape.max_sequence_tokens);
  const llama_context_params params = context_params(shape);
  if (sampler != nullptr) {
    adapter_ = std::make_unique<Adapter>(model, *sampler);
    context_ = adapter_->init_context(params);
  } else {
    plain_context_.reset(llama_init_from_model(model, params));
    if (!plain_context_) fail("llama_init_from_model failed");
    context_ = plain_context_.get();
  }
}

Generator::~Generator() = default;

int Generator::decode(const llama_batch& batch) {
  return adapter_ ? adapter_->decode(batch) : llama_decode(context_, batch);
}

generation::GenerationResult Generator::generate(std::string_view prompt,
                                                 const generation::GenerationSettings& settings) {
  settings.filter.validate();
  if (settings.samples < 1 || settings.samples > shape_.max_samples)
    fail("GenerationSettings.samples = {}: must be in [1, {}] (ContextShape.max_samples)",
         settings.samples, shape_.max_samples);
  generation::GenerationResult result;
  const std::vector<llama_token> prompt_tokens = tokenize(model_, prompt);
  if (prompt_tokens.empty()) fail("the prompt '{}' has no tokens", prompt);
  const auto prompt_length = static_cast<int>(prompt_tokens.size());
  if (prompt_length + settings.max_new_tokens > shape_.max_sequence_tokens)
    fail("the prompt ({} tokens) + {} new tokens exceed ContextShape.max_sequence_tokens = {}",
         prompt_length, settings.max_new_tokens, shape_.max_sequence_tokens);
  result.prompt_tokens.assign(prompt_tokens.begin(), prompt_tokens.end());
  result.prompt_text = detokenize(model_, prompt_tokens);
  const auto samples = static_cast<std::size_t>(settings.samples);
  result.samples.resize(samples);
  const llama_vocab* vocab = llama_model_get_vocab(model_);

  std::vector<std::unique_ptr<llama_sampler, ChainDeleter>> chains;
  std::vector<llama_seq_id> sequences(samples);
  for (std::size_t s = 0; s < samples; ++s) {
    chains.emplace_back(make_sampler_chain(settings.filter,
                                           chain_seed(settings.seed, settings.first_sequence + s)));
    sequences[s] = static_cast<llama_seq_id>(s);
  }
  llama_memory_clear(llama_get_memory(context_), true);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::size_t> active(samples);  // the samples still decoding, one row each
  for (std::size_t s = 0; s < samples; ++s) active[s] = s;
  std::vector<llama_token> last_token(samples);
  // Draws one token per active row (row r = output r of the last decode); ended rows leave.
  const auto draw = [&](bool from_prefill) {
    std::size_t kept = 0;
    for (std::size_t r = 0; r < active.size(); ++r) {
      const std::size_t s = active[r];
      generation::Sample& sample = result.samples[s];
      const int output = from_prefill ? prompt_length - 1 : static_cast<int>(r);
      const llama_token token = llama_sampler_sample(chains[s].get(), context_, output);
      ++result.sampled_tokens;
      if (settings.stop_at_end_of_text &&
          (llama_vocab_is_eog(vocab, token) || token == llama_vocab_bos(vocab))) {
        sample.stopped = true;
      } else {
        sample.tokens.push_back(token);
        last_token[s] = token;
      }
      if (!sample.stopped &&
          sample.tokens.size() < static_cast<std::size_t>(settings.max_new_tokens))
        active[kept++] = s;
    }
    const auto drawn = static_cast<int>(active.size());
    active.resize(kept);
    if (settings.on_tokens) settings.on_tokens(drawn);
  };

  // Prefill: every sequence shares the prompt's tokens, without hooks (DESIGN.md §1).
  {
    Batch prefill(prompt_length, settings.samples);
    for (int p = 0; p < prompt_length; ++p)
      prefill.add(prompt_tokens[static_cast<std::size_t>(p)], p,
                  Span<const llama_seq_id>(sequences.data(), samples), p + 1 == prompt_length);
    if (const int status = llama_decode(context_, prefill.get()); status != 0)
      fail("llama_decode of the prompt returned {}", status);
    draw(/*from_prefill=*/true);
  }

  // One esamp group for the prompt's samples, or one per sample (GenerationSettings).
  std::vector<GroupId> groups;
  if (adapter_ && settings.group_per_sample) {
    for (const llama_seq_id& sequence : sequences)
      groups.push_back(adapter_->open_group(Span<const llama_seq_id>(&sequence, 1)));
  } else if (adapter_) {
    groups.push_back(adapter_->open_group(Span<const llama_seq_id>(sequences.data(), samples)));
  }
  Batch step(settings.samples, 1);
  while (!active.empty()) {
    step.clear();
    for (const std::size_t s : active) {
      const auto position =
          static_cast<llama_pos>(prompt_length + result.samples[s].tokens.size() - 1);
      step.add(last_token[s], position, Span<const llama_seq_id>(&sequences[s], 1), true);
    }
    if (const int status = decode(step.get()); status != 0)
      fail("llama_decode returned {}", status);
    draw(/*from_prefill=*/false);
  }
  for (const GroupId group : groups) adapter_->close_group(group);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (generation::Sample& sample : result.samples)
    sample.text =
        detokenize(model_, std::vector<llama_token>(sample.tokens.begin(), sample.tokens.end()));
  if (settings.score_with_base_model) score(prompt_tokens, result.samples);
  return result;
}

void Generator::score(const std::vector<llama_token>& prompt,
                      std::vector<generation::Sample>& samples) {
  if (!scoring_context_) {
    llama_context_params params = context_params({1, shape_.max_sequence_tokens, shape_.threads});
    params.embeddings = true;  // the final-normed rows (result_norm) beside the logits
    params.pooling_type = LLAMA_POOLING_TYPE_NONE;
    scoring_context_.reset(llama_init_from_model(model_, params));
    if (!scoring_context_) fail("llama_init_from_model failed for the scoring context");
  }
  llama_context* context = scoring_context_.get();
  const int vocab_size = llama_vocab_n_tokens(llama_model_get_vocab(model_));
  const int hidden = llama_model_n_embd(model_);
  const auto prompt_length = static_cast<int>(prompt.size());
  const llama_seq_id sequence = 0;
  for (generation::Sample& sample : samples) {
    const auto n = static_cast<int>(sample.tokens.size());
    sample.base_logprobs.clear();
    sample.mean_final_hidden = Eigen::VectorXd::Zero(hidden);
    if (n == 0) continue;
    llama_memory_clear(llama_get_memory(context), true);
    Batch batch(prompt_length + n, 1);
    for (int p = 0; p < prompt_length + n; ++p) {
      const llama_token token = p < prompt_length
                                    ? prompt[static_cast<std::size_t>(p)]
                                    : sample.tokens[static_cast<std::size_t>(p - prompt_length)];
      batch.add(token, p, Span<const llama_seq_id>(&sequence, 1), p >= prompt_length - 1);
    }
    if (const int status = llama_decode(context, batch.get()); status != 0)
      fail("llama_decode of a sample for scoring returned {}", status);
    // Batch index (= position) prompt_length - 1 + k predicts generated token k.
    for (int k = 0; k < n; ++k)
      sample.base_logprobs.push_back(static_cast<float>(
          log_probability(llama_get_logits_ith(context, prompt_length - 1 + k), vocab_size,
                          sample.tokens[static_cast<std::size_t>(k)])));
    for (int k = 1; k <= n; ++k)
      sample.mean_final_hidden +=
          Eigen::Map<const Eigen::VectorXf>(
              llama_get_embeddings_ith(context, prompt_length - 1 + k), hidden)
              .cast<double>();
    sample.mean_final_hidden /= static_cast<double>(n);
  }
}

}  // namespace esamp::llama_cpp
