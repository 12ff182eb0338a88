// Base AMI resolution. SSM public parameters are how Amazon publishes "the latest
// ECS-optimized AMI"; `.../recommended/image_id` holds the bare id while
// `.../recommended` holds a JSON document with `image_id` inside, and users paste
// either, so both are accepted. A name filter picks the newest match by
// CreationDate, as `aws ec2 describe-images --query 'sort_by(...)[-1]'` would.
#include "bake/base_image.h"

#include <algorithm>
#include <sstream>

#include "aws/ssm.h"
#include "bake/variants.h"

namespace amibake::bake {
namespace {

bool looks_like_ami_id(const std::string& id) {
  if (id.rfind("ami-", 0) != 0 || id.size() < 12) return false;
  return std::all_of(id.begin() + 4, id.end(), [](char c) { return std::isxdigit(c); });
}

// Reads an AMI id out of an SSM parameter value: a bare id or the JSON document.
Result<std::string> ami_id_from_parameter(const aws::ssm::Parameter& p) {
  std::string v = p.value;
  if (looks_like_ami_id(v)) return v;
  auto doc = nlohmann::json::parse(v, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("image_id") &&
      doc["image_id"].is_string() && looks_like_ami_id(doc["image_id"].get<std::string>())) {
    return doc["image_id"].get<std::string>();
  }
  return make_error("SSM parameter '" + p.name + "': value is not an AMI id: '" +
                        v.substr(0, 80) + "'",
                    "name a parameter that holds an image id, e.g. one ending in /image_id");
}

Result<std::string> resolve_ssm(aws::AwsClient& client, const std::string& path) {
  auto p = aws::ssm::get_parameter(client, path);
  if (!p) {
    Error e = p.error().wrap("SSM parameter '" + path + "'");
    if (p.error().aws_code == "ParameterNotFound") {
      e.hint = "no such parameter in " + client.region() +
               "; check the path, or choose a variant: " + variant_names();
    }
    return e;
  }
  return ami_id_from_parameter(*p);
}

Result<aws::ec2::Image> newest_by_name(aws::AwsClient& client, const BaseSelector& s) {
  aws::ec2::DescribeImagesRequest r;
  r.owners = {s.owner};
  r.filters = {{"name", {s.name_filter}}, {"state", {"available"}}};
  AMIBAKE_ASSIGN(auto images, aws::ec2::describe_images(client, r));
  if (images.empty()) {
    return make_error("no image owned by '" + s.owner + "' matches name '" + s.name_filter +
                          "' in " + client.region(),
                      "check the pattern (* and ? are wildcards) and the region");
  }
  return *std::max_element(images.begin(), images.end(), [](const auto& a, const auto& b) {
    return a.creation_date < b.creation_date;
  });
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }
std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string mapping_line(const aws::ec2::BlockDeviceMapping& m) {
  std::ostringstream o;
  o << m.device_name;
  if (m.no_device) return o.str() + "  (suppressed)";
  if (!m.virtual_name.empty()) return o.str() + "  instance store " + m.virtual_name;
  if (!m.ebs) return o.str();
  const auto& e = *m.ebs;
  o << "  " << (e.snapshot_id.empty() ? "blank" : e.snapshot_id);
  if (e.volume_size) o << "  " << *e.volume_size << " GiB";
  if (!e.volume_type.empty()) o << " " << e.volume_type;
  if (e.iops) o << " " << *e.iops << " IOPS";
  if (e.throughput) o << " " << *e.throughput << " MiB/s";
  if (e.encrypted) o << (*e.encrypted ? " encrypted" : " unencrypted");
  if (!e.kms_key_id.empty()) o << " kms " << e.kms_key_id;
  if (e.delete_on_termination) o << (*e.delete_on_termination ? " delete-on-termination" : " kept");
  return o.str();
}

}  // namespace

Status validate(const BaseSelector& s) {
  int given = !s.variant.empty() + !s.ami_id.empty() + !s.ssm_parameter.empty() +
              !s.name_filter.empty();
  if (given > 1) {
    return make_error("base: give one of --variant, --ami, --ssm-parameter, --name-filter",
                      "", 2);
  }
  if (!s.variant.empty() && !find_variant(s.variant)) {
    return make_error("base: unknown variant '" + s.variant + "'",
                      "choose one of: " + variant_names(), 2);
  }
  if (!s.ami_id.empty() && !looks_like_ami_id(s.ami_id)) {
    return make_error("base: '" + s.ami_id + "' is not an AMI id", "AMI ids look like ami-0123456789abcdef0", 2);
  }
  if (!s.ssm_parameter.empty() && s.ssm_parameter[0] != '/') {
    return make_error("base: SSM parameter '" + s.ssm_parameter + "' must start with '/'", "", 2);
  }
  return ok();
}

Result<ResolvedBase> resolve_base(aws::AwsClient& client, const BaseSelector& s) {
  AMIBAKE_TRY(validate(s));
  ResolvedBase out;
  std::string ami = s.ami_id;
  if (!s.name_filter.empty()) {
    AMIBAKE_ASSIGN(out.image, newest_by_name(client, s));
    out.resolved_via = "newest image named '" + s.name_filter + "' owned by " + s.owner;
    return out;
  }
  if (ami.empty()) {
    std::string path = s.ssm_parameter;
    if (path.empty()) {
      const Variant* v = find_variant(s.variant.empty() ? kDefaultVariant : s.variant);
      path = std::string(v->ssm_parameter);
      out.resolved_via = "variant " + std::string(v->name) + ", SSM parameter " + path;
    } else {
      out.resolved_via = "SSM parameter " + path;
    }
    AMIBAKE_ASSIGN(ami, resolve_ssm(client, path));
  } else {
    out.resolved_via = "AMI id";
  }
  auto image = aws::ec2::describe_image(client, ami);
  if (!image) {
    Error e = image.error().wrap(ami);
    if (e.hint.empty()) e.hint = "check the AMI id and that it exists in " + client.region();
    return e;
  }
  out.image = std::move(*image);
  if (out.image.state != "available" && !out.image.state.empty()) {
    return make_error(ami + ": image state is '" + out.image.state + "'",
                      "use an available image");
  }
  return out;
}

std::string describe_text(const ResolvedBase& b) {
  const auto& i = b.image;
  std::ostringstream o;
  auto line = [&o](const char* k, const std::string& v) {
    o << k << std::string(16 - std::string(k).size(), ' ') << v << "\n";
  };
  line("image", i.image_id + "  " + i.name);
  line("resolved via", b.resolved_via);
  line("created", or_dash(i.creation_date));
  line("owner", i.owner_id + (i.image_owner_alias.empty() ? "" : " (" + i.image_owner_alias + ")"));
  line("architecture", or_dash(i.architecture));
  line("boot mode", or_dash(i.boot_mode));
  line("virtualization", or_dash(i.virtualization_type));
  line("root device", i.root_device_name + " (" + or_dash(i.root_device_type) + "), snapshot " +
                          or_dash(i.root_snapshot_id()));
  line("ENA", yes_no(i.ena_support));
  line("SR-IOV", or_dash(i.sriov_net_support));
  line("TPM", or_dash(i.tpm_support));
  line("IMDS support", i.imds_support.empty() ? "v1 and v2 (not required)" : i.imds_support);
  line("deprecation", or_dash(i.deprecation_time));
  o << "mappings\n";
  for (const auto& m : i.block_device_mappings) o << "  " << mapping_line(m) << "\n";
  return o.str();
}

nlohmann::json describe_json(const ResolvedBase& b) {
  const auto& i = b.image;
  nlohmann::json mappings = nlohmann::json::array();
  for (const auto& m : i.block_device_mappings) {
    nlohmann::json j = {{"DeviceName", m.device_name}};
    if (!m.virtual_name.empty()) j["VirtualName"] = m.virtual_name;
    if (m.no_device) j["NoDevice"] = "";
    if (m.ebs) {
      const auto& e = *m.ebs;
      nlohmann::json ebs = nlohmann::json::object();
      if (!e.snapshot_id.empty()) ebs["SnapshotId"] = e.snapshot_id;
      if (e.volume_size) ebs["VolumeSize"] = *e.volume_size;
      if (!e.volume_type.empty()) ebs["VolumeType"] = e.volume_type;
      if (e.iops) ebs["Iops"] = *e.iops;
      if (e.throughput) ebs["Throughput"] = *e.throughput;
      if (e.encrypted) ebs["Encrypted"] = *e.encrypted;
      if (!e.kms_key_id.empty()) ebs["KmsKeyId"] = e.kms_key_id;
      if (e.delete_on_termination) ebs["DeleteOnTermination"] = *e.delete_on_termination;
      j["Ebs"] = ebs;
    }
    mappings.push_back(j);
  }
  // Keys follow EC2's own names so the output reads like describe-images.
  return {{"ImageId", i.image_id},
          {"Name", i.name},
          {"ResolvedVia", b.resolved_via},
          {"CreationDate", i.creation_date},
          {"OwnerId", i.owner_id},
          {"ImageOwnerAlias", i.image_owner_alias},
          {"Architecture", i.architecture},
          {"BootMode", i.boot_mode},
          {"VirtualizationType", i.virtualization_type},
          {"RootDeviceName", i.root_device_name},
          {"RootDeviceType", i.root_device_type},
          {"RootSnapshotId", i.root_snapshot_id()},
          {"BlockDeviceMappings", mappings},
          {"EnaSupport", i.ena_support},
          {"SriovNetSupport", i.sriov_net_support},
          {"TpmSupport", i.tpm_support},
          {"ImdsSupport", i.imds_support},
          {"DeprecationTime", i.deprecation_time}};
}

}  // namespace amibake::bake
