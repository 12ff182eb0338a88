// Generating datavol's boot integration: systemd unit + drop-ins, or a SysV script.
//
// Ordering is the whole point: /data must be mounted before docker, containerd and the ECS
// agent start, or jobs silently fill the root disk. The unit therefore:
//  - uses DefaultDependencies=no so it is not held behind basic.target (sockets, timers,
//    paths), and instead orders itself explicitly after what it really needs: local-fs.target
//    (writable /etc for the fstab line, /usr for mkfs, the root's own mounts) and
//    systemd-udev-trigger.service (device nodes for disks present at boot; later arrivals
//    are covered by datavol's own bounded wait, which is why we do not use the deprecated
//    systemd-udev-settle.service). It keeps the shutdown conflict DefaultDependencies would add.
//  - is After= the mount units of its own mount points: from the second boot on, the fstab
//    line makes systemd mount /data itself (nofail), and datavol must see that mount rather
//    than race it. nofail mounts are not ordered before local-fs.target, hence explicit.
//  - is Before= every required unit, and each of them gets a drop-in with Requires= and
//    After=datavol.service, so they do not start when datavol failed or refused; datavol
//    succeeds only with every volume mounted. Not RequiresMountsFor=<mount>: from the second
//    boot on that binds them to the fstab line's mount unit, and when the disk shows up after
//    that mount's device timeout (a slow attach, a loaded host: seen in the arm64 boot test
//    under emulation) the mount fails, and with it docker and ecs, although datavol then
//    waits longer, finds the disk and mounts /data itself. The ordering is unchanged: datavol
//    is After= its mounts, so they are After= them too. With required_by = [] nothing but
//    datavol's own ordering is generated.
//
// For SysV images (Amazon Linux 1) the script carries a chkconfig header, whose start
// priority is chosen below every required service's script found in the image (docker's is
// 95 on AL1; the ECS agent is an upstart job started after rc finishes, so any rc priority
// is early enough) and no later than 15: after rc.sysinit has mounted local filesystems and
// started udev and md, early enough that nothing in rc2..5 can write to /data first. The LSB
// block says the same for LSB-aware tools (X-Start-Before).
#include "datavol/units.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/files.h"

namespace amibake::datavol {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string with_suffix(const std::string& unit) {
  return unit.find('.') == std::string::npos ? unit + ".service" : unit;
}

std::string without_suffix(const std::string& unit) {
  size_t dot = unit.rfind(".service");
  return dot == std::string::npos ? unit : unit.substr(0, dot);
}

// Replaces `link` with a symlink to `target` (like ln -sf).
Status install_systemd(TreeWriter& tree, const UnitSpec& spec,
                       std::vector<std::string>* written) {
  const std::string dir = "/etc/systemd/system";
  AMIBAKE_TRY(tree.make_dirs(dir + "/multi-user.target.wants"));
  AMIBAKE_TRY(tree.write_file(dir + "/" + kUnitName, systemd_unit_text(spec), 0644));
  written->push_back(dir + "/" + kUnitName);
  // `systemctl enable` links with the absolute path of the unit file.
  std::string link = dir + "/multi-user.target.wants/" + kUnitName;
  AMIBAKE_TRY(tree.symlink(link, dir + "/" + kUnitName));
  written->push_back(link);
  for (const auto& unit : spec.required_units) {
    std::string dropin_dir = dir + "/" + with_suffix(unit) + ".d";
    AMIBAKE_TRY(tree.make_dirs(dropin_dir));
    AMIBAKE_TRY(tree.write_file(dropin_dir + "/50-datavol.conf", dropin_text(spec), 0644));
    written->push_back(dropin_dir + "/50-datavol.conf");
  }
  return ok();
}

Status install_sysv(TreeWriter& tree, const UnitSpec& spec, std::vector<std::string>* written) {
  // Red Hat family (AL1): /etc/rc.d/init.d and /etc/rc.d/rcN.d; Debian family: /etc/init.d.
  bool rcd = tree.exists("/etc/rc.d/init.d") || tree.exists("/etc/rc.d");
  std::string init_dir = rcd ? "/etc/rc.d/init.d" : "/etc/init.d";
  std::string rc_base = rcd ? "/etc/rc.d/rc" : "/etc/rc";
  std::vector<std::optional<ChkconfigHeader>> required;
  for (const auto& unit : spec.required_units) {
    auto text = tree.read_file(init_dir + "/" + without_suffix(unit));
    if (text) required.push_back(parse_chkconfig_header(*text));
  }
  ChkconfigHeader header = choose_sysv_priorities(required);
  AMIBAKE_TRY(tree.make_dirs(init_dir));
  AMIBAKE_TRY(tree.write_file(init_dir + "/datavol", sysv_script_text(spec, header), 0755));
  written->push_back(init_dir + "/datavol");
  // What `chkconfig --add` leaves: S links in the header's runlevels, K links in the rest.
  for (int level = 0; level <= 6; ++level) {
    bool on = header.runlevels.find(static_cast<char>('0' + level)) != std::string::npos;
    char name[32];
    std::snprintf(name, sizeof name, "%c%02ddatavol", on ? 'S' : 'K',
                  on ? header.start : header.stop);
    std::string rc_dir = rc_base + std::to_string(level) + ".d";
    AMIBAKE_TRY(tree.make_dirs(rc_dir));
    for (const char* stale : {"S", "K"}) {  // a re-install with other priorities
      for (int p = 0; p < 100; ++p) {
        char old[32];
        std::snprintf(old, sizeof old, "%s%02ddatavol", stale, p);
        if (std::string(old) != name && tree.exists(rc_dir + "/" + old)) {
          AMIBAKE_TRY(tree.remove(rc_dir + "/" + old));
        }
      }
    }
    AMIBAKE_TRY(tree.symlink(rc_dir + "/" + name, "../init.d/datavol"));
    written->push_back(rc_dir + "/" + name);
  }
  return ok();
}

}  // namespace

