// LazyDisk on real kernel objects: a FUSE file, loop devices over it, XFS and ext4 mounts.
// Needs root and /dev/fuse (skipped with the reason otherwise). The block source is a fake
// over a real disk image that records which blocks it was asked for; tests assert on that.
#include "image/lazy_disk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/block_image.h"
#include "image/loop.h"
#include "image/payload.h"
#include "image/root_mount.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

using testing::make_test_disk;
using testing::ScratchDir;
using testing::TestDiskKind;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = 1024 * 1024;

std::string why_no_fuse() {
  if (::geteuid() != 0) return "needs root to mount FUSE";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is not usable";
  return testing::why_no_loop_devices();
}

#define SKIP_WITHOUT_FUSE()                \
  do {                                     \
    std::string why = why_no_fuse();       \
    if (!why.empty()) GTEST_SKIP() << why; \
  } while (0)

// Reads block `index` of `path` (zero-padded past the end).
std::string read_block_of(const std::string& path, uint64_t index) {
  std::string out(kBlockSize, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  if (fd < 0) return out;
  ssize_t n = ::pread(fd, out.data(), kBlockSize, static_cast<off_t>(index * kBlockSize));
  EXPECT_GE(n, 0) << path << ": " << std::strerror(errno);
  ::close(fd);
  return out;
}

// A BlockSource over a real image file that records every call, optionally slow, optionally
// failing one block.
class RecordingSource : public BlockSource {
 public:
  explicit RecordingSource(std::string image, std::chrono::milliseconds delay = {})
      : image_(std::move(image)), delay_(delay) {}

  void fail_block(uint64_t index) { fail_ = index; }

  Result<std::string> fetch(uint64_t index) override {
    int now;
    {
      std::lock_guard lock(mu_);
      ++calls_[index];
      now = ++in_flight_;
      max_in_flight_ = std::max(max_in_flight_, now);
    }
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    Result<std::string> out = make_error("unset");
    if (fail_ && *fail_ == index)
      out = make_error("GetSnapshotBlock: InternalError (after 5 attempts)");
    else
      out = read_block_of(image_, index);
    std::lock_guard lock(mu_);
    --in_flight_;
    return out;
  }

  std::map<uint64_t, int> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<uint64_t> asked() const {
    std::vector<uint64_t> out;
    for (const auto& [index, n] : calls()) out.push_back(index);
    return out;
  }
  int max_in_flight() const {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }

 private:
  std::string image_;
  std::chrono::milliseconds delay_;
  std::optional<uint64_t> fail_;
  mutable std::mutex mu_;
  std::map<uint64_t, int> calls_;
  int in_flight_ = 0, max_in_flight_ = 0;
};

// ---- a synthetic image (no filesystem) for the block-level behaviours ----

constexpr uint64_t kSyntheticBlocks = 64;

// Block i of the synthetic image: a pattern unique to i.
std::string synthetic_block(uint64_t index) {
  std::string out(kBlockSize, '\0');
  std::mt19937_64 rng(index + 1);
  for (size_t at = 0; at < out.size(); at += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + at, &v, 8);
  }
  return out;
}

// Writes a synthetic image whose even blocks hold data; returns them (the "listed" set).
std::vector<uint64_t> make_synthetic_image(const std::string& path) {
  testing::make_sparse_file(path, kSyntheticBlocks * kBlockSize);
  auto image = BlockImage::open(path);
  EXPECT_TRUE(image);
  std::vector<uint64_t> listed;
  for (uint64_t b = 0; b < kSyntheticBlocks; b += 2) {
    EXPECT_TRUE(image->write_block(b, synthetic_block(b)));
    listed.push_back(b);
  }
  return listed;
}

struct SyntheticDisk {
  ScratchDir dir;
  std::string image = dir.file("base.img");
  std::vector<uint64_t> listed = make_synthetic_image(image);
};

LazyDiskOptions options_for(const std::string& cache, uint64_t size, std::vector<uint64_t> listed) {
  LazyDiskOptions o;
  o.cache_file = cache;
  o.size_bytes = size;
  o.listed = std::move(listed);
  return o;
}

