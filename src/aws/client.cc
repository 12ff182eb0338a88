// AwsClient: endpoint, credentials, signing, transport, error parsing and the one
// retry loop of the program.
//
// The retry loop follows the SDKs' standard mode (retry.h): every failed attempt is
// classified (throttle / transient / timeout / not retryable); a retry costs tokens
// from the quota shared by all clients of the same region and service, and waits a
// full-jitter exponential backoff. A rate limiter per (region, service), shared
// the same way, spaces out sends below the service's own throttling bucket; in
// adaptive mode it also slows down when the service throttles. Codes a request
// marks as eventual consistency ("NotFound just after create") are retried for a
// bounded time window outside the attempt budget.
//
// Expired tokens: when the service says the session token expired (before the
// expiry it announced, or the machine slept), the provider's cache is dropped and
// the call retried once with fresh credentials.
//
// Clock skew: a wrong local clock makes every signature invalid. When the service
// says so (RequestTimeTooSkewed, RequestExpired, InvalidSignatureException, ...) and
// its Date header differs from our clock by more than 4 minutes, we remember the
// difference and re-sign with the corrected time; that retry is free, once per call.
//
// Concurrency: a client may be shared by many worker threads (EBS block transfers);
// Options::max_in_flight caps how many of its requests are on the wire at once, and
// the transport keeps one connection per thread.
//
// Errors are parsed per protocol; a body that is empty, truncated or not what the
// protocol promises still gives a clear error naming the HTTP status (never a crash:
// pugixml and nlohmann::json are used in their non-throwing forms).
#include "aws/client.h"

#include "base/files.h"

#include <ctime>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <random>

#include "aws/sigv4.h"
#include "base/log.h"

