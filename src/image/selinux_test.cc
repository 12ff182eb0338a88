#include "image/selinux.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "image/payload.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

using testing::ScratchDir;

FileContexts parse_ok(const std::string& text) {
  auto fc = FileContexts::parse(text, "fc");
  EXPECT_TRUE(fc) << fc.error().message;
  return fc ? std::move(*fc) : FileContexts();
}

TEST(FileContexts, LastMatchingRuleWins) {
  FileContexts fc = parse_ok(
      "/.*\tsystem_u:object_r:default_t:s0\n"
      "/etc(/.*)?\tsystem_u:object_r:etc_t:s0\n"
      "/etc/systemd/system(/.*)?\tsystem_u:object_r:systemd_unit_file_t:s0\n");
  EXPECT_EQ(fc.size(), 3u);
  EXPECT_EQ(fc.lookup("/etc/systemd/system/datavol.service", S_IFREG),
            "system_u:object_r:systemd_unit_file_t:s0");
  EXPECT_EQ(fc.lookup("/etc/datavol.toml", S_IFREG), "system_u:object_r:etc_t:s0");
  EXPECT_EQ(fc.lookup("/opt/x", S_IFREG), "system_u:object_r:default_t:s0");
}

TEST(FileContexts, RegexIsAnchoredAtBothEnds) {
  FileContexts fc = parse_ok("/usr/bin/.*\tbin_t\n");
  EXPECT_EQ(fc.lookup("/usr/bin/bash", S_IFREG), "bin_t");
  EXPECT_EQ(fc.lookup("/x/usr/bin/bash", S_IFREG), "");
}

TEST(FileContexts, ExactPathBeatsALaterRegex) {
  FileContexts fc = parse_ok(
      "/usr/local/bin/datavol\tsystem_u:object_r:datavol_exec_t:s0\n"
      "/usr/local/bin(/.*)?\tsystem_u:object_r:bin_t:s0\n");
  EXPECT_EQ(fc.lookup("/usr/local/bin/datavol", S_IFREG), "system_u:object_r:datavol_exec_t:s0");
  EXPECT_EQ(fc.lookup("/usr/local/bin/other", S_IFREG), "system_u:object_r:bin_t:s0");
}

TEST(FileContexts, FileTypeLimitsARule) {
  FileContexts fc = parse_ok(
      "/data(/.*)?\t-d\tdir_t\n"
      "/data(/.*)?\t--\tfile_t\n"
      "/data(/.*)?\t-l\tlink_t\n");
  EXPECT_EQ(fc.lookup("/data/sub", S_IFDIR | 0755), "dir_t");
  EXPECT_EQ(fc.lookup("/data/sub", S_IFREG | 0644), "file_t");
  EXPECT_EQ(fc.lookup("/data/sub", S_IFLNK | 0777), "link_t");
  EXPECT_EQ(fc.lookup("/data/sub", S_IFIFO), "");
}

TEST(FileContexts, NoneMeansUnlabelled) {
  FileContexts fc = parse_ok("/.*\tdefault_t\n/proc(/.*)?\t<<none>>\n");
  EXPECT_EQ(fc.lookup("/proc/1", S_IFREG), "");
  EXPECT_EQ(fc.lookup("/etc", S_IFDIR), "default_t");
}

TEST(FileContexts, CommentsAndBlankLinesAreSkipped) {
  FileContexts fc = parse_ok("# comment\n\n   \n/a\tx_t\n");
  EXPECT_EQ(fc.size(), 1u);
}

TEST(FileContexts, BadLinesAreErrorsNamingTheLine) {
  auto bad_regex = FileContexts::parse("/a\tx_t\n/b(\ty_t\n", "fc");
  ASSERT_FALSE(bad_regex);
  EXPECT_NE(bad_regex.error().message.find("fc:2: bad regex"), std::string::npos)
      << bad_regex.error().message;
  auto bad_type = FileContexts::parse("/a\t-q\tx_t\n", "fc");
  ASSERT_FALSE(bad_type);
  EXPECT_NE(bad_type.error().message.find("fc:1: unknown file type \"-q\""), std::string::npos);
  auto bad_fields = FileContexts::parse("/a\n", "fc");
  ASSERT_FALSE(bad_fields);
}

TEST(FileContexts, LoadsThePolicyAndLocalAdditionsFromTheImage) {
  ScratchDir dir;
  std::string root = dir.file("root");
  const std::string files = root + "/etc/selinux/targeted/contexts/files";
  std::filesystem::create_directories(files);
  ASSERT_TRUE(write_file_atomic(files + "/file_contexts", "/etc(/.*)?\tetc_t\n"));
  ASSERT_TRUE(
      write_file_atomic(files + "/file_contexts.local", "/etc/datavol\\.toml\tdatavol_conf_t\n"));
  auto fc = load_file_contexts(root, "targeted");
  ASSERT_TRUE(fc) << fc.error().message;
  EXPECT_EQ(fc->lookup("/etc/datavol.toml", S_IFREG), "datavol_conf_t");
  EXPECT_EQ(fc->lookup("/etc/fstab", S_IFREG), "etc_t");
  EXPECT_FALSE(load_file_contexts(root, "../../x"));
  EXPECT_FALSE(load_file_contexts(root, "mls"));
}

// Skips when this host's filesystem or LSM will not store a raw security.selinux attribute.
TEST(SelinuxLabel, SetAndGetOnFilesAndSymlinksItself) {
  if (::geteuid() != 0) GTEST_SKIP() << "writing security.* attributes needs root";
  ScratchDir dir;
  std::string root = dir.file("root");
  std::filesystem::create_directories(root);
  ASSERT_TRUE(install_file(root, "/usr/local/bin/datavol", "B", 0755));
  ASSERT_TRUE(install_symlink(root, "/etc/link", "/usr/local/bin/datavol"));
  Status s = set_selinux_label(root, "/usr/local/bin/datavol", "system_u:object_r:bin_t:s0");
  if (!s && s.error().message.find("not supported") != std::string::npos)
    GTEST_SKIP() << s.error().message;
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_TRUE(set_selinux_label(root, "/etc/link", "system_u:object_r:etc_t:s0"));
  EXPECT_EQ(*get_selinux_label(root, "/usr/local/bin/datavol"), "system_u:object_r:bin_t:s0");
  EXPECT_EQ(*get_selinux_label(root, "/etc/link"), "system_u:object_r:etc_t:s0");
  EXPECT_EQ(*get_selinux_label(root, "/usr/local/bin"), "");
}

}  // namespace
}  // namespace amibake::image
