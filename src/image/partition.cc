// Partition tables, parsed from bytes.
//
// Why parse by hand: the bake attaches the root partition of a disk image as a loop device
// at its byte offset, because the kernels we run on may have no partition-table support
// (max_part=0, no loopXpN nodes). So we need the table in user space, and the formats are
// small and fixed: a GPT is a protective MBR, a 92-byte header at LBA 1 (with a backup copy
// at the last LBA) and an array of 128-byte entries, both CRC-32 protected; an MBR is four
// 16-byte entries at 0x1BE, with logical partitions chained through extended boot records.
// Parsing them here keeps the logic testable on byte fixtures (the tests make them with
// sgdisk/sfdisk on sparse files) and keeps libfdisk's much larger surface out of a path that
// reads untrusted images. libblkid is still used to probe filesystems (probe_filesystem),
// where its signature database is worth having.
//
// The image's content is untrusted: every offset and count read from it is bounds-checked
// against the disk size before use, and the extended-partition chain is bounded.
#include "image/partition.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace amibake::image {
namespace {

constexpr uint64_t kMaxGptEntries = 4096;
constexpr int kMaxLogicalPartitions = 128;

uint16_t le16(const std::string& b, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(b[at]) |
                               (static_cast<unsigned char>(b[at + 1]) << 8));
}
uint32_t le32(const std::string& b, size_t at) {
  return static_cast<uint32_t>(le16(b, at)) | (static_cast<uint32_t>(le16(b, at + 2)) << 16);
}
uint64_t le64(const std::string& b, size_t at) {
  return static_cast<uint64_t>(le32(b, at)) | (static_cast<uint64_t>(le32(b, at + 4)) << 32);
}

bool all_zero(const std::string& b, size_t at, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (b[at + i] != 0) return false;
  return true;
}

