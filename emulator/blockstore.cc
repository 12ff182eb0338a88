// Sparse-file block store.
//
// Volumes and snapshots are plain sparse files of their full size; "written" EBS
// blocks are the 512 KiB ranges that hold any data extent. That makes every EBS
// direct question a filesystem question: ListSnapshotBlocks is a SEEK_DATA walk,
// copying a 30 GiB snapshot with a few MiB written moves only those MiB (or nothing
// at all when FICLONE reflinks), and writing a block of zeros punches a hole so the
// block stops being "written", as on EBS where zeros clear an inherited block.
#include "emulator/blockstore.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace amibake::emu::blocks {
namespace {

// Closes a file descriptor at scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

Error io_error(const std::string& path, const char* what) {
  return make_error(path + ": " + what + ": " + std::strerror(errno),
                    "check that awsemu's --data folder is writable and has free space");
}

// Walks the data extents of `fd` (size `size`), calling fn(begin, end) for each.
template <typename Fn>
bool for_each_extent(int fd, int64_t size, Fn fn) {
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) return errno == ENXIO;  // no more data
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    fn(static_cast<int64_t>(data), static_cast<int64_t>(hole));
    pos = hole;
  }
  return true;
}

bool pwrite_all(int fd, const char* buf, size_t len, off_t off) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, buf, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    off += n;
  }
  return true;
}

}  // namespace

Status create_sparse(const std::string& path, int64_t size_bytes) {
  Fd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (f.fd < 0) return io_error(path, "create");
  if (::ftruncate(f.fd, size_bytes) != 0) return io_error(path, "set size");
  return ok();
}

Status copy_sparse(const std::string& src, const std::string& dst, int64_t min_size_bytes,
                   bool* reflinked) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return io_error(src, "open");
  struct stat st;
  if (::fstat(in.fd, &st) != 0) return io_error(src, "stat");
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (out.fd < 0) return io_error(dst, "create");
  bool cloned = ::ioctl(out.fd, FICLONE, in.fd) == 0;
  if (reflinked) *reflinked = cloned;
  if (!cloned) {
    if (::ftruncate(out.fd, st.st_size) != 0) return io_error(dst, "set size");
    std::string buf(4 << 20, '\0');
    bool ok_copy = true;
    bool walked = for_each_extent(in.fd, st.st_size, [&](int64_t begin, int64_t end) {
      for (int64_t off = begin; ok_copy && off < end;) {
        size_t want = static_cast<size_t>(std::min<int64_t>(end - off, static_cast<int64_t>(buf.size())));
        ssize_t n = ::pread(in.fd, buf.data(), want, off);
        if (n <= 0) { ok_copy = false; break; }
        // Copy data extents but keep zero runs sparse in the destination too.
        if (!is_zero(std::string_view(buf.data(), static_cast<size_t>(n)))) {
          if (!pwrite_all(out.fd, buf.data(), static_cast<size_t>(n), off)) ok_copy = false;
        }
        off += n;
      }
    });
    if (!walked || !ok_copy) return io_error(dst, "copy data");
  }
  int64_t size = std::max<int64_t>(st.st_size, min_size_bytes);
  if (size != st.st_size && ::ftruncate(out.fd, size) != 0) return io_error(dst, "set size");
  return ok();
}

Result<std::vector<int64_t>> data_blocks(const std::string& path, int64_t block_size) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error(path, "open");
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return io_error(path, "stat");
  std::vector<int64_t> out;
  bool walked = for_each_extent(f.fd, st.st_size, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin / block_size; b * block_size < end; ++b) {
      if (out.empty() || out.back() < b) out.push_back(b);
    }
  });
  if (!walked) return io_error(path, "walk data extents");
  return out;
}

Result<int64_t> data_bytes(const std::string& path) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error(path, "open");
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return io_error(path, "stat");
  int64_t total = 0;
  if (!for_each_extent(f.fd, st.st_size, [&](int64_t b, int64_t e) { total += e - b; })) {
    return io_error(path, "walk data extents");
  }
  return total;
}

Result<std::vector<std::pair<int64_t, int64_t>>> data_block_bytes(const std::string& path,
                                                                  int64_t block_size) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error(path, "open");
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return io_error(path, "stat");
  std::vector<std::pair<int64_t, int64_t>> out;
  bool walked = for_each_extent(f.fd, st.st_size, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin / block_size; b * block_size < end; ++b) {
      int64_t from = std::max(begin, b * block_size), to = std::min(end, (b + 1) * block_size);
      if (out.empty() || out.back().first < b) out.emplace_back(b, 0);
      out.back().second += to - from;
    }
  });
  if (!walked) return io_error(path, "walk data extents");
  return out;
}

namespace {
// 2001-09-09T01:46:40Z: far enough in the past that no write can land on it.
constexpr timespec kUnchangedMark = {1000000000, 123456789};
}  // namespace

Status mark_unchanged(const std::string& path) {
  const timespec times[2] = {{0, UTIME_OMIT}, kUnchangedMark};
  if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) return io_error(path, "set mtime");
  return ok();
}

bool unchanged_since_mark(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && st.st_mtim.tv_sec == kUnchangedMark.tv_sec &&
         st.st_mtim.tv_nsec == kUnchangedMark.tv_nsec;
}

Result<std::string> read_block(const std::string& path, int64_t index, int64_t block_size) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error(path, "open");
  std::string buf(static_cast<size_t>(block_size), '\0');
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(f.fd, buf.data() + done, buf.size() - done,
                        static_cast<off_t>(index * block_size + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path, "read block");
    if (n == 0) break;  // past EOF: rest stays zero
    done += static_cast<size_t>(n);
  }
  return buf;
}

Status write_block(const std::string& path, int64_t index, std::string_view data) {
  Fd f(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error(path, "open");
  off_t off = static_cast<off_t>(index * static_cast<int64_t>(data.size()));
  if (is_zero(data)) {
    if (::fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                    static_cast<off_t>(data.size())) == 0) {
      return ok();
    }
    // No hole punching here: fall through and write the zeros.
  }
  if (!pwrite_all(f.fd, data.data(), data.size(), off)) return io_error(path, "write block");
  return ok();
}

bool is_zero(std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  if (n == 0) return true;
  return p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0;
}

}  // namespace amibake::emu::blocks
