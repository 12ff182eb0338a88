// The setup pass: one flat list of named steps per device.
//
//   already mounted at our mount point? -> keep it (grow, owner, fstab): second boots end here
//   lock the whole disk
//   probe: refused -> stop; our filesystem -> mount it; blank -> mkfs, re-probe for the UUID
//   mount, grow, owner/mode, fstab line
//
// "Already has the filesystem we want" is success, so running at every boot is harmless
// (systemd-makefs' rule). A device mounted anywhere else, or our mount point holding some
// other device, is refused: we do not second-guess whoever mounted it.
#include "datavol/setup.h"

#include "base/log.h"
#include "datavol/filesystem.h"
#include "datavol/probe.h"
#include "datavol/raid.h"

namespace amibake::datavol {
namespace {

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

VolumeReport new_report(const VolumeConfig& v, const std::string& path = {},
                        const std::string& how = {}) {
  VolumeReport r;
  r.volume = v.describe();
  r.mount = v.mount;
  r.device = path;
  r.how = how;
  return r;
}

void add_action(VolumeReport& r, const std::string& a) {
  r.action += (r.action.empty() ? "" : ", ") + a;
}

VolumeReport refuse(VolumeReport r, const std::string& reason) {
  r.action = "refused";
  r.reason = reason;
  r.code = kExitRefused;
  log::error(r.volume + " (" + r.device + "): refused: " + reason + "; left untouched");
  return r;
}

VolumeReport fail(VolumeReport r, const Error& e) {
  r.action = "failed";
  r.reason = e.describe();
  r.code = e.code == kExitRefused ? kExitRefused : 1;
  if (r.code == kExitRefused) r.action = "refused";
  log::error(r.volume + (r.device.empty() ? "" : " (" + r.device + ")") + ": " + e.describe());
  return r;
}

// Grows the mounted filesystem when the device outgrew it.
Status grow_if_larger(const VolumeConfig& v, const std::string& path, VolumeReport& r) {
  AMIBAKE_ASSIGN(uint64_t fs_bytes, read_filesystem_size(path, r.filesystem, v.mount));
  if (!needs_grow(r.size_bytes, fs_bytes)) return ok();
  AMIBAKE_TRY(grow_filesystem(r.filesystem, path, v.mount));
  add_action(r, "grown");
  log::info(r.volume + " (" + path + "): grew " + r.filesystem + " from " + gib(fs_bytes) +
            " to the device's " + gib(r.size_bytes));
  return ok();
}

// The steps after the filesystem is mounted: grow, owner/mode, fstab.
Status finish_mounted(const VolumeConfig& v, const std::string& path, const HostPaths& paths,
                      VolumeReport& r) {
  if (v.grow) {
    // A filesystem that could not be grown is still a mounted, usable filesystem: say so
    // and carry on rather than hold docker back.
    if (auto st = grow_if_larger(v, path, r); !st) {
      log::warn(r.volume + " (" + path + "): grow: " + st.error().describe() + ", ignoring");
      add_action(r, "grow failed");
    }
  }
  AMIBAKE_ASSIGN(bool owner_changed,
                 apply_owner_mode(v.mount, v.owner, v.mode, paths.passwd, paths.group));
  if (owner_changed) add_action(r, "owner/mode set");
  if (r.uuid.empty()) return make_error(path + ": filesystem has no UUID; cannot write fstab");
  AMIBAKE_ASSIGN(FstabChange change,
                 update_fstab(paths.fstab, v.mount,
                              fstab_line(r.uuid, v.mount, r.filesystem, v.mount_options, v.wait_seconds)));
  if (change == FstabChange::kForeignEntry) {
    log::warn(r.volume + ": " + paths.fstab + " already has an entry for " + v.mount +
              " not written by datavol; leaving it, ignoring");
  } else if (change != FstabChange::kUnchanged) {
    add_action(r, "fstab updated");
  }
  return ok();
}

}  // namespace

VolumeReport setup_device(const VolumeConfig& v, const std::string& path, const std::string& name,
                          const std::string& how, const HostPaths& paths) {
  VolumeReport r = new_report(v, path, how);
  auto info = read_block_info(paths.sys, name);
  if (!info) return fail(r, info.error());
  r.size_bytes = info->size_bytes;

  for (const auto& m : read_mountinfo(paths.mountinfo)) {
    if (m.mount_point != v.mount) continue;
    if (m.major != info->major || m.minor != info->minor) {
      return refuse(r, v.mount + " already has " + m.source + " mounted on it");
    }
    // Second boot (or systemd mounted it from our fstab line): keep it.
    auto lock = DiskLock::acquire(path);
    if (!lock) return fail(r, lock.error());
    auto probed = blkid_probe_fd(lock->fd(), path);
    if (!probed) return fail(r, probed.error());
    r.filesystem = m.fstype;
    r.uuid = probed->uuid;
    r.mounted = true;
    add_action(r, "already mounted");
    if (auto st = finish_mounted(v, path, paths, r); !st) return fail(r, st.error());
    log::info(r.volume + " (" + path + "): " + r.action + " at " + v.mount);
    return r;
  }

  auto lock = DiskLock::acquire(path);
  if (!lock) return fail(r, lock.error());
  auto probed = probe_device(path, name, lock->fd(), paths);
  if (!probed) return fail(r, probed.error());
  switch (probed->verdict) {
    case Verdict::kRefused:
      return refuse(r, path + " " + probed->reason);
    case Verdict::kFilesystem:
      if (probed->fstype != v.filesystem) {
        return refuse(r, path + " has an existing " + probed->fstype +
                             " filesystem, but the config asks for " + v.filesystem);
      }
      r.filesystem = probed->fstype;
      r.uuid = probed->uuid;
      log::info(r.volume + " (" + path + ", " + how + "): existing " + r.filesystem + " " + r.uuid +
                ": not formatting");
      break;
    case Verdict::kBlank: {
      log::info(r.volume + " (" + path + ", " + how + "): blank " + gib(r.size_bytes) +
                ": formatting " + v.filesystem);
      if (auto st = make_filesystem(v, path); !st) return fail(r, st.error());
      auto again = blkid_probe_fd(lock->fd(), path);
      if (!again) return fail(r, again.error());
      if (again->verdict != Verdict::kFilesystem || again->fstype != v.filesystem) {
        return fail(r, make_error(path + ": after mkfs, probe says " +
                                  (again->fstype.empty() ? again->reason : again->fstype)));
      }
      r.filesystem = again->fstype;
      r.uuid = again->uuid;
      add_action(r, "formatted");
      break;
    }
  }
  if (auto st = mount_filesystem(path, v.mount, r.filesystem, v.mount_options); !st) {
    return fail(r, st.error());
  }
  r.mounted = true;
  add_action(r, "mounted");
  if (auto st = finish_mounted(v, path, paths, r); !st) return fail(r, st.error());
  log::info(r.volume + " (" + path + "): " + r.action + " at " + v.mount + " (" + r.filesystem +
            " UUID=" + r.uuid + ")");
  return r;
}

VolumeReport setup_raid0(const VolumeConfig& v, const std::vector<std::string>& disk_paths,
                         const std::vector<std::string>& disk_names, const HostPaths& paths) {
  if (disk_paths.size() == 1) {
    // RAID0 of one disk is the disk itself (mdadm would need --force for it).
    return setup_device(v, disk_paths[0], disk_names[0], "instance store (single disk)", paths);
  }
  auto md =
      assemble_or_create_raid0(disk_paths, disk_names, raid_array_name(v.effective_label()), paths);
  if (!md) return fail(new_report(v), md.error());
  std::string members;
  for (const auto& n : disk_names) members += (members.empty() ? "" : "+") + n;
  log::info(v.describe() + ": RAID0 " + md->path + " over " + members + ": " + md->action);
  VolumeReport r = setup_device(v, md->path, md->name, "RAID0 of " + members, paths);
  if (md->action != "running" && r.code == 0) r.action = "array " + md->action + ", " + r.action;
  return r;
}

std::vector<VolumeReport> setup_all(const Config& config, const DiscoverEnv& env) {
  std::vector<VolumeReport> reports;
  for (const auto& v : config.volumes) {
    if (v.find_by != FindBy::kInstanceStore) {
      auto found = find_volume(v, env);
      if (!found) {
        reports.push_back(fail(new_report(v), found.error()));
        continue;
      }
      log::info(v.describe() + ": found " + found->path + " (" + found->how + ")");
      reports.push_back(setup_device(v, found->path, found->name, found->how, env.paths));
      continue;
    }
    auto disks = find_instance_store(v.wait_seconds, env);
    if (disks.empty()) {
      log::info(v.describe() + ": no instance-store disks on this instance: nothing to do");
      VolumeReport r = new_report(v);
      r.action = "nothing to do";
      r.reason = "no instance-store disks";
      reports.push_back(r);
      continue;
    }
    if (v.instance_store == InstanceStoreMode::kEach) {
      for (size_t i = 0; i < disks.size(); ++i) {
        VolumeConfig one = v;
        one.mount = v.mount + "/" + std::to_string(i);
        one.label =
            v.effective_label().substr(0, v.filesystem == "xfs" ? 10 : 14) + std::to_string(i);
        reports.push_back(setup_device(one, disks[i].path, disks[i].name, disks[i].how, env.paths));
      }
      continue;
    }
    std::vector<std::string> paths, names;
    for (const auto& d : disks) {
      paths.push_back(d.path);
      names.push_back(d.name);
    }
    reports.push_back(setup_raid0(v, paths, names, env.paths));
  }
  return reports;
}

int exit_code_for(const std::vector<VolumeReport>& reports) {
  int code = 0;
  for (const auto& r : reports) {
    if (r.code == kExitRefused) return kExitRefused;
    if (r.code != 0) code = 1;
  }
  return code;
}

}  // namespace amibake::datavol
