// Finding the block device a [[volume]] means: by mapping name, volume id, or "all
// instance-store disks", waiting for it with a bound.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "datavol/config.h"
#include "datavol/host.h"
#include "datavol/nvme.h"

namespace amibake::datavol {

// One block device seen on the host, with what identifies it.
struct SeenDevice {
  std::string name;          // "nvme1n1", "xvdb"
  std::string path;          // "<dev>/nvme1n1": the real node, never a udev link
  std::string kind;          // "ebs", "instance-store", "nvme", "xen", "other"
  std::string mapping_name;  // normalised ("xvdb") or ""
  std::string volume_id;     // "vol-0abc" or ""
  int ephemeral_index = -1;
  std::string how;  // "NVMe vendor area \"sdb\"" etc., for logs and status
};

struct DiscoverEnv {
  HostPaths paths;
  IdentifySource* identify = nullptr;  // required
  std::chrono::milliseconds poll_interval{250};
};

// One look at the host: every whole-disk block device in <sys>/block with what identifies
// it (NVMe Identify read through env.identify for nvme*n* disks).
std::vector<SeenDevice> scan_devices(const DiscoverEnv& env);

// The devices in `seen` that `volume` (device or volume_id) means; for a mapping name
// that no disk claims, falls back to a <dev>/<name> udev link resolved to its real node.
// A device path that is not a mapping name is used as given (resolved with realpath).
std::vector<SeenDevice> match_volume(const VolumeConfig& volume,
                                     const std::vector<SeenDevice>& seen, const DiscoverEnv& env);

// Polls until exactly one device matches (returns it), more than one does (error with
// code kExitRefused: we never guess), or volume.wait_seconds pass (error, code 1, listing
// what was seen). Logs what it sees while waiting.
Result<SeenDevice> find_volume(const VolumeConfig& volume, const DiscoverEnv& env);

// The instance-store NVMe disks, ordered by ephemeral index then name, after waiting up to
// wait_seconds for at least one to appear and for the count to stop changing. An empty
// list is not an error (instance types without instance storage).
std::vector<SeenDevice> find_instance_store(int wait_seconds, const DiscoverEnv& env);

// One line per device, for `datavol resolve` and wait logs: "nvme1n1 ebs vol-0abc xvdb".
std::string describe_seen(const std::vector<SeenDevice>& seen);

}  // namespace amibake::datavol
