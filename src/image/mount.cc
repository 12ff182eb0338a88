// Mounting untrusted filesystem images.
//
// The filesystem type comes from a libblkid probe of the device (the same safe probe
// datavol uses), not from mount(8)'s guessing: an ambiguous device is refused. XFS refuses
// to mount a second filesystem with the UUID of one already mounted, and a build host made
// from the same AMI as the image has exactly that, hence "nouuid". nodev and nosuid keep
// device nodes and set-id binaries in the image from meaning anything on the host.
//
// Unmounting: a short-lived busy state is normal (udev or blkid briefly opening the device),
// so EBUSY is retried for about a second. A mount that stays busy is detached lazily so the
// folder is free, but the caller learns of it: a lazily detached filesystem may still be
// writing to the image, so hashing it now would be wrong.
#include "image/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/files.h"
#include "base/log.h"
#include "image/partition.h"

namespace amibake::image {

Result<std::string> detect_fstype(const std::string& device) {
  AMIBAKE_ASSIGN(FilesystemInfo info, probe_filesystem(device, 0, 0));
  return info.type;
}

Result<Mount> Mount::mount_device(const std::string& device, const MountOptions& options) {
  std::string fstype = options.fstype;
  if (fstype.empty()) {
    AMIBAKE_ASSIGN(fstype, detect_fstype(device));
    if (fstype.empty())
      return make_error(device + ": no filesystem found",
                        "is this the root partition? check the partition table");
  }
  std::string data = options.data;
  if (fstype == "xfs" && data.find("nouuid") == std::string::npos)
    data = data.empty() ? "nouuid" : data + ",nouuid";

  std::string target = options.target;
  bool remove_target = false;
  if (target.empty()) {
    AMIBAKE_ASSIGN(target, make_temp_dir("amibake-mnt"));
    remove_target = true;
  }
  unsigned long flags = MS_NODEV | MS_NOSUID | (options.read_only ? MS_RDONLY : 0);
  if (::mount(device.c_str(), target.c_str(), fstype.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    int err = errno;
    if (remove_target) ::rmdir(target.c_str());
    return make_error(device + ": mount " + fstype + " at " + target + ": " + std::strerror(err),
                      err == EPERM ? "mounting needs root (CAP_SYS_ADMIN)"
                                   : "check `dmesg` for the filesystem's own message");
  }
  return Mount(device, std::move(target), std::move(fstype), remove_target);
}

Mount::Mount(Mount&& other) noexcept
    : device_(std::move(other.device_)),
      target_(std::move(other.target_)),
      fstype_(std::move(other.fstype_)),
      remove_target_(other.remove_target_) {
  other.target_.clear();
}

Mount& Mount::operator=(Mount&& other) noexcept {
  if (this != &other) {
    if (!target_.empty()) {
      Status s = unmount();
      if (!s) log::warn(s.error().message + ", ignoring");
    }
    device_ = std::move(other.device_);
    target_ = std::move(other.target_);
    fstype_ = std::move(other.fstype_);
    remove_target_ = other.remove_target_;
    other.target_.clear();
  }
  return *this;
}

Mount::~Mount() {
  if (target_.empty()) return;
  Status s = unmount();
  if (!s) log::warn(s.error().message + ", ignoring");
}

Status Mount::unmount() {
  if (target_.empty()) return ok();
  // syncfs first so write errors surface here rather than vanish in umount.
  int dirfd = ::open(target_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int sync_err = 0;
  if (dirfd >= 0) {
    if (::syncfs(dirfd) != 0) sync_err = errno;
    ::close(dirfd);
  }
  int err = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (::umount2(target_.c_str(), 0) == 0) {
      err = 0;
      break;
    }
    err = errno;
    if (err != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string target = std::move(target_);
  target_.clear();
  if (err == EBUSY) {
    ::umount2(target.c_str(), MNT_DETACH);
    if (remove_target_) ::rmdir(target.c_str());
    return make_error(
        target + ": unmount: busy; detached lazily, the filesystem may still be writing",
        "a process still uses files under " + target + " (see `fuser -vm`)");
  }
  if (remove_target_) ::rmdir(target.c_str());
  if (err != 0) return make_error(target + ": unmount: " + std::strerror(err));
  if (sync_err != 0) return make_error(target + ": syncfs: " + std::strerror(sync_err));
  return ok();
}

}  // namespace amibake::image
