#include "models/model_dir.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace esamp::models {
namespace {

constexpr const char* kFetchCommand = "cmake -P " ESAMP_SOURCE_DIR "/cmake/fetch_models.cmake";

// The variable's value, or "" when it is unset.
std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

bool model_dir_from_environment() { return !environment("ESAMP_MODEL_DIR").empty(); }

}  // namespace

std::optional<std::string> cache_dir() {
  std::string cache = environment("XDG_CACHE_HOME");
  if (cache.empty() || cache.front() != '/') {  // the XDG spec ignores a relative path
    const std::string home = environment("HOME");
    if (home.empty()) return std::nullopt;
    cache = home + "/.cache";
  }
  return cache + "/esamp";
}

std::string model_dir() {
  if (model_dir_from_environment()) return environment("ESAMP_MODEL_DIR");
  const auto cache = cache_dir();
  if (!cache)
    throw std::runtime_error(
        "no model folder: ESAMP_MODEL_DIR, XDG_CACHE_HOME and HOME are all unset; set "
        "ESAMP_MODEL_DIR to a folder holding the model files");
  return *cache + "/models";
}

std::string model_file(const std::string& name) {
  const std::string dir = model_dir();
  const std::string path = dir + "/" + name;
  if (std::ifstream(path)) return path;
  if (model_dir_from_environment())
    throw std::runtime_error(fmt::format(
        "{} cannot be read: ESAMP_MODEL_DIR names {}; point it at a folder holding a copy of {}, "
        "or unset it to use the model cache that `{}` fills",
        path, dir, name, kFetchCommand));
  throw std::runtime_error(fmt::format(
      "{} cannot be read: ESAMP_MODEL_DIR is not set, so the model cache is used "
      "($XDG_CACHE_HOME/esamp/models, default ~/.cache/esamp/models); download the model files "
      "into it with `{}`, or set ESAMP_MODEL_DIR to a folder holding a copy of {}",
      path, kFetchCommand, name));
}

}  // namespace esamp::models
