#pragma once
// Running helper programs (ssh-keygen, ssh) without a shell.

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace autopod::core {

struct ProcessOutput {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) with `input` on stdin and captures stdout and stderr.
// `env` entries ("NAME=value") are added to (or replace) this process's environment.
// Fails only when the program cannot be started.
Result<ProcessOutput> run_capture(const std::vector<std::string>& argv,
                                  std::string_view input = {},
                                  const std::vector<std::string>& env = {});

// The full path of `name` in PATH, or empty.
std::string find_program(std::string_view name);

}  // namespace autopod::core
