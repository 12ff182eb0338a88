// awsemu: runs the emulator until SIGINT/SIGTERM (see run.cc and README.md).
//
// No log::set_program: awsemu's messages already start with "awsemu:" so they read
// the same when the emulator runs inside amibake.
#include "emulator/server.h"

int main(int argc, char** argv) { return amibake::emu::run_main(argc, argv); }
