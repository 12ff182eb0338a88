// EC2 image operations: DescribeImages, RegisterImage, DeregisterImage, CopyImage,
// DescribeImageAttribute, ModifyImageAttribute, EnableImageDeprecation.
//
// RegisterImage keeps every field it is given and DescribeImages returns it all
// back, because amibake's publish step verifies the registered image field by field.
// Validation follows what EC2 refuses (unknown architecture or boot mode, iops on a
// volume type without iops, volume smaller than its snapshot, a KMS key without
// encryption) with EC2's error codes; the rules AWS states for names, descriptions,
// device names, sizes, KMS key ids and tags live in validate.cc, shared with the other
// handlers.
#include <algorithm>
#include <set>

#include "base/log.h"
#include "emulator/blockstore.h"
#include "emulator/ec2_internal.h"
#include "emulator/validate.h"

namespace amibake::emu {
namespace {

void write_mapping(Xml& x, const Mapping& m) {
  x.open("item").leaf("deviceName", m.device_name).opt("virtualName", m.virtual_name);
  if (m.no_device) x.leaf("noDevice", "");
  if (m.has_ebs) {
    x.open("ebs").opt("snapshotId", m.snapshot_id);
    if (m.volume_size) x.number("volumeSize", m.volume_size);
    if (m.delete_on_termination) x.boolean("deleteOnTermination", *m.delete_on_termination);
    x.opt("volumeType", m.volume_type);
    if (m.iops) x.number("iops", m.iops);
    if (m.throughput) x.number("throughput", m.throughput);
    if (m.encrypted) x.boolean("encrypted", *m.encrypted);
    x.opt("kmsKeyId", m.kms_key_id);
    x.close("ebs");
  }
  x.close("item");
}

void write_image(Xml& x, const Image& img) {
  x.open("item").leaf("imageId", img.id);
  x.leaf("imageLocation", (img.owner_alias.empty() ? img.owner_id : img.owner_alias) + "/" +
                              img.name);
  x.leaf("imageState", img.state).leaf("imageOwnerId", img.owner_id);
  x.leaf("creationDate", iso_time(img.creation_time));
  x.boolean("isPublic", img.is_public).leaf("architecture", img.architecture);
  x.leaf("imageType", "machine").opt("sriovNetSupport", img.sriov_net_support);
  x.opt("imageOwnerAlias", img.owner_alias).leaf("name", img.name);
  x.opt("description", img.description);
  x.leaf("rootDeviceType", "ebs").leaf("rootDeviceName", img.root_device_name);
  x.open("blockDeviceMapping");
  for (const auto& m : img.mappings) write_mapping(x, m);
  x.close("blockDeviceMapping");
  x.leaf("virtualizationType", img.virtualization_type).leaf("hypervisor", "xen");
  if (!img.tags.empty()) x.tags(img.tags);
  if (img.ena_support) x.boolean("enaSupport", *img.ena_support);
  x.opt("bootMode", img.boot_mode).opt("tpmSupport", img.tpm_support);
  x.opt("deprecationTime", img.deprecation_time).opt("imdsSupport", img.imds_support);
  x.opt("sourceImageId", img.source_image_id);
  x.leaf("platformDetails", "Linux/UNIX").leaf("usageOperation", "RunInstances");
  if (img.state == "failed") {
    x.open("stateReason").leaf("code", "Client.SnapshotError")
        .leaf("message", "a snapshot of the image failed").close("stateReason");
  }
  x.close("item");
}

bool image_visible(const Image& img) {
  return img.owner_id == kAccountId || img.is_public ||
         std::count(img.launch_user_ids.begin(), img.launch_user_ids.end(), kAccountId) > 0;
}

std::vector<std::string> image_field(const Image& img, const std::string& name) {
  if (name == "name") return {img.name};
  if (name == "image-id") return {img.id};
  if (name == "state") return {img.state};
  if (name == "owner-id") return {img.owner_id};
  if (name == "owner-alias") return {img.owner_alias};
  if (name == "architecture") return {img.architecture};
  if (name == "is-public") return {img.is_public ? "true" : "false"};
  if (name == "image-type") return {"machine"};
  if (name == "root-device-type") return {"ebs"};
  if (name == "root-device-name") return {img.root_device_name};
  if (name == "virtualization-type") return {img.virtualization_type};
  if (name == "description") return {img.description};
  if (name == "hypervisor") return {"xen"};
  if (name == "platform-details") return {"Linux/UNIX"};
  if (name == "boot-mode") return {img.boot_mode};
  if (name == "ena-support") return {img.ena_support.value_or(false) ? "true" : "false"};
  if (name == "block-device-mapping.snapshot-id" || name == "block-device-mapping.device-name" ||
      name == "block-device-mapping.volume-type" || name == "block-device-mapping.volume-size") {
    std::vector<std::string> out;
    for (const auto& m : img.mappings) {
      if (name.ends_with("snapshot-id")) out.push_back(m.snapshot_id);
      else if (name.ends_with("device-name")) out.push_back(m.device_name);
      else if (name.ends_with("volume-type")) out.push_back(m.volume_type);
      else out.push_back(std::to_string(m.volume_size));
    }
    return out;
  }
  return {"\x01unknown"};
}

Reply describe_images(Context& ctx, const Call& call) {
  auto ids = query_list(call, "ImageId");
  auto owners = query_list(call, "Owner");
  auto filters = query_filters(call);
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& f : filters) {
    bool tag_filter = false;
    tag_filters_match(f, {}, &tag_filter);
    if (!tag_filter && image_field(Image{}, f.name) == std::vector<std::string>{"\x01unknown"}) {
      return error_reply(call, 400, "InvalidParameterValue",
                         "The filter '" + f.name + "' is invalid");
    }
  }
  std::vector<const Image*> found;
  for (const auto& id : ids) {
    if (id.rfind("ami-", 0) != 0) {
      return error_reply(call, 400, "InvalidAMIID.Malformed", "Invalid id: \"" + id + "\"");
    }
    auto it = ctx.world().images.find(id);
    if (it == ctx.world().images.end() || !image_visible(it->second) || ctx.hidden(id)) {
      return error_reply(call, 400, "InvalidAMIID.NotFound",
                         "The image id '[" + id + "]' does not exist");
    }
  }
  bool include_deprecated = call.param("IncludeDeprecated") == "true";
  for (const auto& [id, img] : ctx.world().images) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
    if (!image_visible(img) || ctx.hidden(id)) continue;
    // As on AWS: others' deprecated images only with IncludeDeprecated (or by id).
    double deprecated_at = 0;
    if (ids.empty() && !include_deprecated && img.owner_id != kAccountId &&
        parse_iso_time(img.deprecation_time, &deprecated_at) && deprecated_at <= ctx.now()) {
      continue;
    }
    if (!owners.empty()) {
      bool owner_ok = false;
      for (const auto& o : owners) {
        if ((o == "self" && img.owner_id == kAccountId) || o == img.owner_id ||
            (!img.owner_alias.empty() && o == img.owner_alias)) {
          owner_ok = true;
        }
      }
      if (!owner_ok) continue;
    }
    if (!matches_filters(filters, img.tags, [&img = img](const std::string& n) { return image_field(img, n); })) {
      continue;
    }
    found.push_back(&img);
  }
  Xml x;
  Page page = paginate(call, found.size());
  if (page.error) return *page.error;
  x.open("imagesSet");
  for (size_t i = page.begin; i < page.end; ++i) write_image(x, *found[i]);
  x.close("imagesSet");
  x.opt("nextToken", page.next_token);
  return ec2_reply(call, x.str());
}

