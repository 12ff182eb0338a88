// Undoing a build's publish steps (docs/publish.md "Cleanup"): the pointers it moved but
// does not own go back to where they were, and the launch template versions it made go.
//
// publish.cc journals each pointer before it moves it (Journal::pointer), with what it
// pointed at before the build. Cleanup walks them newest first, which is the reverse of
// the steps: compute environments (so none still names a launch template version about
// to be deleted), then launch templates, then SSM parameters. Each is put back only when
// it still shows this build's change, so a pointer a later build (or a person) moved
// since is left alone:
//   - compute environment: its fields still equal the build's update -> the fields from
//     before are sent back (after waiting out an update in progress, which Batch refuses),
//     then cleanup waits (bounded) until it is VALID again; INVALID is a failure;
//   - launch template: versions whose VersionDescription names the build are deleted,
//     after the default goes back to the version that was the default before, if the
//     default is one of them (EC2 does not delete a default version);
//   - SSM parameter: the newest version's Description names the build -> the value from
//     before is put back as a new version (SSM history cannot be rewritten), or the
//     parameter is deleted when the build created it.
// Everything not found ("already gone") counts as done, so cleanup can be rerun.
#include <algorithm>
#include <chrono>
#include <set>

#include "aws/model.h"
#include "aws/sigv4.h"
#include "aws/ssm.h"
#include "aws/waiter.h"
#include "bake/build_steps.h"
#include "base/files.h"