// Decodes a UTF-16LE GPT name (up to 36 code units, NUL-terminated) to UTF-8.
std::string decode_gpt_name(const std::string& b, size_t at) {
  std::string out;
  for (size_t i = 0; i < 36; ++i) {
    uint32_t c = le16(b, at + 2 * i);
    if (c == 0) break;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {  // BMP only; surrogate halves are kept as-is, which is harmless for display
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::string hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", v);
  return buf;
}

Result<std::string> read_exact(const ByteReader& read, uint64_t offset, size_t length) {
  std::string out;
  AMIBAKE_TRY(read(offset, length, out));
  if (out.size() != length)
    return make_error("disk: read of " + std::to_string(length) + " bytes at " +
                      std::to_string(offset) + ": short read (" + std::to_string(out.size()) + ")");
  return out;
}

// One GPT header, validated. Returns an error string describing what is wrong, or the
// table (partitions filled) on success.
Result<PartitionTable> parse_gpt_at(const ByteReader& read, uint64_t disk_size, uint32_t sector,
                                    uint64_t header_lba) {
  const std::string where = "GPT header at LBA " + std::to_string(header_lba);
  if ((header_lba + 1) * sector > disk_size)
    return make_error(where + ": past the end of the disk");
  AMIBAKE_ASSIGN(std::string h, read_exact(read, header_lba * sector, sector));
  if (h.compare(0, 8, "EFI PART") != 0) return make_error(where + ": no \"EFI PART\" signature");
  uint32_t header_size = le32(h, 12);
  if (header_size < 92 || header_size > sector) return make_error(where + ": bad header size");
  std::string copy = h.substr(0, header_size);
  std::memset(copy.data() + 16, 0, 4);
  if (crc32_ieee(copy.data(), copy.size()) != le32(h, 16))
    return make_error(where + ": header CRC mismatch");
  uint64_t entries_lba = le64(h, 72);
  uint64_t count = le32(h, 80);
  uint64_t entry_size = le32(h, 84);
  if (count > kMaxGptEntries || entry_size < 128 || entry_size > 4096 || entry_size % 8 != 0)
    return make_error(where + ": implausible entry count or size");
  uint64_t array_bytes = count * entry_size;
  if (entries_lba * sector + array_bytes > disk_size)
    return make_error(where + ": entry array past the end of the disk");
  AMIBAKE_ASSIGN(std::string entries, read_exact(read, entries_lba * sector, array_bytes));
  if (crc32_ieee(entries.data(), entries.size()) != le32(h, 88))
    return make_error(where + ": partition entry array CRC mismatch");

  PartitionTable table;
  table.kind = TableKind::kGpt;
  table.sector_size = sector;
  table.disk_size = disk_size;
  table.disk_guid = guid_to_string(reinterpret_cast<const unsigned char*>(h.data() + 56));
  for (uint64_t i = 0; i < count; ++i) {
    size_t at = i * entry_size;
    if (all_zero(entries, at, 16)) continue;  // unused entry
    Partition p;
    p.index = static_cast<int>(i + 1);
    p.type_guid = guid_to_string(reinterpret_cast<const unsigned char*>(entries.data() + at));
    p.uuid = guid_to_string(reinterpret_cast<const unsigned char*>(entries.data() + at + 16));
    uint64_t first = le64(entries, at + 32), last = le64(entries, at + 40);
    if (last < first || (last + 1) > disk_size / sector)
      return make_error(where + ": partition " + std::to_string(p.index) +
                        " has an invalid or out-of-disk range");
    p.start = first * sector;
    p.size = (last - first + 1) * sector;
    p.bootable = (le64(entries, at + 48) & 0x4) != 0;  // bit 2: legacy BIOS bootable
    p.name = decode_gpt_name(entries, at + 56);
    table.partitions.push_back(std::move(p));
  }
  return table;
}

Result<PartitionTable> parse_gpt(const ByteReader& read, uint64_t disk_size, uint32_t sector) {
  auto primary = parse_gpt_at(read, disk_size, sector, 1);
  if (primary) return primary;
  auto backup = parse_gpt_at(read, disk_size, sector, disk_size / sector - 1);
  if (backup) {
    backup->used_backup_gpt = true;
    return backup;
  }
  return make_error("disk: GPT: both headers are damaged: " + primary.error().message + "; " +
                        backup.error().message,
                    "repair the table (sgdisk --verify) or use another image");
}

struct MbrEntry {
  bool active;
  uint8_t type;
  uint64_t lba;
  uint64_t sectors;
};

MbrEntry mbr_entry(const std::string& sector0, int i) {
  size_t at = 0x1BE + 16 * static_cast<size_t>(i);
  return {static_cast<unsigned char>(sector0[at]) == 0x80, static_cast<uint8_t>(sector0[at + 4]),
          le32(sector0, at + 8), le32(sector0, at + 12)};
}

bool is_extended(uint8_t type) { return type == 0x05 || type == 0x0F || type == 0x85; }

// Walks the chain of extended boot records starting at `ext_lba`, appending logical
// partitions numbered from 5.
Status parse_logical(const ByteReader& read, uint64_t disk_size, uint64_t ext_lba,
                     uint64_t ext_sectors, PartitionTable& table) {
  uint64_t ebr_rel = 0;
  for (int n = 0; n < kMaxLogicalPartitions; ++n) {
    uint64_t ebr_lba = ext_lba + ebr_rel;
    if ((ebr_lba + 1) * 512 > disk_size)
      return make_error("disk: MBR: extended boot record past the end");
    AMIBAKE_ASSIGN(std::string ebr, read_exact(read, ebr_lba * 512, 512));
    if (static_cast<unsigned char>(ebr[510]) != 0x55 ||
        static_cast<unsigned char>(ebr[511]) != 0xAA)
      return make_error("disk: MBR: extended boot record at LBA " + std::to_string(ebr_lba) +
                        " has no 55AA signature");
    MbrEntry logical = mbr_entry(ebr, 0), next = mbr_entry(ebr, 1);
    if (logical.type != 0 && logical.sectors != 0) {
      Partition p;
      p.index = 5 + n;
      p.mbr_type = logical.type;
      p.bootable = logical.active;
      p.start = (ebr_lba + logical.lba) * 512;
      p.size = logical.sectors * 512;
      table.partitions.push_back(p);
    }
    if (next.type == 0 || next.sectors == 0) return ok();
    if (next.lba <= ebr_rel || next.lba >= ext_sectors)
      return make_error(
          "disk: MBR: extended partition chain loops or leaves the extended partition");
    ebr_rel = next.lba;
  }
  return make_error("disk: MBR: more than " + std::to_string(kMaxLogicalPartitions) +
                    " logical partitions");
}

Result<PartitionTable> parse_mbr(const ByteReader& read, uint64_t disk_size,
                                 const std::string& s0) {
  PartitionTable table;
  table.kind = TableKind::kMbr;
  table.disk_size = disk_size;
  table.disk_guid = hex32(le32(s0, 0x1B8));
  for (int i = 0; i < 4; ++i) {
    MbrEntry e = mbr_entry(s0, i);
    if (e.type == 0 || e.sectors == 0) continue;
    if (is_extended(e.type)) {
      AMIBAKE_TRY(parse_logical(read, disk_size, e.lba, e.sectors, table));
      continue;
    }
    Partition p;
    p.index = i + 1;
    p.mbr_type = e.type;
    p.bootable = e.active;
    p.start = e.lba * 512;
    p.size = e.sectors * 512;
    table.partitions.push_back(p);
  }
  std::sort(table.partitions.begin(), table.partitions.end(),
            [](const Partition& a, const Partition& b) { return a.index < b.index; });
  return table;
}

Status check_ranges(const PartitionTable& table) {
  std::vector<const Partition*> by_start;
  for (const Partition& p : table.partitions) {
    if (p.start + p.size > table.disk_size || p.start + p.size < p.start)
      return make_error("disk: partition " + std::to_string(p.index) +
                            " ends past the end of the disk (" + std::to_string(p.start + p.size) +
                            " > " + std::to_string(table.disk_size) + ")",
                        "the image may be truncated; check its size");
    by_start.push_back(&p);
  }
  std::sort(by_start.begin(), by_start.end(),
            [](const Partition* a, const Partition* b) { return a->start < b->start; });
  for (size_t i = 1; i < by_start.size(); ++i)
    if (by_start[i - 1]->start + by_start[i - 1]->size > by_start[i]->start)
      return make_error("disk: partitions " + std::to_string(by_start[i - 1]->index) + " and " +
                        std::to_string(by_start[i]->index) + " overlap");
  return ok();
}

bool is_linux_root_guid(const std::string& g) {
  return g == kGuidLinuxRootX86_64 || g == kGuidLinuxRootArm64;
}

}  // namespace

const char* table_kind_name(TableKind kind) {
  switch (kind) {
    case TableKind::kGpt:
      return "gpt";
    case TableKind::kMbr:
      return "dos";
    case TableKind::kNone:
      return "none";
  }
  return "?";
}

uint32_t crc32_ieee(const void* data, size_t length, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < length; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string guid_to_string(const unsigned char* b) {
  char buf[37];
  std::snprintf(buf, sizeof buf,
                "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[3], b[2],
                b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return buf;
}

Result<PartitionTable> parse_partition_table(const ByteReader& read, uint64_t disk_size) {
  if (disk_size < 512)
    return make_error("disk: too small to hold a partition table (" + std::to_string(disk_size) +
                      " bytes)");
  AMIBAKE_ASSIGN(std::string s0, read_exact(read, 0, 512));
  bool mbr_signature =
      static_cast<unsigned char>(s0[510]) == 0x55 && static_cast<unsigned char>(s0[511]) == 0xAA;
  bool protective = false;
  if (mbr_signature)
    for (int i = 0; i < 4; ++i) protective = protective || mbr_entry(s0, i).type == 0xEE;

  // A GPT may sit on 512- or 4096-byte sectors; look for its signature at both LBA 1s.
  for (uint32_t sector : {512u, 4096u}) {
    if (disk_size < 2ull * sector) continue;
    AMIBAKE_ASSIGN(std::string lba1, read_exact(read, sector, 8));
    if (lba1 == "EFI PART" || (protective && sector == 512)) {
      auto gpt = parse_gpt(read, disk_size, sector);
      if (!gpt && sector == 512 && lba1 != "EFI PART") continue;  // maybe 4K sectors
      if (!gpt) return gpt.error();
      AMIBAKE_TRY(check_ranges(*gpt));
      return gpt;
    }
  }
  if (protective)
    return make_error("disk: protective MBR found but no readable GPT header",
                      "repair the table (sgdisk --verify) or use another image");
  if (mbr_signature) {
    // A FAT or NTFS boot sector also ends in 55AA; an MBR has zero or 0x80 status bytes.
    bool plausible = true;
    for (int i = 0; i < 4; ++i) {
      auto status = static_cast<unsigned char>(s0[0x1BE + 16 * i]);
      plausible = plausible && (status == 0 || status == 0x80);
    }
    if (plausible) {
      AMIBAKE_ASSIGN(PartitionTable mbr, parse_mbr(read, disk_size, s0));
      if (!mbr.partitions.empty()) {
        AMIBAKE_TRY(check_ranges(mbr));
        return mbr;
      }
    }
  }
  PartitionTable none;
  none.disk_size = disk_size;
  return none;
}

Result<PartitionTable> read_partition_table(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  uint64_t size = 0;
  if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) size = 0;
  } else {
    size = static_cast<uint64_t>(st.st_size);
  }
  ByteReader reader = [fd, &path](uint64_t offset, size_t length, std::string& out) -> Status {
    out.assign(length, '\0');
    size_t got = 0;
    while (got < length) {
      ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return make_error(path + ": read at " + std::to_string(offset) + ": " +
                          std::strerror(errno));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return ok();
  };
  auto table = parse_partition_table(reader, size);
  ::close(fd);
  if (!table) return table.error().wrap(path);
  return table;
}

Result<FilesystemInfo> probe_filesystem(const std::string& path, uint64_t offset, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
  blkid_probe pr = blkid_new_probe();
  if (pr == nullptr) {
    ::close(fd);
    return make_error(path + ": libblkid: cannot allocate a probe");
  }
  FilesystemInfo info;
  Status status;
  if (blkid_probe_set_device(pr, fd, static_cast<blkid_loff_t>(offset),
                             static_cast<blkid_loff_t>(size)) != 0) {
    status = make_error(path + ": libblkid: cannot probe range at " + std::to_string(offset));
  } else {
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr,
                                      BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
    int rc = blkid_do_safeprobe(pr);
    if (rc == -2) {
      status = make_error(path + ": filesystem probe at " + std::to_string(offset) +
                              ": ambiguous (more than one signature)",
                          "the partition holds conflicting signatures; inspect it with wipefs -n");
    } else if (rc < 0) {
      status = make_error(path + ": filesystem probe at " + std::to_string(offset) + ": failed");
    } else if (rc == 0) {
      const char* v = nullptr;
      if (blkid_probe_lookup_value(pr, "TYPE", &v, nullptr) == 0 && v) info.type = v;
      if (blkid_probe_lookup_value(pr, "UUID", &v, nullptr) == 0 && v) info.uuid = v;
      if (blkid_probe_lookup_value(pr, "LABEL", &v, nullptr) == 0 && v) info.label = v;
    }
  }
  blkid_free_probe(pr);
  ::close(fd);
  if (!status) return status.error();
  return info;
}

Result<Partition> find_root_partition(const PartitionTable& table) {
  if (table.kind == TableKind::kNone) {
    Partition whole;
    whole.index = 0;
    whole.size = table.disk_size;
    return whole;
  }
  std::vector<const Partition*> roots, linux_data;
  for (const Partition& p : table.partitions) {
    if (is_linux_root_guid(p.type_guid)) roots.push_back(&p);
    if (p.type_guid == kGuidLinuxData || p.mbr_type == 0x83) linux_data.push_back(&p);
  }
  if (roots.size() == 1) return *roots[0];
  if (roots.size() > 1)
    return make_error("disk: " + std::to_string(roots.size()) + " partitions are typed Linux root",
                      "the image is ambiguous; name the root partition explicitly");
  if (linux_data.empty())
    return make_error(std::string("disk: ") + table_kind_name(table.kind) +
                          " table has no Linux root or Linux data partition",
                      "is this a Linux image? (LVM and RAID roots are not supported)");
  return **std::max_element(
      linux_data.begin(), linux_data.end(),
      [](const Partition* a, const Partition* b) { return a->size < b->size; });
}

}  // namespace amibake::image
