// Retry tables, settings from the environment, quota and rate limiter.
#include "aws/retry.h"

#include <gtest/gtest.h>

#include "aws/test_support.h"

namespace amibake::aws {
namespace {

using namespace std::chrono_literals;

TEST(RetryTables, ThrottlingCodesIncludeTheIssueList) {
  for (const char* c :
       {"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottledException",
        "TooManyRequestsException", "SlowDown", "ProvisionedThroughputExceededException",
        "RequestThrottled", "EC2ThrottledException", "PriorRequestNotComplete",
        "BandwidthLimitExceeded"}) {
    EXPECT_TRUE(is_throttling_code(c)) << c;
  }
  EXPECT_FALSE(is_throttling_code("LimitExceededException"));  // a quota, see retry.cc
}

TEST(RetryTables, PermissionAndValidationErrorsAreNeverRetried) {
  for (const char* c : {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                        "ValidationException", "InvalidParameterValue", "AuthFailure"}) {
    EXPECT_EQ(classify({std::nullopt, 403, c}, true), RetryClass::kNo) << c;
    EXPECT_EQ(classify({std::nullopt, 400, c}, true), RetryClass::kNo) << c;
  }
}

TEST(RetryTables, TransientStatusesAreRetried) {
  for (int s : {500, 502, 503, 504}) {
    EXPECT_EQ(classify({std::nullopt, s, ""}, true), RetryClass::kTransient) << s;
  }
  EXPECT_EQ(classify({std::nullopt, 501, ""}, true), RetryClass::kNo);
  EXPECT_EQ(classify({std::nullopt, 429, ""}, true), RetryClass::kThrottle);
}

TEST(RetryTables, TransportFailuresDependOnIdempotency) {
  EXPECT_EQ(classify({TransportErrorKind::kTimeout, 0, ""}, true), RetryClass::kTimeout);
  EXPECT_EQ(classify({TransportErrorKind::kTimeout, 0, ""}, false), RetryClass::kNo);
  EXPECT_EQ(classify({TransportErrorKind::kReset, 0, ""}, false), RetryClass::kNo);
  EXPECT_EQ(classify({TransportErrorKind::kConnect, 0, ""}, false), RetryClass::kTransient);
  EXPECT_EQ(classify({TransportErrorKind::kTls, 0, ""}, true), RetryClass::kNo);
}

TEST(Backoff, FullJitterScalesTheCeiling) {
  RetrySettings s;
  EXPECT_EQ(backoff_delay(s, RetryClass::kTransient, 1, 0.5), 50ms);
  EXPECT_EQ(backoff_delay(s, RetryClass::kTransient, 3, 1.0), 400ms);
  EXPECT_EQ(backoff_delay(s, RetryClass::kThrottle, 2, 1.0), 1000ms);
  EXPECT_EQ(backoff_delay(s, RetryClass::kThrottle, 30, 1.0), 20000ms);
  EXPECT_EQ(backoff_delay(s, RetryClass::kThrottle, 30, 0.0), 0ms);
}

TEST(RetrySettingsEnv, DefaultsAreStandardWithThreeAttempts) {
  testing::ScopedEnv env;
  auto s = retry_settings_from_env();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->mode, RetryMode::kStandard);
  EXPECT_EQ(s->max_attempts, 3);
  EXPECT_EQ(s->max_backoff, 20000ms);
}

TEST(RetrySettingsEnv, ModesAndAttemptsAreRead) {
  testing::ScopedEnv env;
  env.set("AWS_RETRY_MODE", "legacy");
  EXPECT_EQ(retry_settings_from_env()->max_attempts, 5);
  env.set("AWS_RETRY_MODE", "adaptive");
  env.set("AWS_MAX_ATTEMPTS", "7");
  auto s = retry_settings_from_env();
  EXPECT_EQ(s->mode, RetryMode::kAdaptive);
  EXPECT_EQ(s->max_attempts, 7);
}

TEST(RetrySettingsEnv, BadValuesAreErrorsNamingTheVariable) {
  testing::ScopedEnv env;
  env.set("AWS_RETRY_MODE", "turbo");
  auto s = retry_settings_from_env();
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("AWS_RETRY_MODE"), std::string::npos);
  env.set("AWS_RETRY_MODE", "standard");
  env.set("AWS_MAX_ATTEMPTS", "zero");
  EXPECT_FALSE(retry_settings_from_env().has_value());
}

TEST(RetryQuota, TimeoutsCostMoreAndSuccessRefunds) {
  RetryQuota q(20);
  int taken = 0;
  EXPECT_TRUE(q.acquire(RetryClass::kTimeout, &taken));
  EXPECT_EQ(q.available(), 10);
  EXPECT_TRUE(q.acquire(RetryClass::kTransient, &taken));
  EXPECT_TRUE(q.acquire(RetryClass::kTransient, &taken));
  EXPECT_FALSE(q.acquire(RetryClass::kTransient, &taken));
  q.release(taken);
  EXPECT_EQ(q.available(), 20);
  q.release(0);  // success without retries: +1, capped
  EXPECT_EQ(q.available(), 20);
}

TEST(RateLimiter, SpacesRequestsBeyondTheBurst) {
  auto t = std::chrono::steady_clock::time_point{};
  RateLimiter rl(10, 2, [&] { return t; });
  EXPECT_EQ(rl.acquire(), 0ms);
  EXPECT_EQ(rl.acquire(), 0ms);
  EXPECT_EQ(rl.acquire(), 100ms);  // third request in the same instant waits 1/10 s
  t += 1s;
  EXPECT_EQ(rl.acquire(), 0ms);
}

TEST(RateLimiter, ThrottleLowersAndSuccessRestoresTheRate) {
  RateLimiter rl(10, 10);
  rl.on_throttle();
  EXPECT_DOUBLE_EQ(rl.rate(), 7.0);
  for (int i = 0; i < 20; ++i) rl.on_success();
  EXPECT_DOUBLE_EQ(rl.rate(), 10.0);
}

TEST(SendRate, DefaultsStayBelowServiceBuckets) {
  EXPECT_EQ(default_send_rate("ec2").rate, 20);
  EXPECT_EQ(default_send_rate("ec2").burst, 100);
  RetrySettings unlimited;
  unlimited.max_send_rate = 0;
  EXPECT_EQ(make_retry_state("ec2", unlimited)->limiter, nullptr);
  EXPECT_NE(make_retry_state("ec2", RetrySettings{})->limiter, nullptr);
}

TEST(SharedRetryState, IsSharedPerRegionAndService) {
  RetrySettings s;
  auto a = shared_retry_state("r1", "ec2", s);
  auto b = shared_retry_state("r1", "ec2", s);
  auto c = shared_retry_state("r1", "ebs", s);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
}

}  // namespace
}  // namespace amibake::aws
