// Running one QEMU boot of prepared disks and collecting the serial console.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "verify/verify.h"

namespace amibake::verify {

struct QemuRun {
  std::string accel;
  double seconds = 0;    // QEMU start to exit (or to the kill)
  std::string console;   // everything the guest wrote on ttyS0
};

// The accelerators to try in order: `wanted` ("kvm"/"tcg"), else AMIBAKE_QEMU_ACCEL, else
// kvm then tcg when /dev/kvm is usable, else tcg.
std::vector<std::string> accelerators(const std::string& wanted);

// The QEMU command line: every disk an NVMe controller with the disk's serial, the kernel
// booted directly with `files.cmdline` plus "amibake.ebs=SERIAL:NAME,…".
std::vector<std::string> qemu_argv(const std::vector<Disk>& disks, const BootFiles& files,
                                   const std::string& console_path, const std::string& accel);

// Boots, trying each accelerator of accelerators(wanted): one that shows no kernel output
// within 20 s while another remains is abandoned (nested KVM hangs that way). Returns when
// QEMU exits (the verdict unit powers off) or fails after `timeout_seconds` with the tail
// of the console. The console is written to `console_path`.
Result<QemuRun> boot_qemu(const std::vector<Disk>& disks, const BootFiles& files,
                          const std::string& console_path, const std::string& wanted,
                          int timeout_seconds);

}  // namespace amibake::verify
