// AwsClient: the one object every service call goes through.
//
// It resolves the endpoint for a service, takes credentials from the provider
// chain, signs with SigV4, sends through the transport, classifies the answer
// and retries (the only retry layer in the program; DESIGN.md "retries").
// Service modules (ec2.cc, ssm.cc, ebs.cc, sts.cc) build an AwsRequest with their
// protocol's encoding and parse the body of a successful AwsResponse.
//
// Errors: a non-2xx answer becomes an Error whose message is
//   "<service> <Operation>: <AwsCode>: <AWS message> (HTTP <status>, request id <id>)"
// with aws_code/http_status/request_id set and, for permission errors, a hint
// naming the IAM action ("grant ec2:DescribeImages to ...").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "base/result.h"

namespace amibake::aws {

// How a service encodes requests and errors (botocore's "protocol").
enum class Protocol {
  kEc2,       // EC2 Query: form body, XML answers, <Response><Errors><Error>
  kQuery,     // STS Query: form body, XML answers, <ErrorResponse><Error>
  kJson,      // JSON 1.1 with X-Amz-Target (SSM)
  kRestJson,  // REST-JSON (EBS direct): errors as JSON with x-amzn-ErrorType
};

struct AwsRequest {
  std::string service;    // signing/endpoint name: "ec2", "ssm", "sts", "ebs"
  std::string operation;  // API operation name, for errors, IAM hints, faults: "DescribeImages"
  Protocol protocol = Protocol::kEc2;
  std::string method = "POST";
  std::string path = "/";  // already percent-encoded once
  std::string query;       // already encoded, without the leading '?'
  // Extra headers (X-Amz-Target, x-amz-Checksum...). Host, X-Amz-Date, Authorization
  // and the token are added by the client; Content-Type defaults per protocol when
  // absent (form encoding for EC2/Query, application/x-amz-json-1.1 for JSON).
  HeaderList headers;
  std::string body;
  bool unsigned_payload = false;  // sign with UNSIGNED-PAYLOAD (EBS PutSnapshotBlock)
  // Safe to resend after a reset or timeout whose outcome is unknown. Creates with a
  // client token, reads and deletes are; a create without a token is not.
  bool idempotent = true;
  // Send without signing (STS AssumeRoleWithWebIdentity). No credentials are needed.
  bool anonymous = false;
  // Per-request timeouts (EBS block transfers may want a longer total).
  std::optional<HttpTimeouts> timeouts;
  // Eventual consistency: codes meaning "not visible yet" just after a create
  // (e.g. "InvalidSnapshot.NotFound" right after CreateSnapshot). They are retried with
  // backoff until `consistency_window` of waiting is used up, on top of max_attempts
  // and without spending the retry quota. Empty = such codes are final.
  std::vector<std::string> consistency_codes;
  std::chrono::milliseconds consistency_window{15000};
};

struct AwsResponse {
  int status = 0;
  HeaderList headers;  // names as received
  std::string body;
  // Returns the first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// What an AWS error answer said, parsed from its body/headers per protocol.
struct AwsErrorInfo {
  std::string code;  // "InvalidAMIID.NotFound" (JSON "__type" without "prefix#")
  std::string message;
  std::string request_id;
  bool parsed = false;  // false when the body was empty, truncated or not the expected shape
};
// Parses an error answer. Never fails: a malformed body gives parsed = false.
AwsErrorInfo parse_aws_error(Protocol protocol, const AwsResponse& response);

// Returns the IAM action prefix for a signing name: "ec2", "ssm", "sts", "ebs".
std::string iam_prefix(std::string_view service);

// Builds the Error for a non-2xx answer: message, aws_code, http_status, request_id
// and a hint (missing IAM action for permission errors, credentials/clock for
// authentication errors).
Error make_aws_error(const AwsRequest& request, const AwsResponse& response);

class AwsClient {
 public:
  struct Options {
    std::string region;
    std::string region_source;  // where the region came from ("--region", "AWS_REGION", ...)
    // Default-constructed: https://<svc>.<region>.amazonaws.com, environment not read.
    EndpointResolver endpoints;
    std::string endpoint_override;  // when set, used for every service (tests, --endpoint-url)
    std::shared_ptr<CredentialsProvider> credentials;
    std::shared_ptr<Transport> transport;  // nullptr = libcurl
    RetrySettings retry;
    Sleeper sleeper;                    // nullptr = really sleep
    std::function<SystemTime()> clock;  // nullptr = system clock (signing time)
    std::function<double()> random;     // nullptr = uniform [0,1) (backoff jitter)
    // Share quota/limiter with other clients of the same (region, service). Tests that
    // count retries turn this off to get a private state.
    bool shared_retry_state = true;
    // At most this many requests of this client on the wire at once (others wait);
    // 0 = unlimited. Bounds sockets and memory when callers run many workers.
    int max_in_flight = 64;
    // Timeouts for requests that do not set their own (AwsRequest::timeouts).
    HttpTimeouts timeouts;
  };

