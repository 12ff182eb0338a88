// Mounting a block device at a private temporary folder, released for sure.
#pragma once

#include <string>

#include "base/result.h"

namespace amibake::image {

struct MountOptions {
  std::string fstype;  // empty = probe the device with libblkid
  std::string data;    // extra filesystem options ("nouuid" is added for xfs anyway)
  bool read_only = false;
  std::string target;  // empty = a fresh folder from make_temp_dir("amibake-mnt"), removed after
};

// A mounted filesystem. Move-only; unmounts on destruction (falling back to a lazy unmount
// when busy; errors there are logged, never thrown). Mounts with nodev,nosuid: the image's
// content is untrusted.
class Mount {
 public:
  // Mounts `device` with `options`. XFS gets "nouuid" so an image whose UUID equals a
  // mounted filesystem's (the host's root is often made from the same AMI) still mounts.
  static Result<Mount> mount_device(const std::string& device, const MountOptions& options = {});

  Mount(Mount&& other) noexcept;
  Mount& operator=(Mount&& other) noexcept;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount();

  const std::string& path() const { return target_; }  // where it is mounted; empty once unmounted
  const std::string& fstype() const { return fstype_; }  // "xfs", "ext4"…
  const std::string& device() const { return device_; }

  // Syncs and unmounts, retrying briefly on EBUSY. If it stays busy, detaches lazily
  // (MNT_DETACH) and returns an error saying the filesystem may not be flushed yet.
  Status unmount();

 private:
  Mount(std::string device, std::string target, std::string fstype, bool remove_target)
      : device_(std::move(device)),
        target_(std::move(target)),
        fstype_(std::move(fstype)),
        remove_target_(remove_target) {}
  std::string device_;
  std::string target_;
  std::string fstype_;
  bool remove_target_ = false;
};

// Returns the filesystem type libblkid finds on `device` ("" when none); ambiguous
// signatures are an error.
Result<std::string> detect_fstype(const std::string& device);

}  // namespace amibake::image
