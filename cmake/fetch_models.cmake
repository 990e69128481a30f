# Fetches the TinyStories 260K model files that the examples and tests read into the per-user model
# cache ($XDG_CACHE_HOME/esamp/models, default ~/.cache/esamp/models), checking each file's sha256
# before it is kept. A file already there is checked and kept, or fetched again when it differs.
# With ESAMP_MODEL_DIR set nothing is downloaded: the copies in that folder are checked instead.
#
#   cmake [-DESAMP_MODELS_BASE_URL=<url>] -P cmake/fetch_models.cmake
#
# ESAMP_MODELS_BASE_URL replaces the download site (a mirror holding the same paths, or file://).
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/EsampModels.cmake)

if(NOT DEFINED ESAMP_MODELS_BASE_URL)
  set(ESAMP_MODELS_BASE_URL "${ESAMP_MODELS_DEFAULT_BASE_URL}")
endif()

esamp_model_dir(dir from_environment)
if(NOT from_environment)
  file(MAKE_DIRECTORY "${dir}")
endif()

set(problems "")
list(LENGTH ESAMP_MODELS length)
math(EXPR last "${length} - 1")
foreach(index RANGE 0 ${last} 3)
  math(EXPR source_index "${index} + 1")
  math(EXPR sha_index "${index} + 2")
  list(GET ESAMP_MODELS ${index} name)
  list(GET ESAMP_MODELS ${source_index} source)
  list(GET ESAMP_MODELS ${sha_index} expected)
  set(url "${ESAMP_MODELS_BASE_URL}/${source}")
  set(path "${dir}/${name}")

  if(EXISTS "${path}")
    file(SHA256 "${path}" actual)
    if(actual STREQUAL expected)
      message(STATUS "${name}: verified in ${dir}")
      continue()
    endif()
    if(from_environment)
      list(APPEND problems "${path}: sha256 ${actual}, expected ${expected} (from ${url})")
      continue()
    endif()
    message(STATUS "${name}: the cached copy has sha256 ${actual}, expected ${expected}: "
                   "fetching it again")
    file(REMOVE "${path}")
  elseif(from_environment)
    list(APPEND problems "${name}: missing from ${dir} (it comes from ${url})")
    continue()
  endif()

  # Downloaded beside the cache entry, which only a verified file becomes.
  set(part "${path}.part")
  file(DOWNLOAD "${url}" "${part}" STATUS status TLS_VERIFY ON INACTIVITY_TIMEOUT 60)
  list(GET status 0 code)
  if(NOT code EQUAL 0)
    file(REMOVE "${part}")
    list(GET status 1 reason)
    list(APPEND problems "${name}: not in ${dir}, and ${url} cannot be downloaded (${reason})")
    continue()
  endif()
  file(SHA256 "${part}" actual)
  if(NOT actual STREQUAL expected)
    file(REMOVE "${part}")
    list(APPEND problems
         "${name} from ${url}: sha256 ${actual}, expected ${expected}; the download is deleted")
    continue()
  endif()
  file(RENAME "${part}" "${path}")
  message(STATUS "${name}: downloaded from ${url} and verified into ${dir}")
endforeach()

if(problems)
  list(JOIN problems "\n  " listing)
  # Each line indented, so that CMake prints it as it is.
  if(from_environment)
    set(advice "  ESAMP_MODEL_DIR names ${dir}, which is used as it is (nothing is downloaded into"
               " it):\n  put verified copies of these files there, or unset ESAMP_MODEL_DIR to "
               "fetch them into the model cache.")
  else()
    set(advice "  To use copies instead (offline, or where these locations serve other files), set"
               "\n  ESAMP_MODEL_DIR to a folder holding them.")
  endif()
  string(JOIN "" advice ${advice})
  message(FATAL_ERROR "the model files are not ready:\n  ${listing}\n${advice}")
endif()
message(STATUS "model files ready in ${dir}")
