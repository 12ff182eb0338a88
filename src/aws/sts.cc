// STS over the Query protocol: form-encoded POST, XML answers.
//
// AssumeRoleWithWebIdentity is the one call sent unsigned (the web identity token is
// the proof), which is how CI systems log in without any AWS keys at all.
#include "aws/sts.h"

#include <pugixml.hpp>

#include "aws/query.h"
#include "aws/sigv4.h"

namespace amibake::aws::sts {
namespace {

constexpr const char* kVersion = "2011-06-15";

AwsRequest query_request(const std::string& operation,
                         const std::vector<std::pair<std::string, std::string>>& params) {
  QueryForm form(operation, kVersion);
  for (const auto& [k, v] : params) form.add(k, v);
  AwsRequest r;
  r.service = "sts";
  r.operation = operation;
  r.protocol = Protocol::kQuery;
  r.method = "POST";
  r.body = form.encode();
  return r;
}

std::string session_name(const std::string& given) {
  if (!given.empty()) return given;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  return "amibake-" + std::to_string(secs);
}

Error unreadable(const std::string& operation, const std::string& why) {
  return make_error("sts " + operation + ": unreadable answer: " + why,
                    "the STS endpoint answered something that is not an STS response; check "
                    "the endpoint URL (AWS_ENDPOINT_URL_STS, --endpoint-url)");
}

}  // namespace

Result<CallerIdentity> get_caller_identity(AwsClient& client) {
  AMIBAKE_ASSIGN(AwsResponse resp, client.send(query_request("GetCallerIdentity", {})));
  pugi::xml_document doc;
  if (!doc.load_buffer(resp.body.data(), resp.body.size())) {
    return unreadable("GetCallerIdentity", "malformed XML");
  }
  pugi::xml_node result = doc.child("GetCallerIdentityResponse").child("GetCallerIdentityResult");
  CallerIdentity id;
  id.account = result.child("Account").text().as_string();
  id.arn = result.child("Arn").text().as_string();
  id.user_id = result.child("UserId").text().as_string();
  if (id.account.empty() || id.arn.empty()) {
    return unreadable("GetCallerIdentity", "no Account/Arn in the answer");
  }
  return id;
}

Result<Credentials> parse_credentials_xml(const std::string& body,
                                          const std::string& result_element) {
  std::string op = result_element.substr(0, result_element.size() - 6);  // drop "Result"
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return unreadable(op, "malformed XML");
  pugi::xml_node creds = doc.document_element().child(result_element.c_str()).child("Credentials");
  if (!creds) return unreadable(op, "no " + result_element + "/Credentials element");
  Credentials c;
  c.access_key_id = creds.child("AccessKeyId").text().as_string();
  c.secret_access_key = creds.child("SecretAccessKey").text().as_string();
  c.session_token = creds.child("SessionToken").text().as_string();
  c.register_secrets();
  std::string exp = creds.child("Expiration").text().as_string();
  SystemTime t;
  if (!exp.empty()) {
    if (!parse_iso8601(exp, &t)) return unreadable(op, "Expiration \"" + exp + "\" is not a time");
    c.expiration = t;
  }
  if (c.empty() || c.session_token.empty()) return unreadable(op, "incomplete Credentials");
  return c;
}

Result<Credentials> assume_role(AwsClient& client, const AssumeRoleRequest& request) {
  std::vector<std::pair<std::string, std::string>> params = {
      {"RoleArn", request.role_arn}, {"RoleSessionName", session_name(request.role_session_name)}};
  if (!request.external_id.empty()) params.emplace_back("ExternalId", request.external_id);
  if (request.duration_seconds > 0) {
    params.emplace_back("DurationSeconds", std::to_string(request.duration_seconds));
  }
  if (!request.serial_number.empty()) {
    params.emplace_back("SerialNumber", request.serial_number);
    params.emplace_back("TokenCode", request.token_code);
  }
  AwsRequest r = query_request("AssumeRole", std::move(params));
  AMIBAKE_ASSIGN(AwsResponse resp, client.send(r));
  AMIBAKE_ASSIGN(Credentials c, parse_credentials_xml(resp.body, "AssumeRoleResult"));
  c.source = "assume-role " + request.role_arn;
  return c;
}

Result<Credentials> assume_role_with_web_identity(AwsClient& client,
                                                  const WebIdentityRequest& request) {
  std::vector<std::pair<std::string, std::string>> params = {
      {"RoleArn", request.role_arn},
      {"RoleSessionName", session_name(request.role_session_name)},
      {"WebIdentityToken", request.web_identity_token}};
  if (request.duration_seconds > 0) {
    params.emplace_back("DurationSeconds", std::to_string(request.duration_seconds));
  }
  AwsRequest r = query_request("AssumeRoleWithWebIdentity", std::move(params));
  r.anonymous = true;
  AMIBAKE_ASSIGN(AwsResponse resp, client.send(r));
  AMIBAKE_ASSIGN(Credentials c,
                 parse_credentials_xml(resp.body, "AssumeRoleWithWebIdentityResult"));
  c.source = "web identity " + request.role_arn;
  return c;
}

}  // namespace amibake::aws::sts
