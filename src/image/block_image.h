// A sparse local disk image seen as EBS snapshot blocks (512 KiB), with a SHA-256 per block.
//
// The direct bake fetches a snapshot's written blocks into a BlockImage, remembers their
// hashes, installs the payload, hashes again and uploads only what changed. A block that is
// a hole and a block of zeros are the same thing here ("zero"): neither has an entry in
// BlockHashes. So a block that held data before and is zero now is reported as changed,
// and must be uploaded as a zero block to clear the parent snapshot's data.
//
// SHA-256 is computed with OpenSSL EVP here; if src/aws grows a shared sha256 helper, this
// one can forward to it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace amibake::image {

inline constexpr uint64_t kBlockSize = 512 * 1024;  // EBS direct API block size

using Digest = std::array<unsigned char, 32>;

// Returns the SHA-256 of `data`.
Digest sha256(std::string_view data);

// Returns the SHA-256 of a full block of zeros (what AWS reports for a zero block).
const Digest& zero_block_digest();

// Returns the digest as standard Base64 (the EBS direct APIs' checksum form) / lower hex.
std::string digest_base64(const Digest& digest);
std::string digest_hex(const Digest& digest);

// Returns true when all `data` bytes are zero.
bool is_all_zero(std::string_view data);

// Per-block hashes of an image of block_count() blocks. Blocks without an entry are zero.
// Not thread-safe for writers: fill it from one thread (or lock around set()).
class BlockHashes {
 public:
  explicit BlockHashes(uint64_t block_count = 0) : block_count_(block_count) {}

  uint64_t block_count() const { return block_count_; }

  // Records block `index`'s digest; the zero-block digest erases the entry (zero == hole).
  void set(uint64_t index, const Digest& digest);
  // Marks block `index` as zero.
  void clear(uint64_t index) { digests_.erase(index); }
  // Returns the digest of block `index`, or nullptr when the block is zero.
  const Digest* find(uint64_t index) const;
  // Number of non-zero blocks.
  size_t nonzero_count() const { return digests_.size(); }
  // Non-zero blocks in index order.
  const std::map<uint64_t, Digest>& nonzero() const { return digests_; }

 private:
  uint64_t block_count_;
  std::map<uint64_t, Digest> digests_;
};

struct ChangedBlock {
  uint64_t index = 0;
  bool zero = false;  // the block is all zeros now: upload a zero block
  bool operator==(const ChangedBlock&) const = default;
};

// Returns the blocks whose content differs between `before` and `after`, in index order.
std::vector<ChangedBlock> diff_hashes(const BlockHashes& before, const BlockHashes& after);

// A sparse image file of size() bytes, addressed in 512 KiB blocks. Move-only.
class BlockImage {
 public:
  // Creates (or truncates) `path` as a sparse file of `size_bytes`, mode 0600.
  static Result<BlockImage> create(const std::string& path, uint64_t size_bytes);
  // Opens an existing image read-write.
  static Result<BlockImage> open(const std::string& path);

  BlockImage(BlockImage&& other) noexcept;
  BlockImage& operator=(BlockImage&& other) noexcept;
  BlockImage(const BlockImage&) = delete;
  BlockImage& operator=(const BlockImage&) = delete;
  ~BlockImage();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Number of 512 KiB blocks; the last one may be partial (read back zero-padded).
  uint64_t block_count() const { return (size_ + kBlockSize - 1) / kBlockSize; }

  // Writes `data` (at most one block; shorter only for the last, partial block) at block
  // `index`. All-zero data punches a hole instead, keeping the file sparse. Thread-safe.
  Status write_block(uint64_t index, std::string_view data);
  // Returns block `index`, kBlockSize bytes (holes and the tail past size() read as zeros).
  Result<std::string> read_block(uint64_t index) const;

  // Returns the indices of blocks that overlap the file's data extents (SEEK_DATA/SEEK_HOLE),
  // in order. Blocks outside them are certainly zero.
  Result<std::vector<uint64_t>> data_blocks() const;

  // Hashes every data block on `threads` threads; blocks that read as all zeros get no entry.
  Result<BlockHashes> hash_blocks(int threads = 2) const;

  // Hashes now and returns the blocks that differ from `before` (see diff_hashes), including
  // blocks that became zero. Fills `after` when non-null, so the caller can keep it.
  Result<std::vector<ChangedBlock>> changed_blocks(const BlockHashes& before, int threads = 2,
                                                   BlockHashes* after = nullptr) const;

  // Flushes written data to stable storage.
  Status sync();

 private:
  BlockImage(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace amibake::image