const std::set<std::string> kArchitectures = {"i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"};
const std::set<std::string> kBootModes = {"legacy-bios", "uefi", "uefi-preferred"};
const std::set<std::string> kVolumeTypes = {"standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"};

// Parses BlockDeviceMapping.N; returns an error reply when a mapping is invalid. Device
// names are checked for `virtualization_type`.
std::optional<Reply> parse_mappings(Context& ctx, const Call& call,
                                    const std::string& virtualization_type,
                                    std::vector<Mapping>* out) {
  std::set<std::string> devices;
  for (const auto& item : query_structs(call.params, "BlockDeviceMapping")) {
    Mapping m;
    auto get = [&](const char* k) {
      auto it = item.find(k);
      return it == item.end() ? std::string() : it->second;
    };
    m.device_name = get("DeviceName");
    m.virtual_name = get("VirtualName");
    m.no_device = item.count("NoDevice") > 0;
    if (m.device_name.empty()) {
      return error_reply(call, 400, "InvalidBlockDeviceMapping", "Missing device name");
    }
    if (auto bad = check_device_name(m.device_name, virtualization_type)) {
      return refuse(call, *bad, Where::kMapping);
    }
    if (!devices.insert(m.device_name).second) {
      return refuse(call,
                    {Refusal::kDeviceNameDuplicate,
                     "The device '" + m.device_name + "' is used in more than one mapping"},
                    Where::kMapping);
    }
    for (const auto& [k, v] : item) {
      if (k.rfind("Ebs.", 0) == 0) m.has_ebs = true;
    }
    if (m.has_ebs) {
      m.snapshot_id = get("Ebs.SnapshotId");
      m.volume_type = get("Ebs.VolumeType");
      m.kms_key_id = get("Ebs.KmsKeyId");
      try {
        if (!get("Ebs.VolumeSize").empty()) m.volume_size = std::stoi(get("Ebs.VolumeSize"));
        if (!get("Ebs.Iops").empty()) m.iops = std::stoi(get("Ebs.Iops"));
        if (!get("Ebs.Throughput").empty()) m.throughput = std::stoi(get("Ebs.Throughput"));
      } catch (const std::exception&) {
        return error_reply(call, 400, "InvalidParameterValue",
                           "Invalid number in the block device mapping of " + m.device_name);
      }
      if (!get("Ebs.Encrypted").empty()) m.encrypted = get("Ebs.Encrypted") == "true";
      if (!get("Ebs.DeleteOnTermination").empty()) {
        m.delete_on_termination = get("Ebs.DeleteOnTermination") == "true";
      }
      if (auto bad = validate_ebs(ctx, call, m.device_name, m.snapshot_id, m.volume_type,
                                  m.volume_size, m.iops, m.throughput,
                                  m.encrypted.value_or(false), m.kms_key_id)) {
        return bad;
      }
      if (m.snapshot_id.empty() && m.volume_size == 0) {
        return error_reply(
            call, 400, "InvalidBlockDeviceMapping",
            "Either snapshot ID or volume size must be provided for: " + m.device_name);
      }
    }
    out->push_back(std::move(m));
  }
  return std::nullopt;
}

