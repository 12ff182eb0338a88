// Retries: the program's only retry layer, used by AwsClient (DESIGN.md "retries").
//
// Follows the AWS SDKs' "standard" mode: up to 3 attempts, exponential backoff with
// full jitter capped at 20 s, a retry quota (token bucket) so a failing endpoint is
// not hammered, and what is retryable decided by tables. A client-side send-rate
// limiter per (region, service) keeps parallel work under the services' throttling
// buckets; "adaptive" also lowers its rate on throttling. "legacy" is accepted
// (5 attempts, no quota). Sleeping and randomness are injectable for tests.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "aws/http.h"
#include "base/result.h"

namespace amibake::aws {

enum class RetryMode { kStandard, kLegacy, kAdaptive };

struct RetrySettings {
  RetryMode mode = RetryMode::kStandard;
  int max_attempts = 3;                                // total attempts, first included
  std::chrono::milliseconds base_delay{100};           // transient errors
  std::chrono::milliseconds throttle_base_delay{500};  // throttling errors
  std::chrono::milliseconds max_backoff{20000};
  bool use_quota = true;  // standard/adaptive: retry quota token bucket
  // Client-side request rate per (region, service), requests per second. Unset = the
  // per-service default (default_send_rate); 0 = unlimited. Adaptive mode also lowers
  // it on throttling and raises it back on success.
  std::optional<double> max_send_rate;
};

// Per-service default send rate and burst, sized below the services' own throttling
// buckets so parallel work does not throttle itself (EC2 non-mutating API bucket:
// 100 burst, 20/s refill; SSM GetParameter: 40/s; EBS direct: 1000 requests/s per
// account). rate 0 = unlimited.
struct SendRate {
  double rate = 0;
  double burst = 0;
};
SendRate default_send_rate(std::string_view service);

// Returns settings from AWS_RETRY_MODE and AWS_MAX_ATTEMPTS (SDK semantics), or an
// error naming the bad value.
Result<RetrySettings> retry_settings_from_env();

// Classification tables (public so services and tests share them).
bool is_throttling_code(std::string_view aws_code);
bool is_transient_status(int http_status);          // 500, 502, 503, 504
bool is_transient_code(std::string_view aws_code);  // RequestTimeout, InternalError, ...
bool is_clock_skew_code(std::string_view aws_code);

// What went wrong with one attempt, as the retry logic sees it.
struct AttemptFailure {
  std::optional<TransportErrorKind> transport;  // set when there was no HTTP answer
  int http_status = 0;
  std::string aws_code;
};
enum class RetryClass { kNo, kTransient, kThrottle, kTimeout };
// Returns how a failure is retried; `idempotent` = safe to resend after an unknown outcome.
RetryClass classify(const AttemptFailure& failure, bool idempotent);

// Backoff for retry number `retry` (1 = first retry): random(0,1) * min(base*2^(retry-1), max).
std::chrono::milliseconds backoff_delay(const RetrySettings& s, RetryClass cls, int retry,
                                        double random01);

// The standard mode's retry quota: 500 tokens, a retry costs 5 (10 after a timeout),
// a success gives back what its retry cost, or 1 when it needed none.
class RetryQuota {
 public:
  explicit RetryQuota(int capacity = 500) : capacity_(capacity), available_(capacity) {}
  // Takes the cost of one retry; false when the quota is exhausted (do not retry).
  bool acquire(RetryClass cls, int* taken);
  // Records a successful attempt that had taken `taken` tokens for its retries.
  void release(int taken);
  int available() const;

 private:
  mutable std::mutex mu_;
  int capacity_;
  int available_;
};

// Token bucket limiting the send rate. rate = tokens/s; burst = bucket size.
// acquire() returns how long the caller must wait before sending (zero if none).
class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  RateLimiter(double rate, double burst, Clock clock = nullptr);
  std::chrono::milliseconds acquire();
  void on_throttle();  // adaptive: multiplicative decrease (x0.7, floor 0.5/s)
  void on_success();   // adaptive: additive increase toward the configured rate
  double rate() const;

 private:
  mutable std::mutex mu_;
  double max_rate_, rate_, burst_, tokens_;
  Clock clock_;
  std::chrono::steady_clock::time_point last_;
};

// Shared state per (region, service): one quota and one rate limiter, shared by every
// AwsClient in the process so parallel work does not throttle itself.
struct RetryState {
  RetryQuota quota;
  std::unique_ptr<RateLimiter> limiter;  // null when unlimited
};
// Returns a fresh state for `service` with the limiter `settings` asks for.
std::shared_ptr<RetryState> make_retry_state(const std::string& service,
                                             const RetrySettings& settings);
std::shared_ptr<RetryState> shared_retry_state(const std::string& region,
                                               const std::string& service,
                                               const RetrySettings& settings);

// Sleeping, injectable so tests never really sleep.
using Sleeper = std::function<void(std::chrono::milliseconds)>;
Sleeper real_sleeper();

}  // namespace amibake::aws
