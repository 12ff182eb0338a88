// EC2 instances: RunInstances records instances (nothing boots) that move pending ->
// running, TerminateInstances moves them shutting-down -> terminated (at --speed),
// DescribeInstances lists them in reservations with the filters image-id,
// instance-state-name, instance-id, instance-type, reservation-id and tags, plus the host
// instance awsemu runs on (us-east-1 only), whose block device mapping shows the volumes
// attached to it. Enough to tell whether an AMI is still in use.
#include <algorithm>

#include "emulator/ec2_internal.h"
#include "emulator/validate.h"

namespace amibake::emu {
namespace {

int state_code(const std::string& state) {
  if (state == "pending") return 0;
  if (state == "running") return 16;
  if (state == "shutting-down") return 32;
  if (state == "terminated") return 48;
  if (state == "stopping") return 64;
  return 80;  // stopped
}

void write_state(Xml& x, const char* tag, const std::string& state) {
  x.open(tag).number("code", state_code(state)).leaf("name", state).close(tag);
}

void write_instance(Xml& x, const Instance& i) {
  x.open("item").leaf("instanceId", i.id).leaf("imageId", i.image_id);
  write_state(x, "instanceState", i.state);
  x.leaf("privateDnsName", i.state == "terminated" ? "" : "ip-10-0-1-" + i.id.substr(i.id.size() - 2) + ".ec2.internal");
  x.leaf("dnsName", "").opt("keyName", i.key_name).number("amiLaunchIndex", 0);
  x.leaf("instanceType", i.instance_type).leaf("launchTime", iso_time(i.launch_time));
  x.open("placement").leaf("availabilityZone", i.zone).leaf("tenancy", "default").close("placement");
  x.open("monitoring").leaf("state", "disabled").close("monitoring");
  x.opt("subnetId", i.subnet_id).leaf("architecture", "x86_64");
  x.leaf("rootDeviceType", "ebs").leaf("rootDeviceName", "/dev/xvda");
  x.open("blockDeviceMapping").close("blockDeviceMapping");
  x.leaf("virtualizationType", "hvm").opt("clientToken", i.client_token);
  if (!i.tags.empty()) x.tags(i.tags);
  x.open("groupSet");
  for (const auto& g : i.security_group_ids) x.open("item").leaf("groupId", g).close("item");
  x.close("groupSet");
  x.leaf("hypervisor", "xen").boolean("enaSupport", true);
  x.close("item");
}

// The instance awsemu runs on (IMDS answers for it), with the volumes attached to it.
void write_host_reservation(Context& ctx, Xml& x) {
  x.open("item").leaf("reservationId", "r-0abc0123456789def");
  x.leaf("ownerId", kAccountId).open("groupSet").close("groupSet");
  x.open("instancesSet").open("item").leaf("instanceId", kHostInstanceId);
  x.leaf("imageId", "ami-0host0000000000000");
  write_state(x, "instanceState", "running");
  x.leaf("privateDnsName", "ip-10-0-0-10.ec2.internal").leaf("dnsName", "");
  x.leaf("instanceType", "m5.large").leaf("launchTime", iso_time(ctx.now() - 3600));
  x.open("placement").leaf("availabilityZone", kHostZone).leaf("tenancy", "default").close("placement");
  x.open("monitoring").leaf("state", "disabled").close("monitoring");
  x.leaf("privateIpAddress", "10.0.0.10").leaf("architecture", "x86_64");
  x.leaf("rootDeviceType", "ebs").leaf("rootDeviceName", "/dev/xvda");
  x.open("blockDeviceMapping");
  for (const auto& [id, v] : ctx.world().volumes) {
    if (!v.attachment || v.attachment->instance_id != kHostInstanceId) continue;
    x.open("item").leaf("deviceName", v.attachment->device).open("ebs").leaf("volumeId", id);
    x.leaf("status", v.attachment->state).leaf("attachTime", iso_time(v.attachment->attach_time));
    x.boolean("deleteOnTermination", false).close("ebs").close("item");
  }
  x.close("blockDeviceMapping");
  x.leaf("virtualizationType", "hvm").leaf("hypervisor", "xen").boolean("enaSupport", true);
  x.open("iamInstanceProfile").leaf("arn", std::string("arn:aws:iam::") + kAccountId + ":instance-profile/awsemu-host")
      .leaf("id", "AIPAAWSEMUHOSTPROFILE").close("iamInstanceProfile");
  x.close("item").close("instancesSet").close("item");
}

std::vector<std::string> instance_field(const Instance& i, const std::string& name) {
  if (name == "image-id") return {i.image_id};
  if (name == "instance-state-name") return {i.state};
  if (name == "instance-state-code") return {std::to_string(state_code(i.state))};
  if (name == "instance-id") return {i.id};
  if (name == "instance-type") return {i.instance_type};
  if (name == "reservation-id") return {i.reservation_id};
  if (name == "availability-zone") return {i.zone};
  if (name == "subnet-id") return {i.subnet_id};
  return {"\x01unknown"};
}

Instance host_as_instance() {
  Instance host;
  host.id = kHostInstanceId;
  host.image_id = "ami-0host0000000000000";
  host.state = "running";
  host.reservation_id = "r-0abc0123456789def";
  host.zone = kHostZone;
  return host;
}

Reply run_instances(Context& ctx, const Call& call) {
  int min = std::atoi(call.param("MinCount").c_str()), max = std::atoi(call.param("MaxCount").c_str());
  if (call.param("MinCount").empty() || call.param("MaxCount").empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameters MinCount and MaxCount");
  }
  if (min < 1 || max < min) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "MinCount must be at least 1 and MaxCount at least MinCount");
  }
  Tags tags = tag_specifications(call, "instance");
  if (auto bad = check_tags({}, tags, kEc2TagRules)) return refuse(call, *bad);
  std::lock_guard<std::mutex> lock(ctx.mu());
  std::string token = call.param("ClientToken");
  if (!token.empty()) {
    for (const auto& [id, i] : ctx.world().instances) {
      if (i.client_token != token) continue;
      Xml x;
      x.leaf("reservationId", i.reservation_id).leaf("ownerId", kAccountId);
      x.open("groupSet").close("groupSet").open("instancesSet");
      for (const auto& [other_id, other] : ctx.world().instances) {
        if (other.reservation_id == i.reservation_id) write_instance(x, other);
      }
      x.close("instancesSet");
      return ec2_reply(call, x.str());
    }
  }
  std::string image_id = call.param("ImageId");
  std::string instance_type = call.param("InstanceType");
  std::string lt_id = call.param("LaunchTemplate.LaunchTemplateId");
  std::string lt_name = call.param("LaunchTemplate.LaunchTemplateName");
  std::string lt_version = call.param("LaunchTemplate.Version");
  if (!lt_id.empty() || !lt_name.empty()) {
    const LaunchTemplate* t = nullptr;
    for (const auto& [id, lt] : ctx.world().launch_templates) {
      if (id == lt_id || (lt_id.empty() && lt.name == lt_name)) t = &lt;
    }
    if (!t) {
      return lt_id.empty()
                 ? error_reply(call, 400, "InvalidLaunchTemplateName.NotFoundException",
                               "At least one of the launch templates specified in the request does not exist.")
                 : error_reply(call, 400, "InvalidLaunchTemplateId.NotFound",
                               "The specified launch template, with template ID " + lt_id + ", does not exist.");
    }
    int64_t n = lt_version == "$Latest" ? t->latest_version
                : lt_version.empty() || lt_version == "$Default" ? t->default_version
                                                                 : std::atoll(lt_version.c_str());
    auto v = std::find_if(t->versions.begin(), t->versions.end(),
                          [n](const LaunchTemplateVersion& ver) { return ver.number == n; });
    if (v == t->versions.end()) {
      return error_reply(call, 400, "InvalidLaunchTemplateId.VersionNotFound",
                         "Could not find launch template version " + lt_version + " for launch template with ID " + t->id + ".");
    }
    if (image_id.empty()) image_id = v->data.value("ImageId", "");
    if (instance_type.empty()) instance_type = v->data.value("InstanceType", "");
    lt_id = t->id;
    lt_version = std::to_string(n);
  }
  if (image_id.empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameter ImageId");
  }
  auto img = ctx.world().images.find(image_id);
  bool usable = img != ctx.world().images.end() &&
                (img->second.owner_id == kAccountId || img->second.is_public ||
                 std::count(img->second.launch_user_ids.begin(), img->second.launch_user_ids.end(), kAccountId));
  if (!usable) {
    return error_reply(call, 400, "InvalidAMIID.NotFound", "The image id '[" + image_id + "]' does not exist");
  }
  if (img->second.state != "available") {
    return error_reply(call, 400, "InvalidAMIID.Unavailable", "The image '" + image_id + "' is not available");
  }
  std::string zone = call.param("Placement.AvailabilityZone");
  auto zones = region_zones(Context::current_region());
  if (zone.empty()) zone = zones.front();
  if (std::find(zones.begin(), zones.end(), zone) == zones.end()) {
    return error_reply(call, 400, "InvalidParameterValue", "Invalid availability zone: [" + zone + "]");
  }
  std::string reservation = ctx.new_id("r");
  Xml x;
  x.leaf("reservationId", reservation).leaf("ownerId", kAccountId);
  x.open("groupSet").close("groupSet").open("instancesSet");
  for (int n = 0; n < max; ++n) {
    Instance i;
    i.id = ctx.new_id("i");
    i.image_id = image_id;
    i.instance_type = instance_type.empty() ? "m1.small" : instance_type;  // EC2's default
    i.reservation_id = reservation;
    i.zone = zone;
    i.subnet_id = call.param("SubnetId");
    i.key_name = call.param("KeyName");
    i.client_token = token;
    i.launch_template_id = lt_id;
    i.launch_template_version = lt_version;
    i.security_group_ids = query_list(call, "SecurityGroupId");
    i.launch_time = ctx.now();
    i.ready_at = ctx.after(10);
    i.tags = tags;
    ctx.world().instances[i.id] = i;
    write_instance(x, i);
  }
  x.close("instancesSet");
  ctx.commit();
  return ec2_reply(call, x.str());
}

