// Host checks for `amibake doctor`. Each check reports what it found and, when
// it fails, the one thing to do about it. Nothing here changes the machine: a
// doctor that "fixes" things behind the user's back is not a doctor.
#include "bake/host_checks.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "base/files.h"
#include "base/subprocess.h"

namespace amibake::bake {
namespace {

std::string human_bytes(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  return buf;
}

Check check_root() {
  bool root = ::geteuid() == 0;
  return {"root", root, root ? "running as root" : "running as uid " + std::to_string(::geteuid()),
          root ? "" : "run the direct method as root (it attaches loop devices and mounts)"};
}

Check check_loop(const std::string& loop_control) {
  int fd = ::open(loop_control.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return {"loop devices", false, loop_control + " not usable",
            "load the loop module (`modprobe loop`) or run where loop devices are allowed"};
  }
  ::close(fd);
  return {"loop devices", true, loop_control + " usable", ""};
}

Check check_fs(const HostPaths& p, const std::string& fstype, const std::string& tool,
               const std::string& package) {
  bool kernel = kernel_supports_filesystem(p.proc_filesystems, fstype);
  bool tools = program_exists(tool);
  std::string name = fstype + " mountable";
  if (kernel && tools) return {name, true, "kernel support and " + tool + " present", ""};
  if (!kernel) {
    return {name, false, "kernel has no " + fstype + " support",
            "load the module (`modprobe " + fstype + "`) or use a host whose kernel has it"};
  }
  return {name, false, tool + " not found", "install " + package};
}

Check check_free_space(const std::string& dir, uint64_t min_free) {
  std::string probe = dir;
  // The work folder may not exist yet: measure the nearest existing parent.
  struct statvfs st {};
  while (!probe.empty() && ::statvfs(probe.c_str(), &st) != 0) {
    size_t slash = probe.rfind('/');
    probe = slash == 0 ? "/" : (slash == std::string::npos ? "" : probe.substr(0, slash));
  }
  if (probe.empty()) return {"free disk", false, dir + ": cannot measure", "create " + dir};
  uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  bool ok = free_bytes >= min_free;
  return {"free disk", ok, human_bytes(free_bytes) + " free in " + dir,
          ok ? "" : "free at least " + human_bytes(min_free) + " there, or set AMIBAKE_WORK_DIR"};
}

}  // namespace

std::string default_work_dir() {
  std::string w = env_or("AMIBAKE_WORK_DIR");
  if (!w.empty()) return w;
  std::string cache = env_or("XDG_CACHE_HOME");
  if (!cache.empty()) return cache + "/amibake";
  return env_or("HOME", "/root") + "/.cache/amibake";
}

bool kernel_supports_filesystem(const std::string& proc_filesystems, const std::string& fstype) {
  auto content = read_file(proc_filesystems);
  if (content) {
    std::istringstream in(*content);
    std::string line;
    while (std::getline(in, line)) {
      // Lines look like "nodev\tproc" or "\txfs".
      size_t tab = line.rfind('\t');
      std::string name = tab == std::string::npos ? line : line.substr(tab + 1);
      if (name == fstype) return true;
    }
  }
  struct utsname u {};
  if (::uname(&u) != 0) return false;
  std::string dir = std::string("/lib/modules/") + u.release + "/kernel/fs/" + fstype;
  return ::access(dir.c_str(), F_OK) == 0;
}

std::vector<Check> check_direct_method_host(const HostPaths& paths, uint64_t min_free_bytes) {
  std::string work = paths.work_dir.empty() ? default_work_dir() : paths.work_dir;
  return {
      check_root(),
      check_loop(paths.loop_control),
      check_fs(paths, "xfs", "mkfs.xfs", "xfsprogs"),
      check_fs(paths, "ext4", "mkfs.ext4", "e2fsprogs"),
      check_free_space(work, min_free_bytes),
  };
}

}  // namespace amibake::bake
