// Discovery: which block device is the volume the config names?
//
// Nitro names NVMe disks in probe order, so "xvdb" may be nvme1n1 today and nvme2n1
// tomorrow. The only trustworthy answers are in the Identify Controller page (the
// mapping name in the vendor area, the volume id in the serial), which we read ourselves
// (nvme.cc) so Amazon's udev rules are not needed. On Xen the kernel names the disk after
// the mapping (xvdb, or sdb on old kernels). With Amazon's rules installed, /dev/xvdb is a
// symlink to the NVMe node: we accept it only as a last resort and resolve it, because the
// real node is what mountinfo, sysfs and flock talk about.
//
// We never guess: two devices that both answer to "xvdb" is a refusal, not a choice.
// Waiting is bounded (the volume may still be attaching when we start at boot), polls at
// a fixed interval and logs what it sees so a boot log explains a timeout.
#include "datavol/discover.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <thread>

#include "base/log.h"

namespace amibake::datavol {
namespace {

// Matches `s` against a pattern of literal text, '#' (one or more digits) and '@' (one or
// more lower-case letters): "nvme#n#", "xvd@". (std::regex would add a few hundred KiB to the
// static binary.)
bool matches(std::string_view s, std::string_view pattern) {
  size_t i = 0;
  for (char p : pattern) {
    if (p == '#' || p == '@') {
      auto ok = [&](char c) { return p == '#' ? (c >= '0' && c <= '9') : (c >= 'a' && c <= 'z'); };
      size_t start = i;
      while (i < s.size() && ok(s[i])) ++i;
      if (i == start) return false;
    } else {
      if (i >= s.size() || s[i] != p) return false;
      ++i;
    }
  }
  return i == s.size();
}

bool is_nvme_namespace(const std::string& name) { return matches(name, "nvme#n#"); }

bool is_xen_name(const std::string& name) {
  return matches(name, "xvd@") || matches(name, "sd@") || matches(name, "hd@");
}

std::string base_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return "";
  return buf;
}

// nvme1n1 -> nvme1, from the sysfs "device" link when it names a controller.
std::string controller_of(const std::string& sys, const std::string& name) {
  std::string target = base_name(real_path(sys + "/block/" + name + "/device"));
  if (matches(target, "nvme#")) return target;
  return name.substr(0, name.find('n', 4));
}

SeenDevice describe_nvme(const std::string& name, const DiscoverEnv& env) {
  SeenDevice d{name, env.paths.dev + "/" + name, "nvme", "", "", -1, ""};
  std::string ctrl = controller_of(env.paths.sys, name);
  auto page = env.identify->identify_controller(env.paths.dev + "/" + ctrl);
  NvmeIdentity id;
  if (page) {
    auto parsed = parse_identify_controller(*page);
    if (parsed) id = *parsed;
  } else {
    // No ioctl (not root, odd kernel): sysfs still has serial and model.
    log::debug(name + ": " + page.error().message + "; using sysfs serial and model");
    std::string cdir = env.paths.sys + "/class/nvme/" + ctrl;
    id.serial = read_attribute(cdir + "/serial");
    id.model = read_attribute(cdir + "/model");
    if (id.model == kEbsModel || id.model == kInstanceStoreModel) id.vendor_id = kAmazonVendorId;
  }
  if (id.is_ebs()) {
    d.kind = "ebs";
    d.volume_id = id.volume_id();
    d.mapping_name = id.mapping_name();
    d.how = "NVMe " + ctrl + " serial " + id.serial +
            (id.vendor_area.empty() ? "" : ", vendor area \"" + id.vendor_area + "\"");
  } else if (id.is_instance_store()) {
    d.kind = "instance-store";
    d.mapping_name = id.mapping_name();
    d.ephemeral_index = id.ephemeral_index();
    d.how = "NVMe " + ctrl + " instance store" +
            (id.vendor_area.empty() ? "" : " \"" + id.vendor_area + "\"");
  } else {
    d.how = "NVMe " + ctrl + " model \"" + id.model + "\"";
  }
  return d;
}

}  // namespace

std::vector<SeenDevice> scan_devices(const DiscoverEnv& env) {
  std::vector<SeenDevice> seen;
  for (const auto& name : list_block_devices(env.paths.sys)) {
    if (is_nvme_namespace(name)) {
      seen.push_back(describe_nvme(name, env));
    } else if (is_xen_name(name)) {
      std::string mapping = normalize_mapping_name(name);
      seen.push_back(
          {name, env.paths.dev + "/" + name, "xen", mapping, "", -1, "kernel name " + name});
    } else {
      seen.push_back(
          {name, env.paths.dev + "/" + name, "other", "", "", -1, "kernel name " + name});
    }
  }
  return seen;
}

