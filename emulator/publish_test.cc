// What publishing an AMI needs of awsemu (issue 11), through its HTTP interface:
// regions as separate worlds, CopyImage across regions, sharing, deprecation,
// deregistration with snapshots, SSM aws:ec2:image parameters, launch templates, Batch
// compute environments and recorded instances.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "emulator/test_support.h"

namespace amibake::emu {
namespace {

using testing::Response;
using testing::TestEmu;

Options instant() {
  Options o;
  o.speed = 0;
  return o;
}

std::string catalog_image(TestEmu& emu) {
  return emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
}

// Copies the catalog image of `from` into emu.region; returns the new id.
std::string copy_from(TestEmu& emu, const std::string& from, const std::string& name,
                      std::map<std::string, std::string> extra = {}) {
  std::string target = emu.region;
  emu.region = from;
  std::string base = catalog_image(emu);
  emu.region = target;
  extra["SourceImageId"] = base;
  extra["SourceRegion"] = from;
  extra["Name"] = name;
  return emu.ec2("CopyImage", extra).xml("imageId");
}

// ---- regions ----

TEST(Regions, CatalogImagesExistInEveryRegionWithTheirOwnIds) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string east = catalog_image(emu);
  emu.region = "eu-west-1";
  std::string west = catalog_image(emu);
  ASSERT_FALSE(east.empty());
  ASSERT_FALSE(west.empty());
  EXPECT_NE(east, west);
  Response p = emu.ssm("GetParameter",
                       {{"Name", "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"}});
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(p.json()["Parameter"]["Value"], west);
  EXPECT_NE(p.json()["Parameter"]["ARN"].get<std::string>().find(":eu-west-1:"), std::string::npos);
  // The ids are stable: a restart gives the same ones.
  emu.restart();
  EXPECT_EQ(catalog_image(emu), west);
  emu.region = "us-east-1";
  EXPECT_EQ(catalog_image(emu), east);
}

TEST(Regions, EachRegionIsItsOwnWorld) {
  TestEmu emu(instant());
  std::string vol = emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}}).xml("volumeId");
  ASSERT_FALSE(vol.empty());
  emu.region = "us-west-2";
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).error_code(), "InvalidVolume.NotFound");
  // A zone of another region is refused; this region's zones are accepted.
  EXPECT_EQ(emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}}).status, 400);
  EXPECT_FALSE(emu.ec2("CreateVolume", {{"AvailabilityZone", "us-west-2b"}, {"Size", "1"}}).xml("volumeId").empty());
  EXPECT_EQ(emu.ec2("DescribeAvailabilityZones").xml("zoneId"), "usw2-az1");
  ASSERT_EQ(emu.ssm("PutParameter", {{"Name", "/p"}, {"Value", "west"}, {"Type", "String"}}).status, 200);
  emu.region = "us-east-1";
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/p"}}).error_code(), "ParameterNotFound");
}

TEST(Regions, UnknownRegionIsRefusedInEachProtocolsShape) {
  TestEmu emu(instant());
  emu.region = "xx-nowhere-1";
  Response e = emu.ec2("DescribeImages", {{"Owner.1", "self"}});
  EXPECT_EQ(e.error_code(), "AuthFailure");
  EXPECT_NE(e.body.find("Credential should be scoped to a valid region"), std::string::npos);
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/p"}}).error_code(), "InvalidSignatureException");
  EXPECT_EQ(emu.batch("DescribeComputeEnvironments", nlohmann::json::object()).error_code(),
            "InvalidSignatureException");
  emu.region = "af-south-1";  // an opt-in region the account has not enabled
  EXPECT_EQ(emu.ec2("DescribeImages", {{"Owner.1", "self"}}).error_code(), "AuthFailure");
}

TEST(Regions, DescribeRegionsListsEnabledRegionsAndAllWithAllRegions) {
  TestEmu emu(instant());
  Response r = emu.ec2("DescribeRegions");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("<regionName>eu-west-1</regionName>"), std::string::npos);
  EXPECT_NE(r.body.find("<regionEndpoint>ec2.eu-west-1.amazonaws.com</regionEndpoint>"), std::string::npos);
  EXPECT_EQ(r.body.find("af-south-1"), std::string::npos);
  Response all = emu.ec2("DescribeRegions", {{"AllRegions", "true"}});
  EXPECT_NE(all.body.find("<regionName>af-south-1</regionName><regionEndpoint>ec2.af-south-1.amazonaws.com</regionEndpoint><optInStatus>not-opted-in</optInStatus>"),
            std::string::npos);
  Response one = emu.ec2("DescribeRegions", {{"RegionName.1", "us-west-2"}});
  EXPECT_EQ(one.xml("regionName"), "us-west-2");
  EXPECT_EQ(one.body.find("eu-west-1"), std::string::npos);
  EXPECT_EQ(emu.ec2("DescribeRegions", {{"RegionName.1", "xx-nowhere-1"}}).error_code(),
            "InvalidParameterValue");
}

TEST(Regions, SingleRegionStateOfFormat2LoadsAsUsEast1) {
  Options o = instant();
  std::string dir = std::filesystem::temp_directory_path() / ("awsemu-fmt2-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/state.json") << R"({"format": 2, "images": {}, "layers": {},
    "volumes": {"vol-0aaaaaaaaaaaaaaaa": {"id": "vol-0aaaaaaaaaaaaaaaa", "size": 1,
      "state": "available", "zone": "us-east-1a", "file": "vol-0aaaaaaaaaaaaaaaa.img"}},
    "parameters": {"/old": {"name": "/old", "value": "kept", "version": 3}},
    "snapshots": {}, "keys": {}, "rng_draws": 5})";
  o.data_dir = dir;
  {
    TestEmu emu(o);
    EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", "vol-0aaaaaaaaaaaaaaaa"}}).xml("status"), "available");
    Response p = emu.ssm("GetParameter", {{"Name", "/old"}});
    EXPECT_EQ(p.json()["Parameter"]["Version"], 3);
    emu.region = "eu-west-1";
    EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", "vol-0aaaaaaaaaaaaaaaa"}}).status, 400);
  }
  std::ifstream in(dir + "/state.json");
  auto saved = nlohmann::json::parse(in);
  EXPECT_EQ(saved["format"], 3);
  EXPECT_TRUE(saved["regions"]["us-east-1"]["volumes"].contains("vol-0aaaaaaaaaaaaaaaa"));
  std::filesystem::remove_all(dir);
}

