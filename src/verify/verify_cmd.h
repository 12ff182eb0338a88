// `amibake verify AMI_ID --boot`: boot a baked AMI under QEMU and report whether /data was
// ready before docker and ECS (issue 6). Wired into src/cli/amibake_main.cc as:
//   VerifyFlags verify_flags;
//   add_verify_flags(*command("verify", "boot an AMI under QEMU and check /data",
//                    [&] { return verify::run_verify_command(g.settings(), verify_flags); }),
//                    verify_flags);
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "aws/config.h"

namespace amibake::verify {

struct VerifyFlags {
  std::string ami_id;
  bool boot = false;
  std::string keep_disks;
  int timeout_seconds = 900;
  std::vector<std::string> without;
  std::string accel;
  std::string fetch = "auto";
  bool json = false;
};

// Adds the AMI_ID argument and --boot/--keep-disks/--timeout/--without/--accel/--fetch/--json.
void add_verify_flags(CLI::App& cmd, VerifyFlags& flags);

// Runs the command: the report on stdout (JSON with --json), progress and errors on stderr.
// Exit codes: 0 /data was ready before docker and ecs; 1 it was not, or the boot failed;
// 2 usage (no --boot, or an endpoint that is not loopback).
int run_verify_command(const aws::ClientSettings& settings, const VerifyFlags& flags);

}  // namespace amibake::verify
