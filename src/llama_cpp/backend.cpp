// esamp::llama_cpp::backend(): the CPU backend, training on llama.cpp's OpenMP team when llama.cpp
// uses OpenMP (ESAMP_LLAMA_CPP_OPENMP, set by cmake/EsampLlamaCpp.cmake from ggml's package).
#include "esamp/cpu/backend.hpp"

#include <functional>
#include <utility>

#include "esamp/llama_cpp.hpp"

#if ESAMP_LLAMA_CPP_OPENMP
#include <omp.h>
#endif

namespace esamp::llama_cpp {
namespace {

#if ESAMP_LLAMA_CPP_OPENMP
// A parallel region opened by the thread that calls llama_decode reuses the threads of ggml's
// regions (one OpenMP runtime per process). A team smaller than asked for runs the parts in turn.
void run_on_openmp_team(int parts, const std::function<void(int)>& part) {
#pragma omp parallel num_threads(parts)
  for (int t = omp_get_thread_num(); t < parts; t += omp_get_num_threads()) part(t);
}
#endif

}  // namespace

BackendFactory backend() {
#if ESAMP_LLAMA_CPP_OPENMP
  return [](const DistillerConfig& distiller, const ExplorationConfig& exploration) {
    // A background worker's region would start a team of its own beside llama.cpp's.
    cpu::TrainingTeam team;
    if (exploration.training_threads > 1 && !exploration.background_training)
      team = run_on_openmp_team;
    return std::make_unique<cpu::Backend>(distiller, exploration, std::move(team));
  };
#else
  return cpu::backend();
#endif
}

}  // namespace esamp::llama_cpp
