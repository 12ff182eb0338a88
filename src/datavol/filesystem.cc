// mkfs, mount, grow, fstab and ownership: the actions taken after probe.cc has decided.
//
// Everything here runs other programs with a fixed argument list (run_process, no shell)
// or makes a single system call. The fstab is rewritten atomically (temp file + rename)
// and only datavol's own marked entry is ever replaced, so a second boot, a changed UUID
// (instance store re-created after stop/start) or a hand-written line elsewhere in the
// file all come out right.
#include "datavol/filesystem.h"

#include <algorithm>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/files.h"
#include "base/subprocess.h"

namespace amibake::datavol {
namespace {

uint32_t be32(std::string_view b, size_t o) {
  return (uint32_t(uint8_t(b[o])) << 24) | (uint32_t(uint8_t(b[o + 1])) << 16) |
         (uint32_t(uint8_t(b[o + 2])) << 8) | uint32_t(uint8_t(b[o + 3]));
}
uint64_t be64(std::string_view b, size_t o) {
  return (uint64_t(be32(b, o)) << 32) | be32(b, o + 4);
}
uint32_t le32(std::string_view b, size_t o) {
  return uint32_t(uint8_t(b[o])) | (uint32_t(uint8_t(b[o + 1])) << 8) |
         (uint32_t(uint8_t(b[o + 2])) << 16) | (uint32_t(uint8_t(b[o + 3])) << 24);
}

std::vector<std::string> split_fields(const std::string& line) {
  std::istringstream f(line);
  std::vector<std::string> out;
  std::string w;
  while (f >> w) out.push_back(w);
  return out;
}

// fstab escapes spaces in paths as \040.
std::string escape_fstab(const std::string& s) {
  std::string out;
  for (char c : s) out += c == ' ' ? "\\040" : c == '\t' ? "\\011" : std::string(1, c);
  return out;
}

bool is_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// The id field (3rd) of `name`'s line in passwd/group text, or the number `name` itself.
std::optional<unsigned> find_id(const std::string& text, const std::string& name) {
  if (is_digits(name)) return static_cast<unsigned>(std::strtoul(name.c_str(), nullptr, 10));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, ':')) f.push_back(part);
    if (f.size() > 2 && f[0] == name && is_digits(f[2])) {
      return static_cast<unsigned>(std::strtoul(f[2].c_str(), nullptr, 10));
    }
  }
  return std::nullopt;
}

// The primary group (4th field) of `user`'s passwd line; the last matching line wins.
std::optional<gid_t> find_primary_gid(const std::string& passwd_text, const std::string& user) {
  std::istringstream lines(passwd_text);
  std::string line;
  std::optional<gid_t> gid;
  while (std::getline(lines, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, ':')) f.push_back(part);
    if (f.size() > 3 && f[0] == user && is_digits(f[3]))
      gid = static_cast<gid_t>(std::strtoul(f[3].c_str(), nullptr, 10));
  }
  return gid;
}

// Looks `name` (or a number) up in a passwd/group style file; `id_field` is 2 for both.
Result<unsigned> lookup_id(const std::string& file, const std::string& name, const char* what) {
  if (is_digits(name)) return static_cast<unsigned>(std::strtoul(name.c_str(), nullptr, 10));
  auto text = read_file(file);
  if (!text) return text.error();
  if (auto id = find_id(*text, name)) return *id;
  return make_error(std::string(what) + " \"" + name + "\": not in " + file,
                    "create the " + std::string(what) + " in the image or use a numeric id");
}

}  // namespace

std::vector<std::string> mkfs_argv(const VolumeConfig& volume, const std::string& device) {
  std::vector<std::string> argv;
  if (volume.filesystem == "ext4") {
    argv = {"mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"};
  } else {
    argv = {"mkfs.xfs", "-q", "-K"};
  }
  argv.push_back("-L");
  argv.push_back(volume.effective_label());
  for (const auto& o : volume.mkfs_options) argv.push_back(o);
  argv.push_back(device);
  return argv;
}

Status make_filesystem(const VolumeConfig& volume, const std::string& device) {
  // stdin is an empty pipe: should mke2fs ever ask "Proceed anyway?", it reads EOF and stops.
  auto out = run_checked(mkfs_argv(volume, device));
  if (!out) return out.error().wrap(device);
  return ok();
}

