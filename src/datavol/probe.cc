// Deciding whether a disk may be formatted.
//
// datavol runs unattended on every boot of every worker, so a false "blank" destroys
// somebody's data with nobody watching. mkfs tools are no safety net (mke2fs does not
// ask when stdin is not a terminal), so the decision is ours and errs towards refusing:
// the disk must pass every check below, and anything we cannot prove is a refusal.
//
//  1. kernel state: mounted (it or a partition; including the root filesystem), active
//     swap, holders (md, device-mapper, LVM, LUKS) and partitions, read from mountinfo,
//     /proc/swaps and sysfs. These catch disks in use whose signature we might not know.
//  2. libblkid's *safe* probe with both the superblock and partition-table chains, bad
//     checksums included (a damaged ext4 is still somebody's ext4). "Ambiguous" (two
//     signatures) is a refusal, as in systemd-makefs. One filesystem signature and no
//     partition table is kFilesystem: the caller mounts it when it is the configured type.
//  3. the first and last MiB must be all zero: libblkid only knows the formats it knows,
//     and random or encrypted bytes have no signature at all. Fresh EBS volumes and
//     instance-store disks read as zeros.
//
// The caller holds flock(LOCK_EX) on the whole disk (DiskLock) from before the first check
// until after mkfs, so udev's probing and other tools that honour the convention keep out.
#include "datavol/probe.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "base/files.h"

