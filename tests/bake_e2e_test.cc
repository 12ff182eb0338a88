// End-to-end: the real amibake binary baking against a real awsemu process over
// HTTP, with the catalog images built by tests/fixtures/make-base-images. Checks
// are made independently of amibake's own reporting: through the EC2/EBS APIs and
// by mounting the new root snapshot's content read-only.
//
// Needs root (loop devices, mounts); skips with the reason otherwise.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "aws/client.h"
#include "aws/ebs.h"
#include "aws/ec2.h"
#include "base/files.h"
#include "datavol/config.h"
#include "image/block_image.h"
#include "image/loop.h"
#include "image/mount.h"
#include "image/partition.h"
#include "tests/support/background.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using testing::BackgroundProcess;

using testing::CliRun;

class BakeE2E : public testing::BakeFixture {
 protected:
  std::string recipe(const std::string& name) const { return testing::example_recipe(name); }
  std::string build_id_in(const std::string& text) const { return testing::build_id_in(text); }
};

using testing::ReadOnlyRoot;

bool is_link_to(const std::string& path, const std::string& target) {
  std::error_code ec;
  return fs::is_symlink(path, ec) && fs::read_symlink(path, ec).string() == target;
}

TEST_F(BakeE2E, DirectBakeOfAl2023RegistersTheMappingsAndCarriesThePayload) {
  CliRun r = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string ami = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(r.out, ami + "\n") << "stdout must hold only the AMI id";
  ASSERT_EQ(ami.rfind("ami-", 0), 0u) << r.out;

  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami);
  ASSERT_TRUE(img) << img.error().describe();
  EXPECT_EQ(img->state, "available");
  EXPECT_EQ(img->imds_support, "v2.0");
  EXPECT_EQ(img->architecture, "x86_64");
  EXPECT_EQ(img->boot_mode, "uefi-preferred");
  EXPECT_TRUE(img->ena_support);
  ASSERT_EQ(img->root_device_name, "/dev/xvda");
  bool saw_data = false;
  for (const auto& m : img->block_device_mappings) {
    if (m.device_name != "/dev/xvdb") continue;
    saw_data = true;
    ASSERT_TRUE(m.ebs);
    EXPECT_EQ(m.ebs->volume_size.value_or(0), 1024);
    EXPECT_EQ(m.ebs->volume_type, "gp3");
    EXPECT_EQ(m.ebs->encrypted, std::optional<bool>(true));
    EXPECT_TRUE(m.ebs->snapshot_id.empty());
  }
  EXPECT_TRUE(saw_data);

  // The new root holds the payload, as systemctl enable would leave it.
  std::string snap = img->root_snapshot_id();
  std::string disk = download(snap);
  {
    ReadOnlyRoot root(disk);
    struct stat st {};
    ASSERT_EQ(::stat(root.path("/usr/local/sbin/datavol").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
    EXPECT_GT(st.st_size, 100000);
    auto cfg = read_file(root.path("/etc/datavol/datavol.toml"));
    ASSERT_TRUE(cfg);
    auto parsed = datavol::parse_config(*cfg, "image datavol.toml");
    ASSERT_TRUE(parsed) << parsed.error().describe() << "\n" << *cfg;
    ASSERT_EQ(parsed->volumes.size(), 1u);
    EXPECT_EQ(parsed->volumes[0].device, "/dev/xvdb");
    EXPECT_EQ(parsed->volumes[0].mount, "/data");
    EXPECT_EQ(parsed->volumes[0].filesystem, "xfs");
    auto unit = read_file(root.path("/etc/systemd/system/datavol.service"));
    ASSERT_TRUE(unit);
    EXPECT_NE(unit->find("Before="), std::string::npos);
    EXPECT_TRUE(is_link_to(root.path("/etc/systemd/system/multi-user.target.wants/datavol.service"),
                           "/etc/systemd/system/datavol.service"));
    for (const char* u : {"docker", "containerd", "ecs"}) {
      auto d = read_file(root.path(std::string("/etc/systemd/system/") + u + ".service.d/50-datavol.conf"));
      ASSERT_TRUE(d) << u;
      EXPECT_NE(d->find("Requires=datavol.service"), std::string::npos) << *d;
    }
    // The base's own content is intact.
    EXPECT_TRUE(fs::exists(root.path("/usr/lib/systemd/system/ecs.service")));
  }

  // Only changed blocks were uploaded: what the service says differs between the
  // owned base root and the new root equals what amibake reports it uploaded.
  std::string build = build_id_in(r.err);
  ASSERT_FALSE(build.empty()) << r.err;
  auto manifest = read_file(dir_ + "/state/amibake/builds/" + build + ".manifest.json");
  ASSERT_TRUE(manifest);
  auto m = nlohmann::json::parse(*manifest);
  int64_t uploaded = m["steps"]["upload"]["changed_blocks"];
  std::string parent = m["steps"]["own-copy"]["root_snapshot"];
  aws::ebs::ListChangedBlocksRequest lc;
  lc.first_snapshot_id = parent;
  lc.second_snapshot_id = snap;
  auto changed = aws::ebs::list_changed_blocks(*c, lc);
  ASSERT_TRUE(changed) << changed.error().describe();
  EXPECT_EQ(static_cast<int64_t>(changed->blocks.size()), uploaded);
  EXPECT_GT(uploaded, 0);
  int64_t listed = m["steps"]["fetch"]["blocks_listed"];
  EXPECT_LT(uploaded, listed) << "the payload is small: most blocks must not be re-uploaded";

  // A second build of the same base and recipe is a no-op that answers the same AMI.
  CliRun again = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, ami + "\n");
  EXPECT_NE(again.err.find("reusing"), std::string::npos) << again.err;
}

