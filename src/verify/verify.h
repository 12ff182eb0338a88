// Booting a baked AMI under QEMU to prove /data is ready before docker and ECS start
// (issue 6). Works only against a local endpoint (awsemu): the AMI's snapshots are
// fetched through EBS direct and booted on this machine.
#pragma once

#include <cstdint>
#include <memory>
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
  // How the root snapshot becomes a disk: "lazy" serves it through a FUSE file that fetches
  // a block the first time the guest (or the kernel extraction) reads it; "full" downloads
  // every written block first; "auto" is lazy, or full when FUSE is unusable (saying so).
  std::string fetch = "auto";
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

// How the root disk was made, and what it cost.
struct RootFetch {
  std::string mode;   // "lazy" | "full" | "reused" (a complete disk file kept from before)
  std::string note;   // why "full" when lazy was possible to ask for (auto's fallback), or ""
  bool reused = false;              // lazy: a kept cache of an earlier boot, rebooted
  uint64_t blocks_listed = 0;       // written blocks of the root snapshot
  uint64_t blocks_fetched = 0;      // GetSnapshotBlock calls made for this boot
  uint64_t fetched_for_kernel = 0;  // lazy: of those, while taking the kernel out of /boot
  uint64_t blocks_written = 0;      // lazy: root blocks written (kept locally, never uploaded)
  uint64_t bytes_fetched = 0;
  double seconds = 0;  // making the disks and taking the kernel out, before QEMU starts
};

struct BootResult {
  std::string ami_id;
  std::string accel;            // what QEMU ran with
  double wall_seconds = 0;      // QEMU start to verdict
  std::vector<Disk> disks;
  nlohmann::json verdict;       // the guest's AMIBAKE-VERDICT object
  std::string console_path;     // the serial console log (kept only with keep_disks_dir)
  RootFetch root;
};

// True when `url`'s host is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_url(const std::string& url);

// The made-up Nitro serial of `device_name` on `ami_id`: "vol" + 17 hex digits, stable,
// so a reboot of kept disks shows the same serials.
std::string volume_serial(const std::string& ami_id, const std::string& device_name);

// The root disk served lazily (verify.cc): a LazyDisk over the root snapshot, its cache file
// the disk file kept in the folder. Lives until the guest has powered off.
class LazyRoot;

struct Disks {
  std::vector<Disk> disks;  // the root first; a lazy root's `file` is its FUSE file
  std::shared_ptr<LazyRoot> lazy_root;  // null unless the root is served lazily
  RootFetch root;
};

// Creates (or reuses, when present) one file per EBS mapping of `image` in `dir`: the root
// from its snapshot through EBS direct, as `fetch` says (BootOptions::fetch): served lazily
// over a sparse cache file, or downloaded in full into a sparse file; each blank volume a
// sparse file of its size. Mappings named in `without` are skipped. A lazily fetched root
// kept in `dir` (its cache file plus "<file>.lazy.json", the blocks it holds) is rebooted
// lazily again, or completed by download with fetch "full" or without FUSE.
Result<Disks> materialise_disks(aws::AwsClient& client, const aws::ec2::Image& image,
                                const std::string& dir, const std::vector<std::string>& without,
                                const std::string& fetch = "auto");

// Mounts the root partition of `root_disk` read-only and copies its newest /boot/vmlinuz-*
// and matching initrd into `dir`; the command line roots at the partition's PARTUUID.
// `lazy_disk`: root_disk is a LazyDisk's FUSE file (the loop device then uses direct I/O).
Result<BootFiles> extract_boot_files(const std::string& root_disk, const std::string& dir,
                                     bool lazy_disk = false);

// Returns the JSON of the first "AMIBAKE-VERDICT {json}" line in `console`.
Result<nlohmann::json> find_verdict(const std::string& console);

// True when /data was mounted and both docker and ecs saw it mounted when they started.
bool verdict_passes(const nlohmann::json& verdict);

// Describes the AMI, materialises its disks, boots them and reads the verdict.
Result<BootResult> boot_ami(aws::AwsClient& client, const BootOptions& options);

// The human report of a boot (see docs/verify.md).
std::string format_report(const BootResult& result);

}  // namespace amibake::verify
