// llama.cpp behind generation::SampleEngine: any GGUF llama.cpp loads, decoded by Generator, with
// esamp through the adapter and its training on llama.cpp's own threads.
#pragma once

#include <memory>
#include <string>

#include "generate/sample_engine.hpp"

namespace esamp::llama_cpp {

// Loads `model_path`; `threads` 0 is llama.cpp's default.
std::unique_ptr<generation::SampleEngine> llama_cpp_engine(const std::string& model_path,
                                                           int threads);

}  // namespace esamp::llama_cpp
