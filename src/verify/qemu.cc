// QEMU as a child process: spawned with a fixed argv (no shell), its serial console sent to
// a file that is polled, killed for sure when the time is up.
//
// The guest powers itself off after printing its verdict, so a normal run ends with QEMU
// exiting on its own; that matters because a kill could lose writes QEMU has not flushed
// to the disk files yet (the reboot test reads them back). Only a hung guest is killed.
//
// The machine follows the AMI's architecture: qemu-system-x86_64 for x86_64,
// qemu-system-aarch64 -M virt -cpu neoverse-n1 for arm64, both booting the image's own
// kernel directly (as the x86_64 path always did) rather than through UEFI firmware: the
// same code path for both, no firmware package or 64 MiB flash images, and seconds less per
// boot under TCG. What it does not prove is the AMI's boot loader; AWS's UEFI boot of an
// arm64 AMI goes through its own grub, which this fixture does not carry on either arch.
//
// KVM is preferred when /dev/kvm is usable and the guest is this host's architecture, but nested KVM on some hosts hangs before the
// kernel prints a line, or QEMU aborts at once (an MSR it cannot set); such a run is
// abandoned after 20 s, or when QEMU fails, and TCG is tried instead.
#include "verify/qemu.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/files.h"
#include "base/log.h"

extern char** environ;

