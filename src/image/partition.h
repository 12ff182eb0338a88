// Reading a disk image's partition table in user space.
//
// The kernels amibake runs on may lack partition-table support (no loopXpN nodes), so the
// table is parsed here from the bytes and the root partition is attached later as a loop
// device at its byte offset (see loop.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::image {

enum class TableKind { kGpt, kMbr, kNone };

// Returns "gpt", "dos" or "none".
const char* table_kind_name(TableKind kind);

// Well-known GPT partition type GUIDs (upper case, canonical text form).
inline constexpr const char* kGuidLinuxRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
inline constexpr const char* kGuidLinuxRootArm64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";
inline constexpr const char* kGuidLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
inline constexpr const char* kGuidBiosBoot = "21686148-6449-6E6F-744E-656564454649";
inline constexpr const char* kGuidEfiSystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
inline constexpr const char* kGuidLinuxSwap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
inline constexpr const char* kGuidLinuxLvm = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

struct Partition {
  int index = 0;          // 1-based number as the kernel would name it (p1, p128); 0 = whole disk
  uint64_t start = 0;     // byte offset from the start of the disk
  uint64_t size = 0;      // bytes
  std::string type_guid;  // GPT type GUID, upper case; empty on MBR
  uint8_t mbr_type = 0;   // MBR system id (0x83 Linux, 0xEE protective…); 0 on GPT
  std::string name;       // GPT partition name (UTF-16LE decoded, ASCII kept); empty on MBR
  std::string uuid;       // GPT unique partition GUID; empty on MBR
  bool bootable = false;  // MBR active flag / GPT legacy-BIOS-bootable attribute
};

struct PartitionTable {
  TableKind kind = TableKind::kNone;
  uint32_t sector_size = 512;
  uint64_t disk_size = 0;             // bytes
  std::string disk_guid;              // GPT disk GUID; MBR disk signature as 8 hex digits
  bool used_backup_gpt = false;       // the primary GPT header was damaged, the backup read
  std::vector<Partition> partitions;  // in table order, empty entries skipped
};

// Reads `length` bytes at `offset` into `out` (short reads past the end fill nothing).
using ByteReader = std::function<Status(uint64_t offset, size_t length, std::string& out)>;

// Parses the partition table of a disk of `disk_size` bytes read through `read`.
// GPT (protective MBR + header + entries, CRC-checked; falls back to the backup header at
// the last LBA when the primary is damaged) is preferred over MBR; MBR logical partitions
// in extended partitions are numbered from 5 as Linux does. A disk with neither table yields
// kind kNone and no partitions. Fails on unreadable bytes or a table that is inconsistent
// (entries past the end of the disk, overlapping, both GPT headers damaged).
Result<PartitionTable> parse_partition_table(const ByteReader& read, uint64_t disk_size);

// Opens `path` (a file or a block device) read-only and parses its table.
Result<PartitionTable> read_partition_table(const std::string& path);

// What a filesystem probe (libblkid, on a byte range of a file or device) found.
struct FilesystemInfo {
  std::string type;  // "xfs", "ext4", "vfat", "swap"…; empty when nothing was recognised
  std::string uuid;
  std::string label;
};

// Probes the byte range [offset, offset+size) of `path` for a filesystem signature.
// size 0 means "to the end". An empty result (type "") is not an error.
Result<FilesystemInfo> probe_filesystem(const std::string& path, uint64_t offset, uint64_t size);

// Picks the root partition of `table`:
//   1. the single partition typed "Linux root" for x86-64 or arm64 (two or more: error);
//   2. else the largest partition typed Linux data (GPT) or 0x83 (MBR);
//   3. else, when the table kind is kNone, the whole disk (index 0, start 0, full size).
// Fails with a hint when nothing qualifies.
Result<Partition> find_root_partition(const PartitionTable& table);

// Parses a GUID stored in GPT's mixed-endian binary form (16 bytes) to canonical text.
std::string guid_to_string(const unsigned char* bytes16);

// Returns the CRC-32 (IEEE, as GPT uses) of `data`.
uint32_t crc32_ieee(const void* data, size_t length, uint32_t crc = 0);

}  // namespace amibake::image
