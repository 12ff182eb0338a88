// Detection and safe file placement on plain folder trees (no mount needed: openat2's
// RESOLVE_IN_ROOT works on any folder).
#include "image/payload.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;
using testing::slurp;

void put(const std::string& root, const std::string& rel, const std::string& content) {
  fs::create_directories(fs::path(root + rel).parent_path());
  ASSERT_TRUE(write_file_atomic(root + rel, content, 0755));
}

void link(const std::string& root, const std::string& rel, const std::string& target) {
  fs::create_directories(fs::path(root + rel).parent_path());
  fs::create_symlink(target, root + rel);
}

// A minimal ELF header with the given e_machine (little endian, 64-bit).
std::string elf_header(int machine) {
  std::string h(64, '\0');
  h.replace(0, 4,
            "\x7f"
            "ELF");
  h[4] = 2;  // ELFCLASS64
  h[5] = 1;  // little endian
  h[6] = 1;
  h[18] = static_cast<char>(machine & 0xFF);
  h[19] = static_cast<char>(machine >> 8);
  return h;
}

int host_machine() {
#if defined(__x86_64__)
  return 62;
#elif defined(__aarch64__)
  return 183;
#else
  return -1;
#endif
}

// Like AL2023: merged /usr, /sbin/init → ../usr/lib/systemd/systemd, the real host bash.
std::string make_systemd_root(const ScratchDir& dir) {
  std::string root = dir.file("root");
  put(root, "/usr/lib/systemd/systemd", elf_header(host_machine()));
  fs::create_directories(root + "/usr/bin");
  fs::copy_file("/bin/bash", root + "/usr/bin/bash");
  link(root, "/bin", "usr/bin");
  link(root, "/sbin", "usr/sbin");
  link(root, "/usr/sbin/init", "../lib/systemd/systemd");
  put(root, "/etc/os-release",
      "NAME=\"Amazon Linux\"\nVERSION_ID=\"2023\"\nID=\"amzn\"\n"
      "PRETTY_NAME=\"Amazon Linux 2023.6.20241121\"\n");
  return root;
}

TEST(Detect, SystemdImageWithMergedUsr) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  auto info = detect_image(root);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->init, InitSystem::kSystemd) << info->init_reason;
  EXPECT_EQ(info->elf_machine, host_machine());
  EXPECT_EQ(info->arch_source, "/usr/bin/bash");
  EXPECT_EQ(info->os_id, "amzn");
  EXPECT_EQ(info->os_version_id, "2023");
  EXPECT_EQ(info->os_pretty_name, "Amazon Linux 2023.6.20241121");
  EXPECT_FALSE(info->selinux.config_present);
}

TEST(Detect, AbsoluteInitSymlinkResolvesInsideTheImage) {
  // /sbin/init → /usr/lib/systemd/systemd, absolute: must mean the image's file. The image
  // has no systemd, so even if the host has one, this is not a systemd image.
  ScratchDir dir;
  std::string root = dir.file("root");
  link(root, "/sbin/init", "/usr/lib/systemd/systemd");
  fs::create_directories(root + "/etc/init.d");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->init, InitSystem::kUnknown);
  EXPECT_NE(info->init_reason.find("neither /sbin/init nor a systemd binary"), std::string::npos)
      << info->init_reason;
}

TEST(Detect, SysvImageWithRealInitBinary) {
  ScratchDir dir;
  std::string root = dir.file("root");
  fs::create_directories(root + "/sbin");
  fs::copy_file("/bin/true", root + "/sbin/init");
  fs::create_directories(root + "/etc/rc.d/init.d");
  link(root, "/etc/init.d", "rc.d/init.d");
  fs::create_directories(root + "/bin");
  fs::copy_file("/bin/bash", root + "/bin/bash");
  put(root, "/etc/system-release", "Amazon Linux AMI release 2018.03\n");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->init, InitSystem::kSysV) << info->init_reason;
  EXPECT_EQ(info->arch_source, "/bin/bash");
  EXPECT_EQ(info->elf_machine, host_machine());
  EXPECT_EQ(info->os_pretty_name, "Amazon Linux AMI release 2018.03");
}

TEST(Detect, SystemdInstalledButNotInitIsUnknown) {
  ScratchDir dir;
  std::string root = dir.file("root");
  put(root, "/usr/lib/systemd/systemd", elf_header(62));
  put(root, "/sbin/init", elf_header(62));
  fs::create_directories(root + "/etc/init.d");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->init, InitSystem::kUnknown);
}

TEST(Detect, SystemdWithoutSbinInitIsSystemd) {
  ScratchDir dir;
  std::string root = dir.file("root");
  put(root, "/lib/systemd/systemd", elf_header(62));
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->init, InitSystem::kSystemd);
}

TEST(Detect, Arm64FromTheElfHeader) {
  ScratchDir dir;
  std::string root = dir.file("root");
  put(root, "/usr/bin/bash", elf_header(183));
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->arch, Arch::kArm64);
  EXPECT_STREQ(arch_name(info->arch), "arm64");
}

TEST(Detect, BigEndianElfIsReadInItsOwnByteOrder) {
  ScratchDir dir;
  std::string root = dir.file("root");
  std::string h = elf_header(0);
  h[5] = 2;  // big endian
  h[18] = 0;
  h[19] = 22;  // EM_S390
  put(root, "/bin/sh", h);
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->elf_machine, 22);
  EXPECT_EQ(info->arch, Arch::kUnknown);
}

TEST(Detect, NoShellMeansUnknownArchitecture) {
  ScratchDir dir;
  std::string root = dir.file("root");
  put(root, "/usr/bin/bash", "#!/not/elf\n");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->arch, Arch::kUnknown);
  EXPECT_EQ(info->elf_machine, 0);
}