std::string systemd_escape_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t start = p.find_first_not_of('/');
  if (start == std::string::npos) return "-";
  p = p.substr(start);
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == '/') {
      out += '-';
    } else if (std::isalnum(c) || c == '_' || c == ':' || (c == '.' && i > 0)) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string systemd_unit_text(const UnitSpec& spec) {
  std::vector<std::string> after = {"local-fs.target", "systemd-udev-trigger.service"};
  for (const auto& m : spec.mounts) after.push_back(systemd_escape_path(m) + ".mount");
  // Ordered before docker, containerd and ecs even when they do not require us
  // (required_by = []): ordering alone pulls nothing in and gets /data ready first.
  std::vector<std::string> before = {"docker.service", "containerd.service", "ecs.service"};
  for (const auto& u : spec.required_units) {
    std::string unit = with_suffix(u);
    if (std::find(before.begin(), before.end(), unit) == before.end()) before.push_back(unit);
  }
  before.push_back("shutdown.target");
  std::ostringstream o;
  o << "# Generated by amibake (datavol install); changes are lost on the next bake.\n"
    << "[Unit]\n"
    << "Description=Find, format and mount the data volumes (datavol)\n"
    << "DefaultDependencies=no\n"
    << "Wants=systemd-udev-trigger.service\n"
    << "After=" << join(after, " ") << "\n"
    << "Before=" << join(before, " ") << "\n"
    << "Conflicts=shutdown.target\n"
    << "\n"
    << "[Service]\n"
    << "Type=oneshot\n"
    << "RemainAfterExit=yes\n"
    << "ExecStart=" << spec.binary << " setup\n"
    << "TimeoutStartSec=15min\n"
    << "StandardOutput=journal+console\n"
    << "StandardError=journal+console\n"
    << "\n"
    << "[Install]\n"
    << "WantedBy=multi-user.target\n";
  return o.str();
}

std::string dropin_text(const UnitSpec& spec) {
  std::ostringstream o;
  o << "# Generated by amibake (datavol install): do not start without the data volume.\n"
    << "[Unit]\n"
    << "Requires=" << kUnitName << "\n"
    << "After=" << kUnitName << "\n";
  return o.str();
}

std::optional<ChkconfigHeader> parse_chkconfig_header(std::string_view script) {
  std::istringstream lines{std::string(script)};
  std::string line;
  while (std::getline(lines, line)) {
    size_t hash = line.find_first_not_of(" \t");
    if (hash == std::string::npos || line[hash] != '#') continue;
    size_t key = line.find("chkconfig:");
    if (key == std::string::npos) continue;
    std::istringstream f(line.substr(key + 10));
    ChkconfigHeader h;
    if (!(f >> h.runlevels >> h.start >> h.stop)) return std::nullopt;
    if (h.runlevels != "-" && h.runlevels.find_first_not_of("0123456") != std::string::npos) {
      return std::nullopt;
    }
    return h;
  }
  return std::nullopt;
}

ChkconfigHeader choose_sysv_priorities(
    const std::vector<std::optional<ChkconfigHeader>>& required) {
  int start = kDefaultSysvStart;
  for (const auto& h : required) {
    if (h && h->start - 1 < start) start = h->start - 1;
  }
  if (start < 1) start = 1;
  return {"2345", start, 100 - start};
}

