// The command line that starts the datavol binary under test (cli_test, loop_test).
//
// DATAVOL_BINARY is the binary. In a cross build (the aarch64 datavol tested on x86_64,
// cmake/datavol_arm64.cmake) DATAVOL_EMULATOR names qemu-aarch64-static: the test itself
// runs under it, and a process under qemu-user execs through the host kernel, which has
// no binfmt_misc entry for aarch64 here, so the emulator is named explicitly.
#pragma once

#include <string>
#include <vector>

namespace amibake {

inline std::vector<std::string> datavol_command(const std::vector<std::string>& args) {
  std::vector<std::string> argv;
#ifdef DATAVOL_EMULATOR
  argv.push_back(DATAVOL_EMULATOR);
#endif
  argv.push_back(DATAVOL_BINARY);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace amibake
