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

std::string make_snapshot(TestEmu& emu) {
  std::string vol = make_volume(emu);
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

TEST(Ec2, ImageBecomesAvailableAfterItsSnapshotCompletes) {
  Options o;
  o.speed = 0.2;  // volume 0.6 s, snapshot 2 s, image 1 s after registering
  TestEmu emu(o);
  std::string vol = make_volume(emu);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string snap = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  std::string ami = emu.ec2("RegisterImage", image_params(snap, "waits")).xml("imageId");
  ASSERT_FALSE(ami.empty());
  EXPECT_EQ(emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("imageState"), "pending");
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
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

}  // namespace
}  // namespace amibake::emu
