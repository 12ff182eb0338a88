// Path resolution inside an untrusted image root (see payload.cc's essay): every lookup goes
// through openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV.
#include "image/in_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace amibake::image::detail {

constexpr uint64_t kResolveFlags = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// openat2 relative to `root_fd` as "/"; returns -1 with errno set.
int open_in_root(int root_fd, const std::string& rel, uint64_t flags, mode_t mode) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = kResolveFlags;
  const char* p = rel.empty() ? "." : rel.c_str();
  for (;;) {
    long fd = ::syscall(SYS_openat2, root_fd, p, &how, sizeof how);
    if (fd < 0 && errno == EAGAIN) continue;  // a concurrent rename raced the lookup; retry
    return static_cast<int>(fd);
  }
}

Result<Fd> open_root(const std::string& root) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_error(root + ": cannot open image root: " + std::strerror(errno));
  return Fd(fd);
}

// Splits an absolute image path into components, refusing "..", and dropping "." and "".
Result<std::vector<std::string>> split_image_path(const std::string& path) {
  if (path.empty() || path[0] != '/')
    return make_error("\"" + path + "\": image paths must be absolute");
  std::vector<std::string> parts;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(pos, slash - pos);
    if (part == "..") return make_error("\"" + path + "\": \"..\" is not allowed in image paths");
    if (!part.empty() && part != ".") parts.push_back(part);
    pos = slash + 1;
  }
  if (parts.empty()) return make_error("\"" + path + "\": names the image root, not a file");
  return parts;
}

std::string join(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += (i ? "/" : "") + parts[i];
  return out;
}

// Opens (creating as needed) the folder holding the last component of `parts`.
Result<Fd> open_parent_dir(int root_fd, const std::string& root,
                           const std::vector<std::string>& parts, mode_t mode, bool create) {
  Fd dir(open_in_root(root_fd, "", O_PATH | O_DIRECTORY));
  if (!dir.valid()) return make_error(root + ": cannot open image root: " + std::strerror(errno));
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string rel = join(parts, i + 1);
    int fd = open_in_root(root_fd, rel, O_PATH | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(dir.get(), parts[i].c_str(), mode) != 0 && errno != EEXIST)
        return make_error(root + ": /" + rel + ": cannot create folder: " + std::strerror(errno));
      fd = open_in_root(root_fd, rel, O_PATH | O_DIRECTORY);
    }
    if (fd < 0)
      return make_error(
          root + ": /" + rel + ": cannot open folder inside the image: " + std::strerror(errno),
          errno == EXDEV ? "the path leaves the image's filesystem" : std::string());
    dir = Fd(fd);
  }
  return dir;
}

}  // namespace amibake::image::detail
