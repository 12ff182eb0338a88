// Finding an attached EBS volume on this host, and letting go of it.
//
// AWS names the attachment ("/dev/sdf") but the kernel names the disk: on Nitro it is
// an NVMe namespace numbered in discovery order (nvme1n1, nvme2n1…), on Xen the xvd
// name the attach asked for. Guessing "the newest disk" or "nvme1n1" picks another
// build's volume as soon as two builds share a host, so the volume id decides:
//  - Amazon Linux's udev rules (amazon-ec2-utils, also Ubuntu's) link
//    /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex> to the disk;
//  - without those rules, the NVMe Identify Controller serial is "vol<hex>" (datavol's
//    scan reads it with the admin ioctl, the same code that runs at boot);
//  - Xen disks carry no serial, but Xen keeps the requested name, and AWS refuses a
//    second attachment at a name in use, so the name plus a size check identifies it.
// awsemu plays the first case: it attaches the volume file as a loop device and makes
// the by-id link in its own folder (--device-dir).
//
// Releasing: a build killed with -9 during the install leaves the root partition's loop
// device mounted. Before the volume is detached or snapshotted those must go, and only
// those: a mount of the disk itself (somebody else's doing) stops us with a message.
#include "bake/attached_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "datavol/discover.h"

namespace amibake::bake {
namespace {

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

std::string base_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// The device number of a block device node, or nullopt when `path` is not one.
std::optional<dev_t> block_rdev(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return std::nullopt;
  return st.st_rdev;
}

Error sys_error(const std::string& subject, const std::string& what, int err) {
  return make_error(subject + ": " + what + ": " + std::strerror(err));
}

// Every whole disk of the host with what identifies it (datavol's scan: NVMe Identify
// through `lookup.identify`, else the admin ioctl).
std::vector<datavol::SeenDevice> scan_host(const DeviceLookup& lookup) {
  datavol::IoctlIdentifySource ioctl_source;
  datavol::DiscoverEnv env;
  env.paths = lookup.host;
  env.identify = lookup.identify ? lookup.identify : &ioctl_source;
  return datavol::scan_devices(env);
}

}  // namespace

std::string ebs_by_id_name(const std::string& volume_id) {
  std::string hex = volume_id.rfind("vol-", 0) == 0 ? volume_id.substr(4) : volume_id;
  return "nvme-Amazon_Elastic_Block_Store_vol" + hex;
}

std::optional<FoundDevice> look_for_attached_device(const std::string& volume_id,
                                                    const std::string& attach_name,
                                                    uint64_t size_bytes,
                                                    const DeviceLookup& lookup) {
  std::string link = lookup.device_dir + "/" + ebs_by_id_name(volume_id);
  std::string node = real_path(link);
  if (!node.empty() && block_rdev(node)) {
    return FoundDevice{node, "by-id link " + ebs_by_id_name(volume_id)};
  }

  std::vector<datavol::SeenDevice> seen = scan_host(lookup);
  for (const auto& d : seen) {
    if (!d.volume_id.empty() && d.volume_id == datavol::normalize_volume_id(volume_id)) {
      return FoundDevice{d.path, "NVMe serial of " + d.name + " (" + d.how + ")"};
    }
  }
  std::string xen = datavol::normalize_mapping_name(attach_name);
  for (const auto& d : seen) {
    if (d.kind != "xen" || d.name != xen) continue;
    auto info = datavol::read_block_info(lookup.host.sys, d.name);
    if (info && info->size_bytes == size_bytes) {
      return FoundDevice{d.path, "Xen disk " + d.name + " for attachment " + attach_name};
    }
  }
  return std::nullopt;
}

Result<FoundDevice> wait_for_attached_device(const std::string& volume_id,
                                             const std::string& attach_name, uint64_t size_bytes,
                                             const DeviceLookup& lookup,
                                             std::chrono::milliseconds timeout,
                                             const std::function<Status()>& should_stop) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto found = look_for_attached_device(volume_id, attach_name, size_bytes, lookup)) {
      return *found;
    }
    if (should_stop) AMIBAKE_TRY(should_stop());
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::string seen = datavol::describe_seen(scan_host(lookup));
  for (char& c : seen) {
    if (c == '\n') c = ';';
  }
  return make_error(
      volume_id + ": attached as " + attach_name +
          " but no block device of this host shows it after " +
          std::to_string(timeout.count() / 1000) + " s (looked for " + lookup.device_dir + "/" +
          ebs_by_id_name(volume_id) + ", an NVMe disk with serial " +
          datavol::normalize_volume_id(volume_id) + ", a Xen disk " +
          datavol::normalize_mapping_name(attach_name) +
          "; seen: " + (seen.empty() ? "no block devices" : seen) + ")",
      "the chroot method must run on the instance the volume is attached to; if udev names "
      "devices elsewhere on this host, point --device-dir at its by-id folder");
}