namespace amibake::aws {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string child_text(const pugi::xml_node& node, const char* name) {
  return node.child(name).text().as_string();
}

// EC2: <Response><Errors><Error>..</Error></Errors><RequestID>; Query:
// <ErrorResponse><Error>..</Error><RequestId>. Emulators mix the two (moto sends
// <ErrorResponse><Errors><Error>), so both shapes are accepted under both roots.
void parse_xml_error(const std::string& body, AwsErrorInfo* info) {
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return;
  pugi::xml_node root = doc.document_element();
  std::string_view name = root.name();
  pugi::xml_node error;
  if (name == "Response" || name == "ErrorResponse") {
    error = root.child("Errors").child("Error");
    if (!error) error = root.child("Error");
  } else if (name == "Error") {  // S3-style, some emulators
    error = root;
  }
  if (!error) return;
  for (const char* id : {"RequestID", "RequestId"}) {
    if (info->request_id.empty()) info->request_id = child_text(root, id);
  }
  if (info->request_id.empty()) {
    info->request_id = child_text(root.child("ResponseMetadata"), "RequestId");
  }
  info->code = child_text(error, "Code");
  info->message = child_text(error, "Message");
  info->parsed = !info->code.empty();
}

std::string json_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void parse_json_error(const AwsResponse& response, AwsErrorInfo* info) {
  // REST-JSON puts the code in a header: "AccessDeniedException:http://internal..."
  std::string type = response.header("x-amzn-ErrorType");
  nlohmann::json j = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (type.empty()) type = json_string(j, "__type");
    if (type.empty()) type = json_string(j, "code");
    if (type.empty()) type = json_string(j, "Code");
    info->message = json_string(j, "message");
    if (info->message.empty()) info->message = json_string(j, "Message");
  }
  if (size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
  if (size_t hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  info->code = type;
  info->parsed = !type.empty();
}

bool is_permission_code(std::string_view c) {
  return c == "AccessDenied" || c == "AccessDeniedException" || c == "UnauthorizedOperation" ||
         c == "UnauthorizedAccess" || c == "AuthorizationError" ||
         c == "AuthorizationErrorException";
}

bool is_bad_credentials_code(std::string_view c) {
  return c == "AuthFailure" || c == "InvalidClientTokenId" || c == "SignatureDoesNotMatch" ||
         c == "UnrecognizedClientException" || c == "ExpiredToken" ||
         c == "ExpiredTokenException" || c == "InvalidAccessKeyId" || c == "IncompleteSignature" ||
         c == "MissingAuthenticationToken" || c == "InvalidSignatureException" ||
         c == "RequestExpired" || c == "RequestTimeTooSkewed" || c == "InvalidToken";
}

std::string format_amz_date(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// Parses an RFC 1123 date ("Wed, 25 Nov 2026 07:38:45 GMT"); false when malformed.
bool parse_http_date(const std::string& text, SystemTime* out) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (!end) return false;
  *out = std::chrono::system_clock::from_time_t(timegm(&tm));
  return true;
}

std::string default_content_type(Protocol p) {
  switch (p) {
    case Protocol::kEc2:
    case Protocol::kQuery:
      return "application/x-www-form-urlencoded; charset=utf-8";
    case Protocol::kJson:
      return "application/x-amz-json-1.1";
    case Protocol::kRestJson:
      return "";
  }
  return "";
}

Error transport_error(const AwsRequest& request, const TransportError& t) {
  Error e = make_error(request.service + " " + request.operation + ": " + t.message, t.hint);
  return e;
}

}  // namespace

std::string AwsResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

AwsErrorInfo parse_aws_error(Protocol protocol, const AwsResponse& response) {
  AwsErrorInfo info;
  if (protocol == Protocol::kJson || protocol == Protocol::kRestJson) {
    parse_json_error(response, &info);
  } else {
    parse_xml_error(response.body, &info);
  }
  if (info.request_id.empty()) info.request_id = response.header("x-amzn-RequestId");
  if (info.request_id.empty()) info.request_id = response.header("x-amz-request-id");
  return info;
}

std::string iam_prefix(std::string_view service) {
  // Signing names and IAM prefixes agree for the services we call (EBS direct's
  // IAM prefix is "ebs", like its signing name).
  return std::string(service);
}

static Error make_aws_error_from(const AwsRequest& request, const AwsResponse& response,
                                 const std::string& credentials_source) {
  AwsErrorInfo info = parse_aws_error(request.protocol, response);
  std::string subject = request.service + " " + request.operation;
  std::string status = "HTTP " + std::to_string(response.status);
  std::string tail =
      "(" + status + (info.request_id.empty() ? "" : ", request id " + info.request_id) + ")";
  Error e;
  if (info.parsed) {
    e.message = subject + ": " + info.code + ": " +
                (info.message.empty() ? "(no message)" : info.message) + " " + tail;
  } else {
    std::string snippet = response.body.substr(0, 200);
    for (char& c : snippet) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    e.message = subject + ": " + status + " with an unreadable error answer" +
                (snippet.empty() ? " (empty body)" : ": \"" + snippet + "\"") +
                (info.request_id.empty() ? "" : " (request id " + info.request_id + ")");
  }
  e.aws_code = info.code;
  e.http_status = response.status;
  e.request_id = info.request_id;
  std::string who =
      credentials_source.empty() ? "" : " (credentials from " + credentials_source + ")";
  if (is_permission_code(info.code)) {
    e.hint = "grant " + iam_prefix(request.service) + ":" + request.operation +
             " to the identity in use" + who;
    if (info.code == "UnauthorizedOperation") {
      e.hint += "; `aws sts decode-authorization-message` explains an encoded message";
    }
  } else if (is_bad_credentials_code(info.code)) {
    e.hint = "the credentials were rejected" + who +
             ": check the access key and secret, renew expired session credentials, and make "
             "sure this machine's clock is correct (timedatectl)";
  } else if (is_throttling_code(info.code)) {
    e.hint = "the service is throttling requests; retry later, or raise AWS_MAX_ATTEMPTS";
  } else if (response.status >= 500) {
    e.hint = "the service had an internal problem; retry later";
  }
  return e;
}

Error make_aws_error(const AwsRequest& request, const AwsResponse& response) {
  return make_aws_error_from(request, response, "");
}

AwsClient::AwsClient(Options options) : options_(std::move(options)) {
  if (!options_.transport) options_.transport = make_curl_transport();
  if (!options_.sleeper) options_.sleeper = real_sleeper();
  if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
  if (!options_.random) {
    options_.random = [] {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    };
  }
  if (options_.endpoints.region().empty()) options_.endpoints = EndpointResolver(options_.region);
  if (!options_.endpoint_override.empty())
    options_.endpoints.set_override(options_.endpoint_override);
}

std::unique_ptr<AwsClient> AwsClient::for_endpoint(std::string endpoint_url,
                                                   Credentials credentials, std::string region,
                                                   std::shared_ptr<Transport> transport) {
  Options o;
  o.region = std::move(region);
  o.endpoint_override = std::move(endpoint_url);
  o.credentials = std::make_shared<StaticCredentialsProvider>(std::move(credentials));
  o.transport = std::move(transport);
  return std::make_unique<AwsClient>(std::move(o));
}

std::string AwsClient::endpoint(std::string_view service) const {
  return options_.endpoints.endpoint(service);
}

std::string AwsClient::endpoint_source(std::string_view service) const {
  return options_.endpoints.endpoint_source(service);
}

RetryState& AwsClient::retry_state(const std::string& service) {
  std::lock_guard lock(state_mu_);
  auto& slot = states_[service];
  if (!slot) {
    if (options_.shared_retry_state) {
      slot = shared_retry_state(options_.region, service, options_.retry);
    } else {
      slot = make_retry_state(service, options_.retry);
    }
  }
  return *slot;
}

HttpRequest AwsClient::build_http_request(const AwsRequest& request,
                                          const Credentials* creds) const {
  std::string base = endpoint(request.service);
  UrlParts url;
  split_url(base, &url);  // validity is checked by the transport's URL policy
  std::string base_path = url.path == "/" ? "" : url.path;
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (!url.port.empty() && !((url.scheme == "https" && url.port == "443") ||
                             (url.scheme == "http" && url.port == "80"))) {
    host += ":" + url.port;
  }
  sigv4::Request sreq;
  sreq.method = request.method;
  sreq.path = base_path + (request.path.empty() ? "/" : request.path);
  sreq.query = request.query;
  sreq.headers.emplace_back("Host", host);
  bool has_ct = false;
  for (const auto& h : request.headers) {
    if (iequals(h.first, "content-type")) has_ct = true;
    sreq.headers.push_back(h);
  }
  std::string ct = default_content_type(request.protocol);
  if (!has_ct && !ct.empty() && request.method != "GET")
    sreq.headers.emplace_back("Content-Type", ct);
  sreq.payload_hash =
      request.unsigned_payload ? std::string(sigv4::kUnsignedPayload) : sha256_hex(request.body);
  if (creds) {
    SystemTime now = options_.clock() + std::chrono::seconds(skew_seconds_.load());
    std::string amz_date = format_amz_date(now);
    sigv4::Scope scope{amz_date.substr(0, 8), options_.region, request.service};
    sigv4::sign(sreq, *creds, scope, amz_date);
  }
  HttpRequest http;
  http.method = request.method;
  http.url = url.scheme + "://" + host + sreq.path + (sreq.query.empty() ? "" : "?" + sreq.query);
  http.headers = std::move(sreq.headers);
  http.body = request.body;
  http.timeouts = request.timeouts ? *request.timeouts : options_.timeouts;
  http.idempotent = request.idempotent;
  return http;
}

bool AwsClient::note_clock_skew(const AwsResponse& response) {
  SystemTime server;
  if (!parse_http_date(response.header("Date"), &server)) return false;
  auto skew = std::chrono::duration_cast<std::chrono::seconds>(server - options_.clock());
  if (std::chrono::abs(skew) < std::chrono::minutes(4)) return false;
  long long old = skew_seconds_.exchange(skew.count());
  return std::llabs(old - skew.count()) >= 60;
}

bool AwsClient::free_retry(const AwsResponse& response, const Error& error, CallState& call) {
  if ((error.aws_code == "ExpiredToken" || error.aws_code == "ExpiredTokenException") &&
      !call.refreshed && options_.credentials) {
    call.refreshed = true;  // the token died early: fetch fresh credentials, retry once
    options_.credentials->invalidate();
    return true;
  }
  if (is_clock_skew_code(error.aws_code) && !call.skew_retried && note_clock_skew(response)) {
    call.skew_retried = true;  // re-sign with the corrected clock, once
    return true;
  }
  return false;
}

bool AwsClient::wait_for_consistency(const AwsRequest& request, CallState& call, Error& error) {
  const auto& codes = request.consistency_codes;
  if (error.aws_code.empty() ||
      std::find(codes.begin(), codes.end(), error.aws_code) == codes.end()) {
    return false;
  }
  if (call.consistency_waited >= request.consistency_window) {
    error.message += " (still after waiting " +
                     std::to_string(call.consistency_waited.count() / 1000) +
                     " s for it to appear)";
    return false;
  }
  ++call.consistency_retries;
  auto delay = backoff_delay(options_.retry, RetryClass::kTransient, call.consistency_retries,
                             options_.random());
  delay = std::max(delay, std::chrono::milliseconds(50));
  delay = std::min(delay, request.consistency_window - call.consistency_waited);
  call.consistency_waited += delay;
  log::debug(request.service + " " + request.operation + ": " + error.aws_code +
             " (eventual consistency), retrying in " + std::to_string(delay.count()) + " ms");
  options_.sleeper(delay);
  return true;
}

HttpResult AwsClient::send_once(const AwsRequest& request, RetryState& state, int attempt,
                                std::string* credentials_source, Error* error) {
  std::optional<Credentials> creds;
  if (!request.anonymous) {
    auto c = options_.credentials ? options_.credentials->get()
                                  : Result<Credentials>(make_error("no credentials provider"));
    if (!c) {
      *error = c.error().wrap(request.service + " " + request.operation);
      return {};
    }
    creds = std::move(*c);
    *credentials_source = creds->source;
  }
  if (state.limiter) {
    if (auto wait = state.limiter->acquire(); wait.count() > 0) options_.sleeper(wait);
  }
  HttpRequest http = build_http_request(request, creds ? &*creds : nullptr);
  log::debug(request.service + " " + request.operation + ": " + http.method + " " + http.url +
             " (attempt " + std::to_string(attempt) +
             (creds ? ", credentials from " + creds->source : ", unsigned") + ")");
  if (options_.max_in_flight <= 0) return options_.transport->send(http);
  {
    std::unique_lock lock(flight_mu_);
    flight_cv_.wait(lock, [&] { return in_flight_ < options_.max_in_flight; });
    ++in_flight_;
  }
  HttpResult r = options_.transport->send(http);
  {
    std::lock_guard lock(flight_mu_);
    --in_flight_;
  }
  flight_cv_.notify_one();
  return r;
}

Result<AwsResponse> AwsClient::send(const AwsRequest& request) {
  RetryState& state = retry_state(request.service);
  const int max_attempts = std::max(1, options_.retry.max_attempts);
  const bool adaptive = options_.retry.mode == RetryMode::kAdaptive;
  CallState call;
  for (int attempt = 1;; ++attempt) {
    Error last;
    std::string creds_source;
    HttpResult r = send_once(request, state, attempt, &creds_source, &last);
    if (!last.message.empty()) return last;  // no credentials: nothing was sent
    AttemptFailure failure;
    if (r.ok() && r.response.status >= 200 && r.response.status < 300) {
      if (options_.retry.use_quota) state.quota.release(call.quota_taken);
      if (state.limiter && adaptive) state.limiter->on_success();
      return AwsResponse{r.response.status, std::move(r.response.headers),
                         std::move(r.response.body)};
    }
    if (!r.ok()) {
      failure.transport = r.error->kind;
      last = transport_error(request, *r.error);
    } else {
      AwsResponse resp{r.response.status, std::move(r.response.headers),
                       std::move(r.response.body)};
      last = make_aws_error_from(request, resp, creds_source);
      failure.http_status = resp.status;
      failure.aws_code = last.aws_code;
      if (free_retry(resp, last, call)) {
        --attempt;
        continue;
      }
    }
    if (wait_for_consistency(request, call, last)) {
      --attempt;
      continue;
    }
    RetryClass cls = classify(failure, request.idempotent);
    if (cls == RetryClass::kNo) return last;
    if (cls == RetryClass::kThrottle && state.limiter && adaptive) state.limiter->on_throttle();
    if (attempt >= max_attempts) {
      if (max_attempts > 1) last.message += " (after " + std::to_string(attempt) + " attempts)";
      return last;
    }
    if (options_.retry.use_quota && !state.quota.acquire(cls, &call.quota_taken)) {
      last.message += " (not retried: retry quota exhausted by earlier failures)";
      return last;
    }
    auto delay = backoff_delay(options_.retry, cls, attempt, options_.random());
    log::debug(request.service + " " + request.operation + ": attempt " + std::to_string(attempt) +
               " failed (" + (last.aws_code.empty() ? "no answer" : last.aws_code) +
               "), retrying in " + std::to_string(delay.count()) + " ms");
    options_.sleeper(delay);
  }
}

}  // namespace amibake::aws

