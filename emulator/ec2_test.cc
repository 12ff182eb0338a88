// EC2, SSM, STS and IMDS behaviour of awsemu, through its HTTP interface.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "emulator/loopdev.h"
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

std::string make_volume(TestEmu& emu, std::map<std::string, std::string> extra = {}) {
  extra["AvailabilityZone"] = "us-east-1a";
  if (!extra.count("SnapshotId")) extra["Size"] = "1";
  return emu.ec2("CreateVolume", extra).xml("volumeId");
}

std::string make_snapshot(TestEmu& emu, int size_gib = 1) {
  std::string vol = emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"},
                                             {"Size", std::to_string(size_gib)}})
                        .xml("volumeId");
  return emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
}

std::map<std::string, std::string> image_params(const std::string& snap, const std::string& name) {
  return {{"Name", name}, {"RootDeviceName", "/dev/xvda"}, {"Architecture", "x86_64"},
          {"BlockDeviceMapping.1.DeviceName", "/dev/xvda"},
          {"BlockDeviceMapping.1.Ebs.SnapshotId", snap}};
}

TEST(Ec2, DescribeImagesOwnersAmazonListsTheCatalog) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  Response r = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.xml("name"), "al2023-ami-ecs-hvm-test-x86_64");
  EXPECT_EQ(r.xml("imageOwnerAlias"), "amazon");
  EXPECT_NE(r.body.find("xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""), std::string::npos);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"Owner.1", "self"}}).xml("imagesSet"), "");
}

TEST(Ec2, UnknownImageIdIsInvalidAmiIdNotFound) {
  TestEmu emu(instant());
  Response r = emu.ec2("DescribeImages", {{"ImageId.1", "ami-0123456789abcdef0"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "InvalidAMIID.NotFound");
  EXPECT_FALSE(r.xml("RequestID").empty());
}

TEST(Ec2, DeleteSnapshotIsRefusedWhileAnImageUsesIt) {
  TestEmu emu(instant());
  std::string snap = make_snapshot(emu);
  std::string ami = emu.ec2("RegisterImage", image_params(snap, "uses-snap")).xml("imageId");
  ASSERT_FALSE(ami.empty());
  Response r = emu.ec2("DeleteSnapshot", {{"SnapshotId", snap}});
  EXPECT_EQ(r.error_code(), "InvalidSnapshot.InUse");
  EXPECT_EQ(emu.ec2("DeregisterImage", {{"ImageId", ami}}).status, 200);
  EXPECT_EQ(emu.ec2("DeleteSnapshot", {{"SnapshotId", snap}}).status, 200);
}

TEST(Ec2, RegisterImageRejectsIopsOnGp2) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "bad-iops");
  p["BlockDeviceMapping.1.Ebs.VolumeType"] = "gp2";
  p["BlockDeviceMapping.1.Ebs.Iops"] = "3000";
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidParameterCombination");
}

TEST(Ec2, RegisterImageRejectsTpmWithLegacyBios) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "bad-tpm");
  p["BootMode"] = "legacy-bios";
  p["TpmSupport"] = "v2.0";
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidParameterCombination");
}

TEST(Ec2, RegisterImageRejectsDuplicateName) {
  TestEmu emu(instant());
  std::string snap = make_snapshot(emu);
  ASSERT_EQ(emu.ec2("RegisterImage", image_params(snap, "twice")).status, 200);
  EXPECT_EQ(emu.ec2("RegisterImage", image_params(snap, "twice")).error_code(), "InvalidAMIName.Duplicate");
}

TEST(Ec2, ClientTokenMakesCreateVolumeIdempotent) {
  TestEmu emu(instant());
  std::string a = make_volume(emu, {{"ClientToken", "same"}});
  std::string b = make_volume(emu, {{"ClientToken", "same"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, make_volume(emu, {{"ClientToken", "other"}}));
}

TEST(Ec2, TagFiltersSelectVolumes) {
  TestEmu emu(instant());
  std::string tagged = make_volume(emu, {{"TagSpecification.1.ResourceType", "volume"},
                                         {"TagSpecification.1.Tag.1.Key", "amibake:build-id"},
                                         {"TagSpecification.1.Tag.1.Value", "b-42"}});
  make_volume(emu);
  Response r = emu.ec2("DescribeVolumes", {{"Filter.1.Name", "tag:amibake:build-id"},
                                           {"Filter.1.Value.1", "b-*"}});
  EXPECT_EQ(r.xml("volumeId"), tagged);
  EXPECT_EQ(r.body.find("<volumeId>", r.body.find(tagged) + 1), std::string::npos);
  Response keys = emu.ec2("DescribeTags", {{"Filter.1.Name", "key"}, {"Filter.1.Value.1", "amibake:build-id"}});
  EXPECT_EQ(keys.xml("resourceId"), tagged);
}

TEST(Ec2, VolumeStatesMoveOverTimeAtTheSetSpeed) {
  Options o;
  o.speed = 0.5;  // creation takes 1.5 s
  TestEmu emu(o);
  std::string vol = make_volume(emu);
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).xml("status"), "creating");
  std::this_thread::sleep_for(std::chrono::milliseconds(1700));
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).xml("status"), "available");
}

