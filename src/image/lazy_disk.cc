// LazyDisk: a snapshot's root disk fetched block by block as the kernel reads it.
//
// The problem. A direct bake used to download every written block of the base snapshot
// (thousands) in order to change about thirty; mounting the root and installing a payload
// reads well under 1% of it. So the image is a sparse local file (the cache) that fills as
// it is read, and the kernel must reach our code on every read of an absent block. A loop
// device cannot call user space, but it can sit on a file of a FUSE filesystem: we serve a
// private one-file FUSE mount whose file is the disk, and answer reads from the cache,
// fetching absent blocks first.
//
// The approach.
// - libfuse3's low-level API in threads of our own. fuse_session_loop_mt would spawn its
//   workers itself, and fuse_set_signal_handlers would take SIGINT from amibake; instead
//   each serving thread (all signals blocked, so Ctrl-C reaches the bake) polls the session's
//   non-blocking fd and a stop eventfd, and hands requests to fuse_session_process_buf.
//   Each thread sets PR_SET_IO_FLUSHER before serving (libfuse #700: a loop device over a
//   FUSE file can deadlock under memory pressure when the server's allocations wait for
//   writeback that needs the server). That needs CAP_SYS_RESOURCE (prctl(2); kernel/sys.c
//   checks capable(CAP_SYS_RESOURCE), i.e. in the initial user namespace), which containers
//   often drop: Docker's default set lacks it (--cap-add SYS_RESOURCE gives it), a user
//   namespace never has it, and a bounding set without it (this CI sandbox: CapBnd bit 24
//   clear) means no process there can get it. Without it the disk still works (the risk is
//   memory pressure during a bake) and the caller is told (io_flusher_warning), unless it
//   asked to require it.
// - No page cache on the FUSE file: it is opened with FOPEN_DIRECT_IO and the kernel's
//   writeback_cache is never enabled (with it, XFS on the loop got a log I/O error and shut
//   down). FUSE requests reach 1 MiB (max_write, max_pages); the loop device can use direct
//   I/O on top (LoopOptions::direct_io) so it submits large asynchronous requests. Measured
//   (kernel 6.18): through a direct-I/O loop, an 8 MiB O_DIRECT read or write from a buffer
//   of 4 KiB pages arrives in ~512 KiB requests, from a THP-backed buffer in 1 MiB ones.
//   The cap is the loop queue's max_segments (128, fixed by the loop driver, read-only in
//   sysfs) times the 4 KiB page per segment, not FUSE (max_read/max_pages are 1 MiB already)
//   and not max_sectors_kb (1280). Fetches are per 512 KiB block either way, so the request
//   size changes FUSE round trips, not GetSnapshotBlock calls.
// - Per block one state: zero (unlisted, never written; the cache's hole reads as zeros),
//   absent (listed, not fetched), fetching, present. One fetch is in flight per block; other
//   requests for it wait on a condition variable. A partial write to an absent block fetches
//   it first, a whole-block write claims it without a fetch. A fetched block's SHA-256 is
//   kept so the upload can compare the block's final content with what the snapshot holds.
// - A failed fetch (the source has retried already) is EIO for the request, counted and
//   remembered: the bake refuses to upload from an install that saw one.
//
// Teardown. The FUSE mount can only go once nothing holds the file: the caller unmounts its
// filesystem and detaches the loop device first, then close() unmounts (retrying EBUSY
// briefly); the kernel then ends the connection and the threads' reads see ENODEV. When the
// file stays busy (an error path), the destructor stops the threads, detaches the mount
// lazily and closes the session's fd: the last /dev/fuse reference going away aborts the
// connection, so whatever still uses the file gets errors instead of hanging on a server that
// is gone, and no mount is left in the table.
//
// Trade-offs. One mutex guards all block states: requests are few and large, and the time
// is spent fetching, outside the lock. The block state costs one byte per 512 KiB block
// (32 MiB for a 16 TiB volume).
#define FUSE_USE_VERSION 35
#include "image/lazy_disk.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/loop.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "base/files.h"
#include "base/log.h"

