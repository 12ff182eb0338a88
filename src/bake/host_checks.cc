// Host checks for `amibake doctor`. Each check reports what it found and, when
// it fails, the one thing to do about it. Nothing here changes the machine: a
// doctor that "fixes" things behind the user's back is not a doctor.
#include "bake/host_checks.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/filesystem.h"
#include "image/loop.h"

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

Status check_build_host(const std::string& method, const Recipe& recipe,
                        const std::string& work_dir) {
  HostPaths paths;
  paths.work_dir = work_dir;
  std::vector<Check> checks = {check_root(), check_loop(paths.loop_control)};
  if (method == "direct") {
    checks.push_back(
        check_free_space(work_dir.empty() ? default_work_dir() : work_dir, kDirectMinFreeBytes));
  }
  std::set<std::string> filesystems;
  for (const auto& v : recipe.volumes) filesystems.insert(v.datavol.filesystem);
  for (const auto& fs : filesystems) {
    if (fs == "xfs") checks.push_back(check_fs(paths, "xfs", "mkfs.xfs", "xfsprogs"));
    if (fs == "ext4") checks.push_back(check_fs(paths, "ext4", "mkfs.ext4", "e2fsprogs"));
  }
  std::string failed;
  for (const auto& c : checks) {
    if (!c.ok) failed += "\n  " + c.name + ": " + c.detail + " (" + c.fix + ")";
  }
  if (failed.empty()) return ok();
  return make_error(method + " method: this host cannot build:" + failed,
                    "nothing was created; `amibake doctor` shows every check", 2);
}

namespace {

// One scratch run: mkfs with datavol's argv, loop-attach, mount(8) with the options.
Status try_volume_options(const datavol::VolumeConfig& v, const std::string& dir) {
  // xfsprogs refuses filesystems under 300 MiB; sparse, so it costs almost nothing.
  constexpr off_t kScratchBytes = 512ll << 20;
  std::string file = dir + "/scratch.img";
  std::filesystem::remove(file);
  AMIBAKE_TRY(write_file_atomic(file, "", 0600));
  if (::truncate(file.c_str(), kScratchBytes) != 0) {
    return make_error(file + ": cannot size the scratch file");
  }
  if (auto made = datavol::make_filesystem(v, file); !made) {
    return made.error().wrap("mkfs_options");
  }
  AMIBAKE_ASSIGN(auto loop, image::LoopDevice::attach(file));
  std::string mnt = dir + "/mnt";
  if (auto mounted = datavol::mount_filesystem(loop.path(), mnt, v.filesystem, v.mount_options);
      !mounted) {
    return mounted.error().wrap("mount_options");
  }
  auto out = run_checked({"umount", mnt});
  if (!out) return out.error().wrap("scratch unmount");
  return ok();
}

}  // namespace

void check_volume_options(const Recipe& recipe, RecipeProblems& problems) {
  std::set<std::string> tried;
  for (size_t i = 0; i < recipe.volumes.size(); ++i) {
    const auto& d = recipe.volumes[i].datavol;
    if (d.filesystem != "xfs" && d.filesystem != "ext4") continue;  // a problem already
    std::string key = d.filesystem + "\n" + d.effective_label() + "\n" + d.mount_options;
    for (const auto& o : d.mkfs_options) key += "\n" + o;
    if (!tried.insert(key).second) continue;
    auto dir = make_temp_dir("amibake-options");
    if (!dir) {
      problems.add(0, "volume[" + std::to_string(i) + "]",
                   "options not checked: " + dir.error().message);
      continue;
    }
    Status s = try_volume_options(d, *dir);
    std::filesystem::remove_all(*dir);
    if (!s) {
      // "mkfs_options: mkfs.xfs ... failed: <tool's message>" names the key that failed.
      const std::string& m = s.error().message;
      size_t colon = m.find(": ");
      std::string key_name = colon == std::string::npos ? "filesystem" : m.substr(0, colon);
      std::string what = colon == std::string::npos ? m : m.substr(colon + 2);
      std::string full = "volume[" + std::to_string(i) + "]." + key_name;
      auto at = recipe.key_lines.find(full);
      problems.add(at == recipe.key_lines.end() ? 0 : at->second, full,
                   "a scratch " + d.filesystem + " with the recipe's settings failed: " + what);
    }
  }
}

Result<Recipe> load_checked_recipe(const std::string& path, std::string* skipped) {
  AMIBAKE_ASSIGN(std::string text, read_recipe_file(path));
  RecipeRead read = read_recipe(text, path);
  if (check_root().ok && check_loop(HostPaths{}.loop_control).ok) {
    check_volume_options(read.recipe, read.problems);
  } else if (skipped) {
    *skipped =
        "mkfs_options and mount_options were not tried on a scratch filesystem (that "
        "needs root and loop devices, as the build does)";
  }
  AMIBAKE_TRY(read.problems.to_status());
  return std::move(read.recipe);
}

}  // namespace amibake::bake
