// Loop devices: a file (or a byte range of it) seen as a block device, released for sure.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace amibake::image {

struct LoopOptions {
  uint64_t offset = 0;      // byte offset into the file (a partition's start)
  uint64_t size_limit = 0;  // bytes visible from `offset`; 0 = to the end of the file
  bool read_only = false;
  bool autoclear = true;  // kernel detaches by itself once the last user closes it
  // Ask for direct I/O on the backing file (LOOP_SET_DIRECT_IO): no second page cache and
  // large asynchronous requests, which a FUSE-served file (LazyDisk) wants. When the file
  // cannot take it the device stays buffered; LoopDevice::direct_io() says which.
  bool direct_io = false;
};

// An attached loop device. Move-only; detaches on destruction (errors there are logged,
// never thrown). Needs CAP_SYS_ADMIN and /dev/loop-control.
class LoopDevice {
 public:
  // Attaches `file` to a free loop device with `options`. Uses LOOP_CTL_GET_FREE and
  // LOOP_CONFIGURE, falling back to LOOP_SET_FD + LOOP_SET_STATUS64 on kernels before 5.8;
  // retries when another process grabs the same free device first. With direct_io, then
  // tries LOOP_SET_DIRECT_IO; its failure is not an error (the device stays buffered).
  static Result<LoopDevice> attach(const std::string& file, const LoopOptions& options = {});

  LoopDevice(LoopDevice&& other) noexcept;
  LoopDevice& operator=(LoopDevice&& other) noexcept;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  ~LoopDevice();

  // Returns the device node, e.g. "/dev/loop3". Empty after detach().
  const std::string& path() const { return path_; }
  const std::string& backing_file() const { return file_; }
  // Returns true when the device does direct I/O on its backing file.
  bool direct_io() const { return direct_io_; }

  // Returns the device's current size in bytes (BLKGETSIZE64).
  Result<uint64_t> size() const;

  // Re-reads the backing file's size (LOOP_SET_CAPACITY, like `losetup -c`); call after the
  // file grew. With a size_limit the visible size stays limited.
  Status refresh_capacity();

  // Flushes the device's buffers to the backing file (fsync + BLKFLSBUF).
  Status flush();

  // Flushes and detaches now. When the device is still in use (mounted), the kernel keeps it
  // until its last user goes away (autoclear) and this returns an error saying so.
  Status detach();

 private:
  LoopDevice(std::string path, std::string file, int fd, bool direct_io)
      : path_(std::move(path)), file_(std::move(file)), fd_(fd), direct_io_(direct_io) {}
  std::string path_;
  std::string file_;
  int fd_ = -1;
  bool direct_io_ = false;
};

}  // namespace amibake::image
