// The chroot method's steps: the manual process this project started from, automated
// on an EC2 host. Some accounts forbid the EBS direct APIs; this method needs only EC2
// calls and a host to attach a volume to.
//
//   host → resolve → source → volume → attach → install → detach → snapshot →
//   remove-volume → register → verify            (build.cc kChrootSteps, then kPublishSteps)
//
// The host is learnt from IMDSv2 before anything else, so off EC2 the build stops with
// a message before any AWS resource exists. The volume is made from the base's own root
// snapshot (no copy needed: CreateVolume reads public snapshots), or from the account's
// copy of the base (the direct method's shared cache) when that snapshot is not usable
// by the account. The attached volume is found by its id (attached_device.cc), never by
// name or order, so concurrent builds on one host each get their own; the install is
// the direct method's (install_payload_held), on the device instead of a file.
//
// Resume: every step first looks for its own result. CreateVolume carries a client
// token from the build id and snapshot; an attachment to this host is reused; the
// snapshot (CreateSnapshot has no client token) is found by the journal or by its tags;
// a killed install's mount and loop on the device are released before anything else
// touches the volume. Cleanup (cleanup.cc) detaches and deletes the volume on every
// failure path; the volume is temporary and deleted as soon as its snapshot completes.
#include <algorithm>
#include <chrono>

#include "aws/ec2.h"
#include "aws/imds.h"
#include "aws/waiter.h"
#include "bake/attached_device.h"
#include "bake/build_steps.h"
#include "bake/host_checks.h"

namespace amibake::bake {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kNotOnEc2Hint =
    "run the chroot method on an EC2 instance in the region you bake for, or use "
    "--method direct (no instance needed)";

DeviceLookup lookup_of(const StepContext& ctx) {
  DeviceLookup l;
  l.device_dir = ctx.options.device_dir;
  return l;
}

std::string volume_id(StepContext& ctx) { return ctx.results["volume"]["volume"]; }
std::string host_instance(StepContext& ctx) { return ctx.results["host"]["instance"]; }

Result<aws::ec2::Volume> describe_volume(StepContext& ctx, const std::string& id) {
  aws::ec2::DescribeVolumesRequest d;
  d.volume_ids = {id};
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_volumes(ctx.client, d));
  if (found.empty()) return make_error(id + ": DescribeVolumes answered no volume");
  return found.front();
}

// The attachment of `v` to `instance`, or nullptr.
const aws::ec2::VolumeAttachment* attachment_to(const aws::ec2::Volume& v,
                                                const std::string& instance) {
  for (const auto& a : v.attachments) {
    if (a.instance_id == instance && a.state != "detached") return &a;
  }
  return nullptr;
}

// The block device of this build's volume, attached as `name`, waiting up to `timeout`.
Result<FoundDevice> attached_device(StepContext& ctx, const std::string& name,
                                    std::chrono::minutes timeout) {
  uint64_t size = static_cast<uint64_t>(ctx.results["volume"]["size_gib"].get<int64_t>()) << 30;
  return wait_for_attached_device(volume_id(ctx), name, size, lookup_of(ctx), timeout,
                                  [&] { return ctx.check_interrupt(); });
}

// Unmounts and detaches what an earlier, killed run left on `device`.
Status release_leftovers(StepContext& ctx, const std::string& device) {
  AMIBAKE_ASSIGN(auto lines, release_loops_on(device));
  for (const auto& l : lines) ctx.events.info(l);
  return ok();
}

// The source json for the account's copy of the base.
Result<json> source_from_copy(StepContext& ctx) {
  AMIBAKE_ASSIGN(std::string copy, find_or_copy_base(ctx));
  AMIBAKE_ASSIGN(json out, describe_source(ctx, copy));
  out["copy"] = true;
  return out;
}