TEST(Ec2, SnapshotProgressRisesUntilCompleted) {
  Options o;
  o.speed = 0.2;  // volume 0.6 s, snapshot 2 s
  TestEmu emu(o);
  std::string vol = make_volume(emu);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string snap = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  Response early = emu.ec2("DescribeSnapshots", {{"SnapshotId.1", snap}});
  EXPECT_EQ(early.xml("status"), "pending");
  EXPECT_NE(early.xml("progress"), "100%");
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  Response late = emu.ec2("DescribeSnapshots", {{"SnapshotId.1", snap}});
  EXPECT_EQ(late.xml("status"), "completed");
  EXPECT_EQ(late.xml("progress"), "100%");
}

TEST(Ec2, AttachVolumeMakesLoopDeviceAndByIdLinkAndDetachRemovesThem) {
  if (!can_attach_loop()) GTEST_SKIP() << "needs root and /dev/loop-control";
  TestEmu emu(instant());
  std::string vol = make_volume(emu);
  Response a = emu.ec2("AttachVolume", {{"VolumeId", vol}, {"InstanceId", kHostInstanceId}, {"Device", "/dev/sdf"}});
  ASSERT_EQ(a.status, 200) << a.body;
  std::string link = emu.emulator().context().device_dir() + "/" + ebs_link_name(vol);
  char target[256] = {};
  ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0) << link;
  struct stat st;
  ASSERT_EQ(::stat(target, &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  int fd = ::open(target, O_RDONLY);
  EXPECT_EQ(::lseek(fd, 0, SEEK_END), 1LL << 30);
  ::close(fd);
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).xml("status"), "in-use");
  ASSERT_EQ(emu.ec2("DetachVolume", {{"VolumeId", vol}}).status, 200);
  EXPECT_NE(::access(link.c_str(), F_OK), 0);
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).xml("status"), "available");
}

TEST(Ec2, DeleteVolumeRefusedWhileAttached) {
  TestEmu emu(instant());
  std::string vol = make_volume(emu);
  ASSERT_EQ(emu.ec2("AttachVolume", {{"VolumeId", vol}, {"InstanceId", kHostInstanceId}, {"Device", "/dev/sdg"}}).status, 200);
  EXPECT_EQ(emu.ec2("DeleteVolume", {{"VolumeId", vol}}).error_code(), "VolumeInUse");
  ASSERT_EQ(emu.ec2("DetachVolume", {{"VolumeId", vol}}).status, 200);
}

TEST(Ec2, CopyImageOwnsACopyOfTheCatalogRootSnapshot) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  Response c = emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "us-east-1"},
                                     {"Name", "owned-copy"}, {"ClientToken", "ct"}});
  std::string copy = c.xml("imageId");
  ASSERT_FALSE(copy.empty()) << c.body;
  EXPECT_EQ(emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "us-east-1"},
                                  {"Name", "owned-copy"}, {"ClientToken", "ct"}}).xml("imageId"), copy);
  Response d = emu.ec2("DescribeImages", {{"ImageId.1", copy}});
  EXPECT_EQ(d.xml("imageOwnerId"), kAccountId);
  std::string snap = d.xml("snapshotId");
  Response blocks = emu.ebs("GET", "/snapshots/" + snap + "/blocks");
  ASSERT_EQ(blocks.status, 200) << blocks.body;
  EXPECT_EQ(blocks.json()["Blocks"].size(), 3u);
}

