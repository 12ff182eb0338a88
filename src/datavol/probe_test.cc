// The safety checks against a fake sysfs, mountinfo and swaps, on an ordinary file standing
// in for the disk (libblkid and the zero check read files as happily as devices).
#include "datavol/probe.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/files.h"
#include "base/subprocess.h"

namespace amibake::datavol {
namespace {

class DatavolProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = *make_temp_dir("datavol-probe");
    paths_.sys = root_ + "/sys";
    paths_.dev = root_ + "/dev";
    paths_.mountinfo = root_ + "/mountinfo";
    paths_.swaps = root_ + "/swaps";
    disk_ = paths_.dev + "/nvme1n1";
    ASSERT_TRUE(make_dirs(paths_.sys + "/block/nvme1n1/holders"));
    ASSERT_TRUE(make_dirs(paths_.dev));
    ASSERT_TRUE(write_file_atomic(paths_.sys + "/block/nvme1n1/dev", "259:4\n"));
    ASSERT_TRUE(write_file_atomic(paths_.sys + "/block/nvme1n1/size", "131072\n"));
    ASSERT_TRUE(write_file_atomic(paths_.mountinfo, "22 1 259:1 / / rw - xfs /dev/nvme0n1p1 rw\n"));
    ASSERT_TRUE(write_file_atomic(paths_.swaps, "Filename Type Size Used Priority\n"));
    ASSERT_TRUE(run_checked({"truncate", "-s", "64M", disk_}).has_value());
  }
  void TearDown() override { (void)run_process({"rm", "-rf", root_}); }

  void add_partition(const std::string& name, const std::string& dev) {
    std::string p = paths_.sys + "/block/nvme1n1/" + name;
    ASSERT_TRUE(make_dirs(p));
    ASSERT_TRUE(write_file_atomic(p + "/partition", "1\n"));
    ASSERT_TRUE(write_file_atomic(p + "/dev", dev + "\n"));
  }

  ProbeResult probe() {
    int fd = ::open(disk_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    auto r = probe_device(disk_, "nvme1n1", fd, paths_);
    ::close(fd);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().describe());
    return r.value_or(ProbeResult{});
  }

  std::string root_, disk_;
  HostPaths paths_;
};

TEST_F(DatavolProbe, ZeroedUnusedDiskIsBlank) {
  ProbeResult r = probe();
  EXPECT_EQ(r.verdict, Verdict::kBlank) << r.reason;
  EXPECT_EQ(r.size_bytes, 64u << 20);
}

TEST_F(DatavolProbe, MountedDiskIsRefused) {
  ASSERT_TRUE(write_file_atomic(paths_.mountinfo, "40 1 259:4 / /srv rw - xfs /dev/nvme1n1 rw\n"));
  ProbeResult r = probe();
  EXPECT_EQ(r.verdict, Verdict::kRefused);
  EXPECT_EQ(r.reason, "nvme1n1 is mounted at /srv");
}

TEST_F(DatavolProbe, MountedPartitionIsRefused) {
  add_partition("nvme1n1p2", "259:6");
  ASSERT_TRUE(
      write_file_atomic(paths_.mountinfo, "40 1 259:6 / /boot rw - ext4 /dev/nvme1n1p2 rw\n"));
  EXPECT_EQ(probe().reason, "nvme1n1p2 is mounted at /boot");
}

TEST_F(DatavolProbe, RootFilesystemHolderIsRefused) {
  add_partition("nvme1n1p1", "259:5");
  ASSERT_TRUE(write_file_atomic(paths_.mountinfo, "22 1 259:5 / / rw - xfs /dev/root rw\n"));
  EXPECT_EQ(probe().reason, "nvme1n1p1 holds the root filesystem");
}

TEST_F(DatavolProbe, MountedBySourcePathIsRefused) {
  // btrfs reports an anonymous maj:min; the source path still names the disk.
  ASSERT_TRUE(
      write_file_atomic(paths_.mountinfo, "40 1 0:45 / /vol rw - btrfs " + disk_ + " rw\n"));
  EXPECT_EQ(probe().reason, "nvme1n1 is mounted at /vol");
}