Reply describe_instances(Context& ctx, const Call& call) {
  auto ids = query_list(call, "InstanceId");
  auto filters = query_filters(call);
  for (const auto& f : filters) {
    bool tag = false;
    tag_filters_match(f, {}, &tag);
    if (!tag && instance_field(Instance{}, f.name) == std::vector<std::string>{"\x01unknown"}) {
      return error_reply(call, 400, "InvalidParameterValue", "The filter '" + f.name + "' is invalid");
    }
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  bool host_region = Context::current_region() == kRegion;
  for (const auto& id : ids) {
    if ((id != kHostInstanceId || !host_region) && !ctx.world().instances.count(id)) {
      return error_reply(call, 400, "InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist");
    }
  }
  auto wanted = [&](const Instance& i) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), i.id) == ids.end()) return false;
    return matches_filters(filters, i.tags, [&i](const std::string& n) { return instance_field(i, n); });
  };
  Xml x;
  x.open("reservationSet");
  if (host_region && wanted(host_as_instance())) write_host_reservation(ctx, x);
  std::map<std::string, std::vector<const Instance*>> reservations;
  std::vector<std::string> order;
  for (const auto& [id, i] : ctx.world().instances) {
    if (!wanted(i)) continue;
    if (!reservations.count(i.reservation_id)) order.push_back(i.reservation_id);
    reservations[i.reservation_id].push_back(&i);
  }
  for (const auto& r : order) {
    x.open("item").leaf("reservationId", r).leaf("ownerId", kAccountId);
    x.open("groupSet").close("groupSet").open("instancesSet");
    for (const Instance* i : reservations[r]) write_instance(x, *i);
    x.close("instancesSet").close("item");
  }
  x.close("reservationSet");
  return ec2_reply(call, x.str());
}

