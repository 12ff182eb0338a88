// The recipe checked against the image during install (issue 15): check_image on plain
// folder trees (openat2's RESOLVE_IN_ROOT works on any folder, no root needed), and
// install_payload on small real disk images (mkfs.ext4 -d, mounted through loop devices;
// needs root, skipped otherwise) to show a refusal comes before anything is written.
#include "bake/payload_install.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/config.h"
#include "image/root_mount.h"

namespace amibake::bake {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash\n";
constexpr const char* kGroup = "root:x:0:\ndocker:x:992:ec2-user\nec2-user:x:1000:\n";

// A scratch folder, removed with everything in it.
class Scratch {
 public:
  Scratch() {
    auto d = make_temp_dir("amibake-payload-test");
    EXPECT_TRUE(d);
    if (d) path_ = *d;
  }
  ~Scratch() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void put(const std::string& root, const std::string& rel, const std::string& content,
         mode_t mode = 0644) {
  fs::create_directories(fs::path(root + rel).parent_path());
  ASSERT_TRUE(write_file_atomic(root + rel, content, mode));
}

void link(const std::string& root, const std::string& rel, const std::string& target) {
  fs::create_directories(fs::path(root + rel).parent_path());
  fs::create_symlink(target, root + rel);
}

// Like the AL2023 ECS AMI, reduced: merged /usr, systemd, docker and containerd units (no
// ecs.service), accounts, mkfs.xfs only, a populated /opt/aws.
std::string make_systemd_tree(const std::string& dir) {
  std::string root = dir + "/root";
  link(root, "/bin", "usr/bin");
  link(root, "/sbin", "usr/sbin");
  fs::create_directories(root + "/usr/bin");
  fs::copy_file("/bin/bash", root + "/usr/bin/bash");
  fs::create_directories(root + "/usr/lib/systemd");
  fs::copy_file("/bin/true", root + "/usr/lib/systemd/systemd");
  link(root, "/usr/sbin/init", "../lib/systemd/systemd");
  put(root, "/etc/os-release", "ID=amzn\nVERSION_ID=2023\nPRETTY_NAME=\"Test Linux\"\n");
  put(root, "/usr/lib/systemd/system/docker.service", "[Service]\n");
  put(root, "/usr/lib/systemd/system/containerd.service", "[Service]\n");
  put(root, "/usr/lib/systemd/system/getty@.service", "[Service]\n");
  put(root, "/etc/passwd", kPasswd);
  put(root, "/etc/group", kGroup);
  put(root, "/usr/sbin/mkfs.xfs", "#!/bin/sh\n", 0755);
  put(root, "/opt/aws/bin/cfn-signal", "#!/bin/sh\n", 0755);
  put(root, "/etc/hostname", "localhost\n");
  fs::create_directories(root + "/srv");
  return root;
}

// Like AL1: SysV scripts in /etc/rc.d/init.d (+ /etc/init.d link), ecs as an upstart job.
std::string make_sysv_tree(const std::string& dir) {
  std::string root = dir + "/sysv";
  put(root, "/etc/rc.d/init.d/docker", "#!/bin/sh\n# chkconfig: 2345 95 20\n", 0755);
  link(root, "/etc/init.d", "rc.d/init.d");
  put(root, "/etc/init/ecs.conf", "start on started docker\n");
  put(root, "/sbin/mkfs.ext4", "#!/bin/sh\n", 0755);
  put(root, "/etc/passwd", kPasswd);
  put(root, "/etc/group", kGroup);
  return root;
}

PayloadVolume volume(const std::string& mount, const std::string& filesystem = "xfs") {
  PayloadVolume v;
  v.config.device = "/dev/xvdb";
  v.config.mount = mount;
  v.config.filesystem = filesystem;
  v.config.required_by = {};
  v.required_by_set = true;
  return v;
}

PayloadSpec spec_of(std::vector<PayloadVolume> volumes) {
  PayloadSpec s;
  s.volumes = std::move(volumes);
  return s;
}

std::string all_problems(const ImageCheck& c) {
  std::string out;
  for (const auto& p : c.problems) out += p + "\n";
  return out;
}

// ---- check_image on folder trees ----

TEST(CheckImage, AFittingRecipeHasNoProblems) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume v = volume("/data");
  v.config.owner = "ec2-user:docker";
  v.config.required_by = {"docker", "containerd.service", "getty@tty1.service"};
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  EXPECT_TRUE(c.problems.empty()) << all_problems(c);
  ASSERT_EQ(c.volumes.size(), 1u);
  EXPECT_EQ(c.volumes[0].required_by, v.config.required_by);
  EXPECT_TRUE(refuse_problems(c, "image x"));
}

TEST(CheckImage, UnknownUserIsRefusedNamingTheVolumeAndOwner) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume v = volume("/data");
  v.config.owner = "nosuchuser";
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_EQ(c.problems[0],
            "volume[0] (/data): owner 'nosuchuser': no such user in the image's /etc/passwd");
  ASSERT_FALSE(c.hints.empty());
}

