// Block images: the local half of "upload only what changed".
//
// A 30 GiB root snapshot typically has a few GiB written. The local image is a sparse file of
// the full size; only fetched blocks occupy space. Hashing walks the file's data extents with
// SEEK_DATA/SEEK_HOLE, so the 28 GiB of holes cost nothing, and reads each 512 KiB block that
// overlaps data once. Blocks are independent, so hashing is spread over a few threads pulling
// indices from a shared counter (pread is position-free, so one fd serves them all).
//
// Zero blocks and holes are the same: a hashed block that reads as all zeros gets no entry,
// and so does a block set with the zero-block digest (what the EBS API reports for a written
// block of zeros). That makes the diff exact in both directions: data → zero is a change (the
// new snapshot must write zeros to clear the parent), zero → zero is not.
#include "image/block_image.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

namespace amibake::image {
namespace {

Error sys_error(const std::string& subject, const std::string& what, int err) {
  return make_error(subject + ": " + what + ": " + std::strerror(err));
}

Status pread_full(int fd, char* buf, size_t length, uint64_t offset, const std::string& path,
                  size_t* got_out) {
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, buf + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(path, "read at " + std::to_string(offset + got), errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  *got_out = got;
  return ok();
}

}  // namespace

Digest sha256(std::string_view data) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

const Digest& zero_block_digest() {
  static const Digest d = sha256(std::string(kBlockSize, '\0'));
  return d;
}

std::string digest_base64(const Digest& digest) {
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::string digest_hex(const Digest& digest) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : digest) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

bool is_all_zero(std::string_view data) {
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    if (w != 0) return false;
  }
  for (; i < data.size(); ++i)
    if (data[i] != 0) return false;
  return true;
}

void BlockHashes::set(uint64_t index, const Digest& digest) {
  if (digest == zero_block_digest()) {
    digests_.erase(index);
  } else {
    digests_[index] = digest;
  }
}

const Digest* BlockHashes::find(uint64_t index) const {
  auto it = digests_.find(index);
  return it == digests_.end() ? nullptr : &it->second;
}

std::vector<ChangedBlock> diff_hashes(const BlockHashes& before, const BlockHashes& after) {
  std::vector<ChangedBlock> out;
  auto b = before.nonzero().begin(), be = before.nonzero().end();
  auto a = after.nonzero().begin(), ae = after.nonzero().end();
  // Merge two sorted maps: present only before → now zero; only after → new data.
  while (b != be || a != ae) {
    if (a == ae || (b != be && b->first < a->first)) {
      out.push_back({b->first, /*zero=*/true});
      ++b;
    } else if (b == be || a->first < b->first) {
      out.push_back({a->first, /*zero=*/false});
      ++a;
    } else {
      if (a->second != b->second) out.push_back({a->first, /*zero=*/false});
      ++a;
      ++b;
    }
  }
  return out;
}

Result<BlockImage> BlockImage::create(const std::string& path, uint64_t size_bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error(path, "cannot create image", errno);
  ::fchmod(fd, 0600);
  if (::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    int err = errno;
    ::close(fd);
    return sys_error(path, "cannot size image to " + std::to_string(size_bytes) + " bytes", err);
  }
  return BlockImage(path, fd, size_bytes);
}

Result<BlockImage> BlockImage::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return sys_error(path, "cannot open image", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return sys_error(path, "cannot stat image", err);
  }
  return BlockImage(path, fd, static_cast<uint64_t>(st.st_size));
}

BlockImage::BlockImage(BlockImage&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

BlockImage& BlockImage::operator=(BlockImage&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

BlockImage::~BlockImage() {
  if (fd_ >= 0) ::close(fd_);
}

Status BlockImage::write_block(uint64_t index, std::string_view data) {
  const std::string subject = path_ + ": block " + std::to_string(index);
  if (index >= block_count()) return make_error(subject + ": past the end of the image");
  uint64_t offset = index * kBlockSize;
  uint64_t room = std::min<uint64_t>(kBlockSize, size_ - offset);
  if (data.size() > room)
    return make_error(subject + ": " + std::to_string(data.size()) + " bytes do not fit in " +
                      std::to_string(room));
  if (is_all_zero(data)) {
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(room)) != 0)
      return sys_error(subject, "cannot punch hole", errno);
    return ok();
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(subject, "cannot write", errno);
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<std::string> BlockImage::read_block(uint64_t index) const {
  if (index >= block_count())
    return make_error(path_ + ": block " + std::to_string(index) + ": past the end of the image");
  std::string buf(kBlockSize, '\0');
  size_t got = 0;
  AMIBAKE_TRY(pread_full(fd_, buf.data(), kBlockSize, index * kBlockSize, path_, &got));
  return buf;  // bytes past `got` stay zero
}

Result<std::vector<uint64_t>> BlockImage::data_blocks() const {
  std::vector<uint64_t> blocks;
  off_t pos = 0;
  const off_t end = static_cast<off_t>(size_);
  while (pos < end) {
    off_t data = ::lseek(fd_, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data after pos
      return sys_error(path_, "SEEK_DATA", errno);
    }
    off_t hole = ::lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) return sys_error(path_, "SEEK_HOLE", errno);
    uint64_t first = static_cast<uint64_t>(data) / kBlockSize;
    uint64_t last = (static_cast<uint64_t>(hole) - 1) / kBlockSize;
    if (!blocks.empty() && blocks.back() >= first) first = blocks.back() + 1;
    for (uint64_t b = first; b <= last; ++b) blocks.push_back(b);
    pos = hole;
  }
  return blocks;
}

Result<BlockHashes> BlockImage::hash_blocks(int threads) const {
  AMIBAKE_ASSIGN(std::vector<uint64_t> blocks, data_blocks());
  std::vector<std::optional<Digest>> digests(blocks.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::optional<Error> first_error;
  auto worker = [&] {
    std::string buf(kBlockSize, '\0');
    for (size_t i = next++; i < blocks.size(); i = next++) {
      size_t got = 0;
      Status s = pread_full(fd_, buf.data(), kBlockSize, blocks[i] * kBlockSize, path_, &got);
      if (!s) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = s.error();
        next = blocks.size();
        return;
      }
      std::fill(buf.begin() + static_cast<std::ptrdiff_t>(got), buf.end(),
                '\0');  // past EOF reads as zeros
      if (!is_all_zero(buf)) digests[i] = sha256(buf);
    }
  };
  int n = std::max(1, std::min<int>(threads, static_cast<int>(blocks.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first_error) return *first_error;

  BlockHashes hashes(block_count());
  for (size_t i = 0; i < blocks.size(); ++i)
    if (digests[i]) hashes.set(blocks[i], *digests[i]);
  return hashes;
}

Result<std::vector<ChangedBlock>> BlockImage::changed_blocks(const BlockHashes& before, int threads,
                                                             BlockHashes* after) const {
  AMIBAKE_ASSIGN(BlockHashes now, hash_blocks(threads));
  std::vector<ChangedBlock> changed = diff_hashes(before, now);
  if (after != nullptr) *after = std::move(now);
  return changed;
}

Status BlockImage::sync() {
  if (::fsync(fd_) != 0) return sys_error(path_, "fsync", errno);
  return ok();
}

}  // namespace amibake::image
