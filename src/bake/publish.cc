// Publishing (docs/publish.md): the steps after register/verify that put the AMI where
// Batch workers use it, in every region of the recipe's [publish] table —
//   publish-check (right after resolve: every target exists and can be updated)
//   copy → share → ssm → launch-templates → batch → deprecate
// Each step is idempotent on resume: copies carry a client token from the build id and
// region, launch template versions one from the build id, region and template; SSM and
// Batch are set to a value, which setting again does not change.
//
// The SSM parameter, a launch template's default version and a compute environment are
// pointers the build moves but does not own. Before moving one, the step journals it
// (Journal::pointer) with what it pointed at before; the first record wins, so a resumed
// step keeps the state from before the build (a launch template version is made again
// from the same SourceVersion, which its client token requires). cleanup (cleanup.cc)
// puts those pointers back and deletes the build's launch template versions.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>

#include "aws/model.h"
#include "aws/sigv4.h"
#include "aws/ssm.h"
#include "bake/build_steps.h"

namespace amibake::bake {

using nlohmann::json;
using aws::model::Json;

namespace {

// Allocation strategies under which Batch updates a compute environment's instances in
// place (an "infrastructure update"); BEST_FIT environments must be replaced instead.
constexpr const char* kUpdatableStrategies[] = {"BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED",
                                                "SPOT_PRICE_CAPACITY_OPTIMIZED"};

std::string iso8601_in(int64_t seconds_from_now) {
  std::time_t t = std::time(nullptr) + seconds_from_now;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string short_hash(const std::string& text) { return aws::sha256_hex(text).substr(0, 32); }

const PublishSettings& settings(const StepContext& ctx) { return ctx.options.recipe.publish; }

bool publishing(const StepContext& ctx) { return !ctx.options.no_publish && settings(ctx).any(); }

json skipped(const std::string& why) { return {{"skipped", why}}; }

// The published images: the build region's, then each copy's (after the copy step).
struct Published {
  std::string region;
  std::string image;
  std::vector<std::string> snapshots;
  aws::AwsClient* client;
};

Result<std::vector<Published>> published(StepContext& ctx) {
  std::vector<Published> out;
  const json& copies = ctx.results.count("copy") ? ctx.results["copy"] : json::object();
  std::string home_image = ctx.results["register"]["image"];
  std::vector<std::string> home_snapshots;
  if (copies.contains("home_snapshots")) home_snapshots = copies["home_snapshots"];
  out.push_back({ctx.client.region(), home_image, home_snapshots, &ctx.client});
  if (copies.contains("regions")) {
    for (const auto& [region, c] : copies["regions"].items()) {
      AMIBAKE_ASSIGN(aws::AwsClient * client, ctx.client_in(region));
      out.push_back({region, c["image"], c.value("snapshots", std::vector<std::string>{}), client});
    }
  }
  return out;
}

Error refused(const std::string& message, const std::string& hint) {
  return make_error(message, hint, 2);
}

// Finds launch template `ref` (name or lt- id) in the client's region.
Result<Json> find_launch_template(aws::AwsClient& client, const std::string& ref) {
  Json in = Json::object();
  if (ref.starts_with("lt-")) {
    in["LaunchTemplateIds"] = Json::array({ref});
  } else {
    in["LaunchTemplateNames"] = Json::array({ref});
  }
  auto out = aws::model::call(client, aws::model::ec2(), "DescribeLaunchTemplates", in);
  if (!out) {
    const std::string& code = out.error().aws_code;
    if (code.starts_with("InvalidLaunchTemplateName") || code.starts_with("InvalidLaunchTemplateId")) {
      return refused("launch template '" + ref + "' does not exist in " + client.region(),
                     "create it there first (publish updates existing templates), or remove it "
                     "from publish.launch_templates");
    }
    return out.error();
  }
  const Json& list = (*out)["LaunchTemplates"];
  if (!list.is_array() || list.empty()) {
    return refused("launch template '" + ref + "' does not exist in " + client.region(),
                   "create it there first, or remove it from publish.launch_templates");
  }
  return list[0];
}

// Describes compute environment `ref` (name or ARN) in the client's region.
Result<Json> find_compute_environment(aws::AwsClient& client, const std::string& ref) {
  AMIBAKE_ASSIGN(Json out, aws::model::call(client, aws::model::batch(), "DescribeComputeEnvironments",
                                            Json{{"computeEnvironments", Json::array({ref})}}));
  const Json& list = out["computeEnvironments"];
  if (!list.is_array() || list.empty()) {
    return refused("Batch compute environment '" + ref + "' does not exist in " + client.region(),
                   "create it there first, or remove it from publish.batch_compute_environments");
  }
  return list[0];
}

// Why Batch cannot take a new AMI in place for `ce`, or "" when it can; `templates` are
// the launch templates the recipe updates (names and ids).
std::string not_updatable(const Json& ce, const std::vector<std::string>& templates) {
  std::string name = ce.value("computeEnvironmentName", "?");
  if (ce.value("type", "") != "MANAGED") {
    return name + " is an UNMANAGED environment: Batch does not launch its instances";
  }
  if (!ce.contains("computeResources")) return name + " has no compute resources";
  const Json& cr = ce["computeResources"];
  std::string type = cr.value("type", "");
  if (type == "FARGATE" || type == "FARGATE_SPOT") return name + " runs on Fargate, which takes no AMI";
  std::string strategy = cr.value("allocationStrategy", "BEST_FIT");
  if (std::find(std::begin(kUpdatableStrategies), std::end(kUpdatableStrategies), strategy) ==
      std::end(kUpdatableStrategies)) {
    return name + " uses allocation strategy " + strategy +
           ", which Batch cannot update in place (infrastructure updates need "
           "BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED or SPOT_PRICE_CAPACITY_OPTIMIZED)";
  }
  std::string role = ce.value("serviceRole", "");
  if (!role.empty() && role.find("aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch") ==
                           std::string::npos) {
    return name + " uses service role " + role +
           ": infrastructure updates need Batch's service-linked role (AWSServiceRoleForBatch)";
  }
  bool override_set = false;
  if (cr.contains("ec2Configuration")) {
    for (const auto& c : cr["ec2Configuration"]) override_set |= c.contains("imageIdOverride");
  }
  bool template_ours = false;
  if (cr.contains("launchTemplate")) {
    const Json& lt = cr["launchTemplate"];
    for (const auto& t : templates) {
      template_ours |= lt.value("launchTemplateName", "") == t || lt.value("launchTemplateId", "") == t;
    }
  }
  if (!override_set && !template_ours) {
    return name + " neither sets ec2Configuration imageIdOverride nor uses a launch template "
                  "this recipe updates, so nothing would point it at the new AMI";
  }
  return "";
}

// Waits (bounded) until the compute environment is VALID again; INVALID is an error
// carrying Batch's reason.
Result<Json> wait_compute_environment(StepContext& ctx, aws::AwsClient& client, const std::string& ref) {
  Json last;
  auto poll = [&]() -> Result<aws::WaitState> {
    AMIBAKE_ASSIGN(last, find_compute_environment(client, ref));
    std::string status = last.value("status", "");
    if (status == "VALID" && last.value("state", "ENABLED") == "ENABLED") status = "VALID";
    return aws::WaitState{status, last.value("statusReason", "")};
  };
  auto w = ctx.wait_options("compute environment " + ref + " in " + client.region(),
                            std::chrono::minutes(30));
  AMIBAKE_TRY(aws::wait_for("compute environment " + ref, poll, {"VALID"}, {"INVALID", "DELETED"}, w));
  return last;
}

// What the build's launch template versions and SSM parameter versions say about
// themselves: cleanup finds them again by it.
std::string publish_description(const StepContext& ctx) {
  return "amibake " + ctx.options.recipe.family + " build " + ctx.build_id;
}

// Journals the SSM parameter `name` in the client's region with its value before this
// build (none: the parameter did not exist), unless already journaled.
Status journal_ssm_pointer(StepContext& ctx, aws::AwsClient& client, const std::string& name) {
  std::string key = "ssm-parameter " + client.region() + " " + name;
  if (ctx.journal.state().pointers.count(key)) return ok();
  Json before = {{"kind", "ssm-parameter"}, {"region", client.region()}, {"name", name},
                 {"description", publish_description(ctx)}};
  auto current = aws::ssm::get_parameter(client, name);
  if (current) {
    before["previous_value"] = current->value;
    before["previous_version"] = current->version;
  } else if (current.error().aws_code != "ParameterNotFound") {
    return current.error().wrap("SSM parameter " + name + " in " + client.region());
  }
  return ctx.journal.pointer(key, before);
}

// Waits (bounded) while the compute environment is CREATING or UPDATING (Batch refuses
// an update then: a resumed build may find its own update still in progress); returns
// its description once it has settled.
Result<Json> settled_compute_environment(StepContext& ctx, aws::AwsClient& client, const std::string& ref) {
  Json last;
  auto poll = [&]() -> Result<aws::WaitState> {
    AMIBAKE_ASSIGN(last, find_compute_environment(client, ref));
    std::string status = last.value("status", "");
    bool moving = status == "CREATING" || status == "UPDATING" || status == "DELETING";
    return aws::WaitState{moving ? status : "settled", last.value("statusReason", "")};
  };
  auto w = ctx.wait_options("compute environment " + ref + " in " + client.region(),
                            std::chrono::minutes(30));
  AMIBAKE_TRY(aws::wait_for("compute environment " + ref, poll, {"settled"}, {}, w));
  return last;
}

// The copy of `source` (an AMI amibake built) that an earlier publish made in the
// client's region, or "" when there is none. A copy has its source's name (CopyImage
// is given it, and names are unique per region) and, through CopyImageTags, its
// amibake:build-id; both must match.
Result<std::string> earlier_copy(aws::AwsClient& client, const aws::ec2::Image& source) {
  std::string build = aws::ec2::find_tag(source.tags, kTagBuildId);
  if (build.empty()) return std::string();
  aws::ec2::DescribeImagesRequest find;
  find.owners = {"self"};
  find.filters = {{"name", {source.name}}, {"tag:" + std::string(kTagBuildId), {build}}};
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_images(client, find));
  for (const auto& i : found) {
    if (i.state == "available" || i.state == "pending") return i.image_id;
  }
  return std::string();
}

// Refuses `key` (a key id, ARN, alias or alias ARN; `where` says whose it is) when KMS
// says, in the client's region, that it is an AWS-managed key: what it encrypts cannot be
// shared with another account.
Status refuse_aws_managed_key(aws::AwsClient& client, const std::string& key, const std::string& where) {
  auto described = aws::model::call(client, aws::model::kms(), "DescribeKey", Json{{"KeyId", key}});
  if (!described) return described.error().wrap("KMS key " + key + " (" + where + ") in " + client.region());
  const Json& meta = (*described)["KeyMetadata"];
  if (meta.value("KeyManager", "") != "AWS") return ok();
  return refused("publish: " + where + " is the AWS-managed KMS key " + key + " (" +
                     meta.value("Arn", "") + ") in " + client.region() +
                     ", and an AMI encrypted with an AWS-managed key cannot be shared",
                 "use a customer-managed KMS key whose key policy lets the shared accounts use it "
                 "(kms:DescribeKey, kms:CreateGrant, kms:Decrypt, kms:ReEncrypt*, "
                 "kms:GenerateDataKey*; docs/publish.md \"Sharing encrypted AMIs\"), or stop sharing");
}

// Every KMS key the shared AMIs will be encrypted with that the recipe or the AMI names:
// the recipe's volume keys, each region's copy key (publish.kms_key_ids) and, for
// `amibake publish --ami`, the keys of that AMI's snapshots. None may be AWS-managed.
Status check_keys_shareable(aws::AwsClient& home, const BuildOptions& options,
                            const std::function<Result<aws::AwsClient*>(const std::string&)>& client_in) {
  const Recipe& r = options.recipe;
  for (size_t i = 0; i < r.volumes.size(); ++i) {
    const RecipeVolume& v = r.volumes[i];
    if (v.encrypted && !v.kms_key_id.empty()) {
      AMIBAKE_TRY(refuse_aws_managed_key(home, v.kms_key_id, "volume[" + std::to_string(i) + "].kms_key_id"));
    }
  }
  for (const auto& [region, key] : r.publish.kms_key_ids) {
    AMIBAKE_ASSIGN(aws::AwsClient * client, client_in(region));
    AMIBAKE_TRY(refuse_aws_managed_key(*client, key, "publish.kms_key_ids " + region));
  }
  if (options.publish_ami.empty()) return ok();
  AMIBAKE_ASSIGN(aws::ec2::Image img, aws::ec2::describe_image(home, options.publish_ami));
  aws::ec2::DescribeSnapshotsRequest ask;
  for (const auto& m : img.block_device_mappings) {
    if (m.ebs && !m.ebs->snapshot_id.empty()) ask.snapshot_ids.push_back(m.ebs->snapshot_id);
  }
  if (ask.snapshot_ids.empty()) return ok();
  AMIBAKE_ASSIGN(auto snaps, aws::ec2::describe_snapshots(home, ask));
  for (const auto& s : snaps) {
    if (!s.encrypted || s.kms_key_id.empty()) continue;
    AMIBAKE_TRY(refuse_aws_managed_key(home, s.kms_key_id,
                                       "the key of " + options.publish_ami + "'s snapshot " + s.snapshot_id));
  }
  return ok();
}

}  // namespace

// ---- the steps ----

bool compute_environment_has(const Json& ce, const Json& update) {
  const Json& cr = ce["computeResources"];
  for (const auto& [k, v] : update.items()) {
    if (!cr.contains(k)) return false;
    if (k == "launchTemplate") {
      if (cr[k].value("version", "") != v.value("version", "")) return false;
    } else if (k == "ec2Configuration") {
      Json now = Json::array();
      for (const auto& c : cr[k]) now.push_back(c.value("imageIdOverride", ""));
      Json want = Json::array();
      for (const auto& c : v) want.push_back(c.value("imageIdOverride", ""));
      if (now != want) return false;
    } else if (cr[k] != v) {
      return false;
    }
  }
  return true;
}


Result<json> step_publish_check(StepContext& ctx) {
  if (ctx.options.no_publish) return skipped("--no-publish");
  if (!settings(ctx).any()) return skipped("the recipe has no [publish] table");
  return check_publish(ctx.client, ctx.options,
                       [&ctx](const std::string& region) { return ctx.client_in(region); });
}

Result<json> check_publish(aws::AwsClient& home, const BuildOptions& options,
                           const std::function<Result<aws::AwsClient*>(const std::string&)>& client_in) {
  const PublishSettings& p = options.recipe.publish;
  json out = json::object();
  std::vector<std::string> regions_all = {home.region()};
  for (const auto& r : p.regions) {
    if (std::find(regions_all.begin(), regions_all.end(), r) == regions_all.end()) regions_all.push_back(r);
  }
  // Regions: DescribeRegions lists those enabled for the account.
  if (!p.regions.empty()) {
    AMIBAKE_ASSIGN(Json regions, aws::model::call(home, aws::model::ec2(), "DescribeRegions",
                                                  Json::object()));
    std::vector<std::string> enabled;
    for (const auto& r : regions["Regions"]) enabled.push_back(r.value("RegionName", ""));
    for (const auto& r : p.regions) {
      if (std::find(enabled.begin(), enabled.end(), r) == enabled.end()) {
        return refused("publish.regions: '" + r + "' is not a region enabled for this account",
                       "check the name (aws ec2 describe-regions lists them), or enable the "
                       "region in the account settings");
      }
    }
  }
  // Sharing: AMIs whose snapshots use the AWS-managed key aws/ebs cannot be shared.
  if (p.sharing()) {
    AMIBAKE_TRY(check_keys_shareable(home, options, client_in));
    AMIBAKE_ASSIGN(auto enc, aws::ec2::get_ebs_encryption_by_default(home));
    if (enc.enabled) {
      AMIBAKE_ASSIGN(Json key, aws::model::call(home, aws::model::ec2(), "GetEbsDefaultKmsKeyId",
                                                Json::object()));
      std::string id = key.value("KmsKeyId", "");
      if (id.empty() || id.ends_with("alias/aws/ebs")) {
        return refused("publish: the AMI's snapshots would be encrypted with the AWS-managed key "
                       "aws/ebs (EBS encryption by default is on), and such AMIs cannot be shared",
                       "set the account's default EBS key to a customer-managed KMS key whose "
                       "policy lets the shared accounts use it (aws ec2 modify-ebs-default-kms-key-id)");
      }
    }
  }
  for (const auto& region : regions_all) {
    AMIBAKE_ASSIGN(aws::AwsClient * client, client_in(region));
    json& r = out["regions"][region];
    r["exists"] = true;
    for (const auto& t : p.launch_templates) {
      AMIBAKE_ASSIGN(Json lt, find_launch_template(*client, t));
      r["launch_templates"][t] = {{"id", lt.value("LaunchTemplateId", "")},
                                  {"default_version", lt.value("DefaultVersionNumber", int64_t{0})}};
    }
    for (const auto& ref : p.batch_compute_environments) {
      // An ARN names one region: it applies there only.
      if (ref.starts_with("arn:") && ref.find(":batch:" + region + ":") == std::string::npos) continue;
      AMIBAKE_ASSIGN(Json ce, find_compute_environment(*client, ref));
      std::string why = not_updatable(ce, p.launch_templates);
      if (!why.empty()) {
        return refused("publish.batch_compute_environments: " + why + " (" + region + ")",
                       "use a blue/green switch instead: create a new compute environment with "
                       "the new AMI, point the job queue at it, then delete the old one (docs/publish.md)");
      }
      json current;
      for (const auto& c : ce["computeResources"].value("ec2Configuration", Json::array())) {
        if (c.contains("imageIdOverride")) current = c["imageIdOverride"];
      }
      r["compute_environments"][ref] = {{"arn", ce.value("computeEnvironmentArn", "")},
                                        {"current_image", current}};
    }
  }
  return out;
}

Result<json> step_copy(StepContext& ctx) {
  if (!publishing(ctx)) return skipped("nothing to publish");
  const std::string home = ctx.client.region();
  const std::string image = ctx.results["register"]["image"];
  AMIBAKE_ASSIGN(aws::ec2::Image img, aws::ec2::describe_image(ctx.client, image));
  json out = {{"home_snapshots", json::array()}, {"regions", json::object()}};
  for (const auto& m : img.block_device_mappings) {
    if (m.ebs && !m.ebs->snapshot_id.empty()) out["home_snapshots"].push_back(m.ebs->snapshot_id);
  }
  std::vector<std::string> regions;
  for (const auto& r : settings(ctx).regions) {
    if (r != home) regions.push_back(r);
  }
  if (regions.empty()) return out;
  // Clients first (the map is not shared across threads), then one thread per copy.
  std::vector<aws::AwsClient*> clients;
  for (const auto& r : regions) {
    AMIBAKE_ASSIGN(aws::AwsClient * c, ctx.client_in(r));
    clients.push_back(c);
  }
  // Start every copy (journaled before and after), then wait for them together. An
  // existing AMI (`amibake publish --ami`, the rollback) was copied when it was first
  // published: its copies are found again and reused, not made again, nor journaled (the
  // publish run does not own them, so its cleanup does not remove them).
  std::vector<std::string> copies(regions.size());
  std::vector<bool> reused(regions.size(), false);
  bool existing = ctx.results["register"].value("published_existing", false);
  for (size_t i = 0; i < regions.size(); ++i) {
    if (existing) {
      AMIBAKE_ASSIGN(copies[i], earlier_copy(*clients[i], img));
      if (!copies[i].empty()) {
        reused[i] = true;
        ctx.events.info("reusing " + copies[i] + ", the copy of " + image + " in " + regions[i]);
        continue;
      }
    }
    aws::ec2::CopyImageRequest req;
    req.source_image_id = image;
    req.source_region = home;
    req.name = img.name;
    req.description = img.description;
    req.client_token = short_hash("copy:" + ctx.build_id + ":" + regions[i]);
    req.copy_image_tags = true;
    auto key = settings(ctx).kms_key_ids.find(regions[i]);
    if (key != settings(ctx).kms_key_ids.end()) {
      req.encrypted = true;
      req.kms_key_id = key->second;
    }
    // The region goes in the intent: a kill before the "created" line leaves cleanup the
    // region to search by the build's tag (CopyImageTags carries it to the copy).
    AMIBAKE_TRY(ctx.journal.intent(ctx.current_step, "image", req.client_token, regions[i]));
    AMIBAKE_ASSIGN(copies[i], aws::ec2::copy_image(*clients[i], req));
    AMIBAKE_TRY(ctx.journal.created({"image", copies[i], regions[i], ctx.current_step, false, false}));
    ctx.events.info("copying " + image + " to " + regions[i] + " as " + copies[i]);
  }
  std::vector<Result<aws::ec2::Image>> done(regions.size(), make_error("not waited"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < regions.size(); ++i) {
    threads.emplace_back([&, i] {
      done[i] = aws::wait_image_available(*clients[i], copies[i],
                                          ctx.wait_options("copy in " + regions[i], std::chrono::minutes(120)));
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < regions.size(); ++i) {
    if (!done[i]) return done[i].error().wrap("copy to " + regions[i]);
    json snaps = json::array();
    for (const auto& m : done[i]->block_device_mappings) {
      if (m.ebs && !m.ebs->snapshot_id.empty()) snaps.push_back(m.ebs->snapshot_id);
    }
    // The copy's snapshots carry the build's tags too, so cleanup and prune find them.
    out["regions"][regions[i]] = {{"image", copies[i]}, {"snapshots", snaps}};
    if (reused[i]) {
      out["regions"][regions[i]]["reused"] = true;
      continue;
    }
    std::vector<aws::Tag> tags = ctx.tags("root-snapshot", false);
    tags.push_back({kTagFamily, ctx.options.recipe.family});
    tags.push_back({kTagRecipeHash, ctx.options.recipe_hash});
    std::vector<std::string> ids = snaps;
    if (!ids.empty()) AMIBAKE_TRY(aws::ec2::create_tags(*clients[i], ids, tags));
    for (const auto& s : ids) {
      AMIBAKE_TRY(ctx.journal.created({"snapshot", s, regions[i], ctx.current_step, false, false}));
    }
  }
  return out;
}

Result<json> step_share(StepContext& ctx) {
  if (!publishing(ctx) || !settings(ctx).sharing()) return skipped("nothing to share");
  const PublishSettings& p = settings(ctx);
  Json add = Json::array();
  for (const auto& a : p.share_accounts) add.push_back({{"UserId", a}});
  for (const auto& o : p.share_organizations) add.push_back({{"OrganizationArn", o}});
  for (const auto& u : p.share_ous) add.push_back({{"OrganizationalUnitArn", u}});
  AMIBAKE_ASSIGN(auto images, published(ctx));
  json out = json::object();
  for (const auto& pub : images) {
    AMIBAKE_TRY(aws::model::call(*pub.client, aws::model::ec2(), "ModifyImageAttribute",
                                 Json{{"ImageId", pub.image}, {"LaunchPermission", {{"Add", add}}}}));
    if (p.share_snapshots && !p.share_accounts.empty()) {
      for (const auto& s : pub.snapshots) {
        AMIBAKE_TRY(aws::model::call(*pub.client, aws::model::ec2(), "ModifySnapshotAttribute",
                                     Json{{"SnapshotId", s},
                                          {"Attribute", "createVolumePermission"},
                                          {"OperationType", "add"},
                                          {"UserIds", p.share_accounts}}));
      }
    }
    out[pub.region] = {{"image", pub.image}, {"shared_with", add.size()}};
  }
  return out;
}

Result<json> step_ssm(StepContext& ctx) {
  if (!publishing(ctx) || settings(ctx).ssm_parameter.empty()) return skipped("no ssm_parameter");
  const std::string& name = settings(ctx).ssm_parameter;
  AMIBAKE_ASSIGN(auto images, published(ctx));
  json out = json::object();
  for (const auto& pub : images) {
    aws::ssm::PutParameterRequest put;
    put.name = name;
    put.value = pub.image;
    put.type = "String";
    put.data_type = "aws:ec2:image";
    put.overwrite = true;
    put.description = publish_description(ctx);
    AMIBAKE_TRY(journal_ssm_pointer(ctx, *pub.client, name));
    AMIBAKE_ASSIGN(auto result, aws::ssm::put_parameter(*pub.client, put));
    // SSM checks aws:ec2:image values after answering: the new version shows only once
    // the AMI id was accepted.
    aws::ssm::Parameter seen;
    auto poll = [&]() -> Result<aws::WaitState> {
      AMIBAKE_ASSIGN(seen, aws::ssm::get_parameter(*pub.client, name));
      bool ready = seen.version >= result.version && seen.value == pub.image;
      return aws::WaitState{ready ? "accepted" : "validating", "version " + std::to_string(seen.version)};
    };
    auto w = ctx.wait_options("SSM parameter " + name + " in " + pub.region, std::chrono::minutes(2));
    w.tolerated_error_codes.push_back("ParameterNotFound");
    auto waited = aws::wait_for("SSM parameter " + name, poll, {"accepted"}, {}, w);
    if (!waited) {
      return waited.error().wrap("SSM did not take " + pub.image + " as " + name + " in " + pub.region +
                                 " (aws:ec2:image values are validated after PutParameter)");
    }
    ctx.events.info("SSM " + name + " in " + pub.region + " = " + pub.image + " (version " +
                    std::to_string(seen.version) + ")");
    out[pub.region] = {{"parameter", name}, {"version", seen.version}, {"image", pub.image}};
  }
  return out;
}

Result<json> step_launch_templates(StepContext& ctx) {
  if (!publishing(ctx) || settings(ctx).launch_templates.empty()) return skipped("no launch_templates");
  AMIBAKE_ASSIGN(auto images, published(ctx));
  json out = json::object();
  for (const auto& pub : images) {
    for (const auto& ref : settings(ctx).launch_templates) {
      AMIBAKE_ASSIGN(Json lt, find_launch_template(*pub.client, ref));
      std::string id = lt.value("LaunchTemplateId", "");
      // The default before this build (journaled the first time): a resumed step makes
      // its version from the same source, so the client token answers the same version.
      std::string key = "launch-template " + pub.region + " " + id;
      AMIBAKE_TRY(ctx.journal.pointer(key, {{"kind", "launch-template"}, {"region", pub.region},
                                             {"template", id}, {"name", ref},
                                             {"previous_default", lt.value("DefaultVersionNumber", int64_t{1})},
                                             {"description", publish_description(ctx)}}));
      int64_t source = ctx.journal.state().pointers.at(key).value("previous_default", int64_t{1});
      Json in = {{"LaunchTemplateId", id},
                 {"ClientToken", short_hash("lt:" + ctx.build_id + ":" + pub.region + ":" + id)},
                 {"SourceVersion", std::to_string(source)},
                 {"VersionDescription", publish_description(ctx)},
                 {"LaunchTemplateData", {{"ImageId", pub.image}}}};
      AMIBAKE_ASSIGN(Json made, aws::model::call(*pub.client, aws::model::ec2(),
                                                 "CreateLaunchTemplateVersion", in));
      int64_t version = made["LaunchTemplateVersion"].value("VersionNumber", int64_t{0});
      if (version <= 0) {
        return make_error("CreateLaunchTemplateVersion for " + ref + " in " + pub.region +
                          " answered no version number");
      }
      if (settings(ctx).set_default_version) {
        // With a client token the call is safe to resend after a lost answer.
        AMIBAKE_TRY(aws::model::call(*pub.client, aws::model::ec2(), "ModifyLaunchTemplate",
                                     Json{{"LaunchTemplateId", id},
                                          {"ClientToken", short_hash("lt-default:" + ctx.build_id + ":" +
                                                                     pub.region + ":" + id)},
                                          {"DefaultVersion", std::to_string(version)}}));
      }
      ctx.events.info("launch template " + ref + " in " + pub.region + ": version " +
                      std::to_string(version) + " (from " + std::to_string(source) + ")" +
                      (settings(ctx).set_default_version ? ", now the default" : ""));
      out[pub.region][ref] = {{"id", id}, {"version", version}, {"source_version", source},
                              {"default", settings(ctx).set_default_version}};
    }
  }
  return out;
}

Result<json> step_batch(StepContext& ctx) {
  if (!publishing(ctx) || settings(ctx).batch_compute_environments.empty()) {
    return skipped("no batch_compute_environments");
  }
  AMIBAKE_ASSIGN(auto images, published(ctx));
  const json& templates = ctx.results.count("launch-templates") ? ctx.results["launch-templates"] : json();
  json out = json::object();
  for (const auto& pub : images) {
    for (const auto& ref : settings(ctx).batch_compute_environments) {
      if (ref.starts_with("arn:") && ref.find(":batch:" + pub.region + ":") == std::string::npos) continue;
      AMIBAKE_ASSIGN(Json ce, settled_compute_environment(ctx, *pub.client, ref));
      const Json& cr = ce["computeResources"];
      Json update = Json::object();
      std::string before;
      if (cr.contains("ec2Configuration")) {
        Json confs = Json::array();
        bool any = false;
        for (Json c : cr["ec2Configuration"]) {
          if (c.contains("imageIdOverride")) {
            before = c["imageIdOverride"];
            c["imageIdOverride"] = pub.image;
            any = true;
          }
          Json kept = {{"imageType", c.value("imageType", "ECS_AL2")}};
          if (c.contains("imageIdOverride")) kept["imageIdOverride"] = c["imageIdOverride"];
          if (c.contains("imageKubernetesVersion")) kept["imageKubernetesVersion"] = c["imageKubernetesVersion"];
          confs.push_back(kept);
        }
        if (any) update["ec2Configuration"] = confs;
      }
      if (cr.contains("launchTemplate") && templates.is_object() && templates.contains(pub.region)) {
        Json lt = cr["launchTemplate"];
        for (const auto& [tref, t] : templates[pub.region].items()) {
          if (lt.value("launchTemplateName", "") == tref || lt.value("launchTemplateId", "") == t["id"] ||
              lt.value("launchTemplateId", "") == tref) {
            // Batch re-reads $Default/$Latest only on an infrastructure update, and a
            // version number makes the change explicit (and a rollback possible).
            Json spec = Json::object();
            if (lt.contains("launchTemplateId")) spec["launchTemplateId"] = lt["launchTemplateId"];
            else spec["launchTemplateName"] = lt["launchTemplateName"];
            spec["version"] = std::to_string(t["version"].get<int64_t>());
            update["launchTemplate"] = spec;
          }
        }
      }
      if (update.empty()) {
        return make_error("compute environment " + ref + " in " + pub.region +
                              " has nothing amibake can point at the new AMI",
                          "set ec2Configuration imageIdOverride, or use a launch template listed "
                          "in publish.launch_templates", 2);
      }
      // What cleanup puts back: the fields this update replaces, as they were before
      // the build (the first record; a resumed step may already see its own update).
      std::string arn = ce.value("computeEnvironmentArn", ref);
      std::string key = "compute-environment " + pub.region + " " + arn;
      Json restore = Json::object();
      for (const auto& [k, v] : update.items()) restore[k] = cr.contains(k) ? cr[k] : Json();
      AMIBAKE_TRY(ctx.journal.pointer(key, {{"kind", "compute-environment"}, {"region", pub.region},
                                             {"arn", arn}, {"computeResources", restore},
                                             {"update", update}}));
      const Json& was = ctx.journal.state().pointers.at(key)["computeResources"];
      if (was.contains("ec2Configuration") && was["ec2Configuration"].is_array()) {
        for (const auto& c : was["ec2Configuration"]) before = c.value("imageIdOverride", before);
      }
      if (compute_environment_has(ce, update)) {
        ctx.events.info("compute environment " + ref + " in " + pub.region +
                        " already has this update (an earlier attempt made it)");
      } else {
        auto sent = aws::model::call(*pub.client, aws::model::batch(), "UpdateComputeEnvironment",
                                     Json{{"computeEnvironment", arn}, {"computeResources", update}});
        if (!sent) {
          // A resend after a lost answer finds the environment UPDATING with our own
          // update (ClientException): that is success.
          auto now = find_compute_environment(*pub.client, ref);
          if (!now || !compute_environment_has(*now, update)) return sent.error();
        }
      }
      AMIBAKE_ASSIGN(Json after, wait_compute_environment(ctx, *pub.client, ref));
      ctx.events.info("compute environment " + ref + " in " + pub.region + ": " +
                      (before.empty() ? "launch template version" : before) + " -> " + pub.image +
                      ", " + after.value("status", ""));
      out[pub.region][ref] = {{"before", before}, {"image", pub.image}, {"update", update},
                              {"status", after.value("status", "")}};
    }
  }
  return out;
}

Result<json> step_deprecate(StepContext& ctx) {
  if (!publishing(ctx) || !settings(ctx).deprecate_after_days) return skipped("no deprecate_after_days");
  std::string at = iso8601_in(*settings(ctx).deprecate_after_days * 86400);
  AMIBAKE_ASSIGN(auto images, published(ctx));
  json out = json::object();
  for (const auto& pub : images) {
    AMIBAKE_TRY(aws::model::call(*pub.client, aws::model::ec2(), "EnableImageDeprecation",
                                 Json{{"ImageId", pub.image}, {"DeprecateAt", at}}));
    out[pub.region] = {{"image", pub.image}, {"deprecate_at", at}};
  }
  return out;
}

}  // namespace amibake::bake

namespace amibake::bake {

json publish_summary(StepContext& ctx) {
  json out = json::object();
  auto images = published(ctx);
  if (!images) return out;
  for (const auto& pub : *images) {
    json r = {{"image", pub.image}, {"snapshots", pub.snapshots}};
    auto from = [&](const char* step) -> const json* {
      if (!ctx.results.count(step) || !ctx.results[step].is_object() ||
          !ctx.results[step].contains(pub.region)) {
        return nullptr;
      }
      return &ctx.results[step][pub.region];
    };
    if (const json* s = from("ssm")) r["ssm_parameter_version"] = (*s)["version"];
    if (const json* s = from("launch-templates")) r["launch_templates"] = *s;
    if (const json* s = from("batch")) r["compute_environments"] = *s;
    if (const json* s = from("deprecate")) r["deprecate_at"] = (*s)["deprecate_at"];
    out[pub.region] = r;
  }
  return out;
}

}  // namespace amibake::bake

namespace amibake::bake {

std::vector<std::string> publish_actions(const Recipe& recipe) {
  const PublishSettings& p = recipe.publish;
  std::vector<std::string> a;
  if (!p.any()) return a;
  if (!p.regions.empty()) {
    a.insert(a.end(), {"ec2:DescribeRegions", "ec2:CopyImage", "ec2:CreateTags"});
  }
  if (p.sharing()) {
    // kms:DescribeKey outside the EC2-only KMS statement: publish-check asks KMS itself
    // whether a key is AWS-managed.
    a.insert(a.end(), {"ec2:ModifyImageAttribute", "ec2:GetEbsEncryptionByDefault",
                       "ec2:GetEbsDefaultKmsKeyId", "ec2:DescribeSnapshots", "kms:DescribeKey"});
    if (p.share_snapshots) a.push_back("ec2:ModifySnapshotAttribute");
  }
  if (!p.ssm_parameter.empty()) a.insert(a.end(), {"ssm:PutParameter", "ssm:GetParameter"});
  if (!p.launch_templates.empty()) {
    a.insert(a.end(), {"ec2:DescribeLaunchTemplates", "ec2:CreateLaunchTemplateVersion"});
    if (p.set_default_version) a.push_back("ec2:ModifyLaunchTemplate");
  }
  if (!p.batch_compute_environments.empty()) {
    a.insert(a.end(), {"batch:DescribeComputeEnvironments", "batch:UpdateComputeEnvironment"});
  }
  if (p.deprecate_after_days) a.push_back("ec2:EnableImageDeprecation");
  // prune reads every pointer at an AMI before it deregisters one.
  a.insert(a.end(), {"ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                     "ec2:DescribeInstances", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
                     "batch:DescribeComputeEnvironments"});
  if (!p.ssm_parameter.empty()) a.push_back("ssm:GetParameter");
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

}  // namespace amibake::bake
