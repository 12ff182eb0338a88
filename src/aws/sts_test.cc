// STS operations against a loopback server, and answer parsing.
#include "aws/sts.h"

#include <gtest/gtest.h>

#include "aws/test_support.h"

namespace amibake::aws {
namespace {

using testing::LocalServer;
using testing::ScopedEnv;

const Credentials kCreds{"AKIDSTS", "Sekrit-sts-secret-0001", "", std::nullopt, "test"};

struct StsServer {
  LocalServer server;
  int status = 200;
  std::string body;
  std::string last_body, last_auth, last_ct;
  StsServer() {
    server.http().Post("/", [this](const httplib::Request& req, httplib::Response& res) {
      last_body = req.body;
      last_auth = req.get_header_value("Authorization");
      last_ct = req.get_header_value("Content-Type");
      res.status = status;
      res.set_content(body, "text/xml");
    });
    server.start();
  }
  std::unique_ptr<AwsClient> client() { return AwsClient::for_endpoint(server.url(), kCreds); }
};

TEST(Sts, GetCallerIdentityReturnsAccountAndArn) {
  ScopedEnv env;
  StsServer s;
  s.body =
      "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/baker</Arn><UserId>AIDAX"
      "</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata>"
      "<RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
  auto id = sts::get_caller_identity(*s.client());
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ(id->account, "123456789012");
  EXPECT_EQ(id->arn, "arn:aws:iam::123456789012:user/baker");
  EXPECT_EQ(id->user_id, "AIDAX");
  EXPECT_EQ(s.last_body, "Action=GetCallerIdentity&Version=2011-06-15");
  EXPECT_EQ(s.last_ct, "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_NE(s.last_auth.find("Credential=AKIDSTS/"), std::string::npos);
}

TEST(Sts, TruncatedAnswerIsAClearError) {
  ScopedEnv env;
  StsServer s;
  s.body = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:i";
  auto id = sts::get_caller_identity(*s.client());
  ASSERT_FALSE(id.has_value());
  EXPECT_NE(id.error().message.find("sts GetCallerIdentity: unreadable answer"), std::string::npos)
      << id.error().message;
}

TEST(Sts, AccessDeniedOnAssumeRoleNamesTheAction) {
  ScopedEnv env;
  StsServer s;
  s.status = 403;
  s.body =
      "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not "
      "authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-2</RequestId>"
      "</ErrorResponse>";
  auto c = sts::assume_role(*s.client(), {"arn:aws:iam::1:role/X", "", "", 0, "", ""});
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().aws_code, "AccessDenied");
  EXPECT_EQ(c.error().request_id, "r-2");
  EXPECT_NE(c.error().hint.find("grant sts:AssumeRole"), std::string::npos);
  EXPECT_NE(s.last_body.find("RoleSessionName=amibake-"), std::string::npos) << s.last_body;
}

TEST(Sts, CredentialsXmlMustBeComplete) {
  auto c = sts::parse_credentials_xml(
      "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
      "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
      "AssumeRoleResult");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("incomplete Credentials"), std::string::npos);
  EXPECT_FALSE(sts::parse_credentials_xml("", "AssumeRoleResult").has_value());
  EXPECT_FALSE(sts::parse_credentials_xml("<a><b>", "AssumeRoleResult").has_value());
}

TEST(Sts, BadExpirationIsAnError) {
  auto c = sts::parse_credentials_xml(
      "<R><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>"
      "Sekrit-x-0001</SecretAccessKey><SessionToken>Sekrit-t-0001</SessionToken><Expiration>soon"
      "</Expiration></Credentials></AssumeRoleResult></R>",
      "AssumeRoleResult");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("Expiration"), std::string::npos);
}


}  // namespace
}  // namespace amibake::aws
