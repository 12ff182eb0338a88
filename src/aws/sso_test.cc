// IAM Identity Center credentials against a loopback portal and OIDC token endpoint
// (cpp-httplib) that record every request: the exact path, query, header and body
// botocore sends, the token cache rewrite, and the errors a user sees.
#include "aws/sso.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/client.h"
#include "aws/sigv4.h"
#include "aws/sts.h"
#include "aws/test_support.h"
#include "base/log.h"

namespace amibake::aws {
namespace {

using testing::LocalServer;
using testing::ScopedEnv;
using testing::TempHome;

std::string in_minutes(int minutes) {
  return format_iso8601(std::chrono::system_clock::now() + std::chrono::minutes(minutes));
}

// Portal and OIDC on one loopback server, as AWS_ENDPOINT_URL_SSO(_OIDC) point them.
struct FakeSso {
  struct Call {
    std::string target, bearer, body, content_type;
  };
  LocalServer server;
  std::mutex mu;
  std::vector<Call> portal, oidc;
  std::atomic<int> portal_status{200};
  std::atomic<int> oidc_status{200};
  std::atomic<int> portal_delay_ms{0};
  std::string access_key = "AKIAAWSEMU0EXAMPLE00";
  std::string secret_key = "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0";

  FakeSso() {
    server.http().Get("/federation/credentials", [this](const httplib::Request& req,
                                                        httplib::Response& res) {
      {
        std::lock_guard lock(mu);
        portal.push_back(
            {req.target, req.get_header_value("x-amz-sso_bearer_token"), req.body, ""});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(portal_delay_ms.load()));
      if (portal_status != 200) {
        res.status = portal_status;
        res.set_header("x-amzn-ErrorType", "UnauthorizedException");
        res.set_content(R"({"message":"Session token not found or invalid"})", "application/json");
        return;
      }
      auto expiration =
          std::chrono::duration_cast<std::chrono::milliseconds>(
              (std::chrono::system_clock::now() + std::chrono::hours(1)).time_since_epoch())
              .count();
      nlohmann::json j = {{"roleCredentials",
                           {{"accessKeyId", access_key},
                            {"secretAccessKey", secret_key},
                            {"sessionToken", "Sekrit-sso-session-token-0001"},
                            {"expiration", expiration}}}};
      res.set_content(j.dump(), "application/json");
    });
    server.http().Post("/token", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu);
        oidc.push_back({req.target, "", req.body, req.get_header_value("Content-Type")});
      }
      if (oidc_status != 200) {
        res.status = oidc_status;
        res.set_content(R"({"error":"invalid_grant","error_description":"Invalid refresh token"})",
                        "application/json");
        return;
      }
      res.set_content(R"({"accessToken":"Sekrit-refreshed-access-0001","expiresIn":28800,)"
                      R"("refreshToken":"Sekrit-refreshed-refresh-0001","tokenType":"Bearer"})",
                      "application/json");
    });
    server.start();
  }
  size_t portal_calls() {
    std::lock_guard lock(mu);
    return portal.size();
  }
  size_t oidc_calls() {
    std::lock_guard lock(mu);
    return oidc.size();
  }
};

// A HOME with an sso-session profile "dev" and a legacy profile "old", the SSO hosts
// pointed at the fake.
struct SsoHome {
  ScopedEnv env;
  TempHome home{env};
  FakeSso sso;
  SsoHome() {
    env.set("AWS_ENDPOINT_URL_SSO", sso.server.url());
    env.set("AWS_ENDPOINT_URL_SSO_OIDC", sso.server.url());
    home.write(".aws/config",
               "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n"
               "sso_role_name = Admin\nregion = us-east-1\n"
               "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
               "sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n"
               "[profile old]\nsso_start_url = https://old.awsapps.com/start\n"
               "sso_region = eu-west-1\nsso_account_id = 111122223333\nsso_role_name = Reader\n");
  }
  std::string session_cache() const {
    return home.path() + "/.aws/sso/cache/" + sha1_hex("corp") + ".json";
  }
  std::string legacy_cache() const {
    return home.path() + "/.aws/sso/cache/" + sha1_hex("https://old.awsapps.com/start") + ".json";
  }
  void write_token(const std::string& path, const nlohmann::json& j) {
    ASSERT_TRUE(make_dirs(home.path() + "/.aws/sso/cache", 0700));
    ASSERT_TRUE(write_file_atomic(path, j.dump(), 0600));
  }
  nlohmann::json token(int minutes_left, bool refreshable) const {
    nlohmann::json j = {{"startUrl", "https://corp.awsapps.com/start"},
                        {"region", "eu-west-1"},
                        {"accessToken", "Sekrit-cached-access-0001"},
                        {"expiresAt", in_minutes(minutes_left)}};
    if (refreshable) {
      j["refreshToken"] = "Sekrit-cached-refresh-0001";
      j["clientId"] = "client-id-0001";
      j["clientSecret"] = "Sekrit-client-secret-0001";
      j["registrationExpiresAt"] = in_minutes(60 * 24 * 30);
      j["scopes"] = {"sso:account:access"};
    }
    return j;
  }
  Result<std::unique_ptr<CredentialsProvider>> provider(const std::string& profile) {
    CredentialsOptions o;
    o.profile = profile;
    o.profile_from_flag = true;
    return make_default_credentials_provider(o);
  }
};

