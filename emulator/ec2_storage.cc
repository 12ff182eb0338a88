// EC2 storage operations: volumes (create, describe, delete, attach, detach) and
// snapshots (create, copy, describe, delete).
//
// Content is real and incremental (layers.cc): CopySnapshot shares the source's layer,
// CreateVolume from a snapshot makes no file until AttachVolume needs one, and
// CreateSnapshot stores only the blocks the volume changed, at request time, so a
// snapshot holds the volume exactly as it was when it was requested. What takes time is
// only the state: "pending" with Progress rising until ready_at, scaled by --speed, from
// the bytes of the whole content, as when content was copied, so timings do not depend
// on how awsemu stores it.
// AttachVolume to the host instance exposes the volume file as a loop device plus an
// Amazon-Linux-style by-id link (root only; otherwise the state still moves and the
// log says no device was made).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <tuple>

#include "base/log.h"
#include "emulator/blockstore.h"
#include "aws/sigv4.h"
#include "emulator/ec2_internal.h"
#include "emulator/layers.h"
#include "emulator/loopdev.h"
#include "emulator/validate.h"

namespace amibake::emu {

double transfer_seconds(int64_t bytes, double mib_per_s, double base) {
  return base + static_cast<double>(bytes) / (mib_per_s * 1024 * 1024);
}

// Amazon's catalog snapshots are public, as the ECS AMIs' are; with
// --unshared-catalog-snapshots they are not (an AMI shared for launch only): CreateVolume,
// RegisterImage and DescribeSnapshots then answer InvalidSnapshot.NotFound, while CopyImage
// still works.
bool snapshot_visible(Context& ctx, const Snapshot& s) {
  if (s.owner_id == kAccountId) return true;
  return s.owner_id == kAmazonOwnerId && !ctx.options().unshared_catalog_snapshots;
}

std::optional<Reply> validate_ebs(Context& ctx, const Call& call, const std::string& device,
                                  const std::string& snapshot_id, const std::string& volume_type,
                                  int size, int iops, int throughput, bool encrypted,
                                  const std::string& kms_key_id) {
  static const std::set<std::string> kTypes = {"standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"};
  std::string where = device.empty() ? "" : " (" + device + ")";
  Where in = device.empty() ? Where::kParameter : Where::kMapping;
  if (!volume_type.empty() && !kTypes.count(volume_type)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value (" + volume_type + ") for parameter volumeType is invalid." + where);
  }
  if (iops && volume_type != "io1" && volume_type != "io2" && volume_type != "gp3") {
    return error_reply(call, 400, "InvalidParameterCombination",
                       "The parameter iops is not supported for " +
                           (volume_type.empty() ? std::string("gp2") : volume_type) + " volumes." + where);
  }
  if ((volume_type == "io1" || volume_type == "io2") && !iops) {
    return error_reply(call, 400, "InvalidParameterCombination",
                       "The parameter iops must be specified for " + volume_type + " volumes." + where);
  }
  // Ranges and ratios from botocore's EC2 model (CreateVolume Iops/Throughput docs).
  if (volume_type == "gp3" && iops && (iops < 3000 || iops > 80000)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Volume iops of " + std::to_string(iops) +
                           " is outside the range 3000-80000 for gp3." + where);
  }
  const int per_gib = volume_type == "gp3"   ? 500
                      : volume_type == "io1" ? 50
                      : volume_type == "io2" ? 1000
                                             : 0;
  if (iops && per_gib && size > 0 &&
      static_cast<int64_t>(iops) > static_cast<int64_t>(size) * per_gib) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Iops to volume size ratio of " + std::to_string(iops / size) +
                           " is too high; maximum is " + std::to_string(per_gib) + "." + where);
  }
  if (throughput && volume_type != "gp3") {
    return error_reply(call, 400, "InvalidParameterCombination",
                       "Throughput can only be specified for gp3 volumes." + where);
  }
  if (throughput && (throughput < 125 || throughput > 2000)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Throughput must be between 125 and 2000 MiB/s." + where);
  }
  if (throughput && throughput * 4 > (iops ? iops : 3000)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Throughput to iops ratio of " + std::to_string(throughput) + "/" +
                           std::to_string(iops ? iops : 3000) + " is too high; maximum is 0.25." +
                           where);
  }
  if (!kms_key_id.empty() && !encrypted) {
    return error_reply(call, 400, "InvalidParameterDependency",
                       "The parameter KmsKeyId requires the parameter Encrypted to be set." + where);
  }
  if (!kms_key_id.empty()) {
    if (auto bad = check_kms_key(kms_key_id, KmsKeyForm::kAnyIdentifier))
      return refuse(call, *bad, in);
  }
  if (auto bad = check_volume_size(volume_type, size)) {
    bad->message += where;
    return refuse(call, *bad, in);
  }
  if (!snapshot_id.empty()) {
    auto it = ctx.world().snapshots.find(snapshot_id);
    if (it == ctx.world().snapshots.end() || ctx.hidden(snapshot_id) ||
        !snapshot_visible(ctx, it->second)) {
      return refuse(
          call, {Refusal::kSnapshotNotFound, "The snapshot '" + snapshot_id + "' does not exist."},
          in);
    }
    if (it->second.state != "completed") {
      return refuse(
          call,
          {Refusal::kSnapshotNotCompleted,
           "Snapshot " + snapshot_id + " is in invalid state - " + it->second.state + where},
          in);
    }
    if (size && size < it->second.volume_size) {
      return refuse(call,
                    {Refusal::kVolumeSmallerThanSnapshot,
                     "Volume of size " + std::to_string(size) + "GB is smaller than snapshot '" +
                         snapshot_id + "', expect size >= " +
                         std::to_string(it->second.volume_size) + "GB" + where},
                    in);
    }
  }
  return std::nullopt;
}

