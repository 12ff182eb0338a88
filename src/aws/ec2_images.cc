// EC2 image operations: describe, register, copy, deregister, attributes, deprecation.
//
// The Image struct carries every attribute a derived AMI must inherit from its base
// (architecture, boot mode, ENA, SR-IOV, TPM, IMDS support, the block device
// mappings), so the bake can copy them into RegisterImage without a second call.
// Encoding and reading follow the same rules as ec2.cc (see its file comment).
#include "aws/credentials.h"  // format_iso8601
#include "aws/ec2.h"
#include "aws/ec2_internal.h"

namespace amibake::aws::ec2 {

using namespace internal;

std::string Image::root_snapshot_id() const {
  for (const BlockDeviceMapping& m : block_device_mappings) {
    if (m.device_name == root_device_name && m.ebs) return m.ebs->snapshot_id;
  }
  return {};
}

static Image read_image(XmlReader& rd, pugi::xml_node n) {
  Image i;
  i.image_id = rd.str(n, "imageId");
  i.name = rd.str(n, "name");
  i.description = rd.str(n, "description");
  i.creation_date = rd.str(n, "creationDate");
  i.owner_id = rd.str(n, "imageOwnerId");
  i.image_owner_alias = rd.str(n, "imageOwnerAlias");
  i.state = rd.str(n, "imageState");
  i.state_reason = rd.str(xml_child(n, "stateReason"), "message");
  i.architecture = rd.str(n, "architecture");
  i.boot_mode = rd.str(n, "bootMode");
  i.platform = rd.str(n, "platform");
  i.platform_details = rd.str(n, "platformDetails");
  i.usage_operation = rd.str(n, "usageOperation");
  i.image_type = rd.str(n, "imageType");
  i.hypervisor = rd.str(n, "hypervisor");
  i.root_device_name = rd.str(n, "rootDeviceName");
  i.root_device_type = rd.str(n, "rootDeviceType");
  i.virtualization_type = rd.str(n, "virtualizationType");
  i.block_device_mappings = read_block_device_mappings(rd, n);
  i.ena_support = rd.boolean(n, "enaSupport");
  i.sriov_net_support = rd.str(n, "sriovNetSupport");
  i.tpm_support = rd.str(n, "tpmSupport");
  i.imds_support = rd.str(n, "imdsSupport");
  i.deprecation_time = rd.str(n, "deprecationTime");
  i.is_public = rd.boolean(n, "isPublic");
  i.tags = read_tags(n);
  return i;
}

AwsRequest encode_describe_images(const DescribeImagesRequest& r, const std::string& token) {
  QueryForm f = ec2_form("DescribeImages");
  f.add_list("ExecutableBy", r.executable_users);
  f.add_list("ImageId", r.image_ids);
  f.add_list("Owner", r.owners);
  f.add_bool("IncludeDeprecated", r.include_deprecated);
  f.add_bool("IncludeDisabled", r.include_disabled);
  f.add_int("MaxResults", r.max_results);
  f.add_nonempty("NextToken", token);
  f.add_filters(r.filters);
  return ec2_request("DescribeImages", f, /*idempotent=*/true);
}

Result<Page<Image>> parse_describe_images(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeImages", body));
  XmlReader rd(kService, "DescribeImages");
  Page<Image> page;
  for (pugi::xml_node item : xml_items(a.root(), "imagesSet")) {
    page.items.push_back(read_image(rd, item));
  }
  page.next_token = rd.str(a.root(), "nextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<Image>> describe_images(AwsClient& c, const DescribeImagesRequest& r) {
  std::vector<Image> out;
  AMIBAKE_TRY(collect_pages<Image>(
      "ec2 DescribeImages",
      [&](const std::string& token) {
        return call(c, encode_describe_images(r, token), &parse_describe_images);
      },
      &out));
  return out;
}

Result<Image> describe_image(AwsClient& c, const std::string& image_id) {
  DescribeImagesRequest r;
  r.image_ids = {image_id};
  // Deprecated and disabled images are still valid bases to describe.
  r.include_deprecated = true;
  AMIBAKE_ASSIGN(std::vector<Image> images, describe_images(c, r));
  for (Image& image : images) {
    if (image.image_id == image_id) return std::move(image);
  }
  Error e = make_error("ec2 DescribeImages: image '" + image_id + "' not found",
                       "check the AMI id and region, and that the image is shared with this "
                       "account");
  e.aws_code = "InvalidAMIID.NotFound";
  return e;
}

AwsRequest encode_register_image(const RegisterImageRequest& r) {
  QueryForm f = ec2_form("RegisterImage");
  f.add("Name", r.name);
  f.add_nonempty("Description", r.description);
  f.add_nonempty("Architecture", r.architecture);
  f.add_nonempty("RootDeviceName", r.root_device_name);
  f.add_nonempty("VirtualizationType", r.virtualization_type);
  add_block_device_mappings(f, r.block_device_mappings);
  f.add_bool("EnaSupport", r.ena_support);
  f.add_nonempty("SriovNetSupport", r.sriov_net_support);
  f.add_nonempty("BootMode", r.boot_mode);
  f.add_nonempty("TpmSupport", r.tpm_support);
  f.add_nonempty("UefiData", r.uefi_data);
  f.add_nonempty("ImdsSupport", r.imds_support);
  f.add_list("BillingProduct", r.billing_products);
  f.add_tag_specifications(r.tag_specifications);
  // Not resent after an unknown outcome: a second try would fail with
  // InvalidAMIName.Duplicate and hide the first one's success. Callers look the image
  // up by name instead.
  return ec2_request("RegisterImage", f, /*idempotent=*/false);
}

static Result<std::string> parse_image_id_answer(std::string_view operation,
                                                 std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, operation, body));
  std::string id = xml_child(a.root(), "imageId").child_value();
  if (id.empty()) return malformed_answer(kService, operation, "no <imageId>");
  return id;
}

