// Finding an attached volume by id (fake sysfs/dev trees, fixture NVMe pages, a real
// block node for the by-id link) and releasing what a killed install left on a device
// (real loop devices and mounts; skipped without root).
#include "bake/attached_device.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/loop.h"
#include "image/mount.h"

namespace amibake::bake {
namespace {

namespace fs = std::filesystem;

class AttachedDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = make_temp_dir("amibake-attached");
    ASSERT_TRUE(dir);
    root_ = *dir;
    lookup_.device_dir = root_ + "/by-id";
    lookup_.host.sys = root_ + "/sys";
    lookup_.host.dev = root_ + "/dev";
    lookup_.identify = &identify_;
    ASSERT_TRUE(make_dirs(lookup_.device_dir));
    ASSERT_TRUE(make_dirs(lookup_.host.sys + "/block"));
    ASSERT_TRUE(make_dirs(lookup_.host.dev));
  }
  void TearDown() override { fs::remove_all(root_); }

  void add_block(const std::string& name, uint64_t bytes) {
    std::string b = lookup_.host.sys + "/block/" + name;
    ASSERT_TRUE(make_dirs(b));
    ASSERT_TRUE(write_file_atomic(b + "/dev", "259:" + std::to_string(minor_++) + "\n"));
    ASSERT_TRUE(write_file_atomic(b + "/size", std::to_string(bytes / 512) + "\n"));
    ASSERT_TRUE(write_file_atomic(lookup_.host.dev + "/" + name, ""));
  }
  // An NVMe EBS disk nvme<ctrl>n1 whose controller serial is `serial`.
  void add_nvme(int ctrl, const std::string& serial) {
    std::string c = "nvme" + std::to_string(ctrl), ns = c + "n1";
    std::string cdir = lookup_.host.sys + "/class/nvme/" + c;
    ASSERT_TRUE(make_dirs(cdir));
    add_block(ns, 8ull << 30);
    ASSERT_EQ(::symlink(cdir.c_str(), (lookup_.host.sys + "/block/" + ns + "/device").c_str()), 0);
    identify_.pages[lookup_.host.dev + "/" + c] =
        datavol::make_identify_page(0x1D0F, serial, "Amazon Elastic Block Store", "sdf");
  }

  std::string root_;
  datavol::FakeIdentifySource identify_;
  DeviceLookup lookup_;
  int minor_ = 0;
};

TEST(EbsByIdName, IsAmazonLinuxUdevSpelling) {
  EXPECT_EQ(ebs_by_id_name("vol-0abc123"), "nvme-Amazon_Elastic_Block_Store_vol0abc123");
}

TEST_F(AttachedDevice, ByIdLinkToABlockNodeIdentifiesTheVolume) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a block device node";
  std::string node = lookup_.host.dev + "/fake-blk";
  ASSERT_EQ(::mknod(node.c_str(), S_IFBLK | 0600, makedev(7, 200)), 0);
  ASSERT_EQ(::symlink(node.c_str(), (lookup_.device_dir + "/" + ebs_by_id_name("vol-0aa")).c_str()),
            0);
  auto found = look_for_attached_device("vol-0aa", "/dev/sdf", 8ull << 30, lookup_);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->path, node);
  EXPECT_NE(found->how.find("by-id link"), std::string::npos) << found->how;
  EXPECT_FALSE(look_for_attached_device("vol-0bb", "/dev/sdg", 8ull << 30, lookup_));
}

TEST_F(AttachedDevice, ByIdLinkToSomethingNotABlockDeviceIsIgnored) {
  std::string file = root_ + "/plain-file";
  ASSERT_TRUE(write_file_atomic(file, "x"));
  ASSERT_EQ(::symlink(file.c_str(), (lookup_.device_dir + "/" + ebs_by_id_name("vol-0aa")).c_str()),
            0);
  EXPECT_FALSE(look_for_attached_device("vol-0aa", "/dev/sdf", 8ull << 30, lookup_));
}

