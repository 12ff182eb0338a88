// Glue between the command line and the bake. SIGINT is counted (not handled by
// default action) so the build can stop at its next check, clean up, and exit 130.
#include "cli/build_cmds.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "aws/client.h"
#include "bake/build.h"
#include "bake/host_checks.h"
#include "bake/journal.h"
#include "bake/publish.h"
#include "cli/base_cmd.h"

namespace amibake::cli {
namespace {

std::atomic<int> g_interrupts{0};
// The running build's id, for the second Ctrl-C's message (async-signal-safe reads).
char g_build_id[64] = "";

extern "C" void on_sigint(int) {
  int n = ++g_interrupts;
  if (n == 1) {
    static const char msg[] = "\namibake: interrupted: stopping and removing what this build made "
                              "(Ctrl-C again to stop at once)\n";
    (void)!::write(2, msg, sizeof msg - 1);
    return;
  }
  // Second Ctrl-C: exit at once; the journal knows what is left.
  static const char msg[] = "\namibake: interrupted again: stopping now; remove what is left with "
                            "`amibake cleanup ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_build_id, ::strlen(g_build_id));
  (void)!::write(2, "`\n", 2);
  ::_exit(130);
}

void install_sigint_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

Result<bake::BuildOptions> options_from(const BuildFlags& f) {
  bake::BuildOptions o;
  if (f.resume.empty() && f.recipe.empty()) {
    return make_error("build: give a recipe file, or --resume BUILD_ID", "", 2);
  }
  if (!f.recipe.empty()) {
    std::string skipped;
    AMIBAKE_ASSIGN(o.recipe, bake::load_checked_recipe(f.recipe, &skipped));
    if (!skipped.empty()) std::cerr << "amibake: note: " << skipped << "\n";
    o.recipe_hash = bake::recipe_identity(o.recipe);
  }
  o.method = f.method.empty() ? "direct" : f.method;
  if (!f.device_dir.empty()) o.device_dir = f.device_dir;
  if (!f.fetch.empty()) o.fetch = f.fetch;
  o.resume_id = f.resume;
  o.force = f.force;
  o.concurrency = f.concurrency;
  o.work_dir = f.work_dir;
  o.journal_dir = f.journal_dir;
  o.datavol_binary = f.datavol_binary;
  o.no_publish = f.no_publish;
  if (!f.publish_regions.empty()) o.recipe.publish.regions = f.publish_regions;
  return o;
}

// Clients for the other regions a publish reaches: the same settings, another region.
bake::RegionClientFactory region_clients(const aws::ClientSettings& settings) {
  return [settings](const std::string& region) {
    aws::ClientSettings s = settings;
    s.region = region;
    return aws::make_client(s);
  };
}

// Adds the flags build and publish share.
void add_publish_selection(CLI::App& cmd, BuildFlags& f) {
  cmd.add_option("--publish-region", f.publish_regions,
                 "publish to this region (repeatable; replaces the recipe's publish.regions)");
}

}  // namespace

void add_build_flags(CLI::App& cmd, BuildFlags& f, bool with_build) {
  cmd.add_option("recipe", f.recipe, "recipe file (TOML), e.g. examples/batch-worker.toml");
  cmd.add_option("--method", f.method,
                 "direct (EBS direct APIs, no instance; the default) or chroot (on an EC2 "
                 "instance: attach a volume made from the base, install, snapshot)")
      ->check(CLI::IsMember({"direct", "chroot"}));
  cmd.add_flag("--json", f.json, "print the result as JSON");
  if (!with_build) return;
  cmd.add_option("--resume", f.resume, "continue the build with this id");
  cmd.add_flag("--force", f.force, "build even when an AMI of the same base and recipe exists");
  cmd.add_option("--events", f.events, "progress on stderr: plain or json")
      ->check(CLI::IsMember({"plain", "json"}));
  cmd.add_option("--concurrency", f.concurrency, "block transfers in flight (default 16)")
      ->check(CLI::Range(1, 256));
  cmd.add_option("--work-dir", f.work_dir, "where the local image is kept");
  cmd.add_option("--journal-dir", f.journal_dir, "where build journals are kept");
  cmd.add_option("--device-dir", f.device_dir,
                 "chroot: where udev links attached EBS volumes by id (default /dev/disk/by-id)");
  cmd.add_option("--fetch", f.fetch,
                 "direct: how the base's blocks are read: lazy (only the blocks the install "
                 "touches, through FUSE), full (every written block) or auto (lazy, else full; "
                 "the default)")
      ->check(CLI::IsMember({"auto", "lazy", "full"}));
  cmd.add_option("--datavol-binary", f.datavol_binary,
                 "install this datavol binary instead of the embedded one");
  cmd.add_flag("--no-publish", f.no_publish, "skip the recipe's [publish] steps");
  add_publish_selection(cmd, f);
}

void add_publish_flags(CLI::App& cmd, BuildFlags& f) {
  cmd.add_option("recipe", f.recipe, "recipe file (TOML) with a [publish] table")->required();
  cmd.add_option("--ami", f.ami,
                 "the AMI to publish (default: the family's newest); an older one rolls back");
  cmd.add_option("--resume", f.resume, "continue the publish with this id");
  cmd.add_flag("--json", f.json, "print the result as JSON");
  cmd.add_option("--events", f.events, "progress on stderr: plain or json")
      ->check(CLI::IsMember({"plain", "json"}));
  cmd.add_option("--journal-dir", f.journal_dir, "where build journals are kept");
  add_publish_selection(cmd, f);
}

int run_plan(const aws::ClientSettings& settings, const BuildFlags& flags) {
  auto o = options_from(flags);
  if (!o) return report_error(o.error());
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  o->region_client = region_clients(settings);
  auto plan = bake::make_plan(**client, *o);
  if (!plan) return report_error(plan.error());
  std::cout << (flags.json ? plan->json.dump(2) + "\n" : plan->text);
  return 0;
}

int run_build_command(const aws::ClientSettings& settings, const BuildFlags& flags) {
  BuildFlags f = flags;
  if (!f.resume.empty()) {
    // A resumed build keeps the recipe (unless named again), method and device folder
    // it started with; the journal knows them.
    std::string dir = f.journal_dir.empty() ? bake::Journal::default_dir() : f.journal_dir;
    auto j = bake::Journal::open(dir, f.resume);
    if (!j) return report_error(j.error());
    if (f.recipe.empty()) f.recipe = j->state().start_string("recipe");
    if (f.method.empty()) f.method = j->state().start_string("method", "direct");
    if (f.device_dir.empty()) f.device_dir = j->state().start_string("device_dir");
    if (f.fetch.empty()) f.fetch = j->state().start_string("fetch");
  }
  auto o = options_from(f);
  if (!o) return report_error(o.error());
  // What the method needs on this host, before the first AWS call: a build that cannot
  // mount the image stops here, not after copying and downloading the base.
  if (auto host = bake::check_build_host(o->method, o->recipe, o->work_dir); !host) {
    return report_error(host.error());
  }
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  bake::Events events(flags.events == "json" ? bake::EventFormat::kJson
                                              : bake::Events::plain_or_live());
  install_sigint_handler();
  o->on_build_id = [](const std::string& id) {
    std::snprintf(g_build_id, sizeof g_build_id, "%s", id.c_str());
  };
  o->region_client = region_clients(settings);
  auto r = bake::run_build(**client, *o, events, g_interrupts);
  if (!r) return report_error(r.error());
  if (flags.json) {
    nlohmann::json out = {{"build_id", r->build_id}, {"region", r->region}, {"ami", r->ami_id},
                          {"reused", r->reused_existing}, {"manifest", r->manifest_path},
                          {"published", r->manifest.value("published", nlohmann::json::object())}};
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << r->ami_id << "\n";
  }
  return 0;
}

int run_publish_command(const aws::ClientSettings& settings, const BuildFlags& flags) {
  auto o = options_from(flags);
  if (!o) return report_error(o.error());
  if (!o->recipe.publish.any()) {
    return report_error(make_error("publish: " + flags.recipe + " has no [publish] table",
                                   "add one (docs/publish.md)", 2));
  }
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  if (flags.resume.empty()) {
    o->publish_ami = flags.ami;
    if (o->publish_ami.empty()) {
      auto newest = bake::newest_of_family(**client, o->recipe.family);
      if (!newest) return report_error(newest.error());
      o->publish_ami = *newest;
    }
  } else {
    std::string dir = flags.journal_dir.empty() ? bake::Journal::default_dir() : flags.journal_dir;
    auto j = bake::Journal::open(dir, flags.resume);
    if (!j) return report_error(j.error());
    o->publish_ami = j->state().start_string("publish_ami");
  }
  bake::Events events(flags.events == "json" ? bake::EventFormat::kJson
                                              : bake::Events::plain_or_live());
  install_sigint_handler();
  o->region_client = region_clients(settings);
  auto r = bake::run_build(**client, *o, events, g_interrupts);
  if (!r) return report_error(r.error());
  if (flags.json) {
    std::cout << nlohmann::json{{"build_id", r->build_id}, {"ami", r->ami_id},
                                {"published", r->manifest.value("published", nlohmann::json::object())}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << r->ami_id << "\n";
  }
  return 0;
}

int run_prune_command(const aws::ClientSettings& settings, const PruneFlags& flags) {
  auto recipe = bake::load_recipe(flags.recipe);
  if (!recipe) return report_error(recipe.error());
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  bake::Events events;
  bake::PruneOptions po;
  po.keep = flags.keep;
  po.remove = flags.remove;
  po.region_client = region_clients(settings);
  auto r = bake::prune(**client, *recipe, po, events);
  if (!r) return report_error(r.error());
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : *r) {
      out.push_back({{"region", e.region}, {"image", e.image}, {"name", e.name},
                     {"created", e.created}, {"keep", e.keep}, {"reasons", e.reasons},
                     {"snapshots", e.snapshots}, {"outcome", e.outcome}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  size_t doomed = 0;
  for (const auto& e : *r) {
    std::string what = e.keep ? "keep  " : (flags.remove ? "pruned" : "prune ");
    std::cout << e.region << "  " << e.image << "  " << e.created << "  " << what << "  ";
    if (e.keep) {
      for (size_t i = 0; i < e.reasons.size(); ++i) std::cout << (i ? "; " : "") << e.reasons[i];
    } else {
      std::cout << (e.outcome.empty() ? std::to_string(e.snapshots.size()) + " snapshot(s)" : e.outcome);
      ++doomed;
    }
    std::cout << "\n";
  }
  if (!flags.remove) {
    std::cout << doomed << " AMI(s) would be deregistered; nothing changed (run with --delete)\n";
  }
  return 0;
}

int run_cleanup(const aws::ClientSettings& settings, const CleanupFlags& flags) {
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  bake::Events events;
  install_sigint_handler();
  auto r = bake::cleanup_build(**client, flags.journal_dir, flags.build_id, events, &g_interrupts,
                               region_clients(settings));
  if (!r) return report_error(r.error());
  for (const auto& id : r->removed) std::cout << "removed " << id << "\n";
  for (const auto& f : r->failed) std::cerr << "amibake: not removed: " << f << "\n";
  if (!r->failed.empty()) {
    std::cerr << "  hint: fix the cause and run `amibake cleanup " << flags.build_id << "` again\n";
    return 1;
  }
  return 0;
}

int run_gc(const aws::ClientSettings& settings, const GcFlags& flags) {
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  bake::Events events;
  int64_t older = 0;
  if (!flags.older_than.empty()) {
    auto age = bake::parse_age(flags.older_than);
    if (!age) return report_error(age.error());
    older = *age;
  }
  auto r = bake::gc(**client, flags.remove, flags.copies, older, events);
  if (!r) return report_error(r.error());
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : *r) {
      out.push_back({{"kind", l.kind}, {"id", l.id}, {"build_id", l.build_id}, {"role", l.role},
                     {"state", l.state}, {"created", l.created}});
    }
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& l : *r) {
      std::cout << l.kind << " " << l.id << " " << (l.build_id.empty() ? "-" : l.build_id) << " "
                << l.role << " " << l.state << " " << l.created << "\n";
    }
    if (!flags.remove && !r->empty()) std::cerr << "amibake: run `amibake gc --delete` to remove these\n";
  }
  return 0;
}

int run_list(const ListFlags& flags) {
  auto builds = bake::list_builds(flags.journal_dir);
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : builds) {
      out.push_back({{"build_id", b.build_id}, {"state", b.state}, {"started", b.started},
                     {"recipe", b.recipe}, {"region", b.region}, {"ami", b.ami}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  for (const auto& b : builds) {
    std::cout << b.build_id << "  " << b.state << "  " << (b.ami.empty() ? "-" : b.ami) << "  "
              << b.region << "  " << b.recipe << "\n";
  }
  return 0;
}

int run_iam_policy(const std::string& method, const std::string& recipe_path) {
  if (recipe_path.empty()) {
    std::cout << bake::iam_policy(method).dump(2) << "\n";
    return 0;
  }
  auto recipe = bake::load_recipe(recipe_path);
  if (!recipe) return report_error(recipe.error());
  std::cout << bake::iam_policy(method, &*recipe).dump(2) << "\n";
  return 0;
}

}  // namespace amibake::cli