std::string kms_key_arn(const std::string& region, const std::string& given) {
  std::string prefix = "arn:aws:kms:" + region + ":" + kAccountId + ":";
  auto key_of = [&](const std::string& alias) {
    std::string h = aws::sha256_hex("kms:" + region + ":" + alias);
    return prefix + "key/" + h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) +
           "-8" + h.substr(17, 3) + "-" + h.substr(20, 12);
  };
  if (given.empty()) return key_of("aws/ebs");
  if (given.rfind("alias/", 0) == 0) return key_of(given.substr(6));
  if (given.rfind("arn:", 0) == 0) {
    size_t alias = given.find(":alias/");
    return alias == std::string::npos ? given : key_of(given.substr(alias + 7));
  }
  return prefix + "key/" + given;
}

bool is_aws_managed_ebs_key(const std::string& region, const std::string& arn) {
  return !arn.empty() && arn == kms_key_arn(region, "");
}

Result<std::string> copy_snapshot_locked(Context& ctx, World& from, const std::string& source_id,
                                         const std::string& description, bool encrypted,
                                         const std::string& kms_key_id, const Tags& tags,
                                         double* completes_at) {
  const Snapshot& src = from.snapshots.at(source_id);
  Snapshot s;
  s.id = ctx.new_id("snap");
  s.owner_id = kAccountId;
  s.volume_id = "vol-ffffffff";
  s.description = description;
  s.volume_size = src.volume_size;
  s.encrypted = encrypted || src.encrypted;
  // EC2 records key ARNs. A copy into another region of an encrypted snapshot is
  // re-encrypted there: with the key given, else with the region's default EBS key.
  bool same_region = &from == &ctx.world();
  const std::string& region = Context::current_region();
  if (encrypted) s.kms_key_id = kms_key_arn(region, kms_key_id);
  else if (src.encrypted) s.kms_key_id = same_region ? src.kms_key_id : kms_key_arn(region, "");
  else s.kms_key_id.clear();
  s.tags = tags;
  s.layer = src.layer;  // same content: the copy shares it (layers.cc)
  s.start_time = ctx.now();
  AMIBAKE_ASSIGN(int64_t bytes, content_bytes(ctx, s.layer));
  s.ready_at = ctx.after(transfer_seconds(bytes, 100, 10));
  if (completes_at) *completes_at = std::max(*completes_at, s.ready_at);
  ctx.world().snapshots[s.id] = s;
  return s.id;
}

