// Test support: a program running in the background for the length of a test
// (moto, awsemu), stopped and reaped on destruction, and free loopback ports.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace amibake::testing {

// Returns a TCP port on 127.0.0.1 that was free a moment ago.
int free_loopback_port();

class BackgroundProcess {
 public:
  BackgroundProcess() = default;
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // Starts argv with extra "NAME=value" env entries; stdout and stderr go to
  // `log_path`. Returns false (with `error` filled) when it cannot start.
  bool start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
             const std::string& log_path, std::string* error);
  // Waits until something accepts TCP connections on 127.0.0.1:port, or the
  // process exits, or `timeout` passes. Returns true when it accepts.
  bool wait_for_port(int port, std::chrono::milliseconds timeout);
  // Waits until the log holds a line starting with `prefix`; returns that line or "".
  std::string wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  // Sends SIGTERM, then SIGKILL after a grace period, and reaps.
  void stop();
  bool running() const;
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Runs argv to completion with extra env; returns exit code and fills stdout/stderr.
int run_capture(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                std::string* out, std::string* err);

}  // namespace amibake::testing