// A lazy disk over the synthetic base, fetching from `source`.
Result<std::unique_ptr<LazyDisk>> open_over(SyntheticDisk& base, BlockSource& source) {
  return LazyDisk::open(
      options_for(base.dir.file("cache"), kSyntheticBlocks * kBlockSize, base.listed), source);
}

int open_rw(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
  return fd;
}

// True when `path` appears in this process's mount table.
bool in_mountinfo(const std::string& path) {
  auto info = read_file("/proc/self/mountinfo");
  return info && info->find(" " + path + " ") != std::string::npos;
}

std::string mount_dir_of(const LazyDisk& disk) {
  return std::filesystem::path(disk.file()).parent_path().string();
}

// True when `losetup -a` lists a loop device backed by `file`.
bool loop_device_uses(const std::string& file) {
  auto r = run_process({"losetup", "-a"});
  return r && r->out.find("(" + file + ")") != std::string::npos;
}

TEST(LazyDisk, UnlistedBlocksReadAsZerosWithoutAFetch) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  EXPECT_EQ(read_block_of((*disk)->file(), 7), std::string(kBlockSize, '\0'));
  EXPECT_EQ(read_block_of((*disk)->file(), 63), std::string(kBlockSize, '\0'));
  EXPECT_TRUE(source.calls().empty());
  EXPECT_GE((*disk)->stats().zero_reads, 2u);
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, ListedBlockIsFetchedOnceAndThenServedFromTheCache) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  EXPECT_EQ(read_block_of((*disk)->file(), 6), synthetic_block(6));
  EXPECT_EQ(read_block_of((*disk)->file(), 6), synthetic_block(6));
  EXPECT_EQ(source.calls(), (std::map<uint64_t, int>{{6, 1}}));
  EXPECT_EQ(read_block_of((*disk)->cache_file(), 6), synthetic_block(6));
  EXPECT_EQ((*disk)->fetched_blocks(), std::vector<uint64_t>{6});
  EXPECT_EQ((*disk)->stats().bytes_fetched, kBlockSize);
  EXPECT_TRUE((*disk)->dirty_blocks().empty());
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, ConcurrentReadsOfOneBlockFetchItOnce) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image, std::chrono::milliseconds(200));
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  const std::string expected = synthetic_block(10);
  std::vector<std::thread> readers;
  std::vector<std::string> got(8);
  for (size_t i = 0; i < got.size(); ++i) {
    readers.emplace_back([&, i] {
      int fd = ::open((*disk)->file().c_str(), O_RDONLY | O_CLOEXEC);
      std::string buf(4096, '\0');
      const off_t at = static_cast<off_t>(10 * kBlockSize + i * 64 * 1024);
      if (fd >= 0 && ::pread(fd, buf.data(), buf.size(), at) == 4096) got[i] = buf;
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& t : readers) t.join();
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], expected.substr(i * 64 * 1024, 4096)) << "reader " << i;
  EXPECT_EQ(source.calls(), (std::map<uint64_t, int>{{10, 1}}));
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, WholeBlockWriteDoesNotFetch) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  int fd = open_rw((*disk)->file());
  const std::string data(kBlockSize, 'W');
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 12 * kBlockSize),
            static_cast<ssize_t>(kBlockSize));
  ::close(fd);
  EXPECT_EQ(read_block_of((*disk)->file(), 12), data);
  EXPECT_TRUE(source.calls().empty());
  EXPECT_EQ((*disk)->dirty_blocks(), (std::vector<DirtyBlock>{{12, std::nullopt}}));
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, PartialWriteFetchesTheBlockFirst) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  int fd = open_rw((*disk)->file());
  const std::string data(4096, 'P');
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 14 * kBlockSize + 8192), 4096);
  // A partial write to an unlisted block needs no fetch either: it was zeros.
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 15 * kBlockSize), 4096);
  ::close(fd);
  std::string expected = synthetic_block(14);
  expected.replace(8192, 4096, data);
  EXPECT_EQ(read_block_of((*disk)->file(), 14), expected);
  EXPECT_EQ(source.calls(), (std::map<uint64_t, int>{{14, 1}}));
  EXPECT_EQ((*disk)->dirty_blocks(),
            (std::vector<DirtyBlock>{{14, sha256(synthetic_block(14))}, {15, std::nullopt}}));
  EXPECT_EQ((*disk)->stats().dirty, 2u);
  EXPECT_TRUE((*disk)->close());
}

