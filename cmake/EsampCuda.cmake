# The optional CUDA backend (esamp::cuda): built when nvcc is found, unless ESAMP_CUDA=OFF.
set(ESAMP_HAVE_CUDA OFF)
if(NOT ESAMP_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(ESAMP_HAVE_CUDA ON)
  elseif(ESAMP_CUDA STREQUAL "ON")
    message(FATAL_ERROR "ESAMP_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "esamp: no CUDA compiler found; building the CPU library only")
  endif()
endif()

# esamp::cuda: the kernels (cuda/*.cu) and the backend's host code beside them (cuda/backend.cpp),
# static; its public header is include/esamp/cuda.hpp.
if(ESAMP_HAVE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)

  add_library(esamp_cuda STATIC
    cuda/distiller.cu
    cuda/gather.cu
    cuda/mix.cu
    cuda/sampling.cu
    cuda/backend.cpp
  )
  add_library(esamp::cuda ALIAS esamp_cuda)
  # Launcher headers are included as "cuda/<name>.cuh"; kernels include "detail/<name>.cuh".
  target_include_directories(esamp_cuda
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/cuda)
  target_link_libraries(esamp_cuda PUBLIC esamp::esamp CUDA::cudart)
  # The project's warnings as options, not a link item, so that the exported target does not name them.
  target_compile_options(esamp_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:$<TARGET_PROPERTY:esamp_warnings,INTERFACE_COMPILE_OPTIONS>>)
  set_target_properties(esamp_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON
                                              CUDA_SEPARABLE_COMPILATION OFF EXPORT_NAME cuda)
  install(TARGETS esamp_cuda EXPORT esampTargets)
  # --expt-relaxed-constexpr: the kernels call esamp::philox4x32_10 (constexpr) itself, so CPU and
  # GPU share one Philox.
  target_compile_options(esamp_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall,-Wextra
                               $<$<BOOL:${ESAMP_WERROR}>:--Werror=all-warnings>>)
endif()
