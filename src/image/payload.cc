// Looking inside a root filesystem image, and writing into it safely.
//
// The image's content is untrusted: a base image could hold `/etc/systemd/system` as a
// symlink to `/` or `../../../../home`, which on a build host mounted at /tmp/x would send
// our writes to the host. Every path is therefore resolved with openat2(RESOLVE_IN_ROOT):
// the kernel treats the mount folder as "/" for that lookup, so absolute and ".." symlinks
// resolve inside the image exactly as they would at boot, and nothing escapes. We also pass
// RESOLVE_NO_XDEV (nothing may be mounted inside the image; crossing into anything else is
// refused) and RESOLVE_NO_MAGICLINKS (no /proc-style links).
//
// Detection reads facts from the image itself, never from the build host:
//  - init: /sbin/init (resolved inside the image) being the same inode as
//    /usr/lib/systemd/systemd or /lib/systemd/systemd means systemd; a systemd binary with no
//    /sbin/init also means systemd (init= is then on the kernel command line); a real
//    /sbin/init binary with SysV folders (/etc/rc.d/init.d or /etc/init.d) and no systemd
//    means SysV; anything else is unknown, with the reason.
//  - architecture: the ELF header's e_machine of /usr/bin/bash (or /bin/bash, /bin/sh,
//    /usr/bin/sh, /sbin/init), read in the file's own byte order.
//  - SELinux: /etc/selinux/config's SELINUX= and SELINUXTYPE=, and whether that policy's
//    file_contexts exists (labelling new files needs it).
#include "image/payload.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "image/in_root.h"

namespace amibake::image {
namespace {

using detail::Fd;
using detail::join;
using detail::open_in_root;
using detail::open_parent_dir;
using detail::open_root;
using detail::split_image_path;

Status write_all(int fd, const std::string& content, const std::string& subject) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(subject + ": cannot write: " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return ok();
}

std::string temp_name(const std::string& base) {
  static int counter = 0;
  return ".amibake-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" + base;
}

// Returns the value of KEY=value lines (quotes stripped), or "" when absent.
std::string config_value(const std::string& text, const std::string& key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line = line.substr(start);
    if (line.compare(0, key.size() + 1, key + "=") != 0) continue;
    std::string v = line.substr(key.size() + 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == ' ' || v.back() == '\t')) v.pop_back();
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    return v;
  }
  return {};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Stat of a path resolved inside the image (following in-image symlinks).
bool stat_in_root(int root_fd, const std::string& rel, struct stat* st) {
  Fd fd(open_in_root(root_fd, rel, O_PATH));
  return fd.valid() && ::fstat(fd.get(), st) == 0;
}

bool is_dir_in_root(int root_fd, const std::string& rel) {
  struct stat st {};
  return stat_in_root(root_fd, rel, &st) && S_ISDIR(st.st_mode);
}

void detect_init(int root_fd, const std::string& root, ImageInfo& info) {
  struct stat systemd {
  }, init{};
  std::string systemd_path;
  for (const char* p : {"usr/lib/systemd/systemd", "lib/systemd/systemd"}) {
    if (stat_in_root(root_fd, p, &systemd) && S_ISREG(systemd.st_mode)) {
      systemd_path = std::string("/") + p;
      break;
    }
  }
  const bool has_init = stat_in_root(root_fd, "sbin/init", &init) && S_ISREG(init.st_mode);
  const bool sysv_dirs =
      is_dir_in_root(root_fd, "etc/rc.d/init.d") || is_dir_in_root(root_fd, "etc/init.d");
  if (!systemd_path.empty() && has_init && init.st_dev == systemd.st_dev &&
      init.st_ino == systemd.st_ino) {
    info.init = InitSystem::kSystemd;
    info.init_reason = "/sbin/init is " + systemd_path;
  } else if (!systemd_path.empty() && !has_init) {
    info.init = InitSystem::kSystemd;
    info.init_reason = systemd_path + " present and no /sbin/init";
  } else if (!systemd_path.empty()) {
    info.init_reason = "/sbin/init is not " + systemd_path + " although systemd is installed";
  } else if (has_init && sysv_dirs) {
    info.init = InitSystem::kSysV;
    info.init_reason = "/sbin/init is a binary, SysV init script folder present, no systemd";
  } else if (!has_init) {
    info.init_reason = "neither /sbin/init nor a systemd binary found";
  } else {
    info.init_reason = "/sbin/init present but neither systemd nor /etc/rc.d/init.d or /etc/init.d";
  }
}

void detect_arch(const std::string& root, ImageInfo& info) {
  for (const char* p : {"/usr/bin/bash", "/bin/bash", "/bin/sh", "/usr/bin/sh", "/sbin/init"}) {
    auto header = read_file_in_root(root, p, 64);
    if (!header || header->size() < 20 ||
        header->compare(0, 4,
                        "\x7f"
                        "ELF") != 0)
      continue;
    const auto* h = reinterpret_cast<const unsigned char*>(header->data());
    bool big_endian = h[5] == 2;
    int machine = big_endian ? (h[18] << 8) | h[19] : h[18] | (h[19] << 8);
    info.arch_source = p;
    info.elf_machine = machine;
    info.arch = machine == 62 ? Arch::kX86_64 : machine == 183 ? Arch::kArm64 : Arch::kUnknown;
    return;
  }
}

void detect_selinux(const std::string& root, ImageInfo& info) {
  auto config = read_file_in_root(root, "/etc/selinux/config");
  if (!config) return;
  SelinuxInfo& s = info.selinux;
  s.config_present = true;
  s.mode = lower(config_value(*config, "SELINUX"));
  s.policy_type = config_value(*config, "SELINUXTYPE");
  if (s.policy_type.empty() || s.policy_type.find('/') != std::string::npos) return;
  s.file_contexts_path = "/etc/selinux/" + s.policy_type + "/contexts/files/file_contexts";
  auto fd = open_root(root);
  struct stat st {};
  s.file_contexts_present =
      fd && stat_in_root(fd->get(), s.file_contexts_path.substr(1), &st) && S_ISREG(st.st_mode);
}

void detect_os(const std::string& root, ImageInfo& info) {
  for (const char* p : {"/etc/os-release", "/usr/lib/os-release"}) {
    auto text = read_file_in_root(root, p, 64 * 1024);
    if (!text) continue;
    info.os_id = config_value(*text, "ID");
    info.os_version_id = config_value(*text, "VERSION_ID");
    info.os_pretty_name = config_value(*text, "PRETTY_NAME");
    return;
  }
  auto release = read_file_in_root(root, "/etc/system-release", 4096);
  if (release) info.os_pretty_name = release->substr(0, release->find('\n'));
}

}  // namespace

