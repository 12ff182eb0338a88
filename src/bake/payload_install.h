// Installing datavol into a disk image: the one payload step shared by the direct
// method (a local sparse image) and the chroot method (an attached volume).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "datavol/config.h"
#include "image/payload.h"

namespace amibake::bake {

// One data volume as the recipe gave it, with what the image checks need to know.
struct PayloadVolume {
  datavol::VolumeConfig config;  // written into /etc/datavol/datavol.toml (after the checks)
  // required_by was written in the recipe: every unit must exist in the image. False only
  // when config.required_by holds datavol's defaults, cut to the units the image has.
  bool required_by_set = true;
  // The mount point may be a folder with files in it (the mount hides them).
  bool hide_existing = false;
};

struct PayloadSpec {
  std::vector<PayloadVolume> volumes;
  std::string datavol_binary;  // path of a datavol to install; empty = the embedded one
  std::string image_name;      // names the image in refusals ("ami-0abc (al2023-…)");
                               // empty = the disk image's path
  // The disk is a lazy disk's FUSE file: its loop device uses direct I/O (requests of up to
  // 1 MiB, one fetch each) and ext4 is mounted without background bitmap reads.
  bool lazy_disk = false;
};

struct PayloadReport {
  std::string root_partition;      // "p1 at 1048576 (+32 GiB), xfs"
  std::string init;                // "systemd" | "sysv"
  std::string arch;                // "x86_64"
  std::string os;                  // PRETTY_NAME
  std::vector<std::string> files;  // image paths written
  std::vector<std::string> log;    // one line per decision, for the build's events
  nlohmann::json to_json() const;
};

// What check_image found: the volumes as they are to be written, and why not.
struct ImageCheck {
  // spec's volume configs, with default required_by cut to the units the image has.
  std::vector<datavol::VolumeConfig> volumes;
  // One per recipe value that would fail at boot, "subject: what failed: cause":
  // "volume[0] (/data): owner 'nosuchuser': no such user in the image's /etc/passwd".
  std::vector<std::string> problems;
  std::vector<std::string> hints;  // what to do about them, one per kind, no duplicates
  std::vector<std::string> log;    // decisions taken (units dropped from the defaults)
};

// Checks spec's volumes against the image tree at `root` (a mounted image, or any folder
// standing in for one), reading it only through in-root lookups that never follow a link
// out of it. `init` says where units live. For each volume:
//   owner:       user (and group) exist in the image's /etc/passwd (/etc/group);
//   required_by: each unit exists: systemd unit files in /etc/systemd/system,
//                /usr/lib/systemd/system, /lib/systemd/system ("name" = "name.service");
//                SysV scripts in /etc/init.d or /etc/rc.d/init.d, or an upstart job
//                /etc/init/<name>.conf (AL1's ECS agent is one). Missing units are
//                problems when required_by_set, else dropped (and logged);
//   mount:       absent, or an empty folder; a folder with files only with hide_existing;
//   filesystem:  the image has mkfs.<filesystem> in /usr/sbin, /sbin, /usr/bin or /bin.
// Never writes.
ImageCheck check_image(const std::string& root, image::InitSystem init, const PayloadSpec& spec);

// One Error (exit code 2) listing every problem of `check`, naming `image` ("image
// ami-0abc (…)" or a path), with the hints joined; ok() when there are none.
Status refuse_problems(const ImageCheck& check, const std::string& image);

// Reads `disk_image`'s partition table in user space, attaches the root partition
// as a loop device at its offset, mounts it, checks the image (init system,
// architecture, SELinux) and the recipe's volumes against it (check_image: every
// problem is refused at once, exit code 2, before anything is written), writes datavol,
// its config, unit/drop-ins (or SysV script) and enablement links without following any
// link out of the image, and unmounts.
// New files get SELinux labels from the image's own policy when SELinux is enabled.
// An architecture without an embedded datavol is refused before anything is written.
Result<PayloadReport> install_payload(const std::string& disk_image, const PayloadSpec& spec);

// Returns the datavol binary for `arch` ("x86_64", "arm64": EC2's names, as
// image::arch_name gives them), or check_datavol_architecture's error.
Result<std::string> embedded_datavol(const std::string& arch);

// The architectures whose datavol this amibake carries ("x86_64", and "arm64" when built
// with the aarch64 cross toolchain: cmake/datavol_arm64.cmake).
std::vector<std::string> embedded_datavol_architectures();

// ok() when this amibake carries datavol for `arch`; else an error (exit code 2) that
// says whether a rebuild with the cross toolchain would serve it (arm64) or amibake does
// not bake that architecture at all (i386, x86_64_mac, arm64_mac, ...).
Status check_datavol_architecture(const std::string& arch);

// The install in a child process, for a disk served by this process (a lazy disk's FUSE
// file): if this process is killed while the child's I/O waits on the FUSE server, the
// kernel aborts the FUSE connection as this process's files close, the child's I/O fails
// and it exits; were the install in this process, a thread stuck in that I/O would keep the
// process, and so the FUSE server, from ever finishing (kill -9 would hang in state D).
// install_payload_in_child runs `<self> __install-payload DISK` with the spec on stdin and
// returns its report; run_install_payload_child is that command's body (reads the spec
// from stdin, writes {"report": …} or {"error": …} to stdout, returns the exit code).
Result<PayloadReport> install_payload_in_child(const std::string& disk_image,
                                               const PayloadSpec& spec);
int run_install_payload_child(const std::string& disk_image);

}  // namespace amibake::bake
