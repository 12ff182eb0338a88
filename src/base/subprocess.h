// Running other programs with a fixed argument list: never through a shell.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake {

struct ProcessResult {
  int exit_code = -1;   // exit status, or 128+signal when killed by a signal
  std::string out;      // captured stdout
  std::string err;      // captured stderr
};

struct RunOptions {
  std::string stdin_data;                     // written to the child's stdin, then closed
  std::vector<std::string> extra_env;         // "NAME=value" entries added to the environment
  std::chrono::milliseconds timeout{0};       // 0 = no limit; on expiry the child is killed
};

// Runs argv[0] (searched in PATH) with argv, waits, and returns its exit code and output.
// Fails only when the program cannot be started or times out; a non-zero exit is a value.
Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  const RunOptions& options = {});

// Runs argv and returns stdout; a non-zero exit becomes an error naming the program,
// its exit code and the last line of its stderr.
Result<std::string> run_checked(const std::vector<std::string>& argv,
                                const RunOptions& options = {});

// Returns true when `program` is found in PATH (or is an executable path).
bool program_exists(const std::string& program);

}  // namespace amibake