namespace amibake::datavol {
namespace {

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::string lookup(blkid_probe pr, const char* key) {
  const char* value = nullptr;
  if (blkid_probe_lookup_value(pr, key, &value, nullptr) == 0 && value) return value;
  return "";
}

ProbeResult refused(std::string reason) {
  ProbeResult r;
  r.verdict = Verdict::kRefused;
  r.reason = std::move(reason);
  return r;
}

// Check 1: what the kernel says about the disk and its partitions.
std::optional<std::string> kernel_refusal(const BlockInfo& info, const HostPaths& paths) {
  struct Node {
    std::string name;
    unsigned major, minor;
  };
  std::vector<Node> nodes = {{info.name, info.major, info.minor}};
  for (const auto& p : info.partitions) nodes.push_back({p.name, p.major, p.minor});
  for (const auto& m : read_mountinfo(paths.mountinfo)) {
    for (const auto& n : nodes) {
      bool same = (m.major == n.major && m.minor == n.minor) ||
                  (!m.source.empty() && m.source[0] == '/' &&
                   real_path(m.source) == real_path(paths.dev + "/" + n.name));
      if (!same) continue;
      if (m.mount_point == "/") return n.name + " holds the root filesystem";
      return n.name + " is mounted at " + m.mount_point;
    }
  }
  if (auto swaps = read_file(paths.swaps)) {
    for (const auto& s : parse_swaps(*swaps)) {
      for (const auto& n : nodes) {
        if (real_path(s) == real_path(paths.dev + "/" + n.name)) return n.name + " is active swap";
      }
    }
  }
  if (!info.holders.empty()) {
    std::string list;
    for (const auto& h : info.holders) list += (list.empty() ? "" : ", ") + h;
    return "is in use by " + list + " (holders: md, device-mapper, LVM or LUKS)";
  }
  if (!info.partitions.empty()) {
    return "has " + std::to_string(info.partitions.size()) + " partition(s) (" +
           info.partitions[0].name + "...)";
  }
  return std::nullopt;
}

}  // namespace

DiskLock& DiskLock::operator=(DiskLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DiskLock::~DiskLock() {
  if (fd_ >= 0) ::close(fd_);
}

Result<DiskLock> DiskLock::acquire(const std::string& path, int timeout_ms) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return make_error(path + ": open: " + std::strerror(errno), "run datavol as root");
  DiskLock lock(fd);
  for (int waited = 0;; waited += 100) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return lock;
    if (errno != EWOULDBLOCK || waited >= timeout_ms) {
      return make_error(path + ": lock: " + std::strerror(errno),
                        "another program holds the disk; try again when it is done");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<uint64_t> device_size(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return make_error(std::string("fstat: ") + std::strerror(errno));
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
    return make_error(std::string("BLKGETSIZE64: ") + std::strerror(errno));
  }
  return bytes;
}

Result<bool> ends_are_zero(int fd, uint64_t size_bytes, uint64_t window) {
  std::vector<char> buf(window);
  uint64_t offsets[2] = {0, size_bytes > window ? size_bytes - window : 0};
  for (uint64_t off : offsets) {
    uint64_t len = std::min<uint64_t>(window, size_bytes);
    uint64_t done = 0;
    while (done < len) {
      ssize_t got = ::pread(fd, buf.data() + done, len - done, static_cast<off_t>(off + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return make_error(std::string("read: ") + std::strerror(errno));
      if (got == 0) break;
      done += static_cast<uint64_t>(got);
    }
    for (uint64_t i = 0; i < done; ++i) {
      if (buf[i] != 0) return false;
    }
  }
  return true;
}

Result<ProbeResult> blkid_probe_fd(int fd, const std::string& path) {
  // Drop cached blocks so we see what a tool that wrote with O_DIRECT (mkfs.xfs) left.
  (void)::ioctl(fd, BLKFLSBUF, 0);
  blkid_probe pr = blkid_new_probe();
  if (!pr) return make_error(path + ": blkid: cannot allocate a probe");
  struct Guard {
    blkid_probe pr;
    ~Guard() { blkid_free_probe(pr); }
  } guard{pr};
  if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
    return make_error(path + ": blkid: cannot attach the device");
  }
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_UUID |
                                            BLKID_SUBLKS_LABEL | BLKID_SUBLKS_BADCSUM);
  blkid_probe_enable_partitions(pr, 1);
  blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
  int rc = blkid_do_safeprobe(pr);
  ProbeResult r;
  if (rc == -2) return refused("libblkid found more than one signature (ambiguous)");
  if (rc < 0) return make_error(path + ": blkid: probe failed", "check the device with `blkid -p`");
  if (rc == 1) {
    r.verdict = Verdict::kBlank;
    return r;
  }
  std::string type = lookup(pr, "TYPE"), pttype = lookup(pr, "PTTYPE");
  if (!pttype.empty()) return refused("has a " + pttype + " partition table");
  if (type.empty()) return refused("libblkid found a signature it could not name");
  r.verdict = Verdict::kFilesystem;
  r.fstype = type;
  r.uuid = lookup(pr, "UUID");
  r.label = lookup(pr, "LABEL");
  std::string usage = lookup(pr, "USAGE");
  if (usage != "filesystem") {
    // raid, crypto, other (swap, LVM): not something we mount.
    r.verdict = Verdict::kRefused;
    r.reason = "has a " + type + " signature (" + (usage.empty() ? "unknown use" : usage) + ")";
  }
  return r;
}

Result<ProbeResult> probe_device(const std::string& path, const std::string& name, int fd,
                                 const HostPaths& paths) {
  AMIBAKE_ASSIGN(BlockInfo info, read_block_info(paths.sys, name));
  AMIBAKE_ASSIGN(uint64_t size, device_size(fd));
  if (auto why = kernel_refusal(info, paths)) {
    ProbeResult r = refused(*why);
    r.size_bytes = size;
    return r;
  }
  AMIBAKE_ASSIGN(ProbeResult r, blkid_probe_fd(fd, path));
  r.size_bytes = size;
  if (r.verdict != Verdict::kBlank) return r;
  AMIBAKE_ASSIGN(bool zero, ends_are_zero(fd, size));
  if (!zero) {
    return refused("has non-zero bytes in its first or last MiB but no known signature");
  }
  return r;
}

}  // namespace amibake::datavol