Reply register_image(Context& ctx, const Call& call) {
  Image img;
  img.name = call.param("Name");
  img.description = call.param("Description");
  img.architecture = call.param("Architecture").empty() ? "x86_64" : call.param("Architecture");
  img.boot_mode = call.param("BootMode");
  img.tpm_support = call.param("TpmSupport");
  img.imds_support = call.param("ImdsSupport");
  img.sriov_net_support = call.param("SriovNetSupport");
  img.root_device_name = call.param("RootDeviceName");
  if (!call.param("VirtualizationType").empty()) img.virtualization_type = call.param("VirtualizationType");
  if (!call.param("EnaSupport").empty()) img.ena_support = call.param("EnaSupport") == "true";
  if (img.name.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter name");
  if (auto bad = check_image_name(img.name)) return refuse(call, *bad);
  if (auto bad = check_description(img.description)) return refuse(call, *bad);
  if (!kArchitectures.count(img.architecture)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.architecture + ") for parameter architecture is invalid.");
  }
  if (!img.boot_mode.empty() && !kBootModes.count(img.boot_mode)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.boot_mode + ") for parameter bootMode is invalid.");
  }
  if (!img.tpm_support.empty() && img.tpm_support != "v2.0") {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.tpm_support + ") for parameter tpmSupport is invalid.");
  }
  if (img.tpm_support == "v2.0" && img.boot_mode != "uefi" && img.boot_mode != "uefi-preferred") {
    return error_reply(call, 400, "InvalidParameterCombination",
                       "NitroTPM requires the boot mode uefi or uefi-preferred");
  }
  if (!img.imds_support.empty() && img.imds_support != "v2.0") {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.imds_support + ") for parameter imdsSupport is invalid.");
  }
  if (!img.sriov_net_support.empty() && img.sriov_net_support != "simple") {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.sriov_net_support + ") for parameter sriovNetSupport is invalid.");
  }
  if (img.virtualization_type != "hvm" && img.virtualization_type != "paravirtual") {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + img.virtualization_type + ") for parameter virtualizationType is invalid.");
  }
  img.tags = tag_specifications(call, "image");
  if (auto bad = check_tags({}, img.tags, kEc2TagRules)) return refuse(call, *bad);
  std::lock_guard<std::mutex> lock(ctx.mu());
  if (auto bad = parse_mappings(ctx, call, img.virtualization_type, &img.mappings)) return *bad;
  if (img.root_device_name.empty()) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "The request must contain the parameter rootDeviceName");
  }
  auto root = std::find_if(img.mappings.begin(), img.mappings.end(),
                           [&](const Mapping& m) { return m.device_name == img.root_device_name; });
  if (root == img.mappings.end()) {
    return refuse(call,
                  {Refusal::kRootDeviceNotMapped, "The root device name " + img.root_device_name +
                                                      " is not among the block device mappings"});
  }
  if (root->snapshot_id.empty()) {
    return refuse(call, {Refusal::kRootDeviceNotMapped,
                         "The root device " + img.root_device_name +
                             " needs a block device mapping with a snapshot id"});
  }
  if (auto bad = check_image_name_free(ctx.world(), kAccountId, img.name)) {
    return refuse(call, *bad);
  }
  // TagSpecification with ResourceType=snapshot tags the mapped snapshots the caller owns;
  // each must stay within the tag limit with the tags it already has.
  Tags snapshot_tags = tag_specifications(call, "snapshot");
  std::vector<Snapshot*> owned_snapshots;
  for (const auto& m : img.mappings) {
    auto it = ctx.world().snapshots.find(m.snapshot_id);
    if (it == ctx.world().snapshots.end() || it->second.owner_id != kAccountId) continue;
    if (auto bad = check_tags(it->second.tags, snapshot_tags, kEc2TagRules)) {
      return refuse(call, *bad);
    }
    owned_snapshots.push_back(&it->second);
  }
  img.id = ctx.new_id("ami");
  img.owner_id = kAccountId;
  img.creation_time = ctx.now();
  img.ready_at = ctx.after(5);
  for (Snapshot* snap : owned_snapshots) {
    for (const auto& [k, v] : snapshot_tags) snap->tags[k] = v;
  }
  ctx.world().images[img.id] = img;
  ctx.maybe_hide(call.action, img.id);
  ctx.advance();
  ctx.commit();
  Xml x;
  x.leaf("imageId", img.id);
  return ec2_reply(call, x.str());
}

