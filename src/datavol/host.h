// The host as datavol sees it: every path it reads or writes, redirectable so tests run
// against a fake tree and never touch the machine's own /etc, /sys or /dev; plus small
// readers for sysfs and /proc/self/mountinfo.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::datavol {

struct HostPaths {
  std::string dev = "/dev";
  std::string sys = "/sys";
  std::string mountinfo = "/proc/self/mountinfo";
  std::string swaps = "/proc/swaps";
  std::string fstab = "/etc/fstab";
  std::string passwd = "/etc/passwd";
  std::string group = "/etc/group";
  std::string run_dir = "/run/datavol";  // lock and status.json
};

// One line of mountinfo, unescaped.
struct MountEntry {
  unsigned major = 0, minor = 0;
  std::string mount_point;
  std::string fstype;
  std::string source;
};

// Parses /proc/self/mountinfo text. Malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(const std::string& text);

// Reads and parses the file at `path` (missing file: empty list).
std::vector<MountEntry> read_mountinfo(const std::string& path);

// Device paths listed in /proc/swaps text (header skipped).
std::vector<std::string> parse_swaps(const std::string& text);

// What sysfs says about one whole-disk block device <sys>/block/<name>.
struct BlockInfo {
  std::string name;
  unsigned major = 0, minor = 0;
  uint64_t size_bytes = 0;
  struct Partition {
    std::string name;
    unsigned major = 0, minor = 0;
  };
  std::vector<Partition> partitions;
  std::vector<std::string> holders;  // of the disk and of its partitions
};

// Lists the names in <sys>/block (whole disks), sorted.
std::vector<std::string> list_block_devices(const std::string& sys);

// Reads <sys>/block/<name>: dev, size, partitions and holders. Fails when absent.
Result<BlockInfo> read_block_info(const std::string& sys, const std::string& name);

// Names in folder `path` (no "." or ".."), sorted; empty when unreadable.
std::vector<std::string> list_directory(const std::string& path);

// Returns the trimmed content of a small sysfs attribute file, or "" when unreadable.
std::string read_attribute(const std::string& path);

// Splits "maj:min".
bool parse_dev_numbers(const std::string& text, unsigned* major, unsigned* minor);

}  // namespace amibake::datavol