// verify --keep-disks reboots a lazily filled root: the second disk reopens the first's
// cache with its present blocks and serves what the first fetched and wrote, fetching only
// what neither held.
TEST(LazyDisk, ReopenedCacheServesItsPresentBlocksWithoutAFetch) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  const uint64_t size = kSyntheticBlocks * kBlockSize;
  std::vector<uint64_t> present;
  const std::string written(4096, 'R');
  {
    RecordingSource source(base.image);
    auto disk = open_over(base, source);
    ASSERT_TRUE(disk) << disk.error().describe();
    EXPECT_EQ(read_block_of((*disk)->file(), 20), synthetic_block(20));
    int fd = open_rw((*disk)->file());
    ASSERT_EQ(::pwrite(fd, written.data(), written.size(), 22 * kBlockSize), 4096);  // listed
    ASSERT_EQ(::pwrite(fd, written.data(), written.size(), 23 * kBlockSize), 4096);  // unlisted
    ::close(fd);
    present = (*disk)->present_blocks();
    EXPECT_TRUE((*disk)->close());
  }
  EXPECT_EQ(present, (std::vector<uint64_t>{20, 22, 23}));

  RecordingSource source(base.image);
  LazyDiskOptions o = options_for(base.dir.file("cache"), size, base.listed);
  o.reuse_cache = true;
  o.present = present;
  auto disk = LazyDisk::open(o, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  EXPECT_EQ(read_block_of((*disk)->file(), 20), synthetic_block(20));
  std::string expected = synthetic_block(22);
  expected.replace(0, 4096, written);
  EXPECT_EQ(read_block_of((*disk)->file(), 22), expected) << "the first disk's write is kept";
  std::string unlisted(kBlockSize, '\0');
  unlisted.replace(0, 4096, written);
  EXPECT_EQ(read_block_of((*disk)->file(), 23), unlisted);
  EXPECT_TRUE(source.calls().empty()) << "present blocks are not fetched again";
  EXPECT_EQ(read_block_of((*disk)->file(), 24), synthetic_block(24));
  EXPECT_EQ(source.calls(), (std::map<uint64_t, int>{{24, 1}}));
  EXPECT_EQ((*disk)->present_blocks(), (std::vector<uint64_t>{20, 22, 23, 24}));
  EXPECT_TRUE((*disk)->close());

  // A cache of another size is not this volume's: refused, nothing mounted.
  ASSERT_EQ(::truncate(o.cache_file.c_str(), static_cast<off_t>(size / 2)), 0);
  auto wrong = LazyDisk::open(o, source);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("instead of"), std::string::npos) << wrong.error().message;
}

TEST(LazyDisk, FailedFetchIsEioAndRemembered) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  source.fail_block(16);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  int fd = ::open((*disk)->file().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 16 * kBlockSize), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 18 * kBlockSize), 4096) << "others still serve";
  ::close(fd);
  EXPECT_TRUE((*disk)->saw_io_error());
  EXPECT_EQ((*disk)->stats().io_errors, 1u);
  EXPECT_NE((*disk)->fetch_error().find("block 16: "), std::string::npos) << (*disk)->fetch_error();
  EXPECT_NE((*disk)->fetch_error().find("InternalError"), std::string::npos);
  EXPECT_EQ((*disk)->fetched_blocks(), std::vector<uint64_t>{18});
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, PrefetchFetchesInParallelAndLaterReadsMakeNoCall) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image, std::chrono::milliseconds(100));
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  std::vector<uint64_t> wanted;
  for (uint64_t b = 0; b < 64; ++b) wanted.push_back(b);  // odd ones are unlisted: skipped
  ASSERT_TRUE((*disk)->prefetch(wanted));
  // Parallel: many fetches in flight at once (how long it took is bench material, not a test).
  EXPECT_GE(source.max_in_flight(), 8);
  EXPECT_EQ(source.calls().size(), 32u);
  EXPECT_EQ((*disk)->stats().fetched_by_prefetch, 32u);
  EXPECT_EQ(read_block_of((*disk)->file(), 20), synthetic_block(20));
  EXPECT_EQ(source.calls().size(), 32u) << "a prefetched block is read without a call";
  EXPECT_EQ(source.calls().at(20), 1);
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, PrefetchReturnsTheFirstErrorWithoutCountingAnIoError) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  source.fail_block(4);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  Status s = (*disk)->prefetch({2, 4, 6});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("block 4: "), std::string::npos) << s.error().message;
  EXPECT_FALSE((*disk)->saw_io_error());
  EXPECT_EQ((*disk)->fetched_blocks(), (std::vector<uint64_t>{2, 6}));
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, WithoutFuseOpenSaysSoAndLeavesNothingMounted) {
  ScratchDir dir;
  RecordingSource source(dir.file("none"));
  LazyDiskOptions o = options_for(dir.file("cache"), 8 * kBlockSize, {});
  o.fuse_device = dir.file("no-fuse");
  auto disk = LazyDisk::open(o, source);
  ASSERT_FALSE(disk);
  EXPECT_NE(disk.error().message.find("FUSE is not available"), std::string::npos)
      << disk.error().message;
  EXPECT_NE(disk.error().hint.find("--fetch full"), std::string::npos);
}