TEST_F(AttachedDevice, NvmeSerialIdentifiesTheVolumeWithoutUdevLinks) {
  add_nvme(0, "vol0root");
  add_nvme(1, "vol0other");  // another build's volume, attached just before ours
  add_nvme(2, "vol0mine");
  auto found = look_for_attached_device("vol-0mine", "/dev/sdf", 8ull << 30, lookup_);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->path, lookup_.host.dev + "/nvme2n1");
  EXPECT_NE(found->how.find("NVMe serial"), std::string::npos) << found->how;
  auto other = look_for_attached_device("vol-0other", "/dev/sdg", 8ull << 30, lookup_);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->path, lookup_.host.dev + "/nvme1n1");
}

TEST_F(AttachedDevice, XenDiskOfTheAttachNameCountsOnlyWithTheVolumesSize) {
  add_block("xvda", 30ull << 30);
  add_block("xvdf", 30ull << 30);
  auto found = look_for_attached_device("vol-0aa", "/dev/sdf", 30ull << 30, lookup_);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->path, lookup_.host.dev + "/xvdf");
  EXPECT_FALSE(look_for_attached_device("vol-0aa", "/dev/sdf", 40ull << 30, lookup_))
      << "a disk of another size at that name is not our volume";
  EXPECT_FALSE(look_for_attached_device("vol-0aa", "/dev/sdg", 30ull << 30, lookup_));
}

TEST_F(AttachedDevice, NoNvmeDiskIsTakenByOrderOrName) {
  add_nvme(0, "vol0root");
  add_nvme(1, "vol0someoneelse");
  EXPECT_FALSE(look_for_attached_device("vol-0mine", "/dev/sdf", 8ull << 30, lookup_));
}

TEST_F(AttachedDevice, WaitGivesUpNamingWhatItLookedFor) {
  add_nvme(0, "vol0root");
  auto r = wait_for_attached_device("vol-0mine", "/dev/sdf", 8ull << 30, lookup_,
                                    std::chrono::milliseconds(300), nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(ebs_by_id_name("vol-0mine")), std::string::npos);
  EXPECT_NE(r.error().message.find("serial vol-0mine"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("nvme0n1"), std::string::npos) << "lists what it saw";
}

TEST_F(AttachedDevice, WaitStopsWhenAskedTo) {
  auto r = wait_for_attached_device("vol-0mine", "/dev/sdf", 8ull << 30, lookup_,
                                    std::chrono::seconds(30),
                                    [] { return Status(make_error("interrupted", "", 130)); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 130);
}

TEST_F(AttachedDevice, WaitFindsAVolumeThatAppearsLater) {
  std::thread later([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    add_nvme(4, "vol0late");
  });
  auto r = wait_for_attached_device("vol-0late", "/dev/sdf", 8ull << 30, lookup_,
                                    std::chrono::seconds(10), nullptr);
  later.join();
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->path, lookup_.host.dev + "/nvme4n1");
}

TEST_F(AttachedDevice, CandidatesSkipNamesInUseInAnySpelling) {
  auto names = attach_name_candidates({"/dev/xvda", "/dev/sdf", "/dev/xvdg", "xvdh"}, "b-1",
                                      lookup_.host.sys);
  std::set<std::string> got(names.begin(), names.end());
  EXPECT_EQ(got.size(), names.size());
  EXPECT_EQ(names.size(), 8u);  // sdf..sdp is 11 names, 3 taken
  for (const char* taken : {"/dev/sdf", "/dev/sdg", "/dev/sdh"}) EXPECT_FALSE(got.count(taken));
  EXPECT_TRUE(got.count("/dev/sdp"));
}

TEST_F(AttachedDevice, CandidatesSkipXenDisksPresentOnTheHost) {
  add_block("xvdi", 1ull << 30);
  auto names = attach_name_candidates({}, "b-1", lookup_.host.sys);
  EXPECT_EQ(std::count(names.begin(), names.end(), "/dev/sdi"), 0);
  EXPECT_EQ(names.size(), 10u);
}

TEST_F(AttachedDevice, CandidatesStartWhereTheBuildIdSays) {
  auto a = attach_name_candidates({}, "b-20261201-130000-aaaaaa", lookup_.host.sys);
  EXPECT_EQ(a, attach_name_candidates({}, "b-20261201-130000-aaaaaa", lookup_.host.sys));
  std::set<std::string> firsts;
  for (int i = 0; i < 20; ++i) {
    firsts.insert(attach_name_candidates({}, "b-" + std::to_string(i), lookup_.host.sys).front());
  }
  EXPECT_GT(firsts.size(), 3u) << "concurrent builds should not all try the same name first";
}

// ---- releasing leftovers: real loop devices and mounts ----

class ReleaseLoops : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/loop-control", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and loop devices";
    }
    if (!program_exists("mkfs.ext4")) GTEST_SKIP() << "needs mkfs.ext4";
    auto dir = make_temp_dir("amibake-release");
    ASSERT_TRUE(dir);
    root_ = *dir;
    // The "volume": a file with an ext4 filesystem, attached as a loop device, as awsemu
    // exposes an attached volume.
    std::string file = root_ + "/volume.img";
    ASSERT_EQ(run_process({"truncate", "-s", "64M", file})->exit_code, 0);
    ASSERT_EQ(run_process({"mkfs.ext4", "-q", "-F", file})->exit_code, 0);
    auto v = image::LoopDevice::attach(file);
    ASSERT_TRUE(v) << v.error().message;
    volume_.emplace(std::move(*v));
  }
  void TearDown() override {
    volume_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }
  bool mounted_at(const std::string& path) {
    auto mi = read_file("/proc/self/mountinfo");
    return mi && mi->find(" " + path + " ") != std::string::npos;
  }
  std::string root_;
  std::optional<image::LoopDevice> volume_;
};