// Why the account cannot use `snapshot` ("" when it can).
Result<std::string> snapshot_unusable(StepContext& ctx, const std::string& snapshot) {
  aws::ec2::DescribeSnapshotsRequest d;
  d.snapshot_ids = {snapshot};
  auto found = aws::ec2::describe_snapshots(ctx.client, d);
  if (!found) {
    if (found.error().aws_code.rfind("InvalidSnapshot.", 0) == 0) return found.error().message;
    return found.error();
  }
  if (found->empty()) return snapshot + " is not visible to this account";
  if (found->front().state != "completed") return snapshot + " is " + found->front().state;
  return std::string();
}

bool name_taken(const Error& e) {
  return e.aws_code == "InvalidParameterValue" &&
         (e.message.find("already in use") != std::string::npos ||
          e.message.find("Attachment point") != std::string::npos);
}

// Steps that touch the attached volume run on the host the build started on: a resume
// elsewhere would attach in another zone, or look for a device that is not there.
Status check_same_host(StepContext& ctx) {
  std::string started = host_instance(ctx);
  auto now = aws::ImdsClient().instance_id();
  if (now && *now == started) return ok();
  std::string here =
      now ? "this host is " + *now : "this host cannot be identified (" + now.error().message + ")";
  return make_error(
      "build " + ctx.build_id + " started on EC2 instance " + started + ", and " + here,
      "resume it on " + started + ", or remove what it made with `amibake cleanup " + ctx.build_id +
          "`",
      2);
}

}  // namespace

// ---- step: host ----
// Who and where this host is. Everything here is read-only, so a host that cannot run
// the method stops the build before anything is created.
Result<json> step_host(StepContext& ctx) {
  aws::ImdsClient imds;
  if (imds.disabled()) {
    return make_error(
        "chroot method: instance metadata is disabled (AWS_EC2_METADATA_DISABLED), "
        "so this host cannot tell which instance it is",
        kNotOnEc2Hint, 2);
  }
  auto instance = imds.instance_id();
  if (!instance) {
    return make_error("chroot method: this host is not an EC2 instance (no IMDSv2 answer from " +
                          imds.endpoint() + ": " + instance.error().message + ")",
                      kNotOnEc2Hint, 2);
  }
  AMIBAKE_ASSIGN(std::string zone, imds.availability_zone());
  AMIBAKE_ASSIGN(std::string region, imds.region());
  if (region != ctx.client.region()) {
    return make_error("chroot method: this host is in " + region + " but the build is for " +
                          ctx.client.region() + " (a volume attaches only in its own zone)",
                      "build with --region " + region + ", or use --method direct", 2);
  }
  // Root and loop devices to mount the attached volume's root partition (filesystem
  // support is the image's business: a missing one fails the install with its name).
  for (const auto& c : check_direct_method_host({}, 0)) {
    if (!c.ok && (c.name == "root" || c.name == "loop devices")) {
      return make_error(
          "chroot method: this host cannot mount the volume: " + c.name + ": " + c.detail, c.fix,
          2);
    }
  }
  aws::ec2::DescribeInstancesRequest d;
  d.instance_ids = {*instance};
  auto found = aws::ec2::describe_instances(ctx.client, d);
  if (!found || found->empty()) {
    if (!found && found.error().aws_code != "InvalidInstanceID.NotFound") return found.error();
    return make_error("chroot method: this host (" + *instance +
                          ") is not an instance of the "
                          "account these credentials belong to, in " +
                          region,
                      "use the instance's own role or credentials of its account", 2);
  }
  const auto& self = found->front();
  if (self.state != "running") {
    return make_error("chroot method: this host " + *instance + " is " + self.state, "", 2);
  }
  ctx.events.info("host " + *instance + " (" + self.instance_type + ") in " + zone);
  return json{{"instance", *instance},
              {"zone", zone},
              {"region", region},
              {"instance_type", self.instance_type}};
}

