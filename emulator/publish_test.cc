// What publishing an AMI needs of awsemu (issue 11), through its HTTP interface:
// regions as separate worlds, CopyImage across regions, sharing, deprecation,
// deregistration with snapshots, SSM aws:ec2:image parameters, launch templates, Batch
// compute environments and recorded instances.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

TEST(CopyImage, CrossRegionCopyIsPendingWhileItsSnapshotsCopy) {
  Options o;
  o.speed = 1;  // the snapshot copy takes 10 s and more: "pending" cannot have passed
  TestEmu emu(o, /*with_catalog=*/true);
  emu.region = "eu-west-1";
  std::string copy = copy_from(emu, "us-east-1", "copied-slowly");
  ASSERT_FALSE(copy.empty());
  Response d = emu.ec2("DescribeImages", {{"ImageId.1", copy}});
  EXPECT_EQ(d.xml("imageState"), "pending");
  EXPECT_EQ(emu.ec2("DescribeSnapshots", {{"SnapshotId.1", d.xml("snapshotId")}}).xml("status"), "pending");
}

TEST(CopyImage, CrossRegionCopyIsAnImageOfTheTargetRegionWithItsContent) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  emu.region = "eu-west-1";
  std::string copy = copy_from(emu, "us-east-1", "copied-west",
                               {{"Encrypted", "true"}, {"KmsKeyId", "alias/ami"}});
  ASSERT_FALSE(copy.empty());
  Response d = emu.ec2("DescribeImages", {{"ImageId.1", copy}});
  EXPECT_EQ(d.xml("imageState"), "available");
  EXPECT_EQ(d.xml("sourceImageId").substr(0, 4), "ami-");
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

// ---- sharing, deprecation, deregistration ----

TEST(Share, LaunchPermissionsForAccountsOrganizationsAndOus) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string ami = copy_from(emu, "us-east-1", "shared-copy");
  const std::string org = "arn:aws:organizations::111122223333:organization/o-abc123defg";
  const std::string ou = "arn:aws:organizations::111122223333:ou/o-abc123defg/ou-ab12-cdef3456";
  ASSERT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", ami},
                                             {"LaunchPermission.Add.1.UserId", "111122223333"},
                                             {"LaunchPermission.Add.2.OrganizationArn", org},
                                             {"LaunchPermission.Add.3.OrganizationalUnitArn", ou}}).status, 200);
  Response r = emu.ec2("DescribeImageAttribute", {{"ImageId", ami}, {"Attribute", "launchPermission"}});
  EXPECT_EQ(r.xml("userId"), "111122223333");
  EXPECT_EQ(r.xml("organizationArn"), org);
  EXPECT_EQ(r.xml("organizationalUnitArn"), ou);
  ASSERT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", ami}, {"OperationType", "remove"},
                                             {"Attribute", "launchPermission"},
                                             {"OrganizationArn.1", org}}).status, 200);
  r = emu.ec2("DescribeImageAttribute", {{"ImageId", ami}, {"Attribute", "launchPermission"}});
  EXPECT_EQ(r.xml("organizationArn"), "");
  EXPECT_EQ(r.xml("organizationalUnitArn"), ou);
  EXPECT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", ami}, {"LaunchPermission.Add.1.UserId", "12345"}}).error_code(),
            "InvalidAMIAttributeItemValue");
  ASSERT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", ami}, {"LaunchPermission.Add.1.Group", "all"}}).status, 200);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("isPublic"), "true");
}

