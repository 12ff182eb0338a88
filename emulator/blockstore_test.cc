// Sparse block store: holes stay holes, zero blocks punch holes, copies keep content.
#include "emulator/blockstore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "base/files.h"

namespace amibake::emu::blocks {
namespace {

constexpr int64_t kBlock = int64_t{512} * 1024;

class BlockStore : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("awsemu-blocks").value(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(BlockStore, DataBlocksListsOnlyWrittenBlocks) {
  std::string f = dir_ + "/a";
  ASSERT_TRUE(create_sparse(f, 64 * kBlock));
  ASSERT_TRUE(write_block(f, 3, std::string(kBlock, 'x')));
  ASSERT_TRUE(write_block(f, 40, std::string(kBlock, 'y')));
  EXPECT_EQ(data_blocks(f, kBlock).value(), (std::vector<int64_t>{3, 40}));
}

TEST_F(BlockStore, WritingZerosPunchesAHole) {
  std::string f = dir_ + "/a";
  ASSERT_TRUE(create_sparse(f, 8 * kBlock));
  ASSERT_TRUE(write_block(f, 1, std::string(kBlock, 'x')));
  ASSERT_TRUE(write_block(f, 1, std::string(kBlock, '\0')));
  EXPECT_TRUE(data_blocks(f, kBlock).value().empty());
  EXPECT_EQ(read_block(f, 1, kBlock).value(), std::string(kBlock, '\0'));
}

TEST_F(BlockStore, CopyKeepsContentHolesAndGrowsToMinimumSize) {
  std::string a = dir_ + "/a", b = dir_ + "/b";
  ASSERT_TRUE(create_sparse(a, 1LL << 30));
  ASSERT_TRUE(write_block(a, 5, std::string(kBlock, 'q')));
  ASSERT_TRUE(copy_sparse(a, b, 2LL << 30));
  EXPECT_EQ(read_block(b, 5, kBlock).value(), std::string(kBlock, 'q'));
  EXPECT_EQ(data_blocks(b, kBlock).value(), (std::vector<int64_t>{5}));
  struct stat st;
  ASSERT_EQ(::stat(b.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 2LL << 30);
  EXPECT_LT(st.st_blocks * 512, 4 * kBlock);  // still sparse
}

TEST_F(BlockStore, CopyIsIndependentOfItsSource) {
  std::string a = dir_ + "/a", b = dir_ + "/b";
  ASSERT_TRUE(create_sparse(a, 8 * kBlock));
  ASSERT_TRUE(write_block(a, 0, std::string(kBlock, 'a')));
  ASSERT_TRUE(copy_sparse(a, b, 0));
  ASSERT_TRUE(write_block(b, 0, std::string(kBlock, 'b')));
  EXPECT_EQ(read_block(a, 0, kBlock).value(), std::string(kBlock, 'a'));
}

TEST_F(BlockStore, ReadPastEndIsZeros) {
  std::string f = dir_ + "/a";
  ASSERT_TRUE(create_sparse(f, kBlock));
  EXPECT_EQ(read_block(f, 3, kBlock).value(), std::string(kBlock, '\0'));
}

}  // namespace
}  // namespace amibake::emu::blocks
