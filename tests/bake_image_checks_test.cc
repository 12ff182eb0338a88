// End-to-end: recipe values that would make the AMI fail at boot are refused during the
// install (issue 15, part 2), with the real amibake binary against awsemu and the catalog
// images (tests/fixtures/make-base-images: AL2023 has docker/containerd/ecs units,
// mkfs.xfs and mkfs.ext4, a populated /opt/aws; AL1 is SysV with a docker init script, ecs
// as an upstart job and mkfs.ext4 only). Each refusal: exit code 2, the reason on stderr,
// no upload (or snapshot) step, nothing left tagged with the build id.
//
// Needs root (loop devices, mounts); skips with the reason otherwise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aws/ec2.h"
#include "base/files.h"
#include "datavol/config.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::ReadOnlyRoot;

class ImageChecks : public testing::BakeFixture {
 protected:
  // examples/<name> with `replace` applied (each `from` must occur), written into dir_.
  std::string recipe(const std::string& name,
                     const std::vector<std::pair<std::string, std::string>>& replace) const {
    std::string text = read_file(testing::example_recipe(name)).value_or("");
    for (const auto& [from, to] : replace) {
      size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << name << ": " << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    std::string path = dir_ + "/" + std::to_string(++recipes_) + "-" + name;
    EXPECT_TRUE(write_file_atomic(path, text));
    return path;
  }

  // Steps the build's journal recorded as done.
  std::vector<std::string> steps_done(const std::string& id) const {
    std::vector<std::string> steps;
    std::istringstream in(read_file(dir_ + "/state/amibake/builds/" + id + ".jsonl").value_or(""));
    std::string line;
    while (std::getline(in, line)) {
      auto e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (e.is_object() && e.value("event", "") == "step") steps.push_back(e.value("step", ""));
    }
    return steps;
  }

  // A refused build: exit 2, `reason` on stderr, none of `later_steps` started, nothing
  // of the build left in the account.
  void expect_refused(const CliRun& r, const std::string& reason,
                      const std::vector<std::string>& later_steps = {"upload", "register"}) {
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("hint: "), std::string::npos) << r.err;
    std::string id = testing::build_id_in(r.err);
    ASSERT_FALSE(id.empty()) << r.err;
    for (const auto& step : later_steps) {
      EXPECT_EQ(r.err.find("[" + step + "]"), std::string::npos) << step << " ran:\n" << r.err;
    }
    auto done = steps_done(id);
    EXPECT_EQ(std::count(done.begin(), done.end(), "install"), 0);
    for (const auto& step : later_steps) {
      EXPECT_EQ(std::count(done.begin(), done.end(), step), 0) << step;
    }
    EXPECT_TRUE(tagged_with(id).empty()) << ::testing::PrintToString(tagged_with(id));
    EXPECT_EQ(host_leftovers(), "");
  }

  // The datavol config of AMI `ami`'s root, and `check` run on its root tree.
  void with_baked_root(const std::string& ami,
                       const std::function<void(const ReadOnlyRoot&)>& check) const {
    auto c = client();
    auto img = aws::ec2::describe_image(*c, ami);
    ASSERT_TRUE(img) << img.error().describe();
    ReadOnlyRoot root(download(img->root_snapshot_id()));
    ASSERT_TRUE(root.mount);
    check(root);
  }

  static std::string ami_of(const CliRun& r) { return r.out.substr(0, r.out.find('\n')); }

  mutable int recipes_ = 0;
};

TEST_F(ImageChecks, UnknownOwnerIsRefusedBeforeTheUpload) {
  CliRun r =
      amibake({"build", recipe("batch-worker.toml",
                               {{"mode = \"0755\"", "mode = \"0755\"\nowner = \"nosuchuser\""}})});
  expect_refused(r,
                 "volume[0] (/data): owner 'nosuchuser': no such user in the image's "
                 "/etc/passwd");
  EXPECT_NE(r.err.find("al2023-ami-ecs-hvm-"), std::string::npos) << "names the image:\n" << r.err;
}

TEST_F(ImageChecks, KnownOwnerFromTheImagesAccountsIsBaked) {
  CliRun r = amibake({"build", recipe("batch-worker.toml", {{"mode = \"0755\"",
                                                             "mode = \"0755\"\nowner = "
                                                             "\"ec2-user:docker\""}})});
  ASSERT_EQ(r.rc, 0) << r.err;
  with_baked_root(ami_of(r), [](const ReadOnlyRoot& root) {
    auto cfg = datavol::parse_config(read_file(root.path("/etc/datavol/datavol.toml")).value_or(""),
                                     "datavol.toml");
    ASSERT_TRUE(cfg) << cfg.error().describe();
    EXPECT_EQ(cfg->volumes.at(0).owner, "ec2-user:docker");
  });
}

TEST_F(ImageChecks, UnknownRequiredUnitOnTheSysvImageIsRefused) {
  CliRun r = amibake({"build", recipe("al1-sysv.toml", {{"required_by = [\"docker\", \"ecs\"]",
                                                         "required_by = [\"docker\", "
                                                         "\"nosuchunit\"]"}})});
  expect_refused(r, "volume[0] (/data): required_by 'nosuchunit': no such unit in the image");
}