std::string sysv_script_text(const UnitSpec& spec, const ChkconfigHeader& header) {
  std::vector<std::string> before;
  for (const auto& u : spec.required_units) before.push_back(without_suffix(u));
  char chk[64];
  std::snprintf(chk, sizeof chk, "# chkconfig: %s %02d %02d\n", header.runlevels.c_str(),
                header.start, header.stop);
  std::ostringstream o;
  o << "#!/bin/sh\n"
    << "# Generated by amibake (datavol install); changes are lost on the next bake.\n"
    << "#\n"
    << "# datavol: find, format and mount the data volumes before docker and ecs start.\n"
    << "#\n"
    << chk << "# description: Finds, safely formats, mounts and grows the data volumes.\n"
    << "#\n"
    << "### BEGIN INIT INFO\n"
    << "# Provides: datavol\n"
    << "# Required-Start: $local_fs\n"
    << "# Required-Stop: $local_fs\n"
    << "# X-Start-Before: " << join(before, " ") << "\n"
    << "# Default-Start: 2 3 4 5\n"
    << "# Default-Stop: 0 1 6\n"
    << "# Short-Description: Find, format and mount the data volumes\n"
    << "# Description: Finds the configured data volumes, formats them only when they are\n"
    << "#  provably blank, mounts them and grows them when the volume was enlarged.\n"
    << "### END INIT INFO\n"
    << "\n"
    << "DATAVOL=" << spec.binary << "\n"
    << "LOCKFILE=/var/lock/subsys/datavol\n"
    << "\n"
    << "case \"$1\" in\n"
    << "  start|restart|reload|force-reload)\n"
    << "    \"$DATAVOL\" setup\n"
    << "    rc=$?\n"
    << "    if [ \"$rc\" -eq 0 ] && [ -d /var/lock/subsys ]; then touch \"$LOCKFILE\"; fi\n"
    << "    exit \"$rc\"\n"
    << "    ;;\n"
    << "  stop)\n"
    << "    # Nothing to undo: the halt scripts unmount filesystems.\n"
    << "    rm -f \"$LOCKFILE\"\n"
    << "    exit 0\n"
    << "    ;;\n"
    << "  status)\n"
    << "    exec \"$DATAVOL\" status\n"
    << "    ;;\n"
    << "  *)\n"
    << "    echo \"Usage: $0 {start|stop|status|restart}\"\n"
    << "    exit 2\n"
    << "    ;;\n"
    << "esac\n";
  return o.str();
}

InitSystem detect_init(const std::string& root) {
  if (exists(root + "/usr/lib/systemd/systemd") || exists(root + "/lib/systemd/systemd")) {
    return InitSystem::kSystemd;
  }
  return InitSystem::kSysv;
}

Status DirTreeWriter::make_dirs(const std::string& path) {
  return amibake::make_dirs(root_ + path);
}

Status DirTreeWriter::write_file(const std::string& path, const std::string& content,
                                 mode_t mode) {
  return write_file_atomic(root_ + path, content, mode);
}

Status DirTreeWriter::symlink(const std::string& path, const std::string& target) {
  std::string link = root_ + path;
  if (datavol::exists(link) && ::unlink(link.c_str()) != 0) {
    return make_error(link + ": unlink: " + std::strerror(errno));
  }
  if (::symlink(target.c_str(), link.c_str()) != 0) {
    return make_error(link + ": symlink: " + std::strerror(errno));
  }
  return ok();
}

std::optional<std::string> DirTreeWriter::read_file(const std::string& path) {
  auto r = amibake::read_file(root_ + path);
  if (!r) return std::nullopt;
  return std::move(*r);
}

bool DirTreeWriter::exists(const std::string& path) { return datavol::exists(root_ + path); }

Status DirTreeWriter::remove(const std::string& path) {
  if (::unlink((root_ + path).c_str()) != 0 && errno != ENOENT) {
    return make_error(root_ + path + ": unlink: " + std::strerror(errno));
  }
  return ok();
}

Result<std::vector<std::string>> install_into(TreeWriter& tree, InitSystem init,
                                              const UnitSpec& spec,
                                              const std::optional<std::string>& config_text) {
  std::vector<std::string> written;
  if (config_text) {
    AMIBAKE_TRY(tree.make_dirs("/etc/datavol"));
    AMIBAKE_TRY(tree.write_file(kConfigPathInImage, *config_text, 0644));
    written.push_back(kConfigPathInImage);
  }
  if (init == InitSystem::kSystemd) {
    AMIBAKE_TRY(install_systemd(tree, spec, &written));
  } else {
    AMIBAKE_TRY(install_sysv(tree, spec, &written));
  }
  return written;
}

Result<std::vector<std::string>> install_into(const std::string& root, InitSystem init,
                                              const UnitSpec& spec,
                                              const std::optional<std::string>& config_text) {
  DirTreeWriter tree(root);
  return install_into(tree, init, spec, config_text);
}

}  // namespace amibake::datavol