Result<uint64_t> filesystem_size(std::string_view sb, const std::string& fstype) {
  if (sb.size() < 4096) return make_error("superblock: short read");
  if (fstype == "xfs") {
    if (sb.substr(0, 4) != "XFSB") return make_error("superblock: no xfs magic");
    return be64(sb, 8) * be32(sb, 4);  // sb_dblocks * sb_blocksize
  }
  if (fstype == "ext4" || fstype == "ext3" || fstype == "ext2") {
    std::string_view s = sb.substr(1024);
    if (uint8_t(s[0x38]) != 0x53 || uint8_t(s[0x39]) != 0xEF) {
      return make_error("superblock: no ext magic");
    }
    uint64_t blocks = le32(s, 0x4);
    if (le32(s, 0x60) & 0x80) blocks |= uint64_t(le32(s, 0x150)) << 32;  // INCOMPAT_64BIT
    return blocks * (1024ull << le32(s, 0x18));
  }
  return make_error("superblock: cannot size a " + fstype + " filesystem");
}

Result<uint64_t> parse_xfs_info_size(const std::string& out) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("data", 0) != 0) continue;
    size_t bsize = line.find("bsize="), blocks = line.find("blocks=");
    if (bsize == std::string::npos || blocks == std::string::npos) continue;
    uint64_t bs = std::strtoull(line.c_str() + bsize + 6, nullptr, 10);
    uint64_t n = std::strtoull(line.c_str() + blocks + 7, nullptr, 10);
    if (bs == 0 || n == 0) break;
    return bs * n;
  }
  return make_error("xfs_info: no data section in its output");
}

Result<uint64_t> read_filesystem_size(const std::string& device, const std::string& fstype,
                                      const std::string& mount_point) {
  if (fstype == "xfs") {
    AMIBAKE_ASSIGN(std::string out, run_checked({"xfs_info", mount_point}));
    auto size = parse_xfs_info_size(out);
    if (!size) return size.error().wrap(mount_point);
    return size;
  }
  int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(device + ": open: " + std::strerror(errno));
  std::string bytes(4096, '\0');
  ssize_t got = ::pread(fd, bytes.data(), bytes.size(), 0);
  int saved = errno;
  ::close(fd);
  if (got != 4096) return make_error(device + ": read superblock: " + std::strerror(saved));
  auto size = filesystem_size(bytes, fstype);
  if (!size) return size.error().wrap(device);
  return size;
}

Status grow_filesystem(const std::string& fstype, const std::string& device,
                       const std::string& mount_point) {
  std::vector<std::string> argv = fstype == "xfs"
                                      ? std::vector<std::string>{"xfs_growfs", "-d", mount_point}
                                      : std::vector<std::string>{"resize2fs", device};
  auto out = run_checked(argv);
  if (!out) return out.error().wrap(device);
  return ok();
}

Status mount_filesystem(const std::string& device, const std::string& mount_point,
                        const std::string& fstype, const std::string& options) {
  AMIBAKE_TRY(make_dirs(mount_point, 0755));
  auto out = run_checked({"mount", "-t", fstype, "-o", options, device, mount_point});
  if (!out) {
    Error e = out.error().wrap(device);
    e.hint = "see `dmesg` for the kernel's reason";
    return e;
  }
  return ok();
}

std::string fstab_line(const std::string& uuid, const std::string& mount_point,
                       const std::string& fstype, const std::string& options,
                       int device_timeout_seconds) {
  std::string opts = options;
  if (("," + opts + ",").find(",nofail,") == std::string::npos) opts += ",nofail";
  if (opts.find("x-systemd.device-timeout=") == std::string::npos) {
    // On later boots systemd waits this long for the disk before failing the mount (and
    // the units that require it): as long as datavol itself waits on the first boot, since
    // a slow attach is no more likely to end sooner then (10 s failed under load).
    // At least 10 s: 0 would mean "wait forever" to systemd.
    opts += ",x-systemd.device-timeout=" + std::to_string(std::max(device_timeout_seconds, 10)) + "s";
  }
  return "UUID=" + uuid + " " + escape_fstab(mount_point) + " " + fstype + " " + opts + " 0 2";
}

