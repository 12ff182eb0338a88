// Model-driven encoding against the exact requests botocore's serializers make for the
// same inputs (captured with botocore 1.43 and pasted here), and decoding of answers
// shaped as AWS documents them.
#include "aws/model.h"

#include <gtest/gtest.h>

#include "aws/ops_fake_transport_test.h"

namespace amibake::aws::model {
namespace {

std::string header(const AwsRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

TEST(Model, EmbeddedModelsLoadAndListTheirOperations) {
  EXPECT_EQ(ec2().protocol, Protocol::kEc2);
  EXPECT_TRUE(ec2().has("CopyImage"));
  EXPECT_TRUE(ec2().has("DescribeLaunchTemplateVersions"));
  EXPECT_EQ(ssm().protocol, Protocol::kJson);
  EXPECT_EQ(ssm().target_prefix, "AmazonSSM");
  EXPECT_EQ(batch().protocol, Protocol::kRestJson);
  EXPECT_EQ(kms().protocol, Protocol::kJson);
  EXPECT_EQ(kms().target_prefix, "TrentService");
  EXPECT_TRUE(kms().has("DescribeKey"));
  EXPECT_FALSE(ec2().has("NoSuchOperation"));
}

TEST(Model, Ec2BodiesAreBotocoresBytes) {
  auto copy = encode(ec2(), "CopyImage",
                     Json{{"SourceImageId", "ami-1"}, {"SourceRegion", "us-east-1"}, {"Name", "nam"},
                          {"ClientToken", "tok"}, {"CopyImageTags", true}, {"Encrypted", true},
                          {"KmsKeyId", "alias/x"}});
  ASSERT_TRUE(copy) << copy.error().message;
  EXPECT_EQ(copy->body,
            "Action=CopyImage&Version=2016-11-15&SourceImageId=ami-1&SourceRegion=us-east-1&Name="
            "nam&ClientToken=tok&CopyImageTags=true&Encrypted=true&KmsKeyId=alias%2Fx");
  EXPECT_TRUE(copy->idempotent);
  EXPECT_EQ(copy->service, "ec2");

  auto share = encode(ec2(), "ModifyImageAttribute",
                      Json{{"ImageId", "ami-1"},
                           {"LaunchPermission",
                            {{"Add", Json::array({{{"UserId", "111122223333"}},
                                                  {{"OrganizationArn", "arn:o"}}})}}}});
  ASSERT_TRUE(share) << share.error().message;
  EXPECT_EQ(share->body,
            "Action=ModifyImageAttribute&Version=2016-11-15&ImageId=ami-1&LaunchPermission.Add.1."
            "UserId=111122223333&LaunchPermission.Add.2.OrganizationArn=arn%3Ao");

  // A list member with a locationName is sent under it (Versions -> LaunchTemplateVersion.N).
  auto versions = encode(ec2(), "DescribeLaunchTemplateVersions",
                         Json{{"LaunchTemplateName", "ltx"},
                              {"Versions", Json::array({"$Default", "$Latest"})}});
  ASSERT_TRUE(versions) << versions.error().message;
  EXPECT_EQ(versions->body,
            "Action=DescribeLaunchTemplateVersions&Version=2016-11-15&LaunchTemplateName=ltx&"
            "LaunchTemplateVersion.1=%24Default&LaunchTemplateVersion.2=%24Latest");

  auto lt = encode(ec2(), "CreateLaunchTemplateVersion",
                   Json{{"LaunchTemplateName", "ltx"}, {"SourceVersion", "3"},
                        {"VersionDescription", "d"}, {"LaunchTemplateData", {{"ImageId", "ami-2"}}}});
  ASSERT_TRUE(lt) << lt.error().message;
  EXPECT_EQ(lt->body,
            "Action=CreateLaunchTemplateVersion&Version=2016-11-15&LaunchTemplateName=ltx&"
            "SourceVersion=3&VersionDescription=d&LaunchTemplateData.ImageId=ami-2");
  // Without its ClientToken a create is not safe to resend.
  EXPECT_FALSE(lt->idempotent);
}

TEST(Model, JsonAndRestJsonRequestsAreBotocores) {
  auto h = encode(ssm(), "GetParameterHistory", Json{{"Name", "/a/b"}, {"MaxResults", 50}});
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->body, R"({"Name":"/a/b","MaxResults":50})");
  EXPECT_EQ(header(*h, "X-Amz-Target"), "AmazonSSM.GetParameterHistory");
  EXPECT_EQ(header(*h, "Content-Type"), "application/x-amz-json-1.1");

  auto ce = encode(batch(), "UpdateComputeEnvironment",
                   Json{{"computeEnvironment", "ce"},
                        {"computeResources",
                         {{"ec2Configuration",
                           Json::array({{{"imageType", "ECS_AL2023"}, {"imageIdOverride", "ami-2"}}})}}}});
  ASSERT_TRUE(ce) << ce.error().message;
  EXPECT_EQ(ce->method, "POST");
  EXPECT_EQ(ce->path, "/v1/updatecomputeenvironment");
  EXPECT_EQ(ce->service, "batch");
  EXPECT_EQ(ce->body,
            R"({"computeEnvironment":"ce","computeResources":{"ec2Configuration":[{"imageType":"ECS_AL2023","imageIdOverride":"ami-2"}]}})");
  EXPECT_EQ(header(*ce, "Content-Type"), "application/json");
}

TEST(Model, RefusesWhatBotocoreWouldRefuse) {
  auto unknown = encode(ec2(), "CopyImage",
                        Json{{"SourceImageId", "ami-1"}, {"SourceRegion", "r"}, {"Name", "nam"}, {"Nmae", "x"}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("Nmae: the model has no such member"), std::string::npos)
      << unknown.error().message;

  auto missing = encode(ec2(), "CopyImage", Json{{"SourceImageId", "ami-1"}, {"Name", "nam"}});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("SourceRegion: required member missing"), std::string::npos);

  auto type = encode(ec2(), "CopyImage",
                     Json{{"SourceImageId", "ami-1"}, {"SourceRegion", "r"}, {"Name", "nam"}, {"Encrypted", "yes"}});
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("expected boolean, got string"), std::string::npos);

