// Profile files, region resolution and endpoint resolution.
#include "aws/config.h"

#include <gtest/gtest.h>

#include "aws/client.h"
#include "aws/test_support.h"

namespace amibake::aws {
namespace {

using testing::ScopedEnv;
using testing::TempHome;

TEST(ProfileFiles, ConfigUsesProfilePrefixAndCredentialsDoesNot) {
  auto f = ProfileFiles::parse("[default]\nregion = us-west-2\n[profile dev]\nregion=eu-west-1\n",
                               "[dev]\naws_access_key_id = AKID\n");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  ASSERT_NE(f->find("dev"), nullptr);
  EXPECT_EQ(f->find("dev")->at("region"), "eu-west-1");
  EXPECT_EQ(f->find("dev")->at("aws_access_key_id"), "AKID");
  EXPECT_EQ(f->find("default")->at("region"), "us-west-2");
  EXPECT_TRUE(f->in_credentials_file("dev"));
  EXPECT_FALSE(f->in_credentials_file("default"));
}

TEST(ProfileFiles, CredentialsFileWinsOverConfig) {
  auto f = ProfileFiles::parse("[profile a]\naws_access_key_id = FROMCONFIG\n",
                               "[a]\naws_access_key_id = FROMCREDS\n");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->find("a")->at("aws_access_key_id"), "FROMCREDS");
}

TEST(ProfileFiles, CommentsNestedValuesAndOtherSectionsAreIgnored) {
  auto f = ProfileFiles::parse(
      "# comment\n; other\n[sso-session corp]\nsso_region = x\n[profile p]\nRegion = ap-south-1\n"
      "s3 =\n  max_concurrent_requests = 10\n[services svc]\nec2 =\n  endpoint_url = http://x\n"
      "[notaprofile]\nregion = bad\n",
      "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->find("p")->at("region"), "ap-south-1");
  EXPECT_EQ(f->find("p")->count("max_concurrent_requests"), 0u);
  EXPECT_EQ(f->find("corp"), nullptr);
  EXPECT_EQ(f->find("notaprofile"), nullptr);
  EXPECT_EQ(f->find("svc"), nullptr);
}

TEST(ProfileFiles, MalformedLinesAreErrorsNamingFileAndLine) {
  auto f = ProfileFiles::parse("[profile x\n", "", "/h/.aws/config", "/h/.aws/credentials");
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("/h/.aws/config:1"), std::string::npos) << f.error().message;
  auto g = ProfileFiles::parse("", "[x]\njunk line\n", "c", "/h/.aws/credentials");
  ASSERT_FALSE(g.has_value());
  EXPECT_NE(g.error().message.find("/h/.aws/credentials:2"), std::string::npos);
}

TEST(ProfileFiles, LoadHonoursEnvironmentPaths) {
  ScopedEnv env;
  TempHome home(env);
  home.write("cfg", "[profile z]\nregion = sa-east-1\n");
  env.set("AWS_CONFIG_FILE", home.path() + "/cfg");
  env.set("AWS_SHARED_CREDENTIALS_FILE", home.path() + "/missing");
  auto f = ProfileFiles::load();
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->find("z")->at("region"), "sa-east-1");
  EXPECT_EQ(f->config_path(), home.path() + "/cfg");
}

TEST(ProfileFiles, MissingFilesAreEmpty) {
  ScopedEnv env;
  TempHome home(env);
  auto f = ProfileFiles::load();
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->names().empty());
}

TEST(Region, PrecedenceIsFlagThenEnvThenProfile) {
  ScopedEnv env;
  auto files = ProfileFiles::parse("[default]\nregion = ap-northeast-1\n", "").value();
  ClientSettings s;
  EXPECT_EQ(resolve_region(s, files, false)->region, "ap-northeast-1");
  env.set("AWS_DEFAULT_REGION", "eu-north-1");
  EXPECT_EQ(resolve_region(s, files, false)->region, "eu-north-1");
  env.set("AWS_REGION", "eu-west-3");
  EXPECT_EQ(resolve_region(s, files, false)->region, "eu-west-3");
  EXPECT_EQ(resolve_region(s, files, false)->source, "AWS_REGION");
  s.region = "us-east-2";
  EXPECT_EQ(resolve_region(s, files, false)->region, "us-east-2");
}

TEST(Region, SelectedProfileRegionIsUsed) {
  ScopedEnv env;
  env.set("AWS_PROFILE", "dev");
  auto files =
      ProfileFiles::parse("[default]\nregion = x-1\n[profile dev]\nregion = ca-central-1\n", "")
          .value();
  EXPECT_EQ(resolve_region({}, files, false)->region, "ca-central-1");
}

