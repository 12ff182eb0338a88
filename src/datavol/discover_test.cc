// Discovery against a fake sysfs/dev tree and fixture Identify pages.
#include "datavol/discover.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "base/files.h"

namespace amibake::datavol {
namespace {

class DatavolDiscover : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = make_temp_dir("datavol-discover");
    ASSERT_TRUE(dir.has_value());
    root_ = *dir;
    env_.paths.sys = root_ + "/sys";
    env_.paths.dev = root_ + "/dev";
    env_.identify = &identify_;
    env_.poll_interval = std::chrono::milliseconds(50);
    ASSERT_TRUE(make_dirs(env_.paths.sys + "/block"));
    ASSERT_TRUE(make_dirs(env_.paths.dev));
  }
  void TearDown() override { (void)!system(("rm -rf '" + root_ + "'").c_str()); }

  // nvme<ctrl>n1 with its sysfs controller link and an Identify page (unless page empty).
  void add_nvme(int ctrl, const std::string& serial, const std::string& model,
                const std::string& vendor_area, bool with_page = true) {
    std::string c = "nvme" + std::to_string(ctrl), ns = c + "n1";
    std::string cdir = env_.paths.sys + "/class/nvme/" + c;
    ASSERT_TRUE(make_dirs(cdir));
    ASSERT_TRUE(write_file_atomic(cdir + "/serial", serial + "\n"));
    ASSERT_TRUE(write_file_atomic(cdir + "/model", model + "\n"));
    add_block(ns);
    ASSERT_EQ(symlink(cdir.c_str(), (env_.paths.sys + "/block/" + ns + "/device").c_str()), 0);
    if (with_page) {
      identify_.pages[env_.paths.dev + "/" + c] =
          make_identify_page(0x1D0F, serial, model, vendor_area);
    }
  }
  void add_block(const std::string& name) {
    std::string b = env_.paths.sys + "/block/" + name;
    ASSERT_TRUE(make_dirs(b));
    ASSERT_TRUE(write_file_atomic(b + "/dev", "259:" + std::to_string(minor_++) + "\n"));
    ASSERT_TRUE(write_file_atomic(b + "/size", "2097152\n"));
    ASSERT_TRUE(write_file_atomic(env_.paths.dev + "/" + name, ""));  // stands in for the node
  }
  VolumeConfig by_device(const std::string& d, int wait = 0) {
    VolumeConfig v;
    v.device = d;
    v.wait_seconds = wait;
    return v;
  }

  std::string root_;
  FakeIdentifySource identify_;
  DiscoverEnv env_;
  int minor_ = 0;
};

const char* kEbs = "Amazon Elastic Block Store";
const char* kStore = "Amazon EC2 NVMe Instance Storage";

TEST_F(DatavolDiscover, FindsEbsVolumeByVendorAreaMappingName) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  add_nvme(1, "vol0data", kEbs, "sdb");
  auto found = find_volume(by_device("xvdb"), env_);
  ASSERT_TRUE(found.has_value()) << found.error().describe();
  EXPECT_EQ(found->name, "nvme1n1");
  EXPECT_EQ(found->path, env_.paths.dev + "/nvme1n1");
  EXPECT_NE(found->how.find("vendor area \"sdb\""), std::string::npos);
}

TEST_F(DatavolDiscover, EverySpellingOfTheNameFindsTheSameDevice) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  add_nvme(3, "vol0data", kEbs, "/dev/sdf");
  for (const char* name : {"xvdf", "sdf", "/dev/sdf", "/dev/xvdf"}) {
    auto found = find_volume(by_device(name), env_);
    ASSERT_TRUE(found.has_value()) << name;
    EXPECT_EQ(found->name, "nvme3n1") << name;
  }
}

TEST_F(DatavolDiscover, FindsEbsVolumeByVolumeId) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  add_nvme(1, "vol0123abc", kEbs, "sdb");
  VolumeConfig v;
  v.find_by = FindBy::kVolumeId;
  v.volume_id = "vol-0123abc";
  v.wait_seconds = 0;
  auto found = find_volume(v, env_);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "nvme1n1");
}

