// The direct method's lazy fetch (issue 12): the install reads the base through a FUSE
// file (image::LazyDisk), so only the blocks the kernel touches are fetched with
// GetSnapshotBlock — a few dozen of the thousands a real ECS root has written.
//
// The fetch step only lists the snapshot's blocks (and their tokens) into the build's
// work folder; this install step then:
//   1. lets go of what a killed earlier attempt left (a mount on a loop device over the
//      FUSE file, the loop device, the FUSE mount): the overlay is a cache, not a truth,
//      so a resumed install starts again from an empty cache;
//   2. opens the lazy disk over a fresh sparse cache file, and prefetches in parallel the
//      partition table's blocks at both ends of the disk and the blocks the last bake of
//      this base snapshot fetched (kept per snapshot id in the cache folder), since the
//      kernel reads metadata one dependent block at a time;
//   3. installs the payload on the FUSE file (loop device with direct I/O; ext4 without
//      background bitmap prefetch), unmounts, and closes the disk;
//   4. refuses to go on if any fetch failed (the kernel saw EIO: what the install wrote
//      cannot be trusted), else lists the blocks to upload: the dirty blocks whose content
//      differs from what was fetched (a block written but unchanged is not uploaded; one
//      that became zeros is uploaded as zeros), without hashing the whole image.
// With --fetch auto, a FUSE that cannot be used (no /dev/fuse, the mount refused) falls
// back to the full fetch, saying so in one line.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "aws/ebs.h"
#include "bake/build_steps.h"
#include "bake/host_checks.h"
#include "base/files.h"
#include "image/block_image.h"
#include "image/ebs_source.h"
#include "image/lazy_disk.h"

namespace amibake::bake {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string listing_path(const StepContext& ctx) { return ctx.work + "/root.blocks"; }
std::string cache_path(const StepContext& ctx) { return ctx.work + "/root.img"; }
std::string changed_path(const StepContext& ctx) { return ctx.work + "/root.changed"; }
std::string prefetch_path(const std::string& snapshot) {
  return default_work_dir() + "/prefetch/" + snapshot;
}

Result<std::vector<uint64_t>> read_indices(const std::string& path) {
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  std::istringstream in(text);
  std::vector<uint64_t> out;
  uint64_t i;
  while (in >> i) out.push_back(i);
  return out;
}

Status write_indices(const std::string& path, const std::vector<uint64_t>& indices) {
  std::ostringstream o;
  for (uint64_t i : indices) o << i << "\n";
  return write_file_atomic(path, o.str(), 0600);
}

// The listing saved by the fetch step: "index token" per line.
Result<std::map<uint64_t, std::string>> read_listing(const std::string& path) {
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  std::istringstream in(text);
  std::map<uint64_t, std::string> out;
  uint64_t i;
  std::string token;
  while (in >> i >> token) out[i] = token;
  return out;
}

}  // namespace

Status save_listing(const StepContext& ctx, const aws::ebs::SnapshotBlocks& blocks) {
  std::ostringstream o;
  for (const auto& b : blocks.blocks) o << b.index << " " << b.token << "\n";
  return write_file_atomic(listing_path(ctx), o.str(), 0600);
}

std::string lazy_unavailable_reason() {
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("/dev/fuse cannot be opened: ") + std::strerror(errno);
  ::close(fd);
  return "";
}

void release_lazy_leftovers(const std::string& work, Events& events) {
  std::error_code ec;
  if (!std::filesystem::exists(work, ec)) return;
  for (const auto& line : image::release_lazy_disks_under(work)) events.info(line);
}

Result<std::vector<uint64_t>> lazy_changed_blocks(const StepContext& ctx) {
  return read_indices(changed_path(ctx));
}

