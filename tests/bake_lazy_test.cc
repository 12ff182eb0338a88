// End-to-end: the lazy fetch (issue 12). The real amibake binary bakes against a real
// awsemu process with --fetch lazy and --fetch full; the two AMIs' root snapshots,
// downloaded and mounted read-only, must hold the same tree; the blocks amibake says it
// fetched must be exactly the GetSnapshotBlock calls awsemu counted, and far fewer than
// the base's written blocks. Faults, a block that keeps failing, kill -9 in the middle of
// the lazy install, and a host without /dev/fuse (auto falls back to the full fetch).
//
// Needs root (loop devices, mounts, FUSE); skips with the reason otherwise.
#include "source_paths.h"
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/ec2.h"
#include "aws/http.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "image/block_image.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::BackgroundProcess;
using testing::CliRun;
using testing::ReadOnlyRoot;

class BakeLazy : public testing::BakeFixture {
 protected:
  void SetUp() override {
    BakeFixture::SetUp();
    if (::testing::Test::IsSkipped() || HasFatalFailure()) return;
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
  }
  // A copy of an example recipe under another name (a different recipe hash would need a
  // content change; --force is used instead where the same content is wanted).
  std::string recipe(const std::string& name) const { return testing::example_recipe(name); }
  nlohmann::json manifest_of(const CliRun& r) const {
    std::string id = testing::build_id_in(r.err);
    auto text = read_file(dir_ + "/state/amibake/builds/" + id + ".manifest.json");
    EXPECT_TRUE(text) << id;
    return text ? nlohmann::json::parse(*text) : nlohmann::json();
  }
  std::string root_snapshot_of(const std::string& ami) const {
    auto c = client();
    auto img = aws::ec2::describe_image(*c, ami);
    EXPECT_TRUE(img) << img.error().describe();
    return img ? img->root_snapshot_id() : "";
  }
  // FUSE mounts left in the test's folder (the lazy disk mounts one per install).
  std::string fuse_leftovers() const {
    auto mi = read_file("/proc/self/mountinfo");
    return mi ? testing::lines_with(testing::lines_with(*mi, dir_), "fuse") : "";
  }
  void expect_same_payload_lazy_and_full(const std::string& name) {
    CliRun full = amibake({"build", recipe(name), "--fetch", "full"});
    ASSERT_EQ(full.rc, 0) << full.err;
    std::this_thread::sleep_for(1100ms);  // {date} in the name: another second, another name
    int64_t gets_before = emu_calls("ebs:GetSnapshotBlock");
    CliRun lazy = amibake({"build", recipe(name), "--fetch", "lazy", "--force"});
    ASSERT_EQ(lazy.rc, 0) << lazy.err;
    int64_t gets = emu_calls("ebs:GetSnapshotBlock") - gets_before;
    EXPECT_NE(lazy.err.find("moved: fetched"), std::string::npos) << lazy.err;

    auto m = manifest_of(lazy);
    const auto& install = m["steps"]["install"];
    ASSERT_EQ(install.value("mode", ""), "lazy") << m.dump(2);
    int64_t fetched = install.value("blocks_fetched", int64_t{-1});
    int64_t listed = install.value("blocks_listed", int64_t{-1});
    EXPECT_EQ(fetched, gets) << "every fetch the lazy disk counts is one GetSnapshotBlock";
    EXPECT_GT(fetched, 0);
    EXPECT_LT(fetched, listed) << "a lazy bake reads fewer blocks than the base has written";

    std::string a = full.out.substr(0, full.out.find('\n'));
    std::string b = lazy.out.substr(0, lazy.out.find('\n'));
    ASSERT_NE(a, b);
    std::string da = download(root_snapshot_of(a)), db = download(root_snapshot_of(b));
    std::map<std::string, std::string> ta, tb;
    {
      ReadOnlyRoot ra(da);
      ASSERT_TRUE(ra.mount);
      ta = testing::tree_of(ra.path(""));
    }
    {
      ReadOnlyRoot rb(db);
      ASSERT_TRUE(rb.mount);
      tb = testing::tree_of(rb.path(""));
    }
    EXPECT_GT(ta.size(), 10u);
    EXPECT_EQ(ta, tb) << "the lazy and the full bake hold the same files";
    EXPECT_TRUE(ta.count("/usr/local/sbin/datavol"));
    EXPECT_EQ(host_leftovers(), "");
    EXPECT_EQ(fuse_leftovers(), "");
  }
};

TEST_F(BakeLazy, Al2023LazyBakeHoldsWhatAFullBakeHoldsAndFetchesFewerBlocks) {
  expect_same_payload_lazy_and_full("batch-worker.toml");
}

