// Every credential source, with files in a temporary HOME and small local servers
// on 127.0.0.1 for STS, the container endpoint and IMDSv2.
#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/client.h"
#include "aws/credential_sources.h"
#include "aws/test_support.h"
#include "base/files.h"

namespace amibake::aws {
namespace {

using testing::LocalServer;
using testing::ScopedEnv;
using testing::TempHome;

Result<Credentials> resolve(CredentialsOptions o = {}) {
  auto p = make_default_credentials_provider(o);
  if (!p) return p.error();
  return (*p)->get();
}

const char* kRoleXml =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
    "<Credentials><AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>Sekrit-role-secret-0001"
    "</SecretAccessKey><SessionToken>Sekrit-role-token-0001</SessionToken><Expiration>"
    "2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
const char* kWebXml =
    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
    "<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>Sekrit-web-secret-0001</SecretAccessKey>"
    "<SessionToken>Sekrit-web-token-0001</SessionToken><Expiration>2099-01-01T00:00:00.000Z"
    "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
    "</AssumeRoleWithWebIdentityResponse>";

// A fake STS on loopback that records what it was asked.
struct FakeSts {
  LocalServer server;
  std::vector<std::string> bodies;
  std::vector<std::string> authorizations;
  std::mutex mu;
  FakeSts() {
    server.http().Post("/", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      bodies.push_back(req.body);
      authorizations.push_back(req.get_header_value("Authorization"));
      if (req.body.find("Action=AssumeRoleWithWebIdentity") != std::string::npos) {
        res.set_content(kWebXml, "text/xml");
      } else if (req.body.find("Action=AssumeRole") != std::string::npos) {
        res.set_content(kRoleXml, "text/xml");
      } else {
        res.status = 400;
      }
    });
    server.start();
  }
};

TEST(CredentialsChain, EnvironmentKeysComeFirst) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/credentials",
             "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = Sekrit-file-0001\n");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-env-secret-0001");
  env.set("AWS_SESSION_TOKEN", "Sekrit-env-token-0001");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->session_token, "Sekrit-env-token-0001");
  EXPECT_NE(c->source.find("environment"), std::string::npos);
}

TEST(CredentialsChain, PartialEnvironmentKeysAreAnError) {
  ScopedEnv env;
  TempHome home(env);
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
}

TEST(CredentialsChain, ProfileFlagBeatsEnvironmentKeys) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/credentials",
             "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = Sekrit-dev-0001\n");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-env-secret-0001");
  CredentialsOptions o;
  o.profile = "dev";
  o.profile_from_flag = true;
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDDEV");
}

TEST(CredentialsChain, DefaultProfileStaticKeysNameTheirFile) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/credentials",
             "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = Sekrit-file-0001\n"
             "aws_session_token = Sekrit-file-token-0001\n");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDFILE");
  EXPECT_EQ(c->secret_access_key, "Sekrit-file-0001");
  EXPECT_EQ(c->source, "profile default in " + home.path() + "/.aws/credentials");
}

TEST(CredentialsChain, AwsProfileSelectsAConfigProfile) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config",
             "[profile ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = Sekrit-ci-0001\n");
  env.set("AWS_PROFILE", "ci");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDCI");
}

TEST(CredentialsChain, CustomFileLocationsAreHonoured) {
  ScopedEnv env;
  TempHome home(env);
  home.write("elsewhere",
             "[default]\naws_access_key_id = AKIDX\naws_secret_access_key = Sekrit-x-0001\n");
  env.set("AWS_SHARED_CREDENTIALS_FILE", home.path() + "/elsewhere");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDX");
}

TEST(CredentialsChain, UnknownProfileIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config", "[profile a]\nregion = us-east-1\n[profile b]\nregion = us-east-1\n");
  env.set("AWS_PROFILE", "nope");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("profile \"nope\": not found"), std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().hint.find("a, b"), std::string::npos) << c.error().hint;
}