Reply deregister_image(Context& ctx, const Call& call) {
  std::string id = call.param("ImageId");
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().images.find(id);
  if (it == ctx.world().images.end() || !image_visible(it->second)) {
    return error_reply(call, 400, "InvalidAMIID.NotFound", "The image id '[" + id + "]' does not exist");
  }
  if (it->second.owner_id != kAccountId) {
    return error_reply(call, 400, "InvalidAMIID.Unavailable", "Not authorized for image:" + id);
  }
  std::vector<std::string> snaps;
  for (const auto& m : it->second.mappings) if (!m.snapshot_id.empty()) snaps.push_back(m.snapshot_id);
  ctx.world().images.erase(it);
  Xml x;
  x.boolean("return", true);
  if (call.param("DeleteAssociatedSnapshots") == "true") {
    x.open("deleteSnapshotResultSet");
    // botocore's SnapshotReturnCodes: success, or skipped while another AMI uses it.
    for (const auto& s : snaps) {
      std::string code = !image_using_snapshot(ctx, s).empty() ? "skipped"
                         : delete_snapshot_locked(ctx, s)      ? "success"
                                                               : "client-error";
      x.open("item").leaf("snapshotId", s).leaf("returnCode", code).close("item");
    }
    x.close("deleteSnapshotResultSet");
  }
  ctx.commit();
  return ec2_reply(call, x.str());
}