TEST(LazyDisk, TruncatingTheFileIsRefused) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  EXPECT_NE(::truncate((*disk)->file().c_str(), 0), 0);
  struct stat st {};
  ASSERT_EQ(::stat((*disk)->file().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSyntheticBlocks * kBlockSize);
  EXPECT_TRUE((*disk)->close());
}

TEST(LazyDisk, CloseWhileALoopDeviceHoldsTheFileFailsAndKeepsServing) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  auto loop = LoopDevice::attach((*disk)->file());
  ASSERT_TRUE(loop) << loop.error().describe();
  Status closed = (*disk)->close();
  ASSERT_FALSE(closed);
  EXPECT_NE(closed.error().message.find("still in use"), std::string::npos);
  EXPECT_EQ(read_block_of(loop->path(), 8), synthetic_block(8)) << "still serving";
  ASSERT_TRUE(loop->detach());
  EXPECT_TRUE((*disk)->close());
  EXPECT_FALSE(in_mountinfo(mount_dir_of(**disk)));
}

TEST(LazyDisk, DestructorWithTheFileStillInUseLeavesNoMount) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  const std::string file = (*disk)->file();
  const std::string dir = mount_dir_of(**disk);
  auto loop = LoopDevice::attach(file);
  ASSERT_TRUE(loop) << loop.error().describe();
  disk->reset();  // aborts the connection: the loop device now gets errors, not a hang
  EXPECT_FALSE(in_mountinfo(dir));
  int fd = ::open(loop->path().c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 4096), 0);
  EXPECT_LT(::pread(fd, buf, 4096, 0), 0);
  std::free(buf);
  ::close(fd);
  // The flush before the detach fails on the aborted file; the detach itself must happen.
  (void)loop->detach();
  EXPECT_FALSE(loop_device_uses(file));
}