TEST(CredentialsChain, NoCredentialsListsEveryPlaceLooked) {
  ScopedEnv env;
  TempHome home(env);
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  const std::string& m = c.error().message;
  for (const char* place :
       {"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "profile \"default\"",
        ".aws/credentials", "AWS_CONTAINER_CREDENTIALS", "IMDSv2", "AWS_EC2_METADATA_DISABLED"}) {
    EXPECT_NE(m.find(place), std::string::npos) << place << " missing from: " << m;
  }
  EXPECT_FALSE(c.error().hint.empty());
}

TEST(CredentialsChain, ProfileWithoutKeysFallsThroughAndSaysSo) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config", "[default]\nregion = us-east-1\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("no credential settings"), std::string::npos);
}

TEST(CredentialsChain, CredentialProcessJsonIsUsed) {
  ScopedEnv env;
  TempHome home(env);
  home.write(
      "creds.sh",
      "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": "
      "\"Sekrit-proc-0001\", \"SessionToken\": \"Sekrit-proc-token-0001\", \"Expiration\": "
      "\"2099-05-01T10:00:00Z\"}'\n",
      0755);
  home.write(".aws/config",
             "[default]\ncredential_process = \"" + home.path() + "/creds.sh\" --flag\n");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIDPROC");
  EXPECT_EQ(c->session_token, "Sekrit-proc-token-0001");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(format_iso8601(*c->expiration), "2099-05-01T10:00:00Z");
  EXPECT_NE(c->source.find("credential_process of profile default"), std::string::npos);
}

TEST(CredentialsChain, CredentialProcessFailureShowsItsStderr) {
  ScopedEnv env;
  TempHome home(env);
  home.write("fail.sh", "#!/bin/sh\necho 'token expired, run login' >&2\nexit 3\n", 0755);
  home.write(".aws/config", "[default]\ncredential_process = " + home.path() + "/fail.sh\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("exited with code 3: token expired, run login"),
            std::string::npos)
      << c.error().message;
}

TEST(CredentialsChain, CredentialProcessGarbageIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  home.write("junk.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": '\n", 0755);
  home.write(".aws/config", "[default]\ncredential_process = " + home.path() + "/junk.sh\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("not a JSON object"), std::string::npos) << c.error().message;
}

TEST(CredentialsChain, ExpiredProcessCredentialsAreRefused) {
  ScopedEnv env;
  TempHome home(env);
  home.write("old.sh",
             "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDOLD\", \"SecretAccessKey\": "
             "\"Sekrit-old-0001\", \"SessionToken\": \"Sekrit-old-token\", \"Expiration\": "
             "\"2001-01-01T00:00:00Z\"}'\n",
             0755);
  home.write(".aws/config", "[default]\ncredential_process = " + home.path() + "/old.sh\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("expired at 2001-01-01T00:00:00Z"), std::string::npos)
      << c.error().message;
}

TEST(CredentialsChain, RoleWithSourceProfileCallsAssumeRoleSignedBySource) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write(".aws/credentials",
             "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = Sekrit-base-0001\n");
  home.write(
      ".aws/config",
      "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/Baker\nsource_profile = base\n"
      "external_id = ext-42\nrole_session_name = bake-session\nduration_seconds = 1800\n");
  CredentialsOptions o;
  o.profile = "deploy";
  o.region = "eu-west-1";
  o.sts_endpoint = sts.server.url();
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  EXPECT_EQ(c->session_token, "Sekrit-role-token-0001");
  EXPECT_EQ(
      c->source.rfind("assume-role arn:aws:iam::123456789012:role/Baker via profile deploy", 0), 0u)
      << c->source;
  ASSERT_EQ(sts.bodies.size(), 1u);
  const std::string& b = sts.bodies[0];
  EXPECT_NE(b.find("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FBaker"), std::string::npos)
      << b;
  EXPECT_NE(b.find("ExternalId=ext-42"), std::string::npos);
  EXPECT_NE(b.find("RoleSessionName=bake-session"), std::string::npos);
  EXPECT_NE(b.find("DurationSeconds=1800"), std::string::npos);
  EXPECT_NE(sts.authorizations[0].find("Credential=AKIDBASE/"), std::string::npos);
  EXPECT_NE(sts.authorizations[0].find("/eu-west-1/sts/aws4_request"), std::string::npos);
}

TEST(CredentialsChain, AssumedRoleCredentialsAreCached) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write(".aws/config",
             "[default]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = default\n"
             "aws_access_key_id = AKIDSELF\naws_secret_access_key = Sekrit-self-0001\n");
  CredentialsOptions o;
  o.sts_endpoint = sts.server.url();
  auto p = make_default_credentials_provider(o);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_TRUE((*p)->get().has_value());
  ASSERT_TRUE((*p)->get().has_value());
  EXPECT_EQ(sts.bodies.size(), 1u);
  EXPECT_NE(sts.authorizations[0].find("Credential=AKIDSELF/"), std::string::npos);
}

TEST(CredentialsChain, RoleWithoutSourceIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config", "[default]\nrole_arn = arn:aws:iam::1:role/R\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("role_arn needs source_profile"), std::string::npos);
}