namespace amibake::image {
namespace {

constexpr fuse_ino_t kFileIno = 2;  // FUSE_ROOT_ID (1) is the folder
constexpr const char* kFileName = "disk";
constexpr double kAttrTimeout = 3600;      // the file never changes size or owner
constexpr unsigned kMaxRequest = 1 << 20;  // 1 MiB reads and writes

enum class BlockState : uint8_t { kZero, kAbsent, kFetching, kPresent };

Error sys_error(const std::string& subject, const std::string& what, int err,
                std::string hint = {}) {
  return make_error(subject + ": " + what + ": " + std::strerror(err), std::move(hint));
}

// libfuse reports mount problems through its log function; the last message is kept so
// open()'s error can say what libfuse saw instead of printing it to stderr.
std::mutex g_fuse_log_mu;
std::string g_fuse_last_log;

void record_fuse_log(enum fuse_log_level level, const char* fmt, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof line, fmt, ap);
  std::string text(line);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  {
    std::lock_guard lock(g_fuse_log_mu);
    g_fuse_last_log = text;
  }
  log::debug("libfuse: " + text);
}

std::string take_fuse_log() {
  std::lock_guard lock(g_fuse_log_mu);
  return std::exchange(g_fuse_last_log, {});
}

}  // namespace

class LazyDisk::Impl {
 public:
  Impl(const LazyDiskOptions& options, BlockSource& source) : options_(options), source_(source) {}
  ~Impl() { (void)shutdown(/*force=*/true); }

  Status start();
  Status shutdown(bool force);
  Status prefetch(const std::vector<uint64_t>& blocks);

  // FUSE request handlers: each returns 0 or an errno value and never throws.
  int serve_read(uint64_t offset, size_t length, std::string& out);
  int serve_write(uint64_t offset, const char* data, size_t length);
  int serve_fsync() { return ::fdatasync(cache_fd_) == 0 ? 0 : errno; }
  void fill_attr(fuse_ino_t ino, struct stat& st) const;

  LazyDisk::Stats stats() const;
  std::vector<uint64_t> fetched_blocks() const;
  std::vector<uint64_t> present_blocks() const;
  std::vector<DirtyBlock> dirty_blocks() const;
  bool saw_io_error() const { return io_errors_.load() > 0; }
  std::string fetch_error() const {
    std::lock_guard lock(mu_);
    return first_error_;
  }
  std::string io_flusher_warning() const { return io_flusher_warning_; }

  const std::string& file() const { return file_; }
  const std::string& cache_file() const { return options_.cache_file; }
  uint64_t size() const { return options_.size_bytes; }

 private:
  uint64_t block_count() const { return (options_.size_bytes + kBlockSize - 1) / kBlockSize; }
  Status create_cache();
  Status mount_fuse();
  Status start_threads();
  void serve(int thread_index);
  // Makes block `index` readable from the cache: fetches it when absent, waits when another
  // request is fetching it. Fails when the fetch (ours or the one waited for) failed.
  Status ensure_present(uint64_t index, bool by_prefetch);
  Status fetch_into_cache(uint64_t index, Digest& digest);
  void note_max(std::atomic<uint64_t>& counter, uint64_t value);
  // Counts a request answered EIO and remembers the first cause.
  int note_io_error(const Error& error);

  LazyDiskOptions options_;
  BlockSource& source_;
  int cache_fd_ = -1;
  std::string mount_dir_;
  std::string file_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  int stop_fd_ = -1;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;  // guards state_, dirty_, digests_, first_error_
  std::condition_variable fetched_cv_;
  std::vector<BlockState> state_;
  std::vector<bool> dirty_;
  std::map<uint64_t, Digest> digests_;      // fetched blocks: their content as fetched
  std::map<uint64_t, std::string> failed_;  // blocks whose last fetch failed: why
  std::string first_error_;                 // the first fetch failure a request got EIO for

  // Thread start-up: each serving thread reports whether PR_SET_IO_FLUSHER took.
  std::mutex start_mu_;
  std::condition_variable start_cv_;
  int threads_ready_ = 0;
  std::string io_flusher_warning_;  // written before start_threads() returns, then read-only