FstabChange update_fstab_text(const std::string& text, const std::string& mount_point,
                              const std::string& line, std::string* out) {
  const std::string marker = "# datavol: " + mount_point;
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  auto join = [&] {
    std::string s;
    for (const auto& x : lines) s += x + "\n";
    return s;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != marker) continue;
    if (i + 1 < lines.size() && lines[i + 1] == line) {
      *out = text;
      return FstabChange::kUnchanged;
    }
    if (i + 1 < lines.size() && !lines[i + 1].empty() && lines[i + 1][0] != '#') {
      lines[i + 1] = line;
    } else {
      lines.insert(lines.begin() + static_cast<long>(i) + 1, line);
    }
    *out = join();
    return FstabChange::kReplaced;
  }
  for (const auto& x : lines) {
    auto f = split_fields(x);
    if (f.size() >= 2 && f[0][0] != '#' && f[1] == escape_fstab(mount_point)) {
      *out = text;
      return FstabChange::kForeignEntry;
    }
  }
  lines.push_back(marker);
  lines.push_back(line);
  *out = join();
  return FstabChange::kAdded;
}

Result<FstabChange> update_fstab(const std::string& path, const std::string& mount_point,
                                 const std::string& line) {
  std::string text;
  mode_t mode = 0644;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    AMIBAKE_ASSIGN(text, read_file(path));
    mode = st.st_mode & 07777;
  }
  std::string updated;
  FstabChange change = update_fstab_text(text, mount_point, line, &updated);
  if (change == FstabChange::kAdded || change == FstabChange::kReplaced) {
    AMIBAKE_TRY(write_file_atomic(path, updated, mode));
  }
  return change;
}

Result<std::pair<uid_t, gid_t>> resolve_owner(const std::string& owner, const std::string& passwd,
                                              const std::string& group) {
  size_t colon = owner.find(':');
  std::string user = owner.substr(0, colon);
  AMIBAKE_ASSIGN(unsigned uid, lookup_id(passwd, user, "user"));
  gid_t gid;
  if (colon != std::string::npos) {
    AMIBAKE_ASSIGN(gid, lookup_id(group, owner.substr(colon + 1), "group"));
  } else if (is_digits(user)) {
    gid = uid;
  } else {
    // The user's primary group: field 4 of its passwd line.
    AMIBAKE_ASSIGN(std::string text, read_file(passwd));
    gid = find_primary_gid(text, user).value_or(uid);
  }
  return std::make_pair(static_cast<uid_t>(uid), gid);
}

Result<std::pair<uid_t, gid_t>> resolve_owner_text(const std::string& owner,
                                                   const std::string& passwd_text,
                                                   const std::string& group_text,
                                                   const std::string& passwd_origin,
                                                   const std::string& group_origin) {
  size_t colon = owner.find(':');
  std::string user = owner.substr(0, colon);
  auto uid = find_id(passwd_text, user);
  if (!uid) {
    return make_error("no such user in " + passwd_origin,
                      "create the user in the image or give a numeric uid:gid");
  }
  gid_t gid = *uid;
  if (colon != std::string::npos) {
    auto g = find_id(group_text, owner.substr(colon + 1));
    if (!g) {
      return make_error("no such group in " + group_origin,
                        "create the group in the image or give a numeric gid");
    }
    gid = *g;
  } else if (!is_digits(user)) {
    gid = find_primary_gid(passwd_text, user).value_or(*uid);
  }
  return std::make_pair(static_cast<uid_t>(*uid), gid);
}

Result<bool> apply_owner_mode(const std::string& mount_point, const std::string& owner,
                              std::optional<mode_t> mode, const std::string& passwd,
                              const std::string& group) {
  struct stat st;
  if (::stat(mount_point.c_str(), &st) != 0) {
    return make_error(mount_point + ": stat: " + std::strerror(errno));
  }
  bool changed = false;
  if (!owner.empty()) {
    AMIBAKE_ASSIGN(auto ids, resolve_owner(owner, passwd, group));
    if (st.st_uid != ids.first || st.st_gid != ids.second) {
      if (::chown(mount_point.c_str(), ids.first, ids.second) != 0) {
        return make_error(mount_point + ": chown " + owner + ": " + std::strerror(errno));
      }
      changed = true;
    }
  }
  if (mode && (st.st_mode & 07777) != *mode) {
    if (::chmod(mount_point.c_str(), *mode) != 0) {
      return make_error(mount_point + ": chmod: " + std::strerror(errno));
    }
    changed = true;
  }
  return changed;
}

}  // namespace amibake::datavol