TEST(Ec2, CopyImageTagsTheCopiedSnapshots) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  std::string copy = emu.ec2("CopyImage", {{"SourceImageId", base}, {"SourceRegion", "us-east-1"},
                                           {"Name", "tagged-copy"},
                                           {"TagSpecification.1.ResourceType", "image"},
                                           {"TagSpecification.1.Tag.1.Key", "amibake:base"},
                                           {"TagSpecification.1.Tag.1.Value", base},
                                           {"TagSpecification.2.ResourceType", "snapshot"},
                                           {"TagSpecification.2.Tag.1.Key", "amibake:base"},
                                           {"TagSpecification.2.Tag.1.Value", base}}).xml("imageId");
  ASSERT_FALSE(copy.empty());
  Response images = emu.ec2("DescribeImages", {{"Owner.1", "self"}, {"Filter.1.Name", "tag:amibake:base"},
                                               {"Filter.1.Value.1", base}});
  EXPECT_EQ(images.xml("imageId"), copy);
  Response snaps = emu.ec2("DescribeSnapshots", {{"Owner.1", "self"}, {"Filter.1.Name", "tag:amibake:base"},
                                                 {"Filter.1.Value.1", base}});
  EXPECT_EQ(snaps.xml("snapshotId"), images.xml("snapshotId"));
}

TEST(Ec2, ModifyImageAttributeSharesAndDescribesLaunchPermission) {
  TestEmu emu(instant());
  std::string ami = emu.ec2("RegisterImage", image_params(make_snapshot(emu), "shared")).xml("imageId");
  ASSERT_EQ(emu.ec2("ModifyImageAttribute", {{"ImageId", ami}, {"LaunchPermission.Add.1.UserId", "111122223333"}}).status, 200);
  Response r = emu.ec2("DescribeImageAttribute", {{"ImageId", ami}, {"Attribute", "launchPermission"}});
  EXPECT_EQ(r.xml("userId"), "111122223333");
}

TEST(Ec2, EnableImageDeprecationShowsInDescribeImages) {
  TestEmu emu(instant());
  std::string ami = emu.ec2("RegisterImage", image_params(make_snapshot(emu), "old")).xml("imageId");
  ASSERT_EQ(emu.ec2("EnableImageDeprecation", {{"ImageId", ami}, {"DeprecateAt", "2030-01-01T00:00:00Z"}}).status, 200);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("deprecationTime"), "2030-01-01T00:00:00.000Z");
}

TEST(Ec2, StateSurvivesRestart) {
  TestEmu emu(instant());
  std::string vol = make_volume(emu, {{"TagSpecification.1.ResourceType", "volume"},
                                      {"TagSpecification.1.Tag.1.Key", "k"},
                                      {"TagSpecification.1.Tag.1.Value", "v"}});
  emu.restart();
  Response r = emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}});
  EXPECT_EQ(r.xml("status"), "available");
  EXPECT_EQ(r.xml("value"), "v");
}

TEST(Ec2, DryRunAnswersDryRunOperation) {
  TestEmu emu(instant());
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"DryRun", "true"}}).error_code(), "DryRunOperation");
}

TEST(Auth, WrongSecretIsAuthFailure) {
  TestEmu emu(instant());
  emu.secret_access_key = "wrong-secret-wrong-secret-wrong-secret-00";
  Response r = emu.ec2("DescribeVolumes");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.error_code(), "AuthFailure");
  EXPECT_EQ(emu.ebs("GET", "/snapshots/snap-0123456789abcdef0/blocks").error_code(), "InvalidSignatureException");
}

TEST(Auth, UnknownAccessKeyIsRejectedPerProtocol) {
  TestEmu emu(instant());
  emu.access_key_id = "AKIANOTKNOWN00000000";
  EXPECT_EQ(emu.sts("GetCallerIdentity").error_code(), "InvalidClientTokenId");
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "x"}}).error_code(), "UnrecognizedClientException");
}

TEST(Auth, DeniedOperationAnswersUnauthorizedOperation) {
  Options o = instant();
  o.deny = {"CreateVolume", "ebs:StartSnapshot", "GetParameter"};
  TestEmu emu(o);
  Response r = emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.error_code(), "UnauthorizedOperation");
  EXPECT_EQ(emu.ebs("POST", "/snapshots", R"({"VolumeSize":1})").error_code(), "AccessDeniedException");
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "x"}}).error_code(), "AccessDeniedException");
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 200);
}

