// esamp-embed: the sentence encoder as a filter, for the Python reference checks and for scripts.
// Reads one JSON string per line from stdin; prints one JSON array per line: the text's embedding,
// or with --tokens its token ids, or with --normalize the BertNormalizer output as a JSON string.
#include <cstdio>
#include <cstring>
#include <esamp/error.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sentence_encoder.hpp"
#include "wordpiece.hpp"

namespace {

constexpr const char* kUsage =
    "usage: esamp-embed [--tokens | --normalize] [--dir DIR] < texts.jsonl\n"
    "  Each input line is a JSON string; each output line is its embedding (a JSON array of "
    "floats),\n"
    "  its token ids (--tokens), or its normalised text (--normalize). DIR defaults to\n"
    "  ESAMP_EMBEDDER_DIR, else ~/.cache/esamp/all-minilm-l6-v2 (scripts/fetch-embedder fills "
    "it).\n";

int run(int argc, char** argv) {
  enum class Mode { embed, tokens, normalize } mode = Mode::embed;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tokens") == 0) {
      mode = Mode::tokens;
    } else if (std::strcmp(argv[i], "--normalize") == 0) {
      mode = Mode::normalize;
    } else if (std::strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }
  if (dir.empty()) {
    const auto found = esamp::embed::find_embedder_dir();
    if (!found) {
      std::fputs(
          "esamp-embed: no encoder found: run scripts/fetch-embedder or set ESAMP_EMBEDDER_DIR\n",
          stderr);
      return 1;
    }
    dir = *found;
  }
  std::vector<std::string> texts;
  for (std::string line; std::getline(std::cin, line);) {
    const nlohmann::json value = nlohmann::json::parse(line);
    if (!value.is_string()) esamp::fail("input line {}: expected a JSON string", texts.size() + 1);
    texts.push_back(value.get<std::string>());
  }
  if (mode == Mode::normalize) {
    const auto tokenizer = esamp::embed::WordPieceTokenizer::load(dir + "/tokenizer.json");
    for (const auto& text : texts)
      std::cout << nlohmann::json(tokenizer.normalize(text)).dump() << '\n';
    return 0;
  }
  const auto encoder = esamp::embed::SentenceEncoder::load(dir);
  if (mode == Mode::tokens) {
    for (const auto& text : texts)
      std::cout << nlohmann::json(encoder.tokenize(text)).dump() << '\n';
    return 0;
  }
  const Eigen::MatrixXf embeddings = encoder.encode(texts);
  for (Eigen::Index i = 0; i < embeddings.rows(); ++i) {
    std::string line = "[";
    for (Eigen::Index j = 0; j < embeddings.cols(); ++j)
      line += fmt::format("{}{:.9g}", j == 0 ? "" : ",", embeddings(i, j));
    std::cout << line << "]\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "esamp-embed: %s\n", e.what());
    return 1;
  }
}
