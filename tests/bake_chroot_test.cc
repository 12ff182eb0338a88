// End-to-end: `amibake build --method chroot` (issue 7), the real binary against a real
// awsemu process that plays the EC2 host: its IMDSv2 names the host instance and zone,
// and AttachVolume to that instance attaches the volume file as a real loop device with
// an Amazon-Linux-style by-id link in awsemu's device folder, which amibake is pointed at
// with --device-dir. Everything is checked independently of amibake's own reporting:
// through the EC2 and EBS APIs, by mounting downloaded snapshots read-only, and by
// reading the host's mounts and loop devices.
//
// Needs root (loop devices, mounts); skips with the reason otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "aws/client.h"
#include "aws/ec2.h"
#include "aws/sigv4.h"
#include "aws/waiter.h"
#include "bake/payload_install.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/config.h"
#include "image/partition.h"
#include "tests/support/background.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::BackgroundProcess;
using testing::build_id_in;
using testing::CliRun;
using testing::ReadOnlyRoot;

std::string recipe(const std::string& name) { return testing::example_recipe(name); }

using testing::tree_of;

class Chroot : public testing::BakeFixture {
 protected:
  void TearDown() override {
    // awsemu's loop devices outlive it: detach every volume while it still answers.
    detach_all_volumes();
    BakeFixture::TearDown();
  }

  std::string device_dir() const { return dir_ + "/emu/dev/disk/by-id"; }

