// awsemu's whole program as a library call, so `amibake emulator ARGS...` and the
// awsemu binary behave the same. The first line on stdout is the endpoint URL, printed
// only once requests are answered, so scripts can read it and connect at once. The
// requests answered per operation go to stderr on SIGUSR1 and at stop.
#include <pthread.h>

#include <csignal>
#include <iostream>

#include "base/log.h"
#include "emulator/server.h"

namespace amibake::emu {
namespace {

// One stderr line per operation: "awsemu: calls: ec2:CreateSnapshot 3".
void print_call_counts(Emulator& emulator) {
  auto counts = emulator.call_counts();
  if (counts.empty()) log::info("awsemu: calls: none");
  for (const auto& [op, n] : counts) log::info("awsemu: calls: " + op + " " + std::to_string(n));
}

}  // namespace

int run_main(int argc, char** argv) {
  auto parsed = parse_command_line(argc, argv);
  if (!parsed) {
    if (parsed.error().code == 0) {
      std::cout << parsed.error().message;
    } else {
      std::cerr << parsed.error().describe() << "\n";
    }
    return parsed.error().code;
  }
  // Block the stop signals before any thread starts so every thread inherits the mask
  // and only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Emulator emulator(*parsed);
  Status started = emulator.start();
  if (!started) {
    std::cerr << started.error().describe() << "\n";
    return started.error().code == 0 ? 1 : started.error().code;
  }
  std::cout << "awsemu listening on " << emulator.url() << std::endl;
  log::info("awsemu: access key id " + parsed->access_key_id +
            " (secret: see emulator/README.md or --secret-access-key); region us-east-1");
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGUSR1) print_call_counts(emulator);
  log::info("awsemu: stopping");
  emulator.stop();
  print_call_counts(emulator);
  return 0;
}

}  // namespace amibake::emu
