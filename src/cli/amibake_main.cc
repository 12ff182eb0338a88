// amibake's command table. Each command is one line below; its work lives in the
// library it belongs to (src/bake, src/aws) so tests can call it without a process.
//
// Output contract: stdout carries only results (so `X=$(amibake base --json)` works);
// progress, logs and errors go to stderr. Exit codes: 0 success, 1 failure, 2 usage,
// 130 interrupted (STYLE.md).
#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>

#include "aws/config.h"
#include "bake/payload_install.h"
#include "base/log.h"
#include "cli/base_cmd.h"
#include "cli/build_cmds.h"
#include "cli/doctor.h"
#include "emulator/server.h"
#include "verify/verify_cmd.h"

namespace amibake::cli {
namespace {

// Attempts per AWS request unless AWS_MAX_ATTEMPTS says otherwise: with full-jitter
// backoff capped at 20 s this rides out about a minute of throttling per request.
constexpr int kDefaultMaxAttempts = 10;

struct GlobalFlags {
  std::string region, profile, endpoint_url;
  bool verbose = false;

  aws::ClientSettings settings() const {
    aws::ClientSettings s;
    if (!region.empty()) s.region = region;
    if (!profile.empty()) s.profile = profile;
    if (!endpoint_url.empty()) s.endpoint_url = endpoint_url;
    s.default_max_attempts = kDefaultMaxAttempts;
    return s;
  }
};

void add_global_flags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--region", g.region, "AWS region (else AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS)");
  app.add_option("--profile", g.profile, "profile in ~/.aws/config and ~/.aws/credentials");
  app.add_option("--endpoint-url", g.endpoint_url,
                 "send every AWS call here (e.g. a local awsemu); else AWS_ENDPOINT_URL*");
  app.add_flag("-v,--verbose", g.verbose, "log debug detail to stderr");
}

}  // namespace

int main(int argc, char** argv) {
  log::set_program("amibake");
  CLI::App app{"amibake: bake AWS Batch / ECS worker AMIs with a prepared /data volume"};
  // The version line also names the architectures whose datavol this binary carries.
  std::string datavol_archs;
  for (const auto& a : bake::embedded_datavol_architectures())
    datavol_archs += (datavol_archs.empty() ? "" : ", ") + a;
  const std::string version =
      std::string("amibake ") + AMIBAKE_VERSION + " (datavol: " + datavol_archs + ")";
  app.set_version_flag("--version", version);
  app.require_subcommand(1);
  app.fallthrough();
  GlobalFlags g;
  add_global_flags(app, g);

  // The command table: name, one-line purpose, what runs. Commands run after the
  // whole command line is parsed, so global flags (-v) apply to them.
  std::function<int()> run;
  auto command = [&](const char* name, const char* purpose, std::function<int()> body) {
    auto* sub = app.add_subcommand(name, purpose);
    sub->callback([&run, body] { run = body; });
    return sub;
  };
  command("version", "print the version", [&] {
    std::cout << version << "\n";
    return 0;
  });
  command("help", "show this help", [&] {
    // app.help() would describe the selected subcommand ("help" itself).
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  });
  command("doctor", "check credentials, region, endpoints and this host",
          [&] { return run_doctor(g.settings(), std::cout); });
  BaseFlags base_flags;
  add_base_flags(*command("base", "resolve and describe the base AMI",
                          [&] { return run_base(g.settings(), base_flags, std::cout); }),
                 base_flags);

  BuildFlags plan_flags, build_flags;
  add_build_flags(*command("plan", "show what a build would do; changes nothing",
                           [&] { return run_plan(g.settings(), plan_flags); }),
                  plan_flags, /*with_build=*/false);
  add_build_flags(*command("build", "bake the AMI; prints its id on stdout",
                           [&] { return run_build_command(g.settings(), build_flags); }),
                  build_flags, /*with_build=*/true);
  verify::VerifyFlags verify_flags;
  verify::add_verify_flags(*command("verify", "boot an AMI under QEMU (local endpoint) and check /data",
                                    [&] { return verify::run_verify_command(g.settings(), verify_flags); }),
                           verify_flags);
  CleanupFlags cleanup_flags;
  auto* cleanup = command("cleanup", "remove what a failed or interrupted build left",
                          [&] { return run_cleanup(g.settings(), cleanup_flags); });
  cleanup->add_option("build-id", cleanup_flags.build_id, "the build id (b-...)")->required();
  cleanup->add_option("--journal-dir", cleanup_flags.journal_dir, "where build journals are kept");
  GcFlags gc_flags;
  auto* gc = command("gc", "find (and with --delete remove) leftovers of unfinished builds",
                     [&] { return run_gc(g.settings(), gc_flags); });
  gc->add_flag("--delete", gc_flags.remove, "remove what is found");
  gc->add_flag("--copies", gc_flags.copies, "include the cached copies of base AMIs");
  gc->add_flag("--json", gc_flags.json, "print JSON");
  gc->add_option("--older-than", gc_flags.older_than, "only resources at least this old: 30m, 12h, 1d");
  ListFlags list_flags;
  auto* list = command("list", "show the builds this machine's journal knows and their state",
                       [&] { return run_list(list_flags); });
  list->add_option("--journal-dir", list_flags.journal_dir, "where build journals are kept");
  list->add_flag("--json", list_flags.json, "print JSON");
  std::string iam_method = "direct";
  command("iam-policy", "print the minimal IAM policy for a method",
          [&] { return run_iam_policy(iam_method); })
      ->add_option("--method", iam_method, "direct or chroot")
      ->check(CLI::IsMember({"direct", "chroot"}));

  // `amibake emulator ...` is awsemu itself (same flags), so one file is enough for a
  // user's dry run. Its arguments are awsemu's, so they bypass this parser.
  command("emulator", "run the local AWS endpoint (awsemu; same flags, see `amibake emulator --help`)",
          [] { return 0; });
  // Internal: the payload install in a child process (bake/payload_install.h).
  if (argc == 3 && std::string_view(argv[1]) == "__install-payload") {
    return bake::run_install_payload_child(argv[2]);
  }
  if (argc >= 2 && std::string_view(argv[1]) == "emulator") {
    std::string name = "awsemu";
    std::vector<char*> emu_argv = {name.data()};
    for (int i = 2; i < argc; ++i) emu_argv.push_back(argv[i]);
    emu_argv.push_back(nullptr);
    return emu::run_main(static_cast<int>(emu_argv.size()) - 1, emu_argv.data());
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << "amibake: " << e.what() << "\n  hint: run `amibake help`\n";
    return 2;
  }
  if (g.verbose) log::set_level(log::Level::kDebug);
  return run ? run() : 2;
}

}  // namespace amibake::cli

int main(int argc, char** argv) { return amibake::cli::main(argc, argv); }