TEST_F(DatavolProbe, ActiveSwapIsRefused) {
  ASSERT_TRUE(write_file_atomic(
      paths_.swaps, "Filename Type Size Used Priority\n" + disk_ + " partition 65532 0 -2\n"));
  EXPECT_EQ(probe().reason, "nvme1n1 is active swap");
}

TEST_F(DatavolProbe, HoldersAreRefused) {
  ASSERT_TRUE(make_dirs(paths_.sys + "/block/nvme1n1/holders/md127"));
  ProbeResult r = probe();
  EXPECT_EQ(r.verdict, Verdict::kRefused);
  EXPECT_NE(r.reason.find("in use by md127"), std::string::npos) << r.reason;
}

TEST_F(DatavolProbe, PartitionsAreRefused) {
  add_partition("nvme1n1p1", "259:5");
  EXPECT_NE(probe().reason.find("has 1 partition(s)"), std::string::npos);
}

TEST_F(DatavolProbe, ExistingFilesystemIsReportedWithUuid) {
  if (!program_exists("mkfs.ext4")) GTEST_SKIP() << "mkfs.ext4 not installed";
  ASSERT_TRUE(
      run_checked({"mkfs.ext4", "-q", "-F", "-U", "0e9a1d2c-1111-4222-8333-944455556666", disk_})
          .has_value());
  ProbeResult r = probe();
  EXPECT_EQ(r.verdict, Verdict::kFilesystem);
  EXPECT_EQ(r.fstype, "ext4");
  EXPECT_EQ(r.uuid, "0e9a1d2c-1111-4222-8333-944455556666");
}

TEST_F(DatavolProbe, NonZeroByteInTheLastMibIsRefused) {
  int fd = ::open(disk_.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, (64 << 20) - 100), 1);
  ::close(fd);
  EXPECT_NE(probe().reason.find("non-zero bytes"), std::string::npos);
}

TEST_F(DatavolProbe, NonZeroByteInTheMiddleIsNotLookedAt) {
  // Only the ends are read: a fresh volume is all zeros, and reading 1 TiB would take minutes.
  int fd = ::open(disk_.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, 32 << 20), 1);
  ::close(fd);
  EXPECT_EQ(probe().verdict, Verdict::kBlank);
}

TEST_F(DatavolProbe, AmbiguousSignaturesAreRefused) {
  // An xfs with an ext4 superblock written over its AGI sector: libblkid's safe probe says
  // "ambivalent" (-2), which must be a refusal, as in systemd-makefs.
  if (!program_exists("mkfs.ext4") || !program_exists("mkfs.xfs")) GTEST_SKIP() << "tools missing";
  ASSERT_TRUE(run_checked({"truncate", "-s", "400M", disk_}).has_value());
  ASSERT_TRUE(write_file_atomic(paths_.sys + "/block/nvme1n1/size", "819200\n"));
  ASSERT_TRUE(run_checked({"mkfs.ext4", "-q", "-F", disk_}).has_value());
  ASSERT_TRUE(run_checked({"dd", "if=" + disk_, "of=" + root_ + "/extsb", "bs=1024", "skip=1",
                           "count=1", "status=none"})
                  .has_value());
  ASSERT_TRUE(run_checked({"mkfs.xfs", "-q", "-f", disk_}).has_value());
  ASSERT_TRUE(run_checked({"dd", "if=" + root_ + "/extsb", "of=" + disk_, "bs=1024", "seek=1",
                           "conv=notrunc", "status=none"})
                  .has_value());
  ProbeResult r = probe();
  EXPECT_EQ(r.verdict, Verdict::kRefused);
  EXPECT_NE(r.reason.find("ambiguous"), std::string::npos) << r.reason;
}

}  // namespace
}  // namespace amibake::datavol