// --- configuration, in botocore's words ---

TEST(SsoProfile, SessionProfileMergesItsSession) {
  auto f = ProfileFiles::parse(
      "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n"
      "[sso-session corp]\nsso_start_url = https://x/start\nsso_region = eu-west-1\n",
      "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  auto p = read_sso_profile(*f, "dev");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ((*p)->start_url, "https://x/start");
  EXPECT_EQ((*p)->region, "eu-west-1");
  EXPECT_EQ((*p)->login_command(), "aws sso login --sso-session corp");
  EXPECT_EQ((*p)->describe(), "sso-session corp, account 1, role R");
}

TEST(SsoProfile, LegacyProfileLogsInByProfile) {
  auto f = ProfileFiles::parse(
      "[profile old]\nsso_start_url = https://x/start\nsso_region = us-east-2\n"
      "sso_account_id = 1\nsso_role_name = R\n",
      "");
  auto p = read_sso_profile(*f, "old");
  ASSERT_TRUE(p.has_value() && p->has_value());
  EXPECT_TRUE((*p)->legacy());
  EXPECT_EQ((*p)->login_command(), "aws sso login --profile old");
}

TEST(SsoProfile, MissingKeysAreNamedAsBotocoreNamesThem) {
  auto f = ProfileFiles::parse("[profile dev]\nsso_start_url = https://x/start\n", "");
  auto p = read_sso_profile(*f, "dev");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message,
            "The profile \"dev\" is configured to use SSO but is missing required configuration: "
            "sso_role_name, sso_account_id, sso_region");
}

TEST(SsoProfile, MissingSessionSectionIsNamed) {
  auto f = ProfileFiles::parse(
      "[profile dev]\nsso_session = nope\nsso_account_id = 1\nsso_role_name = R\n", "");
  auto p = read_sso_profile(*f, "dev");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message, "The specified sso-session does not exist: \"nope\"");
}

TEST(SsoProfile, InconsistentValuesBetweenProfileAndSessionAreAnError) {
  auto f = ProfileFiles::parse(
      "[profile dev]\nsso_session = corp\nsso_region = us-east-1\nsso_account_id = 1\n"
      "sso_role_name = R\n[sso-session corp]\nsso_start_url = https://x\nsso_region = eu-west-1\n",
      "");
  auto p = read_sso_profile(*f, "dev");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message,
            "The value for sso_region is inconsistent between profile (us-east-1) and "
            "sso-session (eu-west-1).");
}

TEST(SsoProfile, SessionWithoutStartUrlIsMissingIt) {
  auto f = ProfileFiles::parse(
      "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n"
      "[sso-session corp]\nsso_region = eu-west-1\n",
      "");
  auto p = read_sso_profile(*f, "dev");
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("missing required configuration: sso_start_url"),
            std::string::npos)
      << p.error().message;
}

TEST(SsoProfile, StaticKeysProfileIsNotSso) {
  auto f = ProfileFiles::parse("", "[k]\naws_access_key_id = A\naws_secret_access_key = B\n");
  auto p = read_sso_profile(*f, "k");
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->has_value());
}

TEST(SsoProfile, TokenCacheIsTheSha1OfTheSessionNameOrStartUrl) {
  ScopedEnv env;
  env.set("HOME", "/h");
  // Expected names from botocore's SSOTokenLoader._generate_cache_key for these inputs.
  SsoProfile s{"dev", "my-sso", "https://my-sso-portal.awsapps.com/start", "us-east-1", "1", "R"};
  EXPECT_EQ(s.token_cache_path(),
            "/h/.aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json");
  s.session_name.clear();
  EXPECT_EQ(s.token_cache_path(),
            "/h/.aws/sso/cache/c7aaaf71fcc8777ae2475525ed049d39fe16c484.json");
}

// --- the token and the portal ---

