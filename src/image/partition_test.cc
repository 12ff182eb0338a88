// Partition table parsing on fixture disks made by sgdisk/sfdisk (no root needed: they
// write plain sparse files) and on hand-made bytes for the malformed cases.
#include "image/partition.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "base/subprocess.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

using testing::make_sparse_file;
using testing::run_ok;
using testing::ScratchDir;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;

void patch_byte(const std::string& path, uint64_t offset, unsigned char value) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &value, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

// AL2023's layout: p127 BIOS boot 1 MiB, p128 EFI 10 MiB, p1 root to the end.
std::string make_al2023_like_disk(const ScratchDir& dir, uint64_t size = 2 * kGiB) {
  std::string disk = dir.file("gpt.img");
  make_sparse_file(disk, size);
  run_ok({"sgdisk",
          "-n",
          "127:2048:+1M",
          "-t",
          "127:EF02",
          "-c",
          "127:BIOS Boot Partition",
          "-n",
          "128:4096:+10M",
          "-t",
          "128:EF00",
          "-c",
          "128:EFI System Partition",
          "-n",
          "1:24576:0",
          "-t",
          "1:8304",
          "-c",
          "1:Linux",
          disk});
  return disk;
}

ByteReader memory_reader(const std::string& bytes) {
  return [&bytes](uint64_t offset, size_t length, std::string& out) -> Status {
    out = offset >= bytes.size() ? std::string() : bytes.substr(offset, length);
    return ok();
  };
}

void set_mbr_entry(std::string& disk, int i, unsigned char status, unsigned char type, uint32_t lba,
                   uint32_t sectors) {
  size_t at = 0x1BE + 16 * static_cast<size_t>(i);
  disk[at] = static_cast<char>(status);
  disk[at + 4] = static_cast<char>(type);
  std::memcpy(&disk[at + 8], &lba, 4);
  std::memcpy(&disk[at + 12], &sectors, 4);
  disk[510] = static_cast<char>(0x55);
  disk[511] = static_cast<char>(0xAA);
}

TEST(Partition, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32_ieee("123456789", 9), 0xCBF43926u);
}

TEST(Partition, GuidTextIsMixedEndian) {
  const unsigned char bytes[16] = {0xE3, 0xBC, 0x68, 0x4F, 0xCD, 0xE8, 0xB1, 0x4D,
                                   0x96, 0xE7, 0xFB, 0xCA, 0xF9, 0x84, 0xB7, 0x09};
  EXPECT_EQ(guid_to_string(bytes), kGuidLinuxRootX86_64);
}

TEST(Partition, ReadsGptPartitionsWithOffsetsTypesAndNames) {
  ScratchDir dir;
  std::string disk = make_al2023_like_disk(dir);
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_EQ(table->kind, TableKind::kGpt);
  EXPECT_FALSE(table->used_backup_gpt);
  ASSERT_EQ(table->partitions.size(), 3u);
  const Partition& root = table->partitions[0];
  EXPECT_EQ(root.index, 1);
  EXPECT_EQ(root.start, 24576u * 512);
  EXPECT_EQ(root.type_guid, kGuidLinuxRootX86_64);
  EXPECT_EQ(root.name, "Linux");
  EXPECT_EQ(root.uuid.size(), 36u);
  EXPECT_EQ(table->partitions[1].index, 127);
  EXPECT_EQ(table->partitions[1].start, 2048u * 512);
  EXPECT_EQ(table->partitions[1].size, kMiB);
  EXPECT_EQ(table->partitions[1].type_guid, kGuidBiosBoot);
  EXPECT_EQ(table->partitions[2].index, 128);
  EXPECT_EQ(table->partitions[2].size, 10 * kMiB);
  EXPECT_EQ(table->partitions[2].type_guid, kGuidEfiSystem);
  EXPECT_EQ(table->partitions[2].name, "EFI System Partition");
  // sgdisk leaves the backup table (33 sectors) at the end.
  EXPECT_EQ(root.start + root.size, 2 * kGiB - 34 * 512 + 512);
}