// ---- step: source ----
// CreateVolume reads public snapshots, so Amazon's own root snapshot serves directly; a
// base whose snapshot the account cannot use (shared for launch only, say) goes through
// the account's copy, the same shared cache the direct method makes.
Result<json> step_source(StepContext& ctx) {
  const json& res = ctx.results["resolve"];
  std::string base_id = res["base_image"];
  if (res["base_owner"] != res["account"]) {
    AMIBAKE_ASSIGN(auto img, aws::ec2::describe_image(ctx.client, base_id));
    AMIBAKE_ASSIGN(std::string why, snapshot_unusable(ctx, img.root_snapshot_id()));
    if (!why.empty()) {
      ctx.events.info("the base's root snapshot is not usable here (" + why +
                      "); using the account's copy of " + base_id);
      return source_from_copy(ctx);
    }
  }
  AMIBAKE_ASSIGN(json out, describe_source(ctx, base_id));
  out["copy"] = false;
  ctx.events.info("starting from " + std::string(out["root_snapshot"]) + ", the root of " +
                  base_id);
  return out;
}

// ---- step: volume ----
Result<json> step_volume(StepContext& ctx) {
  std::string zone = ctx.results["host"]["zone"];
  auto create = [&](const std::string& snapshot) -> Result<aws::ec2::Volume> {
    aws::ec2::CreateVolumeRequest c;
    c.availability_zone = zone;
    c.snapshot_id = snapshot;
    c.volume_type = "gp3";
    c.client_token = ctx.build_id + "-" + snapshot;  // ≤ 64 characters
    c.tag_specifications = {{"volume", ctx.tags("volume", /*temporary=*/true)}};
    AMIBAKE_TRY(ctx.journal.intent(ctx.current_step, "volume", c.client_token));
    AMIBAKE_ASSIGN(auto v, aws::ec2::create_volume(ctx.client, c));
    AMIBAKE_TRY(ctx.record(ctx.current_step, "volume", v.volume_id, /*temporary=*/true));
    return v;
  };
  std::string snapshot = ctx.results["source"]["root_snapshot"];
  auto made = create(snapshot);
  if (!made && made.error().aws_code.rfind("InvalidSnapshot.", 0) == 0 &&
      !ctx.results["source"].value("copy", false)) {
    ctx.events.info(snapshot + " cannot make a volume in this account (" + made.error().message +
                    "); using the account's copy of the base");
    AMIBAKE_ASSIGN(json copy, source_from_copy(ctx));
    ctx.results["source"] = copy;
    AMIBAKE_TRY(ctx.journal.step_done("source", copy));
    snapshot = copy["root_snapshot"];
    made = create(snapshot);
  }
  if (!made) return made.error();
  std::string id = made->volume_id;
  ctx.events.info("volume " + id + " from " + snapshot + " in " + zone);
  AMIBAKE_TRY(ctx.check_interrupt());
  AMIBAKE_ASSIGN(auto v, aws::wait_volume_available(
                             ctx.client, id, ctx.wait_options(id, std::chrono::minutes(15))));
  return json{{"volume", id}, {"zone", zone}, {"snapshot", snapshot}, {"size_gib", v.size}};
}