TEST(Sts, AssumedRoleKeysAreAcceptedWithTheirSessionToken) {
  TestEmu emu(instant());
  Response r = emu.sts("AssumeRole", {{"RoleArn", "arn:aws:iam::123456789012:role/baker"},
                                      {"RoleSessionName", "s1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  emu.access_key_id = r.xml("AccessKeyId");
  emu.secret_access_key = r.xml("SecretAccessKey");
  emu.session_token = r.xml("SessionToken");
  Response who = emu.sts("GetCallerIdentity");
  EXPECT_EQ(who.xml("Arn"), "arn:aws:sts::123456789012:assumed-role/baker/s1");
  emu.session_token = "";
  EXPECT_NE(emu.sts("GetCallerIdentity").status, 200);
}

TEST(Sts, AssumeRoleWithWebIdentityNeedsNoSignature) {
  TestEmu emu(instant());
  Response r = emu.raw("GET", "/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                              "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fci"
                              "&RoleSessionName=job&WebIdentityToken=eyJhbGciOi.x.y");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.xml("Arn"), "arn:aws:sts::123456789012:assumed-role/ci/job");
  EXPECT_NE(r.body.find("xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""), std::string::npos);
  EXPECT_EQ(emu.raw("GET", "/?Action=GetCallerIdentity&Version=2011-06-15").error_code(),
            "MissingAuthenticationToken");
}

TEST(Ec2, ImageIsPendingForAWhileAfterRegistering) {
  Options o;
  o.speed = 0.2;  // volume 0.6 s, snapshot 2 s, image 1 s after registering
  TestEmu emu(o);
  std::string vol = make_volume(emu);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string snap = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  std::string ami = emu.ec2("RegisterImage", image_params(snap, "waits")).xml("imageId");
  ASSERT_FALSE(ami.empty());
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("imageState"), "pending");
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("imageState"), "available");
}

TEST(Ec2, CopySnapshotCopiesContent) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  ASSERT_EQ(emu.put_block(snap, 2, 'k').status, 201);
  ASSERT_EQ(emu.complete(snap, 1).status, 202);
  Response c = emu.ec2("CopySnapshot", {{"SourceSnapshotId", snap}, {"SourceRegion", "us-east-1"}});
  std::string copy = c.xml("snapshotId");
  ASSERT_FALSE(copy.empty()) << c.body;
  auto blocks = emu.ebs("GET", "/snapshots/" + copy + "/blocks").json();
  ASSERT_EQ(blocks["Blocks"].size(), 1u);
  EXPECT_EQ(blocks["Blocks"][0]["BlockIndex"], 2);
}

TEST(Ssm, CatalogParameterHoldsTheImageId) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string ami = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  auto j = emu.ssm("GetParameter", {{"Name", "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"}}).json();
  EXPECT_EQ(j["Parameter"]["Value"], ami);
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "/nope"}}).error_code(), "ParameterNotFound");
}

TEST(Ssm, PutThenGetParametersByPathPages) {
  TestEmu emu(instant());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(emu.ssm("PutParameter", {{"Name", "/app/p" + std::to_string(i)}, {"Value", "v"}, {"Type", "String"}}).status, 200);
  }
  auto page = emu.ssm("GetParametersByPath", {{"Path", "/app"}, {"MaxResults", 2}}).json();
  EXPECT_EQ(page["Parameters"].size(), 2u);
  auto rest = emu.ssm("GetParametersByPath", {{"Path", "/app"}, {"MaxResults", 2}, {"NextToken", page["NextToken"]}}).json();
  EXPECT_EQ(rest["Parameters"].size(), 1u);
}

TEST(Imds, TokenIsRequiredAndGivesInstanceIdentity) {
  TestEmu emu(instant());
  EXPECT_EQ(emu.raw("GET", "/latest/meta-data/instance-id").status, 401);
  Response t = emu.raw("PUT", "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "60"}});
  ASSERT_EQ(t.status, 200);
  Response id = emu.raw("GET", "/latest/meta-data/instance-id", {{"X-aws-ec2-metadata-token", t.body}});
  EXPECT_EQ(id.body, kHostInstanceId);
  Response zone = emu.raw("GET", "/latest/meta-data/placement/availability-zone", {{"X-aws-ec2-metadata-token", t.body}});
  EXPECT_EQ(zone.body, kHostZone);
}

TEST(Imds, RoleCredentialsSignRequests) {
  TestEmu emu(instant());
  std::string token = emu.raw("PUT", "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "60"}}).body;
  std::string role = emu.raw("GET", "/latest/meta-data/iam/security-credentials/", {{"X-aws-ec2-metadata-token", token}}).body;
  auto creds = emu.raw("GET", "/latest/meta-data/iam/security-credentials/" + role, {{"X-aws-ec2-metadata-token", token}}).json();
  emu.access_key_id = creds["AccessKeyId"];
  emu.secret_access_key = creds["SecretAccessKey"];
  emu.session_token = creds["Token"];
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 200);
}

// ---- AWS's validation (rules in validate.cc) ---------------------------------

using Params = std::map<std::string, std::string>;

// Adds TagSpecification.`spec` for `type` with `tags` to `p`.
void add_tag_spec(Params& p, int spec, const std::string& type,
                  const std::vector<std::pair<std::string, std::string>>& tags) {
  std::string head = "TagSpecification." + std::to_string(spec) + ".";
  p[head + "ResourceType"] = type;
  for (size_t i = 0; i < tags.size(); ++i) {
    p[head + "Tag." + std::to_string(i + 1) + ".Key"] = tags[i].first;
    p[head + "Tag." + std::to_string(i + 1) + ".Value"] = tags[i].second;
  }
}

std::vector<std::pair<std::string, std::string>> numbered_tags(int n,
                                                               const std::string& prefix = "k") {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < n; ++i) out.emplace_back(prefix + std::to_string(i), "v");
  return out;
}