TEST(Share, AnImageOrSnapshotUnderTheAwsManagedKeyCannotBeShared) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string managed = copy_from(emu, "us-east-1", "managed-key", {{"Encrypted", "true"}});
  std::string own_key = copy_from(emu, "us-east-1", "own-key", {{"Encrypted", "true"}, {"KmsKeyId", "alias/ami"}});
  Response bad = emu.ec2("ModifyImageAttribute", {{"ImageId", managed}, {"LaunchPermission.Add.1.UserId", "111122223333"}});
  EXPECT_EQ(bad.error_code(), "InvalidParameter");
  EXPECT_NE(bad.body.find("AWS Managed CMK"), std::string::npos);
  EXPECT_EQ(emu.ec2("DescribeImageAttribute", {{"ImageId", managed}, {"Attribute", "launchPermission"}}).xml("userId"), "");
  EXPECT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", own_key}, {"LaunchPermission.Add.1.UserId", "111122223333"}}).status, 200);
  std::string snap = emu.ec2("DescribeImages", {{"ImageId.1", managed}}).xml("snapshotId");
  EXPECT_EQ(emu.ec2("ModifySnapshotAttribute", {{"SnapshotId", snap}, {"Attribute", "createVolumePermission"},
                                                {"OperationType", "add"}, {"UserId.1", "111122223333"}}).error_code(),
            "InvalidParameter");
  std::string own_snap = emu.ec2("DescribeImages", {{"ImageId.1", own_key}}).xml("snapshotId");
  ASSERT_EQ(emu.ec2("ModifySnapshotAttribute", {{"SnapshotId", own_snap},
                                                {"CreateVolumePermission.Add.1.UserId", "111122223333"}}).status, 200);
  EXPECT_EQ(emu.ec2("DescribeSnapshotAttribute", {{"SnapshotId", own_snap}, {"Attribute", "createVolumePermission"}}).xml("userId"),
            "111122223333");
  EXPECT_EQ(emu.ec2("ModifySnapshotAttribute", {{"SnapshotId", own_snap},
                                                {"CreateVolumePermission.Add.1.Group", "all"}}).error_code(),
            "InvalidParameter");
}

TEST(Deprecation, EnableShowsTheTimeAndDisableClearsIt) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string ami = copy_from(emu, "us-east-1", "to-deprecate");
  ASSERT_EQ(emu.ec2("EnableImageDeprecation", {{"ImageId", ami}, {"DeprecateAt", "2031-06-01T10:00:20Z"}}).status, 200);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("deprecationTime"), "2031-06-01T10:00:00.000Z");
  EXPECT_EQ(emu.ec2("EnableImageDeprecation", {{"ImageId", ami}, {"DeprecateAt", "2001-01-01T00:00:00Z"}}).error_code(),
            "InvalidParameterValue");
  ASSERT_EQ(emu.ec2("DisableImageDeprecation", {{"ImageId", ami}}).status, 200);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("deprecationTime"), "");
}