TEST_F(BakeE2E, SysvBaseGetsTheInitScriptAndRcLinks) {
  CliRun r = amibake({"build", recipe("al1-sysv.toml")});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string ami = r.out.substr(0, r.out.find('\n'));
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami);
  ASSERT_TRUE(img);
  std::string disk = download(img->root_snapshot_id());
  ReadOnlyRoot root(disk);
  auto script = read_file(root.path("/etc/rc.d/init.d/datavol"));
  ASSERT_TRUE(script);
  EXPECT_NE(script->find("# chkconfig: 2345"), std::string::npos);
  // docker starts at 95 on the AL1 image: datavol starts well before it.
  bool found_start = false;
  for (const auto& e : fs::directory_iterator(root.path("/etc/rc.d/rc3.d"))) {
    std::string n = e.path().filename();
    if (n.size() == 10 && n[0] == 'S' && n.ends_with("datavol")) {
      found_start = true;
      EXPECT_LT(std::stoi(n.substr(1, 2)), 95);
      EXPECT_TRUE(is_link_to(e.path(), "../init.d/datavol"));
    }
  }
  EXPECT_TRUE(found_start);
  EXPECT_TRUE(fs::exists(root.path("/etc/rc.d/rc0.d/K85datavol")) ||
              !fs::is_empty(root.path("/etc/rc.d/rc0.d")));
}

TEST_F(BakeE2E, MissingPermissionNamesTheActionAndCleanupLeavesNothingTagged) {
  start_emu({"--deny", "RegisterImage"});
  CliRun r = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("ec2:RegisterImage"), std::string::npos) << r.err;
  std::string build = build_id_in(r.err);
  ASSERT_FALSE(build.empty()) << r.err;
  EXPECT_NE(r.err.find("amibake cleanup " + build), std::string::npos) << r.err;
  EXPECT_FALSE(tagged_with(build).empty()) << "the uploaded snapshot is left for --resume";
  CliRun c = amibake({"cleanup", build});
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_TRUE(tagged_with(build).empty());
}

TEST_F(BakeE2E, ListAndGcFindAFailedBuildsLeftoversWithoutTheJournal) {
  start_emu({"--deny", "RegisterImage"});
  CliRun failed = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(failed.rc, 1) << failed.err;
  std::string build = build_id_in(failed.err);
  ASSERT_FALSE(build.empty()) << failed.err;
  start_emu({});
  CliRun ok = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(ok.rc, 0) << ok.err;
  std::string ami = ok.out.substr(0, ok.out.find('\n'));

  CliRun list = amibake({"list", "--json"});
  ASSERT_EQ(list.rc, 0) << list.err;
  auto builds = nlohmann::json::parse(list.out);
  ASSERT_EQ(builds.size(), 2u) << list.out;
  std::map<std::string, std::string> state, ami_of;
  for (const auto& b : builds) {
    state[b["build_id"]] = b["state"];
    ami_of[b["state"]] = b["ami"];
  }
  EXPECT_EQ(state[build], "unfinished");
  EXPECT_EQ(ami_of["finished"], ami);

  // gc needs no journal: remove the journal folder first.
  fs::remove_all(dir_ + "/state");
  CliRun young = amibake({"gc", "--older-than", "1h", "--json"});
  ASSERT_EQ(young.rc, 0) << young.err;
  EXPECT_EQ(nlohmann::json::parse(young.out).size(), 0u) << "a build of a minute ago is no leftover yet";
  CliRun found = amibake({"gc", "--json"});
  ASSERT_EQ(found.rc, 0) << found.err;
  auto leftovers = nlohmann::json::parse(found.out);
  ASSERT_EQ(leftovers.size(), 1u) << found.out;  // the failed build's root snapshot only
  EXPECT_EQ(leftovers[0]["build_id"], build);
  EXPECT_EQ(leftovers[0]["kind"], "snapshot");
  CliRun removed = amibake({"gc", "--delete"});
  ASSERT_EQ(removed.rc, 0) << removed.err;
  EXPECT_TRUE(tagged_with(build).empty());
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami);
  ASSERT_TRUE(img) << "gc must not touch a finished build's AMI";
  EXPECT_EQ(img->state, "available");
}