// Adds a blank data volume mapping BlockDeviceMapping.2 at `device`.
void add_data_volume(Params& p, const std::string& device, int size_gib = 100,
                     const std::string& type = "gp3") {
  p["BlockDeviceMapping.2.DeviceName"] = device;
  p["BlockDeviceMapping.2.Ebs.VolumeSize"] = std::to_string(size_gib);
  p["BlockDeviceMapping.2.Ebs.VolumeType"] = type;
}

TEST(Ec2Validation, AmibakeStyleImageIsAccepted) {
  TestEmu emu(instant());
  auto p =
      image_params(make_snapshot(emu),
                   "amibake-al2023-ami-ecs-hvm-2023.0.20251101-kernel-6.1-x86_64-20260101T000000Z");
  p["Description"] =
      "amibake: al2023-ami-ecs-hvm-2023.0.20251101-kernel-6.1-x86_64 + /data (1 TiB)";
  add_data_volume(p, "/dev/xvdb", 1024);
  add_tag_spec(p, 1, "image",
               {{"amibake:build-id", "b-1"},
                {"amibake:recipe", "worker"},
                {"amibake:base", "ami-0123"},
                {"amibake:temporary", "false"},
                {"amibake:version", "0.1"},
                {"Name", "worker"}});
  add_tag_spec(p, 2, "snapshot", {{"amibake:build-id", "b-1"}, {"amibake:temporary", "false"}});
  Response r = emu.ec2("RegisterImage", p);
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(Ec2Validation, RegisterImageRejectsNameWithForbiddenCharacter) {
  TestEmu emu(instant());
  EXPECT_EQ(emu.ec2("RegisterImage", image_params(make_snapshot(emu), "bad:name")).error_code(),
            "InvalidAMIName.Malformed");
}

TEST(Ec2Validation, RegisterImageRejectsNameShorterThan3) {
  TestEmu emu(instant());
  EXPECT_EQ(emu.ec2("RegisterImage", image_params(make_snapshot(emu), "ab")).error_code(),
            "InvalidAMIName.Malformed");
}

TEST(Ec2Validation, RegisterImageRejectsNameLongerThan128) {
  TestEmu emu(instant());
  Response r = emu.ec2("RegisterImage", image_params(make_snapshot(emu), std::string(129, 'n')));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "InvalidAMIName.Malformed");
}

TEST(Ec2Validation, ImageNamesAreUniquePerOwnerNotAcrossOwners) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  // The catalog's (Amazon's) name is free for this account.
  Response r =
      emu.ec2("RegisterImage", image_params(make_snapshot(emu), "al2023-ami-ecs-hvm-test-x86_64"));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(Ec2Validation, RegisterImageRejectsDescriptionLongerThan255) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "long-description");
  p["Description"] = std::string(256, 'd');
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, RegisterImageRejectsPartitionDeviceNameOnHvm) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "bad-device");
  add_data_volume(p, "/dev/sdf1");
  Response r = emu.ec2("RegisterImage", p);
  EXPECT_EQ(r.error_code(), "InvalidBlockDeviceMapping");
  EXPECT_NE(r.xml("Message").find("/dev/sdf1"), std::string::npos);
}

TEST(Ec2Validation, RegisterImageRejectsDeviceNameOutsideTheTable) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "bad-device");
  add_data_volume(p, "/dev/xvdeo");
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidBlockDeviceMapping");
}

TEST(Ec2Validation, RegisterImageAcceptsTwoLetterXvdNames) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "xvdcz");
  add_data_volume(p, "/dev/xvdcz");
  EXPECT_EQ(emu.ec2("RegisterImage", p).status, 200);
}

TEST(Ec2Validation, RegisterImageRejectsTheSameDeviceTwice) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "twice-device");
  add_data_volume(p, "/dev/xvda");
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidBlockDeviceMapping");
}

TEST(Ec2Validation, RegisterImageRejectsVolumeTooLargeForItsType) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "too-large");
  add_data_volume(p, "/dev/xvdb", 16385, "gp2");
  Response r = emu.ec2("RegisterImage", p);
  EXPECT_EQ(r.error_code(), "InvalidBlockDeviceMapping");
  EXPECT_NE(r.xml("Message").find("maximum is 16384GiB"), std::string::npos) << r.body;
}

