// End-to-end: arm64 (Graviton) bases (issue 13), the real amibake binary against a real
// awsemu process with the catalog of tests/fixtures/make-base-images, whose arm64 image
// carries real aarch64 ELF binaries (Debian's busybox-static:arm64). Checked independently
// of amibake's own reporting: through the EC2 API, and by reading the new root snapshot
// back through EBS direct and mounting it read-only.
//
// Needs root (loop devices, mounts) and an amibake built with the aarch64 datavol
// (AMIBAKE_DATAVOL_ARM64, cmake/datavol_arm64.cmake); this binary is only built then.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "aws/ec2.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/config.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::ReadOnlyRoot;

// examples/batch-worker.toml with its base variant replaced.
std::string batch_worker_on(const std::string& dir, const std::string& variant) {
  auto text = read_file(testing::example_recipe("batch-worker.toml"));
  EXPECT_TRUE(text);
  std::string t = text.value_or("");
  const std::string from = "variant = \"al2023\"";
  auto at = t.find(from);
  EXPECT_NE(at, std::string::npos) << "batch-worker.toml no longer names variant al2023";
  if (at != std::string::npos) t.replace(at, from.size(), "variant = \"" + variant + "\"");
  std::string path = dir + "/" + variant + ".toml";
  EXPECT_TRUE(write_file_atomic(path, t));
  return path;
}

bool is_link_to(const std::string& path, const std::string& target) {
  std::error_code ec;
  return fs::is_symlink(path, ec) && fs::read_symlink(path, ec).string() == target;
}

class Arm64Bake : public testing::BakeFixture {
 protected:
  struct Baked {
    std::string ami, build;
    aws::ec2::Image image;
    nlohmann::json manifest;
  };
  // Bakes `recipe_file`; the AMI as EC2 describes it and the build's manifest.
  Baked bake(const std::string& recipe_file) {
    Baked b;
    CliRun r = amibake({"build", recipe_file});
    EXPECT_EQ(r.rc, 0) << r.err;
    if (r.rc != 0) return b;
    b.ami = r.out.substr(0, r.out.find('\n'));
    b.build = testing::build_id_in(r.err);
    auto c = client();
    auto img = aws::ec2::describe_image(*c, b.ami);
    EXPECT_TRUE(img) << img.error().describe();
    if (img) b.image = *img;
    auto m = read_file(dir_ + "/state/amibake/builds/" + b.build + ".manifest.json");
    EXPECT_TRUE(m) << b.build;
    if (m) b.manifest = nlohmann::json::parse(*m);
    return b;
  }
};

