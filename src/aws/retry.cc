// Retry classification, backoff, quota and rate limiting (the "standard" retry mode
// of the AWS SDKs; see retry.h).
//
// What is retried is decided by tables below, so a reviewer can read the policy in
// one place. Deliberate omissions:
// - LimitExceededException: botocore treats it as throttling, but in the APIs we call
//   it means a hard quota (too many snapshots in flight, too many parameters) that a
//   retry seconds later does not fix; retrying only delays a clear error.
// - AccessDenied/UnauthorizedOperation/validation errors: never retried, whatever
//   their HTTP status.
// Timeouts and resets leave the outcome unknown, so they are retried only when the
// request is idempotent; a refused connection sent nothing and is always retryable.
#include "aws/retry.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "base/files.h"

namespace amibake::aws {
namespace {

template <size_t N>
bool in_table(const std::string_view (&table)[N], std::string_view code) {
  return std::find(std::begin(table), std::end(table), code) != std::end(table);
}

constexpr std::string_view kThrottlingCodes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "TooManyUpdates",  // SSM PutParameter on a parameter being updated
};

constexpr std::string_view kTransientCodes[] = {
    "RequestTimeout",     "RequestTimeoutException", "InternalError",           "InternalFailure",
    "ServiceUnavailable", "InternalServerError",     "InternalServerException", "Unavailable",
};

constexpr std::string_view kClockSkewCodes[] = {
    "RequestTimeTooSkewed",      "RequestExpired",        "RequestInTheFuture",
    "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure",
};

}  // namespace

bool is_throttling_code(std::string_view code) { return in_table(kThrottlingCodes, code); }
bool is_transient_status(int s) { return s == 500 || s == 502 || s == 503 || s == 504; }
bool is_transient_code(std::string_view code) { return in_table(kTransientCodes, code); }
bool is_clock_skew_code(std::string_view code) { return in_table(kClockSkewCodes, code); }

RetryClass classify(const AttemptFailure& f, bool idempotent) {
  if (f.transport) {
    switch (*f.transport) {
      case TransportErrorKind::kConnect:
        return RetryClass::kTransient;
      case TransportErrorKind::kTimeout:
      case TransportErrorKind::kReset:
        return idempotent ? RetryClass::kTimeout : RetryClass::kNo;
      default:
        return RetryClass::kNo;
    }
  }
  if (is_throttling_code(f.aws_code) || f.http_status == 429) return RetryClass::kThrottle;
  if (is_transient_code(f.aws_code)) return RetryClass::kTransient;
  // A 5xx with a code we know to be permanent would be odd; trust the status.
  if (is_transient_status(f.http_status)) return RetryClass::kTransient;
  return RetryClass::kNo;
}

std::chrono::milliseconds backoff_delay(const RetrySettings& s, RetryClass cls, int retry,
                                        double random01) {
  auto base = cls == RetryClass::kThrottle ? s.throttle_base_delay : s.base_delay;
  double ceiling = static_cast<double>(base.count()) * std::pow(2.0, std::max(0, retry - 1));
  ceiling = std::min(ceiling, static_cast<double>(s.max_backoff.count()));
  random01 = std::clamp(random01, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<long long>(random01 * ceiling));
}

Result<RetrySettings> retry_settings_from_env() {
  RetrySettings s;
  std::string mode = env_or("AWS_RETRY_MODE", "standard");
  if (mode == "standard") {
    s.mode = RetryMode::kStandard;
  } else if (mode == "legacy") {
    s.mode = RetryMode::kLegacy;
    s.max_attempts = 5;
    s.use_quota = false;
  } else if (mode == "adaptive") {
    s.mode = RetryMode::kAdaptive;
  } else {
    return make_error("AWS_RETRY_MODE=\"" + mode + "\": unknown retry mode",
                      "use standard, adaptive or legacy (or unset it)");
  }
  std::string attempts = env_or("AWS_MAX_ATTEMPTS");
  if (!attempts.empty()) {
    char* end = nullptr;
    long n = std::strtol(attempts.c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 100) {
      return make_error("AWS_MAX_ATTEMPTS=\"" + attempts + "\": not a number from 1 to 100",
                        "set it to the total number of attempts, e.g. 3 (or unset it)");
    }
    s.max_attempts = static_cast<int>(n);
  }
  return s;
}

bool RetryQuota::acquire(RetryClass cls, int* taken) {
  int cost = cls == RetryClass::kTimeout ? 10 : 5;
  std::lock_guard lock(mu_);
  if (available_ < cost) return false;
  available_ -= cost;
  *taken += cost;
  return true;
}

void RetryQuota::release(int taken) {
  std::lock_guard lock(mu_);
  available_ = std::min(capacity_, available_ + (taken > 0 ? taken : 1));
}

int RetryQuota::available() const {
  std::lock_guard lock(mu_);
  return available_;
}

RateLimiter::RateLimiter(double rate, double burst, Clock clock)
    : max_rate_(rate),
      rate_(rate),
      burst_(std::max(1.0, burst)),
      tokens_(burst_),
      clock_(clock ? std::move(clock) : [] { return std::chrono::steady_clock::now(); }),
      last_(clock_()) {}

std::chrono::milliseconds RateLimiter::acquire() {
  std::lock_guard lock(mu_);
  auto now = clock_();
  double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  tokens_ -= 1.0;  // reserve now; a negative balance is the wait
  if (tokens_ >= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(-tokens_ / rate_ * 1000.0)));
}

void RateLimiter::on_throttle() {
  std::lock_guard lock(mu_);
  rate_ = std::max(0.5, rate_ * 0.7);
}

void RateLimiter::on_success() {
  std::lock_guard lock(mu_);
  rate_ = std::min(max_rate_, rate_ + 0.5);
}

double RateLimiter::rate() const {
  std::lock_guard lock(mu_);
  return rate_;
}

SendRate default_send_rate(std::string_view service) {
  if (service == "ec2") return {20, 100};
  if (service == "ssm") return {20, 40};
  if (service == "sts") return {50, 100};
  if (service == "ebs") return {500, 1000};
  return {50, 100};
}

std::shared_ptr<RetryState> make_retry_state(const std::string& service,
                                             const RetrySettings& settings) {
  auto state = std::make_shared<RetryState>();
  SendRate r = default_send_rate(service);
  if (settings.max_send_rate) r = {*settings.max_send_rate, std::max(1.0, *settings.max_send_rate)};
  if (r.rate > 0) state->limiter = std::make_unique<RateLimiter>(r.rate, r.burst);
  return state;
}

std::shared_ptr<RetryState> shared_retry_state(const std::string& region,
                                               const std::string& service,
                                               const RetrySettings& settings) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<RetryState>> states;
  std::lock_guard lock(mu);
  auto& slot = states[region + "/" + service];
  if (!slot) slot = make_retry_state(service, settings);
  return slot;
}

Sleeper real_sleeper() {
  return [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

}  // namespace amibake::aws
