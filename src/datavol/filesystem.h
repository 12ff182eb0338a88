// Acting on a device datavol has decided about: mkfs, mount, grow, fstab, owner/mode.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "datavol/config.h"

namespace amibake::datavol {

// The fixed mkfs argument list for `volume` on `device` (no shell is involved):
//   xfs:  mkfs.xfs -K -L <label> [mkfs_options...] <device>      (-K: no discard)
//   ext4: mkfs.ext4 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 -L <label> ... <device>
// Neither gets a force flag: mkfs.xfs then refuses an existing signature on its own, a
// second (weaker) safety net behind probe_device.
std::vector<std::string> mkfs_argv(const VolumeConfig& volume, const std::string& device);

// Runs mkfs_argv; errors carry mkfs's last stderr line.
Status make_filesystem(const VolumeConfig& volume, const std::string& device);

// Filesystem size in bytes from the first 4 KiB of an xfs or ext2/3/4 device.
// Fails for other types or a superblock without the expected magic.
Result<uint64_t> filesystem_size(std::string_view first_4k, const std::string& fstype);

// The size of the filesystem mounted at `mount_point` from `device`, as the kernel sees it
// now. xfs keeps its metadata in its own buffer cache and may not have written a grown
// superblock back yet, so for xfs this asks the filesystem (xfs_info, i.e. the
// FSGEOMETRY ioctl); ext4's metadata lives in the block device's page cache, so a buffered
// read of its superblock is current.
Result<uint64_t> read_filesystem_size(const std::string& device, const std::string& fstype,
                                      const std::string& mount_point);

// Data size in bytes from `xfs_info` output ("data = bsize=4096 blocks=262144, ...").
Result<uint64_t> parse_xfs_info_size(const std::string& xfs_info_output);

// Growing only pays when the device outgrew the filesystem by more than this: xfs and ext4
// leave a tail smaller than an allocation group / block group unused, so an exact compare
// would "grow" at every boot.
inline constexpr uint64_t kGrowThresholdBytes = 16ull << 20;
inline bool needs_grow(uint64_t device_bytes, uint64_t fs_bytes) {
  return device_bytes > fs_bytes + kGrowThresholdBytes;
}

// Grows a mounted filesystem to its device: xfs_growfs <mount> or resize2fs <device>.
Status grow_filesystem(const std::string& fstype, const std::string& device,
                       const std::string& mount_point);

// mkdir -p `mount_point`, then mount(8) -t fstype -o options device mount_point.
Status mount_filesystem(const std::string& device, const std::string& mount_point,
                        const std::string& fstype, const std::string& options);

// The fstab line datavol owns for a volume:
//   UUID=<uuid> <mount> <fstype> <options>,nofail,x-systemd.device-timeout=<T>s 0 2
// where T is the volume's wait_seconds (at least 10).
std::string fstab_line(const std::string& uuid, const std::string& mount_point,
                       const std::string& fstype, const std::string& options,
                       int device_timeout_seconds = 60);

enum class FstabChange { kUnchanged, kAdded, kReplaced, kForeignEntry };

// Computes the new fstab text with `line` for `mount_point`. datavol's entries sit under a
// "# datavol: <mount>" marker line; only that entry is ever replaced. A line for the same
// mount point written by someone else is left alone (kForeignEntry, text unchanged).
// Every other line is kept byte for byte.
FstabChange update_fstab_text(const std::string& text, const std::string& mount_point,
                              const std::string& line, std::string* out);

// Applies update_fstab_text to the file (atomic rewrite, mode kept; a missing file is
// created 0644). Returns what changed.
Result<FstabChange> update_fstab(const std::string& path, const std::string& mount_point,
                                 const std::string& line);

// Resolves "user", "user:group", "uid:gid" through passwd/group files (not NSS: the
// binary is static). Fails for unknown names.
Result<std::pair<uid_t, gid_t>> resolve_owner(const std::string& owner, const std::string& passwd,
                                              const std::string& group);

// resolve_owner on the text of a passwd and a group file (the bake reads them from an
// image without following links out of it). A name that is not there fails with
// "no such user in <passwd_origin>" or "no such group in <group_origin>"; numbers are
// taken as given. `group_text` is read only for "user:group".
Result<std::pair<uid_t, gid_t>> resolve_owner_text(const std::string& owner,
                                                   const std::string& passwd_text,
                                                   const std::string& group_text,
                                                   const std::string& passwd_origin,
                                                   const std::string& group_origin);

// chown/chmod the mount point root when configured and different. Returns true if it changed.
Result<bool> apply_owner_mode(const std::string& mount_point, const std::string& owner,
                              std::optional<mode_t> mode, const std::string& passwd,
                              const std::string& group);

}  // namespace amibake::datavol