TEST(Region, MissingRegionIsAnErrorWithHint) {
  ScopedEnv env;
  auto files = ProfileFiles::parse("", "").value();
  auto r = resolve_region({}, files, /*try_imds=*/true);  // IMDS disabled by ScopedEnv
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "region: not set");
  EXPECT_NE(r.error().hint.find("--region"), std::string::npos);
  EXPECT_NE(r.error().hint.find("AWS_REGION"), std::string::npos);
}

TEST(Region, GarbageRegionIsRefused) {
  ScopedEnv env;
  ClientSettings s;
  s.region = "us-east-1/../evil";
  EXPECT_FALSE(resolve_region(s, ProfileFiles::parse("", "").value(), false).has_value());
}

TEST(Region, ImdsRegionIsTheLastResort) {
  ScopedEnv env;
  testing::LocalServer imds;
  imds.http().Put("/latest/api/token", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("tok", "text/plain");
  });
  imds.http().Get("/latest/meta-data/placement/region",
                  [](const httplib::Request&, httplib::Response& res) {
                    res.set_content("me-south-1", "text/plain");
                  });
  imds.start();
  env.unset("AWS_EC2_METADATA_DISABLED");
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
  auto r = resolve_region({}, ProfileFiles::parse("", "").value(), true);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->region, "me-south-1");
  EXPECT_NE(r->source.find("IMDS"), std::string::npos);
}

TEST(Endpoints, DefaultIsRegionalAmazonaws) {
  ScopedEnv env;
  EndpointResolver e("us-west-1", {}, nullptr);
  EXPECT_EQ(e.endpoint("ec2"), "https://ec2.us-west-1.amazonaws.com");
  EXPECT_EQ(e.endpoint("sts"), "https://sts.us-west-1.amazonaws.com");
  EXPECT_EQ(e.endpoint_source("ec2"), "default");
  EndpointResolver cn("cn-north-1", {}, nullptr);
  EXPECT_EQ(cn.endpoint("ec2"), "https://ec2.cn-north-1.amazonaws.com.cn");
}

TEST(Endpoints, ServiceVariableBeatsGlobalVariable) {
  ScopedEnv env;
  env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:1000/");
  env.set("AWS_ENDPOINT_URL_EBS", "http://127.0.0.1:2000");
  EndpointResolver e("us-east-1", {}, nullptr);
  EXPECT_EQ(e.endpoint("ebs"), "http://127.0.0.1:2000");
  EXPECT_EQ(e.endpoint_source("ebs"), "AWS_ENDPOINT_URL_EBS");
  EXPECT_EQ(e.endpoint("ec2"), "http://127.0.0.1:1000");
  EXPECT_EQ(e.endpoint_source("ec2"), "AWS_ENDPOINT_URL");
}

TEST(Endpoints, FlagBeatsEverything) {
  ScopedEnv env;
  env.set("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:2000");
  ClientSettings s;
  s.endpoint_url = "http://127.0.0.1:3000";
  EndpointResolver e("us-east-1", s, nullptr);
  EXPECT_EQ(e.endpoint("ec2"), "http://127.0.0.1:3000");
}

TEST(Endpoints, ProfileEndpointUrlComesAfterEnvironment) {
  ScopedEnv env;
  ProfileSection p{{"endpoint_url", "http://127.0.0.1:4000"}};
  EXPECT_EQ(EndpointResolver("us-east-1", {}, &p).endpoint("ssm"), "http://127.0.0.1:4000");
  env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
  EXPECT_EQ(EndpointResolver("us-east-1", {}, &p).endpoint("ssm"), "http://127.0.0.1:5000");
}

TEST(Endpoints, IgnoreConfiguredEndpointsSwitchIsHonoured) {
  ScopedEnv env;
  env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
  env.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
  EXPECT_EQ(EndpointResolver("us-east-1", {}, nullptr).endpoint("ssm"),
            "https://ssm.us-east-1.amazonaws.com");
}

TEST(Endpoints, EnvSuffixIsUpperCase) { EXPECT_EQ(endpoint_env_suffix("ebs"), "EBS"); }

TEST(ProfileFiles, SsoSessionAndServicesSectionsAreKeptApart) {
  auto f = ProfileFiles::parse(
      "[sso-session corp]\nsso_region = eu-west-1\n[services local]\nec2 =\n"
      "  endpoint_url = http://127.0.0.1:1\nSSO OIDC =\n  endpoint_url = http://127.0.0.1:2\n"
      "[profile p]\nservices = local\n",
      "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  ASSERT_NE(f->sso_session("corp"), nullptr);
  EXPECT_EQ(f->sso_session("corp")->at("sso_region"), "eu-west-1");
  const ServiceSection* s = f->services_of("p");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->at("ec2").at("endpoint_url"), "http://127.0.0.1:1");
  EXPECT_EQ(s->at("sso_oidc").at("endpoint_url"), "http://127.0.0.1:2");
  EXPECT_EQ(f->services_of("nobody"), nullptr);
}