namespace amibake::verify {
namespace {

constexpr int kNoOutputSeconds = 20;

std::string basename_of(const std::string& device) {
  return device.substr(device.find_last_of('/') + 1);
}

std::string tail_lines(const std::string& text, int n) {
  size_t pos = text.size();
  for (int i = 0; i <= n && pos != std::string::npos && pos > 0; ++i) pos = text.rfind('\n', pos - 1);
  // An empty console (QEMU killed before the kernel printed) leaves pos at 0 == size.
  return pos == std::string::npos || pos >= text.size() ? text : text.substr(pos + 1);
}

Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log_path,
                    const std::string& package) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return make_error(argv[0] + ": cannot start: " + std::strerror(rc),
                      "install QEMU (Debian: apt-get install " + package + ")");
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

enum class Outcome { kExited, kNoOutput, kTimedOut };

// Polls until QEMU exits, shows no kernel output in time, or the time is up.
Outcome watch(pid_t pid, const std::string& console_path, int timeout_seconds, bool give_up_silent,
              int* exit_status) {
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      *exit_status = status;
      return Outcome::kExited;
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (give_up_silent && elapsed > kNoOutputSeconds) {
      auto text = read_file(console_path);
      if (!text || text->find("Linux version") == std::string::npos) {
        kill_and_reap(pid);
        return Outcome::kNoOutput;
      }
      give_up_silent = false;
    }
    if (elapsed > timeout_seconds) {
      kill_and_reap(pid);
      return Outcome::kTimedOut;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

Result<Machine> machine_for(const std::string& architecture) {
  if (architecture == "x86_64") return Machine{architecture, {"qemu-system-x86_64"}, "ttyS0", "qemu-system-x86"};
  if (architecture == "arm64") {
    return Machine{architecture, {"qemu-system-aarch64", "-M", "virt", "-cpu", "neoverse-n1"}, "ttyAMA0",
                   "qemu-system-arm"};
  }
  return make_error("verify --boot: the AMI's architecture is " +
                        (architecture.empty() ? std::string("not given") : architecture) +
                        "; QEMU boots x86_64 and arm64 AMIs only",
                    "boot an x86_64 or arm64 AMI");
}

std::string kernel_architecture(const std::string& kernel_path) {
  std::string k(0x300, '\0');
  std::ifstream f(kernel_path, std::ios::binary);
  f.read(k.data(), static_cast<std::streamsize>(k.size()));
  k.resize(static_cast<size_t>(f.gcount()));
  // arm64 Image: "ARM\x64" at 56 (Documentation/arch/arm64/booting.rst); x86 boot protocol:
  // "HdrS" at 0x202 (Documentation/arch/x86/boot.rst).
  if (k.size() > 64 && k.compare(56, 4, std::string("ARM\x64", 4)) == 0) return "arm64";
  if (k.size() > 0x206 && k.compare(0x202, 4, "HdrS") == 0) return "x86_64";
  return "";
}

std::vector<std::string> accelerators(const std::string& wanted, const Machine& machine) {
  if (!wanted.empty()) return {wanted};
  std::string forced = env_or("AMIBAKE_QEMU_ACCEL");
  if (!forced.empty()) return {forced};
  struct utsname host {};
  ::uname(&host);
  std::string here = host.machine == std::string("aarch64") ? "arm64" : host.machine;
  if (here == machine.architecture && ::access("/dev/kvm", R_OK | W_OK) == 0) return {"kvm", "tcg"};
  return {"tcg"};
}

std::vector<std::string> qemu_argv(const std::vector<Disk>& disks, const BootFiles& files,
                                   const std::string& console_path, const std::string& accel,
                                   const Machine& machine) {
  std::string ebs;
  for (const auto& d : disks) ebs += (ebs.empty() ? "" : ",") + d.serial + ":" + basename_of(d.device_name);
  std::vector<std::string> argv;
  // Under KVM the CPU is the host's: the emulated model (-cpu X) is left out.
  for (size_t i = 0; i < machine.qemu.size(); ++i) {
    if (accel == "kvm" && machine.qemu[i] == "-cpu") {
      ++i;
      continue;
    }
    argv.push_back(machine.qemu[i]);
  }
  argv.insert(argv.end(), {"-accel", accel});
  if (accel == "kvm") argv.insert(argv.end(), {"-cpu", "host"});
  argv.insert(argv.end(), {"-m", "1024", "-smp", "2", "-display", "none", "-nodefaults", "-no-reboot",
                           "-serial", "file:" + console_path, "-kernel", files.kernel, "-initrd",
                           files.initrd, "-append",
                           files.cmdline + " console=" + machine.console + " amibake.ebs=" + ebs});
  int n = 0;
  for (const auto& d : disks) {
    std::string id = "disk" + std::to_string(n++);
    argv.insert(argv.end(), {"-drive", "file=" + d.file + ",if=none,id=" + id + ",format=raw,discard=unmap",
                             "-device", "nvme,drive=" + id + ",serial=" + d.serial});
  }
  return argv;
}

Result<QemuRun> boot_qemu(const std::vector<Disk>& disks, const BootFiles& files,
                          const std::string& console_path, const std::string& wanted,
                          int timeout_seconds) {
  AMIBAKE_ASSIGN(auto machine, machine_for(files.architecture));
  std::string kernel_arch = kernel_architecture(files.kernel);
  if (!kernel_arch.empty() && kernel_arch != machine.architecture) {
    return make_error("verify --boot: the AMI is " + machine.architecture + " but its kernel (" + files.kernel +
                          ") is an " + kernel_arch + " kernel",
                      "register the AMI with the architecture of the image it carries");
  }
  auto accels = accelerators(wanted, machine);
  for (size_t i = 0; i < accels.size(); ++i) {
    const std::string& accel = accels[i];
    auto argv = qemu_argv(disks, files, console_path, accel, machine);
    std::string qemu_log = console_path + ".qemu.log";
    log::info("booting " + machine.architecture + " under QEMU (" + machine.qemu.front() + ", " + accel + ")");
    auto started = std::chrono::steady_clock::now();
    AMIBAKE_ASSIGN(pid_t pid, spawn(argv, qemu_log, machine.package));
    int status = 0;
    bool last = i + 1 == accels.size();
    Outcome outcome = watch(pid, console_path, timeout_seconds, !last, &status);
    QemuRun run;
    run.accel = accel;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    run.console = read_file(console_path).value_or("");
    if (outcome == Outcome::kNoOutput) {
      log::warn("QEMU (" + accel + "): no kernel output after " + std::to_string(kNoOutputSeconds) +
                " s; trying " + accels[i + 1]);
      continue;
    }
    if (outcome == Outcome::kTimedOut) {
      return make_error("QEMU (" + accel + "): no power-off after " + std::to_string(timeout_seconds) +
                            " s; last console lines:\n" + tail_lines(run.console, 30),
                        "raise --timeout, or see the whole console in " + console_path);
    }
    if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && !last) {
      // /dev/kvm can be present yet unusable (QEMU aborts at once, e.g. "failed to set
      // MSR 0x10a" under some nested hypervisors): the next accelerator gets its turn.
      log::warn("QEMU (" + accel + ") failed: " +
                tail_lines(read_file(qemu_log).value_or(""), 2) + "; trying " + accels[i + 1]);
      continue;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::string qlog = read_file(qemu_log).value_or("");
      return make_error("QEMU (" + accel + "): exited with status " + std::to_string(WEXITSTATUS(status)) +
                            ": " + tail_lines(qlog, 10),
                        "check the QEMU command line in the log above");
    }
    return run;
  }
  return make_error("QEMU: no accelerator booted the kernel", "set AMIBAKE_QEMU_ACCEL=tcg");
}

}  // namespace amibake::verify
