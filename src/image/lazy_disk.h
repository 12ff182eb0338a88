// A disk image whose blocks are fetched the first time the kernel reads them (issue 12).
//
// The image is a sparse local file (the cache) served through a one-file FUSE filesystem of
// our own. The bake loop-attaches that FUSE file (mount_root with lazy_image), and every read
// of a block the base snapshot has but the cache does not yet hold is answered by fetching
// it from a BlockSource (EBS direct GetSnapshotBlock). Reads of blocks the snapshot does not
// list are zeros and cost nothing. Writes land in the cache and mark their blocks dirty, so
// the upload knows exactly what the install touched. See lazy_disk.cc for the design.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/block_image.h"

namespace amibake::image {

// Where a LazyDisk's absent blocks come from. Implementations must be thread-safe (many
// blocks are fetched at once) and do their own retries: a failed fetch is final.
class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // Returns the content of block `index`: exactly kBlockSize bytes, already verified
  // (the bake's source checks the EBS checksum). Must not throw.
  virtual Result<std::string> fetch(uint64_t index) = 0;
};

struct LazyDiskOptions {
  std::string cache_file;        // sparse local file holding fetched/written blocks; created
                                 // or truncated to size_bytes, mode 0600 (unless reused)
  uint64_t size_bytes = 0;       // the volume's size (a multiple of 512 bytes)
  std::vector<uint64_t> listed;  // blocks the snapshot has; all others read as zeros, unfetched
  // Reopening a cache an earlier disk filled (verify --keep-disks reboots it): the file is
  // kept as it is (it must exist with size_bytes) and these blocks, listed or not, are
  // served from it without a fetch: what the earlier disk's present_blocks() returned.
  bool reuse_cache = false;
  std::vector<uint64_t> present;
  int prefetch_threads = 16;     // parallel fetches in prefetch()
  int serve_threads = 8;         // FUSE request threads (each may wait on one fetch)
  std::string fuse_device = "/dev/fuse";  // checked before mounting (a test seam)
  // Folder to mount the FUSE file system on (created 0700, removed at close); empty: a
  // fresh temporary folder. The bake puts it in the build's folder, so that what a killed
  // build left can be found there (release_lazy_disks_under).
  std::string mount_dir;
  // Refuse to open when the serving threads cannot be made PR_SET_IO_FLUSHER (it needs
  // CAP_SYS_RESOURCE). Off: the disk works without it and io_flusher_warning() says so.
  bool require_io_flusher = false;
};

// One block written since open().
struct DirtyBlock {
  uint64_t index = 0;
  // SHA-256 of the block as it was fetched; nullopt when it never was: an unlisted block
  // (zeros before) or a listed block wholly overwritten before any read.
  std::optional<Digest> fetched_digest;
  bool operator==(const DirtyBlock&) const = default;
};

// A lazily fetched disk served as a FUSE file. Held by unique_ptr (its FUSE threads point
// at it). Needs root (mounting) and /dev/fuse. Thread-safe.
//
// Teardown order: the caller unmounts the filesystem on the image and detaches its loop
// device, then calls close(). The destructor also cleans up after errors: if the FUSE file is
// still in use it aborts the FUSE connection (later I/O on it fails) rather than leave a
// mount behind.
class LazyDisk {
 public:
  struct Stats {
    uint64_t listed = 0;               // blocks the snapshot lists
    uint64_t fetched = 0;              // blocks fetched from the source (reads + prefetch)
    uint64_t fetched_by_prefetch = 0;  // of those, by prefetch()
    uint64_t bytes_fetched = 0;
    uint64_t zero_reads = 0;  // block reads answered as zeros (unlisted, never written)
    uint64_t dirty = 0;       // blocks written since open
    uint64_t io_errors = 0;   // requests answered EIO because a fetch failed
    uint64_t read_requests = 0;
    uint64_t write_requests = 0;
    uint64_t largest_read = 0;  // bytes in the largest FUSE read request
    uint64_t largest_write = 0;
  };

  // Creates the cache file, mounts a private FUSE folder holding one file (file()) and
  // starts serving it. Fails with a message saying FUSE is unusable (no /dev/fuse, mount
  // refused) so the caller can fall back to a full fetch; nothing is left mounted then.
  // `source` must outlive the returned disk.
  static Result<std::unique_ptr<LazyDisk>> open(const LazyDiskOptions& options,
                                                BlockSource& source);

  LazyDisk(const LazyDisk&) = delete;
  LazyDisk& operator=(const LazyDisk&) = delete;
  // Calls close(); if the FUSE file is still busy, aborts the connection and detaches the
  // mount lazily. Never throws, never leaves a FUSE mount in the mount table.
  ~LazyDisk();

  // Returns the FUSE file's path: the image to give to mount_root / LoopDevice::attach.
  const std::string& file() const;
  // Returns the cache file's path (holds fetched and written blocks; holes elsewhere).
  const std::string& cache_file() const;
  uint64_t size() const;

  // Fetches the listed blocks of `blocks` not yet present, on prefetch_threads threads.
  // Unlisted or present blocks are skipped. Returns the first error ("block 17: cause");
  // a failed block stays absent (a later read tries again) and is not an I/O error.
  Status prefetch(const std::vector<uint64_t>& blocks);

  // Unmounts the FUSE folder and joins its threads. Call after the loop device is gone;
  // while the file is still in use this fails (after retrying ~2 s) and keeps serving, so
  // the caller can release it and call close() again. Idempotent.
  Status close();

  // Returns the counters so far.
  Stats stats() const;
  // Returns the blocks fetched from the source so far, in index order (the next bake of
  // this base prefetches them).
  std::vector<uint64_t> fetched_blocks() const;
  // Returns the blocks the cache file holds, in index order: fetched, written, or given as
  // present at open. With the same listing, a later disk reopening the cache with
  // reuse_cache and these as `present` serves the same content.
  std::vector<uint64_t> present_blocks() const;
  // Returns the blocks written since open(), in index order, with their fetched digests.
  std::vector<DirtyBlock> dirty_blocks() const;
  // Returns true when a fetch failed and the kernel got EIO: whatever was installed on
  // this disk must not be uploaded.
  bool saw_io_error() const;
  // Returns the first failed fetch's error, "block 17: <cause>"; empty when none failed.
  std::string fetch_error() const;
  // Returns why the serving threads are not PR_SET_IO_FLUSHER (so the loop device over the
  // file may deadlock under memory pressure, libfuse #700); empty when they are. For the
  // caller to log ("…, ignoring").
  std::string io_flusher_warning() const;

  class Impl;

 private:
  explicit LazyDisk(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Lets go of what killed processes left of lazy disks in `dir`: every filesystem mounted
// from a loop device whose backing file lies in `dir` is unmounted (lazily if busy), those
// loop devices are detached, and FUSE mounts on folders in `dir` are unmounted. Returns one
// line per action. Meant for resume and cleanup: nothing of a live build may be in `dir`.
std::vector<std::string> release_lazy_disks_under(const std::string& dir);

}  // namespace amibake::image
