#include "datavol/config.h"

#include <gtest/gtest.h>

namespace amibake::datavol {
namespace {

TEST(DatavolConfig, ParsesEveryKey) {
  auto c = parse_config(R"(
[[volume]]
device = "xvdb"
mount = "/data"
filesystem = "ext4"
label = "scratch"
mkfs_options = ["-m", "0"]
mount_options = "defaults,noatime,discard"
owner = "ec2-user:docker"
mode = "1777"
wait_seconds = 30
grow = false
required_by = ["docker"]
)",
                        "t.toml");
  ASSERT_TRUE(c.has_value()) << c.error().describe();
  ASSERT_EQ(c->volumes.size(), 1u);
  const auto& v = c->volumes[0];
  EXPECT_EQ(v.find_by, FindBy::kDevice);
  EXPECT_EQ(v.device, "xvdb");
  EXPECT_EQ(v.filesystem, "ext4");
  EXPECT_EQ(v.label, "scratch");
  EXPECT_EQ(v.mkfs_options, (std::vector<std::string>{"-m", "0"}));
  EXPECT_EQ(v.mount_options, "defaults,noatime,discard");
  EXPECT_EQ(v.owner, "ec2-user:docker");
  EXPECT_EQ(v.mode, std::optional<mode_t>(01777));
  EXPECT_EQ(v.wait_seconds, 30);
  EXPECT_FALSE(v.grow);
  EXPECT_EQ(v.required_by, std::vector<std::string>{"docker"});
}

TEST(DatavolConfig, DefaultsMatchTheIssue) {
  auto c = parse_config("[[volume]]\nvolume_id = \"vol-0abc\"\n", "t.toml");
  ASSERT_TRUE(c.has_value());
  const auto& v = c->volumes[0];
  EXPECT_EQ(v.find_by, FindBy::kVolumeId);
  EXPECT_EQ(v.mount, "/data");
  EXPECT_EQ(v.filesystem, "xfs");
  EXPECT_EQ(v.mount_options, "defaults,noatime");
  EXPECT_TRUE(v.grow);
  EXPECT_EQ(v.required_by, (std::vector<std::string>{"docker", "containerd", "ecs"}));
  EXPECT_EQ(v.effective_label(), "data");
}

TEST(DatavolConfig, InstanceStoreModes) {
  auto c = parse_config("[[volume]]\ninstance_store = \"each\"\nmount = \"/scratch\"\n", "t");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->volumes[0].find_by, FindBy::kInstanceStore);
  EXPECT_EQ(c->volumes[0].instance_store, InstanceStoreMode::kEach);
  EXPECT_FALSE(parse_config("[[volume]]\ninstance_store = \"raid5\"\n", "t").has_value());
}

TEST(DatavolConfig, TwoWaysOfFindingIsAnError) {
  auto c = parse_config("[[volume]]\ndevice = \"xvdb\"\nvolume_id = \"vol-1\"\n", "t");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("exactly one"), std::string::npos);
  EXPECT_FALSE(parse_config("[[volume]]\nmount = \"/data\"\n", "t").has_value());
}

TEST(DatavolConfig, UnknownKeyIsAnErrorNamingIt) {
  auto c = parse_config("[[volume]]\ndevice = \"xvdb\"\nmountpoint = \"/x\"\n", "t");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("mountpoint"), std::string::npos);
}

TEST(DatavolConfig, UnsupportedFilesystemIsAnError) {
  EXPECT_FALSE(
      parse_config("[[volume]]\ndevice = \"xvdb\"\nfilesystem = \"btrfs\"\n", "t").has_value());
}

TEST(DatavolConfig, LabelLongerThanXfsLimitIsAnError) {
  EXPECT_FALSE(
      parse_config("[[volume]]\ndevice = \"xvdb\"\nlabel = \"thirteenchars\"\n", "t").has_value());
  EXPECT_TRUE(parse_config("[[volume]]\ndevice = \"xvdb\"\nfilesystem = \"ext4\"\n"
                           "label = \"thirteenchars\"\n",
                           "t")
                  .has_value());
}

TEST(DatavolConfig, BadModeAndRootMountAreErrors) {
  EXPECT_FALSE(parse_config("[[volume]]\ndevice = \"xvdb\"\nmode = \"0999\"\n", "t").has_value());
  EXPECT_FALSE(parse_config("[[volume]]\ndevice = \"xvdb\"\nmount = \"/\"\n", "t").has_value());
  EXPECT_FALSE(parse_config("[[volume]]\ndevice = \"xvdb\"\nmount = \"data\"\n", "t").has_value());
}

