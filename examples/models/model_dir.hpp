// Where the programs, benchmarks and tests find the model files: $ESAMP_MODEL_DIR when it is set,
// else the per-user cache that cmake/fetch_models.cmake fills (cmake/EsampModelDir.cmake is the
// same rule for that script).
#pragma once

#include <optional>
#include <string>

namespace esamp::models {

// esamp's per-user cache: $XDG_CACHE_HOME/esamp (an absolute XDG_CACHE_HOME only, as the XDG spec
// says), default ~/.cache/esamp; empty when neither variable gives one.
std::optional<std::string> cache_dir();

// $ESAMP_MODEL_DIR when set, else cache_dir()/models (default ~/.cache/esamp/models). Throws
// std::runtime_error when ESAMP_MODEL_DIR, XDG_CACHE_HOME and HOME are all unset.
std::string model_dir();

// The path of `name` in model_dir(). Throws std::runtime_error when it cannot be read, naming the
// file, the folder and where that folder comes from, the fetch command and ESAMP_MODEL_DIR.
std::string model_file(const std::string& name);

}  // namespace esamp::models
