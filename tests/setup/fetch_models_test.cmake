# Offline tests of cmake/fetch_models.cmake and of the model folder rule, against a download site
# on file:// built from copies of the real model files (from the folder the tests use:
# ESAMP_MODEL_DIR or the model cache). -DCASE=<case> -DSOURCE_DIR=<repository>
# -DWORK_DIR=<scratch folder>, and for the case "programs": -DGENERATE=<esamp-generate>
# -DENGINE_TESTS=<esamp_engine_tests>.
include(${SOURCE_DIR}/cmake/EsampModels.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)

esamp_model_dir(models_dir models_from_environment)
set(names "")
list(LENGTH ESAMP_MODELS length)
math(EXPR last "${length} - 1")
foreach(index RANGE 0 ${last} 3)
  math(EXPR source_index "${index} + 1")
  math(EXPR sha_index "${index} + 2")
  list(GET ESAMP_MODELS ${index} name)
  list(APPEND names ${name})
  list(GET ESAMP_MODELS ${source_index} source_${name})
  list(GET ESAMP_MODELS ${sha_index} sha_${name})
  if(NOT EXISTS "${models_dir}/${name}")
    message(FATAL_ERROR "these tests copy the real model files from ${models_dir}, which lacks "
                        "${name}: run `cmake -P ${SOURCE_DIR}/cmake/fetch_models.cmake` or set "
                        "ESAMP_MODEL_DIR to a folder holding a copy")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(site "${WORK_DIR}/site")
set(cache_home "${WORK_DIR}/cache-home")
set(cache "${cache_home}/esamp/models")

# The download site with copies of `names` at their paths; `damaged` gets one byte more.
function(build_site)
  cmake_parse_arguments(ARG "" "DAMAGED" "NAMES" ${ARGN})
  file(REMOVE_RECURSE "${site}")
  file(MAKE_DIRECTORY "${site}")
  foreach(name IN LISTS ARG_NAMES)
    set(target "${site}/${source_${name}}")
    get_filename_component(folder "${target}" DIRECTORY)
    file(MAKE_DIRECTORY "${folder}")
    file(COPY_FILE "${models_dir}/${name}" "${target}")
    if(name STREQUAL ARG_DAMAGED)
      file(APPEND "${target}" "x")
    endif()
  endforeach()
endfunction()

# Runs `command` with ESAMP_MODEL_DIR unset and XDG_CACHE_HOME at the test's cache, unless `ENV`
# entries (for cmake -E env) say otherwise; sets rc and output (stdout and stderr) in the caller.
function(run_with_env)
  cmake_parse_arguments(ARG "" "" "ENV;COMMAND" ${ARGN})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env --unset=ESAMP_MODEL_DIR XDG_CACHE_HOME=${cache_home} ${ARG_ENV}
            ${ARG_COMMAND}
    RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(rc "${result}" PARENT_SCOPE)
  set(output "${output}" PARENT_SCOPE)
endfunction()

function(fetch)
  run_with_env(${ARGN} COMMAND ${CMAKE_COMMAND} -DESAMP_MODELS_BASE_URL=file://${site} -P
               ${SOURCE_DIR}/cmake/fetch_models.cmake)
  set(rc "${rc}" PARENT_SCOPE)
  set(output "${output}" PARENT_SCOPE)
endfunction()

function(expect_cache_verified)
  foreach(name IN LISTS names)
    expect(EXISTS "${cache}/${name}")
    file(SHA256 "${cache}/${name}" actual)
    expect(actual STREQUAL sha_${name})
  endforeach()
  file(GLOB parts "${cache}/*.part")
  expect(NOT parts)
endfunction()

if(CASE STREQUAL "downloads")
  build_site(NAMES ${names})
  fetch()
  expect(rc EQUAL 0)
  expect_cache_verified()
  foreach(name IN LISTS names)
    expect_in("${output}" "${name}: downloaded from file://${site}/${source_${name}} and verified")
  endforeach()
  # A second run keeps the verified files: it downloads nothing (the site is gone).
  file(REMOVE_RECURSE "${site}")
  fetch()
  expect(rc EQUAL 0)
  expect_not_in("${output}" "downloaded")
  foreach(name IN LISTS names)
    expect_in("${output}" "${name}: verified in ${cache}")
  endforeach()

elseif(CASE STREQUAL "refetches_damaged_cache")
  build_site(NAMES ${names})
  file(MAKE_DIRECTORY "${cache}")
  file(WRITE "${cache}/stories260K.gguf" "not a model")
  file(SHA256 "${cache}/stories260K.gguf" damaged)
  fetch()
  expect(rc EQUAL 0)
  expect_in("${output}" "stories260K.gguf: the cached copy has sha256 ${damaged}, expected "
                        "${sha_stories260K.gguf}: fetching it again")
  expect_cache_verified()

elseif(CASE STREQUAL "rejects_wrong_hash")
  build_site(NAMES ${names} DAMAGED stories260K.gguf)
  file(SHA256 "${site}/${source_stories260K.gguf}" damaged)
  fetch()
  expect(NOT rc EQUAL 0)
  expect_in("${output}" "stories260K.gguf from file://${site}/${source_stories260K.gguf}: sha256 "
                        "${damaged}, expected ${sha_stories260K.gguf}; the download is deleted")
  expect(NOT EXISTS "${cache}/stories260K.gguf")
  expect(NOT EXISTS "${cache}/stories260K.gguf.part")
  # The files that matched are kept.
  expect(EXISTS "${cache}/stories260K.bin")
  expect(EXISTS "${cache}/tok512.bin")

