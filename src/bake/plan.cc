// `amibake plan` and `amibake iam-policy`: what a build would do, changing nothing.
// The plan resolves the base with read-only calls (SSM, DescribeImages, STS) and
// lists the steps, the resources with their fate (kept, temporary, shared cache),
// the final block device mapping and the IAM actions the method needs.
#include <map>
#include <memory>
#include <sstream>

#include "aws/ec2.h"
#include "aws/imds.h"
#include "aws/sts.h"
#include "bake/build.h"
#include "bake/build_steps.h"

namespace amibake::bake {
namespace {

using nlohmann::json;

const std::vector<std::string>& direct_actions() {
  static const std::vector<std::string> a = {
      "ssm:GetParameter",        "sts:GetCallerIdentity",   "ec2:DescribeImages",
      "ec2:DescribeImageAttribute", "ec2:CopyImage",        "ec2:DescribeSnapshots",
      "ec2:RegisterImage",       "ec2:CreateTags",          "ec2:DescribeVolumes",
      "ec2:DeregisterImage",     "ec2:DeleteSnapshot",      "ebs:ListSnapshotBlocks",
      "ebs:GetSnapshotBlock",    "ebs:StartSnapshot",       "ebs:PutSnapshotBlock",
      "ebs:CompleteSnapshot"};
  return a;
}

const std::vector<std::string>& chroot_extra_actions() {
  static const std::vector<std::string> a = {
      "ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume",
      "ec2:CreateSnapshot", "ec2:DescribeInstances"};
  return a;
}

std::string mapping_text(const json& m) {
  std::ostringstream o;
  o << m.value("DeviceName", "") << "  ";
  if (m.contains("Ebs")) {
    const json& e = m["Ebs"];
    o << e.value("SnapshotId", "blank") << "  " << e.value("VolumeSize", 0) << " GiB "
      << e.value("VolumeType", "") << (e.value("Encrypted", false) ? " encrypted" : "");
  } else if (m.contains("VirtualName")) {
    o << "instance store " << m["VirtualName"].get<std::string>();
  }
  return o.str();
}

}  // namespace

json iam_policy(const std::string& method, const Recipe* recipe) {
  std::vector<std::string> actions = direct_actions();
  if (recipe) {
    for (const auto& a : publish_actions(*recipe)) {
      if (std::find(actions.begin(), actions.end(), a) == actions.end()) actions.push_back(a);
    }
  }
  if (method == "chroot") {
    // The chroot method never calls the EBS direct APIs (accounts that forbid them are
    // why it exists); it works on volumes instead.
    std::erase_if(actions, [](const std::string& a) { return a.rfind("ebs:", 0) == 0; });
    actions.insert(actions.end(), chroot_extra_actions().begin(), chroot_extra_actions().end());
  }
  std::sort(actions.begin(), actions.end());
  json statements = json::array();
  statements.push_back({{"Sid", "AmibakeBake"}, {"Effect", "Allow"}, {"Action", actions},
                        {"Resource", "*"}});
  // Encrypted snapshots (accounts with EBS encryption by default, KMS-encrypted
  // bases) need the key; scoped to use through EC2/EBS.
  statements.push_back({{"Sid", "AmibakeKmsForEbs"},
                        {"Effect", "Allow"},
                        {"Action", {"kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey",
                                    "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"}},
                        {"Resource", "*"},
                        {"Condition", {{"StringLike", {{"kms:ViaService", "ec2.*.amazonaws.com"}}}}}});
  return {{"Version", "2012-10-17"}, {"Statement", statements}};
}

Result<Plan> make_plan(aws::AwsClient& client, const BuildOptions& options) {
  const Recipe& r = options.recipe;
  AMIBAKE_ASSIGN(ResolvedBase base, resolve_base(client, r.base));
  AMIBAKE_TRY(check_against_base(r, base.image));
  AMIBAKE_ASSIGN(auto who, aws::sts::get_caller_identity(client));
  bool owned = base.image.owner_id == who.account;

  std::string imds_text = r.attributes.imds_support.empty() ? std::string("as the base")
                                                             : r.attributes.imds_support;
  json steps;
  json resources = json::array();
  if (options.method == "chroot") {
    std::string host = "host: this EC2 instance, zone and region from IMDSv2";
    aws::ImdsClient imds;
    auto instance = imds.instance_id();  // an error when IMDS is disabled
    if (instance) {
      auto zone = imds.availability_zone();
      host = "host: " + *instance + (zone ? " in " + *zone : std::string()) + " (IMDSv2)";
    } else {
      host += " — not on EC2 here, so `build --method chroot` would stop at this step";
    }
    steps = json::array({
        host,
        "resolve: " + base.image.image_id + " (" + base.resolved_via + ")",
        "source: the base's root snapshot " + base.image.root_snapshot_id() +
            (owned ? "" : " (or the account's copy of the base, if the account cannot use it)"),
        "volume: CreateVolume from it in the host's zone (gp3, temporary)",
        "attach: AttachVolume to this host at a free /dev/sdf–/dev/sdp; the device is found by volume id",
        "install: datavol, its config, unit and links into the root filesystem",
        "detach: DetachVolume",
        "snapshot: CreateSnapshot of the volume, wait until completed",
        "remove-volume: DeleteVolume",
        "register: the AMI with the mappings below, IMDS " + imds_text,
        "verify: read the AMI back and check it"});
    resources.push_back({{"kind", "volume"}, {"what", "working copy of the base's root"},
                         {"fate", "temporary (deleted once its snapshot completes, and by cleanup)"}});
  } else {
    steps = json::array({
        "resolve: " + base.image.image_id + " (" + base.resolved_via + ")",
        owned ? "own-copy: not needed (the account owns the base)"
              : "own-copy: find or CopyImage " + base.image.image_id + " into the account (kept as a shared cache)",
        "fetch: the root snapshot's written blocks into a sparse local image",
        "install: datavol, its config, unit and links into the root filesystem",
        "upload: the changed blocks as a new snapshot (parent: the owned root snapshot)",
        "register: the AMI with the mappings below, IMDS " + imds_text,
        "verify: read the AMI back and check it"});
    if (!owned) {
      resources.push_back({{"kind", "image+snapshot"}, {"what", "copy of " + base.image.image_id},
                           {"fate", "kept (shared cache, removed by `amibake gc --copies`)"}});
    }
  }
  resources.push_back({{"kind", "snapshot"}, {"what", "new root snapshot"}, {"fate", "kept (used by the AMI)"}});
  resources.push_back({{"kind", "image"}, {"what", "the baked AMI"}, {"fate", "kept (the result)"}});

  json mappings = json::array();
  for (const auto& m : base.image.block_device_mappings) {
    json j = {{"DeviceName", m.device_name}};
    if (m.ebs) {
      j["Ebs"] = {{"SnapshotId", m.device_name == base.image.root_device_name
                                     ? std::string("<new root snapshot>")
                                     : m.ebs->snapshot_id},
                  {"VolumeSize", r.root_size_gib && m.device_name == base.image.root_device_name
                                     ? *r.root_size_gib
                                     : m.ebs->volume_size.value_or(0)},
                  {"VolumeType", m.ebs->volume_type}};
    }
    if (!m.virtual_name.empty()) j["VirtualName"] = m.virtual_name;
    mappings.push_back(j);
  }
  for (const auto& v : r.volumes) {
    json e = {{"VolumeSize", v.size_gib}, {"VolumeType", v.type}, {"Encrypted", v.encrypted},
              {"DeleteOnTermination", v.delete_on_termination}};
    if (v.iops) e["Iops"] = *v.iops;
    if (v.throughput) e["Throughput"] = *v.throughput;
    if (!v.kms_key_id.empty()) e["KmsKeyId"] = v.kms_key_id;
    mappings.push_back({{"DeviceName", v.device}, {"Ebs", e},
                        {"datavol", {{"mount", v.datavol.mount}, {"filesystem", v.datavol.filesystem}}}});
  }
  // Publishing: the steps, and what each will change where (read, not changed).
  json publish = json::object();
  if (!options.no_publish && r.publish.any()) {
    std::map<std::string, std::unique_ptr<aws::AwsClient>> others;
    auto client_in = [&](const std::string& region) -> Result<aws::AwsClient*> {
      if (region == client.region()) return &client;
      if (!others.count(region)) {
        if (!options.region_client) return make_error("plan: no client for region " + region);
        AMIBAKE_ASSIGN(others[region], options.region_client(region));
      }
      return others[region].get();
    };
    AMIBAKE_ASSIGN(publish, check_publish(client, options, client_in));
    const PublishSettings& p = r.publish;
    std::string regions;
    for (const auto& [region, _] : publish["regions"].items()) regions += (regions.empty() ? "" : ", ") + region;
    steps.push_back("publish-check: " + regions + " exist; every template and compute environment below found");
    if (!p.regions.empty()) steps.push_back("copy: CopyImage to every other region (client token per region, tags copied)");
    if (p.sharing()) {
      steps.push_back("share: launch permission for " + std::to_string(p.share_accounts.size()) + " account(s), " +
                      std::to_string(p.share_organizations.size()) + " organization(s), " +
                      std::to_string(p.share_ous.size()) + " OU(s)" +
                      (p.share_snapshots ? ", and createVolumePermission on the snapshots" : ""));
    }
    if (!p.ssm_parameter.empty()) steps.push_back("ssm: " + p.ssm_parameter + " = the new AMI (aws:ec2:image) in every region");
    for (const auto& [region, t] : publish["regions"].items()) {
      if (t.contains("launch_templates")) {
        for (const auto& [name, lt] : t["launch_templates"].items()) {
          steps.push_back("launch-templates: " + name + " in " + region + ": new version from $Default (" +
                          std::to_string(lt["default_version"].get<int64_t>()) + ") with the new AMI" +
                          (p.set_default_version ? ", made the default" : ""));
        }
      }
      if (t.contains("compute_environments")) {
        for (const auto& [name, ce] : t["compute_environments"].items()) {
          std::string current = ce["current_image"].is_string() ? ce["current_image"].get<std::string>()
                                                                 : "its launch template's version";
          steps.push_back("batch: " + name + " in " + region + ": " + current + " -> the new AMI");
        }
      }
    }
    if (p.deprecate_after_days) {
      steps.push_back("deprecate: every copy " + std::to_string(*p.deprecate_after_days) + " days from now");
    }
    if (!p.regions.empty()) {
      resources.push_back({{"kind", "image+snapshot"}, {"what", "a copy in each publish region"},
                           {"fate", "kept (removed by cleanup if the build fails; by prune later)"}});
    }
  }
  json policy = iam_policy(options.method, &r);
  Plan plan;
  plan.json = {{"region", client.region()}, {"method", options.method},
               {"base", describe_json(base)}, {"steps", steps}, {"resources", resources},
               {"block_device_mappings", mappings}, {"iam_actions", policy["Statement"][0]["Action"]},
               {"publish", publish}};
  std::ostringstream o;
  o << "region   " << client.region() << "\nmethod   " << options.method << "\nbase     "
    << base.image.image_id << "  " << base.image.name << "\n\nsteps\n";
  for (const auto& s : steps) o << "  " << s.get<std::string>() << "\n";
  o << "\nresources\n";
  for (const auto& res : resources) {
    o << "  " << res["kind"].get<std::string>() << ": " << res["what"].get<std::string>() << " — "
      << res["fate"].get<std::string>() << "\n";
  }
  o << "\nblock device mapping\n";
  for (const auto& m : mappings) o << "  " << mapping_text(m) << "\n";
  o << "\nIAM actions (`amibake iam-policy` prints the policy)\n";
  for (const auto& a : policy["Statement"][0]["Action"]) o << "  " << a.get<std::string>() << "\n";
  plan.text = o.str();
  return plan;
}

}  // namespace amibake::bake