TEST(CredentialsChain, SourceProfileLoopIsAnError) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config",
             "[profile a]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = b\n"
             "[profile b]\nrole_arn = arn:aws:iam::1:role/B\nsource_profile = a\n");
  CredentialsOptions o;
  o.profile = "a";
  auto c = resolve(o);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("loops"), std::string::npos) << c.error().message;
}

TEST(CredentialsChain, RoleWithCredentialSourceEnvironment) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write(".aws/config",
             "[profile r]\nrole_arn = arn:aws:iam::1:role/R\ncredential_source = Environment\n");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENVSRC");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-envsrc-0001");
  CredentialsOptions o;
  o.profile = "r";
  o.profile_from_flag = true;
  o.sts_endpoint = sts.server.url();
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  EXPECT_NE(sts.authorizations[0].find("Credential=AKIDENVSRC/"), std::string::npos);
}

TEST(CredentialsChain, WebIdentityFromEnvironmentIsSentUnsigned) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write("token.jwt", "Sekrit-jwt-token-0001\n");
  env.set("AWS_WEB_IDENTITY_TOKEN_FILE", home.path() + "/token.jwt");
  env.set("AWS_ROLE_ARN", "arn:aws:iam::1:role/CI");
  env.set("AWS_ROLE_SESSION_NAME", "ci-run-7");
  env.set("AWS_ENDPOINT_URL_STS", sts.server.url());
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAWEB");
  ASSERT_EQ(sts.bodies.size(), 1u);
  EXPECT_NE(sts.bodies[0].find("WebIdentityToken=Sekrit-jwt-token-0001"), std::string::npos);
  EXPECT_EQ(sts.bodies[0].find("%0A"), std::string::npos) << "newline must be trimmed";
  EXPECT_NE(sts.bodies[0].find("RoleSessionName=ci-run-7"), std::string::npos);
  EXPECT_EQ(sts.authorizations[0], "") << "AssumeRoleWithWebIdentity must not be signed";
}

TEST(CredentialsChain, WebIdentityFromProfile) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write("tok", "Sekrit-jwt-token-0002");
  home.write(".aws/config",
             "[default]\nrole_arn = arn:aws:iam::1:role/W\nweb_identity_token_file = " +
                 home.path() + "/tok\n");
  CredentialsOptions o;
  o.sts_endpoint = sts.server.url();
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAWEB");
  EXPECT_NE(c->source.find("web-identity"), std::string::npos) << c->source;
}

TEST(CredentialsChain, MissingWebIdentityTokenFileIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  env.set("AWS_WEB_IDENTITY_TOKEN_FILE", home.path() + "/absent");
  env.set("AWS_ROLE_ARN", "arn:aws:iam::1:role/CI");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("cannot read the token file"), std::string::npos);
}

struct FakeContainer {
  LocalServer server;
  std::string seen_auth;
  std::string seen_path;
  FakeContainer() {
    server.http().Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      seen_auth = req.get_header_value("Authorization");
      seen_path = req.path;
      res.set_content(
          R"({"AccessKeyId":"ASIATASK","SecretAccessKey":"Sekrit-task-0001","Token":"Sekrit-task-token-0001","Expiration":"2099-01-01T00:00:00Z","RoleArn":"arn:aws:iam::1:role/T"})",
          "application/json");
    });
    server.start();
  }
};