  std::atomic<uint64_t> fetched_{0}, fetched_by_prefetch_{0}, bytes_fetched_{0};
  std::atomic<uint64_t> zero_reads_{0}, io_errors_{0}, read_requests_{0}, write_requests_{0};
  std::atomic<uint64_t> largest_read_{0}, largest_write_{0};
};

namespace {

LazyDisk::Impl* impl_of(fuse_req_t req) {
  return static_cast<LazyDisk::Impl*>(fuse_req_userdata(req));
}

// ---- FUSE callbacks: one folder (FUSE_ROOT_ID) holding one file (kFileIno). Every callback
// catches everything: exceptions must not unwind through libfuse's C frames.

void on_init(void* /*userdata*/, fuse_conn_info* conn) {
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // never: XFS on the loop shut down with it
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  conn->max_write = kMaxRequest;
  conn->max_readahead = kMaxRequest;
  conn->max_background = 64;  // the loop's asynchronous direct I/O is "background" to FUSE
  conn->congestion_threshold = 48;
}

void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != FUSE_ROOT_ID || std::strcmp(name, kFileName) != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param entry{};
  entry.ino = kFileIno;
  entry.attr_timeout = kAttrTimeout;
  entry.entry_timeout = kAttrTimeout;
  impl_of(req)->fill_attr(kFileIno, entry.attr);
  fuse_reply_entry(req, &entry);
}

void on_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  if (ino != FUSE_ROOT_ID && ino != kFileIno) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st {};
  impl_of(req)->fill_attr(ino, st);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// The disk has a fixed size: truncation (open with O_TRUNC included) is refused; other
// attribute changes (times, mode) are accepted and ignored.
void on_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                fuse_file_info* /*fi*/) {
  LazyDisk::Impl* impl = impl_of(req);
  if ((to_set & FUSE_SET_ATTR_SIZE) && ino == kFileIno &&
      static_cast<uint64_t>(attr->st_size) != impl->size()) {
    fuse_reply_err(req, EPERM);
    return;
  }
  struct stat st {};
  impl->fill_attr(ino, st);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void on_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kFileIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  fi->direct_io = 1;  // FOPEN_DIRECT_IO: no page cache on the FUSE file, 1 MiB requests
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

void on_read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t offset,
             fuse_file_info* /*fi*/) {
  thread_local std::string buffer;
  int err = EIO;
  try {
    err = impl_of(req)->serve_read(static_cast<uint64_t>(offset), size, buffer);
  } catch (...) {
    err = EIO;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_buf(req, buffer.data(), buffer.size());
}

void on_write(fuse_req_t req, fuse_ino_t /*ino*/, const char* data, size_t size, off_t offset,
              fuse_file_info* /*fi*/) {
  int err = EIO;
  try {
    err = impl_of(req)->serve_write(static_cast<uint64_t>(offset), data, size);
  } catch (...) {
    err = EIO;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_write(req, size);
}

void on_flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, 0);
}

void on_release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, 0);
}

void on_fsync(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, impl_of(req)->serve_fsync());
}

void on_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* /*fi*/) {
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  try {
    std::string buf(std::max<size_t>(size, 1), '\0');
    size_t used = 0;
    const char* names[] = {".", "..", kFileName};
    const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, kFileIno};
    for (off_t i = offset; i < 3; ++i) {
      struct stat st {};
      st.st_ino = inos[i];
      st.st_mode = i == 2 ? S_IFREG : S_IFDIR;
      size_t need = fuse_add_direntry(req, buf.data() + used, size - used, names[i], &st, i + 1);
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = on_init;
  ops.lookup = on_lookup;
  ops.getattr = on_getattr;
  ops.setattr = on_setattr;
  ops.open = on_open;
  ops.read = on_read;
  ops.write = on_write;
  ops.flush = on_flush;
  ops.release = on_release;
  ops.fsync = on_fsync;
  ops.readdir = on_readdir;
  return ops;
}();

}  // namespace

// ---- set-up ----