TEST(LazyDisk, LoopDeviceOverTheFileUsesDirectIo) {
  SKIP_WITHOUT_FUSE();
  SyntheticDisk base;
  RecordingSource source(base.image);
  auto disk = open_over(base, source);
  ASSERT_TRUE(disk) << disk.error().describe();
  {
    LoopOptions o;
    o.direct_io = true;
    auto loop = LoopDevice::attach((*disk)->file(), o);
    ASSERT_TRUE(loop) << loop.error().describe();
    EXPECT_TRUE(loop->direct_io());
    // A large read reaches the server in 1 MiB requests.
    int fd = ::open(loop->path().c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    void* buf = nullptr;
    ASSERT_EQ(::posix_memalign(&buf, 4096, 4 * kMiB), 0);
    EXPECT_EQ(::pread(fd, buf, 4 * kMiB, 0), static_cast<ssize_t>(4 * kMiB));
    EXPECT_EQ(std::string(static_cast<char*>(buf), kBlockSize), synthetic_block(0));
    std::free(buf);
    ::close(fd);
    ASSERT_TRUE(loop->detach());
  }
  auto stats = (*disk)->stats();
  std::cout << "largest read request: " << stats.largest_read << " bytes, " << stats.read_requests
            << " requests\n";
  EXPECT_GE(stats.largest_read, kMiB / 2);
  EXPECT_TRUE((*disk)->close());
}

// ---- real disks: the bake's mount + install over a lazy disk ----

// Physical byte ranges of `file` on its filesystem's device (FIEMAP).
std::vector<std::pair<uint64_t, uint64_t>> extents_of(const std::string& file) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << file;
  if (fd < 0) return out;
  constexpr unsigned kMax = 64;
  std::string raw(sizeof(fiemap) + kMax * sizeof(fiemap_extent), '\0');
  auto* map = reinterpret_cast<fiemap*>(raw.data());
  map->fm_length = ~0ULL;
  map->fm_flags = FIEMAP_FLAG_SYNC;
  map->fm_extent_count = kMax;
  EXPECT_EQ(::ioctl(fd, FS_IOC_FIEMAP, map), 0) << std::strerror(errno);
  for (unsigned i = 0; i < map->fm_mapped_extents; ++i)
    out.emplace_back(map->fm_extents[i].fe_physical, map->fm_extents[i].fe_length);
  ::close(fd);
  return out;
}

std::string pattern(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  std::mt19937_64 rng(seed);
  for (size_t at = 0; at + 8 <= size; at += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + at, &v, 8);
  }
  return out;
}

constexpr int kBigFiles = 48;
constexpr size_t kBigFileSize = 4 * kMiB;
const std::string kOsRelease = "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\n";

// A 1 GiB disk of `kind` holding ~200 MiB of files the install never reads, a 1 MiB
// "/usr/bin/bash", "/etc/os-release" and a unit folder: like a base AMI, most written blocks
// are data the bake does not need.
struct BaseDisk {
  ScratchDir dir;
  std::string image = dir.file("base.img");
  std::vector<uint64_t> listed;
  uint64_t size = 1024 * kMiB;
  uint64_t root_start = 0;
  uint64_t cold_block = 0;  // a block of /usr/lib/big/file07's data

  explicit BaseDisk(TestDiskKind kind) {
    if (!make_test_disk(image, kind, size)) return;
    auto root = mount_root(image);
    EXPECT_TRUE(root) << root.error().describe();
    if (!root) return;
    root_start = root->partition().start;
    for (int i = 0; i < kBigFiles; ++i) {
      std::string name = "/usr/lib/big/file" + std::string(i < 10 ? "0" : "") + std::to_string(i);
      EXPECT_TRUE(install_file(root->path(), name, pattern(kBigFileSize, i), 0644));
    }
    EXPECT_TRUE(install_file(root->path(), "/usr/bin/bash", pattern(kMiB, 1000), 0755));
    EXPECT_TRUE(install_file(root->path(), "/etc/os-release", kOsRelease, 0644));
    for (int i = 0; i < 40; ++i)
      EXPECT_TRUE(install_file(root->path(),
                               "/usr/lib/systemd/system/unit" + std::to_string(i) + ".service",
                               "[Unit]\nDescription=unit " + std::to_string(i) + "\n", 0644));
    auto extents = extents_of(root->path() + "/usr/lib/big/file07");
    EXPECT_FALSE(extents.empty());
    if (!extents.empty()) cold_block = (root_start + extents[0].first + kMiB) / kBlockSize;
    EXPECT_TRUE(root->release());
    auto img = BlockImage::open(image);
    EXPECT_TRUE(img);
    auto blocks = img->data_blocks();
    EXPECT_TRUE(blocks);
    if (blocks) listed = *blocks;
  }
};

const std::string kDatavol(3 * kMiB, 'D');