Reply copy_image(Context& ctx, const Call& call) {
  std::string source_id = call.param("SourceImageId");
  std::string name = call.param("Name");
  std::string token = call.param("ClientToken");
  if (source_id.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter SourceImageId");
  if (name.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter Name");
  if (auto bad = check_image_name(name)) return refuse(call, *bad);
  if (auto bad = check_description(call.param("Description"))) return refuse(call, *bad);
  if (!call.param("KmsKeyId").empty()) {
    if (auto bad = check_kms_key(call.param("KmsKeyId"), KmsKeyForm::kAnyIdentifier)) {
      return refuse(call, *bad);
    }
  }
  Tags image_spec_tags = tag_specifications(call, "image");
  Tags snapshot_tags = tag_specifications(call, "snapshot");
  if (auto bad = check_tags({}, snapshot_tags, kEc2TagRules)) return refuse(call, *bad);
  std::string source_region = call.param("SourceRegion");
  if (source_region.empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameter SourceRegion");
  }
  if (!find_region(source_region)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + source_region + ") for parameter SourceRegion is invalid. "
                       "Unknown region.");
  }
  bool encrypted = call.param("Encrypted") == "true";
  if (!call.param("KmsKeyId").empty() && !encrypted) {
    return error_reply(call, 400, "InvalidParameterDependency",
                       "The parameter KmsKeyId requires the parameter Encrypted to be set.");
  }
  // What the request asks, for ClientToken idempotency: every parameter but the token.
  std::string asked;
  for (const auto& [k, v] : call.params) {
    if (k != "ClientToken" && k != "Action" && k != "Version") asked += k + "=" + v + "\n";
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  if (!token.empty()) {
    for (const auto& [id, img] : ctx.world().images) {
      if (img.client_token != token || img.owner_id != kAccountId) continue;
      if (img.client_token_params != asked) {
        return error_reply(call, 400, "IdempotentParameterMismatch",
                           "Arguments on this idempotent request are inconsistent with arguments "
                           "used in previous request(s).");
      }
      Xml x;
      x.leaf("imageId", id);
      return ec2_reply(call, x.str());
    }
  }
  World& from = ctx.world(source_region);
  auto it = from.images.find(source_id);
  if (it == from.images.end() || !image_visible(it->second) || ctx.hidden(source_id)) {
    return error_reply(call, 400, "InvalidAMIID.NotFound", "The image id '[" + source_id + "]' does not exist");
  }
  if (it->second.state != "available") {
    return error_reply(call, 400, "IncorrectState", "Image " + source_id + " is not in the available state");
  }
  Tags tags = call.param("CopyImageTags") == "true" ? it->second.tags : Tags{};
  if (auto bad = check_tags(tags, image_spec_tags, kEc2TagRules)) return refuse(call, *bad);
  for (const auto& [k, v] : image_spec_tags) tags[k] = v;
  if (auto bad = check_image_name_free(ctx.world(), kAccountId, name)) return refuse(call, *bad);
  Image copy = it->second;
  copy.id = ctx.new_id("ami");
  copy.owner_id = kAccountId;
  copy.owner_alias.clear();
  copy.is_public = false;
  copy.launch_user_ids.clear();
  copy.launch_groups.clear();
  copy.launch_organizations.clear();
  copy.launch_ous.clear();
  copy.deprecation_time.clear();
  copy.name = name;
  copy.description = call.param("Description");
  copy.state = "pending";
  copy.creation_time = ctx.now();
  copy.client_token = token;
  copy.client_token_params = asked;
  copy.source_image_id = source_id;
  copy.source_region = source_region;
  copy.tags = tags;
  double longest = 0;
  for (auto& m : copy.mappings) {
    if (m.snapshot_id.empty()) continue;
    auto copied = copy_snapshot_locked(ctx, from, m.snapshot_id,
                                       "Copied for DestinationAmi " + copy.id + " from SourceAmi " +
                                           source_id + " for SourceSnapshot " + m.snapshot_id,
                                       encrypted, call.param("KmsKeyId"), snapshot_tags, &longest);
    if (!copied) return error_reply(call, 500, "InternalError", copied.error().message);
    m.snapshot_id = *copied;
    const Snapshot& made = ctx.world().snapshots.at(*copied);
    if (made.encrypted) {
      m.encrypted = true;
      m.kms_key_id = made.kms_key_id;
    }
  }
  copy.ready_at = std::max(ctx.after(5), longest);
  ctx.world().images[copy.id] = copy;
  ctx.maybe_hide(call.action, copy.id);
  ctx.commit();
  Xml x;
  x.leaf("imageId", copy.id);
  return ec2_reply(call, x.str());
}

Image* owned_image(Context& ctx, const Call& call, Reply* error) {
  std::string id = call.param("ImageId");
  auto it = ctx.world().images.find(id);
  if (it == ctx.world().images.end() || !image_visible(it->second)) {
    *error = error_reply(call, 400, "InvalidAMIID.NotFound", "The image id '[" + id + "]' does not exist");
    return nullptr;
  }
  if (it->second.owner_id != kAccountId && call.action != "DescribeImageAttribute") {
    *error = error_reply(call, 403, "AuthFailure", "Not authorized for image:" + id);
    return nullptr;
  }
  return &it->second;
}

Reply describe_image_attribute(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Image* img = owned_image(ctx, call, &error);
  if (!img) return error;
  std::string attr = call.param("Attribute");
  Xml x;
  x.leaf("imageId", img->id);
  auto value = [&](const char* tag, const std::string& v) {
    x.open(tag);
    if (!v.empty()) x.leaf("value", v);
    x.close(tag);
  };
  if (attr == "description") value("description", img->description);
  else if (attr == "kernel") value("kernel", "");
  else if (attr == "ramdisk") value("ramdisk", "");
  else if (attr == "sriovNetSupport") value("sriovNetSupport", img->sriov_net_support);
  else if (attr == "bootMode") value("bootMode", img->boot_mode);
  else if (attr == "tpmSupport") value("tpmSupport", img->tpm_support);
  else if (attr == "imdsSupport") value("imdsSupport", img->imds_support);
  else if (attr == "uefiData") value("uefiData", "");
  else if (attr == "lastLaunchedTime") value("lastLaunchedTime", "");
  else if (attr == "deregistrationProtection") value("deregistrationProtection", "disabled");
  else if (attr == "productCodes") x.open("productCodes").close("productCodes");
  else if (attr == "blockDeviceMapping") {
    x.open("blockDeviceMapping");
    for (const auto& m : img->mappings) write_mapping(x, m);
    x.close("blockDeviceMapping");
  } else if (attr == "launchPermission") {
    x.open("launchPermission");
    for (const auto& g : img->launch_groups) x.open("item").leaf("group", g).close("item");
    for (const auto& u : img->launch_user_ids) x.open("item").leaf("userId", u).close("item");
    for (const auto& o : img->launch_organizations) {
      x.open("item").leaf("organizationArn", o).close("item");
    }
    for (const auto& o : img->launch_ous) x.open("item").leaf("organizationalUnitArn", o).close("item");
    x.close("launchPermission");
  } else {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + attr + ") for parameter attribute is invalid. Unknown attribute.");
  }
  return ec2_reply(call, x.str());
}

// One launch permission of ModifyImageAttribute: exactly one of its fields is set.
struct Permission {
  std::string user, group, organization, ou;
};

// Checks a permission as EC2 does: a 12-digit account, the group "all", an organization
// or OU ARN (botocore's OrganizationArn / OrganizationalUnitArn forms).
std::optional<std::string> bad_permission(const Permission& p) {
  auto digits12 = [](const std::string& v) {
    return v.size() == 12 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  auto org_arn = [&](const std::string& v, const std::string& kind) {
    const std::string head = "arn:aws:organizations::";
    if (v.rfind(head, 0) != 0 || v.size() < head.size() + 13) return false;
    return digits12(v.substr(head.size(), 12)) && v.substr(head.size() + 12, kind.size() + 2) == ":" + kind + "/";
  };
  if (!p.user.empty() && !digits12(p.user)) return "Invalid user id: " + p.user;
  if (!p.group.empty() && p.group != "all") return "Invalid launch permission group: " + p.group;
  if (!p.organization.empty() && !org_arn(p.organization, "organization")) {
    return "Invalid organization ARN: " + p.organization;
  }
  if (!p.ou.empty() && !org_arn(p.ou, "ou")) return "Invalid organizational unit ARN: " + p.ou;
  return std::nullopt;
}

void apply_permission(Image* img, const std::string& op, const Permission& p) {
  auto edit = [&](std::vector<std::string>& list, const std::string& v) {
    if (v.empty()) return;
    auto it = std::find(list.begin(), list.end(), v);
    if (op == "add" && it == list.end()) list.push_back(v);
    if (op == "remove" && it != list.end()) list.erase(it);
  };
  edit(img->launch_user_ids, p.user);
  edit(img->launch_groups, p.group);
  edit(img->launch_organizations, p.organization);
  edit(img->launch_ous, p.ou);
  img->is_public = std::count(img->launch_groups.begin(), img->launch_groups.end(), "all") > 0;
}

// The error EC2 gives for sharing what is encrypted with the AWS-managed aws/ebs key,
// which no other account can use.
constexpr const char* kManagedKeyShareMessage =
    "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.";

bool uses_aws_managed_key(Context& ctx, const Image& img) {
  for (const auto& m : img.mappings) {
    auto it = ctx.world().snapshots.find(m.snapshot_id);
    if (it != ctx.world().snapshots.end() && it->second.encrypted &&
        is_aws_managed_ebs_key(Context::current_region(), it->second.kms_key_id)) {
      return true;
    }
  }
  return false;
}

Reply modify_image_attribute(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Image* img = owned_image(ctx, call, &error);
  if (!img) return error;
  std::string attr = call.param("Attribute");
  bool changed = false;
  if (call.params.count("Description.Value") || attr == "description") {
    img->description = call.params.count("Description.Value") ? call.param("Description.Value")
                                                              : call.param("Value");
    changed = true;
  }
  // Every permission change of the request, checked before any is applied.
  std::vector<std::pair<std::string, Permission>> changes;
  for (const char* op : {"Add", "Remove"}) {
    std::string lower_op = std::string(op) == "Add" ? "add" : "remove";
    for (const auto& item : query_structs(call.params, std::string("LaunchPermission.") + op)) {
      auto get = [&](const char* k) { return item.count(k) ? item.at(k) : std::string(); };
      changes.push_back({lower_op, {get("UserId"), get("Group"), get("OrganizationArn"),
                                    get("OrganizationalUnitArn")}});
    }
  }
  if (attr == "launchPermission" || !call.param("OperationType").empty()) {
    std::string op = call.param("OperationType");
    bool any = !query_list(call, "UserId").empty() || !query_list(call, "UserGroup").empty() ||
               !query_list(call, "OrganizationArn").empty() ||
               !query_list(call, "OrganizationalUnitArn").empty();
    if (any && op != "add" && op != "remove") {
      return error_reply(call, 400, "InvalidParameterValue", "OperationType must be add or remove");
    }
    for (const auto& u : query_list(call, "UserId")) changes.push_back({op, {u, "", "", ""}});
    for (const auto& g : query_list(call, "UserGroup")) changes.push_back({op, {"", g, "", ""}});
    for (const auto& o : query_list(call, "OrganizationArn")) changes.push_back({op, {"", "", o, ""}});
    for (const auto& o : query_list(call, "OrganizationalUnitArn")) changes.push_back({op, {"", "", "", o}});
  }
  for (const auto& [op, p] : changes) {
    if (auto bad = bad_permission(p)) return error_reply(call, 400, "InvalidAMIAttributeItemValue", *bad);
    bool shares = op == "add" && (p.user != kAccountId || !p.group.empty() ||
                                  !p.organization.empty() || !p.ou.empty());
    if (shares && uses_aws_managed_key(ctx, *img)) {
      return error_reply(call, 400, "InvalidParameter", kManagedKeyShareMessage);
    }
  }
  for (const auto& [op, p] : changes) apply_permission(img, op, p);
  changed = changed || !changes.empty();
  if (call.params.count("ImdsSupport.Value")) {
    img->imds_support = call.param("ImdsSupport.Value");
    changed = true;
  }
  if (!changed) {
    return error_reply(call, 400, "MissingParameter", "No attribute to modify was given");
  }
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

Reply enable_image_deprecation(Context& ctx, const Call& call) {
  double at = 0;
  if (!parse_iso_time(call.param("DeprecateAt"), &at)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + call.param("DeprecateAt") + ") for parameter DeprecateAt is invalid.");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Image* img = owned_image(ctx, call, &error);
  if (!img) return error;
  if (at < ctx.now() - 60) {
    return error_reply(call, 400, "InvalidParameterValue", "The deprecation time must be in the future.");
  }
  if (at > ctx.now() + 10 * 365.25 * 86400) {
    return error_reply(call, 400, "InvalidParameterValue", "The deprecation time cannot be more than 10 years from now.");
  }
  at = static_cast<double>(static_cast<int64_t>((at + 30) / 60) * 60);  // EC2 rounds to the minute
  img->deprecation_time = iso_time(at);
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

Reply disable_image_deprecation(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Image* img = owned_image(ctx, call, &error);
  if (!img) return error;
  img->deprecation_time.clear();
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

}  // namespace

Reply handle_ec2_images(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "DescribeImages") return describe_images(ctx, call);
  if (a == "RegisterImage") return register_image(ctx, call);
  if (a == "DeregisterImage") return deregister_image(ctx, call);
  if (a == "CopyImage") return copy_image(ctx, call);
  if (a == "DescribeImageAttribute") return describe_image_attribute(ctx, call);
  if (a == "ModifyImageAttribute") return modify_image_attribute(ctx, call);
  if (a == "EnableImageDeprecation") return enable_image_deprecation(ctx, call);
  if (a == "DisableImageDeprecation") return disable_image_deprecation(ctx, call);
  return handle_launch_templates(ctx, call);
}

}  // namespace amibake::emu
