// awsemu's command line (CLI11), turned into Options.
#include <CLI/CLI.hpp>

#include <sstream>

#include "emulator/server.h"

namespace amibake::emu {

void add_command_line_options(CLI::App& app, Options& o, CommandLineText& text) {
  app.add_option("--port", o.port, "TCP port on 127.0.0.1; 0 picks a free one")->capture_default_str();
  app.add_option("--host", o.host, "address to listen on")->capture_default_str();
  app.add_option("--data", o.data_dir, "folder for state.json, volumes and snapshots")->required();
  app.add_option("--catalog", o.catalog_dir, "folder holding catalog.json of base images");
  app.add_option("--device-dir", o.device_dir, "where AttachVolume makes by-id links (default <data>/dev/disk/by-id)");
  app.add_option("--seed", o.seed, "seed for ids and faults")->capture_default_str();
  app.add_option("--speed", o.speed, "duration multiplier: 0 instant, 1 about AWS")->capture_default_str();
  app.add_option("--faults", text.faults, "fault spec, e.g. throttle=0.1,5xx=0.05,op=PutSnapshotBlock");
  app.add_option("--latency", text.latency,
                 "milliseconds added to each answer of an operation, e.g. "
                 "ebs:GetSnapshotBlock=60,ebs:PutSnapshotBlock=100,CreateSnapshot=200");
  app.add_option("--deny", text.deny, "operations to refuse as unauthorized, e.g. CreateVolume,ebs:GetSnapshotBlock");
  app.add_option("--access-key-id", o.access_key_id, "access key id accepted")->capture_default_str();
  app.add_option("--secret-access-key", o.secret_access_key, "secret key of that id (a public test value by default)");
  app.add_option("--threads", o.threads, "HTTP worker threads")->capture_default_str();
  app.add_flag("--unshared-catalog-snapshots", o.unshared_catalog_snapshots,
               "catalog (Amazon) snapshots are not usable by the account: CreateVolume and "
               "DescribeSnapshots answer InvalidSnapshot.NotFound; CopyImage still works");
  app.add_flag("--no-verify-signatures", text.no_verify, "accept any signature (debugging only)");
}

Result<Options> parse_command_line(int argc, char** argv) {
  Options o;
  CommandLineText text;
  CLI::App app{"awsemu: a local AWS endpoint (EC2, SSM, STS, EBS direct, IMDSv2) with "
               "disk-backed volumes and snapshots"};
  add_command_line_options(app, o, text);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return make_error(app.help(), "", 0);
  } catch (const CLI::ParseError& e) {
    return make_error(std::string("awsemu: ") + e.what(), "run awsemu --help", 2);
  }
  o.verify_signatures = !text.no_verify;
  if (o.speed < 0) return make_error("awsemu: --speed must be 0 or more", "", 2);
  if (o.threads < 4) return make_error("awsemu: --threads must be at least 4", "", 2);
  if (!text.faults.empty()) {
    auto spec = parse_fault_spec(text.faults);
    if (!spec) {
      Error e = spec.error();
      e.code = 2;
      return e;
    }
    o.faults = *spec;
  }
  if (!text.latency.empty()) {
    auto spec = parse_latency_spec(text.latency);
    if (!spec) {
      Error e = spec.error();
      e.code = 2;
      return e;
    }
    o.latency_ms = *spec;
  }
  std::stringstream items(text.deny);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (!item.empty()) o.deny.insert(item);
  }
  return o;
}

}  // namespace amibake::emu
