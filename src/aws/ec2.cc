// EC2 operations on snapshots, volumes, tags, instances, zones and account settings,
// plus the helpers every EC2 operation shares. Image operations live in
// ec2_images.cc.
//
// Requests are built field by field in the order botocore's EC2 serializer emits them
// for the same inputs, so encoding tests can compare whole bodies with what the AWS
// CLI sends. Answers are read with XmlReader: absent fields stay empty (EC2 omits
// what does not apply), present-but-garbled fields fail the whole parse with an error
// naming the operation. Describe* calls follow NextToken through collect_pages.
#include "aws/ec2.h"

#include <charconv>

#include "aws/ec2_internal.h"

namespace amibake::aws::ec2 {

using namespace internal;

namespace internal {

QueryForm ec2_form(std::string_view operation) { return QueryForm(operation, kEc2ApiVersion); }

AwsRequest ec2_request(std::string_view operation, const QueryForm& form, bool idempotent) {
  return make_query_request(std::string(kService), Protocol::kEc2, std::string(operation), form,
                            idempotent);
}

void add_block_device_mappings(QueryForm& form, const std::vector<BlockDeviceMapping>& mappings) {
  for (size_t i = 0; i < mappings.size(); ++i) {
    const BlockDeviceMapping& m = mappings[i];
    const std::string p = "BlockDeviceMapping." + std::to_string(i + 1) + ".";
    form.add_nonempty(p + "DeviceName", m.device_name);
    form.add_nonempty(p + "VirtualName", m.virtual_name);
    if (m.no_device) form.add(p + "NoDevice", "");
    if (!m.ebs) continue;
    const EbsBlockDevice& e = *m.ebs;
    form.add_nonempty(p + "Ebs.SnapshotId", e.snapshot_id);
    form.add_int(p + "Ebs.VolumeSize", e.volume_size);
    form.add_nonempty(p + "Ebs.VolumeType", e.volume_type);
    form.add_int(p + "Ebs.Iops", e.iops);
    form.add_int(p + "Ebs.Throughput", e.throughput);
    form.add_bool(p + "Ebs.Encrypted", e.encrypted);
    form.add_nonempty(p + "Ebs.KmsKeyId", e.kms_key_id);
    form.add_bool(p + "Ebs.DeleteOnTermination", e.delete_on_termination);
  }
}

std::vector<Tag> read_tags(pugi::xml_node node) {
  std::vector<Tag> tags;
  for (pugi::xml_node item : xml_items(node, "tagSet")) {
    tags.push_back(
        Tag{xml_child(item, "key").child_value(), xml_child(item, "value").child_value()});
  }
  return tags;
}

std::vector<BlockDeviceMapping> read_block_device_mappings(XmlReader& rd, pugi::xml_node node) {
  std::vector<BlockDeviceMapping> out;
  for (pugi::xml_node item : xml_items(node, "blockDeviceMapping")) {
    BlockDeviceMapping m;
    m.device_name = rd.str(item, "deviceName");
    m.virtual_name = rd.str(item, "virtualName");
    m.no_device = static_cast<bool>(xml_child(item, "noDevice"));
    if (pugi::xml_node ebs = xml_child(item, "ebs")) {
      EbsBlockDevice e;
      e.snapshot_id = rd.str(ebs, "snapshotId");
      e.volume_size = rd.opt_int(ebs, "volumeSize");
      e.volume_type = rd.str(ebs, "volumeType");
      e.iops = rd.opt_int(ebs, "iops");
      e.throughput = rd.opt_int(ebs, "throughput");
      e.encrypted = rd.opt_bool(ebs, "encrypted");
      e.kms_key_id = rd.str(ebs, "kmsKeyId");
      e.delete_on_termination = rd.opt_bool(ebs, "deleteOnTermination");
      m.ebs = std::move(e);
    }
    out.push_back(std::move(m));
  }
  return out;
}

Status call_return(AwsClient& client, const AwsRequest& request) {
  Result<AwsResponse> response = client.send(request);
  if (!response) return response.error();
  return parse_return_answer(request.operation, response->body);
}

}  // namespace internal

std::string find_tag(const std::vector<Tag>& tags, std::string_view key) {
  for (const Tag& t : tags) {
    if (t.key == key) return t.value;
  }
  return {};
}

Status parse_return_answer(std::string_view operation, std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, operation, body));
  // AWS sends <return>true</return>; botocore's model has no output for several of
  // these calls and moto omits the element, so only an explicit "false" is a failure.
  pugi::xml_node ret = xml_child(a.root(), "return");
  std::string_view value = ret.child_value();
  if (!ret || value == "true") return ok();
  if (value != "false") {
    return malformed_answer(kService, operation,
                            "<return> holds '" + std::string(value.substr(0, 40)) + "'");
  }
  return make_error(std::string(kService) + " " + std::string(operation) +
                        ": the service answered <return>" + std::string(value.substr(0, 40)) +
                        "</return>",
                    "the request was not applied; check the resource and retry");
}