TEST(Partition, RootIsThePartitionTypedLinuxRoot) {
  ScratchDir dir;
  auto table = read_partition_table(make_al2023_like_disk(dir));
  ASSERT_TRUE(table);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->index, 1);
}

TEST(Partition, Arm64RootTypeIsRecognised) {
  ScratchDir dir;
  std::string disk = dir.file("arm.img");
  make_sparse_file(disk, kGiB);
  run_ok({"sgdisk", "-n", "128:2048:+10M", "-t", "128:EF00", "-n", "1:0:0", "-t", "1:8305", disk});
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->index, 1);
  EXPECT_EQ(root->type_guid, kGuidLinuxRootArm64);
}

TEST(Partition, WithoutRootTypeTheLargestLinuxPartitionIsRoot) {
  ScratchDir dir;
  std::string disk = dir.file("data.img");
  make_sparse_file(disk, kGiB);
  run_ok({"sgdisk", "-n", "1:2048:+100M", "-t", "1:8300", "-n", "2:0:+500M", "-t", "2:8300", "-n",
          "3:0:0", "-t", "3:8200", disk});
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->index, 2);
}

TEST(Partition, TwoRootTypedPartitionsAreAnError) {
  ScratchDir dir;
  std::string disk = dir.file("two.img");
  make_sparse_file(disk, kGiB);
  run_ok({"sgdisk", "-n", "1:2048:+100M", "-t", "1:8304", "-n", "2:0:0", "-t", "2:8304", disk});
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table);
  auto root = find_root_partition(*table);
  ASSERT_FALSE(root);
  EXPECT_NE(root.error().message.find("2 partitions are typed Linux root"), std::string::npos);
}

TEST(Partition, DamagedPrimaryGptFallsBackToTheBackup) {
  ScratchDir dir;
  std::string disk = make_al2023_like_disk(dir);
  patch_byte(disk, 512 + 40, 0x77);  // first usable LBA: header CRC no longer matches
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_TRUE(table->used_backup_gpt);
  ASSERT_EQ(table->partitions.size(), 3u);
  EXPECT_EQ(table->partitions[0].start, 24576u * 512);
}

TEST(Partition, BothGptHeadersDamagedIsAnError) {
  ScratchDir dir;
  std::string disk = make_al2023_like_disk(dir);
  patch_byte(disk, 512 + 40, 0x77);
  patch_byte(disk, 2 * kGiB - 512 + 40, 0x77);
  auto table = read_partition_table(disk);
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("both headers are damaged"), std::string::npos);
}

TEST(Partition, DamagedEntryArrayIsDetected) {
  ScratchDir dir;
  std::string disk = make_al2023_like_disk(dir);
  patch_byte(disk, 1024 + 56, 'X');  // first entry's name, primary array
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_TRUE(table->used_backup_gpt);  // the backup's array is intact
  EXPECT_EQ(table->partitions[0].name, "Linux");
}

TEST(Partition, ReadsDosTableWithBootFlag) {
  ScratchDir dir;
  std::string disk = dir.file("dos.img");
  make_sparse_file(disk, kGiB);
  run_ok({"sfdisk", "--quiet", disk},
         "label: dos\nlabel-id: 0x1234abcd\nstart=2048, type=83, bootable\n");
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_EQ(table->kind, TableKind::kMbr);
  EXPECT_EQ(table->disk_guid, "1234ABCD");
  ASSERT_EQ(table->partitions.size(), 1u);
  EXPECT_EQ(table->partitions[0].index, 1);
  EXPECT_EQ(table->partitions[0].mbr_type, 0x83);
  EXPECT_TRUE(table->partitions[0].bootable);
  EXPECT_EQ(table->partitions[0].start, 2048u * 512);
  EXPECT_EQ(table->partitions[0].size, kGiB - 2048 * 512);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->index, 1);
}

TEST(Partition, DosLogicalPartitionsAreNumberedFromFive) {
  ScratchDir dir;
  std::string disk = dir.file("ext.img");
  make_sparse_file(disk, kGiB);
  run_ok({"sfdisk", "--quiet", disk},
         "label: dos\nstart=2048, size=100MiB, type=83\ntype=5\nsize=200MiB, type=82\ntype=83\n");
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_EQ(table->partitions.size(), 3u);
  EXPECT_EQ(table->partitions[1].index, 5);
  EXPECT_EQ(table->partitions[1].mbr_type, 0x82);
  EXPECT_EQ(table->partitions[1].size, 200 * kMiB);
  EXPECT_EQ(table->partitions[2].index, 6);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->index, 6);  // larger than p1
}

