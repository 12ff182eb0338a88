// mount_root: the steps of "attach the image and find its root" in one place, so the direct
// and chroot methods (a local image file, or an attached EBS device) share them. Each step's
// error names the image and the partition, e.g.
//   "base.img: partition 1 (4F68BCE3-…): no filesystem found"
#include "image/root_mount.h"

namespace amibake::image {
namespace {

// Without these ext4 reads every block group's bitmaps in the background after mounting
// (and would zero uninitialised inode tables), which on a lazy disk fetches most of the
// metadata of the volume for nothing.
constexpr const char* kExt4LazyOptions = "no_prefetch_block_bitmaps,noinit_itable";

}  // namespace

Status MountedRoot::release() {
  Status unmounted = mount_.unmount();
  Status detached = loop_.detach();
  if (!unmounted) return unmounted;
  return detached;
}

Result<MountedRoot> mount_root(const std::string& image, const RootMountOptions& options) {
  AMIBAKE_ASSIGN(PartitionTable table, read_partition_table(image));
  auto root = find_root_partition(table);
  if (!root) return root.error().wrap(image);
  const std::string subject =
      image + ": " +
      (root->index == 0 ? std::string("whole disk")
                        : "partition " + std::to_string(root->index) +
                              (root->type_guid.empty() ? "" : " (" + root->type_guid + ")"));
  AMIBAKE_ASSIGN(FilesystemInfo fs, probe_filesystem(image, root->start, root->size));
  if (fs.type.empty())
    return make_error(subject + ": no filesystem found",
                      "the root may be on LVM or RAID, which amibake does not support");
  if (fs.type != "xfs" && fs.type != "ext4" && fs.type != "ext3" && fs.type != "ext2" &&
      fs.type != "btrfs")
    return make_error(subject + ": " + fs.type + " is not a root filesystem amibake can mount",
                      "supported: xfs, ext4/ext3/ext2, btrfs");

  LoopOptions loop_options;
  loop_options.offset = root->start;
  loop_options.size_limit = root->size;
  loop_options.read_only = options.read_only;
  loop_options.direct_io = options.lazy_image;
  auto loop = LoopDevice::attach(image, loop_options);
  if (!loop) return loop.error().wrap(subject);

  MountOptions mount_options;
  mount_options.fstype = fs.type;
  mount_options.read_only = options.read_only;
  mount_options.target = options.target;
  if (options.lazy_image && fs.type == "ext4") mount_options.data = kExt4LazyOptions;
  auto mount = Mount::mount_device(loop->path(), mount_options);
  if (!mount) return mount.error().wrap(subject);
  return MountedRoot(std::move(table), std::move(*root), std::move(*loop), std::move(*mount));
}

}  // namespace amibake::image