TEST(CheckImage, UnknownGroupIsRefused) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume v = volume("/data");
  v.config.owner = "ec2-user:nosuchgroup";
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_EQ(c.problems[0],
            "volume[0] (/data): owner 'ec2-user:nosuchgroup': no such group in "
            "the image's /etc/group");
}

TEST(CheckImage, NumericOwnerNeedsNoAccountFiles) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  fs::remove(root + "/etc/passwd");
  fs::remove(root + "/etc/group");
  PayloadVolume v = volume("/data");
  v.config.owner = "4242:4242";
  EXPECT_TRUE(check_image(root, image::InitSystem::kSystemd, spec_of({v})).problems.empty());
  v.config.owner = "ec2-user";
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_NE(c.problems[0].find("the image has no readable /etc/passwd"), std::string::npos)
      << c.problems[0];
}

TEST(CheckImage, PasswdLinkedOutOfTheImageIsNotFollowed) {
  // /etc/passwd -> /<scratch>/host-passwd (absolute): inside the image that path does not
  // exist, so the host's file holding the user must not be read.
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  put(dir.path(), "/host-passwd", "builder:x:4000:4000::/:/bin/sh\n");
  fs::remove(root + "/etc/passwd");
  link(root, "/etc/passwd", dir.path() + "/host-passwd");
  PayloadVolume v = volume("/data");
  v.config.owner = "builder";
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_NE(c.problems[0].find("owner 'builder'"), std::string::npos) << c.problems[0];
}

TEST(CheckImage, RequiredUnitTheImageLacksIsRefusedWhenTheRecipeNamedIt) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume v = volume("/data");
  v.config.required_by = {"docker", "nosuch", "other.socket"};
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 2u) << all_problems(c);
  EXPECT_EQ(c.problems[0].rfind("volume[0] (/data): required_by 'nosuch': no such unit in the "
                                "image (looked in /etc/systemd/system, ",
                                0),
            0u)
      << c.problems[0];
  EXPECT_NE(c.problems[1].find("required_by 'other.socket'"), std::string::npos);
  EXPECT_TRUE(c.log.empty());
}

TEST(CheckImage, DefaultUnitsAreCutToTheImagesOwnAndTheDropIsLoggedOnce) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume a = volume("/data"), b = volume("/scratch");
  a.config.required_by = b.config.required_by = datavol::VolumeConfig().required_by;
  a.required_by_set = b.required_by_set = false;
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({a, b}));
  EXPECT_TRUE(c.problems.empty()) << all_problems(c);
  ASSERT_EQ(c.volumes.size(), 2u);
  EXPECT_EQ(c.volumes[0].required_by, (std::vector<std::string>{"docker", "containerd"}));
  EXPECT_EQ(c.volumes[1].required_by, (std::vector<std::string>{"docker", "containerd"}));
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0],
            "required_by: the image has no ecs: left out of datavol's default units for "
            "volume[0] (/data), volume[1] (/scratch)");
}

TEST(CheckImage, SysvUnitsAreInitScriptsOrUpstartJobs) {
  Scratch dir;
  std::string root = make_sysv_tree(dir.path());
  PayloadVolume v = volume("/data", "ext4");
  v.config.required_by = {"docker", "ecs.service", "containerd"};
  auto c = check_image(root, image::InitSystem::kSysV, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_NE(c.problems[0].find("required_by 'containerd': no such unit in the image (looked in "
                               "/etc/init.d, /etc/rc.d/init.d or /etc/init (upstart))"),
            std::string::npos)
      << c.problems[0];
}

TEST(CheckImage, PopulatedMountPointIsRefusedUnlessHideExisting) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume v = volume("/opt");
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({v}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_EQ(c.problems[0],
            "volume[0] (/opt): mount point '/opt': is a folder in the image with "
            "files in it (aws); the mount would hide them");
  ASSERT_EQ(c.hints.size(), 1u);
  EXPECT_NE(c.hints[0].find("hide_existing = true"), std::string::npos);
  v.hide_existing = true;
  EXPECT_TRUE(check_image(root, image::InitSystem::kSystemd, spec_of({v})).problems.empty());
}

TEST(CheckImage, EmptyOrAbsentMountPointIsFine) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  auto c = check_image(root, image::InitSystem::kSystemd,
                       spec_of({volume("/srv"), volume("/data"), volume("/mnt/deep/new")}));
  EXPECT_TRUE(c.problems.empty()) << all_problems(c);
}