TEST(Detect, SelinuxConfigAndFileContexts) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  put(root, "/etc/selinux/config", "# comment\nSELINUX=Permissive\nSELINUXTYPE=targeted\n");
  put(root, "/etc/selinux/targeted/contexts/files/file_contexts",
      "/.* system_u:object_r:default_t:s0\n");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->selinux.config_present);
  EXPECT_EQ(info->selinux.mode, "permissive");
  EXPECT_EQ(info->selinux.policy_type, "targeted");
  EXPECT_EQ(info->selinux.file_contexts_path, "/etc/selinux/targeted/contexts/files/file_contexts");
  EXPECT_TRUE(info->selinux.file_contexts_present);
  EXPECT_TRUE(info->selinux.labels_needed());
}

TEST(Detect, SelinuxDisabledNeedsNoLabels) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  put(root, "/etc/selinux/config", "SELINUX=disabled\nSELINUXTYPE=targeted\n");
  auto info = detect_image(root);
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->selinux.file_contexts_present);
  EXPECT_FALSE(info->selinux.labels_needed());
}

TEST(InstallFile, WritesContentModeAndCreatesParents) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  ASSERT_TRUE(install_file(root, "/usr/local/bin/datavol", "BINARY", 0755));
  EXPECT_EQ(slurp(root + "/usr/local/bin/datavol"), "BINARY");
  struct stat st {};
  ASSERT_EQ(::stat((root + "/usr/local/bin/datavol").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_TRUE(install_file(root, "/usr/local/bin/datavol", "NEW", 0700));
  EXPECT_EQ(slurp(root + "/usr/local/bin/datavol"), "NEW");
  for (const auto& e : fs::directory_iterator(root + "/usr/local/bin"))
    EXPECT_EQ(e.path().filename(), "datavol") << "no temporary left behind";
}

TEST(InstallFile, FollowsInImageSymlinksInsideTheImage) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  // /sbin → usr/sbin inside the image.
  ASSERT_TRUE(install_file(root, "/sbin/datavol", "X", 0755));
  EXPECT_EQ(slurp(root + "/usr/sbin/datavol"), "X");
}

TEST(InstallFile, AbsoluteSymlinkToTheHostStaysInTheImage) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  std::string outside = dir.file("outside");
  fs::create_directories(outside);
  link(root, "/etc/systemd/system", outside);  // absolute host path
  Status s = install_file(root, "/etc/systemd/system/datavol.service", "[Unit]\n", 0644);
  EXPECT_TRUE(fs::is_empty(outside)) << "a write escaped the image";
  if (s) {  // resolved as <root><outside>/… inside the image: acceptable
    EXPECT_TRUE(fs::exists(root + outside + "/datavol.service"));
  }
}

TEST(InstallFile, DotDotSymlinkCannotClimbOutOfTheImage) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  std::string outside = dir.file("outside");
  fs::create_directories(outside);
  link(root, "/etc/escape", "../../../../../../../../" + outside.substr(1));
  Status s = install_file(root, "/etc/escape/owned", "X", 0644);
  EXPECT_TRUE(fs::is_empty(outside)) << "a write escaped the image";
}

TEST(InstallFile, SymlinkAtTheTargetIsReplacedNotFollowed) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  std::string victim = dir.file("victim");
  ASSERT_TRUE(write_file_atomic(victim, "HOST", 0644));
  link(root, "/etc/datavol.toml", victim);
  ASSERT_TRUE(install_file(root, "/etc/datavol.toml", "IMAGE", 0644));
  EXPECT_EQ(slurp(victim), "HOST");
  EXPECT_FALSE(fs::is_symlink(root + "/etc/datavol.toml"));
  EXPECT_EQ(slurp(root + "/etc/datavol.toml"), "IMAGE");
}

TEST(InstallFile, DotDotInThePathIsRefused) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  Status s = install_file(root, "/etc/../../x", "X", 0644);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("\"..\" is not allowed"), std::string::npos);
  EXPECT_FALSE(install_file(root, "relative/x", "X", 0644));
}

TEST(InstallSymlink, CreatesAndReplacesLinks) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  const std::string link_path = "/etc/systemd/system/multi-user.target.wants/datavol.service";
  ASSERT_TRUE(install_symlink(root, link_path, "/etc/systemd/system/datavol.service"));
  EXPECT_EQ(fs::read_symlink(root + link_path), "/etc/systemd/system/datavol.service");
  ASSERT_TRUE(install_symlink(root, link_path, "/usr/lib/systemd/system/datavol.service"));
  EXPECT_EQ(fs::read_symlink(root + link_path), "/usr/lib/systemd/system/datavol.service");
}

TEST(MakeDirsInRoot, CreatesNestedFolders) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  ASSERT_TRUE(make_dirs_in_root(root, "/etc/systemd/system/docker.service.d", 0755));
  EXPECT_TRUE(fs::is_directory(root + "/etc/systemd/system/docker.service.d"));
}

TEST(ReadFileInRoot, ReadsThroughInImageLinksOnly) {
  ScratchDir dir;
  std::string root = make_systemd_root(dir);
  std::string victim = dir.file("secret");
  ASSERT_TRUE(write_file_atomic(victim, "HOST SECRET", 0600));
  link(root, "/etc/leak", victim);
  EXPECT_FALSE(read_file_in_root(root, "/etc/leak"));
  auto release = read_file_in_root(root, "/etc/os-release", 10);
  ASSERT_TRUE(release);
  EXPECT_EQ(release->size(), 10u);
}

}  // namespace
}  // namespace amibake::image
