// Instance-store RAID0 with mdadm: use the running array, re-assemble it after a reboot,
// or create it on blank disks (after a stop/start the disks come back empty).
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "datavol/host.h"

namespace amibake::datavol {

struct RaidResult {
  std::string path;    // the md node, "/dev/md127"
  std::string name;    // its <sys>/block name, "md127"
  std::string action;  // "running", "assembled", "created"
};

// The array datavol names /dev/md/<name>: "datavol-<label>".
std::string raid_array_name(const std::string& label);

// For the whole disks `disk_paths` (real nodes; `disk_names` their sysfs names):
//  - an active md array whose members are exactly these disks is used as it is;
//  - all disks carrying linux_raid_member signatures: mdadm --assemble (never re-created);
//  - all disks provably blank (probe_device): mdadm --create --level=0;
//  - anything else (mixed, other signatures, partial membership): refused, error code
//    kExitRefused, reason naming the disk.
// Every disk is flock'ed while deciding and creating.
Result<RaidResult> assemble_or_create_raid0(const std::vector<std::string>& disk_paths,
                                            const std::vector<std::string>& disk_names,
                                            const std::string& array_name, const HostPaths& paths);

}  // namespace amibake::datavol
