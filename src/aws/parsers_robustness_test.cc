// Deterministic fuzz-lite for the parsers of untrusted input: every prefix and a set
// of byte mutations of valid answers must give a value or a clear error, never a
// crash or an exception. (core_answers_fuzz.cc is the libFuzzer version.)
#include <gtest/gtest.h>

#include "aws/client.h"
#include "aws/config.h"
#include "aws/credential_sources.h"
#include "aws/sigv4.h"
#include "aws/sts.h"

namespace amibake::aws {
namespace {

const std::vector<std::string> kSamples = {
    "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>m</Message></Error>"
    "</Errors><RequestID>r</RequestID></Response>",
    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>m</Message>"
    "</Error><RequestId>r</RequestId></ErrorResponse>",
    R"({"__type":"com.amazonaws.ssm#ParameterNotFound","message":"m"})",
    "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
    "<SecretAccessKey>Sekrit-fz-0001</SecretAccessKey><SessionToken>Sekrit-fz-t-01</SessionToken>"
    "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult>"
    "</AssumeRoleResponse>",
    R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"Sekrit-fz-0002","Expiration":"2099-01-01T00:00:00Z"})",
    "[profile a]\nrole_arn = x\nsource_profile = b\n[b]\naws_access_key_id = k\n",
    "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abcdef",
};

void feed(const std::string& body) {
  AwsResponse resp{400, {{"x-amzn-ErrorType", body.substr(0, 40)}}, body};
  for (Protocol p : {Protocol::kEc2, Protocol::kQuery, Protocol::kJson, Protocol::kRestJson}) {
    (void)parse_aws_error(p, resp);
  }
  (void)sts::parse_credentials_xml(body, "AssumeRoleResult");
  (void)parse_credentials_json(body, "test");
  (void)ProfileFiles::parse(body, body);
  sigv4::ParsedAuthorization auth;
  (void)sigv4::parse_authorization(body, &auth);
  (void)sigv4::canonical_request({"GET", body, body, {{"Host", body}}, ""});
}

TEST(ParserRobustness, EveryPrefixOfValidAnswersIsHandled) {
  for (const auto& s : kSamples) {
    for (size_t n = 0; n <= s.size(); ++n) EXPECT_NO_THROW(feed(s.substr(0, n)));
  }
}

TEST(ParserRobustness, ByteMutationsAreHandled) {
  const char kBytes[] = {'\0', '<', '>', '"', '\\', '%', '&', '=', ';', '\n', '\xff', '#', '['};
  for (const auto& s : kSamples) {
    for (size_t i = 0; i < s.size(); ++i) {
      for (char b : kBytes) {
        std::string m = s;
        m[i] = b;
        EXPECT_NO_THROW(feed(m));
      }
    }
  }
}

TEST(ParserRobustness, TruncatedCredentialAnswersAreErrorsNotValues) {
  const std::string& xml = kSamples[3];
  for (size_t n = 0; n + 1 < xml.size(); ++n) {
    EXPECT_FALSE(sts::parse_credentials_xml(xml.substr(0, n), "AssumeRoleResult").has_value()) << n;
  }
  const std::string& json = kSamples[4];
  for (size_t n = 0; n + 1 < json.size(); ++n) {
    EXPECT_FALSE(parse_credentials_json(json.substr(0, n), "t").has_value()) << n;
  }
}

}  // namespace
}  // namespace amibake::aws