std::vector<SeenDevice> match_volume(const VolumeConfig& volume,
                                     const std::vector<SeenDevice>& seen, const DiscoverEnv& env) {
  std::vector<SeenDevice> out;
  if (volume.find_by == FindBy::kVolumeId) {
    std::string want = normalize_volume_id(volume.volume_id);
    for (const auto& d : seen) {
      if (!d.volume_id.empty() && d.volume_id == want) out.push_back(d);
    }
    return out;
  }
  std::string want = normalize_mapping_name(volume.device);
  bool is_mapping = want.rfind("xvd", 0) == 0;
  if (!is_mapping) {
    // A device path used as given ("/dev/loop3", "/dev/disk/by-id/..."): its real node.
    std::string path =
        volume.device[0] == '/' ? volume.device : env.paths.dev + "/" + volume.device;
    std::string real = real_path(path);
    if (real.empty()) return out;
    std::string name = base_name(real);
    for (const auto& d : seen) {
      if (d.name == name)
        out.push_back({d.name, real, d.kind, d.mapping_name, d.volume_id, d.ephemeral_index,
                       "path " + volume.device});
    }
    return out;
  }
  for (const auto& d : seen) {
    if (d.kind != "instance-store" && d.mapping_name == want) out.push_back(d);
  }
  if (!out.empty()) return out;
  // Last resort: a udev link (Amazon's rules, or the boot-test rule) <dev>/xvdb or sdb.
  for (const std::string& link : {"xvd" + want.substr(3), "sd" + want.substr(3)}) {
    std::string real = real_path(env.paths.dev + "/" + link);
    if (real.empty()) continue;
    for (const auto& d : seen) {
      if (d.name == base_name(real)) {
        SeenDevice m = d;
        m.path = real;
        m.how = "udev link " + env.paths.dev + "/" + link + " -> " + d.name;
        out.push_back(m);
        return out;
      }
    }
  }
  return out;
}

std::string describe_seen(const std::vector<SeenDevice>& seen) {
  std::string out;
  for (const auto& d : seen) {
    out += d.name + " " + d.kind;
    if (!d.volume_id.empty()) out += " " + d.volume_id;
    if (!d.mapping_name.empty()) out += " " + d.mapping_name;
    if (d.ephemeral_index >= 0) out += " ephemeral" + std::to_string(d.ephemeral_index);
    out += "\n";
  }
  return out;
}

Result<SeenDevice> find_volume(const VolumeConfig& volume, const DiscoverEnv& env) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(volume.wait_seconds);
  auto next_log = std::chrono::steady_clock::now();
  std::vector<SeenDevice> seen;
  while (true) {
    seen = scan_devices(env);
    auto matches = match_volume(volume, seen, env);
    if (matches.size() == 1) return matches[0];
    if (matches.size() > 1) {
      std::string names;
      for (const auto& m : matches)
        names += (names.empty() ? "" : ", ") + m.name + " (" + m.how + ")";
      return make_error(volume.describe() + ": " + std::to_string(matches.size()) +
                            " devices match: " + names + ": refusing to guess",
                        "name the volume by volume_id, or detach the extra device", kExitRefused);
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    if (now >= next_log) {
      std::string list = describe_seen(seen);
      std::replace(list.begin(), list.end(), '\n', ';');
      log::info(volume.describe() + ": not there yet, waiting up to " +
                std::to_string(volume.wait_seconds) +
                " s; seen: " + (list.empty() ? "none" : list));
      next_log = now + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(env.poll_interval);
  }
  std::string list = describe_seen(seen);
  std::replace(list.begin(), list.end(), '\n', ';');
  return make_error(volume.describe() + ": not found after " + std::to_string(volume.wait_seconds) +
                        " s; seen: " + (list.empty() ? "no block devices" : list),
                    "check the block device mapping of the instance (launch template or AMI), "
                    "or raise wait_seconds");
}

std::vector<SeenDevice> find_instance_store(int wait_seconds, const DiscoverEnv& env) {
  auto collect = [&] {
    std::vector<SeenDevice> out;
    for (auto& d : scan_devices(env)) {
      if (d.kind == "instance-store") out.push_back(d);
    }
    std::sort(out.begin(), out.end(), [](const SeenDevice& a, const SeenDevice& b) {
      if (a.ephemeral_index != b.ephemeral_index) return a.ephemeral_index < b.ephemeral_index;
      return a.name < b.name;
    });
    return out;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  auto disks = collect();
  bool logged = false;
  // Instance-store disks all appear at boot; wait for at least one, then for one more
  // poll with the same count so a disk still being probed is not left out.
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(env.poll_interval);
    auto again = collect();
    if (!again.empty() && again.size() == disks.size()) return again;
    if (disks.empty() && again.empty() && !logged) {
      logged = true;
      log::info("instance store: no disks yet, waiting up to " + std::to_string(wait_seconds) +
                " s");
    }
    disks = std::move(again);
  }
  return disks;
}

}  // namespace amibake::datavol