// ---- snapshots ----

int Snapshot::progress_percent() const {
  std::string_view p = progress;
  if (!p.empty() && p.back() == '%') p.remove_suffix(1);
  int64_t v = -1;
  if (!parse_int64(p, &v) || v < 0 || v > 100) return -1;
  return static_cast<int>(v);
}

static Snapshot read_snapshot(XmlReader& rd, pugi::xml_node n) {
  Snapshot s;
  s.snapshot_id = rd.str(n, "snapshotId");
  s.volume_id = rd.str(n, "volumeId");
  s.state = rd.str(n, "status");
  s.state_message = rd.str(n, "statusMessage");
  s.progress = rd.str(n, "progress");
  s.start_time = rd.str(n, "startTime");
  s.owner_id = rd.str(n, "ownerId");
  s.owner_alias = rd.str(n, "ownerAlias");
  s.description = rd.str(n, "description");
  s.kms_key_id = rd.str(n, "kmsKeyId");
  s.volume_size = rd.integer(n, "volumeSize");
  s.encrypted = rd.boolean(n, "encrypted");
  s.tags = read_tags(n);
  return s;
}

AwsRequest encode_describe_snapshots(const DescribeSnapshotsRequest& r, const std::string& token) {
  QueryForm f = ec2_form("DescribeSnapshots");
  f.add_int("MaxResults", r.max_results);
  f.add_nonempty("NextToken", token);
  f.add_list("Owner", r.owner_ids);
  f.add_list("RestorableBy", r.restorable_by_user_ids);
  f.add_list("SnapshotId", r.snapshot_ids);
  f.add_filters(r.filters);
  return ec2_request("DescribeSnapshots", f, /*idempotent=*/true);
}

Result<Page<Snapshot>> parse_describe_snapshots(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeSnapshots", body));
  XmlReader rd(kService, "DescribeSnapshots");
  Page<Snapshot> page;
  for (pugi::xml_node item : xml_items(a.root(), "snapshotSet")) {
    page.items.push_back(read_snapshot(rd, item));
  }
  page.next_token = rd.str(a.root(), "nextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<Snapshot>> describe_snapshots(AwsClient& c, const DescribeSnapshotsRequest& r) {
  std::vector<Snapshot> out;
  AMIBAKE_TRY(collect_pages<Snapshot>(
      "ec2 DescribeSnapshots",
      [&](const std::string& token) {
        return call(c, encode_describe_snapshots(r, token), &parse_describe_snapshots);
      },
      &out));
  return out;
}

AwsRequest encode_create_snapshot(const CreateSnapshotRequest& r) {
  QueryForm f = ec2_form("CreateSnapshot");
  f.add_nonempty("Description", r.description);
  f.add("VolumeId", r.volume_id);
  f.add_tag_specifications(r.tag_specifications);
  // No client token exists for CreateSnapshot: resending after an unknown outcome
  // could make a second snapshot, so it is not retried on timeouts/resets.
  return ec2_request("CreateSnapshot", f, /*idempotent=*/false);
}

Result<Snapshot> parse_create_snapshot(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "CreateSnapshot", body));
  XmlReader rd(kService, "CreateSnapshot");
  Snapshot s = read_snapshot(rd, a.root());
  if (s.snapshot_id.empty()) rd.fail("no <snapshotId>");
  AMIBAKE_TRY(rd.status());
  return s;
}