namespace amibake::aws {

Result<std::unique_ptr<AwsClient>> make_client(const ClientSettings& settings) {
  AMIBAKE_ASSIGN(ProfileFiles files, ProfileFiles::load());
  std::string profile = selected_profile(settings);
  const ProfileSection* section = files.find(profile);
  if (!section && profile_explicit(settings)) {
    std::string known;
    for (const auto& n : files.names()) known += (known.empty() ? "" : ", ") + n;
    return make_error("profile \"" + profile + "\": not found in " + files.config_path() + " or " +
                          files.credentials_path(),
                      known.empty() ? "create it with `aws configure --profile " + profile + "`"
                                    : "known profiles: " + known);
  }
  AMIBAKE_ASSIGN(RegionAnswer region, resolve_region(settings, files));
  AMIBAKE_ASSIGN(RetrySettings retry, retry_settings_from_env());
  if (settings.default_max_attempts && env_or("AWS_MAX_ATTEMPTS").empty()) {
    retry.max_attempts = *settings.default_max_attempts;
  }
  AwsClient::Options o;
  o.region = region.region;
  o.region_source = region.source;
  std::string services_name = section && section->count("services") ? section->at("services") : "";
  o.endpoints = EndpointResolver(region.region, settings, section, files.services_of(profile),
                                 services_name);
  // ca_bundle: AWS_CA_BUNDLE wins (read by the transport on every request), else the
  // profile's, so TLS through a re-signing proxy verifies against the proxy's CA.
  std::string ca_bundle = section && section->count("ca_bundle") ? section->at("ca_bundle") : "";
  if (ca_bundle.rfind("~/", 0) == 0) ca_bundle = env_or("HOME") + ca_bundle.substr(1);
  o.transport = make_curl_transport(ca_bundle);
  o.retry = retry;
  CredentialsOptions co;
  co.profile = settings.profile.value_or("");
  co.profile_from_flag = settings.profile.has_value() && !settings.profile->empty();
  co.region = region.region;
  // STS calls made for role credentials go where this client sends STS calls,
  // unless that is the default AWS endpoint (then the role provider resolves it).
  if (o.endpoints.endpoint_source("sts") != "default")
    co.sts_endpoint = o.endpoints.endpoint("sts");
  co.transport = o.transport;
  co.mfa_code = settings.mfa_code.value_or("");
  AMIBAKE_ASSIGN(std::unique_ptr<CredentialsProvider> creds, make_default_credentials_provider(co));
  o.credentials = std::move(creds);
  return std::make_unique<AwsClient>(std::move(o));
}

}  // namespace amibake::aws