TEST(CheckImage, MountPointThatIsNotAFolderIsRefusedEvenWithHideExisting) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume file = volume("/etc/hostname"), below = volume("/etc/hostname/x");
  file.hide_existing = below.hide_existing = true;
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({file, below}));
  ASSERT_EQ(c.problems.size(), 2u) << all_problems(c);
  EXPECT_EQ(c.problems[0],
            "volume[0] (/etc/hostname): mount point '/etc/hostname': exists in the image and is "
            "not a folder");
  EXPECT_EQ(c.problems[1],
            "volume[1] (/etc/hostname/x): mount point '/etc/hostname/x': a part "
            "of the path is not a folder");
}

TEST(CheckImage, MountPointLinkedOutOfTheImageIsJudgedInsideIt) {
  // /data -> <scratch>/host (absolute, populated on the host): inside the image it does not
  // exist, so nothing is hidden and the host folder is not listed.
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  put(dir.path(), "/host/file", "x");
  link(root, "/data", dir.path() + "/host");
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({volume("/data")}));
  EXPECT_TRUE(c.problems.empty()) << all_problems(c);
}

TEST(CheckImage, FilesystemWithoutTheImagesMkfsIsRefused) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  auto c = check_image(root, image::InitSystem::kSystemd,
                       spec_of({volume("/data", "xfs"), volume("/logs", "ext4")}));
  ASSERT_EQ(c.problems.size(), 1u) << all_problems(c);
  EXPECT_EQ(c.problems[0],
            "volume[1] (/logs): filesystem 'ext4': the image has no mkfs.ext4 in "
            "/usr/sbin, /sbin, /usr/bin or /bin (datavol runs the image's own)");
  EXPECT_NE(c.hints[0].find("e2fsprogs"), std::string::npos);
}

TEST(CheckImage, MkfsMustBeAnExecutableFile) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  fs::permissions(root + "/usr/sbin/mkfs.xfs", fs::perms::owner_read);
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({volume("/data")}));
  EXPECT_EQ(c.problems.size(), 1u) << all_problems(c);
}

TEST(RefuseProblems, ListsEveryProblemInOneErrorWithExitCode2) {
  Scratch dir;
  std::string root = make_systemd_tree(dir.path());
  PayloadVolume a = volume("/opt"), b = volume("/logs", "ext4");
  a.config.owner = "nosuchuser";
  b.config.required_by = {"nosuch"};
  auto c = check_image(root, image::InitSystem::kSystemd, spec_of({a, b}));
  auto s = refuse_problems(c, "image ami-0abc (al2023)");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, 2);
  EXPECT_EQ(s.error().message.rfind("image ami-0abc (al2023): 4 recipe values would fail at "
                                    "boot:\n  volume[0] (/opt): owner 'nosuchuser': ",
                                    0),
            0u)
      << s.error().message;
  for (const char* part :
       {"\n  volume[0] (/opt): mount point", "\n  volume[1] (/logs): required_by",
        "\n  volume[1] (/logs): filesystem 'ext4'"}) {
    EXPECT_NE(s.error().message.find(part), std::string::npos) << part;
  }
  // One hint per kind, joined.
  EXPECT_NE(s.error().hint.find("hide_existing"), std::string::npos) << s.error().hint;
  EXPECT_NE(s.error().hint.find("e2fsprogs"), std::string::npos) << s.error().hint;
}

// ---- install_payload on real disk images ----

class InstallChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/loop-control", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and loop devices";
    }
    if (!program_exists("mkfs.ext4")) GTEST_SKIP() << "needs mkfs.ext4";
    std::string tree = make_systemd_tree(dir_.path());
    disk_ = dir_.path() + "/disk.img";
    // A whole-disk ext4 filesystem (no partition table) filled from the tree.
    auto r = run_process({"mkfs.ext4", "-q", "-F", "-d", tree, disk_, "64M"});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->exit_code, 0) << r->err;
    binary_ = dir_.path() + "/datavol";
    ASSERT_TRUE(write_file_atomic(binary_, "#!/bin/sh\n# stand-in datavol\n", 0755));
  }
  PayloadSpec spec(std::vector<PayloadVolume> volumes) const {
    PayloadSpec s = spec_of(std::move(volumes));
    s.datavol_binary = binary_;
    s.image_name = "ami-0test (test-base)";
    return s;
  }
  // Runs `check` on the image's root mounted read-only.
  void with_root(const std::function<void(const std::string&)>& check) const {
    image::RootMountOptions o;
    o.read_only = true;
    auto root = image::mount_root(disk_, o);
    ASSERT_TRUE(root) << root.error().describe();
    check(root->path());
    ASSERT_TRUE(root->release());
  }
  void expect_nothing_written() const {
    with_root([](const std::string& root) {
      EXPECT_FALSE(fs::exists(root + "/usr/local/sbin/datavol"));
      EXPECT_FALSE(fs::exists(root + "/etc/datavol"));
      EXPECT_FALSE(fs::exists(root + "/etc/systemd/system/datavol.service"));
    });
  }
  Scratch dir_;
  std::string disk_, binary_;
};