Result<Snapshot> create_snapshot(AwsClient& c, const CreateSnapshotRequest& r) {
  return call(c, encode_create_snapshot(r), &parse_create_snapshot);
}

AwsRequest encode_copy_snapshot(const CopySnapshotRequest& r) {
  QueryForm f = ec2_form("CopySnapshot");
  f.add_nonempty("Description", r.description);
  f.add_bool("Encrypted", r.encrypted);
  f.add_nonempty("KmsKeyId", r.kms_key_id);
  f.add("SourceRegion", r.source_region);
  f.add("SourceSnapshotId", r.source_snapshot_id);
  f.add_tag_specifications(r.tag_specifications);
  return ec2_request("CopySnapshot", f, /*idempotent=*/false);
}

// Reads the single <field> of an answer that must carry it.
static Result<std::string> parse_id_answer(std::string_view operation, std::string_view field,
                                           std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, operation, body));
  std::string id = xml_child(a.root(), field).child_value();
  if (id.empty()) {
    return malformed_answer(kService, operation, "no <" + std::string(field) + ">");
  }
  return id;
}

Result<std::string> parse_copy_snapshot(std::string_view body) {
  return parse_id_answer("CopySnapshot", "snapshotId", body);
}

Result<std::string> copy_snapshot(AwsClient& c, const CopySnapshotRequest& r) {
  return call(c, encode_copy_snapshot(r), &parse_copy_snapshot);
}

AwsRequest encode_delete_snapshot(const std::string& snapshot_id) {
  QueryForm f = ec2_form("DeleteSnapshot");
  f.add("SnapshotId", snapshot_id);
  return ec2_request("DeleteSnapshot", f, /*idempotent=*/true);
}

Status delete_snapshot(AwsClient& c, const std::string& snapshot_id) {
  return call_return(c, encode_delete_snapshot(snapshot_id));
}

// ---- volumes ----

static VolumeAttachment read_attachment(XmlReader& rd, pugi::xml_node n) {
  VolumeAttachment a;
  a.volume_id = rd.str(n, "volumeId");
  a.instance_id = rd.str(n, "instanceId");
  a.device = rd.str(n, "device");
  a.state = rd.str(n, "status");
  a.attach_time = rd.str(n, "attachTime");
  a.delete_on_termination = rd.opt_bool(n, "deleteOnTermination");
  return a;
}

static Volume read_volume(XmlReader& rd, pugi::xml_node n) {
  Volume v;
  v.volume_id = rd.str(n, "volumeId");
  v.snapshot_id = rd.str(n, "snapshotId");
  v.availability_zone = rd.str(n, "availabilityZone");
  v.state = rd.str(n, "status");
  v.volume_type = rd.str(n, "volumeType");
  v.create_time = rd.str(n, "createTime");
  v.kms_key_id = rd.str(n, "kmsKeyId");
  v.size = rd.integer(n, "size");
  v.iops = rd.opt_int(n, "iops");
  v.throughput = rd.opt_int(n, "throughput");
  v.encrypted = rd.boolean(n, "encrypted");
  v.multi_attach_enabled = rd.boolean(n, "multiAttachEnabled");
  for (pugi::xml_node item : xml_items(n, "attachmentSet")) {
    v.attachments.push_back(read_attachment(rd, item));
  }
  v.tags = read_tags(n);
  return v;
}