TEST(CredentialsChain, ContainerFullUriWithAuthorizationToken) {
  ScopedEnv env;
  TempHome home(env);
  FakeContainer ecs;
  env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", ecs.server.url() + "/creds");
  env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Sekrit-auth-0001");
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIATASK");
  EXPECT_EQ(c->session_token, "Sekrit-task-token-0001");
  EXPECT_EQ(ecs.seen_auth, "Sekrit-auth-0001");
  EXPECT_NE(c->source.find("container credentials endpoint"), std::string::npos);
}

TEST(CredentialsChain, ContainerTokenFileWinsOverTokenValue) {
  ScopedEnv env;
  TempHome home(env);
  FakeContainer ecs;
  home.write("eks-token", "Sekrit-auth-file-0001\n");
  env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", ecs.server.url() + "/creds");
  env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Sekrit-auth-0001");
  env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", home.path() + "/eks-token");
  ASSERT_TRUE(resolve().has_value());
  EXPECT_EQ(ecs.seen_auth, "Sekrit-auth-file-0001");
}

TEST(CredentialsChain, ContainerRelativeUriUsesTheContainerHost) {
  ScopedEnv env;
  TempHome home(env);
  FakeContainer ecs;
  env.set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
  CredentialsOptions o;
  o.container_host = ecs.server.url();  // instead of 169.254.170.2
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(ecs.seen_path, "/v2/credentials/abc");
}

TEST(CredentialsChain, ContainerFullUriOverPlainHttpToARemoteHostIsRefused) {
  ScopedEnv env;
  TempHome home(env);
  env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("refusing plain http"), std::string::npos);
}

TEST(CredentialsChain, UnreachableContainerEndpointFailsQuickly) {
  ScopedEnv env;
  TempHome home(env);
  env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI",
          "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/creds");
  auto start = std::chrono::steady_clock::now();
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_NE(c.error().message.find("connection failed"), std::string::npos) << c.error().message;
}

struct FakeImds {
  LocalServer server;
  std::string ttl_header;
  std::atomic<int> token_calls{0};
  FakeImds() {
    server.http().Put("/latest/api/token",
                      [this](const httplib::Request& req, httplib::Response& res) {
                        ttl_header = req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds");
                        ++token_calls;
                        res.set_content("Sekrit-imds-session-0001", "text/plain");
                      });
    auto guarded = [](auto body) {
      return [body](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("X-aws-ec2-metadata-token") != "Sekrit-imds-session-0001") {
          res.status = 401;
          return;
        }
        res.set_content(body, "text/plain");
      };
    };
    server.http().Get("/latest/meta-data/iam/security-credentials/",
                      guarded(std::string("web-role\n")));
    server.http().Get(
        "/latest/meta-data/iam/security-credentials/web-role",
        guarded(std::string(
            R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"Sekrit-imds-0001","Token":"Sekrit-imds-token-0001","Expiration":"2099-01-01T00:00:00Z"})")));
    server.http().Get("/latest/meta-data/instance-id", guarded(std::string("i-0123456789abcdef0")));
    server.http().Get("/latest/meta-data/placement/availability-zone",
                      guarded(std::string("eu-west-1b")));
    server.start();
  }
};

TEST(CredentialsChain, ImdsRoleIsTheLastResort) {
  ScopedEnv env;
  TempHome home(env);
  FakeImds imds;
  env.unset("AWS_EC2_METADATA_DISABLED");
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.server.url());
  auto c = resolve();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAIMDS");
  EXPECT_EQ(c->session_token, "Sekrit-imds-token-0001");
  EXPECT_EQ(c->source, "IMDSv2 instance role web-role");
  EXPECT_EQ(imds.ttl_header, "21600");
}

TEST(CredentialsChain, ImdsFailureStillListsThePlaces) {
  ScopedEnv env;
  TempHome home(env);
  env.unset("AWS_EC2_METADATA_DISABLED");
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT",
          "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  auto start = std::chrono::steady_clock::now();
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_NE(c.error().message.find("none found"), std::string::npos);
  EXPECT_NE(c.error().message.find("IMDSv2 instance role: IMDS"), std::string::npos)
      << c.error().message;
}

