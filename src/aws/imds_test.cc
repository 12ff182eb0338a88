// IMDSv2 client against a loopback server (never the real metadata address).
#include "aws/imds.h"

#include <gtest/gtest.h>

#include <atomic>

#include "aws/test_support.h"

namespace amibake::aws {
namespace {

using testing::LocalServer;
using testing::ScopedEnv;

struct Imds {
  LocalServer server;
  std::atomic<int> token_calls{0};
  std::atomic<int> reject_next{0};
  std::string current = "Sekrit-imds-session-A";
  Imds() {
    server.http().Put("/latest/api/token",
                      [this](const httplib::Request& req, httplib::Response& res) {
                        if (req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds").empty()) {
                          res.status = 400;
                          return;
                        }
                        ++token_calls;
                        res.set_content(current, "text/plain");
                      });
    server.http().Get(
        R"(/latest/meta-data/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
          if (req.get_header_value("X-aws-ec2-metadata-token") != current || reject_next > 0) {
            if (reject_next > 0) --reject_next;
            res.status = 401;
            return;
          }
          std::string what = req.matches[1];
          if (what == "instance-id")
            res.set_content("i-0abc", "text/plain");
          else if (what == "placement/availability-zone")
            res.set_content("us-west-2c", "text/plain");
          else if (what == "placement/region")
            res.set_content("us-west-2", "text/plain");
          else
            res.status = 404;
        });
    server.start();
  }
  ImdsClient client() {
    ImdsClient::Options o;
    o.endpoint = server.url();
    return ImdsClient(o);
  }
};

TEST(Imds, AnswersInstanceIdZoneAndRegionWithAToken) {
  ScopedEnv env;
  env.unset("AWS_EC2_METADATA_DISABLED");
  Imds imds;
  ImdsClient c = imds.client();
  EXPECT_EQ(c.instance_id().value_or("?"), "i-0abc");
  EXPECT_EQ(c.availability_zone().value_or("?"), "us-west-2c");
  EXPECT_EQ(c.region().value_or("?"), "us-west-2");
  EXPECT_EQ(imds.token_calls, 1) << "the token is reused";
}

TEST(Imds, ExpiredTokenIsRenewedOnce) {
  ScopedEnv env;
  env.unset("AWS_EC2_METADATA_DISABLED");
  Imds imds;
  ImdsClient c = imds.client();
  ASSERT_TRUE(c.instance_id().has_value());
  imds.reject_next = 1;
  EXPECT_EQ(c.instance_id().value_or("?"), "i-0abc");
  EXPECT_EQ(imds.token_calls, 2);
}

TEST(Imds, MissingPathIsANotFoundError) {
  ScopedEnv env;
  env.unset("AWS_EC2_METADATA_DISABLED");
  Imds imds;
  auto r = imds.client().get("meta-data/iam/security-credentials/");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("HTTP 404"), std::string::npos);
  EXPECT_NE(r.error().hint.find("IAM role"), std::string::npos);
}

TEST(Imds, DisabledByEnvironmentSendsNothing) {
  ScopedEnv env;
  env.set("AWS_EC2_METADATA_DISABLED", "TRUE");
  Imds imds;
  ImdsClient c = imds.client();
  EXPECT_TRUE(c.disabled());
  auto r = c.instance_id();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("AWS_EC2_METADATA_DISABLED"), std::string::npos);
  EXPECT_EQ(imds.token_calls, 0);
}

TEST(Imds, EndpointComesFromTheEnvironment) {
  ScopedEnv env;
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1234/");
  EXPECT_EQ(ImdsClient().endpoint(), "http://127.0.0.1:1234");
  env.unset("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  EXPECT_EQ(ImdsClient().endpoint(), "http://169.254.169.254");  // not contacted
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6");
  EXPECT_EQ(ImdsClient().endpoint(), "http://[fd00:ec2::254]");
}

TEST(Imds, UnreachableServiceFailsFast) {
  ScopedEnv env;
  env.unset("AWS_EC2_METADATA_DISABLED");
  ImdsClient::Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(testing::closed_port());
  ImdsClient c(o);
  auto start = std::chrono::steady_clock::now();
  auto r = c.instance_id();
  ASSERT_FALSE(r.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_NE(r.error().hint.find("not on EC2"), std::string::npos);
}

TEST(Imds, HangingServiceIsCutByTheTotalTimeout) {
  ScopedEnv env;
  env.unset("AWS_EC2_METADATA_DISABLED");
  LocalServer server;
  server.http().Put("/latest/api/token", [](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    res.set_content("late", "text/plain");
  });
  server.start();
  ImdsClient::Options o;
  o.endpoint = server.url();
  o.total_timeout = std::chrono::milliseconds(300);
  ImdsClient c(o);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.token().has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
}

}  // namespace
}  // namespace amibake::aws