AwsRequest encode_create_volume(const CreateVolumeRequest& r) {
  QueryForm f = ec2_form("CreateVolume");
  f.add_nonempty("AvailabilityZone", r.availability_zone);
  f.add_bool("Encrypted", r.encrypted);
  f.add_int("Iops", r.iops);
  f.add_nonempty("KmsKeyId", r.kms_key_id);
  f.add_int("Size", r.size);
  f.add_nonempty("SnapshotId", r.snapshot_id);
  f.add_nonempty("VolumeType", r.volume_type);
  f.add_tag_specifications(r.tag_specifications);
  f.add_bool("MultiAttachEnabled", r.multi_attach_enabled);
  f.add_int("Throughput", r.throughput);
  f.add_nonempty("ClientToken", r.client_token);
  return ec2_request("CreateVolume", f, /*idempotent=*/!r.client_token.empty());
}

Result<Volume> parse_create_volume(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "CreateVolume", body));
  XmlReader rd(kService, "CreateVolume");
  Volume v = read_volume(rd, a.root());
  if (v.volume_id.empty()) rd.fail("no <volumeId>");
  AMIBAKE_TRY(rd.status());
  return v;
}

Result<Volume> create_volume(AwsClient& c, const CreateVolumeRequest& r) {
  return call(c, encode_create_volume(r), &parse_create_volume);
}

AwsRequest encode_describe_volumes(const DescribeVolumesRequest& r, const std::string& token) {
  QueryForm f = ec2_form("DescribeVolumes");
  f.add_list("VolumeId", r.volume_ids);
  f.add_filters(r.filters);
  f.add_nonempty("NextToken", token);
  f.add_int("MaxResults", r.max_results);
  return ec2_request("DescribeVolumes", f, /*idempotent=*/true);
}

Result<Page<Volume>> parse_describe_volumes(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeVolumes", body));
  XmlReader rd(kService, "DescribeVolumes");
  Page<Volume> page;
  for (pugi::xml_node item : xml_items(a.root(), "volumeSet")) {
    page.items.push_back(read_volume(rd, item));
  }
  page.next_token = rd.str(a.root(), "nextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<Volume>> describe_volumes(AwsClient& c, const DescribeVolumesRequest& r) {
  std::vector<Volume> out;
  AMIBAKE_TRY(collect_pages<Volume>(
      "ec2 DescribeVolumes",
      [&](const std::string& token) {
        return call(c, encode_describe_volumes(r, token), &parse_describe_volumes);
      },
      &out));
  return out;
}

AwsRequest encode_attach_volume(const std::string& volume_id, const std::string& instance_id,
                                const std::string& device) {
  QueryForm f = ec2_form("AttachVolume");
  f.add("Device", device);
  f.add("InstanceId", instance_id);
  f.add("VolumeId", volume_id);
  // A resend after an unknown outcome fails with VolumeInUse; callers check state.
  return ec2_request("AttachVolume", f, /*idempotent=*/false);
}

static Result<VolumeAttachment> parse_attachment_answer(std::string_view operation,
                                                        std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, operation, body));
  XmlReader rd(kService, operation);
  VolumeAttachment att = read_attachment(rd, a.root());
  if (att.volume_id.empty()) rd.fail("no <volumeId>");
  AMIBAKE_TRY(rd.status());
  return att;
}

Result<VolumeAttachment> parse_attach_volume(std::string_view body) {
  return parse_attachment_answer("AttachVolume", body);
}

Result<VolumeAttachment> attach_volume(AwsClient& c, const std::string& volume_id,
                                       const std::string& instance_id, const std::string& device) {
  return call(c, encode_attach_volume(volume_id, instance_id, device), &parse_attach_volume);
}