// A provider that counts calls and answers credentials expiring at `expiry`.
struct CountingProvider : CredentialsProvider {
  std::atomic<int>* calls;
  SystemTime expiry;
  bool fail = false;
  Result<Credentials> get() override {
    ++*calls;
    if (fail) return make_error("source down");
    return Credentials{"ASIA" + std::to_string(calls->load()), "Sekrit-count-0001",
                       "Sekrit-count-token", expiry, "counting"};
  }
  std::string describe() const override { return "counting"; }
};

TEST(CachingProvider, RefreshesFiveMinutesBeforeExpiry) {
  using namespace std::chrono_literals;
  std::atomic<int> calls{0};
  SystemTime now = std::chrono::system_clock::from_time_t(1'800'000'000);
  auto inner = std::make_unique<CountingProvider>();
  inner->calls = &calls;
  inner->expiry = now + 1h;
  auto* raw = inner.get();
  CachingCredentialsProvider p(std::move(inner), 5min, [&] { return now; });
  EXPECT_EQ(p.get()->access_key_id, "ASIA1");
  now += 54min;
  EXPECT_EQ(p.get()->access_key_id, "ASIA1");
  EXPECT_EQ(calls, 1);
  now += 2min;  // 4 minutes left: refresh
  raw->expiry = now + 1h;
  EXPECT_EQ(p.get()->access_key_id, "ASIA2");
  EXPECT_EQ(calls, 2);
}

TEST(CachingProvider, KeepsValidCredentialsWhenARefreshFails) {
  using namespace std::chrono_literals;
  std::atomic<int> calls{0};
  SystemTime now = std::chrono::system_clock::from_time_t(1'800'000'000);
  auto inner = std::make_unique<CountingProvider>();
  inner->calls = &calls;
  inner->expiry = now + 10min;
  auto* raw = inner.get();
  CachingCredentialsProvider p(std::move(inner), 5min, [&] { return now; });
  ASSERT_TRUE(p.get().has_value());
  raw->fail = true;
  now += 7min;  // inside the refresh window, still valid
  auto c = p.get();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->access_key_id, "ASIA1");
  now += 5min;  // expired now
  EXPECT_FALSE(p.get().has_value());
}

TEST(CachingProvider, ConcurrentCallersShareOneRefresh) {
  using namespace std::chrono_literals;
  std::atomic<int> calls{0};
  auto inner = std::make_unique<CountingProvider>();
  inner->calls = &calls;
  inner->expiry = std::chrono::system_clock::now() + 1h;
  CachingCredentialsProvider p(std::move(inner));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) ok += p.get().has_value();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 400);
  EXPECT_EQ(calls, 1);
}

TEST(Iso8601, ParsesAwsFormats) {
  SystemTime t;
  ASSERT_TRUE(parse_iso8601("2026-11-25T08:38:45Z", &t));
  EXPECT_EQ(format_iso8601(t), "2026-11-25T08:38:45Z");
  ASSERT_TRUE(parse_iso8601("2026-11-25T08:38:45.123Z", &t));
  EXPECT_EQ(format_iso8601(t), "2026-11-25T08:38:45Z");
  ASSERT_TRUE(parse_iso8601("2026-11-25T10:38:45+02:00", &t));
  EXPECT_EQ(format_iso8601(t), "2026-11-25T08:38:45Z");
  EXPECT_FALSE(parse_iso8601("yesterday", &t));
  EXPECT_FALSE(parse_iso8601("2026-11-25T08:38:45Zjunk", &t));
}

TEST(SplitCommandLine, QuotesAndEscapes) {
  std::vector<std::string> w;
  ASSERT_TRUE(split_command_line(R"(/bin/tool --a "b c" 'd "e"' f\ g)", &w));
  EXPECT_EQ(w, (std::vector<std::string>{"/bin/tool", "--a", "b c", "d \"e\"", "f g"}));
  EXPECT_FALSE(split_command_line("tool 'open", &w));
}

