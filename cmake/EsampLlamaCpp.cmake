# The optional llama.cpp adapter (esamp::llama_cpp): built when find_package(llama CONFIG) finds an
# installed llama.cpp (point CMAKE_PREFIX_PATH at it, e.g. at what scripts/build-llama-cpp prints),
# unless ESAMP_LLAMA_CPP=OFF.
set(ESAMP_HAVE_LLAMA_CPP OFF)
if(NOT ESAMP_LLAMA_CPP STREQUAL "OFF")
  find_package(llama CONFIG QUIET)
  if(llama_FOUND AND TARGET llama)
    set(ESAMP_HAVE_LLAMA_CPP ON)
    enable_language(C)  # the llama target carries C compile features
    message(STATUS "esamp: llama.cpp ${llama_VERSION} found: building esamp::llama_cpp")
    # ggml's package says whether its CPU backend runs graphs on an OpenMP team; if so the
    # adapter's backend() trains on that team and links the same OpenMP.
    set(ESAMP_LLAMA_CPP_OPENMP OFF)
    if(GGML_OPENMP_ENABLED)
      find_package(OpenMP COMPONENTS CXX)
      if(OpenMP_CXX_FOUND)
        set(ESAMP_LLAMA_CPP_OPENMP ON)
      else()
        message(WARNING "esamp: llama.cpp uses OpenMP but find_package(OpenMP) found none: "
                        "llama_cpp::backend() trains on esamp's own threads")
      endif()
    endif()
  elseif(ESAMP_LLAMA_CPP STREQUAL "ON")
    message(FATAL_ERROR "ESAMP_LLAMA_CPP=ON but find_package(llama CONFIG) found no llama.cpp; "
                        "set CMAKE_PREFIX_PATH to its install prefix (scripts/build-llama-cpp "
                        "builds one)")
  else()
    message(STATUS "esamp: no llama.cpp found; the llama.cpp adapter is not built")
  endif()
endif()