TEST(Ec2Validation, RegisterImageRejectsSt1SmallerThan125) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "too-small");
  add_data_volume(p, "/dev/xvdb", 100, "st1");
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidBlockDeviceMapping");
}

TEST(Ec2Validation, RegisterImageRejectsVolumeSmallerThanItsSnapshot) {
  TestEmu emu(instant());
  std::string snap = make_snapshot(emu, /*size_gib=*/2);
  auto p = image_params(snap, "smaller-than-snapshot");
  p["BlockDeviceMapping.1.Ebs.VolumeSize"] = "1";
  Response r = emu.ec2("RegisterImage", p);
  EXPECT_EQ(r.error_code(), "InvalidBlockDeviceMapping");
  EXPECT_NE(r.xml("Message").find("2GB (/dev/xvda)"), std::string::npos) << r.body;
}

TEST(Ec2Validation, RegisterImageRejectsRootDeviceMissingFromMappings) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "no-root");
  p["RootDeviceName"] = "/dev/sda1";
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidBlockDeviceMapping");
}

TEST(Ec2Validation, RegisterImageRejectsAPendingRootSnapshot) {
  TestEmu emu(instant());
  std::string pending = emu.start_snapshot(1);  // never completed
  ASSERT_FALSE(pending.empty());
  EXPECT_EQ(emu.ec2("RegisterImage", image_params(pending, "pending-root")).error_code(),
            "IncorrectState");
}

TEST(Ec2Validation, RegisterImageRejectsASnapshotNotSharedWithTheAccount) {
  Options o = instant();
  o.unshared_catalog_snapshots = true;
  TestEmu emu(o, /*with_catalog=*/true);
  Response base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}});
  std::string amazon_snapshot = base.xml("snapshotId");
  ASSERT_FALSE(amazon_snapshot.empty());
  EXPECT_EQ(emu.ec2("RegisterImage", image_params(amazon_snapshot, "not-mine")).error_code(),
            "InvalidSnapshot.NotFound");
}

TEST(Ec2Validation, RegisterImageRejectsMalformedKmsKeyInAMapping) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "bad-kms");
  add_data_volume(p, "/dev/xvdb");
  p["BlockDeviceMapping.2.Ebs.Encrypted"] = "true";
  p["BlockDeviceMapping.2.Ebs.KmsKeyId"] = "my-key";
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, RegisterImageRejectsMoreThan50ImageTags) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "many-tags");
  add_tag_spec(p, 1, "image", numbered_tags(51));
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "TagLimitExceeded");
}

TEST(Ec2Validation, RegisterImageSnapshotTagsCountTheSnapshotsOwnTags) {
  TestEmu emu(instant());
  std::string snap = make_snapshot(emu);
  Params tag{{"ResourceId.1", snap}};
  for (int i = 0; i < 45; ++i) {
    tag["Tag." + std::to_string(i + 1) + ".Key"] = "old" + std::to_string(i);
    tag["Tag." + std::to_string(i + 1) + ".Value"] = "v";
  }
  ASSERT_EQ(emu.ec2("CreateTags", tag).status, 200);
  auto p = image_params(snap, "snapshot-tags");
  add_tag_spec(p, 1, "snapshot", numbered_tags(6));
  EXPECT_EQ(emu.ec2("RegisterImage", p).error_code(), "TagLimitExceeded");
}

TEST(Ec2Validation, RegisterImageRejectsAwsPrefixedTagKey) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "aws-tag");
  add_tag_spec(p, 1, "image", {{"AWS:owner", "me"}});
  Response r = emu.ec2("RegisterImage", p);
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
  EXPECT_NE(r.xml("Message").find("reserved for internal use"), std::string::npos);
}

TEST(Ec2Validation, RejectedRegisterImageCreatesNoImage) {
  TestEmu emu(instant());
  auto p = image_params(make_snapshot(emu), "refused");
  add_tag_spec(p, 1, "image", numbered_tags(51));
  ASSERT_NE(emu.ec2("RegisterImage", p).status, 200);
  EXPECT_EQ(emu.ec2("DescribeImages", {{"Owner.1", "self"}}).xml("imagesSet"), "");
}

TEST(Ec2Validation, CopyImageRejectsMalformedKmsKey) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  EXPECT_EQ(emu.ec2("CopyImage", {{"SourceImageId", base},
                                  {"SourceRegion", "us-east-1"},
                                  {"Name", "copy"},
                                  {"Encrypted", "true"},
                                  {"KmsKeyId", "arn:aws:kms:us-east-1:123456789012:key/nope"}})
                .error_code(),
            "InvalidParameterValue");
}

