// Host checks: can this machine run a build method? Used by `amibake doctor`
// and, before anything is created, by `amibake build`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace amibake::bake {

// One line of `amibake doctor`.
struct Check {
  std::string name;    // "loop devices"
  bool ok = false;
  std::string detail;  // what was found: "/dev/loop-control usable"
  std::string fix;     // what to do when !ok; empty when ok
};

// Where the host checks look; tests point these at fake trees.
struct HostPaths {
  std::string loop_control = "/dev/loop-control";
  std::string proc_filesystems = "/proc/filesystems";
  std::string work_dir;  // where the sparse image is kept; default $XDG_CACHE_HOME/amibake
};

// Returns the default work folder: $AMIBAKE_WORK_DIR, else $XDG_CACHE_HOME/amibake,
// else ~/.cache/amibake.
std::string default_work_dir();

// Checks what the direct method needs locally: root, loop devices, XFS and ext4
// mountable (kernel support + mkfs/xfs tools present), free space in the work folder
// (`min_free_bytes`). Never changes anything.
std::vector<Check> check_direct_method_host(const HostPaths& paths, uint64_t min_free_bytes);

// Returns true when the kernel lists `fstype` in /proc/filesystems (or can load it:
// when a module for it exists under /lib/modules/<release>).
bool kernel_supports_filesystem(const std::string& proc_filesystems, const std::string& fstype);

}  // namespace amibake::bake
