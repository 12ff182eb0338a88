// The safety decision: is this block device provably blank, does it already hold the
// filesystem we want, or must it be left alone?
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "datavol/host.h"

namespace amibake::datavol {

enum class Verdict {
  kBlank,       // no signature, no partitions, no holders, zeros at both ends: may be formatted
  kFilesystem,  // exactly one filesystem signature, no partition table: fstype/uuid filled in
  kRefused,     // anything else: reason says why; never touch it
};

struct ProbeResult {
  Verdict verdict = Verdict::kRefused;
  std::string
      fstype;  // "xfs", "ext4", "linux_raid_member", ... (kFilesystem, and kRefused when known)
  std::string uuid;
  std::string label;
  std::string reason;  // kRefused: "has a gpt partition table", "is mounted at /data", ...
  uint64_t size_bytes = 0;
};

// A whole-disk device opened and locked with flock(LOCK_EX), the convention systemd and
// udev use ("don't probe or change this disk while I decide"). Closing releases it.
class DiskLock {
 public:
  DiskLock() = default;
  DiskLock(DiskLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DiskLock& operator=(DiskLock&& other) noexcept;
  ~DiskLock();
  int fd() const { return fd_; }

  // Opens `path` read-only and takes the lock, retrying for up to `timeout_ms` while
  // another process (udev) holds it.
  static Result<DiskLock> acquire(const std::string& path, int timeout_ms = 10000);

 private:
  explicit DiskLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Runs every check, in this order, and stops at the first refusal:
//   the device or a partition of it is mounted (and whether it holds "/"), is swap,
//   has holders (md, dm, LVM), has partitions in sysfs, libblkid's safe probe with
//   superblocks (bad checksums included) and partition tables finds anything or is
//   ambiguous, or its first or last MiB holds a non-zero byte.
// `fd` is the locked whole-disk descriptor; `name` its <sys>/block name.
Result<ProbeResult> probe_device(const std::string& path, const std::string& name, int fd,
                                 const HostPaths& paths);

// libblkid's safe probe alone (used again after mkfs to learn the new UUID).
Result<ProbeResult> blkid_probe_fd(int fd, const std::string& path);

// True when the first and last `window` bytes of the device behind `fd` are all zero.
Result<bool> ends_are_zero(int fd, uint64_t size_bytes, uint64_t window = 1 << 20);

// The device size in bytes (BLKGETSIZE64), or the file size for a regular file.
Result<uint64_t> device_size(int fd);

}  // namespace amibake::datavol