const char* init_system_name(InitSystem init) {
  switch (init) {
    case InitSystem::kSystemd:
      return "systemd";
    case InitSystem::kSysV:
      return "sysv";
    case InitSystem::kUnknown:
      break;
  }
  return "unknown";
}

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kX86_64:
      return "x86_64";
    case Arch::kArm64:
      return "arm64";
    case Arch::kUnknown:
      break;
  }
  return "unknown";
}

Result<std::string> read_file_in_root(const std::string& root, const std::string& path,
                                      size_t max_bytes) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, split_image_path(path));
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  Fd fd(open_in_root(root_fd.get(), join(parts, parts.size()), O_RDONLY | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid())
    return make_error(root + ": " + path +
                      ": cannot open inside the image: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(root + ": " + path + ": not a regular file");
  std::string out(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    ssize_t n = ::read(fd.get(), out.data() + got, max_bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(root + ": " + path + ": cannot read: " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

Result<ImageInfo> detect_image(const std::string& root) {
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  ImageInfo info;
  detect_init(root_fd.get(), root, info);
  detect_arch(root, info);
  detect_selinux(root, info);
  detect_os(root, info);
  return info;
}

Status make_dirs_in_root(const std::string& root, const std::string& path, mode_t mode) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, split_image_path(path));
  parts.push_back(".");  // so open_parent_dir creates every real component
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  AMIBAKE_ASSIGN(Fd dir, open_parent_dir(root_fd.get(), root, parts, mode, /*create=*/true));
  return ok();
}

Status install_file(const std::string& root, const std::string& path, const std::string& content,
                    mode_t mode) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, split_image_path(path));
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  AMIBAKE_ASSIGN(Fd dir, open_parent_dir(root_fd.get(), root, parts, 0755, /*create=*/true));
  const std::string subject = root + ": " + path;
  const std::string tmp = temp_name(parts.back());
  Fd fd(
      ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return make_error(subject + ": cannot create: " + std::strerror(errno));
  Status s = write_all(fd.get(), content, subject);
  if (s && ::geteuid() == 0 && ::fchown(fd.get(), 0, 0) != 0)
    s = make_error(subject + ": cannot chown: " + std::strerror(errno));
  if (s && ::fchmod(fd.get(), mode) != 0)
    s = make_error(subject + ": cannot chmod: " + std::strerror(errno));
  if (s && ::fsync(fd.get()) != 0)
    s = make_error(subject + ": cannot fsync: " + std::strerror(errno));
  fd.reset();
  if (s && ::renameat(dir.get(), tmp.c_str(), dir.get(), parts.back().c_str()) != 0)
    s = make_error(subject + ": cannot rename into place: " + std::strerror(errno));
  if (!s) ::unlinkat(dir.get(), tmp.c_str(), 0);
  return s;
}

Status install_symlink(const std::string& root, const std::string& path,
                       const std::string& target) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, split_image_path(path));
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  AMIBAKE_ASSIGN(Fd dir, open_parent_dir(root_fd.get(), root, parts, 0755, /*create=*/true));
  const std::string subject = root + ": " + path;
  const std::string tmp = temp_name(parts.back());
  if (::symlinkat(target.c_str(), dir.get(), tmp.c_str()) != 0)
    return make_error(subject + ": cannot create symlink: " + std::strerror(errno));
  if ((::geteuid() == 0 && ::fchownat(dir.get(), tmp.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) ||
      ::renameat(dir.get(), tmp.c_str(), dir.get(), parts.back().c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return make_error(subject + ": cannot place symlink: " + std::strerror(err));
  }
  return ok();
}

}  // namespace amibake::image

namespace amibake::image {

bool exists_in_root(const std::string& root, const std::string& path) {
  auto parts = split_image_path(path);
  if (!parts) return false;
  auto root_fd = open_root(root);
  if (!root_fd) return false;
  auto dir = open_parent_dir(root_fd->get(), root, *parts, 0755, /*create=*/false);
  if (!dir) return false;
  if (parts->empty()) return true;
  struct stat st {};
  return ::fstatat(dir->get(), parts->back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Status remove_in_root(const std::string& root, const std::string& path) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, split_image_path(path));
  if (parts.empty()) return make_error(root + ": refusing to remove the image root");
  AMIBAKE_ASSIGN(Fd root_fd, open_root(root));
  auto dir = open_parent_dir(root_fd.get(), root, parts, 0755, /*create=*/false);
  if (!dir) return ok();  // the parent is absent, so is the file
  if (::unlinkat(dir->get(), parts.back().c_str(), 0) != 0 && errno != ENOENT) {
    return make_error(root + ": " + path + ": cannot remove: " + std::strerror(errno));
  }
  return ok();
}

}  // namespace amibake::image
