// awsemu_copy_bench: what awsemu's snapshot and volume copies cost on a big base.
//
// Scenario (issue 12): awsemu in-process at --speed 0 with the bench catalog
// (tests/fixtures/make-bench-base: a 30 GiB AL2023 disk with >= 2 GiB written), then
// the calls a bake makes that copy content, each timed as one request and followed by
// the disk space awsemu's --data folder uses (allocated blocks, so sparse files count
// what they really hold):
//   CopyImage of the base -> StartSnapshot with the copy's root as parent + one
//   PutSnapshotBlock + CompleteSnapshot -> CreateVolume from that child ->
//   AttachVolume (root only: the loop device) + 8 blocks written through it ->
//   CreateSnapshot of the volume.
// Printed, not asserted. Not a ctest: run it by hand and quote the figures.
//   awsemu_copy_bench --catalog DIR
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "emulator/test_support.h"

namespace {

using namespace amibake::emu;
using Clock = std::chrono::steady_clock;

// Bytes allocated under `dir` (sparse holes not counted), device links skipped.
int64_t disk_use(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += st.st_blocks * 512;
  }
  return total;
}

double timed(const std::function<void()>& fn) {
  auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void report(const char* step, double seconds, const std::string& data_dir) {
  std::printf("%-46s %8.3f s   awsemu data %8.1f MiB\n", step, seconds,
              static_cast<double>(disk_use(data_dir)) / (1 << 20));
}

}  // namespace

int main(int argc, char** argv) {
  std::string catalog;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--catalog") catalog = argv[i + 1];
  }
  if (catalog.empty()) {
    std::fprintf(stderr, "usage: awsemu_copy_bench --catalog DIR (made by make-bench-base)\n");
    return 2;
  }
  Options o;
  o.speed = 0;
  o.catalog_dir = catalog;
  testing::TestEmu emu(o);
  const std::string data = emu.options().data_dir;
  report("start (catalog loaded)", 0, data);

  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  std::string copy;
  report("CopyImage", timed([&] {
           copy = emu.ec2("CopyImage", {{"SourceImageId", base},
                                        {"SourceRegion", "us-east-1"},
                                        {"Name", "bench-copy"}})
                      .xml("imageId");
         }),
         data);
  std::string root = emu.ec2("DescribeImages", {{"ImageId.1", copy}}).xml("snapshotId");
  if (root.empty()) {
    std::fprintf(stderr, "awsemu_copy_bench: CopyImage gave no root snapshot\n");
    return 1;
  }
  std::string child;
  report("StartSnapshot(parent) + 1 put + CompleteSnapshot", timed([&] {
           child = emu.start_snapshot(30, root);
           emu.put_block(child, 5, 'b');
           emu.complete(child, 1);
         }),
         data);
  std::string vol;
  report("CreateVolume from the child", timed([&] {
           vol = emu.ec2("CreateVolume", {{"SnapshotId", child},
                                          {"AvailabilityZone", "us-east-1a"},
                                          {"VolumeType", "gp3"}})
                     .xml("volumeId");
         }),
         data);
  emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}});  // creating -> available
  if (::geteuid() == 0) {
    report("AttachVolume (loop device)", timed([&] {
             emu.ec2("AttachVolume", {{"VolumeId", vol},
                                      {"InstanceId", "i-0abc0123456789def"},
                                      {"Device", "/dev/xvdf"}});
           }),
           data);
    std::string link = data + "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol" +
                       vol.substr(4);
    int fd = ::open(link.c_str(), O_WRONLY | O_CLOEXEC);
    std::string block = testing::block_of('w');
    for (int i = 0; fd >= 0 && i < 8; ++i) {
      if (::pwrite(fd, block.data(), block.size(), (1000 + i * 97) * int64_t{512 * 1024}) < 0) break;
    }
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  std::string snap;
  report("CreateSnapshot of the volume", timed([&] {
           snap = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
         }),
         data);
  std::string copied;
  report("CopySnapshot of that snapshot", timed([&] {
           copied = emu.ec2("CopySnapshot", {{"SourceSnapshotId", snap},
                                             {"SourceRegion", "us-east-1"}})
                        .xml("snapshotId");
         }),
         data);
  if (::geteuid() == 0) emu.ec2("DetachVolume", {{"VolumeId", vol}});
  if (snap.empty() || copied.empty()) {
    std::fprintf(stderr, "awsemu_copy_bench: a call failed\n");
    return 1;
  }
  return 0;
}
