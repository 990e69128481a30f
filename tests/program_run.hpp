// Running one of the project's programs as a child process from a test, and reading files back.
#pragma once

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace esamp::test {

enum class Capture { standard_output, standard_error };

struct ProgramRun {
  int exit_status = -1;
  std::string output;  // the captured stream; the other one is discarded
};

// 'word' for the shell, with each ' written as '\''.
inline std::string shell_quoted(const std::string& word) {
  std::string quoted = "'";
  for (const char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs `program` with `arguments` (each passed as one word) through the shell.
inline ProgramRun run_program(const std::string& program, const std::vector<std::string>& arguments,
                              Capture capture) {
  std::string command = shell_quoted(program);
  for (const std::string& argument : arguments) command += " " + shell_quoted(argument);
  command += capture == Capture::standard_output ? " 2>/dev/null" : " 2>&1 >/dev/null";
  FILE* const pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  ProgramRun run;
  char buffer[4096];
  for (std::size_t read; (read = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    run.output.append(buffer, read);
  const int status = pclose(pipe);
  REQUIRE(WIFEXITED(status));
  run.exit_status = WEXITSTATUS(status);
  return run;
}

inline std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace esamp::test