TEST(Ec2Validation, CopyImageRejectsTagKeyLongerThan128) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  Params p{{"SourceImageId", base}, {"SourceRegion", "us-east-1"}, {"Name", "copy"}};
  add_tag_spec(p, 1, "snapshot", {{std::string(129, 'k'), "v"}});
  EXPECT_EQ(emu.ec2("CopyImage", p).error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CopyImageRejectsANameInUse) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  Params p{{"SourceImageId", base}, {"SourceRegion", "us-east-1"}, {"Name", "copy"}};
  ASSERT_EQ(emu.ec2("CopyImage", p).status, 200);
  EXPECT_EQ(emu.ec2("CopyImage", p).error_code(), "InvalidAMIName.Duplicate");
}

TEST(Ec2Validation, CreateVolumeRejectsMalformedKmsKey) {
  TestEmu emu(instant());
  Response r = emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"},
                                        {"Size", "1"},
                                        {"Encrypted", "true"},
                                        {"KmsKeyId", "alias/"}});
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
  EXPECT_NE(r.xml("Message").find("kmsKeyId"), std::string::npos);
}

TEST(Ec2Validation, CreateVolumeAcceptsAnAliasKmsKey) {
  TestEmu emu(instant());
  EXPECT_FALSE(make_volume(emu, {{"Encrypted", "true"}, {"KmsKeyId", "alias/aws/ebs"}}).empty());
}

TEST(Ec2Validation, CreateVolumeRejectsSizeBeyondItsTypesMaximum) {
  TestEmu emu(instant());
  Response r =
      emu.ec2("CreateVolume",
              {{"AvailabilityZone", "us-east-1a"}, {"Size", "1025"}, {"VolumeType", "standard"}});
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CreateVolumeRejectsSizeSmallerThanItsSnapshot) {
  TestEmu emu(instant());
  std::string snap = make_snapshot(emu, /*size_gib=*/2);
  Response r = emu.ec2("CreateVolume",
                       {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}, {"SnapshotId", snap}});
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CreateVolumeRejectsMoreThan50Tags) {
  TestEmu emu(instant());
  Params p{{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}};
  add_tag_spec(p, 1, "volume", numbered_tags(51));
  EXPECT_EQ(emu.ec2("CreateVolume", p).error_code(), "TagLimitExceeded");
  EXPECT_EQ(emu.ec2("DescribeVolumes").xml("volumeSet"), "");
}

