// EC2 operations (API version 2016-11-15, EC2 Query protocol, XML answers).
//
// Every operation comes as three pieces, so each can be tested alone:
//   encode_<op>(request[, token]) -> AwsRequest   the exact form body botocore would send
//   parse_<op>(body)              -> Result<...>  the typed answer, or a malformed-answer error
//   <op>(client, request)         -> Result<...>  both, through AwsClient::send, following
//                                                 NextToken to the end for Describe* calls
// Field names follow botocore's model (service-2.json); comments name the wire names
// only where they differ.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "aws/paginate.h"
#include "aws/query.h"
#include "base/result.h"

namespace amibake::aws::ec2 {

// ---- shared shapes ----

struct EbsBlockDevice {
  std::string snapshot_id;
  std::optional<int64_t> volume_size;  // GiB
  std::string volume_type;             // gp3, gp2, io2, ...
  std::optional<int64_t> iops;
  std::optional<int64_t> throughput;  // MiB/s (gp3)
  std::optional<bool> encrypted;
  std::string kms_key_id;
  std::optional<bool> delete_on_termination;
};

struct BlockDeviceMapping {
  std::string device_name;   // "/dev/xvda"
  std::string virtual_name;  // "ephemeral0" for instance store
  bool no_device = false;    // suppress a mapping the image would otherwise have
  std::optional<EbsBlockDevice> ebs;
};

// Returns the value of tag `key` in `tags`, or "" when absent.
std::string find_tag(const std::vector<Tag>& tags, std::string_view key);

// ---- images ----

struct Image {
  std::string image_id;
  std::string name;
  std::string description;
  std::string creation_date;  // ISO 8601
  std::string owner_id;
  std::string image_owner_alias;  // "amazon" for Amazon's public images
  std::string state;              // pending | available | invalid | deregistered | failed | error
  std::string state_reason;       // stateReason/message, when the image failed
  std::string architecture;       // x86_64 | arm64 | i386 | x86_64_mac | arm64_mac
  std::string boot_mode;          // legacy-bios | uefi | uefi-preferred; "" = default
  std::string platform;           // "windows" or ""
  std::string platform_details;   // "Linux/UNIX"
  std::string usage_operation;
  std::string image_type;  // machine | kernel | ramdisk
  std::string hypervisor;  // xen | nitro
  std::string root_device_name;
  std::string root_device_type;     // ebs | instance-store
  std::string virtualization_type;  // hvm | paravirtual
  std::vector<BlockDeviceMapping> block_device_mappings;
  bool ena_support = false;
  std::string sriov_net_support;  // "simple" or ""
  std::string tpm_support;        // "v2.0" or ""
  std::string imds_support;       // "v2.0" or ""
  std::string deprecation_time;   // ISO 8601 or ""
  bool is_public = false;
  std::vector<Tag> tags;

