// A minimal decode loop against esamp's public API: a toy 3-layer model, two prompts with three
// samples each, and the hook calls in the exact order an engine makes them (DESIGN.md §2).
#include <cmath>
#include <cstdio>
#include <esamp/sampler.hpp>
#include <esamp/sampling.hpp>
#include <random>
#include <vector>

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int kVocab = 32, kHidden = 16, kLayers = 3;

// Stands in for a real model: embeddings, one residual tanh block per layer, tied LM head.
struct ToyModel {
  Matrix embedding = random(kVocab, kHidden, 1);
  std::vector<Matrix> layers = {random(kHidden, kHidden, 2), random(kHidden, kHidden, 3),
                                random(kHidden, kHidden, 4)};

  static Matrix random(int rows, int cols, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Matrix m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(gen);
    return m;
  }
  static Matrix rms_norm(const Matrix& x) {
    Matrix y = x;
    for (Eigen::Index i = 0; i < y.rows(); ++i)
      y.row(i) /= std::sqrt(y.row(i).squaredNorm() / kHidden + 1e-5f);
    return y;
  }
};

}  // namespace

int main() {
  const ToyModel model;

  esamp::DistillerConfig distiller;
  distiller.hidden_size = kHidden;
  distiller.rank = 4;
  distiller.slots = 2;  // one slot per prompt
  esamp::ExplorationConfig exploration;
  exploration.beta = 0.5f;  // source: layer 0's normed input; target: the final-normed state
  esamp::ExploratorySampler sampler(kLayers, distiller, exploration);

  // The samples of one prompt form one group: they train one distiller and push each other apart.
  const esamp::GroupId story = sampler.open_group(), poem = sampler.open_group();
  const std::vector<esamp::GroupId> row_groups = {story, story, story, poem, poem, poem};
  std::vector<int> tokens = {3, 3, 3, 7, 7, 7};  // each row's last token (its "prompt")
  const int rows = static_cast<int>(tokens.size());

  esamp::Filter filter;  // temperature 1, min-p 0.05
  filter.min_p = 0.05f;
  std::vector<int> scratch;
  std::vector<std::vector<int>> samples(rows);

  for (std::uint32_t position = 1; position <= 12; ++position) {
    // 1. Tell the sampler which group each row of this step belongs to.
    sampler.begin_step(row_groups);

    Matrix hidden(rows, kHidden);
    for (int i = 0; i < rows; ++i) hidden.row(i) = model.embedding.row(tokens[i]);
    for (int layer = 0; layer < kLayers; ++layer) {
      const Matrix normed = ToyModel::rms_norm(hidden);
      // 2. At every tap site, ask first; hand over only what is wanted.
      if (sampler.wants(layer, esamp::Site::layer_input_normed))
        sampler.on_hidden(layer, esamp::Site::layer_input_normed,
                          esamp::ConstMatrixView(normed.data(), rows, kHidden));
      hidden += (normed * model.layers[static_cast<std::size_t>(layer)]).array().tanh().matrix();
    }
    Matrix final_hidden = ToyModel::rms_norm(hidden);

    // 3. The two mixing points, whatever ExplorationConfig.mix is: before the LM head on the
    //    final-normed rows (the default target, handed over here; latent mode mixes the
    //    prediction in here, in place), after it on the
    //    logits (candidates mode mixes the filter's candidates here, with the LM head's weights).
    sampler.before_lm_head(esamp::MatrixView(final_hidden.data(), rows, kHidden));
    Matrix logits = final_hidden * model.embedding.transpose();
    sampler.after_lm_head(esamp::MatrixView(logits.data(), rows, kVocab),
                          esamp::ConstMatrixView(model.embedding.data(), kVocab, kHidden), &filter);

    // 4. End the step: the distiller trains on this step's (source, target) pairs.
    sampler.end_step();

    // The engine samples as usual, with the filter the sampler says (candidates mode has already
    // applied it); a draw depends on (seed, sequence, position) only.
    const esamp::Filter draw = sampler.sampling_filter(filter);
    for (int i = 0; i < rows; ++i) {
      tokens[i] = esamp::sample({logits.row(i).data(), kVocab}, draw,
                                {42, static_cast<std::uint64_t>(i), position}, scratch);
      samples[static_cast<std::size_t>(i)].push_back(tokens[i]);
    }
  }

  for (int i = 0; i < rows; ++i) {
    std::printf("%s sample %d:", i < 3 ? "story" : "poem ", i % 3);
    for (const int t : samples[static_cast<std::size_t>(i)]) std::printf(" %2d", t);
    std::printf("\n");
  }
  const esamp::Stats stats = sampler.stats();
  std::printf("steps %lld, rows trained %lld, rows mixed %lld, mean distiller loss %.4f\n",
              static_cast<long long>(stats.steps), static_cast<long long>(stats.rows_trained),
              static_cast<long long>(stats.rows_mixed), stats.mean_loss);
  // Groups end when their samples do; their slots are free for the next prompts.
  sampler.close_group(story);
  sampler.close_group(poem);
  return stats.rows_trained == 12 * rows ? 0 : 1;
}
