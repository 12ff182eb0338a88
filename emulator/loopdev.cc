// Loop device setup with the kernel interface directly (no losetup): ask
// /dev/loop-control for a free device, then LOOP_CONFIGURE (Linux >= 5.8) or, on
// older kernels, LOOP_SET_FD + LOOP_SET_STATUS64. No autoclear: the device must
// outlive awsemu's file descriptor until DetachVolume, as an EBS attachment does.
// Another process may grab the same free device between GET_FREE and CONFIGURE
// (EBUSY); we then simply ask again.
#include "emulator/loopdev.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace amibake::emu {
namespace {

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

bool can_attach_loop() { return ::geteuid() == 0 && ::access("/dev/loop-control", F_OK) == 0; }

Result<std::string> attach_loop(const std::string& file) {
  Fd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (ctl.fd < 0) {
    return make_error(std::string("/dev/loop-control: open: ") + std::strerror(errno),
                      "run awsemu as root to attach volumes as loop devices");
  }
  Fd backing(::open(file.c_str(), O_RDWR | O_CLOEXEC));
  if (backing.fd < 0) return make_error(file + ": open: " + std::strerror(errno));
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ::ioctl(ctl.fd, LOOP_CTL_GET_FREE);
    if (n < 0) return make_error(std::string("loop: get free device: ") + std::strerror(errno));
    std::string dev = "/dev/loop" + std::to_string(n);
    Fd loop(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (loop.fd < 0) return make_error(dev + ": open: " + std::strerror(errno));
    struct loop_config config;
    std::memset(&config, 0, sizeof config);
    config.fd = static_cast<uint32_t>(backing.fd);
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), file.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(loop.fd, LOOP_CONFIGURE, &config) == 0) return dev;
    if (errno == EBUSY) continue;
    if (errno != EINVAL && errno != ENOTTY) {
      return make_error(dev + ": configure: " + std::strerror(errno));
    }
    // Old kernel without LOOP_CONFIGURE.
    if (::ioctl(loop.fd, LOOP_SET_FD, backing.fd) != 0) {
      if (errno == EBUSY) continue;
      return make_error(dev + ": set backing file: " + std::strerror(errno));
    }
    ::ioctl(loop.fd, LOOP_SET_STATUS64, &config.info);
    return dev;
  }
  return make_error("loop: no free loop device after 16 attempts",
                    "detach unused loop devices (losetup -D) and retry");
}

Status detach_loop(const std::string& device) {
  Fd loop(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (loop.fd < 0) return errno == ENOENT ? ok() : make_error(device + ": open: " + std::strerror(errno));
  if (::ioctl(loop.fd, LOOP_CLR_FD, 0) != 0 && errno != ENXIO) {
    return make_error(device + ": detach: " + std::strerror(errno),
                      "something still holds the device; unmount it first");
  }
  return ok();
}

std::string ebs_link_name(const std::string& volume_id) {
  std::string hex = volume_id.rfind("vol-", 0) == 0 ? volume_id.substr(4) : volume_id;
  return "nvme-Amazon_Elastic_Block_Store_vol" + hex;
}

}  // namespace amibake::emu
