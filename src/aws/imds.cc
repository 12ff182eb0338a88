// IMDSv2 client.
//
// Every call first needs a session token: PUT /latest/api/token with
// X-aws-ec2-metadata-token-ttl-seconds, then GETs with X-aws-ec2-metadata-token. The
// token is cached until 60 s before its TTL ends; a 401 on a GET (token expired or
// the instance was stopped and started) drops it and asks once more.
//
// Timeouts are short on purpose: "are we on EC2?" is asked by `amibake doctor` and
// by region/credential resolution on every laptop, and must not cost more than about
// a second there. IMDSv1 (GET without a token) is never used: the baked AMIs require
// IMDSv2 and so do we.
#include "aws/imds.h"

#include <algorithm>

#include "base/files.h"

namespace amibake::aws {
namespace {

constexpr const char* kDefaultEndpoint = "http://169.254.169.254";
constexpr const char* kDefaultEndpointV6 = "http://[fd00:ec2::254]";

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ImdsClient::ImdsClient() : ImdsClient(Options{}) {}

ImdsClient::ImdsClient(Options options) : options_(std::move(options)) {
  endpoint_ = options_.endpoint;
  if (endpoint_.empty()) endpoint_ = env_or("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint_.empty()) {
    endpoint_ = lower(env_or("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) == "ipv6"
                    ? kDefaultEndpointV6
                    : kDefaultEndpoint;
  }
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  if (!options_.transport) options_.transport = make_curl_transport();
}

bool ImdsClient::disabled() const {
  return options_.honour_disabled_env && lower(env_or("AWS_EC2_METADATA_DISABLED")) == "true";
}

Result<HttpResponse> ImdsClient::fetch(const HttpRequest& request) {
  HttpResult r = options_.transport->send(request);
  if (!r.ok()) {
    return make_error("IMDS " + r.error->message,
                      "not on EC2, or the instance metadata service is unreachable (hop limit, "
                      "firewall); set AWS_EC2_METADATA_DISABLED=true to skip it");
  }
  return r.response;
}

Result<std::string> ImdsClient::token() {
  if (disabled()) {
    return make_error("IMDS: disabled by AWS_EC2_METADATA_DISABLED",
                      "unset AWS_EC2_METADATA_DISABLED to use the instance metadata service");
  }
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!token_.empty() && now < token_expiry_) return token_;
  HttpRequest req;
  req.method = "PUT";
  req.url = endpoint_ + "/latest/api/token";
  req.headers = {
      {"X-aws-ec2-metadata-token-ttl-seconds", std::to_string(options_.token_ttl_seconds)}};
  req.timeouts.connect = options_.connect_timeout;
  req.timeouts.total = options_.total_timeout;
  AMIBAKE_ASSIGN(HttpResponse resp, fetch(req));
  if (resp.status != 200 || resp.body.empty()) {
    return make_error(
        "IMDS " + req.url + ": token request answered HTTP " + std::to_string(resp.status),
        resp.status == 403 ? "IMDS is disabled for this instance; enable it with "
                             "ModifyInstanceMetadataOptions"
                           : "check the instance metadata options (IMDSv2, hop limit)");
  }
  token_ = resp.body;
  int ttl = std::max(1, options_.token_ttl_seconds - 60);
  token_expiry_ = now + std::chrono::seconds(ttl);
  return token_;
}

Result<std::string> ImdsClient::get(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    AMIBAKE_ASSIGN(std::string tok, token());
    HttpRequest req;
    req.url = endpoint_ + "/latest/" + path;
    req.headers = {{"X-aws-ec2-metadata-token", tok}};
    req.timeouts.connect = options_.connect_timeout;
    req.timeouts.total = options_.total_timeout;
    AMIBAKE_ASSIGN(HttpResponse resp, fetch(req));
    if (resp.status == 401 && attempt == 0) {
      std::lock_guard lock(mu_);
      token_.clear();
      continue;
    }
    if (resp.status == 404) {
      return make_error("IMDS " + path + ": not found (HTTP 404)",
                        path.find("security-credentials") != std::string::npos
                            ? "attach an IAM role (instance profile) to this instance"
                            : "");
    }
    if (resp.status != 200) {
      return make_error("IMDS " + path + ": HTTP " + std::to_string(resp.status));
    }
    return resp.body;
  }
  return make_error("IMDS " + path + ": token rejected twice (HTTP 401)");
}

Result<std::string> ImdsClient::instance_id() { return get("meta-data/instance-id"); }
Result<std::string> ImdsClient::availability_zone() {
  return get("meta-data/placement/availability-zone");
}
Result<std::string> ImdsClient::region() { return get("meta-data/placement/region"); }

}  // namespace amibake::aws
