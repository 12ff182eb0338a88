// AWS Batch (REST-JSON, botocore batch 2016-08-10): CreateComputeEnvironment,
// DescribeComputeEnvironments, UpdateComputeEnvironment, DeleteComputeEnvironment.
//
// Compute environments are recorded as given (subnets, security groups, roles are not
// checked) and move through Batch's statuses over time at --speed: CREATING -> VALID
// (10 s), UPDATING -> VALID (30 s after an infrastructure update, 5 s after a scaling
// one), DELETING -> gone (10 s). UpdateComputeEnvironment follows Batch's rules: only
// minvCpus, maxvCpus and desiredvCpus (and state, unmanagedvCpus) may change on any
// environment; every other computeResources field, serviceRole and updatePolicy is an
// infrastructure update, which needs allocation strategy BEST_FIT_PROGRESSIVE,
// SPOT_CAPACITY_OPTIMIZED or SPOT_PRICE_CAPACITY_OPTIMIZED and the service-linked role
// (serviceRole unset, or AWSServiceRoleForBatch). Otherwise the answer is a
// ClientException listing the fields, worded as Batch words its refusal for Fargate.
#include <algorithm>
#include <set>

#include "aws/sigv4.h"
#include "emulator/service.h"

namespace amibake::emu {
namespace {

using nlohmann::json;

Reply client_error(const Call& call, const std::string& message) {
  return error_reply(call, 400, "ClientException", message);
}

std::string arn_of(const std::string& name) {
  return "arn:aws:batch:" + Context::current_region() + ":" + kAccountId +
         ":compute-environment/" + name;
}

std::string service_linked_role() {
  return std::string("arn:aws:iam::") + kAccountId +
         ":role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch";
}

bool is_service_linked(const std::string& role) {
  return role.empty() || role == "AWSServiceRoleForBatch" || role.ends_with("/AWSServiceRoleForBatch");
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 128 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
         });
}

// Finds an environment by name or ARN (mu() held).
ComputeEnvironment* find_environment(Context& ctx, const std::string& name_or_arn) {
  auto& envs = ctx.world().compute_environments;
  std::string name = name_or_arn;
  if (name.rfind("arn:", 0) == 0) {
    if (name.rfind(arn_of(""), 0) != 0) return nullptr;  // another region's or account's
    name = name.substr(name.rfind('/') + 1);
  }
  auto it = envs.find(name);
  return it == envs.end() ? nullptr : &it->second;
}

json environment_json(const ComputeEnvironment& ce) {
  json j = {{"computeEnvironmentName", ce.name},
            {"computeEnvironmentArn", ce.arn},
            {"ecsClusterArn", "arn:aws:ecs:" + ce.arn.substr(12, ce.arn.find(':', 12) - 12) + ":" +
                                  kAccountId + ":cluster/" + ce.name + "_Batch_" + ce.uuid},
            {"tags", ce.tags},
            {"type", ce.type},
            {"state", ce.state},
            {"status", ce.status},
            {"statusReason", ce.status_reason},
            {"serviceRole", ce.service_role},
            {"uuid", ce.uuid},
            {"containerOrchestrationType", ce.eks_configuration.is_null() ? "ECS" : "EKS"}};
  if (!ce.compute_resources.is_null()) j["computeResources"] = ce.compute_resources;
  if (!ce.update_policy.is_null()) j["updatePolicy"] = ce.update_policy;
  if (!ce.eks_configuration.is_null()) j["eksConfiguration"] = ce.eks_configuration;
  if (ce.type == "UNMANAGED") j["unmanagedvCpus"] = ce.unmanaged_vcpus;
  return j;
}

const std::set<std::string> kStrategies = {"BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED",
                                           "SPOT_PRICE_CAPACITY_OPTIMIZED"};
const std::set<std::string> kUpdatable = {"BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED",
                                          "SPOT_PRICE_CAPACITY_OPTIMIZED"};

std::optional<Reply> check_strategy(const Call& call, const std::string& type, const std::string& strategy) {
  if (strategy.empty()) return std::nullopt;
  if (!kStrategies.count(strategy)) {
    return client_error(call, "Invalid compute resource allocation strategy " + strategy);
  }
  if ((type == "EC2") && strategy.rfind("SPOT_", 0) == 0) {
    return client_error(call, "Invalid compute resource allocation strategy " + strategy + " for type " + type);
  }
  return std::nullopt;
}