TEST_F(BakeLazy, Al1Ext4LazyBakeHoldsWhatAFullBakeHoldsAndFetchesFewerBlocks) {
  expect_same_payload_lazy_and_full("al1-sysv.toml");
}

TEST_F(BakeLazy, SecondBakeOfTheBasePrefetchesWhatTheFirstRead) {
  CliRun first = amibake({"build", recipe("batch-worker.toml"), "--fetch", "lazy"});
  ASSERT_EQ(first.rc, 0) << first.err;
  std::this_thread::sleep_for(1100ms);  // {date} in the name: another second, another name
  CliRun second = amibake({"build", recipe("batch-worker.toml"), "--fetch", "lazy", "--force"});
  ASSERT_EQ(second.rc, 0) << second.err;
  nlohmann::json ma = manifest_of(first), mb = manifest_of(second);
  const auto& a = ma["steps"]["install"];
  const auto& b = mb["steps"]["install"];
  // The first prefetches only the partition table's blocks; the second what the first read.
  EXPECT_GT(b.value("blocks_prefetched", 0), a.value("blocks_prefetched", 0)) << b.dump(2);
  EXPECT_GE(b.value("blocks_prefetched", 0), a.value("blocks_fetched", 0) - 1) << b.dump(2);
}

TEST_F(BakeLazy, FaultsOnGetSnapshotBlockStillGiveTheAmi) {
  start_emu({"--faults", "throttle=0.15,5xx=0.1,reset=0.05,op=GetSnapshotBlock", "--seed", "7"});
  CliRun r = amibake({"build", recipe("batch-worker.toml"), "--fetch", "lazy"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ami-", 0), 0u);
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_EQ(fuse_leftovers(), "");
}

TEST_F(BakeLazy, ABlockThatKeepsFailingStopsTheBuildAndUploadsNothing) {
  start_emu({"--deny", "ebs:GetSnapshotBlock"});
  CliRun r = amibake({"build", recipe("batch-worker.toml"), "--fetch", "lazy"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("nothing is uploaded"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("block"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("[upload]"), std::string::npos) << "no upload after an I/O error:\n"
                                                       << r.err;
  std::string id = testing::build_id_in(r.err);
  EXPECT_EQ(::testing::PrintToString(tagged_with(id)), "{}");
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_EQ(fuse_leftovers(), "");
}

TEST_F(BakeLazy, KillDuringTheLazyInstallThenResumeAndCleanupLeaveNothingOnTheHost) {
  // Each GetSnapshotBlock takes a second: the install is under way for a while.
  start_emu({"--faults", "slow=1.0,slow_seconds=1,op=GetSnapshotBlock"});
  BackgroundProcess build;
  std::string log = dir_ + "/build.log";
  std::vector<std::string> argv = {
      AMIBAKE_BINARY,  "build", recipe("batch-worker.toml"), "--fetch", "lazy",
      "--concurrency", "2"};
  std::string err;
  ASSERT_TRUE(build.start(argv, env(), log, &err)) << err;
  ASSERT_FALSE(build.wait_for_line("amibake: [install] install datavol", 120s).empty())
      << read_file(log).value_or("");
  std::this_thread::sleep_for(1500ms);  // a fetch or two into the install
  ::kill(build.pid(), SIGKILL);
  build.stop();
  std::string id = testing::build_id_in(read_file(log).value_or(""));
  ASSERT_FALSE(id.empty());

  start_emu({});
  CliRun resumed = amibake({"build", "--resume", id});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_EQ(images_tagged("amibake:build-id", id).size(), 1u);
  EXPECT_EQ(snapshots_tagged("amibake:build-id", id).size(), 1u);
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_EQ(fuse_leftovers(), "");

  // The same kill, then cleanup instead of resume.
  start_emu({"--faults", "slow=1.0,slow_seconds=1,op=GetSnapshotBlock"});
  BackgroundProcess second;
  argv.push_back("--force");  // the same recipe again: not the first build's AMI
  ASSERT_TRUE(second.start(argv, env(), log + ".2", &err)) << err;
  ASSERT_FALSE(second.wait_for_line("amibake: [install] install datavol", 120s).empty());
  std::this_thread::sleep_for(1500ms);
  ::kill(second.pid(), SIGKILL);
  second.stop();
  std::string id2 = testing::build_id_in(read_file(log + ".2").value_or(""));
  ASSERT_FALSE(id2.empty());
  start_emu({});
  CliRun c = amibake({"cleanup", id2});
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(::testing::PrintToString(tagged_with(id2)), "{}");
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_EQ(fuse_leftovers(), "");
}

TEST_F(BakeLazy, AutoWithoutDevFuseFallsBackToTheFullFetchAndSaysSo) {
  // A mount namespace where /dev/fuse is an empty regular file: it cannot serve FUSE.
  std::string fake = dir_ + "/not-fuse";
  ASSERT_TRUE(write_file_atomic(fake, "", 0600));
  std::string cmd = "mount --bind '" + fake + "' /dev/fuse && exec '" AMIBAKE_BINARY "' build '" +
                    recipe("batch-worker.toml") + "'";
  std::vector<std::string> argv = {"unshare", "--mount", "--propagation", "private", "sh",
                                   "-c",      cmd};
  std::string out, err;
  int rc = testing::run_capture(argv, env(), &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(err.find("lazy fetch unavailable"), std::string::npos) << err;
  EXPECT_EQ(out.rfind("ami-", 0), 0u) << out;
  CliRun full = amibake({"build", recipe("batch-worker.toml")});  // same recipe: reused
  EXPECT_EQ(full.out, out);
}

// The benchmark base (tests/fixtures/make-bench-base): the AL2023 image with 2.1 GiB of
// pseudo-random files in its 30 GiB root, made once per machine and script version under
// /var/tmp (about 45 s), served by awsemu instead of the catalog.
class BakeLazyBenchBase : public BakeLazy {
 protected:
  static void SetUpTestSuite() {
    BakeFixture::SetUpTestSuite();
    if (::geteuid() != 0 || !fixtures_ok_) return;
    std::string out, err;
    int rc = testing::run_capture({std::string(AMIBAKE_SOURCE_DIR) + "/tests/fixtures/make-bench-base",
                                   "--cache", "/var/tmp/amibake-fixture-cache", testing::fixtures_dir()},
                                  {}, &out, &err);
    if (rc != 0) {
      bench_error_ = "make-bench-base failed (exit " + std::to_string(rc) + "): " + err;
      return;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    bench_dir_ = out.substr(out.find_last_of('\n') + 1);
  }
  void SetUp() override {
    if (::geteuid() == 0 && fixtures_ok_) {
      ASSERT_EQ(bench_error_, "");
    }
    BakeLazy::SetUp();
  }
  std::string catalog_dir() const override { return bench_dir_; }
  static inline std::string bench_dir_, bench_error_;
};

// The goal on a base the size of a real ECS root: a lazy bake fetches at most 2%
// of the blocks the base has written (measured: well under 1%).
TEST_F(BakeLazyBenchBase, LazyBakeFetchesAtMostTwoPercentOfTheWrittenBlocks) {
  auto cat = nlohmann::json::parse(read_file(bench_dir_ + "/catalog.json").value_or(""), nullptr, false);
  ASSERT_TRUE(cat.is_object()) << bench_dir_;
  const auto& base = cat["images"][0];
  // The base's written blocks, counted in its image file by this test (holes skipped).
  auto img = image::BlockImage::open(bench_dir_ + "/" + base["file"].get<std::string>());
  ASSERT_TRUE(img) << img.error().describe();
  auto data = img->data_blocks();
  ASSERT_TRUE(data) << data.error().describe();
  const int64_t written = static_cast<int64_t>(data->size());
  EXPECT_GE(written * static_cast<int64_t>(image::kBlockSize), int64_t{2} << 30) << "at least 2 GiB written";

  const int64_t gets_before = emu_calls("ebs:GetSnapshotBlock");
  CliRun r = amibake({"build", recipe("batch-worker.toml"), "--fetch", "lazy"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const int64_t gets = emu_calls("ebs:GetSnapshotBlock") - gets_before;
  auto m = manifest_of(r);
  const auto& install = m["steps"]["install"];
  ASSERT_EQ(install.value("mode", ""), "lazy") << m.dump(2);
  const int64_t fetched = install.value("blocks_fetched", int64_t{-1});
  const int64_t listed = install.value("blocks_listed", int64_t{-1});
  EXPECT_EQ(listed, written) << "ListSnapshotBlocks lists the blocks the base image has written";
  EXPECT_EQ(fetched, gets) << "every fetch the manifest counts is one GetSnapshotBlock awsemu saw";
  EXPECT_GT(fetched, 0);
  EXPECT_LE(fetched * 50, written) << fetched << " of " << written << " written blocks fetched";
  std::cout << "bench base: " << fetched << " of " << written << " written blocks fetched ("
            << 100.0 * static_cast<double>(fetched) / static_cast<double>(written) << "%)\n";
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_EQ(fuse_leftovers(), "");
}

}  // namespace
}  // namespace amibake