Reply terminate_instances(Context& ctx, const Call& call) {
  auto ids = query_list(call, "InstanceId");
  if (ids.empty()) {
    return error_reply(call, 400, "MissingParameter", "The request must contain the parameter InstanceId");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& id : ids) {
    if (id == kHostInstanceId) {
      return error_reply(call, 400, "OperationNotPermitted",
                         "The instance '" + id + "' may not be terminated: awsemu runs on it.");
    }
    if (!ctx.world().instances.count(id)) {
      return error_reply(call, 400, "InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist");
    }
  }
  Xml x;
  x.open("instancesSet");
  for (const auto& id : ids) {
    Instance& i = ctx.world().instances[id];
    std::string previous = i.state;
    if (i.state != "terminated" && i.state != "shutting-down") {
      i.state = "shutting-down";
      i.ready_at = ctx.after(5);
    }
    x.open("item").leaf("instanceId", id);
    write_state(x, "currentState", i.state);
    write_state(x, "previousState", previous);
    x.close("item");
  }
  x.close("instancesSet");
  ctx.commit();
  return ec2_reply(call, x.str());
}

}  // namespace

Reply handle_instances(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "RunInstances") return run_instances(ctx, call);
  if (a == "DescribeInstances") return describe_instances(ctx, call);
  if (a == "TerminateInstances") return terminate_instances(ctx, call);
  return error_reply(call, 400, "InvalidAction", "The action " + a + " is not valid for this web service.");
}

}  // namespace amibake::emu
