// awsemu's whole program as a library call, so `amibake emulator ARGS...` and the
// awsemu binary behave the same. The first line on stdout is the endpoint URL, printed
// only once requests are answered, so scripts can read it and connect at once.
#include <pthread.h>

#include <csignal>
#include <iostream>

#include "base/log.h"
#include "emulator/server.h"

namespace amibake::emu {

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
  sigwait(&signals, &sig);
  log::info("awsemu: stopping");
  emulator.stop();
  return 0;
}

}  // namespace amibake::emu
