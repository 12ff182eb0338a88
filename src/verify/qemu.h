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
  std::string console;   // everything the guest wrote on its serial console
};

// The emulated machine for an AMI architecture (its Architecture attribute). The kernel is
// booted directly on both (no firmware): x86_64 as a PC, arm64 on QEMU's "virt" board with a
// Neoverse N1 (Graviton2's core; under TCG "max" is ~8x slower, pointer authentication).
struct Machine {
  std::string architecture;       // "x86_64" | "arm64"
  std::vector<std::string> qemu;  // binary, then machine and CPU model
  std::string console;            // the serial console's kernel name: ttyS0 | ttyAMA0
  std::string package;            // the Debian package with the binary
};

// The machine for `architecture`; any other (i386, x86_64_mac, arm64_mac) is an error.
Result<Machine> machine_for(const std::string& architecture);

// The architecture a kernel file is built for, read from its boot header: "x86_64"
// (bzImage), "arm64" (arm64 Image), or "" when neither header is there (e.g. compressed).
std::string kernel_architecture(const std::string& kernel_path);

// The accelerators to try in order: `wanted` ("kvm"/"tcg"), else AMIBAKE_QEMU_ACCEL, else
// kvm then tcg when /dev/kvm is usable and `machine` is this host's architecture, else tcg.
std::vector<std::string> accelerators(const std::string& wanted, const Machine& machine);

// The QEMU command line: every disk an NVMe controller with the disk's serial, the kernel
// booted directly with `files.cmdline` plus the machine's console= and
// "amibake.ebs=SERIAL:NAME,…".
std::vector<std::string> qemu_argv(const std::vector<Disk>& disks, const BootFiles& files,
                                   const std::string& console_path, const std::string& accel,
                                   const Machine& machine);

// Boots the machine of `files.architecture` (refused when the kernel's header says another
// architecture), trying each accelerator of accelerators(wanted): one that shows no kernel output
// within 20 s while another remains is abandoned (nested KVM hangs that way). Returns when
// QEMU exits (the verdict unit powers off) or fails after `timeout_seconds` with the tail
// of the console. The console is written to `console_path`.
Result<QemuRun> boot_qemu(const std::vector<Disk>& disks, const BootFiles& files,
                          const std::string& console_path, const std::string& wanted,
                          int timeout_seconds);

}  // namespace amibake::verify
