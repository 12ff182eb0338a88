// The command-line face of verify.h: flag parsing, the loopback check, the report.
#include "verify/verify_cmd.h"

#include <iostream>

#include "base/log.h"
#include "verify/verify.h"

namespace amibake::verify {
namespace {

int fail(const Error& e, int code = 1) {
  std::cerr << "amibake: " << e.message << "\n";
  if (!e.hint.empty()) std::cerr << "  hint: " << e.hint << "\n";
  return code;
}

nlohmann::json to_json(const BootResult& r) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : r.disks) {
    disks.push_back({{"device_name", d.device_name}, {"serial", d.serial}, {"file", d.file},
                     {"size_bytes", d.size_bytes}, {"root", d.root}, {"reused", d.reused}});
  }
  const RootFetch& f = r.root;
  nlohmann::json root = {{"mode", f.mode}, {"reused", f.reused}, {"blocks_listed", f.blocks_listed},
                         {"blocks_fetched", f.blocks_fetched}, {"fetched_for_kernel", f.fetched_for_kernel},
                         {"blocks_written", f.blocks_written}, {"bytes_fetched", f.bytes_fetched},
                         {"seconds", f.seconds}};
  if (!f.note.empty()) root["note"] = f.note;
  return {{"ami_id", r.ami_id}, {"accel", r.accel}, {"wall_seconds", r.wall_seconds},
          {"passed", verdict_passes(r.verdict)}, {"disks", disks}, {"console", r.console_path},
          {"root_fetch", root}, {"verdict", r.verdict}};
}

}  // namespace

void add_verify_flags(CLI::App& cmd, VerifyFlags& flags) {
  cmd.add_option("ami-id", flags.ami_id, "the AMI to verify (ami-...)")->required();
  cmd.add_flag("--boot", flags.boot, "boot it under QEMU from the local endpoint's snapshots");
  cmd.add_option("--keep-disks", flags.keep_disks,
                 "keep the disk files (and console log) in this folder; disks already there are "
                 "booted again as they are (a reboot)");
  cmd.add_option("--timeout", flags.timeout_seconds, "seconds to wait for the guest's verdict")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--without", flags.without,
                 "leave this mapping unattached, e.g. /dev/xvdb (what happens when a volume is missing)");
  cmd.add_option("--accel", flags.accel, "QEMU accelerator (default: AMIBAKE_QEMU_ACCEL, else kvm "
                                         "when /dev/kvm works, falling back to tcg)")
      ->check(CLI::IsMember({"kvm", "tcg"}));
  cmd.add_option("--fetch", flags.fetch,
                 "root disk: lazy (fetch a block when first read, through FUSE), full (download "
                 "every written block first), auto (lazy, else full, saying so)")
      ->check(CLI::IsMember({"auto", "lazy", "full"}));
  cmd.add_flag("--json", flags.json, "print the result and the guest's verdict as JSON");
}

int run_verify_command(const aws::ClientSettings& settings, const VerifyFlags& flags) {
  if (!flags.boot) {
    return fail(make_error("verify: only the boot check exists so far", "add --boot"), 2);
  }
  auto client = aws::make_client(settings);
  if (!client) return fail(client.error());
  for (const char* svc : {"ec2", "ebs"}) {
    std::string url = (*client)->endpoint(svc);
    if (!is_loopback_url(url)) {
      return fail(make_error("verify --boot: the " + std::string(svc) + " endpoint " + url +
                                 " is not local: booting needs the local emulator's snapshots",
                             "run it against awsemu (--endpoint-url http://127.0.0.1:PORT); on AWS, "
                             "launch an instance from the AMI instead"),
                  2);
    }
  }
  BootOptions options;
  options.ami_id = flags.ami_id;
  options.keep_disks_dir = flags.keep_disks;
  options.timeout_seconds = flags.timeout_seconds;
  options.without_devices = flags.without;
  options.accel = flags.accel;
  options.fetch = flags.fetch;
  auto result = boot_ami(**client, options);
  if (!result) return fail(result.error());
  if (flags.json) {
    std::cout << to_json(*result).dump(2) << "\n";
  } else {
    std::cout << format_report(*result);
  }
  return verdict_passes(result->verdict) ? 0 : 1;
}

}  // namespace amibake::verify