std::vector<std::string> attach_name_candidates(const std::vector<std::string>& in_use,
                                                const std::string& seed, const std::string& sys) {
  std::set<std::string> taken;
  for (const auto& n : in_use) taken.insert(datavol::normalize_mapping_name(n));
  for (const auto& n : datavol::list_block_devices(sys)) {
    if (n.rfind("xvd", 0) == 0) taken.insert(datavol::normalize_mapping_name(n));
  }
  std::vector<std::string> free;
  for (char c = 'f'; c <= 'p'; ++c) {
    std::string letter(1, c);
    if (!taken.count("xvd" + letter)) free.push_back("/dev/sd" + letter);
  }
  if (free.empty()) return free;
  // FNV-1a of the seed picks where to start.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : seed) h = (h ^ ch) * 1099511628211ull;
  std::rotate(free.begin(), free.begin() + static_cast<long>(h % free.size()), free.end());
  return free;
}

Result<std::vector<std::string>> loops_backed_by(const std::string& device,
                                                 const datavol::HostPaths& paths) {
  auto want = block_rdev(device);
  if (!want) return make_error(device + ": not a block device");
  std::vector<std::string> out;
  for (const auto& name : datavol::list_block_devices(paths.sys)) {
    if (name.rfind("loop", 0) != 0) continue;
    std::string backing =
        datavol::read_attribute(paths.sys + "/block/" + name + "/loop/backing_file");
    if (backing.empty()) continue;
    auto rdev = block_rdev(backing);
    if (rdev && *rdev == *want) out.push_back(paths.dev + "/" + name);
  }
  return out;
}

Result<std::vector<std::string>> release_loops_on(const std::string& device,
                                                  const datavol::HostPaths& paths) {
  auto rdev = block_rdev(device);
  if (!rdev) return make_error(device + ": not a block device");
  std::string real = real_path(device);
  // The disk and its partitions: a mount of any of them is not ours to undo.
  std::set<std::pair<unsigned, unsigned>> own = {{major(*rdev), minor(*rdev)}};
  if (auto info = datavol::read_block_info(paths.sys, base_name(real))) {
    for (const auto& p : info->partitions) own.insert({p.major, p.minor});
  }
  auto mounts = datavol::read_mountinfo(paths.mountinfo);
  for (const auto& m : mounts) {
    if (own.count({m.major, m.minor})) {
      return make_error(device + " is mounted at " + m.mount_point + " (not by amibake)",
                        "unmount it, then run the command again");
    }
  }
  AMIBAKE_ASSIGN(auto loops, loops_backed_by(device, paths));
  std::vector<std::string> log;
  for (const auto& loop : loops) {
    auto info = datavol::read_block_info(paths.sys, base_name(loop));
    if (!info) continue;
    for (const auto& m : mounts) {
      if (m.major != info->major || m.minor != info->minor) continue;
      int rc = -1;
      for (int attempt = 0; attempt < 20; ++attempt) {
        rc = ::umount2(m.mount_point.c_str(), 0);
        if (rc == 0 || errno != EBUSY) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (rc != 0 && errno != EINVAL && errno != ENOENT) {
        return make_error(m.mount_point + " (" + loop + " on " + device +
                              "): cannot unmount: " + std::strerror(errno),
                          "stop what uses " + m.mount_point + " and run the command again");
      }
      log.push_back("unmounted " + m.mount_point + " (" + loop + " on " + device +
                    ", left by an earlier run)");
      // Mount's own temporary folders are removed; any other folder is left as it was.
      if (base_name(m.mount_point).rfind("amibake-mnt.", 0) == 0) ::rmdir(m.mount_point.c_str());
    }
    int fd = ::open(loop.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // gone already (autoclear)
    int rc = ::ioctl(fd, LOOP_CLR_FD, 0);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != ENXIO) return sys_error(loop, "detach", err);
    log.push_back("detached " + loop + " from " + device);
  }
  return log;
}

Status flush_block_device(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_error(device, "open", errno);
  int rc = ::fsync(fd);
  int err = errno;
  if (rc == 0 && ::ioctl(fd, BLKFLSBUF, 0) != 0) {
    rc = -1;
    err = errno;
  }
  ::close(fd);
  if (rc != 0) return sys_error(device, "flush", err);
  return ok();
}

}  // namespace amibake::bake