Status LazyDisk::Impl::start() {
  if (options_.cache_file.empty()) return make_error("lazy disk: no cache file given");
  if (options_.size_bytes == 0 || options_.size_bytes % 512 != 0)
    return make_error(options_.cache_file + ": lazy disk size " +
                      std::to_string(options_.size_bytes) + " is not a positive multiple of 512");
  state_.assign(block_count(), BlockState::kZero);
  dirty_.assign(block_count(), false);
  for (uint64_t index : options_.listed) {
    if (index >= block_count())
      return make_error(options_.cache_file + ": listed block " + std::to_string(index) +
                        " is past the end of the " + std::to_string(block_count()) +
                        "-block volume");
    state_[index] = BlockState::kAbsent;
  }
  if (!options_.present.empty() && !options_.reuse_cache)
    return make_error(options_.cache_file + ": present blocks given for a new cache file");
  for (uint64_t index : options_.present) {
    if (index >= block_count())
      return make_error(options_.cache_file + ": present block " + std::to_string(index) +
                        " is past the end of the " + std::to_string(block_count()) +
                        "-block volume");
    state_[index] = BlockState::kPresent;
  }
  AMIBAKE_TRY(create_cache());
  AMIBAKE_TRY(mount_fuse());
  AMIBAKE_TRY(start_threads());
  // The first request proves the mount serves (FUSE_INIT, LOOKUP, GETATTR).
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0)
    return sys_error(file_, "FUSE file does not answer", errno, "use `--fetch full`");
  if (static_cast<uint64_t>(st.st_size) != options_.size_bytes)
    return make_error(file_ + ": FUSE file has size " + std::to_string(st.st_size) +
                      " instead of " + std::to_string(options_.size_bytes));
  return ok();
}

Status LazyDisk::Impl::create_cache() {
  if (options_.reuse_cache) {
    cache_fd_ = ::open(options_.cache_file.c_str(), O_RDWR | O_CLOEXEC);
    if (cache_fd_ < 0) return sys_error(options_.cache_file, "cannot open the cache file", errno);
    struct stat st {};
    if (::fstat(cache_fd_, &st) != 0)
      return sys_error(options_.cache_file, "cannot stat the cache file", errno);
    if (static_cast<uint64_t>(st.st_size) != options_.size_bytes)
      return make_error(options_.cache_file + ": cache file has size " +
                            std::to_string(st.st_size) + " instead of " +
                            std::to_string(options_.size_bytes),
                        "it is not this volume's cache; remove it to start again");
    return ok();
  }
  cache_fd_ = ::open(options_.cache_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (cache_fd_ < 0) return sys_error(options_.cache_file, "cannot create the cache file", errno);
  if (::ftruncate(cache_fd_, static_cast<off_t>(options_.size_bytes)) != 0)
    return sys_error(options_.cache_file, "cannot size the cache file", errno);
  return ok();
}

Status LazyDisk::Impl::mount_fuse() {
  const std::string hint = "FUSE is needed for the lazy fetch; use `--fetch full` without it";
  if (::access(options_.fuse_device.c_str(), R_OK | W_OK) != 0)
    return sys_error(options_.fuse_device, "FUSE is not available", errno,
                     hint + " (or load the fuse module)");
  if (options_.mount_dir.empty()) {
    AMIBAKE_ASSIGN(mount_dir_, make_temp_dir("amibake-lazy"));
  } else {
    mount_dir_ = options_.mount_dir;
    AMIBAKE_TRY(make_dirs(mount_dir_, 0700));
  }
  ::chmod(mount_dir_.c_str(), 0700);
  file_ = mount_dir_ + "/" + kFileName;

  fuse_set_log_func(record_fuse_log);
  take_fuse_log();
  // Mount options: the file is only ever opened by root (the loop device, blkid).
  const char* argv[] = {"amibake", "-o", "fsname=amibake-lazy,subtype=amibake", nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  session_ = fuse_session_new(&args, &kOps, sizeof kOps, this);
  fuse_opt_free_args(&args);
  if (session_ == nullptr)
    return make_error("lazy disk: cannot create a FUSE session: " + take_fuse_log(), hint);
  if (fuse_session_mount(session_, mount_dir_.c_str()) != 0) {
    std::string why = take_fuse_log();
    return make_error(mount_dir_ + ": cannot mount FUSE" + (why.empty() ? "" : ": " + why), hint);
  }
  mounted_ = true;
  int fd = fuse_session_fd(session_);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return sys_error(mount_dir_, "cannot make the FUSE fd non-blocking", errno);
  // A child (mkfs, blkid…) holding the fd would keep the connection alive past our close.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return ok();
}

Status LazyDisk::Impl::start_threads() {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return sys_error("lazy disk", "eventfd", errno);
  // The threads inherit this mask: signals stay with the bake's own threads.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  const int count = std::max(1, options_.serve_threads);
  try {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this, i] { serve(i); });
  } catch (const std::exception& e) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return make_error(std::string("lazy disk: cannot start FUSE threads: ") + e.what());
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  std::unique_lock lock(start_mu_);
  start_cv_.wait(lock, [&] { return threads_ready_ == count; });
  if (!io_flusher_warning_.empty() && options_.require_io_flusher)
    return make_error(io_flusher_warning_, "grant CAP_SYS_RESOURCE or use `--fetch full`");
  return ok();
}