TEST(Ec2Validation, CreateSnapshotRejectsTagValueLongerThan256) {
  TestEmu emu(instant());
  Params p{{"VolumeId", make_volume(emu)}};
  add_tag_spec(p, 1, "snapshot", {{"k", std::string(257, 'v')}});
  EXPECT_EQ(emu.ec2("CreateSnapshot", p).error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CopySnapshotRejectsMalformedKmsKey) {
  TestEmu emu(instant());
  Response r = emu.ec2("CopySnapshot", {{"SourceSnapshotId", make_snapshot(emu)},
                                        {"SourceRegion", "us-east-1"},
                                        {"Encrypted", "true"},
                                        {"KmsKeyId", "0b0b0b0b-1111"}});
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CopySnapshotRejectsAwsPrefixedTagKey) {
  TestEmu emu(instant());
  Params p{{"SourceSnapshotId", make_snapshot(emu)}, {"SourceRegion", "us-east-1"}};
  add_tag_spec(p, 1, "snapshot", {{"aws:backup", "x"}});
  EXPECT_EQ(emu.ec2("CopySnapshot", p).error_code(), "InvalidParameterValue");
}

TEST(Ec2Validation, CreateTagsCountsTheTagsAResourceAlreadyHas) {
  TestEmu emu(instant());
  Params create{{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}};
  add_tag_spec(create, 1, "volume", numbered_tags(49, "old"));
  std::string vol = emu.ec2("CreateVolume", create).xml("volumeId");
  ASSERT_FALSE(vol.empty());
  Response r = emu.ec2("CreateTags", {{"ResourceId.1", vol},
                                      {"Tag.1.Key", "a"},
                                      {"Tag.1.Value", "1"},
                                      {"Tag.2.Key", "b"},
                                      {"Tag.2.Value", "2"}});
  EXPECT_EQ(r.error_code(), "TagLimitExceeded");
  EXPECT_EQ(
      emu.ec2("DescribeTags", {{"Filter.1.Name", "key"}, {"Filter.1.Value.1", "a"}}).xml("tagSet"),
      "");
}

TEST(Ec2Validation, CreateTagsMayOverwriteAKeyAtTheLimit) {
  TestEmu emu(instant());
  Params create{{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}};
  add_tag_spec(create, 1, "volume", numbered_tags(50, "old"));
  std::string vol = emu.ec2("CreateVolume", create).xml("volumeId");
  ASSERT_FALSE(vol.empty());
  EXPECT_EQ(
      emu.ec2("CreateTags", {{"ResourceId.1", vol}, {"Tag.1.Key", "old0"}, {"Tag.1.Value", "new"}})
          .status,
      200);
}

TEST(Ec2Validation, CreateTagsChangesNothingWhenOneResourceWouldExceedTheLimit) {
  TestEmu emu(instant());
  std::string roomy = make_volume(emu);
  Params create{{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}};
  add_tag_spec(create, 1, "volume", numbered_tags(50, "old"));
  std::string full = emu.ec2("CreateVolume", create).xml("volumeId");
  Response r = emu.ec2("CreateTags", {{"ResourceId.1", roomy},
                                      {"ResourceId.2", full},
                                      {"Tag.1.Key", "new"},
                                      {"Tag.1.Value", "v"}});
  EXPECT_EQ(r.error_code(), "TagLimitExceeded");
  EXPECT_EQ(emu.ec2("DescribeTags", {{"Filter.1.Name", "resource-id"}, {"Filter.1.Value.1", roomy}})
                .xml("tagSet"),
            "");
}

TEST(Ec2Validation, CreateTagsRejectsEmptyKey) {
  TestEmu emu(instant());
  EXPECT_EQ(emu.ec2("CreateTags",
                    {{"ResourceId.1", make_volume(emu)}, {"Tag.1.Key", ""}, {"Tag.1.Value", "v"}})
                .error_code(),
            "InvalidParameterValue");
}

TEST(Ec2Validation, DeleteTagsWithAValueLeavesAbsentKeysAbsent) {
  TestEmu emu(instant());
  std::string vol = make_volume(emu);
  ASSERT_EQ(emu.ec2("DeleteTags", {{"ResourceId.1", vol}, {"Tag.1.Key", "k"}, {"Tag.1.Value", "v"}})
                .status,
            200);
  EXPECT_EQ(emu.ec2("DescribeTags", {{"Filter.1.Name", "resource-id"}, {"Filter.1.Value.1", vol}})
                .xml("tagSet"),
            "");
}

TEST(Ec2Validation, AttachVolumeRejectsAPartitionDeviceName) {
  TestEmu emu(instant());
  Response r = emu.ec2(
      "AttachVolume",
      {{"VolumeId", make_volume(emu)}, {"InstanceId", kHostInstanceId}, {"Device", "/dev/sdk1"}});
  EXPECT_EQ(r.error_code(), "InvalidParameterValue");
  EXPECT_NE(r.xml("Message").find("is not a valid EBS device name"), std::string::npos);
}

}  // namespace
}  // namespace amibake::emu

namespace amibake::emu {
namespace {

// botocore's current EC2 model: gp3 up to 80000 IOPS at 500 per GiB, and throughput up to
// 2000 MiB/s at 0.25 MiB/s per IOPS.
TEST(Ec2Validation, CreateVolumeEnforcesGp3RangesAndRatios) {
  TestEmu emu(instant());
  auto create = [&](std::map<std::string, std::string> p) {
    p["AvailabilityZone"] = "us-east-1a";
    p["VolumeType"] = "gp3";
    return emu.ec2("CreateVolume", p);
  };
  EXPECT_EQ(create({{"Size", "200"}, {"Iops", "80000"}}).error_code(), "");
  EXPECT_EQ(create({{"Size", "200"}, {"Iops", "80001"}}).error_code(), "InvalidParameterValue");
  EXPECT_EQ(create({{"Size", "4"}, {"Iops", "3000"}}).error_code(), "InvalidParameterValue");
  EXPECT_EQ(create({{"Size", "100"}, {"Throughput", "750"}}).error_code(), "");
  EXPECT_EQ(create({{"Size", "100"}, {"Throughput", "1000"}}).error_code(),
            "InvalidParameterValue");
  EXPECT_EQ(create({{"Size", "100"}, {"Iops", "8000"}, {"Throughput", "2000"}}).error_code(), "");
  // (Sizes up to 65536 GiB are valid too, Validate.VolumeSizeLimitsDependOnType; awsemu keeps
  // volumes as sparse files, which ext4 cannot make of 16 TiB or more.)
}

}  // namespace
}  // namespace amibake::emu
