// The recipe: what to bake, as a TOML file (docs/recipe.md).
//
// Parsing is strict: an unknown key or a wrong type is an error naming the file,
// line and key, because a silently ignored typo ("encryptd = true") would produce
// an AMI that looks right and is not.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "aws/ec2.h"
#include "bake/base_image.h"
#include "base/result.h"
#include "datavol/config.h"

namespace amibake::bake {

// One extra EBS volume in the AMI's block device mapping, and how datavol prepares it.
struct RecipeVolume {
  std::string device = "/dev/xvdb";  // mapping name in the AMI
  int64_t size_gib = 1024;
  std::string type = "gp3";
  std::optional<int64_t> iops;        // gp3/io1/io2
  std::optional<int64_t> throughput;  // gp3, MiB/s
  bool encrypted = true;              // DEVELOPERS.md: data volume encrypted by default
  std::string kms_key_id;             // empty = the account's default EBS key
  bool delete_on_termination = true;
  datavol::VolumeConfig datavol;      // mount, filesystem, label, owner, mode, required_by...
  // The mount point may exist in the image with files in it: mounting hides them. Off by
  // default, so a mount over e.g. a populated /opt is refused at install time.
  bool hide_existing = false;
  // required_by was written in the recipe (checked strictly against the image's units);
  // false = datavol's defaults (docker, containerd, ecs), kept only where the image has them.
  bool required_by_set = false;
};

// Image attributes the recipe may override; unset = carried over from the base.
struct AttributeOverrides {
  std::string imds_support = "v2.0";  // produced AMIs require IMDSv2 (DEVELOPERS.md)
  std::optional<std::string> boot_mode;
  std::optional<bool> ena_support;
  std::optional<std::string> sriov_net_support;
  std::optional<std::string> tpm_support;
};

// [publish]: where the AMI goes after it is registered (docs/publish.md). Each list
// applies in every published region: the build region and `regions`.
struct PublishSettings {
  std::vector<std::string> regions;                 // copies, besides the build region
  std::map<std::string, std::string> kms_key_ids;   // region -> key for that region's copy
  std::vector<std::string> share_accounts;          // 12-digit account ids
  std::vector<std::string> share_organizations;     // organization ARNs
  std::vector<std::string> share_ous;               // organizational unit ARNs
  bool share_snapshots = false;                     // also createVolumePermission
  std::string ssm_parameter;                        // "" = none
  std::vector<std::string> launch_templates;        // names or lt- ids
  bool set_default_version = true;
  std::vector<std::string> batch_compute_environments;  // names or ARNs
  std::optional<int64_t> deprecate_after_days;
  // True when anything besides the build region's AMI is asked for.
  bool any() const {
    return !regions.empty() || sharing() || !ssm_parameter.empty() || !launch_templates.empty() ||
           !batch_compute_environments.empty() || deprecate_after_days.has_value();
  }
  bool sharing() const {
    return !share_accounts.empty() || !share_organizations.empty() || !share_ous.empty();
  }
};

// [retention]: what `amibake prune` keeps, per region.
struct RetentionSettings {
  int64_t keep = 3;          // newest AMIs of the family kept
  int64_t min_age_days = 7;  // never prune an AMI younger than this
};

struct Recipe {
  std::string path;  // where it was read from ("" for flags only)
  // Lineage name (tag amibake:family): what publish finds the newest AMI by and prune
  // prunes within. Default: the recipe file's stem.
  std::string family;
  PublishSettings publish;
  RetentionSettings retention;
  BaseSelector base;
  std::string name = "amibake-{base_name}-{date}";
  std::string description = "{base_name} with a data volume prepared by amibake datavol";
  std::map<std::string, std::string> image_tags;
  std::map<std::string, std::string> snapshot_tags;
  std::optional<int64_t> root_size_gib;  // unset = the base's root size
  std::vector<RecipeVolume> volumes;
  AttributeOverrides attributes;
  // Line of every key the recipe set ("volume[0].device" -> 14), so checks made later
  // (against the base) can name the line too.
  std::map<std::string, int> key_lines;
};

// How many tags amibake puts on the AMI and on its root snapshot besides the recipe's
// (amibake:build-id, role, temporary, family, base-image, recipe-hash; the snapshot also
// claim-alive): the recipe's own must fit in EC2's 50 per resource beside them.
inline constexpr size_t kAmibakeTagsPerResource = 7;

// Every problem found in a recipe, each "r.toml:12: volume[0].mount: what is wrong".
struct RecipeProblems {
  std::string origin;
  std::vector<std::string> lines;
  // Adds "origin:line: key: what" (no ":line" when line is 0).
  void add(int line, const std::string& key, const std::string& what);
  // ok() when there is none; else one error (exit code 2) listing them all.
  Status to_status() const;
};

// A recipe as read, with every problem found by the checks that need neither AWS nor
// the host: types, unknown keys, AWS's limits, mount points, datavol's rules.
struct RecipeRead {
  Recipe recipe;
  RecipeProblems problems;
};
RecipeRead read_recipe(const std::string& text, const std::string& origin);

// Parses recipe TOML text; `origin` names it in errors ("r.toml:12: ..."). Errors carry
// exit code 2 (bad input) and list every problem found (read_recipe).
Result<Recipe> parse_recipe(const std::string& text, const std::string& origin);

// Reads and parses a recipe file.
Result<Recipe> load_recipe(const std::string& path);
// Reads a recipe file's text; a missing file is a usage error (exit code 2) with a hint.
Result<std::string> read_recipe_file(const std::string& path);

// Checks the recipe against the resolved base image, before anything is created:
// a volume device that clashes with one of the base's mappings (root included), a root
// size smaller than the base's or over its volume type's limit, the name and description
// too long once expanded. Errors carry exit code 2 and list every problem.
Status check_against_base(const Recipe& recipe, const aws::ec2::Image& base);

// Expands {date} (UTC YYYYMMDD-HHMMSS), {base_name} and {base_id} in `pattern`.
std::string expand_name(const std::string& pattern, const aws::ec2::Image& base,
                        const std::string& utc_stamp);

// Normalises a device mapping name for comparisons: "/dev/sdb" and "xvdb" are the
// same slot on EC2 ("sd" <-> "xvd", "/dev/" prefix optional).
std::string normalise_device(const std::string& device);

}  // namespace amibake::bake
