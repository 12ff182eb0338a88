// datavol's configuration: one [[volume]] table per data volume (datavol.toml).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::datavol {

inline constexpr const char* kDefaultConfigPath = "/etc/datavol/datavol.toml";

// Exit code for "refused for safety" (also used when discovery refuses to guess, and for
// a config whose mount point would cover a system directory).
inline constexpr int kExitRefused = 3;

// How a volume is found. Exactly one of the three is set.
enum class FindBy { kDevice, kVolumeId, kInstanceStore };
enum class InstanceStoreMode { kRaid0, kEach };

struct VolumeConfig {
  FindBy find_by = FindBy::kDevice;
  std::string device;     // mapping name ("xvdb", "/dev/sdf") or a device path used as given
  std::string volume_id;  // "vol-0abc..."
  InstanceStoreMode instance_store = InstanceStoreMode::kRaid0;
  std::string mount = "/data";
  std::string filesystem = "xfs";         // "xfs" or "ext4"
  std::string label;                      // empty: derived from the mount point
  std::vector<std::string> mkfs_options;  // extra mkfs arguments, passed as given (no shell)
  std::string mount_options = "defaults,noatime";
  std::string owner;           // "user", "user:group", "uid:gid"; empty: leave alone
  std::optional<mode_t> mode;  // permission bits of the mount point root
  int wait_seconds = 60;
  bool grow = true;
  std::vector<std::string> required_by = {"docker", "containerd", "ecs"};

  // "device xvdb", "volume vol-0abc", "instance store raid0": for log lines.
  std::string describe() const;
  // The label to pass to mkfs: `label`, or the mount point's last component cut to the
  // filesystem's limit (xfs 12, ext4 16), "data" for "/".
  std::string effective_label() const;
};

struct Config {
  std::vector<VolumeConfig> volumes;
};

// Checks that `path` is a mount point a data volume may take: absolute and normalised
// (no "", ".", ".." or "//" components, no trailing "/"), not "/", and neither a system
// directory (/bin, /boot, /dev, /etc, /lib, /lib32, /lib64, /libx32, /proc, /root, /run,
// /sbin, /sys, /usr, /var) nor below one of those the system owns whole (/bin, /boot,
// /dev, /etc, /lib*, /proc, /run, /sbin, /sys, /usr). Below /var (/var/lib/docker) and
// below /root is allowed. The error's message says why, without the path's owner
// context (callers prefix it); its code is 2.
// One rule for the recipe (before a build) and datavol (at boot, defence in depth).
Status check_mount_point(const std::string& path);

// Parses TOML text. Errors name `origin` (a path) and the offending key, with a hint.
Result<Config> parse_config(const std::string& text, const std::string& origin);

// Reads and parses `path`.
Result<Config> load_config(const std::string& path);

// Renders `config` as datavol.toml text that parse_config reads back to the same
// Config (the bake writes the image's config with it).
std::string render_config(const Config& config);

// The union of every volume's required_by, in first-seen order, as unit names
// ("docker" -> "docker.service").
std::vector<std::string> required_units(const Config& config);

}  // namespace amibake::datavol