Result<json> install_lazily(StepContext& ctx, const std::function<Result<json>()>& full_fetch) {
  release_lazy_leftovers(ctx.work, ctx.events);
  const std::string snap = base_source(ctx)["root_snapshot"];
  const json& fetched = ctx.results["fetch"];
  AMIBAKE_ASSIGN(auto tokens, read_listing(listing_path(ctx)));
  image::LazyDiskOptions o;
  o.cache_file = cache_path(ctx);
  o.size_bytes = fetched["volume_size_gib"].get<uint64_t>() << 30;
  for (const auto& [i, token] : tokens) o.listed.push_back(i);
  o.mount_dir = ctx.work + "/lazy";
  o.prefetch_threads = ctx.options.concurrency;
  image::EbsBlockSource source(ctx.client, snap, tokens);
  auto t0 = Clock::now();
  auto disk = image::LazyDisk::open(o, source);
  if (!disk) {
    if (fetched.value("requested", "lazy") != "auto") {
      return make_error("lazy fetch: " + disk.error().message,
                        "build with --fetch full (or --fetch auto to fall back by itself)");
    }
    ctx.events.info("lazy fetch unavailable (" + disk.error().message +
                    "): fetching every written block instead");
    AMIBAKE_ASSIGN(json full, full_fetch());
    AMIBAKE_ASSIGN(json report, install_payload_held(ctx, cache_path(ctx), /*lazy=*/false));
    report["fetch"] = full;
    report["mode"] = "full";
    return report;
  }
  if (std::string w = (*disk)->io_flusher_warning(); !w.empty()) ctx.events.info(w + ", ignoring");
  // Prefetch what every bake reads first (the partition table at both ends of the disk)
  // and what the last bake of this base read.
  std::set<uint64_t> want = {0, (o.size_bytes - 1) / image::kBlockSize};
  if (auto previous = read_indices(prefetch_path(snap)))
    want.insert(previous->begin(), previous->end());
  std::vector<uint64_t> prefetch;
  for (uint64_t i : want) {
    if (tokens.count(i)) prefetch.push_back(i);
  }
  // Prefetching only saves time: a block it could not get is fetched again when read.
  if (Status pre = (*disk)->prefetch(prefetch); !pre) {
    ctx.events.info("prefetch: " + pre.error().message + ", ignoring");
  }
  double prefetch_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  auto report = install_payload_held(ctx, (*disk)->file(), /*lazy=*/true);
  const auto stats = (*disk)->stats();
  bool io_error = (*disk)->saw_io_error();
  std::string io_cause = (*disk)->fetch_error();
  auto fetched_list = (*disk)->fetched_blocks();
  auto dirty = (*disk)->dirty_blocks();
  AMIBAKE_TRY((*disk)->close());
  if (io_error) {
    // Whatever the install wrote after an I/O error cannot be trusted: nothing goes up.
    return make_error("lazy fetch: " + io_cause +
                          "; the install saw an I/O error, so nothing is "
                          "uploaded",
                      "check the network and permissions (ebs:GetSnapshotBlock) and build again");
  }
  if (!report) return report.error();
  // Blocks to upload: dirty ones whose content is not what was fetched.
  AMIBAKE_ASSIGN(auto img, image::BlockImage::open(cache_path(ctx)));
  std::vector<uint64_t> changed;
  for (const auto& [index, before] : dirty) {  // DirtyBlock{index, fetched_digest}
    AMIBAKE_ASSIGN(std::string data, img.read_block(index));
    image::Digest now = image::sha256(data);
    if (before) {
      if (now != *before) changed.push_back(index);
    } else if (!tokens.count(index)) {
      if (now != image::zero_block_digest()) changed.push_back(index);  // was zeros
    } else {
      changed.push_back(index);  // wholly overwritten before any read: what it was is unknown
    }
  }
  AMIBAKE_TRY(write_indices(changed_path(ctx), changed));
  // The next bake of this base prefetches what this one read (best effort).
  if (make_dirs(default_work_dir() + "/prefetch", 0700)) {
    if (auto s = write_indices(prefetch_path(snap), fetched_list); !s) {
      ctx.events.info(s.error().message + ", ignoring");
    }
  }
  json out = *report;
  out["mode"] = "lazy";
  out["blocks_listed"] = stats.listed;
  out["blocks_fetched"] = stats.fetched;
  out["blocks_prefetched"] = stats.fetched_by_prefetch;
  out["bytes_fetched"] = stats.bytes_fetched;
  out["blocks_written"] = dirty.size();
  out["blocks_changed"] = changed.size();
  out["prefetch_seconds"] = prefetch_secs;
  ctx.events.info("lazy fetch: " + std::to_string(stats.fetched) + " of " +
                  std::to_string(stats.listed) + " written blocks fetched (" +
                  std::to_string(stats.fetched_by_prefetch) + " by prefetch), " +
                  std::to_string(changed.size()) + " to upload");
  return out;
}

}  // namespace amibake::bake