// ---- step: attach ----
Result<json> step_attach(StepContext& ctx) {
  AMIBAKE_TRY(check_same_host(ctx));
  std::string vol = volume_id(ctx), instance = host_instance(ctx);
  AMIBAKE_ASSIGN(auto v, describe_volume(ctx, vol));
  std::string name;
  if (const auto* a = attachment_to(v, instance)) {
    name = a->device;
    ctx.events.info(vol + " is attached to this host already, as " + name);
  } else if (!v.attachments.empty() && v.attachments.front().state != "detached") {
    return make_error(
        vol + " is attached to " + v.attachments.front().instance_id + ", not to this host " +
            instance,
        "run the build on the host it started on, or `amibake cleanup " + ctx.build_id + "`");
  } else {
    aws::ec2::DescribeInstancesRequest d;
    d.instance_ids = {instance};
    AMIBAKE_ASSIGN(auto self, aws::ec2::describe_instances(ctx.client, d));
    std::vector<std::string> in_use;
    for (const auto& i : self) {
      in_use.push_back(i.root_device_name);
      for (const auto& m : i.block_device_mappings) in_use.push_back(m.device_name);
    }
    // Another build on this host may take a name between our look and our attach: the
    // service refuses the second attachment, and we move on to the next name.
    for (const auto& candidate : attach_name_candidates(in_use, ctx.build_id)) {
      AMIBAKE_TRY(ctx.check_interrupt());
      auto attached = aws::ec2::attach_volume(ctx.client, vol, instance, candidate);
      if (attached) {
        name = candidate;
        break;
      }
      if (got_no_answer(attached.error())) {
        AMIBAKE_ASSIGN(auto now, describe_volume(ctx, vol));
        if (const auto* a = attachment_to(now, instance)) {
          name = a->device;
          ctx.events.info("AttachVolume got no answer, but " + vol + " is attaching as " + name);
          break;
        }
        ctx.events.info("AttachVolume got no answer and " + vol + " is not attached; trying again");
        continue;
      }
      if (!name_taken(attached.error())) return attached.error();
      ctx.events.info(candidate + " was taken meanwhile; trying the next name");
    }
    if (name.empty()) {
      return make_error(instance + ": no free device name from /dev/sdf to /dev/sdp",
                        "detach unused volumes from this host, or wait for other builds to end");
    }
    ctx.events.info("attaching " + vol + " to " + instance + " as " + name);
  }
  AMIBAKE_TRY(aws::wait_volume_attached(ctx.client, vol, instance,
                                        ctx.wait_options(vol, std::chrono::minutes(10))));
  AMIBAKE_ASSIGN(auto dev, attached_device(ctx, name, std::chrono::minutes(2)));
  ctx.events.info(vol + " is " + dev.path + " (" + dev.how + ")");
  return json{{"device_name", name}, {"device", dev.path}, {"how", dev.how}};
}

// ---- step: install ----
Result<json> step_install_device(StepContext& ctx) {
  AMIBAKE_TRY(check_same_host(ctx));
  // Found again by id: node names can change between runs.
  AMIBAKE_ASSIGN(FoundDevice dev, attached_device(ctx, ctx.results["attach"]["device_name"],
                                                  std::chrono::minutes(1)));
  AMIBAKE_TRY(release_leftovers(ctx, dev.path));
  AMIBAKE_ASSIGN(json report, install_payload_held(ctx, dev.path));
  AMIBAKE_TRY(flush_block_device(dev.path));
  report["device"] = dev.path;
  return report;
}

// ---- step: detach ----
Result<json> step_detach(StepContext& ctx) {
  AMIBAKE_TRY(check_same_host(ctx));
  std::string vol = volume_id(ctx), instance = host_instance(ctx);
  // A DetachVolume that got no answer may not have happened: look again, up to 3 times.
  for (int attempt = 1;; ++attempt) {
    AMIBAKE_ASSIGN(auto v, describe_volume(ctx, vol));
    const auto* a = attachment_to(v, instance);
    if (!a || a->state == "detaching") break;
    // Nothing of ours may hold the device, and its buffers must be on the volume.
    uint64_t size = static_cast<uint64_t>(v.size) << 30;
    if (auto dev = look_for_attached_device(vol, a->device, size, lookup_of(ctx))) {
      AMIBAKE_TRY(release_leftovers(ctx, dev->path));
      AMIBAKE_TRY(flush_block_device(dev->path));
    }
    aws::ec2::DetachVolumeRequest d;
    d.volume_id = vol;
    d.instance_id = instance;
    auto detached = aws::ec2::detach_volume(ctx.client, d);
    if (detached) {
      ctx.events.info("detaching " + vol + " from " + instance);
      break;
    }
    if (!got_no_answer(detached.error()) || attempt == 3) return detached.error();
    ctx.events.info("DetachVolume got no answer; looking at " + vol + " again");
  }
  AMIBAKE_TRY(
      aws::wait_volume_available(ctx.client, vol, ctx.wait_options(vol, std::chrono::minutes(10))));
  return json{{"volume", vol}, {"detached", true}};
}

