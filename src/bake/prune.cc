// `amibake prune` (publish.h): the family's old AMIs go, never one still in use.
#include <algorithm>
#include <ctime>
#include <set>

#include "aws/ec2.h"
#include "aws/model.h"
#include "aws/ssm.h"
#include "bake/publish.h"

namespace amibake::bake {

using aws::model::Json;

namespace {

// Seconds since the epoch of an EC2 ISO 8601 time ("2026-12-01T10:00:00.000Z"); 0 when
// unreadable (such an AMI counts as new: never pruned by age).
int64_t epoch_of(const std::string& iso) {
  std::tm tm{};
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

Result<std::vector<aws::ec2::Image>> family_images(aws::AwsClient& client, const std::string& family) {
  aws::ec2::DescribeImagesRequest find;
  find.owners = {"self"};
  find.filters = {{"tag:" + std::string(kTagFamily), {family}}};
  AMIBAKE_ASSIGN(auto images, aws::ec2::describe_images(client, find));
  images.erase(std::remove_if(images.begin(), images.end(),
                              [](const auto& i) { return i.state != "available"; }),
               images.end());
  std::sort(images.begin(), images.end(), [](const auto& a, const auto& b) {
    return a.creation_date != b.creation_date ? a.creation_date > b.creation_date
                                              : a.image_id > b.image_id;
  });
  return images;
}

// What in the region points at an AMI: image id -> reasons.
Result<std::map<std::string, std::vector<std::string>>> references(aws::AwsClient& client,
                                                                   const Recipe& recipe) {
  std::map<std::string, std::vector<std::string>> refs;
  const std::string& param = recipe.publish.ssm_parameter;
  if (!param.empty()) {
    auto p = aws::ssm::get_parameter(client, param);
    if (p) {
      refs[p->value].push_back("SSM parameter " + param);
    } else if (p.error().aws_code != "ParameterNotFound") {
      return p.error();
    }
  }
  // Every launch template of the account, not only the recipe's: $Default and $Latest.
  AMIBAKE_ASSIGN(Json lts, aws::model::call_all_pages(client, aws::model::ec2(),
                                                      "DescribeLaunchTemplates", Json::object()));
  for (const auto& lt : lts.value("LaunchTemplates", Json::array())) {
    std::string id = lt.value("LaunchTemplateId", "");
    AMIBAKE_ASSIGN(Json versions,
                   aws::model::call(client, aws::model::ec2(), "DescribeLaunchTemplateVersions",
                                    Json{{"LaunchTemplateId", id},
                                         {"Versions", Json::array({"$Default", "$Latest"})}}));
    for (const auto& v : versions.value("LaunchTemplateVersions", Json::array())) {
      std::string image = v.value("LaunchTemplateData", Json::object()).value("ImageId", "");
      if (image.empty()) continue;
      refs[image].push_back("launch template " + lt.value("LaunchTemplateName", id) + " version " +
                            std::to_string(v.value("VersionNumber", int64_t{0})) +
                            (v.value("DefaultVersion", false) ? " ($Default)" : " ($Latest)"));
    }
  }
  // Batch compute environments: imageIdOverride, or the launch template version used.
  auto ces = aws::model::call_all_pages(client, aws::model::batch(), "DescribeComputeEnvironments",
                                        Json::object());
  if (!ces) return ces.error();
  for (const auto& ce : ces->value("computeEnvironments", Json::array())) {
    const Json cr = ce.value("computeResources", Json::object());
    std::string name = ce.value("computeEnvironmentName", "?");
    for (const auto& c : cr.value("ec2Configuration", Json::array())) {
      if (c.contains("imageIdOverride")) {
        refs[c["imageIdOverride"]].push_back("Batch compute environment " + name);
      }
    }
    if (cr.contains("launchTemplate")) {
      const Json& lt = cr["launchTemplate"];
      Json in = Json::object();
      if (lt.contains("launchTemplateId")) in["LaunchTemplateId"] = lt["launchTemplateId"];
      else if (lt.contains("launchTemplateName")) in["LaunchTemplateName"] = lt["launchTemplateName"];
      else continue;
      in["Versions"] = Json::array({lt.value("version", "$Default")});
      auto v = aws::model::call(client, aws::model::ec2(), "DescribeLaunchTemplateVersions", in);
      if (!v) continue;  // a template Batch names but that is gone references nothing
      for (const auto& ver : v->value("LaunchTemplateVersions", Json::array())) {
        std::string image = ver.value("LaunchTemplateData", Json::object()).value("ImageId", "");
        if (!image.empty()) refs[image].push_back("Batch compute environment " + name + " (launch template)");
      }
    }
  }
  return refs;
}

}  // namespace

Result<std::string> newest_of_family(aws::AwsClient& client, const std::string& family) {
  AMIBAKE_ASSIGN(auto images, family_images(client, family));
  if (images.empty()) {
    return make_error("no available AMI of family '" + family + "' in " + client.region(),
                      "build one first (`amibake build RECIPE`), or name it with --ami", 2);
  }
  return images.front().image_id;
}

Result<std::vector<PruneEntry>> prune(aws::AwsClient& client, const Recipe& recipe,
                                      const PruneOptions& options, Events& events) {
  int64_t keep = options.keep.value_or(recipe.retention.keep);
  if (keep < 1) {
    return make_error("prune: --keep " + std::to_string(keep) + " would remove every AMI of the family",
                      "keep at least 1", 2);
  }
  std::vector<std::string> regions = {client.region()};
  for (const auto& r : recipe.publish.regions) {
    if (std::find(regions.begin(), regions.end(), r) == regions.end()) regions.push_back(r);
  }
  const int64_t now = std::time(nullptr);
  std::vector<PruneEntry> out;
  for (const auto& region : regions) {
    std::unique_ptr<aws::AwsClient> owned;
    aws::AwsClient* c = &client;
    if (region != client.region()) {
      if (!options.region_client) return make_error("prune: no client for region " + region);
      AMIBAKE_ASSIGN(owned, options.region_client(region));
      c = owned.get();
    }
    AMIBAKE_ASSIGN(auto images, family_images(*c, recipe.family));
    AMIBAKE_ASSIGN(auto refs, references(*c, recipe));
    std::vector<PruneEntry> region_entries;
    for (size_t i = 0; i < images.size(); ++i) {
      const auto& img = images[i];
      PruneEntry e{region, img.image_id, img.name, img.creation_date, true, {}, {}, {}};
      if (static_cast<int64_t>(i) < keep) e.reasons.push_back("one of the newest " + std::to_string(keep));
      int64_t created = epoch_of(img.creation_date);
      if (created == 0 || now - created < recipe.retention.min_age_days * 86400) {
        e.reasons.push_back("younger than " + std::to_string(recipe.retention.min_age_days) + " days");
      }
      if (auto it = refs.find(img.image_id); it != refs.end()) {
        for (const auto& why : it->second) e.reasons.push_back("used by " + why);
      }
      // Instances launched from it that are not terminated.
      aws::ec2::DescribeInstancesRequest di;
      di.filters = {{"image-id", {img.image_id}},
                    {"instance-state-name", {"pending", "running", "stopping", "stopped"}}};
      AMIBAKE_ASSIGN(auto instances, aws::ec2::describe_instances(*c, di));
      for (const auto& inst : instances) {
        e.reasons.push_back("used by instance " + inst.instance_id + " (" + inst.state + ")");
      }
      e.keep = !e.reasons.empty();
      for (const auto& m : img.block_device_mappings) {
        if (m.ebs && !m.ebs->snapshot_id.empty()) e.snapshots.push_back(m.ebs->snapshot_id);
      }
      region_entries.push_back(std::move(e));
    }
    if (options.remove) {
      for (auto& e : region_entries) {
        if (e.keep) continue;
        // Only snapshots amibake made are deleted: never a base copy (`gc --copies` owns
        // those) or anything untagged.
        std::vector<std::string> ours;
        if (!e.snapshots.empty()) {
          aws::ec2::DescribeSnapshotsRequest ds;
          ds.snapshot_ids = e.snapshots;
          AMIBAKE_ASSIGN(auto snaps, aws::ec2::describe_snapshots(*c, ds));
          for (const auto& s : snaps) {
            std::string role = aws::ec2::find_tag(s.tags, kTagRole);
            if (!aws::ec2::find_tag(s.tags, kTagBuildId).empty() && role != "base-copy") {
              ours.push_back(s.snapshot_id);
            }
          }
        }
        AMIBAKE_TRY(aws::ec2::deregister_image(*c, e.image));
        size_t deleted = 0;
        for (const auto& s : ours) {
          auto d = aws::ec2::delete_snapshot(*c, s);
          if (!d) {
            events.warn("could not delete snapshot " + s + " of " + e.image + " in " + region + ": " +
                        d.error().message);
            continue;
          }
          ++deleted;
        }
        e.snapshots = ours;
        e.outcome = "deregistered, " + std::to_string(deleted) + " of " + std::to_string(ours.size()) +
                    " snapshot(s) deleted";
        events.info(e.image + " in " + region + ": " + e.outcome);
      }
    }
    for (auto& e : region_entries) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace amibake::bake
