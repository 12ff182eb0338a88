// `amibake publish` and `amibake prune` (docs/publish.md): what the CLI calls besides
// run_build. The publish steps themselves live in publish.cc and run in run_build.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aws/client.h"
#include "bake/build.h"
#include "bake/events.h"
#include "bake/recipe.h"
#include "base/result.h"

namespace amibake::bake {

// The newest available AMI of `family` the account owns in the client's region, or an
// error saying there is none.
Result<std::string> newest_of_family(aws::AwsClient& client, const std::string& family);

// One AMI of the family in one region, and what prune decides for it.
struct PruneEntry {
  std::string region, image, name, created;
  bool keep = true;
  std::vector<std::string> reasons;     // why it is kept ("newest 3", "SSM /x", ...)
  std::vector<std::string> snapshots;   // amibake's own snapshots it owns
  std::string outcome;                  // with --delete: "deregistered, 1 snapshot deleted"
};
struct PruneOptions {
  std::optional<int64_t> keep;  // overrides [retention] keep
  bool remove = false;          // --delete
  RegionClientFactory region_client;
};
// Lists the family's AMIs in every region the recipe publishes to, newest first, with
// what would be deregistered; with `remove`, deregisters those and deletes their
// amibake snapshots. Never touches an AMI still referenced (SSM parameter, launch
// template $Default/$Latest, Batch compute environment, instance not terminated).
Result<std::vector<PruneEntry>> prune(aws::AwsClient& client, const Recipe& recipe,
                                      const PruneOptions& options, Events& events);

}  // namespace amibake::bake