// ---- step: snapshot ----
// CreateSnapshot takes no client token: an earlier attempt's snapshot is found by the
// journal, else by its tags (a crash between the call and its journal line).
Result<json> step_snapshot(StepContext& ctx) {
  std::string vol = volume_id(ctx);
  std::string snap;
  for (const auto& r : ctx.journal.state().resources) {
    if (r.step == "snapshot" && r.kind == "snapshot" && !r.deleted) snap = r.id;
  }
  // A snapshot of this build that the journal does not know (a crash, or a CreateSnapshot
  // that got no answer) carries the build's tags.
  auto find_tagged = [&]() -> Status {
    aws::ec2::DescribeSnapshotsRequest d;
    d.owner_ids = {"self"};
    d.filters = {{"tag:" + std::string(kTagBuildId), {ctx.build_id}},
                 {"tag:" + std::string(kTagRole), {"root-snapshot"}}};
    AMIBAKE_ASSIGN(auto found, aws::ec2::describe_snapshots(ctx.client, d));
    for (const auto& s : found) {
      if (s.state == "error") continue;
      snap = s.snapshot_id;
      AMIBAKE_TRY(ctx.record("snapshot", "snapshot", snap, false));
    }
    if (!snap.empty()) ctx.events.info("found " + snap + " made by an earlier attempt");
    return ok();
  };
  if (snap.empty()) AMIBAKE_TRY(find_tagged());
  if (!snap.empty()) {
    AMIBAKE_ASSIGN(bool removed, remove_if_failed(ctx, snap));
    if (removed) snap.clear();
  }
  if (snap.empty()) {
    aws::ec2::CreateSnapshotRequest c;
    c.volume_id = vol;
    c.description = root_snapshot_description(ctx);
    c.tag_specifications = {{"snapshot", root_snapshot_tags(ctx)}};
    AMIBAKE_TRY(ctx.journal.intent("snapshot", "snapshot", "tag:" + ctx.build_id));
    auto made = aws::ec2::create_snapshot(ctx.client, c);
    if (!made && got_no_answer(made.error())) {
      AMIBAKE_TRY(find_tagged());
      if (snap.empty()) return made.error();
    } else {
      if (!made) return made.error();
      snap = made->snapshot_id;
      AMIBAKE_TRY(ctx.record("snapshot", "snapshot", snap, false));
      ctx.events.info("snapshot " + snap + " of " + vol);
      AMIBAKE_ASSIGN(auto yield, yield_claim_to_twin(ctx, snap));
      if (yield) return *yield;
    }
  }
  ClaimHeartbeat heartbeat(ctx, snap);  // a twin build sees this one is alive
  AMIBAKE_TRY(ctx.check_interrupt());
  auto t0 = Clock::now();
  aws::WaitOptions w = ctx.wait_options(snap, std::chrono::minutes(120));
  w.on_progress = [&ctx, t0](const aws::WaitState& s) {
    int pct = std::clamp(std::atoi(s.detail.c_str()), 0, 100);
    ctx.events.progress("snapshot percent", static_cast<uint64_t>(pct), 100, 0,
                        std::chrono::duration<double>(Clock::now() - t0).count());
  };
  AMIBAKE_TRY(aws::wait_snapshot_completed(ctx.client, snap, w));
  return json{{"snapshot", snap},
              {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}};
}

// ---- step: remove-volume ----
// The volume's content now lives in the snapshot; it is temporary and goes at once.
Result<json> step_remove_volume(StepContext& ctx) {
  std::string vol = volume_id(ctx);
  Status s = aws::ec2::delete_volume(ctx.client, vol);
  if (!s && s.error().aws_code != "InvalidVolume.NotFound") return s.error();
  AMIBAKE_TRY(ctx.journal.deleted(vol));
  ctx.events.info("deleted " + vol);
  return json{{"volume", vol}, {"deleted", true}};
}

}  // namespace amibake::bake