  // Returns the snapshot of the mapping whose device is the root device, or "".
  std::string root_snapshot_id() const;
};

struct DescribeImagesRequest {
  std::vector<std::string> image_ids;
  std::vector<std::string> owners;            // "amazon", "self", account ids
  std::vector<std::string> executable_users;  // "self", "all", account ids
  std::vector<Filter> filters;
  std::optional<bool> include_deprecated;
  std::optional<bool> include_disabled;
  std::optional<int64_t> max_results;  // per page; unset = service default
};
AwsRequest encode_describe_images(const DescribeImagesRequest& r, const std::string& token);
Result<Page<Image>> parse_describe_images(std::string_view body);
// Returns every image matching `r` (all pages).
Result<std::vector<Image>> describe_images(AwsClient& c, const DescribeImagesRequest& r);
// Returns the one image `image_id`, or an error when it does not exist/is not visible.
Result<Image> describe_image(AwsClient& c, const std::string& image_id);

struct RegisterImageRequest {
  std::string name;
  std::string description;
  std::string architecture;
  std::string root_device_name;
  std::string virtualization_type;  // "hvm"
  std::vector<BlockDeviceMapping> block_device_mappings;
  std::optional<bool> ena_support;
  std::string sriov_net_support;  // "simple" or ""
  std::string boot_mode;
  std::string tpm_support;
  std::string uefi_data;  // base64 UEFI variable store, or ""
  std::string imds_support;
  std::vector<std::string> billing_products;
  std::vector<TagSpecification> tag_specifications;
};
AwsRequest encode_register_image(const RegisterImageRequest& r);
Result<std::string> parse_register_image(std::string_view body);  // image id
Result<std::string> register_image(AwsClient& c, const RegisterImageRequest& r);

struct CopyImageRequest {
  std::string source_image_id;
  std::string source_region;
  std::string name;
  std::string description;
  std::string client_token;  // makes the copy idempotent (retries and resumed builds)
  std::optional<bool> encrypted;
  std::string kms_key_id;
  std::optional<bool> copy_image_tags;
  std::vector<TagSpecification> tag_specifications;
};
AwsRequest encode_copy_image(const CopyImageRequest& r);
Result<std::string> parse_copy_image(std::string_view body);  // new image id
Result<std::string> copy_image(AwsClient& c, const CopyImageRequest& r);

// DeregisterImage; `delete_associated_snapshots` unset = service default (keep them).
AwsRequest encode_deregister_image(const std::string& image_id,
                                   std::optional<bool> delete_associated_snapshots);
Status deregister_image(AwsClient& c, const std::string& image_id,
                        std::optional<bool> delete_associated_snapshots = std::nullopt);

struct LaunchPermission {
  std::string user_id;
  std::string group;  // "all" = public
  std::string organization_arn;
  std::string organizational_unit_arn;
};

// The answer of DescribeImageAttribute: only the asked-for attribute is filled in.
struct ImageAttribute {
  std::string image_id;
  std::optional<std::string> description;
  std::optional<std::string> kernel_id, ramdisk_id;
  std::optional<std::string> sriov_net_support, boot_mode, tpm_support, uefi_data;
  std::optional<std::string> imds_support, last_launched_time, deregistration_protection;
  std::vector<LaunchPermission> launch_permissions;
  std::vector<std::string> product_codes;
  std::vector<BlockDeviceMapping> block_device_mappings;
};
// `attribute`: description | kernel | ramdisk | launchPermission | productCodes |
// blockDeviceMapping | sriovNetSupport | bootMode | tpmSupport | uefiData |
// lastLaunchedTime | imdsSupport | deregistrationProtection.
AwsRequest encode_describe_image_attribute(const std::string& image_id,
                                           const std::string& attribute);
Result<ImageAttribute> parse_describe_image_attribute(std::string_view body);
Result<ImageAttribute> describe_image_attribute(AwsClient& c, const std::string& image_id,
                                                const std::string& attribute);

struct ModifyImageAttributeRequest {
  std::string image_id;
  std::optional<std::string> description;
  std::vector<LaunchPermission> launch_permission_add;
  std::vector<LaunchPermission> launch_permission_remove;
  std::optional<std::string> imds_support;  // "v2.0"
};
AwsRequest encode_modify_image_attribute(const ModifyImageAttributeRequest& r);
Status modify_image_attribute(AwsClient& c, const ModifyImageAttributeRequest& r);

AwsRequest encode_enable_image_deprecation(const std::string& image_id,
                                           std::chrono::system_clock::time_point deprecate_at);
Status enable_image_deprecation(AwsClient& c, const std::string& image_id,
                                std::chrono::system_clock::time_point deprecate_at);

// ---- snapshots ----

struct Snapshot {
  std::string snapshot_id;
  std::string volume_id;
  std::string state;  // pending | completed | error | recoverable | recovering
  std::string state_message;
  std::string progress;  // "45%" as sent
  std::string start_time;
  std::string owner_id;
  std::string owner_alias;
  std::string description;
  std::string kms_key_id;
  int64_t volume_size = 0;  // GiB
  bool encrypted = false;
  std::vector<Tag> tags;
  // Returns progress as 0..100, or -1 when absent or unreadable.
  int progress_percent() const;
};

struct DescribeSnapshotsRequest {
  std::vector<std::string> snapshot_ids;
  std::vector<std::string> owner_ids;
  std::vector<std::string> restorable_by_user_ids;
  std::vector<Filter> filters;
  std::optional<int64_t> max_results;
};
AwsRequest encode_describe_snapshots(const DescribeSnapshotsRequest& r, const std::string& token);
Result<Page<Snapshot>> parse_describe_snapshots(std::string_view body);
Result<std::vector<Snapshot>> describe_snapshots(AwsClient& c, const DescribeSnapshotsRequest& r);

struct CreateSnapshotRequest {
  std::string volume_id;
  std::string description;
  std::vector<TagSpecification> tag_specifications;
};
AwsRequest encode_create_snapshot(const CreateSnapshotRequest& r);
Result<Snapshot> parse_create_snapshot(std::string_view body);
Result<Snapshot> create_snapshot(AwsClient& c, const CreateSnapshotRequest& r);

struct CopySnapshotRequest {
  std::string source_snapshot_id;
  std::string source_region;
  std::string description;
  std::optional<bool> encrypted;
  std::string kms_key_id;
  std::vector<TagSpecification> tag_specifications;
};
AwsRequest encode_copy_snapshot(const CopySnapshotRequest& r);
Result<std::string> parse_copy_snapshot(std::string_view body);  // new snapshot id
Result<std::string> copy_snapshot(AwsClient& c, const CopySnapshotRequest& r);

AwsRequest encode_delete_snapshot(const std::string& snapshot_id);
Status delete_snapshot(AwsClient& c, const std::string& snapshot_id);

// ---- volumes ----

struct VolumeAttachment {
  std::string volume_id;
  std::string instance_id;
  std::string device;
  std::string state;  // attaching | attached | detaching | detached | busy
  std::string attach_time;
  std::optional<bool> delete_on_termination;
};

struct Volume {
  std::string volume_id;
  std::string snapshot_id;
  std::string availability_zone;
  std::string state;  // creating | available | in-use | deleting | deleted | error
  std::string volume_type;
  std::string create_time;
  std::string kms_key_id;
  int64_t size = 0;  // GiB
  std::optional<int64_t> iops;
  std::optional<int64_t> throughput;
  bool encrypted = false;
  bool multi_attach_enabled = false;
  std::vector<VolumeAttachment> attachments;
  std::vector<Tag> tags;
};

struct CreateVolumeRequest {
  std::string availability_zone;
  std::string snapshot_id;
  std::optional<int64_t> size;  // GiB; unset = snapshot size
  std::string volume_type;
  std::optional<int64_t> iops;
  std::optional<int64_t> throughput;
  std::optional<bool> encrypted;
  std::string kms_key_id;
  std::optional<bool> multi_attach_enabled;
  std::vector<TagSpecification> tag_specifications;
  std::string client_token;
};
AwsRequest encode_create_volume(const CreateVolumeRequest& r);
Result<Volume> parse_create_volume(std::string_view body);
Result<Volume> create_volume(AwsClient& c, const CreateVolumeRequest& r);

struct DescribeVolumesRequest {
  std::vector<std::string> volume_ids;
  std::vector<Filter> filters;
  std::optional<int64_t> max_results;
};
AwsRequest encode_describe_volumes(const DescribeVolumesRequest& r, const std::string& token);
Result<Page<Volume>> parse_describe_volumes(std::string_view body);
Result<std::vector<Volume>> describe_volumes(AwsClient& c, const DescribeVolumesRequest& r);

AwsRequest encode_attach_volume(const std::string& volume_id, const std::string& instance_id,
                                const std::string& device);
Result<VolumeAttachment> parse_attach_volume(std::string_view body);
Result<VolumeAttachment> attach_volume(AwsClient& c, const std::string& volume_id,
                                       const std::string& instance_id, const std::string& device);

struct DetachVolumeRequest {
  std::string volume_id;
  std::string instance_id;  // optional
  std::string device;       // optional
  std::optional<bool> force;
};
AwsRequest encode_detach_volume(const DetachVolumeRequest& r);
Result<VolumeAttachment> parse_detach_volume(std::string_view body);
Result<VolumeAttachment> detach_volume(AwsClient& c, const DetachVolumeRequest& r);

AwsRequest encode_delete_volume(const std::string& volume_id);
Status delete_volume(AwsClient& c, const std::string& volume_id);

// ---- tags ----

AwsRequest encode_create_tags(const std::vector<std::string>& resource_ids,
                              const std::vector<Tag>& tags);
Status create_tags(AwsClient& c, const std::vector<std::string>& resource_ids,
                   const std::vector<Tag>& tags);

struct TagDescription {
  std::string resource_id;
  std::string resource_type;
  std::string key;
  std::string value;
};
AwsRequest encode_describe_tags(const std::vector<Filter>& filters,
                                std::optional<int64_t> max_results, const std::string& token);
Result<Page<TagDescription>> parse_describe_tags(std::string_view body);
Result<std::vector<TagDescription>> describe_tags(AwsClient& c, const std::vector<Filter>& filters,
                                                  std::optional<int64_t> max_results = {});

// ---- instances, zones, account settings ----

struct InstanceBlockDevice {
  std::string device_name;
  std::string volume_id;
  std::string state;  // attaching | attached | ...
  std::optional<bool> delete_on_termination;
};

struct Instance {
  std::string instance_id;
  std::string image_id;
  std::string instance_type;
  std::string state;  // pending | running | shutting-down | terminated | stopping | stopped
  std::string availability_zone;
  std::string architecture;
  std::string root_device_name;
  std::string root_device_type;
  std::string private_ip_address;
  std::string launch_time;
  std::string boot_mode;
  std::vector<InstanceBlockDevice> block_device_mappings;
  std::vector<Tag> tags;
};

struct DescribeInstancesRequest {
  std::vector<std::string> instance_ids;
  std::vector<Filter> filters;
  std::optional<int64_t> max_results;
};
AwsRequest encode_describe_instances(const DescribeInstancesRequest& r, const std::string& token);
// Flattens reservations into their instances.
Result<Page<Instance>> parse_describe_instances(std::string_view body);
Result<std::vector<Instance>> describe_instances(AwsClient& c, const DescribeInstancesRequest& r);

struct AvailabilityZone {
  std::string zone_name;
  std::string zone_id;
  std::string state;  // available | ...
  std::string region_name;
  std::string zone_type;  // availability-zone | local-zone | wavelength-zone
  std::string opt_in_status;
};
struct DescribeAvailabilityZonesRequest {
  std::vector<std::string> zone_names;
  std::vector<std::string> zone_ids;
  std::vector<Filter> filters;
  std::optional<bool> all_availability_zones;
};
AwsRequest encode_describe_availability_zones(const DescribeAvailabilityZonesRequest& r);
Result<std::vector<AvailabilityZone>> parse_describe_availability_zones(std::string_view body);
Result<std::vector<AvailabilityZone>> describe_availability_zones(
    AwsClient& c, const DescribeAvailabilityZonesRequest& r = {});

struct EbsEncryptionByDefault {
  bool enabled = false;
  std::string sse_type;
};
AwsRequest encode_get_ebs_encryption_by_default();
Result<EbsEncryptionByDefault> parse_get_ebs_encryption_by_default(std::string_view body);
Result<EbsEncryptionByDefault> get_ebs_encryption_by_default(AwsClient& c);

// Parses a <XResponse><return>true</return></XResponse> answer: ok when "true" or
// absent, an error naming `operation` when "false" or malformed. Exposed for tests and fuzzing.
Status parse_return_answer(std::string_view operation, std::string_view body);

}  // namespace amibake::aws::ec2