TEST(Deregister, DeleteAssociatedSnapshotsReportsEachSnapshot) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string ami = copy_from(emu, "us-east-1", "to-deregister");
  std::string snap = emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("snapshotId");
  Response r = emu.ec2("DeregisterImage", {{"ImageId", ami}, {"DeleteAssociatedSnapshots", "true"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.xml("snapshotId"), snap);
  EXPECT_EQ(r.xml("returnCode"), "success");
  EXPECT_EQ(emu.ec2("DescribeSnapshots", {{"SnapshotId.1", snap}}).error_code(), "InvalidSnapshot.NotFound");
}

// ---- SSM aws:ec2:image ----

TEST(SsmImage, OnlyAnAmiOfTheRegionBecomesTheValue) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string east = catalog_image(emu);
  emu.region = "eu-west-1";
  std::string west = catalog_image(emu);
  nlohmann::json put = {{"Name", "/amibake/w/image_id"}, {"Type", "String"}, {"DataType", "aws:ec2:image"}, {"Value", west}};
  Response r = emu.ssm("PutParameter", put);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["Version"], 1);
  Response g = emu.ssm("GetParameter", {{"Name", "/amibake/w/image_id"}});
  EXPECT_EQ(g.json()["Parameter"]["Value"], west);
  EXPECT_EQ(g.json()["Parameter"]["DataType"], "aws:ec2:image");
  EXPECT_EQ(emu.ssm("PutParameter", put).error_code(), "ParameterAlreadyExists");
  put["Overwrite"] = true;
  put["Value"] = east;  // an AMI of us-east-1, not of eu-west-1
  EXPECT_EQ(emu.ssm("PutParameter", put).json()["Version"], 2);
  g = emu.ssm("GetParameter", {{"Name", "/amibake/w/image_id"}});
  EXPECT_EQ(g.json()["Parameter"]["Value"], west);
  EXPECT_EQ(g.json()["Parameter"]["Version"], 1);
  put["Value"] = "ami-0123456789abcdef0";
  emu.ssm("PutParameter", put);
  put["Value"] = west;
  EXPECT_EQ(emu.ssm("PutParameter", put).json()["Version"], 4);
  Response h = emu.ssm("GetParameterHistory", {{"Name", "/amibake/w/image_id"}});
  ASSERT_EQ(h.status, 200) << h.body;
  ASSERT_EQ(h.json()["Parameters"].size(), 2u) << h.body;
  EXPECT_EQ(h.json()["Parameters"][0]["Version"], 1);
  EXPECT_EQ(h.json()["Parameters"][1]["Version"], 4);
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/amibake/w/image_id"}}).json()["Parameter"]["Version"], 4);
  put["Value"] = "not-an-ami";
  EXPECT_EQ(emu.ssm("PutParameter", put).error_code(), "ValidationException");
  // A new parameter whose first value fails validation never exists.
  EXPECT_EQ(emu.ssm("PutParameter", {{"Name", "/amibake/new"}, {"Type", "String"}, {"DataType", "aws:ec2:image"},
                                     {"Value", east}}).json()["Version"], 1);
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/amibake/new"}}).error_code(), "ParameterNotFound");
}

TEST(SsmImage, AnImageVersionIsNotTheValueBeforeItsValidation) {
  Options o;
  o.speed = 30;  // validation takes 30 s: it cannot have finished before the next request
  TestEmu emu(o, /*with_catalog=*/true);
  std::string ami = catalog_image(emu);
  Response put = emu.ssm("PutParameter", {{"Name", "/a/image_id"}, {"Type", "String"},
                                          {"DataType", "aws:ec2:image"}, {"Value", ami}});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.json()["Version"], 1);
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/a/image_id"}}).error_code(), "ParameterNotFound");
  EXPECT_EQ(emu.ssm("GetParameterHistory", {{"Name", "/a/image_id"}}).error_code(), "ParameterNotFound");
}

// ---- launch templates ----