TEST(SsoCredentials, ValidTokenGetsRoleCredentialsWithTheExactRequest) {
  SsoHome h;
  h.write_token(h.session_cache(), h.token(/*minutes_left=*/180, /*refreshable=*/true));
  auto p = h.provider("dev");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  auto c = (*p)->get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKIAAWSEMU0EXAMPLE00");
  EXPECT_EQ(c->session_token, "Sekrit-sso-session-token-0001");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_GT(*c->expiration, std::chrono::system_clock::now() + std::chrono::minutes(50));
  EXPECT_NE(c->source.find("sso-session corp, account 111122223333, role Admin, token expires in "
                           "3h"),
            std::string::npos)
      << c->source;
  ASSERT_EQ(h.sso.portal_calls(), 1u);
  EXPECT_EQ(h.sso.portal[0].target,
            "/federation/credentials?role_name=Admin&account_id=111122223333");
  EXPECT_EQ(h.sso.portal[0].bearer, "Sekrit-cached-access-0001");
  EXPECT_EQ(h.sso.oidc_calls(), 0u);  // three hours left: no refresh
}

TEST(SsoCredentials, RoleCredentialsSignTheCallsOfTheClient) {
  SsoHome h;
  h.write_token(h.session_cache(), h.token(180, false));
  // A loopback STS that checks the signature was made with the portal's keys.
  LocalServer sts;
  std::string authorization, token_header;
  sts.http().Post("/", [&](const httplib::Request& req, httplib::Response& res) {
    authorization = req.get_header_value("Authorization");
    token_header = req.get_header_value("X-Amz-Security-Token");
    res.set_content(
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::111122223333:"
        "assumed-role/Admin/u</Arn><UserId>U</UserId><Account>111122223333</Account>"
        "</GetCallerIdentityResult></GetCallerIdentityResponse>",
        "text/xml");
  });
  sts.start();
  ClientSettings s;
  s.profile = "dev";
  s.endpoint_url = sts.url();
  auto client = make_client(s);
  ASSERT_TRUE(client.has_value()) << client.error().message;
  auto who = sts::get_caller_identity(**client);
  ASSERT_TRUE(who.has_value()) << who.error().message;
  EXPECT_EQ(who->account, "111122223333");
  EXPECT_NE(authorization.find("Credential=AKIAAWSEMU0EXAMPLE00/"), std::string::npos)
      << authorization;
  EXPECT_EQ(token_header, "Sekrit-sso-session-token-0001");
  // --endpoint-url is for the command's service, not the SSO portal.
  EXPECT_EQ(h.sso.portal_calls(), 1u);
}

TEST(SsoCredentials, NearExpiryTokenIsRefreshedOnceAndTheCacheRewritten) {
  SsoHome h;
  h.write_token(h.session_cache(), h.token(/*minutes_left=*/10, /*refreshable=*/true));
  auto p = h.provider("dev");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  auto c = (*p)->get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(h.sso.oidc_calls(), 1u);
  EXPECT_EQ(h.sso.oidc[0].target, "/token");
  EXPECT_EQ(h.sso.oidc[0].content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(h.sso.oidc[0].body),
            nlohmann::json({{"grantType", "refresh_token"},
                            {"clientId", "client-id-0001"},
                            {"clientSecret", "Sekrit-client-secret-0001"},
                            {"refreshToken", "Sekrit-cached-refresh-0001"}}));
  ASSERT_EQ(h.sso.portal_calls(), 1u);
  EXPECT_EQ(h.sso.portal[0].bearer, "Sekrit-refreshed-access-0001");

  struct stat st {};
  ASSERT_EQ(::stat(h.session_cache().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto text = read_file(h.session_cache());
  ASSERT_TRUE(text.has_value());
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["accessToken"], "Sekrit-refreshed-access-0001");
  EXPECT_EQ(j["refreshToken"], "Sekrit-refreshed-refresh-0001");
  SystemTime expires;
  ASSERT_TRUE(parse_iso8601(j["expiresAt"].get<std::string>(), &expires));
  EXPECT_GT(expires, std::chrono::system_clock::now() + std::chrono::hours(7));
  // The client registration and everything else the CLI wrote is kept.
  EXPECT_EQ(j["clientId"], "client-id-0001");
  EXPECT_EQ(j["clientSecret"], "Sekrit-client-secret-0001");
  EXPECT_EQ(j["registrationExpiresAt"], h.token(0, true)["registrationExpiresAt"]);
  EXPECT_EQ(j["startUrl"], "https://corp.awsapps.com/start");
  EXPECT_EQ(j["scopes"], nlohmann::json({"sso:account:access"}));
  // No temporary file is left beside it (the rewrite is a rename).
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(h.home.path() + "/.aws/sso/cache")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST(SsoCredentials, ExpiredTokenWithoutRefreshTokenSaysHowToLogInAndCallsNothing) {
  SsoHome h;
  h.write_token(h.session_cache(), h.token(/*minutes_left=*/-5, /*refreshable=*/false));
  auto p = h.provider("dev");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  auto c = (*p)->get();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("The SSO session associated with this profile has expired or "
                                   "is otherwise invalid"),
            std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().hint.find("`aws sso login --sso-session corp`"), std::string::npos)
      << c.error().hint;
  EXPECT_EQ(h.sso.portal_calls(), 0u);
  EXPECT_EQ(h.sso.oidc_calls(), 0u);
  EXPECT_EQ(c.error().message.find("Sekrit"), std::string::npos) << c.error().message;
}

TEST(SsoCredentials, RejectedRefreshOfAnExpiredTokenSaysHowToLogIn) {
  SsoHome h;
  h.sso.oidc_status = 400;
  h.write_token(h.session_cache(), h.token(-5, true));
  auto c = (*h.provider("dev"))->get();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("invalid_grant"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().hint.find("`aws sso login --sso-session corp`"), std::string::npos);
  EXPECT_EQ(h.sso.oidc_calls(), 1u);  // a 400 is not retried
  EXPECT_EQ(h.sso.portal_calls(), 0u);
  EXPECT_EQ(c.error().message.find("Sekrit"), std::string::npos) << c.error().message;
}

TEST(SsoCredentials, PortalRejectingTheTokenSaysHowToLogIn) {
  SsoHome h;
  h.sso.portal_status = 401;
  h.write_token(h.session_cache(), h.token(180, true));
  auto c = (*h.provider("dev"))->get();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("has expired or is otherwise invalid"), std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().message.find("UnauthorizedException"), std::string::npos);
  EXPECT_NE(c.error().hint.find("`aws sso login --sso-session corp`"), std::string::npos);
  EXPECT_EQ(h.sso.portal_calls(), 1u);  // not retried
}