Result<std::string> parse_register_image(std::string_view body) {
  return parse_image_id_answer("RegisterImage", body);
}

Result<std::string> register_image(AwsClient& c, const RegisterImageRequest& r) {
  return call(c, encode_register_image(r), &parse_register_image);
}

AwsRequest encode_copy_image(const CopyImageRequest& r) {
  QueryForm f = ec2_form("CopyImage");
  f.add_nonempty("ClientToken", r.client_token);
  f.add_nonempty("Description", r.description);
  f.add_bool("Encrypted", r.encrypted);
  f.add_nonempty("KmsKeyId", r.kms_key_id);
  f.add("Name", r.name);
  f.add("SourceImageId", r.source_image_id);
  f.add("SourceRegion", r.source_region);
  f.add_bool("CopyImageTags", r.copy_image_tags);
  f.add_tag_specifications(r.tag_specifications);
  return ec2_request("CopyImage", f, /*idempotent=*/!r.client_token.empty());
}

Result<std::string> parse_copy_image(std::string_view body) {
  return parse_image_id_answer("CopyImage", body);
}

Result<std::string> copy_image(AwsClient& c, const CopyImageRequest& r) {
  return call(c, encode_copy_image(r), &parse_copy_image);
}

AwsRequest encode_deregister_image(const std::string& image_id,
                                   std::optional<bool> delete_associated_snapshots) {
  QueryForm f = ec2_form("DeregisterImage");
  f.add("ImageId", image_id);
  f.add_bool("DeleteAssociatedSnapshots", delete_associated_snapshots);
  return ec2_request("DeregisterImage", f, /*idempotent=*/true);
}

Status deregister_image(AwsClient& c, const std::string& image_id,
                        std::optional<bool> delete_associated_snapshots) {
  return call_return(c, encode_deregister_image(image_id, delete_associated_snapshots));
}

// ---- attributes ----

AwsRequest encode_describe_image_attribute(const std::string& image_id,
                                           const std::string& attribute) {
  QueryForm f = ec2_form("DescribeImageAttribute");
  f.add("Attribute", attribute);
  f.add("ImageId", image_id);
  return ec2_request("DescribeImageAttribute", f, /*idempotent=*/true);
}

