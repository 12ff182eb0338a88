// Installing datavol into a disk image: the one payload step shared by the direct
// method (a local sparse image) and, later, the chroot method (an attached volume).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "datavol/config.h"

namespace amibake::bake {

struct PayloadSpec {
  std::vector<datavol::VolumeConfig> volumes;  // written as /etc/datavol/datavol.toml
  std::string datavol_binary;  // path of a datavol to install; empty = the embedded one
};

struct PayloadReport {
  std::string root_partition;  // "p1 at 1048576 (+32 GiB), xfs"
  std::string init;            // "systemd" | "sysv"
  std::string arch;            // "x86_64"
  std::string os;              // PRETTY_NAME
  std::vector<std::string> files;  // image paths written
  std::vector<std::string> log;    // one line per decision, for the build's events
  nlohmann::json to_json() const;
};

// Reads `disk_image`'s partition table in user space, attaches the root partition
// as a loop device at its offset, mounts it, checks the image (init system,
// architecture, SELinux), writes datavol, its config, unit/drop-ins (or SysV script)
// and enablement links without following any link out of the image, and unmounts.
// New files get SELinux labels from the image's own policy when SELinux is enabled.
// An architecture without an embedded datavol is refused before anything is written.
Result<PayloadReport> install_payload(const std::string& disk_image, const PayloadSpec& spec);

// Returns the datavol binary for `arch` ("x86_64"), or an error naming what exists.
Result<std::string> embedded_datavol(const std::string& arch);

}  // namespace amibake::bake