elseif(CASE STREQUAL "missing_source")
  build_site(NAMES stories260K.gguf)
  fetch()
  expect(NOT rc EQUAL 0)
  foreach(name stories260K.bin tok512.bin)
    expect_in("${output}"
              "${name}: not in ${cache}, and file://${site}/${source_${name}} cannot be downloaded")
    expect(NOT EXISTS "${cache}/${name}")
    expect(NOT EXISTS "${cache}/${name}.part")
  endforeach()
  expect_in("${output}" "ESAMP_MODEL_DIR")
  expect_not_in("${output}" "stories260K.gguf: not in")

elseif(CASE STREQUAL "model_dir_checked_in_place")
  # ESAMP_MODEL_DIR is checked, never downloaded into nor deleted from (the site is empty).
  build_site(NAMES "")
  set(copies "${WORK_DIR}/copies")
  file(MAKE_DIRECTORY "${copies}")
  foreach(name IN LISTS names)
    file(COPY_FILE "${models_dir}/${name}" "${copies}/${name}")
  endforeach()
  fetch(ENV ESAMP_MODEL_DIR=${copies})
  expect(rc EQUAL 0)
  foreach(name IN LISTS names)
    expect_in("${output}" "${name}: verified in ${copies}")
  endforeach()
  file(APPEND "${copies}/stories260K.bin" "x")
  file(SHA256 "${copies}/stories260K.bin" damaged)
  file(REMOVE "${copies}/tok512.bin")
  fetch(ENV ESAMP_MODEL_DIR=${copies})
  expect(NOT rc EQUAL 0)
  expect_in("${output}" "${copies}/stories260K.bin: sha256 ${damaged}, expected "
                        "${sha_stories260K.bin}")
  expect_in("${output}" "tok512.bin: missing from ${copies} (it comes from "
                        "file://${site}/${source_tok512.bin})")
  expect_in("${output}" "ESAMP_MODEL_DIR names ${copies}, which is used as it is")
  expect(EXISTS "${copies}/stories260K.bin")
  expect(NOT EXISTS "${copies}/tok512.bin")
  expect(NOT EXISTS "${cache_home}")

elseif(CASE STREQUAL "programs")
  # What the fetch puts in the cache is what a program and a test binary read without
  # ESAMP_MODEL_DIR: llama2.c's greedy reference, byte for byte.
  file(READ "${SOURCE_DIR}/tests/data/stories260K.greedy.txt" reference)
  set(greedy ${GENERATE} --prompt= --samples 1 --temperature 0 --beta 0 --tokens 200 --quiet)
  build_site(NAMES ${names})
  fetch()
  expect(rc EQUAL 0)
  run_with_env(COMMAND ${greedy})
  expect(rc EQUAL 0)
  expect(output STREQUAL reference)
  # The compact reporter, which does not wrap the messages.
  set(engine_test ${ENGINE_TESTS} --reporter compact "greedy decoding of stories260K.bin*")
  run_with_env(COMMAND ${engine_test})
  expect(rc EQUAL 0)
  expect_in("${output}" "Passed 1 test case")

  # Without XDG_CACHE_HOME (or with a relative one, which the XDG spec ignores): ~/.cache.
  set(home "${WORK_DIR}/home")
  fetch(ENV --unset=XDG_CACHE_HOME HOME=${home})
  expect(rc EQUAL 0)
  expect(EXISTS "${home}/.cache/esamp/models/stories260K.gguf")
  run_with_env(ENV XDG_CACHE_HOME=relative/cache HOME=${home} COMMAND ${greedy})
  expect(rc EQUAL 0)
  expect(output STREQUAL reference)

  # An empty cache: the error names the file, the folder, the fetch command and ESAMP_MODEL_DIR.
  set(empty "${WORK_DIR}/empty")
  run_with_env(ENV XDG_CACHE_HOME=${empty} COMMAND ${greedy})
  expect(rc EQUAL 1)
  expect_in("${output}" "${empty}/esamp/models/stories260K.gguf cannot be read: ESAMP_MODEL_DIR is "
                        "not set, so the model cache is used")
  expect_in("${output}" "cmake -P ${SOURCE_DIR}/cmake/fetch_models.cmake")
  expect_in("${output}" "set ESAMP_MODEL_DIR to a folder holding a copy of stories260K.gguf")
  run_with_env(ENV XDG_CACHE_HOME=${empty} COMMAND ${engine_test})
  expect(NOT rc EQUAL 0)
  expect_in("${output}" "${empty}/esamp/models/")
  expect_in("${output}" " cannot be read: ESAMP_MODEL_DIR is not set, so the model cache is used")
  # Neither ESAMP_MODEL_DIR nor a cache folder.
  set(no_folder "no model folder: ESAMP_MODEL_DIR, XDG_CACHE_HOME and HOME are all unset")
  run_with_env(ENV --unset=XDG_CACHE_HOME --unset=HOME COMMAND ${greedy})
  expect(rc EQUAL 1)
  expect_in("${output}" "${no_folder}")
  fetch(ENV --unset=XDG_CACHE_HOME --unset=HOME)
  expect(NOT rc EQUAL 0)
  expect_in("${output}" "${no_folder}")
  # ESAMP_MODEL_DIR naming a folder without the model.
  file(MAKE_DIRECTORY "${empty}")
  run_with_env(ENV ESAMP_MODEL_DIR=${empty} COMMAND ${greedy})
  expect(rc EQUAL 1)
  expect_in("${output}" "${empty}/stories260K.gguf cannot be read: ESAMP_MODEL_DIR names ${empty}")

else()
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()