TEST(ProfileFiles, IndentedLinesWithoutAValueAreNotErrors) {
  auto f = ProfileFiles::parse("[profile p]\nregion = eu-west-1\n  some continuation\n", "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->find("p")->at("region"), "eu-west-1");
}

// SDK order: --endpoint-url, AWS_ENDPOINT_URL_<SVC>, [services] <svc>, AWS_ENDPOINT_URL,
// the profile's endpoint_url, the default.
TEST(Endpoints, ServicesSectionSitsBetweenServiceAndGlobalVariables) {
  ScopedEnv env;
  auto f = ProfileFiles::parse(
      "[profile p]\nservices = local\nendpoint_url = http://127.0.0.1:9\n[services local]\n"
      "ec2 =\n  endpoint_url = http://127.0.0.1:1/\nsts =\n  endpoint_url = http://127.0.0.1:2\n",
      "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  auto resolver = [&](ClientSettings s = {}) {
    return EndpointResolver("us-east-1", s, f->find("p"), f->services_of("p"), "local");
  };
  EXPECT_EQ(resolver().endpoint("ec2"), "http://127.0.0.1:1");
  EXPECT_EQ(resolver().endpoint_source("ec2"), "[services local] ec2");
  EXPECT_EQ(resolver().endpoint("ssm"), "http://127.0.0.1:9");  // profile endpoint_url
  EXPECT_EQ(resolver().endpoint_source("ssm"), "profile endpoint_url");
  env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:8");
  EXPECT_EQ(resolver().endpoint("ssm"), "http://127.0.0.1:8");
  EXPECT_EQ(resolver().endpoint("ec2"), "http://127.0.0.1:1");
  env.set("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:7");
  EXPECT_EQ(resolver().endpoint("ec2"), "http://127.0.0.1:7");
  EXPECT_EQ(resolver().endpoint("sts"), "http://127.0.0.1:2");
  ClientSettings flag;
  flag.endpoint_url = "http://127.0.0.1:6";
  EXPECT_EQ(resolver(flag).endpoint("sts"), "http://127.0.0.1:6");
}

TEST(Endpoints, IgnoreConfiguredEndpointsAlsoComesFromTheProfile) {
  ScopedEnv env;
  auto f = ProfileFiles::parse(
      "[profile p]\nservices = local\nendpoint_url = http://127.0.0.1:9\n"
      "ignore_configured_endpoint_urls = true\n[services local]\nec2 =\n"
      "  endpoint_url = http://127.0.0.1:1\n",
      "");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EndpointResolver e("us-east-1", {}, f->find("p"), f->services_of("p"), "local");
  EXPECT_EQ(e.endpoint("ec2"), "https://ec2.us-east-1.amazonaws.com");
  EXPECT_EQ(e.endpoint("ssm"), "https://ssm.us-east-1.amazonaws.com");
  // The variable wins over the profile key, either way.
  env.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false");
  EXPECT_EQ(EndpointResolver("us-east-1", {}, f->find("p"), f->services_of("p"), "local")
                .endpoint("ec2"),
            "http://127.0.0.1:1");
  // --endpoint-url is not a configured endpoint: never ignored.
  env.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
  ClientSettings flag;
  flag.endpoint_url = "http://127.0.0.1:6";
  EXPECT_EQ(EndpointResolver("us-east-1", flag, f->find("p")).endpoint("ec2"),
            "http://127.0.0.1:6");
}

TEST(Endpoints, SsoVariablesNameTheSsoHosts) {
  ScopedEnv env;
  env.set("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:11");
  env.set("AWS_ENDPOINT_URL_SSO_OIDC", "http://127.0.0.1:12");
  EndpointResolver e("eu-west-1", {}, nullptr);
  EXPECT_EQ(e.endpoint("sso"), "http://127.0.0.1:11");
  EXPECT_EQ(e.endpoint("sso-oidc"), "http://127.0.0.1:12");
  EXPECT_EQ(e.endpoint_source("sso-oidc"), "AWS_ENDPOINT_URL_SSO_OIDC");
}

TEST(MakeClient, ProfileServicesSectionSendsCallsThere) {
  ScopedEnv env;
  TempHome home(env);
  home.write(".aws/config",
             "[profile dev]\nregion = eu-west-2\nservices = local\n[services local]\n"
             "ec2 =\n  endpoint_url = http://127.0.0.1:4566\n");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-env-secret-0002");
  ClientSettings s;
  s.profile = "dev";
  auto c = make_client(s);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ((*c)->endpoint("ec2"), "http://127.0.0.1:4566");
  EXPECT_EQ((*c)->endpoint_source("ec2"), "[services local] ec2");
  EXPECT_EQ((*c)->endpoint("ssm"), "https://ssm.eu-west-2.amazonaws.com");
}

}  // namespace
}  // namespace amibake::aws