TEST(LaunchTemplates, VersionFromSourceInheritsAndOverrides) {
  TestEmu emu(instant());
  Response c = emu.ec2("CreateLaunchTemplate", {{"LaunchTemplateName", "batch-worker"},
                                                {"LaunchTemplateData.ImageId", "ami-0aaaaaaaaaaaaaaaa"},
                                                {"LaunchTemplateData.InstanceType", "m5.large"},
                                                {"LaunchTemplateData.SecurityGroupId.1", "sg-1"},
                                                {"LaunchTemplateData.BlockDeviceMapping.1.DeviceName", "/dev/xvdb"},
                                                {"LaunchTemplateData.BlockDeviceMapping.1.Ebs.VolumeSize", "100"},
                                                {"LaunchTemplateData.MetadataOptions.HttpTokens", "required"}});
  ASSERT_EQ(c.status, 200) << c.body;
  std::string id = c.xml("launchTemplateId");
  EXPECT_EQ(c.xml("defaultVersionNumber"), "1");
  EXPECT_EQ(emu.ec2("CreateLaunchTemplate", {{"LaunchTemplateName", "batch-worker"},
                                             {"LaunchTemplateData.ImageId", "ami-0aaaaaaaaaaaaaaaa"}}).error_code(),
            "InvalidLaunchTemplateName.AlreadyExistsException");
  Response v = emu.ec2("CreateLaunchTemplateVersion", {{"LaunchTemplateName", "batch-worker"},
                                                       {"SourceVersion", "$Default"},
                                                       {"VersionDescription", "build 2"},
                                                       {"LaunchTemplateData.ImageId", "ami-0bbbbbbbbbbbbbbbb"}});
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_EQ(v.xml("versionNumber"), "2");
  EXPECT_EQ(v.xml("imageId"), "ami-0bbbbbbbbbbbbbbbb");
  EXPECT_EQ(v.xml("instanceType"), "m5.large");
  EXPECT_EQ(v.xml("volumeSize"), "100");
  EXPECT_EQ(v.xml("httpTokens"), "required");
  EXPECT_NE(v.body.find("<securityGroupIdSet><item>sg-1</item></securityGroupIdSet>"), std::string::npos) << v.body;
  // $Default is still 1 until ModifyLaunchTemplate.
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplateVersions", {{"LaunchTemplateId", id}, {"LaunchTemplateVersion.1", "$Default"}}).xml("imageId"),
            "ami-0aaaaaaaaaaaaaaaa");
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplateVersions", {{"LaunchTemplateId", id}, {"LaunchTemplateVersion.1", "$Latest"}}).xml("imageId"),
            "ami-0bbbbbbbbbbbbbbbb");
  ASSERT_EQ(emu.ec2("ModifyLaunchTemplate", {{"LaunchTemplateId", id}, {"SetDefaultVersion", "2"}}).xml("defaultVersionNumber"), "2");
  Response d = emu.ec2("DescribeLaunchTemplateVersions", {{"LaunchTemplateName", "batch-worker"}, {"LaunchTemplateVersion.1", "$Default"}});
  EXPECT_EQ(d.xml("versionNumber"), "2");
  EXPECT_EQ(d.xml("defaultVersion"), "true");
  // Account-wide $Default, filtered by image.
  Response all = emu.ec2("DescribeLaunchTemplateVersions", {{"LaunchTemplateVersion.1", "$Default"},
                                                            {"Filter.1.Name", "image-id"},
                                                            {"Filter.1.Value.1", "ami-0bbbbbbbbbbbbbbbb"}});
  EXPECT_EQ(all.xml("launchTemplateId"), id);
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplateVersions", {{"LaunchTemplateId", id}, {"LaunchTemplateVersion.1", "7"}}).error_code(),
            "InvalidLaunchTemplateId.VersionNotFound");
  EXPECT_EQ(emu.ec2("CreateLaunchTemplateVersion", {{"LaunchTemplateId", id}, {"SourceVersion", "9"},
                                                    {"LaunchTemplateData.ImageId", "ami-0bbbbbbbbbbbbbbbb"}}).error_code(),
            "InvalidLaunchTemplateId.VersionNotFound");
}

TEST(LaunchTemplates, DescribeAndDeleteByNameAndIdWithAwsErrors) {
  TestEmu emu(instant());
  std::string id = emu.ec2("CreateLaunchTemplate", {{"LaunchTemplateName", "lt-one"},
                                                    {"LaunchTemplateData.InstanceType", "m5.large"},
                                                    {"TagSpecification.1.ResourceType", "launch-template"},
                                                    {"TagSpecification.1.Tag.1.Key", "team"},
                                                    {"TagSpecification.1.Tag.1.Value", "batch"}}).xml("launchTemplateId");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateName.1", "lt-one"}}).xml("launchTemplateId"), id);
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"Filter.1.Name", "tag:team"}, {"Filter.1.Value.1", "batch"}}).xml("launchTemplateId"), id);
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateName.1", "nope"}}).error_code(),
            "InvalidLaunchTemplateName.NotFoundException");
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateId.1", "lt-0123456789abcdef0"}}).error_code(),
            "InvalidLaunchTemplateId.NotFound");
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateId.1", "bogus"}}).error_code(),
            "InvalidLaunchTemplateId.Malformed");
  emu.region = "eu-west-1";
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateId.1", id}}).error_code(), "InvalidLaunchTemplateId.NotFound");
  emu.region = "us-east-1";
  emu.restart();
  ASSERT_EQ(emu.ec2("DeleteLaunchTemplate", {{"LaunchTemplateName", "lt-one"}}).xml("launchTemplateId"), id);
  EXPECT_EQ(emu.ec2("DescribeLaunchTemplates", {{"LaunchTemplateId.1", id}}).error_code(), "InvalidLaunchTemplateId.NotFound");
}

