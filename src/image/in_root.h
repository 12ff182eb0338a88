// Internal helpers of src/image: resolving paths inside an image root without escaping it.
// Not part of the library's interface; payload.cc and selinux.cc share them.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::image::detail {

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// openat2 of `rel` relative to `root_fd` taken as "/" (RESOLVE_IN_ROOT, no magic links, no
// mount crossing); "" opens the root itself. Returns -1 with errno set.
int open_in_root(int root_fd, const std::string& rel, uint64_t flags, mode_t mode = 0);

// Opens `root` as an O_PATH folder descriptor.
Result<Fd> open_root(const std::string& root);

// Splits an absolute image path into components, refusing "..", dropping "." and "".
Result<std::vector<std::string>> split_image_path(const std::string& path);

// Joins the first `count` components with "/" (no leading slash).
std::string join(const std::vector<std::string>& parts, size_t count);

// Opens (creating missing folders with `mode` when `create`) the folder holding the last
// component of `parts`, every step resolved inside the root.
Result<Fd> open_parent_dir(int root_fd, const std::string& root,
                           const std::vector<std::string>& parts, mode_t mode, bool create);

}  // namespace amibake::image::detail
