# scripts/setup with stand-ins for id, sudo and apt-get on a PATH holding nothing else, so it runs
# offline and changes nothing: as root it calls apt-get itself, as a user it goes through sudo, and
# as a user without sudo it stops with a message before any apt-get.
# -DSOURCE_DIR=<repository> -DWORK_DIR=<scratch folder>.
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
set(log "${WORK_DIR}/calls.log")

# A PATH folder with bash and env, an `id` that says `uid`, apt-get, and sudo when `with_sudo`.
function(make_path folder uid with_sudo)
  file(MAKE_DIRECTORY "${folder}")
  foreach(tool bash env)
    find_program(real_${tool} ${tool} REQUIRED)
    file(CREATE_LINK "${real_${tool}}" "${folder}/${tool}" SYMBOLIC)
  endforeach()
  set(stand_ins
      "id|[ \"$1\" = -u ] && echo ${uid}"
      "apt-get|echo \"apt-get $* (DEBIAN_FRONTEND=$DEBIAN_FRONTEND)\" >>'${log}'")
  if(with_sudo)
    list(APPEND stand_ins "sudo|echo sudo >>'${log}'\nexec \"$@\"")
  endif()
  foreach(stand_in IN LISTS stand_ins)
    string(FIND "${stand_in}" "|" bar)
    string(SUBSTRING "${stand_in}" 0 ${bar} tool)
    math(EXPR body_at "${bar} + 1")
    string(SUBSTRING "${stand_in}" ${body_at} -1 body)
    file(WRITE "${folder}/${tool}" "#!${real_bash}\n${body}\n")
    file(CHMOD "${folder}/${tool}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
  endforeach()
endfunction()

# Runs scripts/setup with the further arguments on PATH=`folder`; sets rc, output and calls (the
# log) in the caller.
function(run_setup folder)
  file(REMOVE "${log}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E env PATH=${folder} ${SOURCE_DIR}/scripts/setup ${ARGN}
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(calls "")
  if(EXISTS "${log}")
    file(READ "${log}" calls)
  endif()
  set(rc "${result}" PARENT_SCOPE)
  set(output "${output}" PARENT_SCOPE)
  set(calls "${calls}" PARENT_SCOPE)
endfunction()

set(build_packages "cmake ninja-build g++ libeigen3-dev libfmt-dev catch2 nlohmann-json3-dev")
string(APPEND build_packages " libcpp-httplib-dev pkg-config")
string(APPEND build_packages " ca-certificates python3-pip")
set(update "apt-get update -qq (DEBIAN_FRONTEND=noninteractive)\n")
set(install "apt-get install -y -q --no-install-recommends --no-upgrade ${build_packages}")

make_path("${WORK_DIR}/root" 0 FALSE)
run_setup("${WORK_DIR}/root")
expect(rc EQUAL 0)
expect(calls STREQUAL "${update}${install} (DEBIAN_FRONTEND=noninteractive)\n")

run_setup("${WORK_DIR}/root" --ci)
expect(rc EQUAL 0)
set(ci_packages "clang clang-format libclang-rt-14-dev")
expect(calls STREQUAL "${update}${install} ${ci_packages} (DEBIAN_FRONTEND=noninteractive)\n")

make_path("${WORK_DIR}/user" 1000 TRUE)
run_setup("${WORK_DIR}/user")
expect(rc EQUAL 0)
expect(calls STREQUAL "sudo\n${update}sudo\n${install} (DEBIAN_FRONTEND=noninteractive)\n")

make_path("${WORK_DIR}/user-without-sudo" 1000 FALSE)
run_setup("${WORK_DIR}/user-without-sudo")
expect(rc EQUAL 1)
expect(NOT EXISTS "${log}")
expect_in("${output}" "installing packages needs root, and sudo is not installed")

run_setup("${WORK_DIR}/root" --all)
expect(rc EQUAL 2)
expect(NOT EXISTS "${log}")