// ---- CopyImage across regions ----

TEST(CopyImage, CrossRegionCopyIsAnImageOfTheTargetRegionWithItsContent) {
  Options o;
  o.speed = 0.02;  // 10 s + transfer for the snapshot copy, 5 s for the image: well under a second
  TestEmu emu(o, /*with_catalog=*/true);
  emu.region = "eu-west-1";
  std::string copy = copy_from(emu, "us-east-1", "copied-west",
                               {{"Encrypted", "true"}, {"KmsKeyId", "alias/ami"}});
  ASSERT_FALSE(copy.empty());
  Response d = emu.ec2("DescribeImages", {{"ImageId.1", copy}});
  EXPECT_EQ(d.xml("imageState"), "pending");
  EXPECT_EQ(d.xml("sourceImageId").substr(0, 4), "ami-");
  for (int i = 0; i < 200 && d.xml("imageState") == "pending"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    d = emu.ec2("DescribeImages", {{"ImageId.1", copy}});
  }
  EXPECT_EQ(d.xml("imageState"), "available");
  std::string snap = d.xml("snapshotId");
  Response s = emu.ec2("DescribeSnapshots", {{"SnapshotId.1", snap}});
  EXPECT_EQ(s.xml("encrypted"), "true");
  EXPECT_EQ(s.xml("kmsKeyId").rfind("arn:aws:kms:eu-west-1:123456789012:key/", 0), 0u) << s.body;
  EXPECT_EQ(d.xml("kmsKeyId"), s.xml("kmsKeyId"));
  // The content is the source's, read through EBS direct in the target region.
  Response blocks = emu.ebs("GET", "/snapshots/" + snap + "/blocks");
  ASSERT_EQ(blocks.status, 200) << blocks.body;
  EXPECT_EQ(blocks.json()["Blocks"].size(), 3u);
  // Not in the source region.
  emu.region = "us-east-1";
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", copy}}).error_code(), "InvalidAMIID.NotFound");
}

TEST(CopyImage, CopyImageTagsCarriesTheSourceTagsAcrossRegions) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string east = copy_from(emu, "us-east-1", "tagged-east",
                               {{"TagSpecification.1.ResourceType", "image"},
                                {"TagSpecification.1.Tag.1.Key", "amibake:family"},
                                {"TagSpecification.1.Tag.1.Value", "batch-worker"}});
  ASSERT_FALSE(east.empty());
  emu.region = "eu-west-1";
  std::map<std::string, std::string> p = {{"SourceImageId", east}, {"SourceRegion", "us-east-1"},
                                          {"Name", "tagged-west"}, {"CopyImageTags", "true"}};
  std::string west = emu.ec2("CopyImage", p).xml("imageId");
  ASSERT_FALSE(west.empty());
  Response d = emu.ec2("DescribeImages", {{"Owner.1", "self"}, {"Filter.1.Name", "tag:amibake:family"},
                                          {"Filter.1.Value.1", "batch-worker"}});
  EXPECT_EQ(d.xml("imageId"), west);
  p["Name"] = "untagged-west";
  p.erase("CopyImageTags");
  std::string plain = emu.ec2("CopyImage", p).xml("imageId");
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", plain}}).body.find("amibake:family"), std::string::npos);
}

TEST(CopyImage, ClientTokenGivesTheSameImageAndRefusesOtherParameters) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  emu.region = "eu-west-1";
  std::string a = copy_from(emu, "us-east-1", "token-copy", {{"ClientToken", "build-1-eu-west-1"}});
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(copy_from(emu, "us-east-1", "token-copy", {{"ClientToken", "build-1-eu-west-1"}}), a);
  emu.restart();
  EXPECT_EQ(copy_from(emu, "us-east-1", "token-copy", {{"ClientToken", "build-1-eu-west-1"}}), a);
  std::string target = emu.region;
  emu.region = "us-east-1";
  std::string base = catalog_image(emu);
  emu.region = target;
  Response other = emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "us-east-1"},
                                         {"Name", "another-name"}, {"ClientToken", "build-1-eu-west-1"}});
  EXPECT_EQ(other.error_code(), "IdempotentParameterMismatch");
  Response images = emu.ec2("DescribeImages", {{"Owner.1", "self"}});
  EXPECT_EQ(images.body.find("another-name"), std::string::npos);
}

TEST(CopyImage, UnknownSourceRegionOrImageIsRefused) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = catalog_image(emu);
  emu.region = "eu-west-1";
  EXPECT_EQ(emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "xx-nowhere-1"},
                                  {"Name", "n-a"}}).error_code(), "InvalidParameterValue");
  // The us-east-1 id is not an image of eu-west-1.
  EXPECT_EQ(emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "eu-west-1"},
                                  {"Name", "n-b"}}).error_code(), "InvalidAMIID.NotFound");
  EXPECT_EQ(emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "us-east-1"},
                                  {"Name", "n-c"}, {"KmsKeyId", "alias/ami"}}).error_code(),
            "InvalidParameterDependency");
}

}  // namespace
}  // namespace amibake::emu