TEST_F(Arm64Bake, Al2023Arm64BakesAnArm64UefiAmiCarryingTheAarch64Datavol) {
  Baked b = bake(batch_worker_on(dir_, "al2023-arm64"));
  ASSERT_FALSE(b.ami.empty());
  EXPECT_EQ(b.image.state, "available");
  EXPECT_EQ(b.image.architecture, "arm64");
  EXPECT_EQ(b.image.boot_mode, "uefi") << "AL2023 arm64 bases boot UEFI only";
  EXPECT_TRUE(b.image.ena_support);
  EXPECT_EQ(b.image.imds_support, "v2.0");
  bool saw_data = false;
  for (const auto& m : b.image.block_device_mappings) {
    if (m.device_name != "/dev/xvdb") continue;
    saw_data = true;
    ASSERT_TRUE(m.ebs);
    EXPECT_EQ(m.ebs->volume_size.value_or(0), 1024);
    EXPECT_EQ(m.ebs->volume_type, "gp3");
    EXPECT_EQ(m.ebs->encrypted, std::optional<bool>(true));
  }
  EXPECT_TRUE(saw_data);
  EXPECT_EQ(b.manifest["steps"]["install"]["arch"], "arm64");

  std::string disk = download(b.image.root_snapshot_id());
  ReadOnlyRoot root(disk);
  const std::string bin = root.path("/usr/local/sbin/datavol");
  struct stat st {};
  ASSERT_EQ(::stat(bin.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  auto file = run_checked({"file", "-b", bin});
  ASSERT_TRUE(file) << file.error().describe();
  EXPECT_NE(file->find("ARM aarch64"), std::string::npos) << *file;
  EXPECT_NE(file->find("statically linked"), std::string::npos) << *file;
  // The base's own binary the bake detected arm64 from is a real aarch64 executable.
  auto bash = run_checked({"file", "-b", root.path("/usr/bin/bash")});
  ASSERT_TRUE(bash);
  EXPECT_NE(bash->find("ARM aarch64"), std::string::npos) << *bash;

  auto cfg = read_file(root.path("/etc/datavol/datavol.toml"));
  ASSERT_TRUE(cfg);
  auto parsed = datavol::parse_config(*cfg, "image datavol.toml");
  ASSERT_TRUE(parsed) << parsed.error().describe();
  ASSERT_EQ(parsed->volumes.size(), 1u);
  EXPECT_EQ(parsed->volumes[0].device, "/dev/xvdb");
  EXPECT_EQ(parsed->volumes[0].mount, "/data");
  EXPECT_TRUE(fs::exists(root.path("/etc/systemd/system/datavol.service")));
  EXPECT_TRUE(is_link_to(root.path("/etc/systemd/system/multi-user.target.wants/datavol.service"),
                         "/etc/systemd/system/datavol.service"));
  for (const char* u : {"docker", "containerd", "ecs"}) {
    auto d = read_file(root.path(std::string("/etc/systemd/system/") + u +
                                 ".service.d/50-datavol.conf"));
    ASSERT_TRUE(d) << u;
    EXPECT_NE(d->find("Requires=datavol.service"), std::string::npos) << *d;
  }
}

TEST_F(Arm64Bake, SameRecipeOnX86AndArm64BasesGivesTheSamePayloadButTheBinary) {
  Baked x86 = bake(batch_worker_on(dir_, "al2023"));
  Baked arm = bake(batch_worker_on(dir_, "al2023-arm64"));
  ASSERT_FALSE(x86.ami.empty());
  ASSERT_FALSE(arm.ami.empty());
  EXPECT_EQ(x86.image.architecture, "x86_64");
  EXPECT_EQ(arm.image.architecture, "arm64");
  auto files = x86.manifest["steps"]["install"]["files"].get<std::vector<std::string>>();
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(arm.manifest["steps"]["install"]["files"].get<std::vector<std::string>>(), files);

  std::map<std::string, std::string> x86_tree, arm_tree;
  {
    ReadOnlyRoot root(download(x86.image.root_snapshot_id()));
    x86_tree = testing::tree_of(root.path(""));
  }
  {
    ReadOnlyRoot root(download(arm.image.root_snapshot_id()));
    arm_tree = testing::tree_of(root.path(""));
  }
  int compared = 0;
  for (const auto& f : files) {
    ASSERT_TRUE(x86_tree.count(f)) << f;
    ASSERT_TRUE(arm_tree.count(f)) << f;
    if (f == "/usr/local/sbin/datavol") {
      EXPECT_NE(x86_tree[f], arm_tree[f]) << "the binary must be each architecture's own";
      continue;
    }
    EXPECT_EQ(x86_tree[f], arm_tree[f]) << f;
    ++compared;
  }
  EXPECT_GE(compared, 5) << "config, unit, drop-ins and links";
  // Block device mappings other than the root's snapshot are the recipe's, the same.
  auto mappings = [](const aws::ec2::Image& i) {
    std::map<std::string, std::string> m;
    for (const auto& b : i.block_device_mappings) {
      if (b.device_name == i.root_device_name || !b.ebs) continue;
      m[b.device_name] = std::to_string(b.ebs->volume_size.value_or(0)) + " " + b.ebs->volume_type;
    }
    return m;
  };
  EXPECT_EQ(mappings(x86.image), mappings(arm.image));
}

// i386 and the Mac architectures are refused at resolve, before anything is created.
TEST_F(Arm64Bake, OtherArchitecturesAreRefusedBeforeAnythingIsCreated) {
  auto c = client();
  aws::ec2::DescribeImagesRequest amazon;
  amazon.owners = {"amazon"};
  auto catalog = aws::ec2::describe_images(*c, amazon);
  ASSERT_TRUE(catalog) << catalog.error().describe();
  std::string snapshot;
  for (const auto& i : *catalog) {
    if (i.architecture == "x86_64" && !i.root_snapshot_id().empty()) snapshot = i.root_snapshot_id();
  }
  ASSERT_FALSE(snapshot.empty());
  for (const std::string arch : {"i386", "x86_64_mac", "arm64_mac"}) {
    aws::ec2::RegisterImageRequest reg;
    reg.name = "foreign-" + arch;
    reg.architecture = arch;
    reg.root_device_name = "/dev/xvda";
    reg.virtualization_type = "hvm";
    aws::ec2::BlockDeviceMapping root;
    root.device_name = "/dev/xvda";
    root.ebs.emplace();
    root.ebs->snapshot_id = snapshot;
    reg.block_device_mappings = {root};
    auto ami = aws::ec2::register_image(*c, reg);
    ASSERT_TRUE(ami) << ami.error().describe();

    std::string recipe = dir_ + "/" + arch + ".toml";
    ASSERT_TRUE(write_file_atomic(recipe, "[base]\nami = \"" + *ami +
                                              "\"\n[image]\nname = \"t-{date}\"\n[[volume]]\n"
                                              "device = \"/dev/xvdb\"\nsize_gib = 10\n"
                                              "mount = \"/data\"\n"));
    CliRun r = amibake({"build", recipe});
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find(*ami + ": architecture '" + arch + "' is not supported"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("x86_64 and arm64"), std::string::npos) << r.err;
    if (arch != "i386") {
      EXPECT_NE(r.err.find("macOS"), std::string::npos) << r.err;
    }
  }
  // Nothing but the three registered images exists in the account: no copy, snapshot
  // or volume.
  aws::ec2::DescribeImagesRequest self;
  self.owners = {"self"};
  auto mine = aws::ec2::describe_images(*c, self);
  ASSERT_TRUE(mine) << mine.error().describe();
  EXPECT_EQ(mine->size(), 3u);
  for (const auto& i : *mine) EXPECT_EQ(i.name.rfind("foreign-", 0), 0u) << i.name;
  aws::ec2::DescribeSnapshotsRequest snaps;
  snaps.owner_ids = {"self"};
  auto own_snaps = aws::ec2::describe_snapshots(*c, snaps);
  ASSERT_TRUE(own_snaps) << own_snaps.error().describe();
  EXPECT_TRUE(own_snaps->empty());
  auto volumes = aws::ec2::describe_volumes(*c, {});
  ASSERT_TRUE(volumes) << volumes.error().describe();
  EXPECT_TRUE(volumes->empty());
}

}  // namespace
}  // namespace amibake