  explicit AwsClient(Options options);

  // Test helper: a client for `region` sending every service to `endpoint_url`
  // (e.g. "http://127.0.0.1:PORT") with fixed credentials and the libcurl transport
  // unless `transport` is given.
  static std::unique_ptr<AwsClient> for_endpoint(std::string endpoint_url, Credentials credentials,
                                                 std::string region = "us-east-1",
                                                 std::shared_ptr<Transport> transport = nullptr);

  // Signs and sends `request` to its service's endpoint, retrying per the retry
  // settings (and request.consistency_codes), paced by the per-(region, service)
  // rate limiter. Credentials are asked for on every attempt, so a refresh during a
  // long retry is picked up. Returns the 2xx answer, or an Error built by
  // make_aws_error (AWS answers) or from the transport failure (no answer), whose
  // message ends with "(after N attempts)" when retries were spent.
  Result<AwsResponse> send(const AwsRequest& request);

  const std::string& region() const { return options_.region; }
  // Where the region came from, for `amibake doctor` ("" when set directly).
  const std::string& region_source() const { return options_.region_source; }
  // Returns the base URL used for `service`, without a trailing '/'.
  std::string endpoint(std::string_view service) const;
  // Returns where the endpoint for `service` came from.
  std::string endpoint_source(std::string_view service) const;
  CredentialsProvider& credentials() { return *options_.credentials; }
  const std::shared_ptr<Transport>& transport() const { return options_.transport; }
  // Current correction applied to the signing clock (server time - local time).
  std::chrono::seconds clock_skew() const { return std::chrono::seconds(skew_seconds_.load()); }

 private:
  // Per-call retry bookkeeping.
  struct CallState {
    int quota_taken = 0;
    bool skew_retried = false;
    bool refreshed = false;
    int consistency_retries = 0;
    std::chrono::milliseconds consistency_waited{0};
  };
  RetryState& retry_state(const std::string& service);
  // Gets credentials, waits for the rate limiter, signs and sends one attempt. Sets
  // *error (and sends nothing) when there are no credentials.
  HttpResult send_once(const AwsRequest& request, RetryState& state, int attempt,
                       std::string* credentials_source, Error* error);
  // True when the answer calls for an immediate retry that costs no attempt: expired
  // token (refresh credentials) or clock skew (re-sign with the server's time), once each.
  bool free_retry(const AwsResponse& response, const Error& error, CallState& call);
  // True after waiting when `error` is one of request.consistency_codes and the window
  // is not used up; appends how long it waited to `error` when it is.
  bool wait_for_consistency(const AwsRequest& request, CallState& call, Error& error);
  HttpRequest build_http_request(const AwsRequest& request, const Credentials* creds) const;
  // Records server time - local time from the Date header; true when it changed.
  bool note_clock_skew(const AwsResponse& response);

  Options options_;
  std::atomic<long long> skew_seconds_{0};
  std::mutex flight_mu_;
  std::condition_variable flight_cv_;
  int in_flight_ = 0;
  std::mutex state_mu_;
  std::map<std::string, std::shared_ptr<RetryState>> states_;
};

// Builds the program's client from flags and the environment: profile files, region
// (flags, env, profile, IMDS), endpoints, the default credentials chain, libcurl, and
// retry settings from AWS_RETRY_MODE/AWS_MAX_ATTEMPTS.
Result<std::unique_ptr<AwsClient>> make_client(const ClientSettings& settings);

}  // namespace amibake::aws