TEST(DatavolConfig, SyntaxErrorNamesTheLine) {
  auto c = parse_config("[[volume]]\ndevice = \n", "x.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message.rfind("x.toml:2", 0), 0u) << c.error().message;
  EXPECT_EQ(c.error().code, 2);
}

TEST(DatavolConfig, RequiredUnitsAreAUnionWithServiceSuffix) {
  auto c = parse_config(
      "[[volume]]\ndevice = \"xvdb\"\nrequired_by = [\"docker\", \"x.mount\"]\n"
      "[[volume]]\ndevice = \"xvdc\"\nmount = \"/d2\"\nrequired_by = [\"docker\", \"ecs\"]\n",
      "t");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(required_units(*c),
            (std::vector<std::string>{"docker.service", "x.mount", "ecs.service"}));
}

TEST(DatavolConfig, EmptyConfigHasNoVolumes) {
  auto c = parse_config("", "t");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->volumes.empty());
}

}  // namespace
}  // namespace amibake::datavol

namespace amibake::datavol {
namespace {

TEST(DatavolConfig, RenderedConfigParsesBackToTheSameVolumes) {
  VolumeConfig a;
  a.device = "/dev/xvdb";
  a.mount = "/data";
  a.label = "data";
  a.mode = 0750;
  a.owner = "1000:1000";
  a.mkfs_options = {"-m", "bigtime=1"};
  a.required_by = {};
  VolumeConfig b;
  b.find_by = FindBy::kInstanceStore;
  b.instance_store = InstanceStoreMode::kEach;
  b.mount = "/scratch";
  b.filesystem = "ext4";
  b.grow = false;
  b.wait_seconds = 5;
  Config c;
  c.volumes = {a, b};
  std::string text = render_config(c);
  auto back = parse_config(text, "rendered");
  ASSERT_TRUE(back) << back.error().describe() << "\n" << text;
  ASSERT_EQ(back->volumes.size(), 2u);
  const auto& x = back->volumes[0];
  EXPECT_EQ(x.find_by, FindBy::kDevice);
  EXPECT_EQ(x.device, "/dev/xvdb");
  EXPECT_EQ(x.label, "data");
  EXPECT_EQ(x.mode, std::optional<mode_t>(0750));
  EXPECT_EQ(x.owner, "1000:1000");
  EXPECT_EQ(x.mkfs_options, (std::vector<std::string>{"-m", "bigtime=1"}));
  EXPECT_TRUE(x.required_by.empty());
  const auto& y = back->volumes[1];
  EXPECT_EQ(y.find_by, FindBy::kInstanceStore);
  EXPECT_EQ(y.instance_store, InstanceStoreMode::kEach);
  EXPECT_EQ(y.filesystem, "ext4");
  EXPECT_FALSE(y.grow);
  EXPECT_EQ(y.wait_seconds, 5);
  EXPECT_EQ(y.required_by, (std::vector<std::string>{"docker", "containerd", "ecs"}));
}

TEST(MountPoint, SystemDirectoriesAndUnnormalisedPathsAreRefused) {
  for (const char* bad :
       {"",          "data",    "/",         "/usr",         "/var",       "/etc",
        "/boot",     "/bin",    "/sbin",     "/lib",         "/lib64",     "/proc",
        "/sys",      "/dev",    "/run",      "/root",        "/usr/local", "/etc/data",
        "/boot/efi", "/proc/x", "/run/data", "/data/../etc", "/data/./x",  "//data",
        "/data//x",  "/data/"}) {
    EXPECT_FALSE(check_mount_point(bad)) << bad;
  }
  for (const char* good : {"/data", "/var/lib/docker", "/scratch/a", "/mnt/data", "/opt/x",
                           "/root/data", "/tmp", "/home/batch", "/data.d"}) {
    EXPECT_TRUE(check_mount_point(good)) << good;
  }
}

TEST(MountPoint, ConfigWithASystemMountPointIsRefusedWithTheRefusedCode) {
  auto c = parse_config("[[volume]]\ndevice = \"xvdb\"\nmount = \"/usr\"\n", "t");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, kExitRefused);
  EXPECT_NE(c.error().message.find("\"/usr\" is a system directory"), std::string::npos)
      << c.error().message;
}

}  // namespace
}  // namespace amibake::datavol