std::string image_using_snapshot(Context& ctx, const std::string& snapshot_id) {
  for (const auto& [id, img] : ctx.world().images) {
    for (const auto& m : img.mappings) {
      if (m.snapshot_id == snapshot_id) return id;
    }
  }
  return "";
}

bool delete_snapshot_locked(Context& ctx, const std::string& id) {
  auto it = ctx.world().snapshots.find(id);
  if (it == ctx.world().snapshots.end() || it->second.owner_id != kAccountId) return false;
  ctx.world().snapshots.erase(it);
  collect_layers(ctx);  // its content stays while a child, copy or volume needs it
  return true;
}

namespace {

bool valid_zone(const std::string& zone) {
  auto zones = region_zones(Context::current_region());
  return std::find(zones.begin(), zones.end(), zone) != zones.end();
}

std::string progress_of(Context& ctx, const Snapshot& s) {
  if (s.state == "completed") return "100%";
  if (s.state == "error" || (s.direct && !s.sealed)) return "0%";
  double span = s.ready_at - s.start_time;
  double done = span <= 0 ? 1 : (ctx.now() - s.start_time) / span;
  int pct = static_cast<int>(std::clamp(done, 0.0, 0.99) * 100);
  return std::to_string(pct) + "%";
}

void write_snapshot_fields(Context& ctx, Xml& x, const Snapshot& s) {
  x.leaf("snapshotId", s.id).leaf("volumeId", s.volume_id.empty() ? "vol-ffffffff" : s.volume_id);
  x.leaf("status", s.state).opt("statusMessage", s.state_message);
  x.leaf("startTime", iso_time(s.start_time)).leaf("progress", progress_of(ctx, s));
  x.leaf("ownerId", s.owner_id).opt("ownerAlias", s.owner_alias);
  x.leaf("volumeSize", std::to_string(s.volume_size)).leaf("description", s.description);
  x.boolean("encrypted", s.encrypted).opt("kmsKeyId", s.kms_key_id);
  x.leaf("storageTier", "standard");
  if (!s.tags.empty()) x.tags(s.tags);
}

void write_volume_fields(Xml& x, const Volume& v) {
  x.leaf("volumeId", v.id).number("size", v.size).leaf("snapshotId", v.snapshot_id);
  x.leaf("availabilityZone", v.zone).leaf("status", v.state);
  x.leaf("createTime", iso_time(v.create_time));
  x.open("attachmentSet");
  if (v.attachment) {
    x.open("item").leaf("volumeId", v.id).leaf("instanceId", v.attachment->instance_id);
    x.leaf("device", v.attachment->device).leaf("status", v.attachment->state);
    x.leaf("attachTime", iso_time(v.attachment->attach_time)).boolean("deleteOnTermination", false);
    x.close("item");
  }
  x.close("attachmentSet");
  x.leaf("volumeType", v.volume_type);
  if (v.iops) x.number("iops", v.iops);
  if (v.throughput) x.number("throughput", v.throughput);
  x.boolean("encrypted", v.encrypted).opt("kmsKeyId", v.kms_key_id);
  x.boolean("multiAttachEnabled", false);
  if (!v.tags.empty()) x.tags(v.tags);
}

Reply create_volume(Context& ctx, const Call& call) {
  Volume v;
  v.zone = call.param("AvailabilityZone");
  v.snapshot_id = call.param("SnapshotId");
  v.volume_type = call.param("VolumeType").empty() ? "gp2" : call.param("VolumeType");
  v.encrypted = call.param("Encrypted") == "true";
  v.kms_key_id = call.param("KmsKeyId");
  v.client_token = call.param("ClientToken");
  try {
    if (!call.param("Size").empty()) v.size = std::stoi(call.param("Size"));
    if (!call.param("Iops").empty()) v.iops = std::stoi(call.param("Iops"));
    if (!call.param("Throughput").empty()) v.throughput = std::stoi(call.param("Throughput"));
  } catch (const std::exception&) {
    return error_reply(call, 400, "InvalidParameterValue", "Size, Iops and Throughput must be integers");
  }
  if (v.zone.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter AvailabilityZone");
  if (!valid_zone(v.zone)) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Invalid availability zone: [" + v.zone + "]");
  }
  if (v.size == 0 && v.snapshot_id.empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameter size or snapshotId");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  if (!v.client_token.empty()) {
    for (const auto& [id, other] : ctx.world().volumes) {
      if (other.client_token == v.client_token) {
        Xml x;
        write_volume_fields(x, other);
        return ec2_reply(call, x.str());
      }
    }
  }
  if (auto bad = validate_ebs(ctx, call, "", v.snapshot_id, v.volume_type, v.size, v.iops,
                              v.throughput, v.encrypted, v.kms_key_id)) {
    return *bad;
  }
  v.tags = tag_specifications(call, "volume");
  if (auto bad = check_tags({}, v.tags, kEc2TagRules)) return refuse(call, *bad);
  const Snapshot* snap = nullptr;
  if (!v.snapshot_id.empty()) {
    snap = &ctx.world().snapshots.at(v.snapshot_id);  // validate_ebs found it
    if (v.size == 0) v.size = snap->volume_size;
    if (snap->encrypted) v.encrypted = true;
  }
  v.id = ctx.new_id("vol");
  v.file = v.id + ".img";
  v.create_time = ctx.now();
  int64_t bytes = 0;
  if (snap) {
    // No file until AttachVolume needs one (layers.cc): the content is the snapshot's.
    v.base_layer = snap->layer;
    v.materialised = false;
    auto content = content_bytes(ctx, snap->layer);
    if (!content) return error_reply(call, 500, "InternalError", content.error().message);
    bytes = *content;
  } else {
    Status made = blocks::create_sparse(ctx.volume_path(v), static_cast<int64_t>(v.size) * kGiB);
    if (!made) return error_reply(call, 500, "InternalError", made.error().message);
  }
  v.ready_at = ctx.after(transfer_seconds(bytes, 200, 3));
  ctx.world().volumes[v.id] = v;
  ctx.maybe_hide(call.action, v.id);
  ctx.advance();
  ctx.commit();
  Xml x;
  write_volume_fields(x, ctx.world().volumes[v.id]);
  return ec2_reply(call, x.str());
}

std::vector<std::string> volume_field(const Volume& v, const std::string& name) {
  if (name == "volume-id") return {v.id};
  if (name == "status") return {v.state};
  if (name == "size") return {std::to_string(v.size)};
  if (name == "snapshot-id") return {v.snapshot_id};
  if (name == "availability-zone") return {v.zone};
  if (name == "volume-type") return {v.volume_type};
  if (name == "encrypted") return {v.encrypted ? "true" : "false"};
  if (name == "attachment.instance-id") return {v.attachment ? v.attachment->instance_id : ""};
  if (name == "attachment.status") return {v.attachment ? v.attachment->state : ""};
  if (name == "attachment.device") return {v.attachment ? v.attachment->device : ""};
  if (name == "create-time") return {iso_time(v.create_time)};
  return {};
}

Reply describe_volumes(Context& ctx, const Call& call) {
  auto ids = query_list(call, "VolumeId");
  auto filters = query_filters(call);
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& id : ids) {
    if (!ctx.world().volumes.count(id) || ctx.hidden(id)) {
      return error_reply(call, 400, "InvalidVolume.NotFound", "The volume '" + id + "' does not exist.");
    }
  }
  std::vector<const Volume*> found;
  for (const auto& [id, v] : ctx.world().volumes) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
    if (ctx.hidden(id)) continue;
    if (!matches_filters(filters, v.tags, [&v = v](const std::string& n) { return volume_field(v, n); })) continue;
    found.push_back(&v);
  }
  Page page = paginate(call, found.size());
  if (page.error) return *page.error;
  Xml x;
  x.open("volumeSet");
  for (size_t i = page.begin; i < page.end; ++i) {
    x.open("item");
    write_volume_fields(x, *found[i]);
    x.close("item");
  }
  x.close("volumeSet").opt("nextToken", page.next_token);
  return ec2_reply(call, x.str());
}

