// Loop devices and mounts on real kernel objects (root only; skipped with the reason
// otherwise), and the whole payload path: GPT disk → root partition → loop at its offset →
// XFS mount → write → unmount → only the touched blocks are reported changed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "image/block_image.h"
#include "image/loop.h"
#include "image/mount.h"
#include "image/partition.h"
#include "image/payload.h"
#include "image/root_mount.h"
#include "image/selinux.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

using testing::make_sparse_file;
using testing::run_ok;
using testing::ScratchDir;
using testing::why_no_loop_devices;

constexpr uint64_t kMiB = 1024 * 1024;

#define SKIP_WITHOUT_LOOP()                  \
  do {                                       \
    std::string why = why_no_loop_devices(); \
    if (!why.empty()) GTEST_SKIP() << why;   \
  } while (0)

// The kernel's record of what backs a loop device; "" once it is detached.
std::string backing_file_of(const std::string& device) {
  std::string name = device.substr(device.rfind('/') + 1);
  auto r = read_file("/sys/block/" + name + "/loop/backing_file");
  return r ? *r : std::string();
}

std::string read_device(const std::string& device, uint64_t offset, size_t length) {
  int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  std::string out(length, '\0');
  EXPECT_EQ(::pread(fd, out.data(), length, static_cast<off_t>(offset)),
            static_cast<ssize_t>(length));
  ::close(fd);
  return out;
}

// Hashes every block of `path` by reading it all (holes included): the reference that
// BlockImage's extent-skipping, zero-normalising hashes are checked against.
std::vector<Digest> naive_hashes(const std::string& path, std::vector<bool>* zero = nullptr) {
  auto content = read_file(path);
  EXPECT_TRUE(content);
  std::vector<Digest> out;
  if (zero) zero->clear();
  for (size_t at = 0; content && at < content->size(); at += kBlockSize) {
    std::string_view block(content->data() + at,
                           std::min<size_t>(kBlockSize, content->size() - at));
    out.push_back(sha256(block));
    if (zero) zero->push_back(is_all_zero(block));
  }
  return out;
}

// A sparse GPT disk with one XFS root partition (type Linux root x86-64) from 1 MiB on.
struct XfsDisk {
  std::string path;
  Partition root;
};

XfsDisk make_xfs_disk(const ScratchDir& dir, uint64_t size = 512 * kMiB) {
  XfsDisk disk{dir.file("disk.img"), {}};
  make_sparse_file(disk.path, size);
  run_ok({"sgdisk", "-n", "1:2048:0", "-t", "1:8304", "-c", "1:root", disk.path});
  auto table = read_partition_table(disk.path);
  EXPECT_TRUE(table);
  if (!table) return disk;
  auto root = find_root_partition(*table);
  EXPECT_TRUE(root);
  if (!root) return disk;
  disk.root = *root;
  auto loop = LoopDevice::attach(disk.path, {root->start, root->size, false, true});
  EXPECT_TRUE(loop) << loop.error().message;
  if (loop) run_ok({"mkfs.xfs", "-q", "-f", "-L", "root", loop->path()});
  return disk;
}

TEST(Loop, AttachesAByteRangeOfAFile) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 64 * kMiB);
  ASSERT_TRUE(write_file_atomic(dir.file("marker"), "MARKER"));
  int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_EQ(::pwrite(fd, "MARKER", 6, static_cast<off_t>(kMiB + 4096)), 6);
  ::close(fd);
  auto loop = LoopDevice::attach(file, {kMiB, 16 * kMiB, false, true});
  ASSERT_TRUE(loop) << loop.error().message;
  auto size = loop->size();
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, 16 * kMiB);
  EXPECT_EQ(read_device(loop->path(), 4096, 6), "MARKER");
  EXPECT_EQ(backing_file_of(loop->path()), file + "\n");
}

// direct_io() tells what the kernel really does (it may refuse direct I/O for a file).
TEST(Loop, DirectIoIsAskedForOnlyWhenWantedAndReportedAsTheKernelHasIt) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 8 * kMiB);
  auto dio_of = [](const std::string& device) {
    auto r = read_file("/sys/block/" + device.substr(device.rfind('/') + 1) + "/loop/dio");
    return r && *r == "1\n";
  };
  auto buffered = LoopDevice::attach(file);
  ASSERT_TRUE(buffered) << buffered.error().message;
  EXPECT_FALSE(buffered->direct_io());
  EXPECT_FALSE(dio_of(buffered->path()));
  LoopOptions o;
  o.direct_io = true;
  auto direct = LoopDevice::attach(file, o);
  ASSERT_TRUE(direct) << direct.error().message;
  EXPECT_EQ(direct->direct_io(), dio_of(direct->path()));
  EXPECT_EQ(read_device(direct->path(), 0, 4096), std::string(4096, '\0'));
}