  // amibake's environment on the "EC2 host": IMDS is awsemu's.
  std::vector<std::string> host_env() const {
    std::vector<std::string> e;
    for (const auto& kv : env()) {
      if (kv.rfind("AWS_EC2_METADATA_DISABLED=", 0) != 0) e.push_back(kv);
    }
    e.push_back("AWS_EC2_METADATA_DISABLED=false");
    e.push_back("AWS_EC2_METADATA_SERVICE_ENDPOINT=" + url_ + "/");
    return e;
  }
  CliRun on_host(std::vector<std::string> args, std::vector<std::string> env = {}) const {
    CliRun r;
    args.insert(args.begin(), AMIBAKE_BINARY);
    if (env.empty()) env = host_env();
    r.rc = testing::run_capture(args, env, &r.out, &r.err);
    return r;
  }
  std::vector<std::string> chroot_args(const std::string& recipe_file) const {
    return {"build", recipe_file, "--method", "chroot", "--device-dir", device_dir()};
  }
  void start_build(BackgroundProcess& p, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {AMIBAKE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string err;
    build_log_ = dir_ + "/build." + std::to_string(++builds_) + ".log";
    ASSERT_TRUE(p.start(argv, host_env(), build_log_, &err)) << err;
  }
  std::string build_log() const { return read_file(build_log_).value_or(""); }

  static std::string ami_of(const CliRun& r) { return r.out.substr(0, r.out.find('\n')); }

  // A recipe file in dir_: `name`'s content with its image name made unique by `suffix`
  // (two builds of one recipe may run in one test) and `replace` applied.
  std::string recipe_copy(const std::string& name, const std::string& suffix,
                          const std::vector<std::pair<std::string, std::string>>& replace = {}) {
    std::string text = read_file(recipe(name)).value();
    std::smatch m;
    std::regex name_line("name = \"([^\"]*)\"");
    EXPECT_TRUE(std::regex_search(text, m, name_line));
    text = std::regex_replace(text, name_line, "name = \"$1-" + suffix + "\"",
                              std::regex_constants::format_first_only);
    for (const auto& [from, to] : replace) {
      size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    std::string path = dir_ + "/" + suffix + "-" + name;
    EXPECT_TRUE(write_file_atomic(path, text));
    return path;
  }

  // Volumes of the account carrying amibake:build-id = id.
  std::vector<std::string> volumes_of(const std::string& id) const {
    auto c = client();
    aws::ec2::DescribeVolumesRequest vr;
    vr.filters = {{"tag:amibake:build-id", {id}}};
    std::vector<std::string> ids;
    for (const auto& v : aws::ec2::describe_volumes(*c, vr).value()) ids.push_back(v.volume_id);
    return ids;
  }

  // The build's journal manifest (written when it finishes).
  nlohmann::json manifest(const std::string& id) const {
    auto text = read_file(dir_ + "/state/amibake/builds/" + id + ".manifest.json");
    EXPECT_TRUE(text) << id;
    return text ? nlohmann::json::parse(*text) : nlohmann::json();
  }

  // Bakes `recipe_name` both ways and checks the two AMIs are the same AMI in all that
  // matters: mappings, attributes, and every file of the root filesystem.
  void expect_chroot_equals_direct(
      const std::string& recipe_name,
      const std::vector<std::pair<std::string, std::string>>& replace = {}) {
    CliRun direct = on_host({"build", recipe_copy(recipe_name, "direct", replace)});
    ASSERT_EQ(direct.rc, 0) << direct.err;
    // The same base and recipe: without --force the direct bake's AMI would be reused
    // (rightly: the method does not change the result).
    auto args = chroot_args(recipe_copy(recipe_name, "chroot", replace));
    args.push_back("--force");
    CliRun chroot = on_host(args);
    ASSERT_EQ(chroot.rc, 0) << chroot.err;
    EXPECT_EQ(chroot.out, ami_of(chroot) + "\n") << "stdout holds only the AMI id";
    EXPECT_NE(chroot.err.find("by-id link"), std::string::npos) << chroot.err;
    std::string id = build_id_in(chroot.err);
    EXPECT_TRUE(volumes_of(id).empty()) << "the temporary volume is deleted";
    EXPECT_EQ(host_leftovers(), "");

    auto c = client();
    auto a = aws::ec2::describe_image(*c, ami_of(direct));
    auto b = aws::ec2::describe_image(*c, ami_of(chroot));
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->image_id, b->image_id);
    EXPECT_EQ(b->state, "available");
    EXPECT_EQ(a->architecture, b->architecture);
    EXPECT_EQ(a->boot_mode, b->boot_mode);
    EXPECT_EQ(a->ena_support, b->ena_support);
    EXPECT_EQ(a->sriov_net_support, b->sriov_net_support);
    EXPECT_EQ(a->tpm_support, b->tpm_support);
    EXPECT_EQ(a->imds_support, b->imds_support);
    EXPECT_EQ(b->imds_support, "v2.0");
    EXPECT_EQ(a->virtualization_type, b->virtualization_type);
    EXPECT_EQ(a->root_device_name, b->root_device_name);
    auto mappings = [](const aws::ec2::Image& i) {
      std::vector<std::string> out;
      for (const auto& m : i.block_device_mappings) {
        std::string s = m.device_name + " " + m.virtual_name;
        if (m.ebs) {
          s += " " + std::to_string(m.ebs->volume_size.value_or(-1)) + " " + m.ebs->volume_type +
               " enc=" + std::to_string(m.ebs->encrypted.value_or(false)) +
               " dot=" + std::to_string(m.ebs->delete_on_termination.value_or(true)) +
               (m.ebs->snapshot_id.empty() ? " blank" : " from-snapshot");
        }
        out.push_back(s);
      }
      std::sort(out.begin(), out.end());
      return out;
    };
    EXPECT_EQ(mappings(*a), mappings(*b));
    EXPECT_NE(a->root_snapshot_id(), b->root_snapshot_id());

    std::map<std::string, std::string> ta, tb;
    {
      ReadOnlyRoot ra(download(a->root_snapshot_id()));
      ASSERT_TRUE(ra.mount);
      ta = tree_of(ra.path(""));
    }
    {
      ReadOnlyRoot rb(download(b->root_snapshot_id()));
      ASSERT_TRUE(rb.mount);
      tb = tree_of(rb.path(""));
    }
    EXPECT_GT(ta.size(), 20u);
    EXPECT_TRUE(ta.count("/usr/local/sbin/datavol"));
    for (const auto& [path, what] : ta) {
      auto it = tb.find(path);
      if (it == tb.end()) {
        ADD_FAILURE() << path << " is only in the direct bake";
      } else {
        EXPECT_EQ(what, it->second) << path;
      }
    }
    for (const auto& [path, what] : tb) {
      if (!ta.count(path)) ADD_FAILURE() << path << " is only in the chroot bake";
    }
  }

  std::string build_log_;
  int builds_ = 0;
};

// ---- the bake itself ----

TEST_F(Chroot, Al2023BakeEqualsTheDirectMethodsAmi) {
  expect_chroot_equals_direct("batch-worker.toml");
}

TEST_F(Chroot, Al1SysvBakeEqualsTheDirectMethodsAmi) {
  expect_chroot_equals_direct("al1-sysv.toml");
}

// Issue 13: an arm64 base through the chroot method (on a Graviton host the device lookups
// are the same) gives the direct method's AMI, aarch64 datavol included.
TEST_F(Chroot, Al2023Arm64BakeEqualsTheDirectMethodsAmi) {
  auto archs = bake::embedded_datavol_architectures();
  if (std::find(archs.begin(), archs.end(), "arm64") == archs.end())
    GTEST_SKIP() << "this amibake was built without the aarch64 datavol";
  expect_chroot_equals_direct("batch-worker.toml",
                              {{"variant = \"al2023\"", "variant = \"al2023-arm64\""}});
}

TEST_F(Chroot, TwoBuildsAtOnceOnOneHostEachInstallIntoTheirOwnVolume) {
  // Slow attaches so both builds are attaching at the same time.
  // Slow detaches too: each build holds its loop device while the other attaches (awsemu
  // builds an attached volume's file at attach, which can put one attach a second behind).
  start_emu({"--faults", "slow=1.0,slow_seconds=1,op=AttachVolume|CreateVolume|DetachVolume"});
  std::string one = recipe_copy("batch-worker.toml", "one");
  std::string two =
      recipe_copy("batch-worker.toml", "two", {{"mount = \"/data\"", "mount = \"/scratch\""}});
  BackgroundProcess a, b;
  start_build(a, chroot_args(one));
  std::string log_a = build_log_;
  start_build(b, chroot_args(two));
  std::string log_b = build_log_;
  for (auto* p : {&a, &b}) {
    for (int i = 0; i < 1800 && p->running(); ++i) std::this_thread::sleep_for(100ms);
  }
  std::string err_a = read_file(log_a).value_or(""), err_b = read_file(log_b).value_or("");
  ASSERT_FALSE(a.running() || b.running()) << "builds did not finish:\n" << err_a << err_b;
  std::smatch ma, mb;
  std::regex done("\\[done\\] (ami-[0-9a-f]+)");
  ASSERT_TRUE(std::regex_search(err_a, ma, done)) << err_a;
  ASSERT_TRUE(std::regex_search(err_b, mb, done)) << err_b;
  start_emu({});
  auto ida = build_id_in(err_a), idb = build_id_in(err_b);
  auto steps_a = manifest(ida)["steps"], steps_b = manifest(idb)["steps"];
  EXPECT_NE(steps_a["attach"]["device_name"], steps_b["attach"]["device_name"]);
  EXPECT_NE(steps_a["attach"]["device"], steps_b["attach"]["device"]);
  EXPECT_NE(steps_a["volume"]["volume"], steps_b["volume"]["volume"]);

  // Each AMI carries its own recipe's config: a mix-up of devices would swap them.
  auto c = client();
  for (auto [ami, mount] : {std::pair{ma[1].str(), "/data"}, std::pair{mb[1].str(), "/scratch"}}) {
    auto img = aws::ec2::describe_image(*c, ami);
    ASSERT_TRUE(img);
    ReadOnlyRoot root(download(img->root_snapshot_id()));
    ASSERT_TRUE(root.mount);
    auto cfg = datavol::parse_config(read_file(root.path("/etc/datavol/datavol.toml")).value_or(""),
                                     "cfg");
    ASSERT_TRUE(cfg) << cfg.error().describe();
    ASSERT_EQ(cfg->volumes.size(), 1u);
    EXPECT_EQ(cfg->volumes[0].mount, mount) << ami;
  }
  EXPECT_TRUE(volumes_of(ida).empty());
  EXPECT_TRUE(volumes_of(idb).empty());
  EXPECT_EQ(host_leftovers(), "");
}

TEST_F(Chroot, AttachSkipsNamesInUseAndFindsItsDeviceAmongOtherAttachedVolumes) {
  // Ten other volumes attached to this host at /dev/sdf../dev/sdo, each a real loop
  // device with its own by-id link: only /dev/sdp is free.
  auto c = client();
  std::vector<std::string> others;
  for (char letter = 'f'; letter <= 'o'; ++letter) {
    aws::ec2::CreateVolumeRequest cv;
    cv.availability_zone = "us-east-1a";
    cv.size = 1;
    auto v = aws::ec2::create_volume(*c, cv);
    ASSERT_TRUE(v) << v.error().describe();
    ASSERT_TRUE(aws::wait_volume_available(*c, v->volume_id));
    ASSERT_TRUE(aws::ec2::attach_volume(*c, v->volume_id, "i-0abc0123456789def",
                                        std::string("/dev/sd") + letter));
    others.push_back(v->volume_id);
  }
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto steps = manifest(build_id_in(r.err))["steps"];
  EXPECT_EQ(steps["attach"]["device_name"], "/dev/sdp") << r.err;
  std::string mine = steps["attach"]["device"];
  for (const auto& v : others) {
    std::error_code ec;
    std::string theirs =
        fs::canonical(device_dir() + "/nvme-Amazon_Elastic_Block_Store_vol" + v.substr(4), ec)
            .string();
    EXPECT_NE(mine, theirs) << "took " << v << "'s device";
  }
}

TEST_F(Chroot, BaseSnapshotTheAccountCannotUseIsReplacedByTheAccountsCopy) {
  start_emu({"--unshared-catalog-snapshots"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("using the account's copy"), std::string::npos) << r.err;
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami_of(r));
  ASSERT_TRUE(img);
  auto base = aws::ec2::find_tag(img->tags, "amibake:base-image");
  EXPECT_EQ(images_tagged("amibake:copy-of", base).size(), 1u);
  auto steps = manifest(build_id_in(r.err))["steps"];
  EXPECT_TRUE(steps["source"]["copy"].get<bool>());
}

TEST_F(Chroot, PlanShowsTheHostAndTheChrootSteps) {
  CliRun r = on_host({"plan", recipe("batch-worker.toml"), "--method", "chroot"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("host: i-0abc0123456789def in us-east-1a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("attach: AttachVolume"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ec2:CreateVolume"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ebs:"), std::string::npos)
      << "the chroot method needs no EBS direct action";
  CliRun d = on_host({"doctor"});
  EXPECT_NE(d.out.find("chroot method: ready"), std::string::npos) << d.out << d.err;
}

// ---- bad hosts: stopped before anything is created ----

TEST_F(Chroot, NotOnEc2StopsWithAMessageBeforeAnythingIsCreated) {
  auto c = client();
  auto before = aws::ec2::describe_volumes(*c, {});
  ASSERT_TRUE(before);
  // IMDS disabled, and IMDS on a port where nothing answers.
  std::vector<std::string> disabled = env();
  std::vector<std::string> unreachable = host_env();
  unreachable.back() = "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:" +
                       std::to_string(testing::free_loopback_port()) + "/";
  for (const auto& e : {disabled, unreachable}) {
    CliRun r = on_host(chroot_args(recipe("batch-worker.toml")), e);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("--method direct"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("[host]"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("[resolve]"), std::string::npos) << "stopped at the first step:\n"
                                                          << r.err;
  }
  auto after = aws::ec2::describe_volumes(*c, {});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), before->size());
  EXPECT_TRUE(images_tagged("amibake:role", "image").empty());
}

TEST_F(Chroot, AnotherRegionThanTheHostsIsRefusedBeforeAnythingIsCreated) {
  CliRun r = on_host({"--region", "us-west-2", "build", recipe("batch-worker.toml"), "--method",
                      "chroot", "--device-dir", device_dir()});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("this host is in us-east-1"), std::string::npos) << r.err;
}

// ---- faults, kill -9 and resume, Ctrl-C, missing permissions ----

TEST_F(Chroot, BuildSucceedsUnderThrottlingErrorsAndResets) {
  start_emu({"--faults", "throttle=0.1,5xx=0.05,reset=0.02", "--seed", "11"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 0) << r.err;
  start_emu({});
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami_of(r));
  ASSERT_TRUE(img) << img.error().describe();
  EXPECT_EQ(img->state, "available");
  EXPECT_TRUE(volumes_of(build_id_in(r.err)).empty());
  ReadOnlyRoot root(download(img->root_snapshot_id()));
  ASSERT_TRUE(root.mount);
  EXPECT_TRUE(fs::exists(root.path("/usr/local/sbin/datavol")));
}

// Answers lost after the work was done (awsemu's `lost` fault): the retry layer does not
// repeat these non-idempotent calls, so each step must find out what happened rather
// than fail, or do it twice.
TEST_F(Chroot, LostAnswersToNonIdempotentCallsNeitherFailTheBuildNorDuplicate) {
  start_emu({"--faults", "lost=1.0,op=AttachVolume|DetachVolume|CreateSnapshot|RegisterImage"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* op : {"AttachVolume", "DetachVolume", "RegisterImage"}) {
    EXPECT_NE(r.err.find(std::string(op) + " got no answer"), std::string::npos) << op << "\n"
                                                                                 << r.err;
  }
  EXPECT_NE(r.err.find("found snap-"), std::string::npos) << r.err;
  start_emu({});
  std::string id = build_id_in(r.err);
  EXPECT_EQ(images_tagged("amibake:build-id", id).size(), 1u);
  EXPECT_EQ(snapshots_tagged("amibake:build-id", id).size(), 1u)
      << ::testing::PrintToString(snapshots_tagged("amibake:build-id", id)) << r.err;
  EXPECT_TRUE(volumes_of(id).empty());
}

struct KillPoint {
  const char* name;
  const char* slow_op;  // the operation made slow so the kill lands inside the step
  const char* line;     // amibake's plain progress line to wait for
};
// Test names and ctest's listing show the step's name, not the struct's bytes.
void PrintTo(const KillPoint& k, std::ostream* os) { *os << k.name; }

class ChrootKill : public Chroot, public ::testing::WithParamInterface<KillPoint> {
 protected:
  // Starts a chroot build with the step's operation slowed down, kills it (-9) inside
  // that step, restarts awsemu without faults; returns the build id.
  std::string kill_in_step() {
    const KillPoint& k = GetParam();
    start_emu({"--faults", std::string("slow=1.0,slow_seconds=2,op=") + k.slow_op});
    BackgroundProcess build;
    start_build(build, chroot_args(recipe("batch-worker.toml")));
    EXPECT_FALSE(build.wait_for_line(k.line, 120s).empty()) << "never saw '" << k.line << "':\n"
                                                            << build_log();
    ::kill(build.pid(), SIGKILL);
    build.stop();
    std::string log = build_log();
    EXPECT_EQ(log.find("amibake: [done]"), std::string::npos) << "the kill landed too late:\n"
                                                              << log;
    start_emu({});
    return build_id_in(log);
  }
};

TEST_P(ChrootKill, CleanupAfterKillLeavesNothingAttachedNoVolumeNoTag) {
  std::string id = kill_in_step();
  ASSERT_FALSE(id.empty()) << build_log();
  CliRun r = on_host({"cleanup", id});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(::testing::PrintToString(tagged_with(id)), "{}") << r.err;
  auto c = client();
  for (const auto& v : aws::ec2::describe_volumes(*c, {}).value()) {
    EXPECT_TRUE(v.attachments.empty()) << v.volume_id << " still attached";
  }
  EXPECT_EQ(host_leftovers(), "");
}

TEST_P(ChrootKill, ResumeAfterKillMakesOneAmiAndLeavesNoVolume) {
  std::string id = kill_in_step();
  ASSERT_FALSE(id.empty()) << build_log();
  CliRun r = on_host({"build", "--resume", id});  // method and device folder from the journal
  ASSERT_EQ(r.rc, 0) << r.err;
  auto images = images_tagged("amibake:build-id", id);
  ASSERT_EQ(images.size(), 1u) << ::testing::PrintToString(images);
  EXPECT_EQ(images.front(), ami_of(r));
  auto snaps = snapshots_tagged("amibake:build-id", id);
  ASSERT_EQ(snaps.size(), 1u) << "one root snapshot: " << ::testing::PrintToString(snaps);
  auto c = client();
  auto img = aws::ec2::describe_image(*c, ami_of(r));
  ASSERT_TRUE(img);
  EXPECT_EQ(img->root_snapshot_id(), snaps.front());
  EXPECT_EQ(::testing::PrintToString(volumes_of(id)), "{}") << r.err;
  auto all = aws::ec2::describe_volumes(*c, {});
  ASSERT_TRUE(all);
  for (const auto& v : *all) EXPECT_TRUE(v.attachments.empty()) << v.volume_id << " still attached";
  EXPECT_EQ(host_leftovers(), "");
}

INSTANTIATE_TEST_SUITE_P(
    EachStep, ChrootKill,
    ::testing::Values(KillPoint{"Volume", "CreateVolume", "amibake: [volume]"},
                      KillPoint{"Attach", "AttachVolume", "amibake: [attach]"},
                      KillPoint{"Detach", "DetachVolume", "amibake: [detach]"},
                      KillPoint{"Snapshot", "CreateSnapshot", "amibake: [snapshot]"},
                      KillPoint{"RemoveVolume", "DeleteVolume", "amibake: [remove-volume]"},
                      KillPoint{"Register", "RegisterImage", "amibake: [register]"}),
    [](const auto& info) { return std::string(info.param.name); });

// What a kill during the install leaves: the root partition's loop device mounted on the
// attached volume. Made here by hand (with losetup and mount, as amibake does it) on a
// build stopped at the detach, then the build is resumed, or cleaned up.
class ChrootLeftoverMount : public Chroot, public ::testing::WithParamInterface<bool> {
 protected:
  // Runs a build that stops at the detach with the volume attached; returns its id.
  std::string build_stopped_at_detach(std::string* device) {
    start_emu({"--deny", "DetachVolume"});
    CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("ec2:DetachVolume"), std::string::npos) << r.err;
    std::string id = build_id_in(r.err);
    auto vols = volumes_of(id);
    EXPECT_EQ(vols.size(), 1u);
    if (vols.size() != 1) return id;
    *device =
        fs::canonical(device_dir() + "/nvme-Amazon_Elastic_Block_Store_vol" + vols[0].substr(4));
    return id;
  }
  // Mounts the root partition of `device` through a loop device; returns the mount point.
  std::string leave_mount(const std::string& device) {
    auto table = image::read_partition_table(device);
    EXPECT_TRUE(table);
    auto root = image::find_root_partition(*table);
    EXPECT_TRUE(root);
    std::string loop =
        run_checked({"losetup", "-f", "--show", "--offset", std::to_string(root->start),
                     "--sizelimit", std::to_string(root->size), device})
            .value_or("");
    while (!loop.empty() && loop.back() == '\n') loop.pop_back();
    EXPECT_FALSE(loop.empty());
    std::string target = dir_ + "/tmp/amibake-mnt.killed";
    EXPECT_TRUE(make_dirs(target));
    auto m = run_process({"mount", "-o", "nouuid", loop, target});
    EXPECT_TRUE(m && m->exit_code == 0) << (m ? m->err : m.error().message);
    return target;
  }
};

TEST_P(ChrootLeftoverMount, IsReleasedBeforeTheVolumeIsDetached) {
  bool resume = GetParam();
  std::string device;
  std::string id = build_stopped_at_detach(&device);
  ASSERT_FALSE(device.empty());
  std::string target = leave_mount(device);
  ASSERT_NE(host_leftovers(), "");

  start_emu({});
  CliRun r = resume ? on_host({"build", "--resume", id}) : on_host({"cleanup", id});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("unmounted " + target), std::string::npos) << r.err;
  EXPECT_EQ(host_leftovers(), "");
  EXPECT_TRUE(volumes_of(id).empty());
  if (resume) {
    EXPECT_EQ(images_tagged("amibake:build-id", id).size(), 1u);
  } else {
    EXPECT_EQ(::testing::PrintToString(tagged_with(id)), "{}");
  }
}

INSTANTIATE_TEST_SUITE_P(ResumeOrCleanup, ChrootLeftoverMount, ::testing::Values(true, false),
                         [](const auto& info) {
                           return std::string(info.param ? "Resume" : "Cleanup");
                         });

class ChrootInterrupt : public Chroot, public ::testing::WithParamInterface<KillPoint> {};

TEST_P(ChrootInterrupt, CtrlCExits130AndLeavesNoVolumeOrTag) {
  const KillPoint& k = GetParam();
  start_emu({"--faults", std::string("slow=1.0,slow_seconds=2,op=") + k.slow_op});
  BackgroundProcess build;
  start_build(build, chroot_args(recipe("batch-worker.toml")));
  ASSERT_FALSE(build.wait_for_line(k.line, 120s).empty()) << build_log();
  ::kill(build.pid(), SIGINT);
  int status = 0;
  for (int i = 0; i < 600 && ::waitpid(build.pid(), &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::string log = build_log();
  ASSERT_TRUE(WIFEXITED(status)) << "amibake did not stop after Ctrl-C:\n" << log;
  EXPECT_EQ(WEXITSTATUS(status), 130) << log;
  std::string id = build_id_in(log);
  start_emu({});
  EXPECT_EQ(::testing::PrintToString(tagged_with(id)), "{}") << log;
  auto c = client();
  for (const auto& v : aws::ec2::describe_volumes(*c, {}).value()) {
    EXPECT_TRUE(v.attachments.empty()) << v.volume_id << " left attached:\n" << log;
  }
  EXPECT_EQ(host_leftovers(), "") << log;
}

INSTANTIATE_TEST_SUITE_P(EachStep, ChrootInterrupt,
                         ::testing::Values(KillPoint{"Attach", "AttachVolume", "amibake: [attach]"},
                                           KillPoint{"Detach", "DetachVolume", "amibake: [detach]"},
                                           KillPoint{"Snapshot", "CreateSnapshot",
                                                     "amibake: [snapshot]"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(Chroot, MissingPermissionNamesTheActionAndCleanupRemovesTheVolume) {
  start_emu({"--deny", "CreateSnapshot"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("ec2:CreateSnapshot"), std::string::npos) << r.err;
  std::string id = build_id_in(r.err);
  EXPECT_NE(r.err.find("amibake cleanup " + id), std::string::npos) << r.err;
  EXPECT_EQ(volumes_of(id).size(), 1u) << "the detached volume is kept for --resume";
  start_emu({});
  CliRun c = on_host({"cleanup", id});
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(::testing::PrintToString(tagged_with(id)), "{}") << c.err;
  EXPECT_EQ(host_leftovers(), "");
}

TEST_F(Chroot, ResumeOffTheHostTheBuildStartedOnIsRefused) {
  start_emu({"--deny", "DetachVolume"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 1) << r.err;
  std::string id = build_id_in(r.err);
  start_emu({});
  CliRun elsewhere = on_host({"build", "--resume", id}, env());  // no IMDS: not that host
  EXPECT_EQ(elsewhere.rc, 2) << elsewhere.err;
  EXPECT_NE(elsewhere.err.find("started on EC2 instance i-0abc0123456789def"), std::string::npos)
      << elsewhere.err;
  EXPECT_EQ(volumes_of(id).size(), 1u) << "nothing is touched";
  CliRun here = on_host({"build", "--resume", id});
  ASSERT_EQ(here.rc, 0) << here.err;
  EXPECT_TRUE(volumes_of(id).empty());
}

TEST_F(Chroot, ResumingWithTheOtherMethodIsRefused) {
  start_emu({"--deny", "CreateSnapshot"});
  CliRun r = on_host(chroot_args(recipe("batch-worker.toml")));
  ASSERT_EQ(r.rc, 1) << r.err;
  std::string id = build_id_in(r.err);
  start_emu({});
  CliRun wrong = on_host({"build", "--resume", id, "--method", "direct"});
  EXPECT_EQ(wrong.rc, 2) << wrong.err;
  EXPECT_NE(wrong.err.find("was started with --method chroot"), std::string::npos) << wrong.err;
  CliRun c = on_host({"cleanup", id});
  EXPECT_EQ(c.rc, 0) << c.err;
}

}  // namespace
}  // namespace amibake
