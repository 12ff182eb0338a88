// Booting a baked AMI under QEMU to prove /data is ready before docker and ECS start
// (issue 6). Works only against a local endpoint (awsemu): the AMI's snapshots are
// fetched through EBS direct and booted on this machine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/ec2.h"
#include "base/result.h"

namespace amibake::verify {

struct BootOptions {
  std::string ami_id;
  // Where the disk files live. Empty = a temporary folder removed afterwards. When the
  // folder already holds the disks of this AMI (a previous --keep-disks run), they are
  // booted again as they are: a reboot of the same volumes.
  std::string keep_disks_dir;
  int timeout_seconds = 900;                 // QEMU run, kernel start to power-off
  std::vector<std::string> without_devices;  // mappings left unattached ("/dev/xvdb")
  std::string accel;                         // "kvm" | "tcg" | "" = AMIBAKE_QEMU_ACCEL, else auto
};

// One attached volume: a file booted as an NVMe disk whose serial is `serial`.
struct Disk {
  std::string device_name;  // the mapping's name: "/dev/xvda"
  std::string serial;       // made-up volume id without the dash, as Nitro shows it: "vol0…"
  std::string file;
  uint64_t size_bytes = 0;
  bool root = false;
  bool reused = false;  // the file was there already (reboot)
};

// The kernel, initramfs and command line taken from the root filesystem itself, and the
// AMI's architecture (which QEMU machine boots them).
struct BootFiles {
  std::string kernel, initrd, cmdline;
  std::string architecture = "x86_64";
};

struct BootResult {
  std::string ami_id;
  std::string accel;            // what QEMU ran with
  double wall_seconds = 0;      // QEMU start to verdict
  std::vector<Disk> disks;
  nlohmann::json verdict;       // the guest's AMIBAKE-VERDICT object
  std::string console_path;     // the serial console log (kept only with keep_disks_dir)
};

// True when `url`'s host is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_url(const std::string& url);

// The made-up Nitro serial of `device_name` on `ami_id`: "vol" + 17 hex digits, stable,
// so a reboot of kept disks shows the same serials.
std::string volume_serial(const std::string& ami_id, const std::string& device_name);

// Creates (or reuses, when present) one file per EBS mapping of `image` in `dir`: the root
// downloaded from its snapshot through EBS direct into a sparse file, each blank volume a
// sparse file of its size. Mappings named in `without` are skipped.
Result<std::vector<Disk>> materialise_disks(aws::AwsClient& client, const aws::ec2::Image& image,
                                            const std::string& dir,
                                            const std::vector<std::string>& without);

// Mounts the root partition of `root_disk` read-only and copies its newest /boot/vmlinuz-*
// and matching initrd into `dir`; the command line roots at the partition's PARTUUID.
Result<BootFiles> extract_boot_files(const std::string& root_disk, const std::string& dir);

// Returns the JSON of the first "AMIBAKE-VERDICT {json}" line in `console`.
Result<nlohmann::json> find_verdict(const std::string& console);

// True when /data was mounted and both docker and ecs saw it mounted when they started.
bool verdict_passes(const nlohmann::json& verdict);

// Describes the AMI, materialises its disks, boots them and reads the verdict.
Result<BootResult> boot_ami(aws::AwsClient& client, const BootOptions& options);

// The human report of a boot (see docs/verify.md).
std::string format_report(const BootResult& result);

}  // namespace amibake::verify
