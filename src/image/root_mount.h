// The payload-install entry point: a disk image's root filesystem, mounted, released for sure.
#pragma once

#include <string>

#include "base/result.h"
#include "image/loop.h"
#include "image/mount.h"
#include "image/partition.h"

namespace amibake::image {

struct RootMountOptions {
  bool read_only = false;
  std::string target;  // mount folder; empty = a fresh temporary one
  // The image is a LazyDisk file, fetched as it is read: the loop device asks for direct
  // I/O (LoopOptions::direct_io), and ext4 is mounted with no_prefetch_block_bitmaps and
  // noinit_itable so it does not read (fetch) every group's bitmaps or zero inode tables in
  // the background. Other filesystems mount as usual.
  bool lazy_image = false;
};

// A disk image's root partition attached as a loop device at its offset and mounted.
// Move-only; destruction unmounts, then detaches (in that order).
class MountedRoot {
 public:
  const std::string& path() const { return mount_.path(); }      // the mounted root folder
  const std::string& device() const { return loop_.path(); }     // "/dev/loopN"
  const std::string& fstype() const { return mount_.fstype(); }  // "xfs", "ext4"…
  bool direct_io() const { return loop_.direct_io(); }           // see LoopOptions
  const Partition& partition() const { return partition_; }      // index 0 = whole disk
  const PartitionTable& table() const { return table_; }

  // Unmounts and detaches now; returns the first error (a busy unmount is one, see Mount).
  Status release();

 private:
  friend Result<MountedRoot> mount_root(const std::string&, const RootMountOptions&);
  MountedRoot(PartitionTable table, Partition partition, LoopDevice loop, Mount mount)
      : table_(std::move(table)),
        partition_(std::move(partition)),
        loop_(std::move(loop)),
        mount_(std::move(mount)) {}
  PartitionTable table_;
  Partition partition_;
  LoopDevice loop_;  // declared before mount_: destroyed after it
  Mount mount_;
};

// Reads `image`'s partition table in user space, picks the root partition
// (find_root_partition), checks it holds a filesystem (libblkid, on the byte range), attaches
// it as a loop device at its offset and size, and mounts it (XFS with nouuid, nodev, nosuid;
// see RootMountOptions::lazy_image for a lazily fetched image).
Result<MountedRoot> mount_root(const std::string& image, const RootMountOptions& options = {});

}  // namespace amibake::image
