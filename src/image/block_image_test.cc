#include "image/block_image.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "image/test_util.h"

namespace amibake::image {
namespace {

using testing::ScratchDir;

std::string pattern_block(unsigned seed, size_t size = kBlockSize) {
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(BlockImage, Sha256MatchesTheStandardVector) {
  EXPECT_EQ(digest_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(digest_base64(sha256("abc")), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
}

TEST(BlockImage, NewImageIsSparseAndHasNoHashes) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 30ull << 30);
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->block_count(), 61440u);
  auto hashes = image->hash_blocks();
  ASSERT_TRUE(hashes) << hashes.error().message;
  EXPECT_EQ(hashes->nonzero_count(), 0u);
  EXPECT_EQ(hashes->block_count(), 61440u);
}

TEST(BlockImage, WrittenBlockIsReadBackAndHashed) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 64 * kBlockSize);
  ASSERT_TRUE(image);
  std::string data = pattern_block(1);
  ASSERT_TRUE(image->write_block(7, data));
  auto back = image->read_block(7);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, data);
  auto hashes = image->hash_blocks();
  ASSERT_TRUE(hashes);
  ASSERT_EQ(hashes->nonzero_count(), 1u);
  ASSERT_NE(hashes->find(7), nullptr);
  EXPECT_EQ(*hashes->find(7), sha256(data));
}

TEST(BlockImage, DataBlocksFollowTheFileExtents) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 64 * kBlockSize);
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->write_block(2, pattern_block(2)));
  ASSERT_TRUE(image->write_block(40, pattern_block(3)));
  auto blocks = image->data_blocks();
  ASSERT_TRUE(blocks);
  EXPECT_EQ(*blocks, (std::vector<uint64_t>{2, 40}));
}

TEST(BlockImage, ChangedBlocksListsNewAndModifiedBlocks) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 64 * kBlockSize);
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->write_block(1, pattern_block(1)));
  ASSERT_TRUE(image->write_block(2, pattern_block(2)));
  auto before = image->hash_blocks();
  ASSERT_TRUE(before);
  std::string modified = pattern_block(2);
  modified[1000] ^= 1;
  ASSERT_TRUE(image->write_block(2, modified));
  ASSERT_TRUE(image->write_block(9, pattern_block(9)));
  BlockHashes after;
  auto changed = image->changed_blocks(*before, 2, &after);
  ASSERT_TRUE(changed);
  EXPECT_EQ(*changed, (std::vector<ChangedBlock>{{2, false}, {9, false}}));
  EXPECT_EQ(after.nonzero_count(), 3u);
}

TEST(BlockImage, BlockThatBecameZeroIsChangedAndMarkedZero) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 64 * kBlockSize);
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->write_block(5, pattern_block(5)));
  auto before = image->hash_blocks();
  ASSERT_TRUE(before);
  ASSERT_TRUE(image->write_block(5, std::string(kBlockSize, '\0')));
  auto changed = image->changed_blocks(*before);
  ASSERT_TRUE(changed);
  EXPECT_EQ(*changed, (std::vector<ChangedBlock>{{5, true}}));
  auto blocks = image->data_blocks();
  ASSERT_TRUE(blocks);
  EXPECT_TRUE(blocks->empty()) << "zero write should punch a hole";
}

TEST(BlockImage, ZeroDataWrittenWithoutHolesCountsAsZero) {
  // A block of zeros stored as data (e.g. copied without hole detection) equals a hole.
  ScratchDir dir;
  std::string path = dir.file("a.img");
  auto image = BlockImage::create(path, 8 * kBlockSize);
  ASSERT_TRUE(image);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string zeros(kBlockSize, '\0');
  ASSERT_EQ(::pwrite(fd, zeros.data(), zeros.size(), 3 * kBlockSize),
            static_cast<ssize_t>(kBlockSize));
  ::close(fd);
  auto blocks = image->data_blocks();
  ASSERT_TRUE(blocks);
  EXPECT_EQ(*blocks, (std::vector<uint64_t>{3}));
  auto hashes = image->hash_blocks();
  ASSERT_TRUE(hashes);
  EXPECT_EQ(hashes->nonzero_count(), 0u);
  auto changed = image->changed_blocks(BlockHashes(8));
  ASSERT_TRUE(changed);
  EXPECT_TRUE(changed->empty());
}

TEST(BlockImage, ZeroBlockDigestRecordsNothing) {
  BlockHashes hashes(4);
  hashes.set(1, zero_block_digest());
  EXPECT_EQ(hashes.nonzero_count(), 0u);
  hashes.set(2, sha256("x"));
  hashes.set(2, zero_block_digest());
  EXPECT_EQ(hashes.find(2), nullptr);
}

TEST(BlockImage, DiffHashesMergesBothSides) {
  BlockHashes before(10), after(10);
  before.set(1, sha256("a"));  // removed
  before.set(3, sha256("b"));  // same
  before.set(5, sha256("c"));  // modified
  after.set(3, sha256("b"));
  after.set(5, sha256("C"));
  after.set(8, sha256("d"));  // new
  EXPECT_EQ(diff_hashes(before, after),
            (std::vector<ChangedBlock>{{1, true}, {5, false}, {8, false}}));
}

TEST(BlockImage, PartialLastBlockIsPaddedWithZeros) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 2 * kBlockSize + 1000);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->block_count(), 3u);
  std::string tail = pattern_block(4, 1000);
  ASSERT_TRUE(image->write_block(2, tail));
  EXPECT_FALSE(image->write_block(2, pattern_block(4, 1001)));
  auto back = image->read_block(2);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->size(), kBlockSize);
  EXPECT_EQ(back->substr(0, 1000), tail);
  auto hashes = image->hash_blocks();
  ASSERT_TRUE(hashes);
  EXPECT_EQ(*hashes->find(2), sha256(*back));
}

TEST(BlockImage, WriteOrReadPastTheEndIsAnError) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 4 * kBlockSize);
  ASSERT_TRUE(image);
  EXPECT_FALSE(image->write_block(4, "x"));
  EXPECT_FALSE(image->read_block(4));
}

TEST(BlockImage, ThreadCountDoesNotChangeTheHashes) {
  ScratchDir dir;
  auto image = BlockImage::create(dir.file("a.img"), 512 * kBlockSize);
  ASSERT_TRUE(image);
  std::mt19937 rng(42);
  for (int i = 0; i < 64; ++i)
    ASSERT_TRUE(image->write_block(rng() % 512, pattern_block(static_cast<unsigned>(i))));
  auto one = image->hash_blocks(1);
  auto four = image->hash_blocks(4);
  ASSERT_TRUE(one);
  ASSERT_TRUE(four);
  EXPECT_GT(one->nonzero_count(), 50u);
  EXPECT_EQ(one->nonzero(), four->nonzero());
}

TEST(BlockImage, OpenSeesAnExistingImage) {
  ScratchDir dir;
  std::string path = dir.file("a.img");
  {
    auto image = BlockImage::create(path, 16 * kBlockSize);
    ASSERT_TRUE(image);
    ASSERT_TRUE(image->write_block(3, pattern_block(3)));
    ASSERT_TRUE(image->sync());
  }
  auto image = BlockImage::open(path);
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->size(), 16 * kBlockSize);
  auto hashes = image->hash_blocks();
  ASSERT_TRUE(hashes);
  EXPECT_EQ(*hashes->find(3), sha256(pattern_block(3)));
}

}  // namespace
}  // namespace amibake::image