TEST(CredentialsChain, RoleWithCredentialSourceEc2InstanceMetadata) {
  ScopedEnv env;
  TempHome home(env);
  FakeImds imds;
  FakeSts sts;
  env.unset("AWS_EC2_METADATA_DISABLED");
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.server.url());
  home.write(
      ".aws/config",
      "[default]\nrole_arn = arn:aws:iam::1:role/R\ncredential_source = Ec2InstanceMetadata\n");
  CredentialsOptions o;
  o.sts_endpoint = sts.server.url();
  auto c = resolve(o);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  ASSERT_EQ(sts.authorizations.size(), 1u);
  EXPECT_NE(sts.authorizations[0].find("Credential=ASIAIMDS/"), std::string::npos);
}

TEST(CredentialsChain, UnknownCredentialSourceIsAnError) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config",
             "[default]\nrole_arn = arn:aws:iam::1:role/R\ncredential_source = Moon\n");
  auto c = resolve();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("unknown credential_source \"Moon\""), std::string::npos);
}

// --- mfa_serial ---

TEST(AssumeRoleCache, KeyIsBotocoresKey) {
  // Expected values from botocore's AssumeRoleCredentialFetcher(...)._cache_key.
  AssumeRoleSettings s;
  s.role_arn = "arn:aws:iam::123456789012:role/Baker";
  s.mfa_serial = "arn:aws:iam::123456789012:mfa/alice";
  EXPECT_EQ(assume_role_cache_key(s), "42705008914df96f8b0b9324ea026092f2d11f02");
  s.session_name = "bake";
  s.external_id = "ext-42";
  s.duration_seconds = 1800;
  EXPECT_EQ(assume_role_cache_key(s), "73f41b25abff0a68affe9baf05f4dadfad821309");
}

struct MfaHome {
  ScopedEnv env;
  TempHome home{env};
  FakeSts sts;
  std::vector<std::string> prompts;
  std::string answer = "123456";
  MfaHome() {
    home.write(".aws/credentials",
               "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = Sekrit-base-0003\n");
    home.write(".aws/config",
               "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/Baker\n"
               "source_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\n");
  }
  CredentialsOptions options(std::string code = {}) {
    CredentialsOptions o;
    o.profile = "mfa";
    o.sts_endpoint = sts.server.url();
    o.mfa_code = std::move(code);
    o.mfa_prompter = [this](const std::string& prompt) -> Result<std::string> {
      prompts.push_back(prompt);
      if (answer.empty()) return make_error("there is no terminal to ask on (/dev/tty: No such device)");
      return answer;
    };
    return o;
  }
  std::string cache_file() const {
    return home.path() + "/.aws/cli/cache/42705008914df96f8b0b9324ea026092f2d11f02.json";
  }
};

TEST(CredentialsChain, MfaProfilePromptsSendsTheCodeAndCachesTheSession) {
  MfaHome h;
  auto c = resolve(h.options());
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  ASSERT_EQ(h.prompts.size(), 1u);
  EXPECT_EQ(h.prompts[0], "Enter MFA code for arn:aws:iam::123456789012:mfa/alice: ");
  ASSERT_EQ(h.sts.bodies.size(), 1u);
  EXPECT_NE(h.sts.bodies[0].find("SerialNumber=arn%3Aaws%3Aiam%3A%3A123456789012%3Amfa%2Falice"),
            std::string::npos)
      << h.sts.bodies[0];
  EXPECT_NE(h.sts.bodies[0].find("TokenCode=123456"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(h.cache_file().c_str(), &st), 0) << h.cache_file();
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto j = nlohmann::json::parse(*read_file(h.cache_file()));
  EXPECT_EQ(j["Credentials"]["AccessKeyId"], "ASIAROLE");
  EXPECT_EQ(j["Credentials"]["Expiration"], "2099-01-01T00:00:00Z");

  // A later run (a new chain) uses the cached session: no prompt, no STS call.
  auto again = resolve(h.options());
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->session_token, "Sekrit-role-token-0001");
  EXPECT_NE(again->source.find("cached in " + h.cache_file()), std::string::npos) << again->source;
  EXPECT_EQ(h.prompts.size(), 1u);
  EXPECT_EQ(h.sts.bodies.size(), 1u);
}