TEST_F(BakeE2E, KillDuringUploadThenResumeMakesExactlyOneAmi) {
  // Slow uploads down so the kill lands in the middle of them.
  start_emu({"--faults", "slow=1.0,slow_seconds=1,op=PutSnapshotBlock"});
  BackgroundProcess build;
  std::string err;
  std::vector<std::string> argv = {AMIBAKE_BINARY, "build", recipe("batch-worker.toml"),
                                   "--concurrency", "2"};
  ASSERT_TRUE(build.start(argv, env(), dir_ + "/build.log", &err)) << err;
  std::string line = build.wait_for_line("amibake: [upload] blocks uploaded", std::chrono::seconds(120));
  ASSERT_FALSE(line.empty()) << "upload never started; see " << dir_ << "/build.log";
  ::kill(build.pid(), SIGKILL);
  build.stop();
  auto log = read_file(dir_ + "/build.log");
  std::string id = build_id_in(*log);
  ASSERT_FALSE(id.empty());

  start_emu({});  // same --data: state survives the restart; faults off
  CliRun r = amibake({"build", "--resume", id});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string ami = r.out.substr(0, r.out.find('\n'));
  auto c = client();
  aws::ec2::DescribeImagesRequest ir;
  ir.owners = {"self"};
  ir.filters = {{"tag:amibake:build-id", {id}}};
  auto images = aws::ec2::describe_images(*c, ir);
  ASSERT_TRUE(images);
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ(images->front().image_id, ami);
  aws::ec2::DescribeSnapshotsRequest sr;
  sr.owner_ids = {"self"};
  sr.filters = {{"tag:amibake:build-id", {id}}};
  auto snaps = aws::ec2::describe_snapshots(*c, sr);
  ASSERT_TRUE(snaps);
  EXPECT_EQ(snaps->size(), 1u) << "one root snapshot, no duplicate from the killed attempt";
}

TEST_F(BakeE2E, CtrlCStopsRemovesWhatTheBuildMadeAndExits130) {
  start_emu({"--faults", "slow=1.0,slow_seconds=1,op=PutSnapshotBlock"});
  BackgroundProcess build;
  std::string err;
  std::vector<std::string> argv = {AMIBAKE_BINARY, "build", recipe("batch-worker.toml"),
                                   "--concurrency", "2"};
  ASSERT_TRUE(build.start(argv, env(), dir_ + "/build.log", &err)) << err;
  ASSERT_FALSE(build.wait_for_line("amibake: [upload] blocks uploaded", std::chrono::seconds(120)).empty());
  ::kill(build.pid(), SIGINT);
  int status = 0;
  for (int i = 0; i < 600 && ::waitpid(build.pid(), &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(WIFEXITED(status)) << "amibake did not stop after Ctrl-C";
  EXPECT_EQ(WEXITSTATUS(status), 130);
  auto log = read_file(dir_ + "/build.log");
  std::string id = build_id_in(*log);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(tagged_with(id).empty()) << *log;
}

TEST_F(BakeE2E, BuildSucceedsUnderThrottlingErrorsResetsAndHangs) {
  start_emu({"--faults", "throttle=0.1,5xx=0.05,reset=0.02,hang=0.01,hang_seconds=3", "--seed", "7"});
  CliRun r = amibake({"build", recipe("batch-worker.toml")});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string ami = r.out.substr(0, r.out.find('\n'));
  start_emu({});  // check with faults off
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami);
  ASSERT_TRUE(img) << img.error().describe();
  EXPECT_EQ(img->state, "available");
  EXPECT_EQ(img->imds_support, "v2.0");
  ReadOnlyRoot root(download(img->root_snapshot_id()));
  EXPECT_TRUE(fs::exists(root.path("/usr/local/sbin/datavol")));
  EXPECT_TRUE(fs::exists(root.path("/etc/systemd/system/datavol.service")));
}

TEST_F(BakeE2E, BadRecipeIsRejectedBeforeAnyAwsCall) {
  std::string bad = dir_ + "/bad.toml";
  ASSERT_TRUE(write_file_atomic(bad, "[[volume]]\nsize_gib = 1024\nencryptd = true\n"));
  emu_.stop();  // nothing may be asked: the endpoint is gone
  CliRun r = amibake({"build", bad});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("bad.toml:3: volume[0].encryptd: unknown key"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace amibake
