// Tests for SSM Parameter Store: JSON 1.1 bodies and headers as botocore sends them
// (botocore's json.dumps adds spaces after separators; ours is compact, which the
// service treats the same), answers from fixtures, batching and pagination.
#include "aws/ssm.h"

#include <gtest/gtest.h>

#include "aws/ops_fake_transport_test.h"

namespace amibake::aws::ssm {
namespace {

using testing::header_of;
using testing::make_scripted_client;
using testing::ScriptedTransport;

std::string header(const AwsRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

TEST(SsmEncode, GetParameterSetsTargetAndContentType) {
  AwsRequest r = encode_get_parameter("/aws/service/ecs/x", true);
  EXPECT_EQ(r.service, "ssm");
  EXPECT_EQ(r.protocol, Protocol::kJson);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(header(r, "X-Amz-Target"), "AmazonSSM.GetParameter");
  EXPECT_EQ(header(r, "Content-Type"), "application/x-amz-json-1.1");
  EXPECT_EQ(r.body, R"({"Name":"/aws/service/ecs/x","WithDecryption":true})");
}

TEST(SsmEncode, GetParametersListsNames) {
  EXPECT_EQ(encode_get_parameters({"/a", "/b"}, false).body, R"({"Names":["/a","/b"]})");
}

TEST(SsmEncode, PutParameterMatchesBotocoreFieldOrder) {
  PutParameterRequest p;
  p.name = "/a/b";
  p.description = "d";
  p.value = "ami-1";
  p.overwrite = true;
  p.tier = "Standard";
  p.data_type = "aws:ec2:image";
  AwsRequest r = encode_put_parameter(p);
  EXPECT_EQ(r.body,
            R"({"Name":"/a/b","Description":"d","Value":"ami-1","Type":"String","Overwrite":true,)"
            R"("Tier":"Standard","DataType":"aws:ec2:image"})");
  EXPECT_TRUE(r.idempotent);
}

TEST(SsmEncode, PutParameterWithTagsIsNotResent) {
  PutParameterRequest p;
  p.name = "/a/b";
  p.value = "v";
  p.tags = {{"k", "v"}};
  AwsRequest r = encode_put_parameter(p);
  EXPECT_EQ(r.body,
            R"({"Name":"/a/b","Value":"v","Type":"String","Tags":[{"Key":"k","Value":"v"}]})");
  EXPECT_FALSE(r.idempotent);
}

TEST(SsmEncode, InvalidUtf8IsReplacedNotThrown) {
  PutParameterRequest p;
  p.name = "/a";
  p.value = "bad \xff byte";
  AwsRequest r = encode_put_parameter(p);  // must not throw
  EXPECT_EQ(r.body, "{\"Name\":\"/a\",\"Value\":\"bad \xef\xbf\xbd byte\",\"Type\":\"String\"}");
}

TEST(SsmEncode, GetParametersByPathCarriesToken) {
  GetParametersByPathRequest p{"/aws", true, false, 10};
  EXPECT_EQ(encode_get_parameters_by_path(p, "t").body,
            R"({"Path":"/aws","Recursive":true,"MaxResults":10,"NextToken":"t"})");
}

TEST(SsmParse, GetParameterReadsAllFields) {
  auto p = parse_get_parameter(
      R"({"Parameter":{"ARN":"arn:aws:ssm:us-east-1::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "DataType":"text","LastModifiedDate":1.715812345123E9,
    "Name":"/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "Type":"String","Value":"ami-0123456789abcdef0","Version":57}})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->value, "ami-0123456789abcdef0");
  EXPECT_EQ(p->version, 57);
  EXPECT_EQ(p->type, "String");
  EXPECT_EQ(p->data_type, "text");
  ASSERT_TRUE(p->last_modified_date.has_value());
  EXPECT_NEAR(*p->last_modified_date, 1715812345.123, 0.001);
}

TEST(SsmParse, GetParameterWithoutParameterIsError) {
  auto p = parse_get_parameter("{}");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "ssm GetParameter: malformed answer: no \"Parameter\" object");
}

TEST(SsmParse, GetParameterWrongTypesAreErrors) {
  EXPECT_FALSE(parse_get_parameter(R"({"Parameter":[]})"));
  EXPECT_FALSE(parse_get_parameter(R"({"Parameter":{"Value":7}})"));
  EXPECT_FALSE(parse_get_parameter(R"({"Parameter":{"Version":"x"}})"));
  EXPECT_FALSE(parse_get_parameter(R"({"Parameter":{"Name":"a")"));
}

TEST(SsmParse, GetParametersReadsInvalidNames) {
  auto p = parse_get_parameters(
      R"({"InvalidParameters":["/nope"],"Parameters":[{"Name":"/a","Value":"1","Version":1}]})");
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->parameters.size(), 1u);
  EXPECT_EQ(p->parameters[0].name, "/a");
  ASSERT_EQ(p->invalid_parameters.size(), 1u);
  EXPECT_EQ(p->invalid_parameters[0], "/nope");
  EXPECT_FALSE(parse_get_parameters(R"({"Parameters":[1]})"));
  EXPECT_FALSE(parse_get_parameters(R"({"InvalidParameters":[1]})"));
}

TEST(SsmParse, PutParameterReadsVersion) {
  auto p = parse_put_parameter(R"({"Tier":"Standard","Version":3})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->version, 3);
  EXPECT_EQ(p->tier, "Standard");
}

TEST(SsmCall, GetParametersBatchesByTen) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(200, R"({"Parameters":[{"Name":"/p0","Value":"v"}],"InvalidParameters":[]})");
  transport->answer(200, R"({"Parameters":[],"InvalidParameters":["/p10"]})");
  auto client = make_scripted_client(transport);
  std::vector<std::string> names;
  for (int i = 0; i < 11; ++i) names.push_back("/p" + std::to_string(i));
  auto r = get_parameters(*client, names);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->parameters.size(), 1u);
  EXPECT_EQ(r->invalid_parameters, std::vector<std::string>{"/p10"});
  auto sent = transport->requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(sent[0].body.find("\"/p9\""), std::string::npos);
  EXPECT_EQ(sent[1].body, R"({"Names":["/p10"]})");
  EXPECT_EQ(header_of(sent[0], "X-Amz-Target"), "AmazonSSM.GetParameters");
}

TEST(SsmCall, GetParametersByPathFollowsTokens) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(200, R"({"Parameters":[{"Name":"/a/1","Value":"x"}],"NextToken":"n1"})");
  transport->answer(200, R"({"Parameters":[{"Name":"/a/2","Value":"y"}]})");
  auto client = make_scripted_client(transport);
  auto r = get_parameters_by_path(*client, {"/a", true, false, {}});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].name, "/a/2");
  EXPECT_EQ(transport->requests()[1].body, R"({"Path":"/a","Recursive":true,"NextToken":"n1"})");
}

TEST(SsmCall, ParameterNotFoundCarriesCode) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(400, R"({"__type":"ParameterNotFound","message":""})",
                    {{"x-amzn-RequestId", "req-9"}});
  auto client = make_scripted_client(transport);
  auto p = get_parameter(*client, "/nope");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().aws_code, "ParameterNotFound");
}

}  // namespace
}  // namespace amibake::aws::ssm
