// Incremental snapshots (layers.cc), --latency and the call counts, through awsemu's
// HTTP interface: what a client sees must not change, what awsemu stores must shrink.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "aws/sigv4.h"
#include "emulator/loopdev.h"
#include "emulator/test_support.h"

namespace amibake::emu {
namespace {

using testing::block_of;
using testing::Response;
using testing::TestEmu;

constexpr int64_t kBlock = int64_t{512} * 1024;

Options instant() {
  Options o;
  o.speed = 0;
  return o;
}

// Bytes allocated by awsemu's snapshot and volume files.
int64_t disk_use(TestEmu& emu) {
  int64_t total = 0;
  for (const char* sub : {"/snapshots", "/volumes"}) {
    for (const auto& e : std::filesystem::directory_iterator(emu.options().data_dir + sub)) {
      struct stat st;
      if (::stat(e.path().c_str(), &st) == 0) total += st.st_blocks * 512;
    }
  }
  return total;
}

std::map<int64_t, std::string> tokens(TestEmu& emu, const std::string& snap) {
  std::map<int64_t, std::string> out;
  auto j = emu.ebs("GET", "/snapshots/" + snap + "/blocks").json();
  if (!j.is_object()) return out;
  for (const auto& b : j["Blocks"]) out[b["BlockIndex"]] = b["BlockToken"];
  return out;
}

std::vector<int64_t> listed(TestEmu& emu, const std::string& snap) {
  std::vector<int64_t> out;
  for (const auto& [index, token] : tokens(emu, snap)) out.push_back(index);
  return out;
}

Response get(TestEmu& emu, const std::string& snap, int64_t index) {
  return emu.ebs("GET", "/snapshots/" + snap + "/blocks/" + std::to_string(index) +
                            "?blockToken=" + aws::sigv4::uri_encode(tokens(emu, snap)[index]));
}

std::string completed(TestEmu& emu, const std::map<int64_t, char>& fills,
                      const std::string& parent = "") {
  std::string snap = emu.start_snapshot(1, parent);
  for (const auto& [i, fill] : fills) EXPECT_EQ(emu.put_block(snap, i, fill).status, 201);
  EXPECT_EQ(emu.complete(snap, static_cast<int64_t>(fills.size())).status, 202);
  return snap;
}

std::map<int64_t, char> eight_blocks() {
  std::map<int64_t, char> fills;
  for (int64_t i = 0; i < 8; ++i) fills[i * 3] = static_cast<char>('a' + i);
  return fills;
}

std::string copy_of(TestEmu& emu, const std::string& snap) {
  return emu.ec2("CopySnapshot", {{"SourceSnapshotId", snap}, {"SourceRegion", "us-east-1"}})
      .xml("snapshotId");
}

std::string volume_from(TestEmu& emu, const std::string& snap) {
  std::string vol =
      emu.ec2("CreateVolume", {{"SnapshotId", snap}, {"AvailabilityZone", "us-east-1a"}})
          .xml("volumeId");
  emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}});  // creating -> available at speed 0
  return vol;
}