AwsRequest encode_detach_volume(const DetachVolumeRequest& r) {
  QueryForm f = ec2_form("DetachVolume");
  f.add_nonempty("Device", r.device);
  f.add_bool("Force", r.force);
  f.add_nonempty("InstanceId", r.instance_id);
  f.add("VolumeId", r.volume_id);
  return ec2_request("DetachVolume", f, /*idempotent=*/false);
}

Result<VolumeAttachment> parse_detach_volume(std::string_view body) {
  return parse_attachment_answer("DetachVolume", body);
}

Result<VolumeAttachment> detach_volume(AwsClient& c, const DetachVolumeRequest& r) {
  return call(c, encode_detach_volume(r), &parse_detach_volume);
}

AwsRequest encode_delete_volume(const std::string& volume_id) {
  QueryForm f = ec2_form("DeleteVolume");
  f.add("VolumeId", volume_id);
  return ec2_request("DeleteVolume", f, /*idempotent=*/true);
}

Status delete_volume(AwsClient& c, const std::string& volume_id) {
  return call_return(c, encode_delete_volume(volume_id));
}

// ---- tags ----

AwsRequest encode_create_tags(const std::vector<std::string>& resource_ids,
                              const std::vector<Tag>& tags) {
  QueryForm f = ec2_form("CreateTags");
  f.add_list("ResourceId", resource_ids);
  f.add_tags("Tag", tags);
  return ec2_request("CreateTags", f, /*idempotent=*/true);
}

Status create_tags(AwsClient& c, const std::vector<std::string>& resource_ids,
                   const std::vector<Tag>& tags) {
  return call_return(c, encode_create_tags(resource_ids, tags));
}

AwsRequest encode_describe_tags(const std::vector<Filter>& filters,
                                std::optional<int64_t> max_results, const std::string& token) {
  QueryForm f = ec2_form("DescribeTags");
  f.add_filters(filters);
  f.add_int("MaxResults", max_results);
  f.add_nonempty("NextToken", token);
  return ec2_request("DescribeTags", f, /*idempotent=*/true);
}