// ---- Batch ----

// `ami` must exist in the region, or the environment turns INVALID (batch_image_problem).
nlohmann::json compute_resources(const std::string& strategy, const std::string& ami) {
  return {{"type", "EC2"}, {"allocationStrategy", strategy}, {"minvCpus", 0}, {"maxvCpus", 16},
          {"instanceTypes", {"optimal"}}, {"subnets", {"subnet-1"}}, {"securityGroupIds", {"sg-1"}},
          {"instanceRole", "ecsInstanceRole"},
          {"ec2Configuration", {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", ami}}}}};
}

std::string ce_status(TestEmu& emu, const std::string& name) {
  auto j = emu.batch("DescribeComputeEnvironments", {{"computeEnvironments", {name}}}).json();
  return j["computeEnvironments"].empty() ? "" : j["computeEnvironments"][0].value("status", "");
}

TEST(Batch, InfrastructureUpdateNeedsAnUpdatableStrategyAndTheServiceLinkedRole) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  for (auto [name, strategy] : {std::pair{"progressive", "BEST_FIT_PROGRESSIVE"}, std::pair{"bestfit", "BEST_FIT"}}) {
    Response c = emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", name}, {"type", "MANAGED"},
                                                        {"computeResources", compute_resources(strategy, catalog_image(emu))}});
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(c.json()["computeEnvironmentArn"], std::string("arn:aws:batch:us-east-1:123456789012:compute-environment/") + name);
  }
  EXPECT_EQ(emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "bestfit"}, {"type", "MANAGED"},
                                                   {"computeResources", compute_resources("BEST_FIT", catalog_image(emu))}}).error_code(),
            "ClientException");
  EXPECT_EQ(ce_status(emu, "progressive"), "VALID");
  std::string made = copy_from(emu, "us-east-1", "new-ami");
  nlohmann::json new_ami = {{"ec2Configuration", {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", made}}}}};
  Response u = emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "arn:aws:batch:us-east-1:123456789012:compute-environment/progressive"},
                                                      {"computeResources", new_ami}});
  ASSERT_EQ(u.status, 200) << u.body;
  auto d = emu.batch("DescribeComputeEnvironments", {{"computeEnvironments", {"progressive"}}}).json()["computeEnvironments"][0];
  EXPECT_EQ(d["computeResources"]["ec2Configuration"][0]["imageIdOverride"], made);
  EXPECT_EQ(d["computeResources"]["maxvCpus"], 16);  // fields not given are kept
  EXPECT_EQ(d["serviceRole"], "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch");
  EXPECT_EQ(ce_status(emu, "progressive"), "VALID");
  Response refused = emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "bestfit"}, {"computeResources", new_ami}});
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.error_code(), "ClientException");
  EXPECT_NE(refused.body.find("ec2Configuration"), std::string::npos) << refused.body;
  // Scaling is allowed on any environment.
  EXPECT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "bestfit"},
                                                   {"computeResources", {{"maxvCpus", 32}}}}).status, 200);
  // A service role that is not the service-linked one blocks infrastructure updates too.
  Response role = emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "own-role"}, {"type", "MANAGED"},
                                                         {"serviceRole", "arn:aws:iam::123456789012:role/BatchServiceRole"},
                                                         {"computeResources", compute_resources("SPOT_CAPACITY_OPTIMIZED", catalog_image(emu))}});
  EXPECT_EQ(role.error_code(), "ClientException");  // SPOT_* is not for type EC2
  nlohmann::json spot = compute_resources("SPOT_CAPACITY_OPTIMIZED", catalog_image(emu));
  spot["type"] = "SPOT";
  ASSERT_EQ(emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "own-role"}, {"type", "MANAGED"},
                                                   {"serviceRole", "arn:aws:iam::123456789012:role/BatchServiceRole"},
                                                   {"computeResources", spot}}).status, 200);
  EXPECT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "own-role"}, {"computeResources", new_ami}}).error_code(),
            "ClientException");
}

