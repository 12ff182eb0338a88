// Host checks: can this machine run a build method? Used by `amibake doctor`
// and, before anything is created, by `amibake build`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bake/recipe.h"
#include "base/result.h"

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

// Free space a direct build wants in its work folder: the fetched root blocks + headroom.
inline constexpr uint64_t kDirectMinFreeBytes = 4ull << 30;

// What `method` ("direct" or "chroot") needs on this host, checked before the first AWS
// call: root, loop devices, free space in `work_dir` (direct), and kernel support and
// mkfs for each filesystem the recipe's volumes use (the options check formats one).
// The error (exit code 2) lists each failed check with doctor's fix line.
Status check_build_host(const std::string& method, const Recipe& recipe,
                        const std::string& work_dir);

// Proves each volume's filesystem, mkfs_options, label and mount_options on this host
// with datavol's own mkfs argument list and mount call: a sparse scratch file in a
// temporary folder ($TMPDIR) is formatted, loop-attached, mounted and unmounted. Adds one problem
// per failing volume to `problems`, quoting the tool's message. Volumes with the same
// settings are checked once. Needs root and loop devices (check_build_host).
void check_volume_options(const Recipe& recipe, RecipeProblems& problems);

// Reads the recipe at `path` and runs every check that needs neither AWS nor the image
// (read_recipe, then check_volume_options where this host can run it: root and loop
// devices; otherwise `*skipped` says so). Errors carry exit code 2 and list every problem.
Result<Recipe> load_checked_recipe(const std::string& path, std::string* skipped);

}  // namespace amibake::bake