// What an install does: mount the root, read what the checks read, write the payload,
// unmount, detach.
void run_install_workload(const std::string& image, bool* ext4_lazy_options = nullptr) {
  RootMountOptions o;
  o.lazy_image = true;
  auto root = mount_root(image, o);
  ASSERT_TRUE(root) << root.error().describe();
  if (ext4_lazy_options) {
    auto info = read_file("/proc/self/mountinfo");
    *ext4_lazy_options = info && info->find("no_prefetch_block_bitmaps") != std::string::npos;
  }
  EXPECT_TRUE(root->direct_io());
  EXPECT_EQ(testing::slurp(root->path() + "/etc/os-release"), kOsRelease);
  EXPECT_EQ(testing::slurp(root->path() + "/usr/bin/bash"), pattern(kMiB, 1000));
  int units = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(root->path() + "/usr/lib/systemd/system")) {
    (void)e;
    ++units;
  }
  EXPECT_EQ(units, 40);
  ASSERT_TRUE(install_file(root->path(), "/usr/local/bin/datavol", kDatavol, 0755));
  ASSERT_TRUE(install_file(root->path(), "/etc/datavol.toml", "mount = \"/data\"\n", 0644));
  ASSERT_TRUE(install_symlink(root->path(),
                              "/etc/systemd/system/multi-user.target.wants/datavol.service",
                              "/usr/lib/systemd/system/datavol.service"));
  ASSERT_TRUE(root->release());
}

// The lazy bake end to end on `kind`: few blocks fetched, each once; the cache holds the
// base's content for them; base + dirty blocks is the installed image.
void check_lazy_install(TestDiskKind kind) {
  BaseDisk base(kind);
  ASSERT_FALSE(base.listed.empty());
  RecordingSource source(base.image);
  auto disk = LazyDisk::open(options_for(base.dir.file("cache"), base.size, base.listed), source);
  ASSERT_TRUE(disk) << disk.error().describe();
  const std::string mount_dir = mount_dir_of(**disk);
  bool ext4_options = false;
  run_install_workload((*disk)->file(), &ext4_options);
  if (kind == TestDiskKind::kMbrExt4) {
    EXPECT_TRUE(ext4_options) << "lazy ext4 mount options";
  }
  ASSERT_TRUE((*disk)->close());
  EXPECT_FALSE(in_mountinfo(mount_dir));
  EXPECT_FALSE(loop_device_uses((*disk)->file()));

  auto stats = (*disk)->stats();
  std::cout << "listed " << stats.listed << ", fetched " << stats.fetched << " ("
            << stats.bytes_fetched / kMiB << " MiB), dirty " << stats.dirty << ", zero reads "
            << stats.zero_reads << ", largest read " << stats.largest_read << "\n";
  EXPECT_FALSE((*disk)->saw_io_error());
  for (const auto& [index, n] : source.calls()) EXPECT_EQ(n, 1) << "block " << index;
  EXPECT_EQ((*disk)->fetched_blocks(), source.asked());
  EXPECT_EQ(stats.fetched, source.asked().size());
  EXPECT_LT(stats.fetched * 5, stats.listed) << "a small fraction of the listed blocks";
  EXPECT_GE(stats.dirty, 6u) << "3 MiB of datavol is at least 6 blocks";

  auto dirty = (*disk)->dirty_blocks();
  std::set<uint64_t> dirty_set;
  for (const auto& d : dirty) {
    dirty_set.insert(d.index);
    if (d.fetched_digest) {
      EXPECT_EQ(*d.fetched_digest, sha256(read_block_of(base.image, d.index)));
    }
  }
  for (uint64_t b : (*disk)->fetched_blocks()) {
    if (!dirty_set.count(b)) {
      EXPECT_EQ(read_block_of(base.dir.file("cache"), b), read_block_of(base.image, b))
          << "block " << b;
    }
  }

  // What the upload makes: the base with the dirty blocks written over it.
  auto merged = BlockImage::open(base.image);
  ASSERT_TRUE(merged);
  for (const auto& d : dirty)
    ASSERT_TRUE(merged->write_block(d.index, read_block_of(base.dir.file("cache"), d.index)));
  auto root = mount_root(base.image);
  ASSERT_TRUE(root) << root.error().describe();
  EXPECT_EQ(testing::slurp(root->path() + "/usr/local/bin/datavol"), kDatavol);
  EXPECT_EQ(testing::slurp(root->path() + "/usr/lib/big/file03"), pattern(kBigFileSize, 3));
  EXPECT_TRUE(root->release());
}

TEST(LazyDisk, XfsGptInstallFetchesFewBlocksAndDirtyBlocksMakeTheImage) {
  SKIP_WITHOUT_FUSE();
  check_lazy_install(TestDiskKind::kGptXfs);
}

