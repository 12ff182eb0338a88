// Tests for EC2/Query form encoding. Expected bodies were produced by botocore's EC2
// serializer (the AWS CLI's) for the same inputs, then pasted here.
#include "aws/query.h"

#include <gtest/gtest.h>

namespace amibake::aws {
namespace {

TEST(QueryForm, StartsWithActionAndVersion) {
  QueryForm f("DescribeImages", kEc2ApiVersion);
  EXPECT_EQ(f.encode(), "Action=DescribeImages&Version=2016-11-15");
}

TEST(QueryForm, PercentEncodesReservedCharactersLikeBotocore) {
  QueryForm f("X", "1");
  f.add("Name", "a b/c:d=e+f&g~h_i-j.k*%20");
  // botocore 1.43 (urlencode of the same value): a space is '+', a '+' is %2B.
  EXPECT_EQ(f.encode(), "Action=X&Version=1&Name=a+b%2Fc%3Ad%3De%2Bf%26g~h_i-j.k%2A%2520");
}

TEST(QueryForm, EncodesUtf8AsPercentBytes) {
  QueryForm f("X", "1");
  f.add("Description", "caf\xc3\xa9");
  EXPECT_EQ(f.encode(), "Action=X&Version=1&Description=caf%C3%A9");
}

TEST(QueryForm, KeepsEmptyValueForAdd) {
  QueryForm f("X", "1");
  f.add("BlockDeviceMapping.1.NoDevice", "");
  EXPECT_EQ(f.encode(), "Action=X&Version=1&BlockDeviceMapping.1.NoDevice=");
}

TEST(QueryForm, SkipsUnsetOptionalsAndEmptyStrings) {
  QueryForm f("X", "1");
  f.add_nonempty("A", "");
  f.add_bool("B", std::nullopt);
  f.add_int("C", std::nullopt);
  f.add_list("D", {});
  f.add_filters({});
  EXPECT_EQ(f.encode(), "Action=X&Version=1");
}

TEST(QueryForm, EncodesBooleansAndIntegers) {
  QueryForm f("X", "1");
  f.add_bool("T", true);
  f.add_bool("F", false);
  f.add_int("N", -5);
  f.add_int("Big", int64_t{1} << 40);
  EXPECT_EQ(f.encode(), "Action=X&Version=1&T=true&F=false&N=-5&Big=1099511627776");
}

TEST(QueryForm, FlattensListsFromOne) {
  QueryForm f("X", "1");
  f.add_list("ImageId", {"ami-1", "ami-2"});
  EXPECT_EQ(f.encode(), "Action=X&Version=1&ImageId.1=ami-1&ImageId.2=ami-2");
}

TEST(QueryForm, FlattensFiltersWithNumberedValues) {
  QueryForm f("DescribeImages", kEc2ApiVersion);
  f.add_filters({tag_filter("amibake:build-id", {"b 1", "b/2"}), tag_key_filter("temp")});
  EXPECT_EQ(f.encode(),
            "Action=DescribeImages&Version=2016-11-15&Filter.1.Name=tag%3Aamibake%3Abuild-id&"
            "Filter.1.Value.1=b+1&Filter.1.Value.2=b%2F2&Filter.2.Name=tag-key&"
            "Filter.2.Value.1=temp");
}

TEST(QueryForm, FlattensTagSpecifications) {
  QueryForm f("X", "1");
  f.add_tag_specifications(
      {{"image", {{"amibake:build-id", "b1"}, {"Name", "x y"}}}, {"snapshot", {{"k", ""}}}});
  EXPECT_EQ(f.encode(),
            "Action=X&Version=1&TagSpecification.1.ResourceType=image&"
            "TagSpecification.1.Tag.1.Key=amibake%3Abuild-id&TagSpecification.1.Tag.1.Value=b1&"
            "TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=x+y&"
            "TagSpecification.2.ResourceType=snapshot&TagSpecification.2.Tag.1.Key=k&"
            "TagSpecification.2.Tag.1.Value=");
}

TEST(QueryForm, MakeQueryRequestSetsFormContentTypeAndPost) {
  QueryForm f("DescribeImages", kEc2ApiVersion);
  AwsRequest r = make_query_request("ec2", Protocol::kEc2, "DescribeImages", f, true);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.service, "ec2");
  EXPECT_EQ(r.operation, "DescribeImages");
  EXPECT_EQ(r.body, "Action=DescribeImages&Version=2016-11-15");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Content-Type");
  EXPECT_EQ(r.headers[0].second, "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_TRUE(r.idempotent);
}

}  // namespace
}  // namespace amibake::aws
