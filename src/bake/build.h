// `amibake build`, `plan`, `cleanup` and `gc`: the bake pipeline and its janitors.
//
// A build is a flat list of named steps (build.cc reads like a table of contents).
// Every step records its result in the journal; `--resume` skips finished steps and
// redoes unfinished ones idempotently (client tokens, names, tags). Every AWS
// resource a build makes carries the tag amibake:build-id, so `cleanup` (with the
// journal) and `gc` (without it) can remove what a failed build left.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "bake/events.h"
#include "bake/recipe.h"
#include "base/result.h"

namespace amibake::bake {

// Tag keys on everything amibake creates.
inline constexpr const char* kTagBuildId = "amibake:build-id";
inline constexpr const char* kTagRole = "amibake:role";            // base-copy, root-snapshot, image
inline constexpr const char* kTagTemporary = "amibake:temporary";  // "true" | "false"
inline constexpr const char* kTagBaseImage = "amibake:base-image";
inline constexpr const char* kTagRecipeHash = "amibake:recipe-hash";
inline constexpr const char* kTagCopyOf = "amibake:copy-of";  // on the account's copy of a base
// On a root snapshot: when its build last said it is alive, or "stopped" (twin.cc).
inline constexpr const char* kTagClaimAlive = "amibake:claim-alive";
// The recipe's lineage ([image] family): what publish and prune find AMIs by.
inline constexpr const char* kTagFamily = "amibake:family";

// Makes a client for another region with the build's own settings (publish copies).
using RegionClientFactory =
    std::function<Result<std::unique_ptr<aws::AwsClient>>(const std::string& region)>;

struct BuildOptions {
  Recipe recipe;
  std::string recipe_hash;       // identity of the recipe (tags); see recipe_identity()
  std::string method = "direct";
  std::string resume_id;         // continue this build instead of starting one
  bool force = false;            // build even when an AMI of this base+recipe exists
  int concurrency = 16;          // block transfers in flight
  std::string work_dir;          // local image files; default default_work_dir()
  std::string journal_dir;       // default Journal::default_dir()
  // Path of a datavol binary to install instead of the embedded one (tests, dev builds).
  std::string datavol_binary;
  // chroot method: where udev's by-id links of attached EBS volumes are
  // (nvme-Amazon_Elastic_Block_Store_vol…); awsemu makes them in its own folder.
  std::string device_dir = "/dev/disk/by-id";
  // direct method: "lazy" fetches only the blocks the install reads (FUSE), "full" every
  // written block, "auto" lazy when FUSE works here, else full (saying so).
  std::string fetch = "auto";
  // Publishing ([publish], docs/publish.md): skipped with --no-publish. `publish_ami`
  // set = `amibake publish`: no bake, the publish steps for that existing AMI.
  bool no_publish = false;
  std::string publish_ami;
  RegionClientFactory region_client;  // nullptr = only the build region can be reached
  // Called once the build id is known (the CLI keeps it for its Ctrl-C message).
  std::function<void(const std::string&)> on_build_id;
};

struct BuildResult {
  std::string build_id;
  std::string region;
  std::string ami_id;
  bool reused_existing = false;  // an AMI of the same base and recipe existed
  nlohmann::json manifest;
  std::string manifest_path;
};

// Returns the hex SHA-256 identifying a recipe's content (what it bakes, not its
// comments or name pattern's date), used to find an existing AMI of the same recipe.
std::string recipe_identity(const Recipe& recipe);

// Runs (or resumes) a build. `interrupts` counts Ctrl-C presses: the first stops the
// build at the next check and removes what this build made (exit code 130 in the
// error); a second during that cleanup stops it and leaves the rest to `cleanup`.
Result<BuildResult> run_build(aws::AwsClient& client, const BuildOptions& options, Events& events,
                              const std::atomic<int>& interrupts);

// The plan: what `build` would do, as text lines and JSON. Makes no change.
struct Plan {
  nlohmann::json json;
  std::string text;
};
Result<Plan> make_plan(aws::AwsClient& client, const BuildOptions& options);

// The IAM policy (JSON document) a method needs, plus what `recipe`'s [publish] needs.
nlohmann::json iam_policy(const std::string& method, const Recipe* recipe = nullptr);
// The IAM actions the recipe's [publish] and `amibake prune` need (sorted, unique).
std::vector<std::string> publish_actions(const Recipe& recipe);

struct CleanupReport {
  std::vector<std::string> removed;  // ids
  std::vector<std::string> failed;   // "id: reason"
};
// Removes every resource build `build_id` made (journal first, then anything still
// carrying its build tag), newest first. Shared caches (the base copy) are kept.
// Resources in other regions (publish copies) are removed through `region_client`.
Result<CleanupReport> cleanup_build(aws::AwsClient& client, const std::string& journal_dir,
                                    const std::string& build_id, Events& events,
                                    const std::atomic<int>* interrupts = nullptr,
                                    const RegionClientFactory& region_client = nullptr);

struct Leftover {
  std::string kind, id, build_id, role, state;
  std::string created;  // ISO 8601 as EC2 reports it
};
// Finds resources tagged by amibake in the client's region whose build did not finish
// (or is unknown to the journal folder), and base copies no longer in use. With
// `remove`, deletes the leftovers (never images of finished builds).
// `older_than_seconds` > 0 keeps only resources created at least that long ago (a build
// running right now is not a leftover).
Result<std::vector<Leftover>> gc(aws::AwsClient& client, bool remove, bool include_copies,
                                 int64_t older_than_seconds, Events& events);

// Parses "90s", "30m", "12h", "1d", "2w" into seconds; errors name the input.
Result<int64_t> parse_age(const std::string& text);

// One line of `amibake list`: a build known to the journal folder.
struct BuildSummary {
  std::string build_id, state, started, recipe, region, ami;
};
// Lists the journals in `journal_dir` (default folder when empty), oldest first. State is
// "finished", "reused", "cleaned", "interrupted" or "unfinished" (failed, killed or running).
std::vector<BuildSummary> list_builds(const std::string& journal_dir);

}  // namespace amibake::bake