TEST(Batch, StatusesAreCreatingThenUpdatingWhileInProgress) {
  Options o;
  o.speed = 1;  // creating takes 10 s, an infrastructure update 30 s
  TestEmu emu(o, /*with_catalog=*/true);
  ASSERT_EQ(emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "slow"}, {"type", "MANAGED"},
                                                   {"computeResources", compute_resources("BEST_FIT_PROGRESSIVE", catalog_image(emu))}}).status, 200);
  EXPECT_EQ(ce_status(emu, "slow"), "CREATING");
  EXPECT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "slow"},
                                                   {"computeResources", {{"maxvCpus", 8}}}}).error_code(),
            "ClientException");  // not while CREATING
}

// Batch checks the AMI when it applies an update: one that does not exist in the region
// (or is not available) turns the environment INVALID with a reason; an update to an AMI
// that exists makes it VALID again.
TEST(Batch, AnUpdateToAnAmiThatCannotBeDescribedEndsInvalid) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string good = catalog_image(emu);
  ASSERT_EQ(emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "ce"}, {"type", "MANAGED"},
                                                   {"computeResources", compute_resources("BEST_FIT_PROGRESSIVE", good)}}).status, 200);
  ASSERT_EQ(ce_status(emu, "ce"), "VALID");
  auto to = [](const std::string& ami) {
    return nlohmann::json{{"ec2Configuration", {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", ami}}}}};
  };
  ASSERT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "ce"},
                                                   {"computeResources", to("ami-0bbbbbbbbbbbbbbbb")}}).status, 200);
  auto d = emu.batch("DescribeComputeEnvironments", {{"computeEnvironments", {"ce"}}}).json()["computeEnvironments"][0];
  EXPECT_EQ(d["status"], "INVALID");
  EXPECT_EQ(d["statusReason"], "CLIENT_ERROR - AMI cannot be described");
  // Another region's AMI cannot be described here either.
  emu.region = "eu-west-1";
  std::string eu = catalog_image(emu);
  emu.region = "us-east-1";
  ASSERT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "ce"}, {"computeResources", to(eu)}}).status, 200);
  EXPECT_EQ(ce_status(emu, "ce"), "INVALID");
  ASSERT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "ce"}, {"computeResources", to(good)}}).status, 200);
  d = emu.batch("DescribeComputeEnvironments", {{"computeEnvironments", {"ce"}}}).json()["computeEnvironments"][0];
  EXPECT_EQ(d["status"], "VALID");
  EXPECT_EQ(d["statusReason"], "ComputeEnvironment Healthy");
}