TEST(Loop, ReadOnlyAttachRefusesWrites) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 8 * kMiB);
  auto loop = LoopDevice::attach(file, {0, 0, /*read_only=*/true, true});
  ASSERT_TRUE(loop) << loop.error().message;
  int fd = ::open(loop->path().c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    EXPECT_LT(::pwrite(fd, "x", 1, 0), 0);
    ::close(fd);
  }
  // Either the open or the write failed; the file is untouched either way.
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0);
}

TEST(Loop, DetachReleasesTheDevice) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 8 * kMiB);
  std::string device;
  {
    auto loop = LoopDevice::attach(file);
    ASSERT_TRUE(loop);
    device = loop->path();
    EXPECT_FALSE(backing_file_of(device).empty());
    Status s = loop->detach();
    EXPECT_TRUE(s) << s.error().message;
    EXPECT_TRUE(loop->path().empty());
  }
  EXPECT_EQ(backing_file_of(device), "");
}

TEST(Loop, DestructorDetaches) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 8 * kMiB);
  std::string device;
  {
    auto loop = LoopDevice::attach(file);
    ASSERT_TRUE(loop);
    device = loop->path();
  }
  EXPECT_EQ(backing_file_of(device), "");
}

TEST(Loop, RefreshCapacitySeesAGrownFile) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("f.img");
  make_sparse_file(file, 8 * kMiB);
  auto loop = LoopDevice::attach(file);
  ASSERT_TRUE(loop);
  ASSERT_EQ(::truncate(file.c_str(), 24 * kMiB), 0);
  EXPECT_EQ(*loop->size(), 8 * kMiB);
  ASSERT_TRUE(loop->refresh_capacity());
  EXPECT_EQ(*loop->size(), 24 * kMiB);
}

TEST(Loop, DetachWhileMountedSaysItIsInUse) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
  ASSERT_TRUE(loop);
  auto mount = Mount::mount_device(loop->path());
  ASSERT_TRUE(mount) << mount.error().message;
  Status s = loop->detach();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("still in use"), std::string::npos);
  // The mount still works; unmounting lets the kernel finish the detach (autoclear).
  ASSERT_TRUE(mount->unmount());
}

TEST(Mount, DetectsXfsAndMountsWithNouuid) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
  ASSERT_TRUE(loop);
  auto mount = Mount::mount_device(loop->path());
  ASSERT_TRUE(mount) << mount.error().message;
  EXPECT_EQ(mount->fstype(), "xfs");
  auto mounts = read_file("/proc/self/mounts");
  ASSERT_TRUE(mounts);
  size_t line = mounts->find(" " + mount->path() + " ");
  ASSERT_NE(line, std::string::npos);
  std::string entry = mounts->substr(line, mounts->find('\n', line) - line);
  EXPECT_NE(entry.find("nouuid"), std::string::npos) << entry;
  EXPECT_NE(entry.find("nosuid"), std::string::npos) << entry;
  std::string target = mount->path();
  ASSERT_TRUE(mount->unmount());
  EXPECT_FALSE(std::filesystem::exists(target)) << "temporary mount folder should be removed";
}

TEST(Mount, DeviceWithoutFilesystemIsAClearError) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string file = dir.file("blank.img");
  make_sparse_file(file, 8 * kMiB);
  auto loop = LoopDevice::attach(file);
  ASSERT_TRUE(loop);
  auto mount = Mount::mount_device(loop->path());
  ASSERT_FALSE(mount);
  EXPECT_NE(mount.error().message.find("no filesystem found"), std::string::npos);
}

TEST(Mount, BusyUnmountDetachesLazilyAndSaysSo) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
  ASSERT_TRUE(loop);
  auto mount = Mount::mount_device(loop->path());
  ASSERT_TRUE(mount);
  std::string target = mount->path();
  int fd = ::open((target + "/held").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  Status s = mount->unmount();
  ::close(fd);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("busy"), std::string::npos);
  auto mounts = read_file("/proc/self/mounts");
  EXPECT_EQ(mounts->find(" " + target + " "), std::string::npos) << "lazily detached";
}

TEST(RootMount, MountsTheRootPartitionOfAGptDisk) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  std::string device;
  {
    auto root = mount_root(disk.path);
    ASSERT_TRUE(root) << root.error().describe();
    device = root->device();
    EXPECT_EQ(root->partition().index, 1);
    EXPECT_EQ(root->fstype(), "xfs");
    EXPECT_EQ(root->table().kind, TableKind::kGpt);
    EXPECT_TRUE(install_file(root->path(), "/etc/marker", "M", 0644));
    Status s = root->release();
    EXPECT_TRUE(s) << s.error().message;
  }
  EXPECT_EQ(backing_file_of(device), "");
  auto again = mount_root(disk.path, {/*read_only=*/true, ""});
  ASSERT_TRUE(again);
  EXPECT_EQ(*read_file_in_root(again->path(), "/etc/marker"), "M");
}