  auto shortname = encode(ec2(), "CopyImage",
                          Json{{"SourceImageId", "ami-1"}, {"SourceRegion", "r"}, {"Name", "n"}});
  ASSERT_FALSE(shortname);
  EXPECT_NE(shortname.error().message.find("minimum length 3"), std::string::npos);

  auto nested = encode(batch(), "UpdateComputeEnvironment",
                       Json{{"computeEnvironment", "ce"}, {"computeResources", {{"imageIdd", "x"}}}});
  ASSERT_FALSE(nested);
  EXPECT_NE(nested.error().message.find("computeResources.imageIdd"), std::string::npos);
}

TEST(Model, DecodesEc2XmlByTheModel) {
  const char* body = R"(<DescribeLaunchTemplateVersionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>65cadec1-b364-4354-8ca8-4176dexample</requestId>
    <launchTemplateVersionSet>
        <item>
            <createTime>2017-10-31T11:38:52.000Z</createTime>
            <defaultVersion>true</defaultVersion>
            <launchTemplateData>
                <imageId>ami-8c1be5f6</imageId>
                <instanceType>t2.micro</instanceType>
            </launchTemplateData>
            <launchTemplateId>lt-0a20c965061f64abc</launchTemplateId>
            <launchTemplateName>MyLaunchTemplate</launchTemplateName>
            <versionNumber>1</versionNumber>
        </item>
        <item>
            <defaultVersion>false</defaultVersion>
            <launchTemplateData><imageId>ami-2</imageId></launchTemplateData>
            <versionNumber>2</versionNumber>
        </item>
    </launchTemplateVersionSet>
</DescribeLaunchTemplateVersionsResponse>)";
  auto out = decode(ec2(), "DescribeLaunchTemplateVersions", body);
  ASSERT_TRUE(out) << out.error().message;
  const Json& v = (*out)["LaunchTemplateVersions"];
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]["VersionNumber"], 1);
  EXPECT_EQ(v[0]["DefaultVersion"], true);
  EXPECT_EQ(v[0]["LaunchTemplateData"]["ImageId"], "ami-8c1be5f6");
  EXPECT_EQ(v[1]["DefaultVersion"], false);
  EXPECT_EQ(v[1]["LaunchTemplateData"]["ImageId"], "ami-2");

  auto garbled = decode(ec2(), "DescribeLaunchTemplateVersions",
                        R"(<DescribeLaunchTemplateVersionsResponse><launchTemplateVersionSet><item>
                           <versionNumber>two</versionNumber></item></launchTemplateVersionSet>
                           </DescribeLaunchTemplateVersionsResponse>)");
  ASSERT_FALSE(garbled);
  EXPECT_NE(garbled.error().message.find("malformed answer"), std::string::npos);
  EXPECT_NE(garbled.error().message.find("VersionNumber is not an integer"), std::string::npos);
}

TEST(Model, DecodesJsonAndFollowsPages) {
  auto transport = std::make_shared<testing::ScriptedTransport>();
  transport->answer(200, R"({"computeEnvironments":[{"computeEnvironmentName":"a","status":"VALID"}],"nextToken":"t1"})");
  transport->answer(200, R"({"computeEnvironments":[{"computeEnvironmentName":"b","status":"UPDATING","computeResources":{"minvCpus":"0"}}]})");
  auto client = testing::make_scripted_client(transport);
  auto out = call_all_pages(*client, batch(), "DescribeComputeEnvironments", Json::object());
  ASSERT_TRUE(out) << out.error().message;
  const Json& ces = (*out)["computeEnvironments"];
  ASSERT_EQ(ces.size(), 2u);
  EXPECT_EQ(ces[0]["computeEnvironmentName"], "a");
  EXPECT_EQ(ces[1]["status"], "UPDATING");
  EXPECT_EQ(ces[1]["computeResources"]["minvCpus"], 0);  // a quoted number, typed by the model
  EXPECT_FALSE(out->contains("nextToken"));
  auto requests = transport->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body, R"({"nextToken":"t1"})");
}

}  // namespace
}  // namespace amibake::aws::model