// Attaches `vol` (a loop device) and writes `data` at block `index` through it.
void write_through_loop(TestEmu& emu, const std::string& vol, int64_t index,
                        const std::string& data) {
  ASSERT_EQ(emu.ec2("AttachVolume",
                    {{"VolumeId", vol}, {"InstanceId", kHostInstanceId}, {"Device", "/dev/sdf"}})
                .status,
            200);
  std::string link = emu.emulator().context().device_dir() + "/" + ebs_link_name(vol);
  int fd = ::open(link.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << link;
  EXPECT_EQ(::pwrite(fd, data.data(), data.size(), index * kBlock),
            static_cast<ssize_t>(data.size()));
  EXPECT_EQ(::fsync(fd), 0);
  ::close(fd);
}

TEST(Layers, ChildSnapshotStoresOnlyTheBlocksPutToIt) {
  TestEmu emu(instant());
  std::string parent = completed(emu, eight_blocks());
  int64_t before = disk_use(emu);
  completed(emu, {{1, 'z'}}, parent);
  int64_t grown = disk_use(emu) - before;
  EXPECT_GE(grown, kBlock);
  EXPECT_LE(grown, kBlock + 64 * 1024);  // one block, plus filesystem metadata at most
}

TEST(Layers, CopySnapshotStoresNothing) {
  TestEmu emu(instant());
  std::string snap = completed(emu, eight_blocks());
  int64_t before = disk_use(emu);
  std::string copy = copy_of(emu, snap);
  ASSERT_FALSE(copy.empty());
  EXPECT_EQ(disk_use(emu), before);
  EXPECT_EQ(listed(emu, copy), listed(emu, snap));
}

TEST(Layers, ChildReadsAsItsParentExceptWhereWritten) {
  TestEmu emu(instant());
  std::string parent = completed(emu, eight_blocks());
  std::string child = completed(emu, {{3, 'z'}, {4, 'y'}}, parent);
  EXPECT_EQ(listed(emu, child), (std::vector<int64_t>{0, 3, 4, 6, 9, 12, 15, 18, 21}));
  for (int64_t i : {0, 6, 21}) {
    Response p = get(emu, parent, i), c = get(emu, child, i);
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(c.body, p.body) << "block " << i;
    EXPECT_EQ(c.headers["x-amz-checksum"], p.headers["x-amz-checksum"]) << "block " << i;
  }
  EXPECT_EQ(get(emu, child, 3).body, block_of('z'));
  EXPECT_EQ(get(emu, child, 4).body, block_of('y'));
  EXPECT_EQ(get(emu, parent, 3).body, block_of('b'));
}

TEST(Layers, ZeroBlockInAChildHidesTheParentsBlockFromItsDescendants) {
  TestEmu emu(instant());
  std::string parent = completed(emu, {{0, 'p'}, {1, 'q'}});
  std::string child = completed(emu, {{1, 0}}, parent);
  std::string grandchild = completed(emu, {{2, 'g'}}, copy_of(emu, child));
  EXPECT_EQ(listed(emu, grandchild), (std::vector<int64_t>{0, 2}));
  auto changed =
      emu.ebs("GET", "/snapshots/" + grandchild + "/changedblocks?firstSnapshotId=" + parent)
          .json();
  ASSERT_EQ(changed["ChangedBlocks"].size(), 2u) << changed.dump();
  EXPECT_EQ(changed["ChangedBlocks"][0]["BlockIndex"], 1);
  EXPECT_FALSE(changed["ChangedBlocks"][0].contains("SecondBlockToken"));
  EXPECT_EQ(changed["ChangedBlocks"][1]["BlockIndex"], 2);
}

TEST(Layers, DeletingAParentKeepsTheChildsContent) {
  TestEmu emu(instant());
  std::string parent = completed(emu, eight_blocks());
  std::string child = completed(emu, {{1, 'z'}}, parent);
  Response d = emu.ec2("DeleteSnapshot", {{"SnapshotId", parent}});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(listed(emu, child), (std::vector<int64_t>{0, 1, 3, 6, 9, 12, 15, 18, 21}));
  EXPECT_EQ(get(emu, child, 21).body, block_of('h'));
  EXPECT_EQ(get(emu, child, 1).body, block_of('z'));
}

TEST(Layers, DeletingTheLastUserFreesTheFiles) {
  TestEmu emu(instant());
  std::string parent = completed(emu, eight_blocks());
  std::string child = completed(emu, {{1, 'z'}}, parent);
  std::string copy = copy_of(emu, child);
  for (const auto& id : {parent, child, copy}) {
    ASSERT_EQ(emu.ec2("DeleteSnapshot", {{"SnapshotId", id}}).status, 200) << id;
  }
  EXPECT_EQ(disk_use(emu), 0);
}

TEST(Layers, RestartKeepsLayeredContent) {
  TestEmu emu(instant());
  std::string parent = completed(emu, eight_blocks());
  std::string child = completed(emu, {{1, 'z'}, {3, 0}}, parent);
  std::string copy = copy_of(emu, child);
  ASSERT_EQ(emu.ec2("DeleteSnapshot", {{"SnapshotId", parent}}).status, 200);
  auto before = listed(emu, copy);
  emu.restart();
  EXPECT_EQ(listed(emu, copy), before);
  EXPECT_EQ(get(emu, copy, 1).body, block_of('z'));
  EXPECT_EQ(get(emu, copy, 6).body, block_of('c'));
  EXPECT_EQ(listed(emu, child), before);
}

TEST(Layers, CatalogSnapshotIsReadInPlaceByItsCopies) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  std::string base = emu.ec2("DescribeImages", {{"Owner.1", "amazon"}}).xml("imageId");
  std::string ami =
      emu.ec2("CopyImage",
              {{"SourceImageId", base}, {"SourceRegion", "us-east-1"}, {"Name", "in-place"}})
          .xml("imageId");
  std::string snap = emu.ec2("DescribeImages", {{"ImageId.1", ami}}).xml("snapshotId");
  EXPECT_EQ(disk_use(emu), 0);
  EXPECT_EQ(get(emu, snap, 7).body, block_of('h'));  // the tiny catalog's block 7
}

TEST(Layers, VolumeFromASnapshotHasNoFileUntilAttached) {
  TestEmu emu(instant());
  std::string snap = completed(emu, eight_blocks());
  int64_t before = disk_use(emu);
  std::string vol = volume_from(emu, snap);
  ASSERT_FALSE(vol.empty());
  std::string again = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(disk_use(emu), before);
  EXPECT_EQ(listed(emu, again), listed(emu, snap));
}

