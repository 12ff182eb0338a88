// The chroot method's side of the host: which device name to attach a volume at, which
// block device the attached volume became, and letting go of what an earlier, killed
// run left on that device. The device is found by volume id, never by guessing from
// names or order, so two builds on one host cannot pick each other's volume.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "datavol/host.h"
#include "datavol/nvme.h"

namespace amibake::bake {

// Where the lookups read; tests point these at fake trees.
struct DeviceLookup {
  std::string device_dir = "/dev/disk/by-id";   // udev by-id links
  datavol::HostPaths host;                      // dev, sys, mountinfo
  datavol::IdentifySource* identify = nullptr;  // nullptr = the NVMe admin ioctl
};

// The block device an attached volume is on this host.
struct FoundDevice {
  std::string path;  // the real node: "/dev/nvme1n1", "/dev/xvdf", "/dev/loop7"
  std::string how;   // how it was identified, for the build's events
};

// Returns the udev by-id link name Amazon Linux gives an EBS volume:
// "vol-0abc" -> "nvme-Amazon_Elastic_Block_Store_vol0abc".
std::string ebs_by_id_name(const std::string& volume_id);

// One look for `volume_id`, attached at `attach_name` ("/dev/sdf") and `size_bytes` big:
//  1. <device_dir>/nvme-Amazon_Elastic_Block_Store_vol… resolved to its node;
//  2. an NVMe disk whose Identify Controller serial is the volume id (datavol's scan);
//  3. on Xen, the disk the attach name maps to ("/dev/sdf" -> xvdf), when its size
//     matches (Xen keeps the name the attach asked for; there is no serial to read).
// Returns nullopt when none of them shows it yet.
std::optional<FoundDevice> look_for_attached_device(const std::string& volume_id,
                                                    const std::string& attach_name,
                                                    uint64_t size_bytes,
                                                    const DeviceLookup& lookup);

// Polls look_for_attached_device every 250 ms until it answers, `timeout` passes (error
// listing what the host shows), or `should_stop` fails (its error).
Result<FoundDevice> wait_for_attached_device(const std::string& volume_id,
                                             const std::string& attach_name, uint64_t size_bytes,
                                             const DeviceLookup& lookup,
                                             std::chrono::milliseconds timeout,
                                             const std::function<Status()>& should_stop);

// Device names to try for AttachVolume, in order: /dev/sdf … /dev/sdp (the names AWS
// recommends for EBS data volumes) minus those `in_use` (any spelling: "/dev/xvdg" takes
// "/dev/sdg") and minus Xen disks present in <sys>/block; the list is rotated by a hash
// of `seed` (the build id) so concurrent builds on one host try different names first.
std::vector<std::string> attach_name_candidates(const std::vector<std::string>& in_use,
                                                const std::string& seed,
                                                const std::string& sys = "/sys");

// Returns the loop devices ("/dev/loop7") whose backing file is the block device `device`
// (compared by device number, so a link to it counts).
Result<std::vector<std::string>> loops_backed_by(const std::string& device,
                                                 const datavol::HostPaths& paths = {});

// Unmounts every filesystem mounted from a loop device backed by `device` and detaches
// those loops (what a killed install leaves); returns one line per action. A filesystem
// mounted from `device` itself or a partition of it was not made by amibake: that is an
// error naming the mount point, and nothing is touched. A busy unmount is an error too,
// never a lazy one: the data must reach the volume before it is detached.
Result<std::vector<std::string>> release_loops_on(const std::string& device,
                                                  const datavol::HostPaths& paths = {});

// Flushes the block device's dirty buffers to it (fsync + BLKFLSBUF).
Status flush_block_device(const std::string& device);

}  // namespace amibake::bake
