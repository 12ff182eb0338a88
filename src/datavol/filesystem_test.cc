// mkfs arguments, superblock sizes, fstab editing, owner lookup and the status file.
#include "datavol/filesystem.h"

#include <gtest/gtest.h>

#include <fstream>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/status.h"

namespace amibake::datavol {
namespace {

TEST(DatavolMkfs, XfsArgumentsHaveNoDiscardAndNoForce) {
  VolumeConfig v;
  v.label = "data";
  EXPECT_EQ(mkfs_argv(v, "/dev/nvme1n1"),
            (std::vector<std::string>{"mkfs.xfs", "-q", "-K", "-L", "data", "/dev/nvme1n1"}));
}

TEST(DatavolMkfs, Ext4ArgumentsAreLazyWithoutDiscardAndKeepUserOptions) {
  VolumeConfig v;
  v.filesystem = "ext4";
  v.mount = "/scratch";
  v.mkfs_options = {"-m", "0"};
  EXPECT_EQ(mkfs_argv(v, "/dev/xvdb"),
            (std::vector<std::string>{"mkfs.ext4", "-q", "-E",
                                      "nodiscard,lazy_itable_init=1,lazy_journal_init=1", "-L",
                                      "scratch", "-m", "0", "/dev/xvdb"}));
}

// Makes a filesystem image in a regular file with the real tool and reads its size back.
uint64_t size_of_image(const std::vector<std::string>& mkfs, const std::string& fstype) {
  auto dir = make_temp_dir("datavol-sb");
  std::string img = *dir + "/img";
  EXPECT_TRUE(run_checked({"truncate", "-s", "400M", img}).has_value());
  std::vector<std::string> argv = mkfs;
  argv.push_back(img);
  auto made = run_checked(argv);
  EXPECT_TRUE(made.has_value()) << (made ? "" : made.error().message);
  std::string first(4096, '\0');
  std::ifstream in(img, std::ios::binary);
  in.read(first.data(), 4096);
  (void)!system(("rm -rf '" + *dir + "'").c_str());
  auto size = filesystem_size(first, fstype);
  EXPECT_TRUE(size.has_value());
  return size.value_or(0);
}

TEST(DatavolSuperblock, XfsSizeFromARealSuperblock) {
  if (!program_exists("mkfs.xfs")) GTEST_SKIP() << "mkfs.xfs not installed";
  EXPECT_EQ(size_of_image({"mkfs.xfs", "-q", "-f", "-d", "size=350m"}, "xfs"), 350ull << 20);
}

TEST(DatavolSuperblock, Ext4SizeFromARealSuperblock) {
  if (!program_exists("mkfs.ext4")) GTEST_SKIP() << "mkfs.ext4 not installed";
  EXPECT_EQ(size_of_image({"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "64bit"}, "ext4"),
            400ull << 20);
}

TEST(DatavolSuperblock, WrongMagicIsAnError) {
  EXPECT_FALSE(filesystem_size(std::string(4096, '\0'), "xfs").has_value());
  EXPECT_FALSE(filesystem_size(std::string(4096, '\0'), "ext4").has_value());
  EXPECT_FALSE(filesystem_size(std::string(4096, '\0'), "btrfs").has_value());
}

TEST(DatavolSuperblock, XfsInfoOutputGivesTheDataSize) {
  const char* out =
      "meta-data=/dev/loop0             isize=512    agcount=4, agsize=25600 blks\n"
      "         =                       sectsz=512   attr=2, projid32bit=1\n"
      "data     =                       bsize=4096   blocks=102400, imaxpct=25\n"
      "         =                       sunit=0      swidth=0 blks\n"
      "log      =internal log           bsize=4096   blocks=16384, version=2\n";
  EXPECT_EQ(*parse_xfs_info_size(out), 102400ull * 4096);
  EXPECT_FALSE(parse_xfs_info_size("nonsense\n").has_value());
}

TEST(DatavolGrow, SmallTailsDoNotCountAsGrowth) {
  EXPECT_FALSE(needs_grow(100ull << 30, (100ull << 30) - (1 << 20)));
  EXPECT_TRUE(needs_grow(200ull << 30, 100ull << 30));
}

TEST(DatavolFstab, LineIsByUuidWithNofailAndDeviceTimeout) {
  EXPECT_EQ(fstab_line("1234-abcd", "/data", "xfs", "defaults,noatime"),
            "UUID=1234-abcd /data xfs defaults,noatime,nofail,x-systemd.device-timeout=60s 0 2");
  EXPECT_EQ(fstab_line("u", "/my data", "ext4", "nofail"),
            "UUID=u /my\\040data ext4 nofail,x-systemd.device-timeout=60s 0 2");
}

const char* kHostFstab =
    "# /etc/fstab\n"
    "UUID=root / xfs defaults,noatime 1 1\n"
    "tmpfs /tmp tmpfs defaults 0 0\n";

TEST(DatavolFstab, AddsMarkedEntryKeepingOtherLines) {
  std::string out;
  EXPECT_EQ(update_fstab_text(kHostFstab, "/data", "UUID=a /data xfs x 0 2", &out),
            FstabChange::kAdded);
  EXPECT_EQ(out, std::string(kHostFstab) + "# datavol: /data\nUUID=a /data xfs x 0 2\n");
}

TEST(DatavolFstab, SecondRunIsUnchangedAndNeverDuplicates) {
  std::string once, twice;
  update_fstab_text(kHostFstab, "/data", "UUID=a /data xfs x 0 2", &once);
  EXPECT_EQ(update_fstab_text(once, "/data", "UUID=a /data xfs x 0 2", &twice),
            FstabChange::kUnchanged);
  EXPECT_EQ(once, twice);
}

TEST(DatavolFstab, NewUuidReplacesOnlyDatavolsLine) {
  std::string once, twice;
  update_fstab_text(kHostFstab, "/data", "UUID=a /data xfs x 0 2", &once);
  once += "UUID=other /other ext4 defaults 0 2\n";
  EXPECT_EQ(update_fstab_text(once, "/data", "UUID=b /data xfs x 0 2", &twice),
            FstabChange::kReplaced);
  EXPECT_EQ(twice,
            std::string(kHostFstab) +
                "# datavol: /data\nUUID=b /data xfs x 0 2\nUUID=other /other ext4 defaults 0 2\n");
}

TEST(DatavolFstab, ForeignEntryForTheMountPointIsLeftAlone) {
  std::string text = std::string(kHostFstab) + "/dev/xvdb /data ext4 defaults 0 2\n", out;
  EXPECT_EQ(update_fstab_text(text, "/data", "UUID=a /data xfs x 0 2", &out),
            FstabChange::kForeignEntry);
  EXPECT_EQ(out, text);
}

TEST(DatavolFstab, FileIsRewrittenAtomicallyWithItsMode) {
  auto dir = make_temp_dir("datavol-fstab");
  std::string path = *dir + "/fstab";
  ASSERT_TRUE(write_file_atomic(path, kHostFstab, 0640));
  auto c = update_fstab(path, "/data", "UUID=a /data xfs x 0 2");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c, FstabChange::kAdded);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(*update_fstab(path, "/data", "UUID=a /data xfs x 0 2"), FstabChange::kUnchanged);
  (void)!system(("rm -rf '" + *dir + "'").c_str());
}

TEST(DatavolOwner, ResolvesNamesThroughFilesNotNss) {
  auto dir = make_temp_dir("datavol-owner");
  ASSERT_TRUE(write_file_atomic(
      *dir + "/passwd",
      "root:x:0:0::/root:/bin/sh\nec2-user:x:1000:1001::/home/ec2-user:/bin/bash\n"));
  ASSERT_TRUE(write_file_atomic(*dir + "/group", "root:x:0:\ndocker:x:994:ec2-user\n"));
  auto p = *dir + "/passwd", g = *dir + "/group";
  EXPECT_EQ(*resolve_owner("ec2-user:docker", p, g), std::make_pair(uid_t(1000), gid_t(994)));
  EXPECT_EQ(*resolve_owner("ec2-user", p, g), std::make_pair(uid_t(1000), gid_t(1001)));
  EXPECT_EQ(*resolve_owner("5:6", p, g), std::make_pair(uid_t(5), gid_t(6)));
  EXPECT_FALSE(resolve_owner("nobody-here", p, g).has_value());
  (void)!system(("rm -rf '" + *dir + "'").c_str());
}

TEST(DatavolOwner, ResolvesFromFileTextAndNamesTheOriginWhenMissing) {
  const std::string passwd =
      "root:x:0:0::/root:/bin/sh\nec2-user:x:1000:1001::/home/ec2-user:/bin/bash\n";
  const std::string group = "root:x:0:\ndocker:x:994:ec2-user\n";
  auto owner = [&](const std::string& o) {
    return resolve_owner_text(o, passwd, group, "img's /etc/passwd", "img's /etc/group");
  };
  EXPECT_EQ(*owner("ec2-user:docker"), std::make_pair(uid_t(1000), gid_t(994)));
  EXPECT_EQ(*owner("ec2-user"), std::make_pair(uid_t(1000), gid_t(1001)));
  EXPECT_EQ(*owner("5:6"), std::make_pair(uid_t(5), gid_t(6)));
  EXPECT_EQ(*owner("7"), std::make_pair(uid_t(7), gid_t(7)));
  auto user = owner("nobody-here");
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error().message, "no such user in img's /etc/passwd");
  auto grp = owner("ec2-user:wheel");
  ASSERT_FALSE(grp);
  EXPECT_EQ(grp.error().message, "no such group in img's /etc/group");
}

TEST(DatavolStatus, JsonHasEveryField) {
  VolumeReport r;
  r.volume = "device xvdb";
  r.mount = "/data";
  r.device = "/dev/nvme1n1";
  r.how = "NVMe nvme1";
  r.filesystem = "xfs";
  r.uuid = "u";
  r.size_bytes = 1ull << 40;
  r.mounted = true;
  r.action = "formatted, mounted";
  std::string j = status_json({r}, 0, "2026-01-01T00:00:00Z");
  for (const char* key :
       {"\"device\": \"/dev/nvme1n1\"", "\"found_by\": \"NVMe nvme1\"", "\"filesystem\": \"xfs\"",
        "\"size_bytes\": 1099511627776", "\"mounted\": true", "\"action\": \"formatted, mounted\"",
        "\"exit_code\": 0"}) {
    EXPECT_NE(j.find(key), std::string::npos) << key << "\n" << j;
  }
}

}  // namespace
}  // namespace amibake::datavol