TEST_F(ImageChecks, AllProblemsOfTheImageAreListedInOneError) {
  // AL1 has no xfsprogs; the unit and the mkfs are both wrong: both are named.
  CliRun r =
      amibake({"build", recipe("al1-sysv.toml", {{"filesystem = \"ext4\"", "filesystem = \"xfs\""},
                                                 {"required_by = [\"docker\", \"ecs\"]",
                                                  "required_by = [\"docker\", \"containerd\"]"}})});
  expect_refused(r, "2 recipe values would fail at boot:");
  EXPECT_NE(r.err.find("volume[0] (/data): required_by 'containerd': no such unit"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("volume[0] (/data): filesystem 'xfs': the image has no mkfs.xfs"),
            std::string::npos)
      << r.err;
}

TEST_F(ImageChecks, PopulatedMountPointIsRefused) {
  CliRun r = amibake(
      {"build", recipe("batch-worker.toml", {{"mount = \"/data\"", "mount = \"/opt/aws\""}})});
  expect_refused(r,
                 "volume[0] (/opt/aws): mount point '/opt/aws': is a folder in the image "
                 "with files in it (bin); the mount would hide them");
  EXPECT_NE(r.err.find("hide_existing = true"), std::string::npos) << r.err;
}

TEST_F(ImageChecks, PopulatedMountPointWithHideExistingIsBaked) {
  CliRun r = amibake(
      {"build", recipe("batch-worker.toml",
                       {{"mount = \"/data\"", "mount = \"/opt/aws\"\nhide_existing = true"}})});
  ASSERT_EQ(r.rc, 0) << r.err;
  with_baked_root(ami_of(r), [](const ReadOnlyRoot& root) {
    auto cfg = datavol::parse_config(read_file(root.path("/etc/datavol/datavol.toml")).value_or(""),
                                     "datavol.toml");
    ASSERT_TRUE(cfg) << cfg.error().describe();
    EXPECT_EQ(cfg->volumes.at(0).mount, "/opt/aws");
    EXPECT_TRUE(fs::exists(root.path("/opt/aws/bin/cfn-signal"))) << "the image's files stay";
  });
}

TEST_F(ImageChecks, DefaultUnitsTheSysvImageLacksAreDroppedAndSaid) {
  // No required_by: datavol's defaults (docker, containerd, ecs); AL1 has no containerd.
  CliRun r =
      amibake({"build", recipe("al1-sysv.toml", {{"required_by = [\"docker\", \"ecs\"]\n", ""}})});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("required_by: the image has no containerd: left out of datavol's default "
                       "units for volume[0] (/data)"),
            std::string::npos)
      << r.err;
  with_baked_root(ami_of(r), [](const ReadOnlyRoot& root) {
    auto cfg = datavol::parse_config(read_file(root.path("/etc/datavol/datavol.toml")).value_or(""),
                                     "datavol.toml");
    ASSERT_TRUE(cfg) << cfg.error().describe();
    EXPECT_EQ(cfg->volumes.at(0).required_by, (std::vector<std::string>{"docker", "ecs"}));
    auto script = read_file(root.path("/etc/rc.d/init.d/datavol")).value_or("");
    EXPECT_EQ(script.find("containerd"), std::string::npos) << script;
  });
}

// ---- the chroot method: the same check, on the attached volume ----

class ImageChecksChroot : public ImageChecks {
 protected:
  void TearDown() override {
    // awsemu's loop devices outlive it: detach every volume while it still answers.
    detach_all_volumes();
    BakeFixture::TearDown();
  }
  // amibake on the "EC2 host": IMDS is awsemu's, devices are in awsemu's by-id folder.
  CliRun on_host(const std::string& recipe_file) const {
    std::vector<std::string> e;
    for (const auto& kv : env()) {
      if (kv.rfind("AWS_EC2_METADATA_DISABLED=", 0) != 0) e.push_back(kv);
    }
    e.push_back("AWS_EC2_METADATA_DISABLED=false");
    e.push_back("AWS_EC2_METADATA_SERVICE_ENDPOINT=" + url_ + "/");
    CliRun r;
    r.rc = testing::run_capture({AMIBAKE_BINARY, "build", recipe_file, "--method", "chroot",
                                 "--device-dir", dir_ + "/emu/dev/disk/by-id"},
                                e, &r.out, &r.err);
    return r;
  }
};

TEST_F(ImageChecksChroot, UnknownOwnerIsRefusedBeforeTheSnapshotAndTheVolumeIsRemoved) {
  // The volume exists by the time the install refuses: removing it is the build driver's
  // job for exit-2 failures.
  CliRun r = on_host(recipe("batch-worker.toml",
                            {{"mode = \"0755\"", "mode = \"0755\"\nowner = \"nosuchuser\""}}));
  expect_refused(r,
                 "volume[0] (/data): owner 'nosuchuser': no such user in the image's /etc/passwd",
                 {"detach", "snapshot", "register"});
}

}  // namespace
}  // namespace amibake