TEST(Partition, BlankDiskHasNoTableAndTheWholeDiskIsRoot) {
  ScratchDir dir;
  std::string disk = dir.file("blank.img");
  make_sparse_file(disk, 64 * kMiB);
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table);
  EXPECT_EQ(table->kind, TableKind::kNone);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->index, 0);
  EXPECT_EQ(root->start, 0u);
  EXPECT_EQ(root->size, 64 * kMiB);
}

TEST(Partition, WholeDiskFilesystemHasNoTable) {
  ScratchDir dir;
  std::string disk = dir.file("fs.img");
  make_sparse_file(disk, 64 * kMiB);
  run_ok({"mkfs.ext4", "-q", "-F", "-L", "whole", disk});
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_EQ(table->kind, TableKind::kNone);
  auto fs = probe_filesystem(disk, 0, 0);
  ASSERT_TRUE(fs);
  EXPECT_EQ(fs->type, "ext4");
  EXPECT_EQ(fs->label, "whole");
}

TEST(Partition, ProbesAFilesystemInsideAPartitionRange) {
  ScratchDir dir;
  std::string disk = dir.file("probe.img");
  make_sparse_file(disk, 256 * kMiB);
  run_ok({"sfdisk", "--quiet", disk}, "label: dos\nstart=2048, type=83\n");
  run_ok({"mkfs.ext4", "-q", "-F", "-L", "inner", "-E", "offset=1048576", disk, "200M"});
  auto table = read_partition_table(disk);
  ASSERT_TRUE(table);
  auto root = find_root_partition(*table);
  ASSERT_TRUE(root);
  auto fs = probe_filesystem(disk, root->start, root->size);
  ASSERT_TRUE(fs) << fs.error().message;
  EXPECT_EQ(fs->type, "ext4");
  EXPECT_EQ(fs->label, "inner");
  auto none = probe_filesystem(disk, 0, kMiB);  // the gap before the partition
  ASSERT_TRUE(none);
  EXPECT_EQ(none->type, "");
}

TEST(Partition, MbrPartitionPastTheEndIsRefused) {
  std::string disk(8 * kMiB, '\0');
  set_mbr_entry(disk, 0, 0x80, 0x83, 2048, 32768);  // 16 MiB on an 8 MiB disk
  auto table = parse_partition_table(memory_reader(disk), disk.size());
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("past the end"), std::string::npos);
}

TEST(Partition, OverlappingMbrPartitionsAreRefused) {
  std::string disk(8 * kMiB, '\0');
  set_mbr_entry(disk, 0, 0, 0x83, 2048, 4096);
  set_mbr_entry(disk, 1, 0, 0x83, 4096, 4096);
  auto table = parse_partition_table(memory_reader(disk), disk.size());
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("overlap"), std::string::npos);
}

TEST(Partition, LoopingExtendedChainIsRefused) {
  std::string disk(8 * kMiB, '\0');
  set_mbr_entry(disk, 0, 0, 0x05, 2048, 8192);
  // The EBR at LBA 2048 points its "next" link at itself (relative LBA 0).
  std::string ebr(512, '\0');
  set_mbr_entry(ebr, 0, 0, 0x83, 63, 100);
  set_mbr_entry(ebr, 1, 0, 0x05, 0, 100);
  disk.replace(2048 * 512, 512, ebr);
  auto table = parse_partition_table(memory_reader(disk), disk.size());
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("loops"), std::string::npos);
}

TEST(Partition, ProtectiveMbrWithoutGptIsAnError) {
  std::string disk(8 * kMiB, '\0');
  set_mbr_entry(disk, 0, 0, 0xEE, 1, 16383);
  auto table = parse_partition_table(memory_reader(disk), disk.size());
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("no readable GPT"), std::string::npos);
}

}  // namespace
}  // namespace amibake::image