TEST(LazyDisk, Ext4MbrInstallFetchesFewBlocksAndDirtyBlocksMakeTheImage) {
  SKIP_WITHOUT_FUSE();
  check_lazy_install(TestDiskKind::kMbrExt4);
}

TEST(LazyDisk, FailedFetchUnderAMountIsEioAndTeardownLeavesNothing) {
  SKIP_WITHOUT_FUSE();
  BaseDisk base(TestDiskKind::kGptXfs);
  ASSERT_NE(base.cold_block, 0u);
  RecordingSource source(base.image);
  source.fail_block(base.cold_block);
  auto disk = LazyDisk::open(options_for(base.dir.file("cache"), base.size, base.listed), source);
  ASSERT_TRUE(disk) << disk.error().describe();
  const std::string mount_dir = mount_dir_of(**disk);
  {
    RootMountOptions o;
    o.lazy_image = true;
    auto root = mount_root((*disk)->file(), o);
    ASSERT_TRUE(root) << root.error().describe();
    int fd = ::open((root->path() + "/usr/lib/big/file07").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string buf(kBigFileSize, '\0');
    ssize_t total = 0, n = 0;
    while ((n = ::read(fd, buf.data() + total, buf.size() - total)) > 0) total += n;
    EXPECT_EQ(n, -1);
    EXPECT_EQ(errno, EIO);
    ::close(fd);
    EXPECT_TRUE(root->release());
  }
  EXPECT_TRUE((*disk)->saw_io_error());
  EXPECT_NE((*disk)->fetch_error().find("block " + std::to_string(base.cold_block) + ": "),
            std::string::npos)
      << (*disk)->fetch_error();
  EXPECT_TRUE((*disk)->close());
  const std::string file = (*disk)->file();
  disk->reset();
  EXPECT_FALSE(in_mountinfo(mount_dir));
  EXPECT_FALSE(loop_device_uses(file));
}

// Figures for the issue: how much a mount + install reads of the test image, and how long it
// takes when every fetch costs 100 ms, with and without prefetching the previous run's list.
TEST(LazyDisk, MeasureInstallWorkloadWithASlowSource) {
  SKIP_WITHOUT_FUSE();
  for (TestDiskKind kind : {TestDiskKind::kGptXfs, TestDiskKind::kMbrExt4}) {
    const char* name = kind == TestDiskKind::kGptXfs ? "xfs" : "ext4";
    BaseDisk base(kind);
    ASSERT_FALSE(base.listed.empty());
    std::vector<uint64_t> previous;
    for (bool with_prefetch : {false, true}) {
      RecordingSource source(base.image, std::chrono::milliseconds(100));
      auto disk = LazyDisk::open(
          options_for(base.dir.file(with_prefetch ? "cache2" : "cache1"), base.size, base.listed),
          source);
      ASSERT_TRUE(disk) << disk.error().describe();
      auto t0 = Clock::now();
      if (with_prefetch) {
        ASSERT_TRUE((*disk)->prefetch(previous));
      }
      double prefetch_secs = std::chrono::duration<double>(Clock::now() - t0).count();
      run_install_workload((*disk)->file());
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      ASSERT_TRUE((*disk)->close());
      auto stats = (*disk)->stats();
      std::cout << name << (with_prefetch ? " with prefetch: " : " without prefetch: ") << "listed "
                << stats.listed << ", fetched " << stats.fetched << " (by prefetch "
                << stats.fetched_by_prefetch << "), " << secs << " s (prefetch " << prefetch_secs
                << " s), max fetches in flight " << source.max_in_flight() << "\n";
      RecordProperty(std::string(name) + (with_prefetch ? "_prefetch" : "_cold") + "_seconds",
                     std::to_string(secs));
      RecordProperty(std::string(name) + (with_prefetch ? "_prefetch" : "_cold") + "_fetched",
                     std::to_string(stats.fetched));
      if (!with_prefetch) previous = (*disk)->fetched_blocks();
      if (with_prefetch) {
        EXPECT_GT(stats.fetched_by_prefetch, 0u);
      }
    }
  }
}

}  // namespace
}  // namespace amibake::image
