// `amibake plan|build|cleanup|gc|iam-policy`: flags and the glue to src/bake.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aws/config.h"

namespace amibake::cli {

struct BuildFlags {
  std::string recipe;
  std::string method;  // empty: the resumed build's, else "direct"
  std::string resume;
  bool force = false;
  bool json = false;
  std::string events = "plain";  // plain | json
  int concurrency = 16;
  std::string work_dir, journal_dir, datavol_binary;
  std::string device_dir;  // chroot: udev by-id folder; empty: the resumed build's, else default
  std::string fetch;       // direct: auto | lazy | full; empty: the resumed build's, else auto
  bool no_publish = false;                   // skip the [publish] steps
  std::vector<std::string> publish_regions;  // --publish-region: replaces publish.regions
  std::string ami;                           // publish: the AMI (default: the family's newest)
};

// Adds the flags of `publish` to `cmd`.
void add_publish_flags(CLI::App& cmd, BuildFlags& flags);
int run_publish_command(const aws::ClientSettings& settings, const BuildFlags& flags);

struct PruneFlags {
  std::string recipe;
  std::optional<int64_t> keep;
  bool remove = false;
  bool json = false;
};
int run_prune_command(const aws::ClientSettings& settings, const PruneFlags& flags);

// Adds the flags of `plan` (with_build = false) or `build` (true) to `cmd`.
void add_build_flags(CLI::App& cmd, BuildFlags& flags, bool with_build);

int run_plan(const aws::ClientSettings& settings, const BuildFlags& flags);
int run_build_command(const aws::ClientSettings& settings, const BuildFlags& flags);

struct CleanupFlags {
  std::string build_id;
  std::string journal_dir;
};
int run_cleanup(const aws::ClientSettings& settings, const CleanupFlags& flags);

struct GcFlags {
  bool remove = false;
  bool copies = false;
  bool json = false;
  std::string older_than;  // "1d": only resources at least this old
};
int run_gc(const aws::ClientSettings& settings, const GcFlags& flags);

// With a recipe: plus what its [publish] (and prune) need.
int run_iam_policy(const std::string& method, const std::string& recipe_path = "");

struct ListFlags {
  std::string journal_dir;
  bool json = false;
};
int run_list(const ListFlags& flags);

}  // namespace amibake::cli