TEST(CredentialsChain, MfaCodeFromTheCommandLineIsUsedWithoutAPrompt) {
  MfaHome h;
  auto c = resolve(h.options("654321"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_TRUE(h.prompts.empty());
  ASSERT_EQ(h.sts.bodies.size(), 1u);
  EXPECT_NE(h.sts.bodies[0].find("TokenCode=654321"), std::string::npos);
}

TEST(CredentialsChain, MfaWithoutATerminalSaysWhyAndHowToPassTheCode) {
  MfaHome h;
  h.answer.clear();
  auto c = resolve(h.options());
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("mfa_serial arn:aws:iam::123456789012:mfa/alice needs a code: "
                                   "there is no terminal"),
            std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().hint.find("--mfa-code"), std::string::npos) << c.error().hint;
  EXPECT_TRUE(h.sts.bodies.empty());
}

TEST(CredentialsChain, ExpiringCachedMfaSessionAsksAgain) {
  MfaHome h;
  ASSERT_TRUE(make_dirs(h.home.path() + "/.aws/cli/cache", 0700));
  nlohmann::json j = {{"Credentials",
                       {{"AccessKeyId", "ASIAOLD"},
                        {"SecretAccessKey", "Sekrit-old-0001"},
                        {"SessionToken", "Sekrit-old-token-0001"},
                        {"Expiration", format_iso8601(std::chrono::system_clock::now() +
                                                      std::chrono::minutes(10))}}}};
  ASSERT_TRUE(write_file_atomic(h.cache_file(), j.dump(), 0600));
  auto c = resolve(h.options());
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIAROLE");  // 10 minutes left is inside the 15-minute window
  EXPECT_EQ(h.prompts.size(), 1u);
}

TEST(CredentialsChain, DurationSecondsOutOfRangeIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config",
             "[profile r]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = r\n"
             "aws_access_key_id = A\naws_secret_access_key = Sekrit-r-0001\nduration_seconds = 1h\n");
  CredentialsOptions o;
  o.profile = "r";
  auto p = make_default_credentials_provider(o);
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("duration_seconds \"1h\""), std::string::npos)
      << p.error().message;
}

TEST(MakeClient, RoleProfileAssumesRoleThroughTheEndpointUrl) {
  ScopedEnv env;
  TempHome home(env);
  FakeSts sts;
  home.write(".aws/config",
             "[profile deploy]\nregion = ap-southeast-2\nrole_arn = arn:aws:iam::1:role/D\n"
             "source_profile = base\n[profile base]\naws_access_key_id = AKIDBASE\n"
             "aws_secret_access_key = Sekrit-base-0002\n");
  ClientSettings s;
  s.profile = "deploy";
  s.endpoint_url = sts.server.url();
  auto c = make_client(s);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  auto creds = (*c)->credentials().get();
  ASSERT_TRUE(creds.has_value()) << creds.error().message;
  EXPECT_EQ(creds->access_key_id, "ASIAROLE");
  ASSERT_EQ(sts.authorizations.size(), 1u);
  EXPECT_NE(sts.authorizations[0].find("/ap-southeast-2/sts/aws4_request"), std::string::npos);
}

TEST(MakeClient, UnknownProfileFlagIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  ClientSettings s;
  s.profile = "ghost";
  s.region = "us-east-1";
  auto c = make_client(s);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("profile \"ghost\": not found"), std::string::npos);
}

TEST(MakeClient, MissingRegionIsAClearError) {
  ScopedEnv env;
  TempHome home(env);
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-env-secret-0001");
  auto c = make_client({});
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message, "region: not set");
}

TEST(MakeClient, BuildsFromFlagsAndEnvironment) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config", "[profile dev]\nregion = eu-west-2\n");
  home.write(".aws/credentials",
             "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = Sekrit-dev-0001\n");
  env.set("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:4566");
  ClientSettings s;
  s.profile = "dev";
  auto c = make_client(s);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ((*c)->region(), "eu-west-2");
  EXPECT_NE((*c)->region_source().find("profile dev"), std::string::npos);
  EXPECT_EQ((*c)->endpoint("ec2"), "http://127.0.0.1:4566");
  EXPECT_EQ((*c)->endpoint("ssm"), "https://ssm.eu-west-2.amazonaws.com");
  auto creds = (*c)->credentials().get();
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ(creds->access_key_id, "AKIDDEV");
}

}  // namespace
}  // namespace amibake::aws