TEST_F(ReleaseLoops, UnmountsAndDetachesALoopLeftOnTheDevice) {
  // What a killed install leaves: a loop on the volume's device, mounted. losetup makes
  // it, so no owner object here would detach a reused loop number afterwards.
  auto attached = run_checked({"losetup", "-f", "--show", volume_->path()});
  ASSERT_TRUE(attached) << attached.error().message;
  std::string inner = *attached;
  while (!inner.empty() && inner.back() == '\n') inner.pop_back();
  std::string target = root_ + "/amibake-mnt.test";
  ASSERT_TRUE(make_dirs(target));
  ASSERT_EQ(::mount(inner.c_str(), target.c_str(), "ext4", 0, nullptr), 0);
  auto loops = loops_backed_by(volume_->path());
  ASSERT_TRUE(loops) << loops.error().message;
  ASSERT_EQ(*loops, std::vector<std::string>{inner});

  auto released = release_loops_on(volume_->path());
  ASSERT_TRUE(released) << released.error().describe();
  EXPECT_EQ(released->size(), 2u);  // unmounted, detached
  EXPECT_FALSE(mounted_at(target));
  EXPECT_FALSE(fs::exists(target)) << "Mount's own temporary folder is removed";
  auto after = loops_backed_by(volume_->path());
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->empty());
  // A second call has nothing to do.
  auto again = release_loops_on(volume_->path());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty());
}

TEST_F(ReleaseLoops, RefusesWhenTheDeviceItselfIsMountedAndTouchesNothing) {
  std::string target = root_ + "/someone-elses";
  ASSERT_TRUE(make_dirs(target));
  ASSERT_EQ(::mount(volume_->path().c_str(), target.c_str(), "ext4", MS_RDONLY, nullptr), 0);
  auto r = release_loops_on(volume_->path());
  EXPECT_FALSE(r);
  if (!r) {
    EXPECT_NE(r.error().message.find("not by amibake"), std::string::npos);
  }
  EXPECT_TRUE(mounted_at(target));
  ASSERT_EQ(::umount(target.c_str()), 0);
}

TEST_F(ReleaseLoops, FlushesABlockDevice) { EXPECT_TRUE(flush_block_device(volume_->path())); }

}  // namespace
}  // namespace amibake::bake
