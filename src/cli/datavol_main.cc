// datavol: the boot-time agent that finds, safely formats, mounts and grows data volumes.
//
// Commands (see docs and `datavol help`):
//   setup                 every configured volume (what boot runs)
//   status [--json]       what the last setup did, with live "mounted"
//   probe DEVICE          read-only safety verdict and why
//   resolve NAME          which device a mapping name or volume id is
//   install --root DIR    write config, unit/drop-ins or SysV script and links into an image
// Exit codes: 0 ok (including nothing to do), 1 failure, 2 usage, 3 refused for safety.
//
// Every host path is a flag so tests (and dry runs against an image) never touch the host.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "base/files.h"
#include "base/log.h"
#include "datavol/config.h"
#include "datavol/discover.h"
#include "datavol/probe.h"
#include "datavol/setup.h"
#include "datavol/status.h"
#include "datavol/units.h"

namespace dv = amibake::datavol;
using amibake::Error;

namespace {

constexpr int kExitUsage = 2;

int report(const Error& e) {
  amibake::log::error(e.describe());
  return e.code == 0 ? 1 : e.code;
}

// Serialises concurrent `datavol setup` runs (a manual run during boot).
int lock_run_dir(const std::string& run_dir) {
  if (!amibake::make_dirs(run_dir, 0755)) return -1;
  int fd = ::open((run_dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::flock(fd, LOCK_EX);
  return fd;
}

int run_setup(const std::string& config_path, const dv::DiscoverEnv& env) {
  auto config = dv::load_config(config_path);
  if (!config) return report(config.error());
  int lock_fd = lock_run_dir(env.paths.run_dir);
  auto reports = dv::setup_all(*config, env);
  int code = dv::exit_code_for(reports);
  if (auto st = dv::write_status(env.paths, reports, code); !st) {
    amibake::log::warn(st.error().message + ", ignoring");
  }
  if (reports.empty())
    amibake::log::info("no volumes configured in " + config_path + ": nothing to do");
  if (lock_fd >= 0) ::close(lock_fd);
  return code;
}

int run_probe(const std::string& device, const dv::HostPaths& paths) {
  char real[PATH_MAX];
  if (!::realpath(device.c_str(), real)) {
    return report(amibake::make_error("\"" + device + "\": no such device"));
  }
  std::string path = real, name = path.substr(path.find_last_of('/') + 1);
  auto lock = dv::DiskLock::acquire(path);
  if (!lock) return report(lock.error());
  auto r = dv::probe_device(path, name, lock->fd(), paths);
  if (!r) return report(r.error());
  switch (r->verdict) {
    case dv::Verdict::kBlank:
      std::cout << path << ": blank (would be formatted)\n";
      return 0;
    case dv::Verdict::kFilesystem:
      std::cout << path << ": " << r->fstype << " filesystem UUID=" << r->uuid
                << (r->label.empty() ? "" : " LABEL=" + r->label) << " (would be mounted if "
                << r->fstype << " is configured)\n";
      return 0;
    case dv::Verdict::kRefused:
      std::cout << path << ": refused: " << r->reason << "\n";
      return dv::kExitRefused;
  }
  return 1;
}

int run_resolve(const std::string& what, const dv::DiscoverEnv& env) {
  dv::VolumeConfig v;
  if (what.rfind("vol", 0) == 0) {
    v.find_by = dv::FindBy::kVolumeId;
    v.volume_id = what;
  } else {
    v.device = what;
  }
  auto seen = dv::scan_devices(env);
  auto matches = dv::match_volume(v, seen, env);
  for (const auto& m : matches) std::cout << m.path << "\t" << m.how << "\n";
  if (matches.size() == 1) return 0;
  std::cerr << (matches.empty() ? "no device matches \"" + what + "\""
                                : "more than one device matches")
            << "; seen:\n"
            << dv::describe_seen(seen);
  return matches.empty() ? 1 : dv::kExitRefused;
}

int run_install(const std::string& root, const std::string& init_name,
                const std::string& config_from, const std::string& binary) {
  dv::UnitSpec spec;
  spec.binary = binary;
  std::optional<std::string> config_text;
  // The config decides the mounts and required units the unit files name: the one given,
  // else the one already in the image.
  std::string source = config_from.empty() ? root + dv::kConfigPathInImage : config_from;
  auto text = amibake::read_file(source);
  if (text) {
    auto config = dv::parse_config(*text, source);
    if (!config) return report(config.error());
    if (!config_from.empty()) config_text = *text;
    spec.required_units = dv::required_units(*config);
    for (const auto& v : config->volumes) spec.mounts.push_back(v.mount);
  } else if (!config_from.empty()) {
    return report(text.error());
  } else {
    amibake::log::warn("no " + std::string(dv::kConfigPathInImage) +
                       " in the image and no --config-from: datavol will have nothing to do");
  }
  dv::InitSystem init = init_name.empty()        ? dv::detect_init(root)
                        : init_name == "systemd" ? dv::InitSystem::kSystemd
                                                 : dv::InitSystem::kSysv;
  auto written = dv::install_into(root, init, spec, config_text);
  if (!written) return report(written.error());
  for (const auto& w : *written) std::cout << w << "\n";
  return 0;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "datavol: find, safely format, mount and grow data volumes at boot.\n"
      "Exit codes: 0 ok, 1 failure, 2 usage, 3 refused for safety."};
  app.require_subcommand(0, 1);
  app.footer(
      "Configuration (/etc/datavol/datavol.toml), one table per volume:\n"
      "  [[volume]]\n"
      "  device = \"xvdb\"              # mapping name or a device path; or volume_id = "
      "\"vol-...\",\n"
      "                               # or instance_store = \"raid0\" | \"each\"\n"
      "  mount = \"/data\"              # filesystem = \"xfs\" (default) | \"ext4\", label = "
      "\"data\"\n"
      "  mount_options = \"defaults,noatime\"  # mkfs_options = [], owner = \"user:group\",\n"
      "  wait_seconds = 60             # mode = \"0755\", grow = true,\n"
      "  required_by = [\"docker\", \"containerd\", \"ecs\"]\n"
      "Never formats a device that is not provably blank (mounted, holders, partitions, any\n"
      "signature, non-zero first/last MiB): such a volume is refused and left untouched.");
  app.set_version_flag("--version", std::string("datavol ") + AMIBAKE_VERSION);
  std::string config_path = dv::kDefaultConfigPath;
  dv::DiscoverEnv env;
  dv::IoctlIdentifySource identify;
  env.identify = &identify;
  bool verbose = false;
  // Global flags work before or after the subcommand (`datavol setup --config X`), as
  // amibake's do: a subcommand hands options it does not know to the app.
  app.fallthrough();
  app.add_option("--config", config_path, "configuration file")->capture_default_str();
  app.add_option("--fstab", env.paths.fstab, "fstab to update")->capture_default_str();
  app.add_option("--dev", env.paths.dev, "device folder")->capture_default_str();
  app.add_option("--sys", env.paths.sys, "sysfs root")->capture_default_str();
  app.add_option("--mountinfo", env.paths.mountinfo, "mountinfo file")->capture_default_str();
  app.add_option("--swaps", env.paths.swaps, "swaps file")->capture_default_str();
  app.add_option("--passwd", env.paths.passwd, "passwd file for owner names")
      ->capture_default_str();
  app.add_option("--group", env.paths.group, "group file for owner names")->capture_default_str();
  app.add_option("--run-dir", env.paths.run_dir, "lock and status.json folder")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "debug logging");

  auto* setup = app.add_subcommand("setup", "find, check, format, mount and grow every volume");
  auto* status = app.add_subcommand("status", "what the last setup did");
  bool as_json = false;
  status->add_flag("--json", as_json, "JSON output");
  auto* probe = app.add_subcommand("probe", "read-only safety verdict for DEVICE");
  std::string probe_device;
  probe->add_option("DEVICE", probe_device)->required();
  auto* resolve = app.add_subcommand("resolve", "which device a mapping name or volume id is");
  std::string resolve_name;
  resolve->add_option("NAME", resolve_name)->required();
  auto* install = app.add_subcommand("install", "write config, unit and links into an image tree");
  std::string root, init_name, config_from, binary = dv::kDefaultBinaryPath;
  install->add_option("--root", root, "image root folder")->required();
  install->add_option("--init", init_name, "systemd or sysv (default: detect)")
      ->check(CLI::IsMember({"systemd", "sysv"}));
  install->add_option("--config-from", config_from, "config to install (validated first)");
  install->add_option("--binary", binary, "where the image has the datavol binary")
      ->capture_default_str();
  auto* help = app.add_subcommand("help", "show this help");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (verbose) amibake::log::set_level(amibake::log::Level::kDebug);
  if (*setup) return run_setup(config_path, env);
  if (*status) {
    auto text = dv::read_status(env.paths, as_json);
    if (!text) return report(text.error());
    std::cout << *text;
    return 0;
  }
  if (*probe) return run_probe(probe_device, env.paths);
  if (*resolve) return run_resolve(resolve_name, env);
  if (*install) return run_install(root, init_name, config_from, binary);
  if (*help || app.get_subcommands().empty()) {
    // app.help() would describe the parsed subcommand ("help" itself); format the app.
    std::cout << app.get_formatter()->make_help(&app, "datavol", CLI::AppFormatMode::Normal);
    return *help ? 0 : kExitUsage;
  }
  return kExitUsage;
}

int main(int argc, char** argv) {
  amibake::log::set_program("datavol");
  // Nothing below is meant to throw; should a library surprise us (bad_alloc, a CLI11
  // setup error), fail with a message rather than abort at boot.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    amibake::log::error(std::string("internal error: ") + e.what());
    return 1;
  }
}