TEST(Layers, SnapshotOfAnAttachedVolumeStoresOnlyChangedBlocks) {
  if (!can_attach_loop()) GTEST_SKIP() << "needs root and /dev/loop-control";
  TestEmu emu(instant());
  std::string snap = completed(emu, eight_blocks());
  std::string vol = volume_from(emu, snap);
  write_through_loop(emu, vol, 100, block_of('n'));
  int64_t before = disk_use(emu);
  std::string next = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  ASSERT_FALSE(next.empty());
  EXPECT_LE(disk_use(emu) - before, kBlock + 64 * 1024);
  EXPECT_EQ(get(emu, next, 100).body, block_of('n'));
  EXPECT_EQ(get(emu, next, 9).body, block_of('d'));
  auto changed =
      emu.ebs("GET", "/snapshots/" + next + "/changedblocks?firstSnapshotId=" + snap).json();
  ASSERT_EQ(changed["ChangedBlocks"].size(), 1u) << changed.dump();
  EXPECT_EQ(changed["ChangedBlocks"][0]["BlockIndex"], 100);
  ASSERT_EQ(emu.ec2("DetachVolume", {{"VolumeId", vol}}).status, 200);
}

TEST(Layers, SnapshotOfAnAttachedVolumeSeesAZeroedBlock) {
  if (!can_attach_loop()) GTEST_SKIP() << "needs root and /dev/loop-control";
  TestEmu emu(instant());
  std::string snap = completed(emu, eight_blocks());
  std::string vol = volume_from(emu, snap);
  write_through_loop(emu, vol, 6, block_of(0));
  std::string next = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  EXPECT_EQ(listed(emu, next), (std::vector<int64_t>{0, 3, 9, 12, 15, 18, 21}));
  ASSERT_EQ(emu.ec2("DetachVolume", {{"VolumeId", vol}}).status, 200);
}

TEST(Layers, SecondSnapshotOfAVolumeStoresOnlyWhatChangedSinceTheFirst) {
  if (!can_attach_loop()) GTEST_SKIP() << "needs root and /dev/loop-control";
  TestEmu emu(instant());
  std::string snap = completed(emu, eight_blocks());
  std::string vol = volume_from(emu, snap);
  write_through_loop(emu, vol, 100, block_of('n'));
  std::string first = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  int64_t before = disk_use(emu);
  std::string second = emu.ec2("CreateSnapshot", {{"VolumeId", vol}}).xml("snapshotId");
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(disk_use(emu), before);  // nothing written since the first
  EXPECT_EQ(listed(emu, second), listed(emu, first));
  ASSERT_EQ(emu.ec2("DetachVolume", {{"VolumeId", vol}}).status, 200);
}

TEST(LatencySpec, BareNamesAreEc2Operations) {
  auto spec = parse_latency_spec("CreateVolume=5,ebs:GetSnapshotBlock=60.5").value();
  EXPECT_EQ(spec, (std::map<std::string, double>{{"ec2:CreateVolume", 5},
                                                 {"ebs:GetSnapshotBlock", 60.5}}));
}

TEST(LatencySpec, RejectsItemsWithoutMilliseconds) {
  EXPECT_FALSE(parse_latency_spec("CreateVolume").has_value());
  EXPECT_FALSE(parse_latency_spec("CreateVolume=-1").has_value());
  EXPECT_FALSE(parse_latency_spec("ebs:=3").has_value());
}

double seconds_of(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(Latency, DelaysEachAnswerOfThatOperationOnly) {
  Options o = instant();
  // The delay is the behaviour under test; margins are wide so a loaded machine cannot
  // make an undelayed answer look delayed.
  o.latency_ms = {{"ec2:DescribeVolumes", 3000}};
  TestEmu emu(o);
  EXPECT_GE(seconds_of([&] { EXPECT_EQ(emu.ec2("DescribeVolumes").status, 200); }), 3.0);
  EXPECT_LT(seconds_of([&] { EXPECT_EQ(emu.ec2("DescribeSnapshots").status, 200); }), 2.0);
}

TEST(Latency, DelaysWithoutHoldingTheStateLock) {
  Options o = instant();
  o.latency_ms = {{"ec2:DescribeVolumes", 4000}};
  TestEmu emu(o);
  std::thread slow([&] { emu.ec2("DescribeVolumes"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Another client, another connection: answered while the slow one waits.
  TestEmu* e = &emu;
  double t = seconds_of([&] { EXPECT_EQ(e->ec2("DescribeSnapshots").status, 200); });
  slow.join();
  EXPECT_LT(t, 2.5) << "answered while the slow call sleeps its 4 s";
}

TEST(Stats, CountsCallsPerOperation) {
  TestEmu emu(instant());
  emu.ec2("DescribeVolumes");
  emu.ec2("DescribeVolumes");
  completed(emu, {{0, 'a'}});
  Response r = emu.raw("GET", "/_awsemu/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["ec2:DescribeVolumes"], 2);
  EXPECT_EQ(j["ebs:StartSnapshot"], 1);
  EXPECT_EQ(j["ebs:PutSnapshotBlock"], 1);
  EXPECT_EQ(j["ebs:CompleteSnapshot"], 1);
  EXPECT_EQ(emu.emulator().call_counts()["ec2:DescribeVolumes"], 2u);
}

}  // namespace
}  // namespace amibake::emu