TEST(SsoCredentials, LegacyExpiredTokenIsNotRefreshed) {
  SsoHome h;
  auto token = h.token(-5, true);  // even with refresh fields, legacy profiles never refresh
  token["startUrl"] = "https://old.awsapps.com/start";
  h.write_token(h.legacy_cache(), token);
  auto c = (*h.provider("old"))->get();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("has expired or is otherwise invalid"), std::string::npos);
  EXPECT_NE(c.error().hint.find("`aws sso login --profile old`"), std::string::npos)
      << c.error().hint;
  EXPECT_EQ(h.sso.oidc_calls(), 0u);
  EXPECT_EQ(h.sso.portal_calls(), 0u);
}

TEST(SsoCredentials, LegacyValidTokenIsUsedAsIs) {
  SsoHome h;
  auto token = h.token(8, true);  // under 15 minutes left, but legacy: no refresh
  h.write_token(h.legacy_cache(), token);
  auto c = (*h.provider("old"))->get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(h.sso.oidc_calls(), 0u);
  ASSERT_EQ(h.sso.portal_calls(), 1u);
  EXPECT_EQ(h.sso.portal[0].target,
            "/federation/credentials?role_name=Reader&account_id=111122223333");
}

TEST(SsoCredentials, MissingTokenSaysHowToLogIn) {
  SsoHome h;
  auto c = (*h.provider("dev"))->get();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("Error loading SSO Token: Token for corp does not exist"),
            std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().hint.find("aws sso login --sso-session corp"), std::string::npos);
}

TEST(SsoCredentials, ManyThreadsShareOneRefreshAndOnePortalCall) {
  SsoHome h;
  h.sso.portal_delay_ms = 100;
  h.write_token(h.session_cache(), h.token(10, true));
  auto p = h.provider("dev");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if ((*p)->get()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16);
  EXPECT_EQ(h.sso.oidc_calls(), 1u);
  EXPECT_EQ(h.sso.portal_calls(), 1u);
}

TEST(SsoCredentials, ServicesSectionPointsTheSsoHosts) {
  SsoHome h;
  h.env.unset("AWS_ENDPOINT_URL_SSO");
  h.env.unset("AWS_ENDPOINT_URL_SSO_OIDC");
  h.home.write(".aws/config",
               "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = Admin\n"
               "services = local\n[sso-session corp]\nsso_start_url = https://c/start\n"
               "sso_region = eu-west-1\n[services local]\nsso =\n  endpoint_url = " +
                   h.sso.server.url() + "\nsso-oidc =\n  endpoint_url = " + h.sso.server.url() +
                   "\n");
  h.write_token(h.session_cache(), h.token(10, true));
  auto c = (*h.provider("dev"))->get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(h.sso.oidc_calls(), 1u);
  EXPECT_EQ(h.sso.portal_calls(), 1u);
}

TEST(SsoCredentials, DefaultHostsAreThePortalAndOidcOfTheSsoRegion) {
  EndpointResolver e("eu-west-1");
  EXPECT_EQ(e.endpoint("sso"), "https://portal.sso.eu-west-1.amazonaws.com");
  EXPECT_EQ(e.endpoint("sso-oidc"), "https://oidc.eu-west-1.amazonaws.com");
}

}  // namespace
}  // namespace amibake::aws
