#include "datavol/host.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/files.h"

namespace amibake::datavol {
namespace {

TEST(DatavolHost, ParsesMountinfoWithOptionalFieldsAndEscapes) {
  auto m = parse_mountinfo(
      "22 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw\n"
      "40 22 259:3 / /my\\040data rw,noatime shared:5 master:2 - ext4 /dev/nvme1n1 rw\n"
      "garbage\n");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].major, 259u);
  EXPECT_EQ(m[0].minor, 1u);
  EXPECT_EQ(m[0].mount_point, "/");
  EXPECT_EQ(m[0].fstype, "xfs");
  EXPECT_EQ(m[1].mount_point, "/my data");
  EXPECT_EQ(m[1].source, "/dev/nvme1n1");
}

TEST(DatavolHost, ParsesSwapsSkippingHeader) {
  auto s = parse_swaps("Filename Type Size Used Priority\n/dev/nvme2n1 partition 100 0 -2\n");
  EXPECT_EQ(s, std::vector<std::string>{"/dev/nvme2n1"});
}

TEST(DatavolHost, ReadsBlockInfoPartitionsAndHolders) {
  auto dir = make_temp_dir("datavol-host");
  ASSERT_TRUE(dir.has_value());
  std::string b = *dir + "/block/nvme1n1";
  ASSERT_TRUE(make_dirs(b + "/holders/md0"));
  ASSERT_TRUE(make_dirs(b + "/nvme1n1p1/holders/dm-0"));
  ASSERT_TRUE(write_file_atomic(b + "/dev", "259:4\n"));
  ASSERT_TRUE(write_file_atomic(b + "/size", "2048\n"));
  ASSERT_TRUE(write_file_atomic(b + "/nvme1n1p1/dev", "259:5\n"));
  ASSERT_TRUE(write_file_atomic(b + "/nvme1n1p1/partition", "1\n"));
  auto info = read_block_info(*dir, "nvme1n1");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->major, 259u);
  EXPECT_EQ(info->minor, 4u);
  EXPECT_EQ(info->size_bytes, 2048u * 512);
  ASSERT_EQ(info->partitions.size(), 1u);
  EXPECT_EQ(info->partitions[0].name, "nvme1n1p1");
  EXPECT_EQ(info->partitions[0].minor, 5u);
  EXPECT_EQ(info->holders, (std::vector<std::string>{"md0", "dm-0"}));
  EXPECT_FALSE(read_block_info(*dir, "nvme9n1").has_value());
  (void)system(("rm -rf " + *dir).c_str());
}

}  // namespace
}  // namespace amibake::datavol