TEST_F(DatavolDiscover, VolumeIdFromSysfsWhenTheIoctlFails) {
  add_nvme(1, "vol0123abc", kEbs, "sdb", /*with_page=*/false);
  VolumeConfig v;
  v.find_by = FindBy::kVolumeId;
  v.volume_id = "vol0123abc";
  v.wait_seconds = 0;
  auto found = find_volume(v, env_);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "nvme1n1");
}

TEST_F(DatavolDiscover, XenNameXvdbIsFound) {
  add_block("xvda");
  add_block("xvdb");
  auto found = find_volume(by_device("/dev/sdb"), env_);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "xvdb");
  EXPECT_EQ(found->kind, "xen");
}

TEST_F(DatavolDiscover, OldXenKernelSdNameIsFound) {
  add_block("sda");
  add_block("sdb");
  auto found = find_volume(by_device("xvdb"), env_);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "sdb");
}

TEST_F(DatavolDiscover, UdevLinkIsResolvedToTheRealNode) {
  // QEMU boot test / Amazon's rules without a readable vendor area: /dev/xvdb -> nvme1n1.
  add_nvme(1, "vol0data", "QEMU NVMe Ctrl", "", /*with_page=*/false);
  ASSERT_EQ(symlink("nvme1n1", (env_.paths.dev + "/xvdb").c_str()), 0);
  auto found = find_volume(by_device("xvdb"), env_);
  ASSERT_TRUE(found.has_value()) << found.error().describe();
  EXPECT_EQ(found->name, "nvme1n1");
  EXPECT_EQ(found->path.substr(found->path.size() - 8), "/nvme1n1");
  EXPECT_NE(found->how.find("udev link"), std::string::npos);
}

TEST_F(DatavolDiscover, DevicePathIsUsedAsGiven) {
  add_block("loop3");
  auto found = find_volume(by_device(env_.paths.dev + "/loop3"), env_);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "loop3");
}

TEST_F(DatavolDiscover, MissingDeviceFailsAfterTheBoundedWaitListingWhatItSaw) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  auto start = std::chrono::steady_clock::now();
  auto found = find_volume(by_device("xvdb", /*wait=*/1), env_);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, 1);
  EXPECT_NE(found.error().message.find("not found after 1 s"), std::string::npos);
  EXPECT_NE(found.error().message.find("nvme0n1 ebs vol-0root xvda"), std::string::npos)
      << found.error().message;
  EXPECT_GE(took, std::chrono::seconds(1));
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST_F(DatavolDiscover, DeviceAppearingDuringTheWaitIsFound) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  std::thread attach([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    add_nvme(1, "vol0data", kEbs, "sdb");
  });
  auto found = find_volume(by_device("xvdb", /*wait=*/5), env_);
  attach.join();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "nvme1n1");
}

TEST_F(DatavolDiscover, TwoCandidatesAreRefusedNotGuessed) {
  add_nvme(1, "vol0data", kEbs, "sdb");
  add_block("xvdb");
  auto found = find_volume(by_device("xvdb"), env_);
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, kExitRefused);
  EXPECT_NE(found.error().message.find("refusing to guess"), std::string::npos);
}

TEST_F(DatavolDiscover, InstanceStoreDisksAreNotMappingNameMatches) {
  add_nvme(1, "AWS1", kStore, "ephemeral0:sdb");
  EXPECT_FALSE(find_volume(by_device("xvdb"), env_).has_value());
}

TEST_F(DatavolDiscover, InstanceStoreDisksAreOrderedByEphemeralIndex) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  add_nvme(1, "AWS2", kStore, "ephemeral1:none");
  add_nvme(2, "AWS1", kStore, "ephemeral0:sdb");
  auto disks = find_instance_store(/*wait_seconds=*/1, env_);
  ASSERT_EQ(disks.size(), 2u);
  EXPECT_EQ(disks[0].name, "nvme2n1");
  EXPECT_EQ(disks[1].name, "nvme1n1");
}

TEST_F(DatavolDiscover, NoInstanceStoreIsAnEmptyList) {
  add_nvme(0, "vol0root", kEbs, "sda1");
  EXPECT_TRUE(find_instance_store(/*wait_seconds=*/0, env_).empty());
}

}  // namespace
}  // namespace amibake::datavol
