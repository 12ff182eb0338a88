// Loop devices without losetup.
//
// The bake attaches a root partition of a sparse disk image as a loop device at the
// partition's byte offset with a size limit, mounts it, writes the payload and lets go.
// Doing this through ioctls rather than `losetup` gives a typed owner (LoopDevice) whose
// destructor always detaches, even on error paths and Ctrl-C unwinding.
//
// Attach: LOOP_CTL_GET_FREE hands out a free device number, but another process may grab
// the same device before we configure it; the configure ioctl then fails with EBUSY and we
// ask again. LOOP_CONFIGURE (5.8+) sets fd, offset, size limit and flags atomically; older
// kernels get LOOP_SET_FD followed by LOOP_SET_STATUS64.
//
// Direct I/O is switched on after the attach with LOOP_SET_DIRECT_IO rather than passed in
// LOOP_CONFIGURE's flags: the kernel refuses it for a file that cannot do O_DIRECT (or an
// offset not aligned to the backing device's logical block size), and as a separate step
// that refusal just leaves a working buffered device.
//
// Detach: with LO_FLAGS_AUTOCLEAR the kernel releases the device when its last opener closes
// it, so a crash between attach and detach leaks nothing once our fd is gone. detach() checks
// whether somebody else still holds the device exclusively (a mounted filesystem does): then
// the kernel finishes the detach later and we report it as an error, because the caller is
// usually about to read the backing file and must know it may not be final yet.
#include "image/loop.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/log.h"

namespace amibake::image {
namespace {

constexpr int kAttachAttempts = 32;

Error sys_error(const std::string& subject, const std::string& what, int err,
                std::string hint = {}) {
  return make_error(subject + ": " + what + ": " + std::strerror(err), std::move(hint));
}

// Opens /dev/loopN, waiting briefly for devtmpfs when the device was just created.
int open_loop_node(const std::string& path, int flags) {
  for (int i = 0; i < 50; ++i) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

loop_info64 make_info(const std::string& file, const LoopOptions& o) {
  loop_info64 info{};
  info.lo_offset = o.offset;
  info.lo_sizelimit = o.size_limit;
  info.lo_flags = (o.read_only ? LO_FLAGS_READ_ONLY : 0) | (o.autoclear ? LO_FLAGS_AUTOCLEAR : 0);
  std::strncpy(reinterpret_cast<char*>(info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
  return info;
}

// Configures loop device `loop_fd` with `file_fd`. Returns 0 or an errno value.
int configure(int loop_fd, int file_fd, const loop_info64& info) {
#ifdef LOOP_CONFIGURE
  loop_config config{};
  config.fd = static_cast<__u32>(file_fd);
  config.info = info;
  if (::ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0) return 0;
  if (errno != EINVAL && errno != ENOTTY) return errno;
#endif
  if (::ioctl(loop_fd, LOOP_SET_FD, file_fd) != 0) return errno;
  if (::ioctl(loop_fd, LOOP_SET_STATUS64, &info) != 0) {
    int err = errno;
    ::ioctl(loop_fd, LOOP_CLR_FD, 0);
    return err;
  }
  return 0;
}

}  // namespace

Result<LoopDevice> LoopDevice::attach(const std::string& file, const LoopOptions& options) {
  const int mode = options.read_only ? O_RDONLY : O_RDWR;
  int file_fd = ::open(file.c_str(), mode | O_CLOEXEC);
  if (file_fd < 0) return sys_error(file, "cannot open for loop attach", errno);
  int ctl = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    int err = errno;
    ::close(file_fd);
    return sys_error("/dev/loop-control", "cannot open", err,
                     "loop devices need root (CAP_SYS_ADMIN) and the loop module");
  }
  const loop_info64 info = make_info(file, options);
  Error last = make_error(
      file + ": no free loop device after " + std::to_string(kAttachAttempts) + " attempts",
      "release unused loop devices (losetup -a) and retry");
  for (int attempt = 0; attempt < kAttachAttempts; ++attempt) {
    int n = ::ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      last = sys_error("/dev/loop-control", "LOOP_CTL_GET_FREE", errno,
                       "release unused loop devices (losetup -a) and retry");
      break;
    }
    std::string path = "/dev/loop" + std::to_string(n);
    int loop_fd = open_loop_node(path, mode);
    if (loop_fd < 0) {
      last = sys_error(path, "cannot open", errno);
      continue;
    }
    int err = configure(loop_fd, file_fd, info);
    if (err == 0) {
      ::close(ctl);
      ::close(file_fd);  // the loop device holds its own reference to the file
      const bool direct_io = options.direct_io && ::ioctl(loop_fd, LOOP_SET_DIRECT_IO, 1UL) == 0;
      return LoopDevice(std::move(path), file, loop_fd, direct_io);
    }
    ::close(loop_fd);
    last = sys_error(path, "cannot attach \"" + file + "\"", err);
    if (err != EBUSY) break;  // somebody else took this one: ask for another
  }
  ::close(ctl);
  ::close(file_fd);
  return last;
}

LoopDevice::LoopDevice(LoopDevice&& other) noexcept
    : path_(std::move(other.path_)),
      file_(std::move(other.file_)),
      fd_(other.fd_),
      direct_io_(other.direct_io_) {
  other.fd_ = -1;
  other.path_.clear();
}

LoopDevice& LoopDevice::operator=(LoopDevice&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      Status s = detach();
      if (!s) log::warn(s.error().message + ", ignoring");
    }
    path_ = std::move(other.path_);
    file_ = std::move(other.file_);
    fd_ = other.fd_;
    direct_io_ = other.direct_io_;
    other.fd_ = -1;
    other.path_.clear();
  }
  return *this;
}

LoopDevice::~LoopDevice() {
  if (fd_ < 0) return;
  Status s = detach();
  if (!s) log::warn(s.error().message + ", ignoring");
}

Result<uint64_t> LoopDevice::size() const {
  uint64_t bytes = 0;
  if (::ioctl(fd_, BLKGETSIZE64, &bytes) != 0) return sys_error(path_, "BLKGETSIZE64", errno);
  return bytes;
}

Status LoopDevice::refresh_capacity() {
  if (::ioctl(fd_, LOOP_SET_CAPACITY, 0) != 0) return sys_error(path_, "LOOP_SET_CAPACITY", errno);
  return ok();
}

Status LoopDevice::flush() {
  if (::fsync(fd_) != 0) return sys_error(path_, "fsync", errno);
  if (::ioctl(fd_, BLKFLSBUF, 0) != 0) return sys_error(path_, "BLKFLSBUF", errno);
  return ok();
}

Status LoopDevice::detach() {
  if (fd_ < 0) return ok();
  Status flushed = flush();
  // A mounted filesystem claims the device exclusively; an O_EXCL open then fails with EBUSY.
  bool busy = false;
  int probe = ::open(path_.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (probe >= 0) {
    ::close(probe);
  } else {
    busy = errno == EBUSY;
  }
  int clr_err = ::ioctl(fd_, LOOP_CLR_FD, 0) == 0 ? 0 : errno;
  ::close(fd_);
  fd_ = -1;
  std::string path = std::move(path_);
  path_.clear();
  if (busy)
    return make_error(path + ": still in use (mounted?): the kernel detaches it when released",
                      "unmount it first; `losetup -a` shows what holds it");
  if (clr_err != 0 && clr_err != ENXIO) return sys_error(path, "LOOP_CLR_FD", clr_err);
  if (!flushed) return flushed.error();
  return ok();
}

}  // namespace amibake::image
