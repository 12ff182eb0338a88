// `datavol setup`: every configured volume found, checked, formatted when blank, mounted,
// grown, recorded in fstab; one report per device.
#pragma once

#include <string>
#include <vector>

#include "datavol/config.h"
#include "datavol/discover.h"

namespace amibake::datavol {

// What happened to one device (a volume, a RAID array, or one disk of an "each" volume).
struct VolumeReport {
  std::string volume;  // VolumeConfig::describe()
  std::string mount;
  std::string device;  // real node
  std::string how;     // how it was found
  std::string filesystem;
  std::string uuid;
  uint64_t size_bytes = 0;
  bool mounted = false;
  // "formatted", "mounted", "already mounted", "grown" may be combined ("formatted, mounted");
  // "refused", "failed", "nothing to do".
  std::string action;
  std::string reason;  // why refused/failed; empty otherwise
  int code = 0;        // 0 ok, 1 failed, kExitRefused refused
};

// Brings one device to "mounted at volume.mount with fstab line": the single-device path
// every kind of volume ends in. `path` is the real node, `name` its <sys>/block name.
VolumeReport setup_device(const VolumeConfig& volume, const std::string& path,
                          const std::string& name, const std::string& how, const HostPaths& paths);

// RAID0 over `disks` (real nodes and names), then setup_device on the array.
VolumeReport setup_raid0(const VolumeConfig& volume, const std::vector<std::string>& disk_paths,
                         const std::vector<std::string>& disk_names, const HostPaths& paths);

// Runs every volume of `config`; logs one line per decision.
std::vector<VolumeReport> setup_all(const Config& config, const DiscoverEnv& env);

// 0 when every report is ok; kExitRefused when any was refused; else 1 when any failed.
int exit_code_for(const std::vector<VolumeReport>& reports);

}  // namespace amibake::datavol