TEST(RootMount, SelinuxLabelIsStoredInTheImage) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  {
    auto root = mount_root(disk.path);
    ASSERT_TRUE(root);
    ASSERT_TRUE(install_file(root->path(), "/usr/local/bin/datavol", "B", 0755));
    Status s =
        set_selinux_label(root->path(), "/usr/local/bin/datavol", "system_u:object_r:bin_t:s0");
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE(root->release());
  }
  auto root = mount_root(disk.path, {/*read_only=*/true, ""});
  ASSERT_TRUE(root);
  auto label = get_selinux_label(root->path(), "/usr/local/bin/datavol");
  ASSERT_TRUE(label) << label.error().message;
  EXPECT_EQ(*label, "system_u:object_r:bin_t:s0");
}

TEST(RootMount, RootPartitionWithoutFilesystemIsAClearError) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  std::string disk = dir.file("empty.img");
  make_sparse_file(disk, 64 * kMiB);
  run_ok({"sgdisk", "-n", "1:2048:0", "-t", "1:8304", disk});
  auto root = mount_root(disk);
  ASSERT_FALSE(root);
  EXPECT_NE(root.error().message.find(
                "partition 1 (4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709): no filesystem"),
            std::string::npos)
      << root.error().message;
}

// The bake's payload path end to end on a real kernel: only the blocks the filesystem
// really wrote are reported, checked against a full-file hash comparison.
TEST(Payload, GptXfsRootWriteReportsExactlyTheTouchedBlocks) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  auto image = BlockImage::open(disk.path);
  ASSERT_TRUE(image);
  auto before = image->hash_blocks();
  ASSERT_TRUE(before);
  std::vector<Digest> naive_before = naive_hashes(disk.path);
  {
    auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
    ASSERT_TRUE(loop);
    auto mount = Mount::mount_device(loop->path());
    ASSERT_TRUE(mount) << mount.error().message;
    ASSERT_TRUE(
        install_file(mount->path(), "/usr/local/bin/datavol", std::string(3 * kMiB, 'D'), 0755));
    ASSERT_TRUE(install_file(mount->path(), "/etc/datavol.toml", "mount = \"/data\"\n", 0644));
    ASSERT_TRUE(mount->unmount());
    ASSERT_TRUE(loop->detach());
  }
  std::vector<bool> zero_now;
  std::vector<Digest> naive_after = naive_hashes(disk.path, &zero_now);
  std::vector<ChangedBlock> expected;
  for (size_t i = 0; i < naive_after.size(); ++i)
    if (naive_before[i] != naive_after[i]) expected.push_back({i, zero_now[i]});
  auto changed = image->changed_blocks(*before);
  ASSERT_TRUE(changed);
  EXPECT_EQ(*changed, expected);
  EXPECT_GE(changed->size(), 6u) << "3 MiB of file data is at least 6 blocks";
  EXPECT_LT(changed->size(), 40u) << "a small install should touch few blocks";
}

TEST(Payload, TrimmedBlocksAreReportedAsZero) {
  SKIP_WITHOUT_LOOP();
  ScratchDir dir;
  XfsDisk disk = make_xfs_disk(dir);
  auto image = BlockImage::open(disk.path);
  ASSERT_TRUE(image);
  {
    auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
    ASSERT_TRUE(loop);
    auto mount = Mount::mount_device(loop->path());
    ASSERT_TRUE(mount);
    ASSERT_TRUE(install_file(mount->path(), "/big", std::string(4 * kMiB, 'B'), 0644));
    ASSERT_TRUE(mount->unmount());
  }
  auto before = image->hash_blocks();
  ASSERT_TRUE(before);
  std::vector<Digest> naive_before = naive_hashes(disk.path);
  {
    auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
    ASSERT_TRUE(loop);
    auto mount = Mount::mount_device(loop->path());
    ASSERT_TRUE(mount);
    ASSERT_EQ(::unlink((mount->path() + "/big").c_str()), 0);
    ASSERT_TRUE(mount->unmount());
  }
  {
    // Trim on a fresh mount: right after an unlink XFS may still hold the freed extents as
    // busy (inode inactivation and log commit are deferred), and fstrim skips busy extents.
    auto loop = LoopDevice::attach(disk.path, {disk.root.start, disk.root.size, false, true});
    ASSERT_TRUE(loop);
    auto mount = Mount::mount_device(loop->path());
    ASSERT_TRUE(mount);
    run_ok({"fstrim", mount->path()});  // discard → loop punches holes in the file
    ASSERT_TRUE(mount->unmount());
  }
  std::vector<bool> zero_now;
  std::vector<Digest> naive_after = naive_hashes(disk.path, &zero_now);
  auto changed = image->changed_blocks(*before);
  ASSERT_TRUE(changed);
  std::vector<ChangedBlock> expected;
  for (size_t i = 0; i < naive_after.size(); ++i)
    if (naive_before[i] != naive_after[i]) expected.push_back({i, zero_now[i]});
  EXPECT_EQ(*changed, expected);
  size_t zero_blocks = 0;
  for (const ChangedBlock& c : *changed) zero_blocks += c.zero ? 1 : 0;
  EXPECT_GE(zero_blocks, 8u) << "the 4 MiB file's blocks were trimmed to zero";
}

}  // namespace
}  // namespace amibake::image