namespace amibake::bake {
namespace {

using aws::model::Json;

bool gone(const Error& e) {
  const std::string& c = e.aws_code;
  return c == "ParameterNotFound" || c.starts_with("InvalidLaunchTemplateId.NotFound") ||
         c.starts_with("InvalidLaunchTemplateName.NotFound");
}

Status restore_compute_environment(aws::AwsClient& c, const Json& p, Events& events) {
  std::string arn = p.value("arn", "");
  auto describe = [&]() -> Result<Json> {
    AMIBAKE_ASSIGN(Json out, aws::model::call(c, aws::model::batch(), "DescribeComputeEnvironments",
                                              Json{{"computeEnvironments", Json::array({arn})}}));
    const Json& list = out["computeEnvironments"];
    return list.is_array() && !list.empty() ? list[0] : Json();
  };
  // Batch refuses an update while one is in progress (perhaps the build's own).
  Json ce;
  auto poll = [&]() -> Result<aws::WaitState> {
    AMIBAKE_ASSIGN(ce, describe());
    std::string status = ce.is_object() ? ce.value("status", "") : "gone";
    bool moving = status == "CREATING" || status == "UPDATING";
    return aws::WaitState{moving ? status : "settled", ""};
  };
  aws::WaitOptions w;
  w.timeout = std::chrono::minutes(30);
  w.interval = std::chrono::milliseconds(std::stoi(env_or("AMIBAKE_POLL_MS", "2000")));
  AMIBAKE_TRY(aws::wait_for("compute environment " + arn, poll, {"settled"}, {}, w));
  if (!ce.is_object() || !compute_environment_has(ce, p["update"])) return ok();
  Json back = Json::object();
  for (const auto& [k, v] : p["computeResources"].items()) {
    if (!v.is_null()) back[k] = v;
  }
  if (back.empty()) return ok();
  AMIBAKE_TRY(aws::model::call(c, aws::model::batch(), "UpdateComputeEnvironment",
                               Json{{"computeEnvironment", arn}, {"computeResources", back}}));
  events.info("compute environment " + arn + " in " + c.region() + ": put back as before the build; "
              "waiting for it to be VALID");
  // As the batch step does: bounded, and INVALID is an error with Batch's reason.
  auto valid = [&]() -> Result<aws::WaitState> {
    AMIBAKE_ASSIGN(ce, describe());
    if (!ce.is_object()) return aws::WaitState{"DELETED", "no longer listed"};
    return aws::WaitState{ce.value("status", ""), ce.value("statusReason", "")};
  };
  auto done = aws::wait_for("compute environment " + arn + " in " + c.region(), valid, {"VALID"},
                            {"INVALID", "DELETED"}, w);
  if (!done) return done.error().wrap("compute environment " + arn + " was put back, but");
  events.info("compute environment " + arn + " in " + c.region() + ": VALID again");
  return ok();
}

Status restore_launch_template(aws::AwsClient& c, const Json& p, Events& events) {
  std::string id = p.value("template", "");
  std::string description = p.value("description", "");
  AMIBAKE_ASSIGN(Json versions, aws::model::call_all_pages(c, aws::model::ec2(),
                                                           "DescribeLaunchTemplateVersions",
                                                           Json{{"LaunchTemplateId", id}}));
  std::vector<int64_t> ours;
  int64_t current_default = 0;
  for (const auto& v : versions["LaunchTemplateVersions"]) {
    int64_t n = v.value("VersionNumber", int64_t{0});
    if (v.value("DefaultVersion", false)) current_default = n;
    if (v.value("VersionDescription", "") == description) ours.push_back(n);
  }
  if (ours.empty()) return ok();
  int64_t previous = p.value("previous_default", int64_t{1});
  if (std::find(ours.begin(), ours.end(), current_default) != ours.end()) {
    AMIBAKE_TRY(aws::model::call(c, aws::model::ec2(), "ModifyLaunchTemplate",
                                 Json{{"LaunchTemplateId", id},
                                      {"ClientToken", aws::sha256_hex("lt-restore:" + id + ":" + description).substr(0, 32)},
                                      {"DefaultVersion", std::to_string(previous)}}));
    events.info("launch template " + id + " in " + c.region() + ": default version " +
                std::to_string(previous) + " again");
  }
  Json numbers = Json::array();
  for (int64_t n : ours) numbers.push_back(std::to_string(n));
  AMIBAKE_ASSIGN(Json deleted, aws::model::call(c, aws::model::ec2(), "DeleteLaunchTemplateVersions",
                                                Json{{"LaunchTemplateId", id}, {"Versions", numbers}}));
  for (const auto& bad : deleted.value("UnsuccessfullyDeletedLaunchTemplateVersions", Json::array())) {
    const Json& e = bad.value("ResponseError", Json::object());
    if (e.value("Code", "") == "launchTemplateVersionDoesNotExist") continue;
    return make_error("launch template " + id + " version " +
                      std::to_string(bad.value("VersionNumber", int64_t{0})) + ": not deleted: " +
                      e.value("Code", "") + " " + e.value("Message", ""));
  }
  events.info("launch template " + id + " in " + c.region() + ": deleted the build's version(s) " +
              numbers.dump());
  return ok();
}

Status restore_ssm_parameter(aws::AwsClient& c, const Json& p, const std::string& build_id,
                             Events& events) {
  std::string name = p.value("name", "");
  AMIBAKE_ASSIGN(Json history, aws::model::call_all_pages(c, aws::model::ssm(), "GetParameterHistory",
                                                          Json{{"Name", name}}));
  const Json& list = history["Parameters"];
  if (!list.is_array() || list.empty()) return ok();
  if (list.back().value("Description", "") != p.value("description", "")) return ok();
  if (!p.contains("previous_value")) {
    AMIBAKE_TRY(aws::model::call(c, aws::model::ssm(), "DeleteParameter", Json{{"Name", name}}));
    events.info("SSM parameter " + name + " in " + c.region() + ": deleted (the build created it)");
    return ok();
  }
  aws::ssm::PutParameterRequest put;
  put.name = name;
  put.value = p.value("previous_value", "");
  put.type = "String";
  put.data_type = "aws:ec2:image";
  put.overwrite = true;
  put.description = "amibake cleanup of build " + build_id + ": the value from before it";
  AMIBAKE_ASSIGN(auto result, aws::ssm::put_parameter(c, put));
  events.info("SSM parameter " + name + " in " + c.region() + ": " + put.value + " again (version " +
              std::to_string(result.version) + ")");
  return ok();
}

}  // namespace

void restore_pointers(Journal& journal,
                      const std::function<Result<aws::AwsClient*>(const std::string&)>& client_in,
                      Events& events, std::vector<std::string>& failed) {
  const JournalState& state = journal.state();
  std::vector<std::string> keys(state.pointer_order.rbegin(), state.pointer_order.rend());
  for (const auto& key : keys) {
    const Json p = state.pointers.at(key);
    if (p.value("restored", false)) continue;
    std::string region = p.value("region", "");
    auto client = client_in(region);
    if (!client) {
      failed.push_back(key + ": " + client.error().message);
      continue;
    }
    std::string kind = p.value("kind", "");
    Status s;
    if (kind == "compute-environment") {
      s = restore_compute_environment(**client, p, events);
    } else if (kind == "launch-template") {
      s = restore_launch_template(**client, p, events);
    } else if (kind == "ssm-parameter") {
      s = restore_ssm_parameter(**client, p, state.build_id, events);
    } else {
      s = make_error("unknown pointer kind '" + kind + "'");
    }
    if (!s && !gone(s.error())) {
      failed.push_back(key + ": " + s.error().message);
      events.warn("could not put back " + key + ": " + s.error().message);
      continue;
    }
    (void)journal.pointer_restored(key);
  }
}

}  // namespace amibake::bake