TEST_F(InstallChecks, UnknownOwnerIsRefusedWithExitCode2BeforeAnyWrite) {
  PayloadVolume v = volume("/data");
  v.config.owner = "nosuchuser";
  auto r = install_payload(disk_, spec({v}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 2);
  EXPECT_EQ(r.error().message,
            "image ami-0test (test-base): volume[0] (/data): owner "
            "'nosuchuser': no such user in the image's /etc/passwd");
  EXPECT_FALSE(r.error().hint.empty());
  expect_nothing_written();
}

TEST_F(InstallChecks, UnknownRequiredUnitIsRefusedBeforeAnyWrite) {
  PayloadVolume v = volume("/data");
  v.config.required_by = {"docker", "ecs"};
  auto r = install_payload(disk_, spec({v}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 2);
  EXPECT_NE(r.error().message.find("volume[0] (/data): required_by 'ecs': no such unit"),
            std::string::npos)
      << r.error().message;
  expect_nothing_written();
}

TEST_F(InstallChecks, PopulatedMountPointIsRefusedAndHideExistingInstalls) {
  PayloadVolume v = volume("/opt/aws");
  auto r = install_payload(disk_, spec({v}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 2);
  EXPECT_NE(r.error().message.find("mount point '/opt/aws': is a folder in the image with files "
                                   "in it (bin)"),
            std::string::npos)
      << r.error().message;
  expect_nothing_written();
  v.hide_existing = true;
  auto ok = install_payload(disk_, spec({v}));
  ASSERT_TRUE(ok) << ok.error().describe();
  with_root([](const std::string& root) {
    EXPECT_TRUE(fs::exists(root + "/usr/local/sbin/datavol"));
    EXPECT_TRUE(fs::exists(root + "/opt/aws/bin/cfn-signal")) << "the image's files are kept";
  });
}

TEST_F(InstallChecks, MissingMkfsIsRefusedBeforeAnyWrite) {
  auto r = install_payload(disk_, spec({volume("/data", "ext4")}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 2);
  EXPECT_NE(r.error().message.find("filesystem 'ext4': the image has no mkfs.ext4"),
            std::string::npos)
      << r.error().message;
  expect_nothing_written();
}

TEST_F(InstallChecks, EveryProblemIsReportedAtOnce) {
  PayloadVolume a = volume("/opt"), b = volume("/logs", "ext4");
  a.config.owner = "ec2-user:nosuchgroup";
  b.config.required_by = {"nosuch"};
  auto r = install_payload(disk_, spec({a, b}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 2);
  EXPECT_NE(r.error().message.find("4 recipe values would fail at boot:"), std::string::npos)
      << r.error().message;
  expect_nothing_written();
}

TEST_F(InstallChecks, DefaultUnitsTheImageLacksAreLeftOutOfConfigAndDropIns) {
  PayloadVolume v = volume("/data");
  v.config.required_by = datavol::VolumeConfig().required_by;  // docker, containerd, ecs
  v.required_by_set = false;
  auto r = install_payload(disk_, spec({v}));
  ASSERT_TRUE(r) << r.error().describe();
  bool logged = false;
  for (const auto& line : r->log) {
    logged = logged || line ==
                           "required_by: the image has no ecs: left out of datavol's default "
                           "units for volume[0] (/data)";
  }
  EXPECT_TRUE(logged) << ::testing::PrintToString(r->log);
  with_root([](const std::string& root) {
    auto cfg = read_file(root + "/etc/datavol/datavol.toml");
    ASSERT_TRUE(cfg);
    auto parsed = datavol::parse_config(*cfg, "datavol.toml");
    ASSERT_TRUE(parsed) << parsed.error().describe();
    ASSERT_EQ(parsed->volumes.size(), 1u);
    EXPECT_EQ(parsed->volumes[0].required_by, (std::vector<std::string>{"docker", "containerd"}));
    EXPECT_TRUE(fs::exists(root + "/etc/systemd/system/docker.service.d/50-datavol.conf"));
    EXPECT_TRUE(fs::exists(root + "/etc/systemd/system/containerd.service.d/50-datavol.conf"));
    // (datavol.service itself stays Before=ecs.service: ordering on an absent unit is a
    // no-op, and datavol always orders itself before the three.)
    EXPECT_FALSE(fs::exists(root + "/etc/systemd/system/ecs.service.d"));
  });
}

// Issue 13: each datavol this amibake carries is a static ELF of its own architecture
// (the blob behind a name is the right binary), and architectures amibake does not bake
// are refused with the reason.
TEST(EmbeddedDatavol, EachCarriedBinaryIsAStaticElfOfItsArchitecture) {
  auto archs = embedded_datavol_architectures();
  ASSERT_FALSE(archs.empty());
  const std::map<std::string, int> machine = {{"x86_64", 62}, {"arm64", 183}};
  for (const auto& a : archs) {
    SCOPED_TRACE(a);
    ASSERT_TRUE(machine.count(a));
    auto bin = embedded_datavol(a);
    ASSERT_TRUE(bin) << bin.error().describe();
    ASSERT_GT(bin->size(), 64u);
    const auto* h = reinterpret_cast<const unsigned char*>(bin->data());
    ASSERT_EQ(bin->compare(0, 4, "\x7f" "ELF"), 0);
    ASSERT_EQ(h[4], 2) << "ELF64";
    ASSERT_EQ(h[5], 1) << "little endian";
    EXPECT_EQ(h[18] | (h[19] << 8), machine.at(a));
    EXPECT_EQ(h[16] | (h[17] << 8), 2) << "ET_EXEC: a static, non-PIE executable";
    uint64_t phoff = 0;
    for (int i = 7; i >= 0; --i) phoff = (phoff << 8) | h[32 + i];
    int phentsize = h[54] | (h[55] << 8), phnum = h[56] | (h[57] << 8);
    ASSERT_LE(phoff + static_cast<uint64_t>(phentsize) * phnum, bin->size());
    for (int i = 0; i < phnum; ++i) {
      const unsigned char* p = h + phoff + static_cast<uint64_t>(i) * phentsize;
      EXPECT_NE(p[0] | (p[1] << 8) | (p[2] << 16) | (p[3] << 24), 3) << "PT_INTERP: dynamic";
    }
  }
}

TEST(EmbeddedDatavol, ArchitecturesAmibakeDoesNotBakeAreRefusedSayingWhy) {
  for (const std::string arch : {"i386", "x86_64_mac", "arm64_mac", "power"}) {
    auto s = check_datavol_architecture(arch);
    ASSERT_FALSE(s) << arch;
    EXPECT_EQ(s.error().code, 2);
    EXPECT_NE(s.error().message.find("'" + arch + "' is not supported"), std::string::npos)
        << s.error().message;
    EXPECT_NE(s.error().hint.find("al2023-arm64"), std::string::npos) << s.error().hint;
    EXPECT_EQ(s.error().message.find("macOS") != std::string::npos,
              arch.find("_mac") != std::string::npos)
        << s.error().message;
    EXPECT_FALSE(embedded_datavol(arch)) << arch;
  }
  auto carried = embedded_datavol_architectures();
  for (const auto& a : carried) EXPECT_TRUE(check_datavol_architecture(a)) << a;
  // Built without the cross toolchain (AMIBAKE_DATAVOL_ARM64=OFF or AUTO without it): an
  // arm64 base is refused with how to get arm64 support.
  if (std::find(carried.begin(), carried.end(), "arm64") == carried.end()) {
    auto s = check_datavol_architecture("arm64");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, 2);
    EXPECT_NE(s.error().message.find("without the aarch64 cross toolchain"), std::string::npos)
        << s.error().message;
    EXPECT_NE(s.error().hint.find("scripts/deps"), std::string::npos) << s.error().hint;
  }
}

}  // namespace
}  // namespace amibake::bake
