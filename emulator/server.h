// awsemu as a library: start a local AWS endpoint in-process (used by the awsemu
// binary, by `amibake emulator`, and by tests).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/result.h"
#include "emulator/service.h"

namespace CLI {
class App;
}

namespace amibake::emu {

class Emulator {
 public:
  explicit Emulator(Options options);
  ~Emulator();  // stops serving and saves state
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // Loads state and the catalog, binds the port and starts serving on background
  // threads. Returns once requests are answered (so the URL can be printed).
  Status start();
  // Stops serving, waits for the server threads, saves state. Idempotent.
  void stop();

  int port() const { return port_; }
  // Returns "http://127.0.0.1:<port>".
  std::string url() const;
  Context& context() { return *ctx_; }
  // Returns the requests answered per operation since start ("ec2:CreateSnapshot" -> 3),
  // as GET /_awsemu/stats does.
  std::map<std::string, uint64_t> call_counts() { return ctx_->call_counts(); }

 private:
  struct Impl;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// The flag values parse_command_line turns into Options after parsing.
struct CommandLineText {
  std::string faults, deny, latency;
  bool no_verify = false;
};

// Defines awsemu's flags on `app`, bound to `o` and `text`. parse_command_line uses it,
// and so does amibake's table for `amibake emulator` (its completion lists these flags).
void add_command_line_options(CLI::App& app, Options& o, CommandLineText& text);

// Parses awsemu's command line into options; on --help or a usage error returns an
// error whose code is 0 (help) or 2 (usage) and whose message is the text to print.
Result<Options> parse_command_line(int argc, char** argv);

// Runs awsemu as a program: parses argv, starts, prints "awsemu listening on URL" as
// the first stdout line, serves until SIGINT/SIGTERM, saves. Returns the exit code
// (0, 1 on failure, 2 on usage errors). `amibake emulator` can call it directly.
int run_main(int argc, char** argv);

}  // namespace amibake::emu
