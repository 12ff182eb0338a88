// IMDSv2 client: the instance metadata service, token first (PUT /latest/api/token
// with a TTL header), then GETs carrying the token.
//
// Bounded timeouts (1 s connect, 2 s total, 1 attempt per call plus one retry) so
// that off EC2 the answer "not on EC2" comes quickly. Disabled entirely by
// AWS_EC2_METADATA_DISABLED=true; the endpoint comes from
// AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "aws/http.h"
#include "base/result.h"

namespace amibake::aws {

class ImdsClient {
 public:
  struct Options {
    std::string endpoint;  // empty = AWS_EC2_METADATA_SERVICE_ENDPOINT or the default
    std::shared_ptr<Transport> transport;  // nullptr = libcurl
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds total_timeout{2000};
    int token_ttl_seconds = 21600;
    bool honour_disabled_env = true;  // AWS_EC2_METADATA_DISABLED
  };
  ImdsClient();
  explicit ImdsClient(Options options);

  // True when AWS_EC2_METADATA_DISABLED is "true" (any case) and honoured.
  bool disabled() const;
  const std::string& endpoint() const { return endpoint_; }

  // Returns the session token (cached until shortly before its TTL ends).
  Result<std::string> token();
  // Returns the body of GET /latest/<path> (path like "meta-data/instance-id").
  Result<std::string> get(const std::string& path);

  Result<std::string> instance_id();        // meta-data/instance-id
  Result<std::string> availability_zone();  // meta-data/placement/availability-zone
  Result<std::string> region();             // meta-data/placement/region

 private:
  Result<HttpResponse> fetch(const HttpRequest& request);
  Options options_;
  std::string endpoint_;
  std::mutex mu_;
  std::string token_;
  std::chrono::steady_clock::time_point token_expiry_;
};

}  // namespace amibake::aws