Result<Page<TagDescription>> parse_describe_tags(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeTags", body));
  XmlReader rd(kService, "DescribeTags");
  Page<TagDescription> page;
  for (pugi::xml_node item : xml_items(a.root(), "tagSet")) {
    page.items.push_back(TagDescription{rd.str(item, "resourceId"), rd.str(item, "resourceType"),
                                        rd.str(item, "key"), rd.str(item, "value")});
  }
  page.next_token = rd.str(a.root(), "nextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<TagDescription>> describe_tags(AwsClient& c, const std::vector<Filter>& filters,
                                                  std::optional<int64_t> max_results) {
  std::vector<TagDescription> out;
  AMIBAKE_TRY(collect_pages<TagDescription>(
      "ec2 DescribeTags",
      [&](const std::string& token) {
        return call(c, encode_describe_tags(filters, max_results, token), &parse_describe_tags);
      },
      &out));
  return out;
}

// ---- instances ----

static Instance read_instance(XmlReader& rd, pugi::xml_node n) {
  Instance i;
  i.instance_id = rd.str(n, "instanceId");
  i.image_id = rd.str(n, "imageId");
  i.instance_type = rd.str(n, "instanceType");
  i.state = rd.str(xml_child(n, "instanceState"), "name");
  i.availability_zone = rd.str(xml_child(n, "placement"), "availabilityZone");
  i.architecture = rd.str(n, "architecture");
  i.root_device_name = rd.str(n, "rootDeviceName");
  i.root_device_type = rd.str(n, "rootDeviceType");
  i.private_ip_address = rd.str(n, "privateIpAddress");
  i.launch_time = rd.str(n, "launchTime");
  i.boot_mode = rd.str(n, "bootMode");
  for (pugi::xml_node item : xml_items(n, "blockDeviceMapping")) {
    pugi::xml_node ebs = xml_child(item, "ebs");
    i.block_device_mappings.push_back(
        InstanceBlockDevice{rd.str(item, "deviceName"), rd.str(ebs, "volumeId"),
                            rd.str(ebs, "status"), rd.opt_bool(ebs, "deleteOnTermination")});
  }
  i.tags = read_tags(n);
  return i;
}

AwsRequest encode_describe_instances(const DescribeInstancesRequest& r, const std::string& token) {
  QueryForm f = ec2_form("DescribeInstances");
  f.add_list("InstanceId", r.instance_ids);
  f.add_filters(r.filters);
  f.add_nonempty("NextToken", token);
  f.add_int("MaxResults", r.max_results);
  return ec2_request("DescribeInstances", f, /*idempotent=*/true);
}

Result<Page<Instance>> parse_describe_instances(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeInstances", body));
  XmlReader rd(kService, "DescribeInstances");
  Page<Instance> page;
  for (pugi::xml_node reservation : xml_items(a.root(), "reservationSet")) {
    for (pugi::xml_node item : xml_items(reservation, "instancesSet")) {
      page.items.push_back(read_instance(rd, item));
    }
  }
  page.next_token = rd.str(a.root(), "nextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<Instance>> describe_instances(AwsClient& c, const DescribeInstancesRequest& r) {
  std::vector<Instance> out;
  AMIBAKE_TRY(collect_pages<Instance>(
      "ec2 DescribeInstances",
      [&](const std::string& token) {
        return call(c, encode_describe_instances(r, token), &parse_describe_instances);
      },
      &out));
  return out;
}

// ---- zones and account settings ----

AwsRequest encode_describe_availability_zones(const DescribeAvailabilityZonesRequest& r) {
  QueryForm f = ec2_form("DescribeAvailabilityZones");
  f.add_list("ZoneName", r.zone_names);
  f.add_list("ZoneId", r.zone_ids);
  f.add_bool("AllAvailabilityZones", r.all_availability_zones);
  f.add_filters(r.filters);
  return ec2_request("DescribeAvailabilityZones", f, /*idempotent=*/true);
}

Result<std::vector<AvailabilityZone>> parse_describe_availability_zones(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "DescribeAvailabilityZones", body));
  XmlReader rd(kService, "DescribeAvailabilityZones");
  std::vector<AvailabilityZone> out;
  for (pugi::xml_node item : xml_items(a.root(), "availabilityZoneInfo")) {
    out.push_back(AvailabilityZone{rd.str(item, "zoneName"), rd.str(item, "zoneId"),
                                   rd.str(item, "zoneState"), rd.str(item, "regionName"),
                                   rd.str(item, "zoneType"), rd.str(item, "optInStatus")});
  }
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<std::vector<AvailabilityZone>> describe_availability_zones(
    AwsClient& c, const DescribeAvailabilityZonesRequest& r) {
  return call(c, encode_describe_availability_zones(r), &parse_describe_availability_zones);
}

AwsRequest encode_get_ebs_encryption_by_default() {
  return ec2_request("GetEbsEncryptionByDefault", ec2_form("GetEbsEncryptionByDefault"),
                     /*idempotent=*/true);
}

Result<EbsEncryptionByDefault> parse_get_ebs_encryption_by_default(std::string_view body) {
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(kService, "GetEbsEncryptionByDefault", body));
  XmlReader rd(kService, "GetEbsEncryptionByDefault");
  std::optional<bool> enabled = rd.opt_bool(a.root(), "ebsEncryptionByDefault");
  if (!enabled) rd.fail("no <ebsEncryptionByDefault>");
  EbsEncryptionByDefault out{enabled.value_or(false), rd.str(a.root(), "sseType")};
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<EbsEncryptionByDefault> get_ebs_encryption_by_default(AwsClient& c) {
  return call(c, encode_get_ebs_encryption_by_default(), &parse_get_ebs_encryption_by_default);
}

}  // namespace amibake::aws::ec2