Reply create_environment(Context& ctx, const Call& call) {
  const json& in = call.json;
  std::string name = in.value("computeEnvironmentName", "");
  std::string type = in.value("type", "");
  if (!valid_name(name)) {
    return client_error(call, "computeEnvironmentName must be 1 to 128 letters, numbers, "
                              "hyphens and underscores");
  }
  if (type != "MANAGED" && type != "UNMANAGED") {
    return client_error(call, "type must be MANAGED or UNMANAGED");
  }
  std::string state = in.value("state", "ENABLED");
  if (state != "ENABLED" && state != "DISABLED") return client_error(call, "state must be ENABLED or DISABLED");
  json resources = in.contains("computeResources") ? in["computeResources"] : json();
  if (type == "MANAGED") {
    if (!resources.is_object()) return client_error(call, "computeResources is required for a MANAGED compute environment");
    std::string rtype = resources.value("type", "");
    if (rtype != "EC2" && rtype != "SPOT" && rtype != "FARGATE" && rtype != "FARGATE_SPOT") {
      return client_error(call, "computeResources.type must be EC2, SPOT, FARGATE or FARGATE_SPOT");
    }
    if (!resources.contains("maxvCpus")) return client_error(call, "computeResources.maxvCpus is required");
    if (!resources.contains("subnets")) return client_error(call, "computeResources.subnets is required");
    if (auto bad = check_strategy(call, rtype, resources.value("allocationStrategy", ""))) return *bad;
    bool fargate = rtype.rfind("FARGATE", 0) == 0;
    if (!fargate && !resources.contains("allocationStrategy")) resources["allocationStrategy"] = "BEST_FIT";
    if (!fargate && !resources.contains("minvCpus")) resources["minvCpus"] = 0;
    if (!fargate && !resources.contains("desiredvCpus")) resources["desiredvCpus"] = resources.value("minvCpus", 0);
  } else if (!resources.is_null()) {
    return client_error(call, "computeResources can't be specified for an UNMANAGED compute environment");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  if (find_environment(ctx, name)) return client_error(call, "Object already exists");
  ComputeEnvironment ce;
  ce.name = name;
  ce.arn = arn_of(name);
  ce.type = type;
  ce.state = state;
  ce.service_role = in.value("serviceRole", "");
  if (ce.service_role.empty()) ce.service_role = service_linked_role();
  std::string h = aws::sha256_hex(ce.arn + std::to_string(ctx.draw()));
  ce.uuid = h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20, 12);
  ce.compute_resources = resources;
  ce.eks_configuration = in.contains("eksConfiguration") ? in["eksConfiguration"] : json();
  ce.unmanaged_vcpus = in.value("unmanagedvCpus", 0);
  if (in.contains("tags") && in["tags"].is_object()) {
    for (const auto& [k, v] : in["tags"].items()) ce.tags[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  ce.created_at = ctx.now();
  ce.status = "CREATING";
  ce.status_reason = "ComputeEnvironment is being created";
  ce.next_status = "VALID";
  ce.ready_at = ctx.after(10);
  ctx.world().compute_environments[name] = ce;
  ctx.commit();
  return json_reply(call, {{"computeEnvironmentName", ce.name}, {"computeEnvironmentArn", ce.arn}});
}

Reply describe_environments(Context& ctx, const Call& call) {
  json wanted = call.json.value("computeEnvironments", json::array());
  int max = call.json.value("maxResults", 100);
  if (max < 1 || max > 100) return client_error(call, "maxResults must be between 1 and 100");
  size_t start = 0;
  std::string token = call.json.value("nextToken", "");
  if (!token.empty()) {
    if (token.rfind("emu-", 0) != 0) return client_error(call, "Invalid nextToken");
    start = std::stoul(token.substr(4));
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  std::vector<const ComputeEnvironment*> found;
  if (!wanted.empty()) {
    std::set<std::string> seen;
    for (const auto& w : wanted) {  // names not found are left out, as Batch does
      const ComputeEnvironment* ce = w.is_string() ? find_environment(ctx, w.get<std::string>()) : nullptr;
      if (ce && seen.insert(ce->name).second) found.push_back(ce);
    }
  } else {
    for (const auto& [name, ce] : ctx.world().compute_environments) found.push_back(&ce);
  }
  json list = json::array();
  size_t end = std::min(found.size(), start + static_cast<size_t>(max));
  for (size_t i = start; i < end; ++i) list.push_back(environment_json(*found[i]));
  json out = {{"computeEnvironments", list}};
  if (end < found.size()) out["nextToken"] = "emu-" + std::to_string(end);
  return json_reply(call, out);
}

Reply update_environment(Context& ctx, const Call& call) {
  const json& in = call.json;
  std::string target = in.value("computeEnvironment", "");
  std::lock_guard<std::mutex> lock(ctx.mu());
  ComputeEnvironment* ce = find_environment(ctx, target);
  if (!ce) return client_error(call, "ComputeEnvironment " + target + " does not exist");
  if (ce->status == "CREATING" || ce->status == "UPDATING" || ce->status == "DELETING") {
    return client_error(call, "Cannot update ComputeEnvironment " + ce->name + " in status " + ce->status);
  }
  json update = in.contains("computeResources") ? in["computeResources"] : json::object();
  if (!update.is_object()) return client_error(call, "computeResources must be an object");
  if (ce->type == "UNMANAGED" && !update.empty()) {
    return client_error(call, "computeResources can't be updated for an UNMANAGED compute environment");
  }
  // Which of the request's fields are infrastructure updates.
  static const std::set<std::string> kScaling = {"minvCpus", "maxvCpus", "desiredvCpus"};
  std::vector<std::string> infrastructure;
  for (const auto& [k, v] : update.items()) {
    if (!kScaling.count(k)) infrastructure.push_back(k);
  }
  if (in.contains("updatePolicy")) infrastructure.push_back("updatePolicy");
  std::string role = in.value("serviceRole", "");
  if (!role.empty() && role != ce->service_role) infrastructure.push_back("serviceRole");
  std::string new_strategy = update.value("allocationStrategy", "");
  const json& cr = ce->compute_resources;
  std::string rtype = cr.is_object() ? cr.value("type", "") : "";
  if (!infrastructure.empty()) {
    std::string strategy = cr.is_object() ? cr.value("allocationStrategy", "") : "";
    bool fargate = rtype.rfind("FARGATE", 0) == 0;
    std::sort(infrastructure.begin(), infrastructure.end());
    std::string fields;
    for (const auto& f : infrastructure) fields += (fields.empty() ? "" : ", ") + f;
    if (fargate) {
      return client_error(call, "The following parameters can't be updated for Fargate compute environment: " + fields + ".");
    }
    if (!kUpdatable.count(strategy) || !is_service_linked(ce->service_role) ||
        (!role.empty() && !is_service_linked(role))) {
      return client_error(
          call, "The following parameters can't be updated for compute environment " + ce->name +
                    " (allocation strategy " + (strategy.empty() ? "BEST_FIT" : strategy) + ", service role " +
                    ce->service_role + "): " + fields +
                    ". Infrastructure updates need allocation strategy BEST_FIT_PROGRESSIVE, "
                    "SPOT_CAPACITY_OPTIMIZED or SPOT_PRICE_CAPACITY_OPTIMIZED and the "
                    "AWSServiceRoleForBatch service-linked role; create a new compute environment "
                    "instead.");
    }
    if (!new_strategy.empty()) {
      if (auto bad = check_strategy(call, rtype, new_strategy)) return *bad;
      if (!kUpdatable.count(new_strategy)) {
        return client_error(call, "allocationStrategy can't be updated to " + new_strategy);
      }
    }
  }
  std::string state = in.value("state", "");
  if (!state.empty() && state != "ENABLED" && state != "DISABLED") {
    return client_error(call, "state must be ENABLED or DISABLED");
  }
  // Apply: computeResources fields given replace the environment's (ec2Configuration and
  // launchTemplate as a whole).
  for (const auto& [k, v] : update.items()) ce->compute_resources[k] = v;
  if (in.contains("updatePolicy")) ce->update_policy = in["updatePolicy"];
  if (!role.empty()) ce->service_role = role;
  if (!state.empty()) ce->state = state;
  if (in.contains("unmanagedvCpus")) ce->unmanaged_vcpus = in.value("unmanagedvCpus", 0);
  ce->status = "UPDATING";
  ce->status_reason = infrastructure.empty() ? "ComputeEnvironment is being updated"
                                             : "ComputeEnvironment infrastructure is being updated";
  ce->next_status = "VALID";
  ce->ready_at = ctx.after(infrastructure.empty() ? 5 : 30);
  ctx.commit();
  return json_reply(call, {{"computeEnvironmentName", ce->name}, {"computeEnvironmentArn", ce->arn}});
}

Reply delete_environment(Context& ctx, const Call& call) {
  std::string target = call.json.value("computeEnvironment", "");
  std::lock_guard<std::mutex> lock(ctx.mu());
  ComputeEnvironment* ce = find_environment(ctx, target);
  if (!ce) return client_error(call, "ComputeEnvironment " + target + " does not exist");
  if (ce->state != "DISABLED") {
    return client_error(call, "Cannot delete ComputeEnvironment " + ce->name +
                                  " while it is ENABLED; update its state to DISABLED first");
  }
  if (ce->status == "DELETING") return json_reply(call, json::object());
  ce->status = "DELETING";
  ce->status_reason = "ComputeEnvironment is being deleted";
  ce->next_status = "DELETED";
  ce->ready_at = ctx.after(10);
  ctx.commit();
  return json_reply(call, json::object());
}

}  // namespace

// The AMIs Batch launches an environment's instances from: each ec2Configuration
// imageIdOverride, else the AMI of its launch template's version ($Default when none is
// named). Batch checks them when it applies an update (not when it answers the call):
// an AMI that does not exist in the region or is not available turns the environment
// INVALID. The reason is worded as users report Batch's ("CLIENT_ERROR - AMI cannot be
// described", aws-quickstart/quickstart-illumina-dragen#35); AWS does not document it.
std::string batch_image_problem(const World& w, const ComputeEnvironment& ce) {
  const json& cr = ce.compute_resources;
  if (!cr.is_object()) return "";
  std::vector<std::string> amis;
  if (cr.contains("ec2Configuration") && cr["ec2Configuration"].is_array()) {
    for (const auto& c : cr["ec2Configuration"]) {
      if (c.is_object() && c.contains("imageIdOverride")) amis.push_back(c.value("imageIdOverride", ""));
    }
  }
  if (amis.empty() && cr.contains("launchTemplate") && cr["launchTemplate"].is_object()) {
    const json& spec = cr["launchTemplate"];
    const LaunchTemplate* lt = nullptr;
    for (const auto& [id, t] : w.launch_templates) {
      if (id == spec.value("launchTemplateId", "") || t.name == spec.value("launchTemplateName", "")) lt = &t;
    }
    if (!lt) return "CLIENT_ERROR - Launch template " + spec.value("launchTemplateName", spec.value("launchTemplateId", "")) +
                    " does not exist";
    std::string v = spec.value("version", "$Default");
    int64_t n = v == "$Latest" ? lt->latest_version : v == "$Default" ? lt->default_version : std::atoll(v.c_str());
    for (const auto& version : lt->versions) {
      if (version.number == n && version.data.contains("ImageId")) amis.push_back(version.data.value("ImageId", ""));
    }
  }
  for (const auto& ami : amis) {
    auto it = w.images.find(ami);
    if (it == w.images.end() || it->second.state != "available") {
      return "CLIENT_ERROR - AMI cannot be described";
    }
  }
  return "";
}

Reply handle_batch(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "CreateComputeEnvironment") return create_environment(ctx, call);
  if (a == "DescribeComputeEnvironments") return describe_environments(ctx, call);
  if (a == "UpdateComputeEnvironment") return update_environment(ctx, call);
  if (a == "DeleteComputeEnvironment") return delete_environment(ctx, call);
  return error_reply(call, 404, "UnknownOperationException", "awsemu does not implement Batch " + a);
}

}  // namespace amibake::emu