Volume* find_volume(Context& ctx, const Call& call, Reply* error) {
  std::string id = call.param("VolumeId");
  auto it = ctx.world().volumes.find(id);
  if (it == ctx.world().volumes.end() || ctx.hidden(id)) {
    *error = error_reply(call, 400, "InvalidVolume.NotFound", "The volume '" + id + "' does not exist.");
    return nullptr;
  }
  return &it->second;
}

Reply delete_volume(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Volume* v = find_volume(ctx, call, &error);
  if (!v) return error;
  if (v->attachment || v->state == "in-use") {
    return error_reply(call, 400, "VolumeInUse", "Volume " + v->id + " is currently attached to " +
                                                     (v->attachment ? v->attachment->instance_id : "an instance"));
  }
  if (v->materialised) ::unlink(ctx.volume_path(*v).c_str());
  ctx.world().volumes.erase(v->id);
  collect_layers(ctx);
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

void write_attachment(Xml& x, const Volume& v) {
  x.leaf("volumeId", v.id).leaf("instanceId", v.attachment->instance_id);
  x.leaf("device", v.attachment->device).leaf("status", v.attachment->state);
  x.leaf("attachTime", iso_time(v.attachment->attach_time));
}

Reply attach_volume(Context& ctx, const Call& call) {
  std::string instance = call.param("InstanceId"), device = call.param("Device");
  if (device.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter device");
  if (auto bad = check_device_name(device, "hvm")) {  // the host instance is HVM
    bad->message = "Value (" + device + ") for parameter device is invalid. " + device +
                   " is not a valid EBS device name.";
    return refuse(call, *bad);
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Volume* v = find_volume(ctx, call, &error);
  if (!v) return error;
  if (instance != kHostInstanceId) {
    return error_reply(call, 400, "InvalidInstanceID.NotFound", "The instance ID '" + instance + "' does not exist");
  }
  if (v->attachment) {
    return error_reply(call, 400, "VolumeInUse", v->id + " is already attached to an instance");
  }
  if (v->state != "available") {
    return error_reply(call, 400, "IncorrectState", v->id + " is not 'available'.");
  }
  if (v->zone != kHostZone) {
    return error_reply(call, 400, "InvalidVolume.ZoneMismatch",
                       "The volume '" + v->id + "' is not in the same availability zone as instance '" + instance + "'");
  }
  for (const auto& [id, other] : ctx.world().volumes) {
    if (other.attachment && other.attachment->device == device) {
      return error_reply(call, 400, "InvalidParameterValue", "Attachment point " + device + " is already in use");
    }
  }
  Attachment a;
  a.instance_id = instance;
  a.device = device;
  a.state = "attaching";
  a.attach_time = ctx.now();
  a.ready_at = ctx.after(2);
  if (can_attach_loop()) {
    if (!v->materialised) {
      // A loop device needs a real file: write the snapshot's content into it now.
      Status made = materialise(ctx, v->base_layer, ctx.volume_path(*v),
                                static_cast<int64_t>(v->size) * kGiB);
      if (!made) return error_reply(call, 500, "InternalError", "awsemu: " + made.error().message);
      v->materialised = true;
    }
    auto dev = attach_loop(ctx.volume_path(*v));
    if (!dev) return error_reply(call, 500, "InternalError", "awsemu: " + dev.error().message);
    a.loop_device = *dev;
    a.link = ctx.device_dir() + "/" + ebs_link_name(v->id);
    ::unlink(a.link.c_str());
    if (::symlink(a.loop_device.c_str(), a.link.c_str()) != 0) {
      log::warn("awsemu: AttachVolume " + v->id + ": link " + a.link + " failed, ignoring");
    }
    log::info("awsemu: AttachVolume " + v->id + ": " + a.loop_device + " linked as " + a.link);
  } else {
    log::warn("awsemu: AttachVolume " + v->id +
              ": not root, so no loop device or by-id link is made; only the state changes");
  }
  v->attachment = a;
  v->state = "in-use";
  ctx.advance();
  ctx.commit();
  Xml x;
  write_attachment(x, *v);
  return ec2_reply(call, x.str());
}

Reply detach_volume(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Volume* v = find_volume(ctx, call, &error);
  if (!v) return error;
  if (!v->attachment || v->attachment->state == "detaching") {
    return error_reply(call, 400, "IncorrectState", "Volume '" + v->id + "' is in the '" + v->state + "' state.");
  }
  if (!call.param("InstanceId").empty() && call.param("InstanceId") != v->attachment->instance_id) {
    return error_reply(call, 400, "InvalidAttachment.NotFound",
                       "Volume '" + v->id + "' is not attached to instance '" + call.param("InstanceId") + "'");
  }
  if (!v->attachment->loop_device.empty()) {
    ::unlink(v->attachment->link.c_str());
    Status st = detach_loop(v->attachment->loop_device);
    if (!st) return error_reply(call, 400, "IncorrectState", "awsemu: " + st.error().message);
    v->attachment->loop_device.clear();
  }
  v->attachment->state = "detaching";
  v->attachment->ready_at = ctx.after(2);
  Xml x;
  write_attachment(x, *v);
  ctx.advance();
  ctx.commit();
  return ec2_reply(call, x.str());
}

Reply create_snapshot(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Volume* v = find_volume(ctx, call, &error);
  if (!v) return error;
  if (v->state == "creating") {
    return error_reply(call, 400, "IncorrectState", "The volume '" + v->id + "' is not in a state to be snapshotted");
  }
  Tags tags = tag_specifications(call, "snapshot");
  if (auto bad = check_tags({}, tags, kEc2TagRules)) return refuse(call, *bad);
  Snapshot s;
  s.id = ctx.new_id("snap");
  s.owner_id = kAccountId;
  s.volume_id = v->id;
  s.volume_size = v->size;
  s.description = call.param("Description");
  s.encrypted = v->encrypted;
  s.kms_key_id = v->kms_key_id;
  s.tags = tags;
  s.start_time = ctx.now();
  auto layer = snapshot_volume(ctx, *v, s.id);  // only the blocks that changed
  if (!layer) return error_reply(call, 500, "InternalError", layer.error().message);
  s.layer = *layer;
  auto bytes = content_bytes(ctx, s.layer);
  if (!bytes) return error_reply(call, 500, "InternalError", bytes.error().message);
  s.ready_at = ctx.after(transfer_seconds(*bytes, 100, 10));
  ctx.world().snapshots[s.id] = s;
  ctx.maybe_hide(call.action, s.id);
  ctx.advance();
  ctx.commit();
  Xml x;
  write_snapshot_fields(ctx, x, ctx.world().snapshots[s.id]);
  return ec2_reply(call, x.str());
}

Reply copy_snapshot(Context& ctx, const Call& call) {
  std::string source = call.param("SourceSnapshotId");
  std::string source_region = call.param("SourceRegion");
  if (source_region.empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameter SourceRegion");
  }
  if (!find_region(source_region)) {
    return error_reply(call, 400, "InvalidParameterValue", "Invalid source region: " + source_region);
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  World& from = ctx.world(source_region);
  auto it = from.snapshots.find(source);
  if (it == from.snapshots.end() || !snapshot_visible(ctx, it->second) || ctx.hidden(source)) {
    return error_reply(call, 400, "InvalidSnapshot.NotFound", "The snapshot '" + source + "' does not exist.");
  }
  if (it->second.state != "completed") {
    return error_reply(call, 400, "IncorrectState", "Snapshot is in invalid state - " + it->second.state);
  }
  if (!call.param("KmsKeyId").empty() && call.param("Encrypted") != "true") {
    return error_reply(call, 400, "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.");
  }
  if (!call.param("KmsKeyId").empty()) {
    if (auto bad = check_kms_key(call.param("KmsKeyId"), KmsKeyForm::kAnyIdentifier)) {
      return refuse(call, *bad);
    }
  }
  Tags tags = tag_specifications(call, "snapshot");
  if (auto bad = check_tags({}, tags, kEc2TagRules)) return refuse(call, *bad);
  std::string description = call.param("Description");
  if (description.empty()) description = "[Copied " + source + " from " + source_region + "]";
  auto id = copy_snapshot_locked(ctx, from, source, description, call.param("Encrypted") == "true",
                                 call.param("KmsKeyId"), tags, nullptr);
  if (!id) return error_reply(call, 500, "InternalError", id.error().message);
  ctx.maybe_hide(call.action, *id);
  ctx.commit();
  Xml x;
  x.leaf("snapshotId", *id);
  if (!tags.empty()) x.tags(tags);
  return ec2_reply(call, x.str());
}

std::vector<std::string> snapshot_field(Context& ctx, const Snapshot& s, const std::string& name) {
  if (name == "snapshot-id") return {s.id};
  if (name == "status") return {s.state};
  if (name == "owner-id") return {s.owner_id};
  if (name == "owner-alias") return {s.owner_alias};
  if (name == "volume-id") return {s.volume_id};
  if (name == "volume-size") return {std::to_string(s.volume_size)};
  if (name == "description") return {s.description};
  if (name == "encrypted") return {s.encrypted ? "true" : "false"};
  if (name == "progress") return {progress_of(ctx, s)};
  if (name == "start-time") return {iso_time(s.start_time)};
  if (name == "storage-tier") return {"standard"};
  return {};
}

Reply describe_snapshots(Context& ctx, const Call& call) {
  auto ids = query_list(call, "SnapshotId");
  auto owners = query_list(call, "Owner");
  auto filters = query_filters(call);
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& id : ids) {
    auto it = ctx.world().snapshots.find(id);
    if (it == ctx.world().snapshots.end() || !snapshot_visible(ctx, it->second) || ctx.hidden(id)) {
      return error_reply(call, 400, "InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist.");
    }
  }
  std::vector<const Snapshot*> found;
  for (const auto& [id, s] : ctx.world().snapshots) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
    if (!snapshot_visible(ctx, s) || ctx.hidden(id)) continue;
    if (!owners.empty()) {
      bool owner_ok = false;
      for (const auto& o : owners) {
        if ((o == "self" && s.owner_id == kAccountId) || o == s.owner_id ||
            (!s.owner_alias.empty() && o == s.owner_alias)) {
          owner_ok = true;
        }
      }
      if (!owner_ok) continue;
    }
    if (!matches_filters(filters, s.tags, [&ctx, &s = s](const std::string& n) { return snapshot_field(ctx, s, n); })) continue;
    found.push_back(&s);
  }
  Page page = paginate(call, found.size());
  if (page.error) return *page.error;
  Xml x;
  x.open("snapshotSet");
  for (size_t i = page.begin; i < page.end; ++i) {
    x.open("item");
    write_snapshot_fields(ctx, x, *found[i]);
    x.close("item");
  }
  x.close("snapshotSet").opt("nextToken", page.next_token);
  return ec2_reply(call, x.str());
}

Reply delete_snapshot(Context& ctx, const Call& call) {
  std::string id = call.param("SnapshotId");
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().snapshots.find(id);
  if (it == ctx.world().snapshots.end() || !snapshot_visible(ctx, it->second)) {
    return error_reply(call, 400, "InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist.");
  }
  if (it->second.owner_id != kAccountId) {
    return error_reply(call, 400, "InvalidSnapshot.Unavailable", "Not authorized for snapshot " + id);
  }
  std::string image = image_using_snapshot(ctx, id);
  if (!image.empty()) {
    return error_reply(call, 400, "InvalidSnapshot.InUse",
                       "The snapshot " + id + " is currently in use by " + image);
  }
  delete_snapshot_locked(ctx, id);
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

// ModifySnapshotAttribute / DescribeSnapshotAttribute: createVolumePermission (accounts
// and the group "all"), as AWS keeps it. A snapshot encrypted with the AWS-managed key
// cannot be shared, and an encrypted one cannot be made public.
Reply snapshot_attribute(Context& ctx, const Call& call, bool modify) {
  std::string id = call.param("SnapshotId");
  std::string attr = call.param("Attribute");
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().snapshots.find(id);
  if (it == ctx.world().snapshots.end() || !snapshot_visible(ctx, it->second) || ctx.hidden(id)) {
    return error_reply(call, 400, "InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist.");
  }
  Snapshot& snap = it->second;
  if (modify && snap.owner_id != kAccountId) {
    return error_reply(call, 400, "InvalidSnapshot.Unavailable", "Not authorized for snapshot " + id);
  }
  if (!modify) {
    Xml x;
    x.leaf("snapshotId", id);
    if (attr == "createVolumePermission") {
      x.open("createVolumePermission");
      for (const auto& g : snap.volume_groups) x.open("item").leaf("group", g).close("item");
      for (const auto& u : snap.volume_user_ids) x.open("item").leaf("userId", u).close("item");
      x.close("createVolumePermission");
    } else if (attr == "productCodes") {
      x.open("productCodes").close("productCodes");
    } else {
      return error_reply(call, 400, "InvalidParameterValue",
                         "Value (" + attr + ") for parameter attribute is invalid.");
    }
    return ec2_reply(call, x.str());
  }
  std::vector<std::tuple<std::string, std::string, std::string>> changes;  // op, user, group
  for (const char* op : {"Add", "Remove"}) {
    std::string lower_op = std::string(op) == "Add" ? "add" : "remove";
    for (const auto& item : query_structs(call.params, std::string("CreateVolumePermission.") + op)) {
      changes.emplace_back(lower_op, item.count("UserId") ? item.at("UserId") : "",
                           item.count("Group") ? item.at("Group") : "");
    }
  }
  std::string op = call.param("OperationType");
  for (const auto& u : query_list(call, "UserId")) changes.emplace_back(op, u, "");
  for (const auto& g : query_list(call, "UserGroup")) changes.emplace_back(op, "", g);
  if (changes.empty() || (!attr.empty() && attr != "createVolumePermission")) {
    return error_reply(call, 400, "MissingParameter",
                       "The request must contain the parameter createVolumePermission");
  }
  for (const auto& [o, user, group] : changes) {
    if (o != "add" && o != "remove") {
      return error_reply(call, 400, "InvalidParameterValue", "OperationType must be add or remove");
    }
    if (!group.empty() && group != "all") {
      return error_reply(call, 400, "InvalidParameterValue", "Invalid group: " + group);
    }
    bool digits = user.size() == 12 && std::all_of(user.begin(), user.end(), ::isdigit);
    if (!user.empty() && !digits) {
      return error_reply(call, 400, "InvalidParameterValue", "Invalid user id: " + user);
    }
    if (o != "add" || !snap.encrypted || user == kAccountId) continue;
    if (is_aws_managed_ebs_key(Context::current_region(), snap.kms_key_id)) {
      return error_reply(call, 400, "InvalidParameter",
                         "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify "
                         "another snapshot.");
    }
    if (!group.empty()) {
      return error_reply(call, 400, "InvalidParameter", "Encrypted snapshots cannot be made public.");
    }
  }
  for (const auto& [o, user, group] : changes) {
    auto edit = [&, o = o](std::vector<std::string>& list, const std::string& v) {
      if (v.empty()) return;
      auto at = std::find(list.begin(), list.end(), v);
      if (o == "add" && at == list.end()) list.push_back(v);
      if (o == "remove" && at != list.end()) list.erase(at);
    };
    edit(snap.volume_user_ids, user);
    edit(snap.volume_groups, group);
  }
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

}  // namespace

Reply handle_ec2_storage(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "CreateVolume") return create_volume(ctx, call);
  if (a == "DescribeVolumes") return describe_volumes(ctx, call);
  if (a == "DeleteVolume") return delete_volume(ctx, call);
  if (a == "AttachVolume") return attach_volume(ctx, call);
  if (a == "DetachVolume") return detach_volume(ctx, call);
  if (a == "CreateSnapshot") return create_snapshot(ctx, call);
  if (a == "CopySnapshot") return copy_snapshot(ctx, call);
  if (a == "ModifySnapshotAttribute") return snapshot_attribute(ctx, call, true);
  if (a == "DescribeSnapshotAttribute") return snapshot_attribute(ctx, call, false);
  if (a == "DescribeSnapshots") return describe_snapshots(ctx, call);
  if (a == "DeleteSnapshot") return delete_snapshot(ctx, call);
  return handle_ec2_images(ctx, call);
}

}  // namespace amibake::emu
