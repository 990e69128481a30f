# The model files the examples and tests read, and the folder they are read from (the rule of
# examples/models/model_dir.cpp), for cmake/fetch_models.cmake and its tests.

# <file> <path under the download site> <sha256>, three entries a file: the ggml-org/models and
# karpathy/tinyllamas uploads of the TinyStories 260K model.
set(ESAMP_MODELS
  stories260K.gguf ggml-org/models/resolve/main/tinyllamas/stories260K.gguf
  270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
  stories260K.bin karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin
  b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696
  tok512.bin karpathy/tinyllamas/resolve/main/stories260K/tok512.bin
  037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312
)
set(ESAMP_MODELS_DEFAULT_BASE_URL "https://huggingface.co")

# The folder: $ESAMP_MODEL_DIR when set, else the per-user cache $XDG_CACHE_HOME/esamp/models
# (default ~/.cache/esamp/models).
# esamp_model_dir(<dir variable> <from-environment variable>): the folder, and whether
# ESAMP_MODEL_DIR named it.
function(esamp_model_dir dir_variable from_environment_variable)
  if(NOT "$ENV{ESAMP_MODEL_DIR}" STREQUAL "")
    set(${dir_variable} "$ENV{ESAMP_MODEL_DIR}" PARENT_SCOPE)
    set(${from_environment_variable} TRUE PARENT_SCOPE)
    return()
  endif()
  set(cache "$ENV{XDG_CACHE_HOME}")
  if(NOT IS_ABSOLUTE "${cache}")  # the XDG spec ignores a relative path
    if("$ENV{HOME}" STREQUAL "")
      message(FATAL_ERROR "no model folder: ESAMP_MODEL_DIR, XDG_CACHE_HOME and HOME are all "
                          "unset; set ESAMP_MODEL_DIR to a folder holding the model files")
    endif()
    set(cache "$ENV{HOME}/.cache")
  endif()
  set(${dir_variable} "${cache}/esamp/models" PARENT_SCOPE)
  set(${from_environment_variable} FALSE PARENT_SCOPE)
endfunction()
