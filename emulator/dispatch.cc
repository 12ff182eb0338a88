// From an HTTP request to a service reply: which service, which operation, is the
// signature right, is the operation denied, does a fault fire.
//
// One endpoint serves every service, as tooling pointed at a single --endpoint-url
// expects. The service is named by the SigV4 credential scope
// (".../us-east-1/ec2/aws4_request"); unsigned requests (IMDS, and STS
// AssumeRoleWithWebIdentity, which AWS accepts unsigned) are recognised by path and
// parameters. Signatures are checked with the project's one SigV4 implementation
// (src/aws/sigv4.h): the canonical request is rebuilt from the received request using
// exactly the headers named in SignedHeaders, then the signature is recomputed with the
// secret of the access key (the test identity, or a key issued by STS / IMDS).
#include <algorithm>
#include <cstring>
#include <ctime>

#include "aws/sigv4.h"
#include "emulator/dispatch.h"

namespace amibake::emu {
namespace {

namespace sigv4 = amibake::aws::sigv4;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Decodes application/x-www-form-urlencoded text ('+' is a space).
std::map<std::string, std::string> parse_form(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t amp = text.find('&', pos);
    if (amp == std::string::npos) amp = text.size();
    std::string item(text.substr(pos, amp - pos));
    if (!item.empty()) {
      std::replace(item.begin(), item.end(), '+', ' ');
      size_t eq = item.find('=');
      std::string key = sigv4::uri_decode(item.substr(0, eq));
      std::string value = eq == std::string::npos ? "" : sigv4::uri_decode(item.substr(eq + 1));
      out[key] = value;
    }
    pos = amp + 1;
  }
  return out;
}

Protocol protocol_of(const std::string& service) {
  if (service == "ec2") return Protocol::kEc2;
  if (service == "sts") return Protocol::kQuery;
  if (service == "ebs" || service == "batch") return Protocol::kRestJson;
  return Protocol::kJson;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Parses "20261125T073951Z" into epoch seconds.
bool parse_amz_date(const std::string& text, double* out) {
  struct tm tm_utc = {};
  if (text.size() != 16 || std::sscanf(text.c_str(), "%4d%2d%2dT%2d%2d%2dZ", &tm_utc.tm_year,
                                       &tm_utc.tm_mon, &tm_utc.tm_mday, &tm_utc.tm_hour,
                                       &tm_utc.tm_min, &tm_utc.tm_sec) != 6) {
    return false;
  }
  tm_utc.tm_year -= 1900;
  tm_utc.tm_mon -= 1;
  *out = static_cast<double>(timegm(&tm_utc));
  return true;
}

// The errors AWS gives for bad credentials, per protocol.
Reply auth_error(const Call& call, const std::string& what) {
  bool unknown_key = what == "unknown-key";
  bool expired = what == "expired";
  bool missing = what == "missing";
  if (what == "skew") {
    if (call.protocol == Protocol::kEc2) {
      return error_reply(call, 400, "RequestExpired", "Request has expired.");
    }
    return error_reply(call, call.protocol == Protocol::kJson ? 400 : 403,
                       call.protocol == Protocol::kQuery ? "SignatureDoesNotMatch"
                                                         : "InvalidSignatureException",
                       "Signature expired: the request's X-Amz-Date is more than 15 minutes "
                       "away from the server's time.");
  }
  switch (call.protocol) {
    case Protocol::kEc2:
      if (missing) {
        return error_reply(call, 401, "MissingParameter",
                           "The request must contain the parameter AWSAccessKeyId");
      }
      if (expired) return error_reply(call, 400, "RequestExpired", "Request has expired.");
      return error_reply(call, 401, "AuthFailure",
                         "AWS was not able to validate the provided access credentials");
    case Protocol::kQuery:
      if (missing) {
        return error_reply(call, 403, "MissingAuthenticationToken",
                           "Request is missing Authentication Token");
      }
      if (unknown_key) {
        return error_reply(call, 403, "InvalidClientTokenId",
                           "The security token included in the request is invalid.");
      }
      if (expired) return error_reply(call, 403, "ExpiredToken", "The security token included in the request is expired");
      break;
    case Protocol::kJson:
    case Protocol::kRestJson:
      if (missing) {
        return error_reply(call, 403, "MissingAuthenticationTokenException",
                           "Missing Authentication Token");
      }
      if (unknown_key) {
        return error_reply(call, call.protocol == Protocol::kJson ? 400 : 403,
                           "UnrecognizedClientException",
                           "The security token included in the request is invalid.");
      }
      if (expired) {
        return error_reply(call, 400, "ExpiredTokenException",
                           "The security token included in the request is expired");
      }
      break;
  }
  return error_reply(call, call.protocol == Protocol::kJson ? 400 : 403,
                     call.protocol == Protocol::kQuery ? "SignatureDoesNotMatch"
                                                       : "InvalidSignatureException",
                     "The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. Consult the "
                     "service documentation for details.");
}

}  // namespace

std::string service_from_authorization(const std::string& authorization) {
  sigv4::ParsedAuthorization parsed;
  if (!sigv4::parse_authorization(authorization, &parsed)) return "";
  return parsed.scope.service;
}

// The Batch operations by REST path (botocore batch 2016-08-10: POST /v1/<lower-case name>).
std::string batch_action(const std::string& method, const std::string& path) {
  static const char* kOps[] = {"CreateComputeEnvironment", "DescribeComputeEnvironments",
                               "UpdateComputeEnvironment", "DeleteComputeEnvironment"};
  if (method != "POST" || path.rfind("/v1/", 0) != 0) return "";
  for (const char* op : kOps) {
    if (lower(op) == path.substr(4)) return op;
  }
  return path.substr(4);  // unknown: the handler answers it
}

Result<Call> build_call(Context& ctx, const RawRequest& raw) {
  Call call;
  call.method = raw.method;
  call.path = raw.path;
  call.body = raw.body;
  call.request_id = ctx.new_request_id();
  for (const auto& [k, v] : raw.headers) call.headers[lower(k)] = v;
  size_t q = raw.target.find('?');
  std::string raw_query = q == std::string::npos ? "" : raw.target.substr(q + 1);
  call.query = parse_form(raw_query);

  std::string service = service_from_authorization(call.header("authorization"));
  {
    sigv4::ParsedAuthorization parsed;
    if (sigv4::parse_authorization(call.header("authorization"), &parsed)) {
      call.region = parsed.scope.region;
    }
  }
  std::string target = call.header("x-amz-target");
  if (service.empty()) {
    if (raw.path.rfind("/snapshots", 0) == 0) service = "ebs";
    else if (target.rfind("AmazonSSM.", 0) == 0) service = "ssm";
    else if (target.rfind("TrentService.", 0) == 0) service = "kms";
  }
  if (service == "ebs") {
    call.action = ebs_action(raw.method, raw.path);
    if (call.action == "StartSnapshot") {
      call.json = nlohmann::json::parse(raw.body.empty() ? std::string_view("{}") : raw.body, nullptr, false);
      if (call.json.is_discarded() || !call.json.is_object()) call.json = nlohmann::json::object();
    }
  } else if (service == "batch") {
    call.action = batch_action(raw.method, raw.path);
    call.json = nlohmann::json::parse(raw.body.empty() ? std::string_view("{}") : raw.body, nullptr, false);
    if (call.json.is_discarded() || !call.json.is_object()) call.json = nlohmann::json::object();
  } else if (!target.empty()) {
    if (service.empty()) service = "ssm";
    call.action = target.substr(target.find('.') + 1);
    call.json = nlohmann::json::parse(raw.body.empty() ? std::string_view("{}") : raw.body, nullptr, false);
    if (call.json.is_discarded()) call.json = nlohmann::json::object();
  } else {
    call.params = parse_form(raw.body);
    for (const auto& [k, v] : call.query) call.params.emplace(k, v);
    call.action = call.param("Action");
    if (service.empty()) {
      bool sts_action = call.action == "AssumeRoleWithWebIdentity" ||
                        call.action == "GetCallerIdentity" || call.action == "AssumeRole";
      service = sts_action ? "sts" : "ec2";
    }
  }
  call.service = service;
  call.protocol = protocol_of(service);
  return call;
}

std::optional<Reply> authenticate(Context& ctx, Call& call, const RawRequest& raw) {
  std::string authorization = call.header("authorization");
  if (authorization.empty()) {
    if (call.action == "AssumeRoleWithWebIdentity") return std::nullopt;  // unsigned on AWS
    if (!ctx.options().verify_signatures) return std::nullopt;
    return auth_error(call, "missing");
  }
  sigv4::ParsedAuthorization parsed;
  if (!sigv4::parse_authorization(authorization, &parsed)) {
    return error_reply(call, 400, call.protocol == Protocol::kEc2 ? "AuthFailure"
                                                                  : "IncompleteSignatureException",
                       "Authorization header requires 'Credential', 'Signature' and "
                       "'SignedHeaders' parameters.");
  }
  call.access_key_id = parsed.access_key_id;
  if (!ctx.options().verify_signatures) return std::nullopt;

  std::string secret, session_token;
  bool expired = false;
  if (parsed.access_key_id == ctx.options().access_key_id) {
    secret = ctx.options().secret_access_key;
  } else {
    std::lock_guard<std::mutex> lock(ctx.mu());
    auto it = ctx.keys().find(parsed.access_key_id);
    if (it == ctx.keys().end()) return auth_error(call, "unknown-key");
    secret = it->second.secret;
    session_token = it->second.session_token;
    expired = it->second.expires > 0 && it->second.expires < ctx.now();
  }
  if (expired) return auth_error(call, "expired");
  if (!session_token.empty() && call.header("x-amz-security-token") != session_token) {
    return auth_error(call, "unknown-key");
  }
  std::string amz_date = call.header("x-amz-date");
  double signed_at = 0;
  if (!parse_amz_date(amz_date, &signed_at)) return auth_error(call, "bad-signature");
  if (std::abs(signed_at - ctx.now()) > 15 * 60) return auth_error(call, "skew");

  sigv4::Request creq_in;
  creq_in.method = raw.method;
  size_t q = raw.target.find('?');
  creq_in.path = raw.target.substr(0, q);
  creq_in.query = q == std::string::npos ? "" : raw.target.substr(q + 1);
  for (const auto& name : parsed.signed_headers) {
    auto it = call.headers.find(name);
    if (it == call.headers.end()) return auth_error(call, "bad-signature");
    creq_in.headers.emplace_back(name, it->second);
  }
  // Payload hash: the declared one if any (checked against the body unless unsigned);
  // else the body's hash, or UNSIGNED-PAYLOAD for EBS block puts, whose body botocore
  // leaves unsigned without saying so in a header.
  std::string declared = call.header("x-amz-content-sha256");
  std::vector<std::string> candidates;
  if (!declared.empty()) {
    if (declared != sigv4::kUnsignedPayload && declared != aws::sha256_hex(raw.body)) {
      return error_reply(call, 400, "XAmzContentSHA256Mismatch",
                         "The provided 'x-amz-content-sha256' header does not match what was "
                         "computed.");
    }
    candidates.push_back(declared);
  } else if (call.action == "PutSnapshotBlock") {
    candidates.push_back(std::string(sigv4::kUnsignedPayload));
    candidates.push_back(aws::sha256_hex(raw.body));
  } else {
    candidates.push_back(aws::sha256_hex(raw.body));
  }
  for (const auto& hash : candidates) {
    creq_in.payload_hash = hash;
    std::string creq = sigv4::canonical_request(creq_in);
    std::string sts = sigv4::string_to_sign(amz_date, parsed.scope, creq);
    if (constant_time_equal(sigv4::signature(secret, parsed.scope, sts), parsed.signature)) {
      return std::nullopt;
    }
  }
  return auth_error(call, "bad-signature");
}

std::optional<Reply> check_denied(Context& ctx, const Call& call) {
  const auto& deny = ctx.options().deny;
  if (!deny.count(call.action) && !deny.count(call.service + ":" + call.action)) {
    return std::nullopt;
  }
  std::string who = std::string("arn:aws:iam::") + kAccountId + ":user/awsemu";
  std::string msg = "User: " + who + " is not authorized to perform: " + call.service + ":" +
                    call.action + " because no identity-based policy allows the " +
                    call.service + ":" + call.action + " action";
  switch (call.protocol) {
    case Protocol::kEc2:
      return error_reply(call, 403, "UnauthorizedOperation",
                         "You are not authorized to perform this operation. " + msg);
    case Protocol::kQuery: return error_reply(call, 403, "AccessDenied", msg);
    case Protocol::kJson: return error_reply(call, 400, "AccessDeniedException", msg);
    case Protocol::kRestJson:
      if (call.service == "batch") return error_reply(call, 403, "AccessDeniedException", msg);
      return error_reply(call, 403, "AccessDeniedException", msg,
                         {{"Reason", "UNAUTHORIZED_ACCOUNT"}});
  }
  return std::nullopt;
}

Reply fault_reply(const Call& call, Fault fault, uint64_t sequence) {
  if (fault == Fault::kThrottle) {
    switch (call.protocol) {
      case Protocol::kEc2: return error_reply(call, 503, "RequestLimitExceeded", "Request limit exceeded.");
      case Protocol::kQuery: return error_reply(call, 400, "Throttling", "Rate exceeded");
      case Protocol::kJson: return error_reply(call, 400, "ThrottlingException", "Rate exceeded");
      case Protocol::kRestJson:
        if (call.service == "batch") {
          return error_reply(call, 429, "TooManyRequestsException", "Too Many Requests");
        }
        return error_reply(call, 400, "RequestThrottledException", "Rate exceeded",
                           {{"Reason", "ACCOUNT_THROTTLED"}});
    }
  }
  // 5xx: alternate between 500 and 503 so clients see both.
  bool unavailable = sequence % 2 == 1;
  switch (call.protocol) {
    case Protocol::kEc2:
      return unavailable ? error_reply(call, 503, "Unavailable", "The server is overloaded.")
                         : error_reply(call, 500, "InternalError",
                                       "An internal error has occurred.");
    case Protocol::kQuery:
      return error_reply(call, unavailable ? 503 : 500,
                         unavailable ? "ServiceUnavailable" : "InternalFailure",
                         "awsemu: injected server error");
    case Protocol::kJson:
      return error_reply(call, unavailable ? 503 : 500,
                         unavailable ? "ServiceUnavailable" : "InternalServerError",
                         "awsemu: injected server error");
    case Protocol::kRestJson:
      if (call.service == "batch") {
        return error_reply(call, unavailable ? 503 : 500,
                           unavailable ? "ServiceUnavailableException" : "ServerException",
                           "awsemu: injected server error");
      }
      return error_reply(call, unavailable ? 503 : 500,
                         unavailable ? "ServiceUnavailableException" : "InternalServerException",
                         "awsemu: injected server error");
  }
  return error_reply(call, 500, "InternalError", "awsemu: injected server error");
}

Reply route(Context& ctx, Call& call) {
  Context::RegionScope region(call.region);
  if (call.service == "ec2") return handle_ec2(ctx, call);
  if (call.service == "batch") return handle_batch(ctx, call);
  if (call.service == "ssm") return handle_ssm(ctx, call);
  if (call.service == "kms") return handle_kms(ctx, call);
  if (call.service == "sts") return handle_sts(ctx, call);
  if (call.service == "ebs") return handle_ebs(ctx, call);
  return error_reply(call, 400, "UnknownService",
                     "awsemu does not serve service \"" + call.service + "\"");
}

}  // namespace amibake::emu