TEST(Batch, DeleteNeedsDisabledAndEnvironmentsAreRegional) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  ASSERT_EQ(emu.batch("CreateComputeEnvironment", {{"computeEnvironmentName", "ce"}, {"type", "MANAGED"},
                                                   {"computeResources", compute_resources("BEST_FIT_PROGRESSIVE", catalog_image(emu))}}).status, 200);
  emu.region = "eu-west-1";
  EXPECT_EQ(ce_status(emu, "ce"), "");
  emu.region = "us-east-1";
  EXPECT_EQ(ce_status(emu, "ce"), "VALID");
  EXPECT_EQ(emu.batch("DeleteComputeEnvironment", {{"computeEnvironment", "ce"}}).error_code(), "ClientException");
  ASSERT_EQ(emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "ce"}, {"state", "DISABLED"}}).status, 200);
  emu.restart();
  ASSERT_EQ(emu.batch("DeleteComputeEnvironment", {{"computeEnvironment", "ce"}}).status, 200);
  EXPECT_EQ(ce_status(emu, "ce"), "");
}

// ---- instances ----

TEST(Instances, RunDescribeWithFiltersAndTerminate) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string ami = copy_from(emu, "us-east-1", "in-use");
  Response run = emu.ec2("RunInstances", {{"ImageId", ami}, {"MinCount", "1"}, {"MaxCount", "2"},
                                          {"InstanceType", "m5.large"}});
  ASSERT_EQ(run.status, 200) << run.body;
  std::string id = run.xml("instanceId");
  EXPECT_EQ(run.xml("name"), "pending");
  Response d = emu.ec2("DescribeInstances", {{"Filter.1.Name", "image-id"}, {"Filter.1.Value.1", ami},
                                             {"Filter.2.Name", "instance-state-name"}, {"Filter.2.Value.1", "running"}});
  ASSERT_EQ(d.status, 200) << d.body;
  size_t count = 0;
  for (size_t pos = 0; (pos = d.body.find("<instanceId>", pos)) != std::string::npos; ++pos) ++count;
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(d.body.find(kHostInstanceId), std::string::npos);
  Response t = emu.ec2("TerminateInstances", {{"InstanceId.1", id}});
  EXPECT_NE(t.body.find("<currentState><code>32</code><name>shutting-down</name></currentState>"), std::string::npos) << t.body;
  EXPECT_EQ(emu.ec2("DescribeInstances", {{"InstanceId.1", id}}).xml("name"), "terminated");
  EXPECT_EQ(emu.ec2("RunInstances", {{"ImageId", "ami-0123456789abcdef0"}, {"MinCount", "1"}, {"MaxCount", "1"}}).error_code(),
            "InvalidAMIID.NotFound");
  EXPECT_EQ(emu.ec2("TerminateInstances", {{"InstanceId.1", kHostInstanceId}}).error_code(), "OperationNotPermitted");
  emu.region = "eu-west-1";
  EXPECT_EQ(emu.ec2("DescribeInstances", {{"InstanceId.1", id}}).error_code(), "InvalidInstanceID.NotFound");
}

// ---- --deny, --faults and --latency reach the new operations ----

TEST(PublishFaults, DenyAndThrottleApplyToBatchSsmAndLaunchTemplates) {
  Options o = instant();
  o.deny = {"batch:UpdateComputeEnvironment", "CreateLaunchTemplateVersion", "ssm:GetParameterHistory"};
  TestEmu emu(o);
  Response b = emu.batch("UpdateComputeEnvironment", {{"computeEnvironment", "ce"}});
  EXPECT_EQ(b.status, 403);
  EXPECT_EQ(b.error_code(), "AccessDeniedException");
  EXPECT_EQ(emu.ec2("CreateLaunchTemplateVersion", {{"LaunchTemplateName", "x"}}).error_code(), "UnauthorizedOperation");
  EXPECT_EQ(emu.ssm("GetParameterHistory", {{"Name", "/x"}}).error_code(), "AccessDeniedException");
  Options f = instant();
  f.faults = parse_fault_spec("throttle=1,op=DescribeComputeEnvironments").value();
  TestEmu faulty(f);
  Response t = faulty.batch("DescribeComputeEnvironments", nlohmann::json::object());
  EXPECT_EQ(t.status, 429);
  EXPECT_EQ(t.error_code(), "TooManyRequestsException");
}

}  // namespace
}  // namespace amibake::emu