// Reads <name><value>x</value></name>: unset when <name> is absent.
static std::optional<std::string> read_attribute_value(XmlReader& rd, pugi::xml_node n,
                                                       std::string_view name) {
  pugi::xml_node c = xml_child(n, name);
  if (!c) return std::nullopt;
  return rd.str(c, "value");
}

Result<ImageAttribute> parse_describe_image_attribute(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeImageAttribute", body));
  XmlReader rd(kService, "DescribeImageAttribute");
  pugi::xml_node n = a.root();
  ImageAttribute out;
  out.image_id = rd.str(n, "imageId");
  out.description = read_attribute_value(rd, n, "description");
  out.kernel_id = read_attribute_value(rd, n, "kernel");
  out.ramdisk_id = read_attribute_value(rd, n, "ramdisk");
  out.sriov_net_support = read_attribute_value(rd, n, "sriovNetSupport");
  out.boot_mode = read_attribute_value(rd, n, "bootMode");
  out.tpm_support = read_attribute_value(rd, n, "tpmSupport");
  out.uefi_data = read_attribute_value(rd, n, "uefiData");
  out.imds_support = read_attribute_value(rd, n, "imdsSupport");
  out.last_launched_time = read_attribute_value(rd, n, "lastLaunchedTime");
  out.deregistration_protection = read_attribute_value(rd, n, "deregistrationProtection");
  for (pugi::xml_node item : xml_items(n, "launchPermission")) {
    out.launch_permissions.push_back(LaunchPermission{rd.str(item, "userId"), rd.str(item, "group"),
                                                      rd.str(item, "organizationArn"),
                                                      rd.str(item, "organizationalUnitArn")});
  }
  for (pugi::xml_node item : xml_items(n, "productCodes")) {
    out.product_codes.push_back(rd.str(item, "productCode"));
  }
  out.block_device_mappings = read_block_device_mappings(rd, n);
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<ImageAttribute> describe_image_attribute(AwsClient& c, const std::string& image_id,
                                                const std::string& attribute) {
  return call(c, encode_describe_image_attribute(image_id, attribute),
              &parse_describe_image_attribute);
}

static void add_launch_permissions(QueryForm& f, const std::string& prefix,
                                   const std::vector<LaunchPermission>& perms) {
  for (size_t i = 0; i < perms.size(); ++i) {
    const std::string p = prefix + "." + std::to_string(i + 1) + ".";
    f.add_nonempty(p + "Group", perms[i].group);
    f.add_nonempty(p + "UserId", perms[i].user_id);
    f.add_nonempty(p + "OrganizationArn", perms[i].organization_arn);
    f.add_nonempty(p + "OrganizationalUnitArn", perms[i].organizational_unit_arn);
  }
}

AwsRequest encode_modify_image_attribute(const ModifyImageAttributeRequest& r) {
  QueryForm f = ec2_form("ModifyImageAttribute");
  if (r.description) f.add("Description.Value", *r.description);
  f.add("ImageId", r.image_id);
  add_launch_permissions(f, "LaunchPermission.Add", r.launch_permission_add);
  add_launch_permissions(f, "LaunchPermission.Remove", r.launch_permission_remove);
  if (r.imds_support) f.add("ImdsSupport.Value", *r.imds_support);
  return ec2_request("ModifyImageAttribute", f, /*idempotent=*/true);
}

Status modify_image_attribute(AwsClient& c, const ModifyImageAttributeRequest& r) {
  return call_return(c, encode_modify_image_attribute(r));
}

AwsRequest encode_enable_image_deprecation(const std::string& image_id,
                                           std::chrono::system_clock::time_point deprecate_at) {
  QueryForm f = ec2_form("EnableImageDeprecation");
  f.add("ImageId", image_id);
  // Whole seconds: EC2 rounds deprecation times to the minute anyway.
  f.add("DeprecateAt", format_iso8601(deprecate_at));
  return ec2_request("EnableImageDeprecation", f, /*idempotent=*/true);
}

Status enable_image_deprecation(AwsClient& c, const std::string& image_id,
                                std::chrono::system_clock::time_point deprecate_at) {
  return call_return(c, encode_enable_image_deprecation(image_id, deprecate_at));
}

}  // namespace amibake::aws::ec2
