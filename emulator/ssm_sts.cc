// SSM (JSON 1.1: GetParameter, GetParameters, GetParametersByPath, PutParameter) and
// STS (Query: GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity).
//
// Keys issued by STS are stored in the world, so the signature check accepts them
// (with their session token) until they expire, and they survive a restart.
#include <algorithm>

#include "emulator/service.h"

namespace amibake::emu {
namespace {

nlohmann::json parameter_json(const Parameter& p) {
  return {{"Name", p.name},
          {"Type", p.type},
          {"Value", p.value},
          {"Version", p.version},
          {"LastModifiedDate", p.last_modified},
          {"ARN", "arn:aws:ssm:" + Context::current_region() + ":" +
                      (p.name.rfind("/aws/", 0) == 0 ? "" : kAccountId) + ":parameter" +
                      (p.name.rfind('/', 0) == 0 ? "" : "/") + p.name},
          {"DataType", p.data_type}};
}

Reply get_parameter(Context& ctx, const Call& call) {
  std::string name = call.json.value("Name", "");
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().parameters.find(name);
  if (it == ctx.world().parameters.end() || !it->second.exists() || ctx.hidden(name)) {
    return error_reply(call, 400, "ParameterNotFound", "Parameter " + name + " not found.");
  }
  return json_reply(call, {{"Parameter", parameter_json(it->second)}});
}

Reply get_parameters(Context& ctx, const Call& call) {
  nlohmann::json found = nlohmann::json::array(), invalid = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& n : call.json.value("Names", nlohmann::json::array())) {
    std::string name = n.get<std::string>();
    auto it = ctx.world().parameters.find(name);
    if (it == ctx.world().parameters.end() || !it->second.exists() || ctx.hidden(name)) {
      invalid.push_back(name);
    } else
    {
      found.push_back(parameter_json(it->second));
    }
  }
  return json_reply(call, {{"Parameters", found}, {"InvalidParameters", invalid}});
}

Reply get_parameters_by_path(Context& ctx, const Call& call) {
  std::string path = call.json.value("Path", "");
  bool recursive = call.json.value("Recursive", false);
  int max = call.json.value("MaxResults", 10);
  if (max < 1 || max > 10) {
    return error_reply(call, 400, "ValidationException", "MaxResults must be between 1 and 10");
  }
  size_t start = 0;
  std::string token = call.json.value("NextToken", "");
  if (!token.empty()) {
    if (token.rfind("emu-", 0) != 0) return error_reply(call, 400, "InvalidNextToken", "The token is invalid.");
    start = std::stoul(token.substr(4));
  }
  std::string prefix = path.ends_with("/") ? path : path + "/";
  std::lock_guard<std::mutex> lock(ctx.mu());
  std::vector<const Parameter*> all;
  for (const auto& [name, p] : ctx.world().parameters) {
    if (name.rfind(prefix, 0) != 0 || !p.exists()) continue;
    if (!recursive && name.find('/', prefix.size()) != std::string::npos) continue;
    all.push_back(&p);
  }
  nlohmann::json list = nlohmann::json::array();
  size_t end = std::min(all.size(), start + static_cast<size_t>(max));
  for (size_t i = start; i < end; ++i) list.push_back(parameter_json(*all[i]));
  nlohmann::json out = {{"Parameters", list}};
  if (end < all.size()) out["NextToken"] = "emu-" + std::to_string(end);
  return json_reply(call, out);
}

// PutParameter as SSM does it: Overwrite rules, DataType text / aws:ec2:image /
// aws:ssm:integration, and for aws:ec2:image AWS's asynchronous validation: the call
// answers the new version at once, and the version becomes the value only once the AMI
// is found in this region (1 s at speed 1); if it is not, the value stays the previous
// one, and the version never shows in GetParameter or GetParameterHistory.
Reply put_parameter(Context& ctx, const Call& call) {
  std::string name = call.json.value("Name", "");
  if (name.empty() || !call.json.contains("Value") || !call.json["Value"].is_string()) {
    return error_reply(call, 400, "ValidationException", "Name and Value are required");
  }
  if (name.rfind("/aws/", 0) == 0 || name.rfind("aws", 0) == 0 || name.rfind("ssm", 0) == 0) {
    return error_reply(call, 400, "AccessDeniedException",
                       "No access to reserved parameter name: " + name + ".");
  }
  std::string type = call.json.value("Type", "");
  if (!type.empty() && type != "String" && type != "StringList" && type != "SecureString") {
    return error_reply(call, 400, "ValidationException",
                       "1 validation error detected: Value '" + type + "' at 'type' failed to satisfy "
                       "constraint: Member must satisfy enum value set: [SecureString, StringList, String]");
  }
  std::string value = call.json["Value"].get<std::string>();
  std::string data_type = call.json.value("DataType", "");
  if (!data_type.empty() && data_type != "text" && data_type != "aws:ec2:image" &&
      data_type != "aws:ssm:integration") {
    return error_reply(call, 400, "ValidationException",
                       "The following data type is not supported: " + data_type +
                           " (Data type names are all lowercase.)");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().parameters.find(name);
  bool existing = it != ctx.world().parameters.end() && (it->second.exists() || !it->second.pending.empty());
  if (existing && !call.json.value("Overwrite", false)) {
    return error_reply(call, 400, "ParameterAlreadyExists",
                       "The parameter already exists. To overwrite this value, set the overwrite "
                       "option in the request to true.");
  }
  Parameter& p = ctx.world().parameters[name];
  if (!existing) {
    p = Parameter{};
    p.version = 0;  // not found until its first version is the value
  }
  p.name = name;
  ParameterVersion v;
  v.type = type.empty() ? (existing ? p.type : "String") : type;
  v.data_type = data_type.empty() ? (existing ? p.data_type : "text") : data_type;
  v.description = call.json.value("Description", existing ? p.description : "");
  v.value = value;
  if (v.data_type == "aws:ec2:image") {
    if (v.type != "String") {
      return error_reply(call, 400, "ValidationException",
                         "The data type aws:ec2:image requires the parameter type String.");
    }
    bool format_ok = value.rfind("ami-", 0) == 0 && (value.size() == 12 || value.size() == 21) &&
                     value.find_first_not_of("0123456789abcdef", 4) == std::string::npos;
    if (!format_ok) {
      return error_reply(call, 400, "ValidationException",
                         "Parameter value, " + value + ", is not in the format of an Amazon "
                         "Machine Image ID (ami-12345abcdeEXAMPLE).");
    }
  }
  if (p.versions_put < p.version) p.versions_put = p.version;
  v.version = ++p.versions_put;
  v.last_modified = ctx.now();
  if (v.data_type == "aws:ec2:image") {
    v.ready_at = ctx.after(1);
    p.pending.push_back(v);
  } else {
    p.value = v.value;
    p.type = v.type;
    p.data_type = v.data_type;
    p.description = v.description;
    p.version = v.version;
    p.last_modified = v.last_modified;
    p.history.push_back(v);
  }
  ctx.commit();
  return json_reply(call, {{"Version", v.version}, {"Tier", "Standard"}});
}

// DeleteParameter: the parameter and its history go; a parameter whose versions are
// still being validated goes too (its pending versions are dropped).
Reply delete_parameter(Context& ctx, const Call& call) {
  std::string name = call.json.value("Name", "");
  if (name.empty()) return error_reply(call, 400, "ValidationException", "Name is required");
  if (name.rfind("/aws/", 0) == 0 || name.rfind("aws", 0) == 0 || name.rfind("ssm", 0) == 0) {
    return error_reply(call, 400, "AccessDeniedException",
                       "User is not authorized to perform ssm:DeleteParameter on " + name);
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().parameters.find(name);
  if (it == ctx.world().parameters.end() || (!it->second.exists() && it->second.pending.empty()) ||
      ctx.hidden(name)) {
    return error_reply(call, 400, "ParameterNotFound", "Parameter " + name + " not found.");
  }
  ctx.world().parameters.erase(it);
  ctx.commit();
  return json_reply(call, nlohmann::json::object());
}

Reply get_parameter_history(Context& ctx, const Call& call) {
  std::string name = call.json.value("Name", "");
  int max = call.json.value("MaxResults", 50);
  if (max < 1 || max > 50) {
    return error_reply(call, 400, "ValidationException",
                       "1 validation error detected: Value '" + std::to_string(max) +
                           "' at 'maxResults' failed to satisfy constraint: Member must have value "
                           "less than or equal to 50");
  }
  size_t start = 0;
  std::string token = call.json.value("NextToken", "");
  if (!token.empty()) {
    if (token.rfind("emu-", 0) != 0) return error_reply(call, 400, "InvalidNextToken", "The token is invalid.");
    start = std::stoul(token.substr(4));
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto it = ctx.world().parameters.find(name);
  if (it == ctx.world().parameters.end() || !it->second.exists() || ctx.hidden(name)) {
    return error_reply(call, 400, "ParameterNotFound", "Parameter " + name + " not found.");
  }
  const Parameter& p = it->second;
  std::vector<ParameterVersion> versions = p.history;
  if (versions.empty()) {  // a catalog (public) parameter: its one version
    versions.push_back({p.version, p.value, p.type, p.data_type, p.description, p.last_modified, 0});
  }
  nlohmann::json list = nlohmann::json::array();
  size_t end = std::min(versions.size(), start + static_cast<size_t>(max));
  for (size_t i = start; i < end; ++i) {
    const auto& v = versions[i];
    list.push_back({{"Name", p.name}, {"Type", v.type}, {"Value", v.value}, {"Version", v.version},
                    {"LastModifiedDate", v.last_modified},
                    {"LastModifiedUser", std::string("arn:aws:iam::") + kAccountId + ":user/awsemu"},
                    {"Description", v.description}, {"Labels", nlohmann::json::array()},
                    {"Tier", "Standard"}, {"Policies", nlohmann::json::array()},
                    {"DataType", v.data_type}});
  }
  nlohmann::json out = {{"Parameters", list}};
  if (end < versions.size()) out["NextToken"] = "emu-" + std::to_string(end);
  return json_reply(call, out);
}

// ---- STS ----

Reply sts_reply(const Call& call, const std::string& inner) {
  Reply r;
  r.body = "<" + call.action + "Response xmlns=\"" + kStsNamespace + "\"><" + call.action +
           "Result>" + inner + "</" + call.action + "Result><ResponseMetadata><RequestId>" +
           call.request_id + "</RequestId></ResponseMetadata></" + call.action + "Response>";
  return r;
}

std::string random_text(Context& ctx, size_t n, const char* alphabet) {
  std::string bytes = ctx.random_bytes(n), out;
  size_t len = std::char_traits<char>::length(alphabet);
  for (unsigned char c : bytes) out += alphabet[c % len];
  return out;
}

Reply assume_role(Context& ctx, const Call& call, bool web_identity) {
  std::string role_arn = call.param("RoleArn");
  std::string session = call.param("RoleSessionName");
  if (role_arn.empty() || session.empty()) {
    return error_reply(call, 400, "ValidationError", "RoleArn and RoleSessionName are required");
  }
  if (role_arn.rfind("arn:aws:iam::", 0) != 0 || role_arn.find(":role/") == std::string::npos) {
    return error_reply(call, 400, "ValidationError", "RoleArn " + role_arn + " is not a role ARN");
  }
  if (web_identity && call.param("WebIdentityToken").size() < 4) {
    return error_reply(call, 400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider");
  }
  int duration = call.param("DurationSeconds").empty() ? 3600 : std::atoi(call.param("DurationSeconds").c_str());
  if (duration < 900 || duration > 43200) {
    return error_reply(call, 400, "ValidationError", "DurationSeconds must be between 900 and 43200");
  }
  std::string role_name = role_arn.substr(role_arn.find(":role/") + 6);
  std::string account = role_arn.substr(13, role_arn.find(':', 13) - 13);
  IssuedKey key;
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    key.access_key_id = "ASIA" + random_text(ctx, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    key.secret = random_text(ctx, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    key.session_token = "IQoJb3JpZ2luX2VjE" + random_text(ctx, 180, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    key.arn = "arn:aws:sts::" + account + ":assumed-role/" + role_name + "/" + session;
    key.expires = ctx.now() + duration;
    ctx.keys()[key.access_key_id] = key;
    ctx.commit();
  }
  Xml x;
  x.open("Credentials").leaf("AccessKeyId", key.access_key_id).leaf("SecretAccessKey", key.secret);
  x.leaf("SessionToken", key.session_token).leaf("Expiration", iso_time(key.expires)).close("Credentials");
  x.open("AssumedRoleUser").leaf("AssumedRoleId", "AROAAWSEMUROLE0000000:" + session).leaf("Arn", key.arn).close("AssumedRoleUser");
  if (web_identity) {
    x.leaf("SubjectFromWebIdentityToken", "awsemu-subject").leaf("Audience", "sts.amazonaws.com");
    x.leaf("Provider", call.param("ProviderId").empty() ? "awsemu" : call.param("ProviderId"));
  } else {
    x.number("PackedPolicySize", 0);
  }
  return sts_reply(call, x.str());
}

Reply get_caller_identity(Context& ctx, const Call& call) {
  std::string arn = std::string("arn:aws:iam::") + kAccountId + ":user/awsemu";
  std::string user_id = "AIDAAWSEMUTESTUSER000";
  if (call.access_key_id != ctx.options().access_key_id) {
    std::lock_guard<std::mutex> lock(ctx.mu());
    auto it = ctx.keys().find(call.access_key_id);
    if (it != ctx.keys().end()) {
      arn = it->second.arn;
      user_id = "AROAAWSEMUROLE0000000:" + arn.substr(arn.rfind('/') + 1);
    }
  }
  Xml x;
  x.leaf("Arn", arn).leaf("UserId", user_id).leaf("Account", kAccountId);
  return sts_reply(call, x.str());
}

}  // namespace

Reply handle_ssm(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "GetParameter") return get_parameter(ctx, call);
  if (a == "GetParameters") return get_parameters(ctx, call);
  if (a == "GetParametersByPath") return get_parameters_by_path(ctx, call);
  if (a == "PutParameter") return put_parameter(ctx, call);
  if (a == "GetParameterHistory") return get_parameter_history(ctx, call);
  if (a == "DeleteParameter") return delete_parameter(ctx, call);
  return error_reply(call, 400, "UnknownOperationException", "awsemu does not implement SSM " + a);
}

Reply handle_sts(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "GetCallerIdentity") return get_caller_identity(ctx, call);
  if (a == "AssumeRole") return assume_role(ctx, call, false);
  if (a == "AssumeRoleWithWebIdentity") return assume_role(ctx, call, true);
  return error_reply(call, 400, "InvalidAction", "Could not find operation " + a + " for version 2011-06-15");
}

}  // namespace amibake::emu
