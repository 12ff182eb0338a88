// RAID0 over instance-store disks.
//
// Instance-store disks survive a reboot but not a stop/start: after a reboot the array's
// members still carry md superblocks and are re-assembled (by udev's incremental assembly
// before we run, or by us), after a stop/start they are blank again and the array is
// created anew (and the fstab line re-pointed to the new filesystem's UUID by the caller).
// A mix of members and blank disks, or any other signature, is never "repaired": RAID0
// has no redundancy, so re-creating over a surviving member would only destroy what is
// left. Such a host is refused and left to a human.
#include "datavol/raid.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <set>
#include <thread>

#include "base/subprocess.h"
#include "datavol/discover.h"
#include "datavol/probe.h"

namespace amibake::datavol {
namespace {

std::string base_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// The md array whose slaves are exactly `names`, if one is running.
Result<std::string> find_running_array(const std::set<std::string>& names, const HostPaths& paths) {
  for (const auto& dev : list_block_devices(paths.sys)) {
    if (dev.rfind("md", 0) != 0) continue;
    std::vector<std::string> listed = list_directory(paths.sys + "/block/" + dev + "/slaves");
    std::set<std::string> slaves(listed.begin(), listed.end());
    if (slaves.empty()) continue;
    if (slaves == names) return dev;
    for (const auto& s : slaves) {
      if (names.count(s)) {
        return make_error(
            "instance store: " + s + " is a member of " + dev + ", which has other members too",
            "inspect with `mdadm --detail /dev/" + dev + "`", kExitRefused);
      }
    }
  }
  return std::string();
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : "";
}

Result<RaidResult> md_result(const std::string& md_path, const std::string& action) {
  // mdadm creates /dev/md/<name> (itself, or through udev): wait briefly for the link.
  std::string real;
  for (int i = 0; i < 50 && (real = real_path(md_path)).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (real.empty()) return make_error(md_path + ": did not appear after mdadm " + action);
  return RaidResult{real, base_name(real), action};
}

}  // namespace

std::string raid_array_name(const std::string& label) { return "datavol-" + label; }

Result<RaidResult> assemble_or_create_raid0(const std::vector<std::string>& disk_paths,
                                            const std::vector<std::string>& disk_names,
                                            const std::string& array_name, const HostPaths& paths) {
  std::set<std::string> names(disk_names.begin(), disk_names.end());
  AMIBAKE_ASSIGN(std::string running, find_running_array(names, paths));
  if (!running.empty()) return RaidResult{paths.dev + "/" + running, running, "running"};

  std::vector<DiskLock> locks;
  size_t members = 0, blank = 0;
  for (size_t i = 0; i < disk_paths.size(); ++i) {
    AMIBAKE_ASSIGN(DiskLock lock, DiskLock::acquire(disk_paths[i]));
    AMIBAKE_ASSIGN(ProbeResult p, probe_device(disk_paths[i], disk_names[i], lock.fd(), paths));
    if (p.verdict == Verdict::kBlank) {
      ++blank;
    } else if (p.fstype == "linux_raid_member") {
      ++members;
    } else {
      return make_error("instance store: " + disk_paths[i] + " " +
                            (p.reason.empty() ? "has a " + p.fstype + " filesystem" : p.reason),
                        "leave it alone or wipe it by hand if it holds nothing of value",
                        kExitRefused);
    }
    locks.push_back(std::move(lock));
  }
  std::string md_path = "/dev/md/" + array_name;
  if (members == disk_paths.size()) {
    std::vector<std::string> argv = {"mdadm", "--assemble", md_path};
    argv.insert(argv.end(), disk_paths.begin(), disk_paths.end());
    locks.clear();  // mdadm opens the members exclusively
    auto out = run_checked(argv);
    if (!out) return out.error().wrap("instance store: assemble " + md_path);
    return md_result(md_path, "assembled");
  }
  if (blank == disk_paths.size()) {
    std::vector<std::string> argv = {"mdadm",
                                     "--create",
                                     md_path,
                                     "--run",
                                     "--level=0",
                                     "--metadata=1.2",
                                     "--name=" + array_name,
                                     "--raid-devices=" + std::to_string(disk_paths.size())};
    argv.insert(argv.end(), disk_paths.begin(), disk_paths.end());
    auto out = run_checked(argv);
    if (!out) return out.error().wrap("instance store: create " + md_path);
    return md_result(md_path, "created");
  }
  return make_error(
      "instance store: " + std::to_string(members) + " of " + std::to_string(disk_paths.size()) +
          " disks are RAID members and the others are blank",
      "RAID0 cannot be repaired; inspect with `mdadm --examine` and wipe by hand", kExitRefused);
}

}  // namespace amibake::datavol
