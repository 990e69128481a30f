# Assertions for the CMake-script tests: each stops the script with a message that says what failed.

# expect(<if() condition>)
function(expect)
  if(NOT (${ARGV}))
    message(FATAL_ERROR "expected ${ARGV}")
  endif()
endfunction()

function(expect_in output text)
  string(FIND "${output}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected the output to say '${text}'; it was:\n${output}")
  endif()
endfunction()

function(expect_not_in output text)
  string(FIND "${output}" "${text}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "expected the output not to say '${text}'; it was:\n${output}")
  endif()
endfunction()