// ---- serving ----

void LazyDisk::Impl::serve(int /*thread_index*/) {
  const bool flusher = ::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0;
  const int err = errno;
  {
    std::lock_guard lock(start_mu_);
    if (!flusher && io_flusher_warning_.empty())
      io_flusher_warning_ = "lazy disk: serving threads are not PR_SET_IO_FLUSHER: " +
                            std::string(std::strerror(err)) +
                            " (needs CAP_SYS_RESOURCE); the loop device may stall under memory "
                            "pressure";
    ++threads_ready_;
  }
  start_cv_.notify_all();

  fuse_buf buf{};
  const int fuse_fd = fuse_session_fd(session_);
  while (!fuse_session_exited(session_)) {
    pollfd fds[2] = {{fuse_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    int res = fuse_session_receive_buf(session_, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;  // another thread took the request
    if (res <= 0) break;                            // 0: unmounted (ENODEV)
    fuse_session_process_buf(session_, &buf);
  }
  std::free(buf.mem);
}

void LazyDisk::Impl::fill_attr(fuse_ino_t ino, struct stat& st) const {
  st.st_ino = ino;
  st.st_uid = ::getuid();
  st.st_gid = ::getgid();
  if (ino == FUSE_ROOT_ID) {
    st.st_mode = S_IFDIR | 0700;
    st.st_nlink = 2;
    return;
  }
  st.st_mode = S_IFREG | 0600;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(options_.size_bytes);
  st.st_blksize = static_cast<blksize_t>(kBlockSize);
  st.st_blocks = static_cast<blkcnt_t>(options_.size_bytes / 512);
}

void LazyDisk::Impl::note_max(std::atomic<uint64_t>& counter, uint64_t value) {
  uint64_t seen = counter.load();
  while (value > seen && !counter.compare_exchange_weak(seen, value)) {
  }
}

int LazyDisk::Impl::serve_read(uint64_t offset, size_t length, std::string& out) {
  ++read_requests_;
  note_max(largest_read_, length);
  out.clear();
  if (offset >= options_.size_bytes || length == 0) return 0;
  length = static_cast<size_t>(std::min<uint64_t>(length, options_.size_bytes - offset));
  const uint64_t first = offset / kBlockSize, last = (offset + length - 1) / kBlockSize;
  for (uint64_t b = first; b <= last; ++b) {
    Status present = ensure_present(b, /*by_prefetch=*/false);
    if (!present) return note_io_error(present.error());
  }
  out.resize(length);
  size_t done = 0;
  while (done < length) {
    ssize_t n =
        ::pread(cache_fd_, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

int LazyDisk::Impl::serve_write(uint64_t offset, const char* data, size_t length) {
  ++write_requests_;
  note_max(largest_write_, length);
  if (length == 0) return 0;
  if (offset + length > options_.size_bytes) return ENOSPC;
  const uint64_t first = offset / kBlockSize, last = (offset + length - 1) / kBlockSize;
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t start = b * kBlockSize;
    const uint64_t end = std::min(start + kBlockSize, options_.size_bytes);
    const bool whole = offset <= start && offset + length >= end;
    std::unique_lock lock(mu_);
    fetched_cv_.wait(lock, [&] { return state_[b] != BlockState::kFetching; });
    if (whole || state_[b] != BlockState::kAbsent) {
      // Dirty before the data lands: reporting a block too many is harmless, one too few
      // would lose the write.
      state_[b] = BlockState::kPresent;
      dirty_[b] = true;
      continue;
    }
    lock.unlock();
    // A partial write to an absent block: the rest of the block must be the snapshot's.
    Status present = ensure_present(b, /*by_prefetch=*/false);
    if (!present) return note_io_error(present.error());
    lock.lock();
    dirty_[b] = true;
  }
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pwrite(cache_fd_, data + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

int LazyDisk::Impl::note_io_error(const Error& error) {
  ++io_errors_;
  std::lock_guard lock(mu_);
  if (first_error_.empty()) first_error_ = error.message;
  return EIO;
}

Status LazyDisk::Impl::ensure_present(uint64_t index, bool by_prefetch) {
  std::unique_lock lock(mu_);
  if (state_[index] == BlockState::kZero) {
    if (!by_prefetch) ++zero_reads_;
    return ok();
  }
  if (state_[index] == BlockState::kFetching) {
    fetched_cv_.wait(lock, [&] { return state_[index] != BlockState::kFetching; });
    if (state_[index] == BlockState::kPresent) return ok();
    auto why = failed_.find(index);
    return make_error(why != failed_.end() ? why->second
                                           : "block " + std::to_string(index) + ": fetch failed");
  }
  if (state_[index] != BlockState::kAbsent) return ok();
  state_[index] = BlockState::kFetching;
  lock.unlock();

  Digest digest{};
  Status fetched = fetch_into_cache(index, digest);

  lock.lock();
  if (fetched) {
    state_[index] = BlockState::kPresent;
    digests_[index] = digest;
    ++fetched_;
    if (by_prefetch) ++fetched_by_prefetch_;
    bytes_fetched_ += kBlockSize;
  } else {
    state_[index] = BlockState::kAbsent;  // a later request tries again
    failed_[index] = fetched.error().message;
  }
  lock.unlock();
  fetched_cv_.notify_all();
  return fetched;
}

Status LazyDisk::Impl::fetch_into_cache(uint64_t index, Digest& digest) {
  const std::string subject = "block " + std::to_string(index);
  Result<std::string> data = make_error("no answer");
  try {
    data = source_.fetch(index);
  } catch (const std::exception& e) {
    return make_error(subject + ": " + e.what());
  } catch (...) {
    return make_error(subject + ": the block source threw");
  }
  if (!data) return data.error().wrap(subject);
  if (data->size() != kBlockSize)
    return make_error(subject + ": the source returned " + std::to_string(data->size()) +
                      " bytes instead of " + std::to_string(kBlockSize));
  digest = sha256(*data);
  const uint64_t start = index * kBlockSize;
  const size_t length =
      static_cast<size_t>(std::min<uint64_t>(kBlockSize, options_.size_bytes - start));
  size_t done = 0;
  while (done < length) {
    ssize_t n =
        ::pwrite(cache_fd_, data->data() + done, length - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error(subject, "cannot store into " + options_.cache_file, errno);
    done += static_cast<size_t>(n);
  }
  return ok();
}

Status LazyDisk::Impl::prefetch(const std::vector<uint64_t>& blocks) {
  std::vector<uint64_t> todo;
  {
    std::lock_guard lock(mu_);
    for (uint64_t b : blocks)
      if (b < state_.size() && state_[b] == BlockState::kAbsent) todo.push_back(b);
  }
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::optional<Error> first;
  auto work = [&] {
    for (size_t i = next++; i < todo.size(); i = next++) {
      Status s = ensure_present(todo[i], /*by_prefetch=*/true);
      if (!s) {
        std::lock_guard lock(error_mu);
        if (!first) first = s.error();
      }
    }
  };
  const size_t count =
      std::min<size_t>(todo.size(), static_cast<size_t>(std::max(1, options_.prefetch_threads)));
  std::vector<std::thread> workers;
  try {
    for (size_t i = 1; i < count; ++i) workers.emplace_back(work);
  } catch (...) {
    // Fewer threads than asked: the ones running (and this one) do all the work.
  }
  work();
  for (auto& t : workers) t.join();
  if (first) return first->wrap("prefetch");
  return ok();
}

// ---- teardown ----

Status LazyDisk::Impl::shutdown(bool force) {
  Status result = ok();
  if (mounted_) {
    int err = 0;
    for (int attempt = 0; attempt < 40; ++attempt) {
      err = ::umount2(mount_dir_.c_str(), UMOUNT_NOFOLLOW) == 0 ? 0 : errno;
      if (err != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (err == EBUSY && !force)
      return make_error(file_ + ": still in use; FUSE kept serving",
                        "unmount the filesystem and detach its loop device first");
    if (err != 0 && err != EINVAL) {
      // Busy at destruction: stop serving; fuse_session_unmount below closes the session's
      // fd, which aborts the connection (the file's remaining users get errors rather than
      // hang on a server that is gone), and then detaches the mount lazily.
      result = make_error(file_ + ": FUSE file still in use at teardown: connection aborted");
    }
    mounted_ = false;
  }
  if (session_ != nullptr) fuse_session_exit(session_);
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  if (session_ != nullptr) {
    // Closes /dev/fuse first (aborting a connection still alive), then detaches lazily
    // whatever is still mounted (nothing, normally: libfuse sees the connection ended).
    // Only ever after the threads are joined: none may read the fd once it is closed.
    fuse_session_unmount(session_);
    fuse_session_destroy(session_);
    session_ = nullptr;
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
  stop_fd_ = -1;
  if (!mount_dir_.empty()) ::rmdir(mount_dir_.c_str());
  mount_dir_.clear();
  if (cache_fd_ >= 0) {
    if (::fdatasync(cache_fd_) != 0 && result)
      result = sys_error(options_.cache_file, "fdatasync", errno);
    ::close(cache_fd_);
    cache_fd_ = -1;
  }
  return result;
}

// ---- queries ----

LazyDisk::Stats LazyDisk::Impl::stats() const {
  Stats s;
  s.listed = options_.listed.size();
  s.fetched = fetched_.load();
  s.fetched_by_prefetch = fetched_by_prefetch_.load();
  s.bytes_fetched = bytes_fetched_.load();
  s.zero_reads = zero_reads_.load();
  s.io_errors = io_errors_.load();
  s.read_requests = read_requests_.load();
  s.write_requests = write_requests_.load();
  s.largest_read = largest_read_.load();
  s.largest_write = largest_write_.load();
  std::lock_guard lock(mu_);
  s.dirty = static_cast<uint64_t>(std::count(dirty_.begin(), dirty_.end(), true));
  return s;
}

std::vector<uint64_t> LazyDisk::Impl::fetched_blocks() const {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  out.reserve(digests_.size());
  for (const auto& [index, digest] : digests_) out.push_back(index);
  return out;
}

std::vector<uint64_t> LazyDisk::Impl::present_blocks() const {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  for (uint64_t b = 0; b < state_.size(); ++b)
    if (state_[b] == BlockState::kPresent) out.push_back(b);
  return out;
}

std::vector<DirtyBlock> LazyDisk::Impl::dirty_blocks() const {
  std::lock_guard lock(mu_);
  std::vector<DirtyBlock> out;
  for (uint64_t b = 0; b < dirty_.size(); ++b) {
    if (!dirty_[b]) continue;
    auto it = digests_.find(b);
    out.push_back({b, it == digests_.end() ? std::nullopt : std::optional<Digest>(it->second)});
  }
  return out;
}

// ---- LazyDisk ----

LazyDisk::LazyDisk(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LazyDisk::~LazyDisk() {
  if (!impl_) return;
  Status s = impl_->shutdown(/*force=*/true);
  if (!s) log::warn(s.error().message + ", ignoring");
}

Result<std::unique_ptr<LazyDisk>> LazyDisk::open(const LazyDiskOptions& options,
                                                 BlockSource& source) {
  auto impl = std::make_unique<Impl>(options, source);
  Status started = impl->start();
  if (!started) return started.error();  // ~Impl tears down whatever was set up
  return std::unique_ptr<LazyDisk>(new LazyDisk(std::move(impl)));
}

const std::string& LazyDisk::file() const { return impl_->file(); }
const std::string& LazyDisk::cache_file() const { return impl_->cache_file(); }
uint64_t LazyDisk::size() const { return impl_->size(); }
Status LazyDisk::prefetch(const std::vector<uint64_t>& blocks) { return impl_->prefetch(blocks); }
Status LazyDisk::close() { return impl_->shutdown(/*force=*/false); }
LazyDisk::Stats LazyDisk::stats() const { return impl_->stats(); }
std::vector<uint64_t> LazyDisk::fetched_blocks() const { return impl_->fetched_blocks(); }
std::vector<uint64_t> LazyDisk::present_blocks() const { return impl_->present_blocks(); }
std::vector<DirtyBlock> LazyDisk::dirty_blocks() const { return impl_->dirty_blocks(); }
bool LazyDisk::saw_io_error() const { return impl_->saw_io_error(); }
std::string LazyDisk::fetch_error() const { return impl_->fetch_error(); }
std::string LazyDisk::io_flusher_warning() const { return impl_->io_flusher_warning(); }

namespace {

struct MountLine {
  std::string mount_point, fstype, source;
};

// /proc/self/mountinfo: "36 35 7:3 / /mnt rw,... shared:1 - xfs /dev/loop3 rw,...". Octal
// escapes (\040 for a space) are decoded in the mount point.
std::vector<MountLine> read_mounts() {
  std::vector<MountLine> out;
  auto text = read_file("/proc/self/mountinfo");
  if (!text) return out;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    std::vector<std::string> f;
    for (size_t i = 0; i < line.size();) {
      size_t j = line.find(' ', i);
      if (j == std::string::npos) j = line.size();
      f.push_back(line.substr(i, j - i));
      i = j + 1;
    }
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 2 >= f.size()) continue;
    std::string mp;
    for (size_t i = 0; i < f[4].size(); ++i) {
      if (f[4][i] == '\\' && i + 3 < f[4].size()) {
        mp += static_cast<char>(std::stoi(f[4].substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        mp += f[4][i];
      }
    }
    out.push_back({mp, f[dash + 1], f[dash + 2]});
  }
  return out;
}

bool inside(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

void unmount(const std::string& mount_point, std::vector<std::string>* log) {
  if (::umount2(mount_point.c_str(), UMOUNT_NOFOLLOW) == 0) {
    log->push_back("unmounted " + mount_point + " (left by a killed build)");
  } else if (::umount2(mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    log->push_back("detached " + mount_point + " lazily (left by a killed build, busy)");
  } else {
    log->push_back(mount_point + ": cannot unmount: " + std::strerror(errno));
  }
}

}  // namespace

std::vector<std::string> release_lazy_disks_under(const std::string& dir) {
  std::vector<std::string> log;
  char real[PATH_MAX];
  std::string root = ::realpath(dir.c_str(), real) ? std::string(real) : dir;
  // Loop devices over files in `dir` (sysfs names each one's backing file).
  std::vector<std::string> loops;
  if (DIR* d = ::opendir("/sys/block")) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("loop", 0) != 0) continue;
      auto backing = read_file("/sys/block/" + name + "/loop/backing_file");
      if (!backing) continue;
      std::string file = backing->substr(0, backing->find('\n'));
      if (inside(file, root)) loops.push_back("/dev/" + name);
    }
    ::closedir(d);
  }
  for (const auto& loop : loops) {
    for (const auto& m : read_mounts()) {
      if (m.source == loop) unmount(m.mount_point, &log);
    }
    int fd = ::open(loop.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (::ioctl(fd, LOOP_CLR_FD, 0) == 0)
        log.push_back("detached " + loop + " (left by a killed build)");
      ::close(fd);
    }
  }
  for (const auto& m : read_mounts()) {
    if (inside(m.mount_point, root) && m.fstype.rfind("fuse", 0) == 0) unmount(m.mount_point, &log);
  }
  return log;
}

}  // namespace amibake::image
