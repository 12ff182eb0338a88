// The direct method's data steps: fetch the owned root snapshot into a sparse local
// image, install the payload into it, upload only the blocks that changed.
//
// Transfers run on `concurrency` worker threads pulling block indices from a shared
// counter; the AwsClient is thread-safe and does its own retries, so a worker only
// stops on a final error or on Ctrl-C, and the first error stops the others.
//
// The per-block SHA-256 digests of the fetched image ("before") are saved next to
// it: after the install, hashing again and diffing gives exactly the blocks to
// upload, including blocks that became zero (uploaded as zeros, which clears the
// parent's data there). On resume the saved digests stand in for the fetch.
#include <algorithm>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "aws/ebs.h"
#include "aws/ec2.h"
#include "aws/sigv4.h"
#include "aws/waiter.h"
#include "bake/build_steps.h"
#include "bake/payload_install.h"
#include "base/files.h"
#include "image/block_image.h"

namespace amibake::bake {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs `work(i)` for i in [0, count) on `threads` threads; stops at the first error
// or interrupt and returns it.
Status parallel_for(StepContext& ctx, size_t count, int threads,
                    const std::function<Status(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::optional<Error> first_error;
  auto worker = [&] {
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (first_error) return;
      }
      if (auto s = ctx.check_interrupt(); !s) {
        std::lock_guard lock(mu);
        if (!first_error) first_error = s.error();
        return;
      }
      size_t i = next.fetch_add(1);
      if (i >= count) return;
      if (auto s = work(i); !s) {
        std::lock_guard lock(mu);
        if (!first_error) first_error = s.error();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  int n = std::max(1, std::min<int>(threads, static_cast<int>(count)));
  for (int t = 0; t < n; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (first_error) return *first_error;
  return ok();
}

Status save_hashes(const std::string& path, const image::BlockHashes& h) {
  std::ostringstream o;
  o << h.block_count() << "\n";
  for (const auto& [index, digest] : h.nonzero()) o << index << " " << image::digest_hex(digest) << "\n";
  return write_file_atomic(path, o.str(), 0600);
}

Result<image::BlockHashes> load_hashes(const std::string& path) {
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  std::istringstream in(text);
  uint64_t count = 0;
  if (!(in >> count)) return make_error(path + ": not a block hash file");
  image::BlockHashes h(count);
  uint64_t index;
  std::string hex;
  while (in >> index >> hex) {
    if (hex.size() != 64) return make_error(path + ": bad digest for block " + std::to_string(index));
    image::Digest d{};
    for (size_t i = 0; i < 32; ++i) d[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    h.set(index, d);
  }
  return h;
}

// The block's SHA-256: get_snapshot_block already checked the data against the
// service's SHA256 checksum, so that checksum is the digest; hashing 512 KiB again per
// block was a measurable share of the fetch (bake_bench). Other algorithms: hash here.
image::Digest block_digest(const aws::ebs::BlockData& block) {
  std::string raw;
  if ((block.checksum_algorithm.empty() || block.checksum_algorithm == "SHA256") &&
      aws::base64_decode(block.checksum, &raw) &&
      raw.size() == image::Digest().size()) {
    image::Digest d{};
    std::copy(raw.begin(), raw.end(), d.begin());
    return d;
  }
  return image::sha256(block.data);
}

std::string image_path(const StepContext& ctx) { return ctx.work + "/root.img"; }
std::string hashes_path(const StepContext& ctx) { return ctx.work + "/root.before"; }

}  // namespace

namespace {

Result<aws::ebs::SnapshotBlocks> list_blocks(StepContext& ctx, const std::string& snap) {
  aws::ebs::ListSnapshotBlocksRequest list;
  list.snapshot_id = snap;
  AMIBAKE_ASSIGN(auto blocks, aws::ebs::list_snapshot_blocks(ctx.client, list));
  if (blocks.block_size != 0 && blocks.block_size != static_cast<int64_t>(image::kBlockSize)) {
    return make_error(snap + ": block size " + std::to_string(blocks.block_size) +
                      " is not the 512 KiB amibake handles");
  }
  return blocks;
}

// Fetches every written block into the local image (the full fetch).
Result<json> fetch_all(StepContext& ctx) {
  std::string snap = base_source(ctx)["root_snapshot"];
  AMIBAKE_ASSIGN(auto blocks, list_blocks(ctx, snap));
  uint64_t size = static_cast<uint64_t>(blocks.volume_size) << 30;
  AMIBAKE_ASSIGN(auto img, image::BlockImage::create(image_path(ctx), size));
  image::BlockHashes before(img.block_count());
  std::mutex hashes_mu;
  std::atomic<uint64_t> done{0}, bytes{0};
  auto t0 = Clock::now();
  ctx.events.info(snap + ": " + std::to_string(blocks.blocks.size()) + " written blocks of " +
                  std::to_string(blocks.volume_size) + " GiB");
  AMIBAKE_TRY(parallel_for(ctx, blocks.blocks.size(), ctx.options.concurrency, [&](size_t i) -> Status {
    const auto& b = blocks.blocks[i];
    // get_snapshot_block checks the data against its SHA-256 checksum.
    AMIBAKE_ASSIGN(auto data, aws::ebs::get_snapshot_block(ctx.client, snap, b.index, b.token));
    AMIBAKE_TRY(img.write_block(static_cast<uint64_t>(b.index), data.data));
    auto digest = block_digest(data);
    {
      std::lock_guard lock(hashes_mu);
      before.set(static_cast<uint64_t>(b.index), digest);
    }
    uint64_t n = ++done;
    bytes += data.data.size();
    ctx.events.progress("blocks fetched", n, blocks.blocks.size(), bytes.load(), since(t0));
    return ok();
  }));
  AMIBAKE_TRY(img.sync());
  AMIBAKE_TRY(save_hashes(hashes_path(ctx), before));
  double secs = since(t0);
  return json{
      {"mode", "full"},
      {"image", image_path(ctx)},
      {"volume_size_gib", blocks.volume_size},
      {"blocks", blocks.blocks.size()},
      {"blocks_listed", blocks.blocks.size()},
      {"blocks_fetched", blocks.blocks.size()},
      {"bytes", bytes.load()},
      {"bytes_fetched", bytes.load()},
      {"seconds", secs},
      {"mib_per_second", secs > 0 ? static_cast<double>(bytes.load()) / (1 << 20) / secs : 0}};
}

}  // namespace

// ---- step: fetch ----
// --fetch full reads every written block now. lazy (and auto, where FUSE works) only
// lists them: the install step reads what it needs through the lazy disk (lazy_fetch.cc).
Result<json> step_fetch(StepContext& ctx) {
  const std::string& requested = ctx.options.fetch;
  if (requested == "auto") {
    if (std::string why = lazy_unavailable_reason(); !why.empty()) {
      ctx.events.info("lazy fetch unavailable (" + why + "): fetching every written block");
      return fetch_all(ctx);
    }
  }
  if (requested == "full") return fetch_all(ctx);
  std::string snap = base_source(ctx)["root_snapshot"];
  AMIBAKE_ASSIGN(auto blocks, list_blocks(ctx, snap));
  AMIBAKE_TRY(save_listing(ctx, blocks));
  ctx.events.info(snap + ": " + std::to_string(blocks.blocks.size()) + " written blocks of " +
                  std::to_string(blocks.volume_size) +
                  " GiB; fetching only what the install reads");
  return json{{"mode", "lazy"},
              {"requested", requested},
              {"volume_size_gib", blocks.volume_size},
              {"blocks_listed", blocks.blocks.size()}};
}

// ---- step: install ----
Result<json> install_payload_held(StepContext& ctx, const std::string& disk, bool lazy) {
  PayloadSpec spec;
  spec.lazy_disk = lazy;
  spec.volumes.reserve(ctx.options.recipe.volumes.size());
  for (const auto& v : ctx.options.recipe.volumes) {
    spec.volumes.push_back({v.datavol, v.required_by_set, v.hide_existing});
  }
  spec.datavol_binary = ctx.options.datavol_binary;
  if (ctx.results.count("resolve")) {
    const json& base = ctx.results["resolve"];
    spec.image_name = base.value("base_image", "") + " (" + base.value("base_name", "") + ")";
  }
  // The image is mounted for the length of the install: hold Ctrl-C/SIGTERM until it is
  // unmounted and detached, so even a second Ctrl-C (which exits at once) cannot leave a
  // mount or loop device behind. Pending signals are delivered right after.
  sigset_t hold, previous;
  sigemptyset(&hold);
  sigaddset(&hold, SIGINT);
  sigaddset(&hold, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &hold, &previous);
  // A lazy disk is served by this process: the install then runs in a child, so a kill -9
  // of this process cannot leave it stuck on its own FUSE file (install_payload_in_child).
  auto report = lazy ? install_payload_in_child(disk, spec) : install_payload(disk, spec);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!report) return report.error();
  for (const auto& line : report->log) ctx.events.info(line);
  return report->to_json();
}

Result<json> step_install(StepContext& ctx) {
  if (ctx.results["fetch"].value("mode", "full") == "lazy") {
    return install_lazily(ctx, [&ctx] { return fetch_all(ctx); });
  }
  return install_payload_held(ctx, image_path(ctx), /*lazy=*/false);
}

std::string root_snapshot_description(StepContext& ctx) {
  return "amibake build " + ctx.build_id + ": root of " +
         std::string(ctx.results["resolve"]["base_name"]) + " + datavol";
}

std::vector<aws::Tag> root_snapshot_tags(const StepContext& ctx) {
  auto tags = ctx.tags("root-snapshot", /*temporary=*/false);
  // Base and recipe identify what is being baked: a second build of the same finds it.
  tags.push_back({kTagBaseImage, ctx.results.at("resolve")["base_image"]});
  tags.push_back({kTagRecipeHash, ctx.options.recipe_hash});
  tags.push_back({kTagFamily, ctx.options.recipe.family});
  tags.push_back({kTagClaimAlive, claim_alive_now()});
  for (const auto& [k, v] : ctx.options.recipe.snapshot_tags) tags.push_back({k, v});
  return tags;
}

Result<bool> remove_if_failed(StepContext& ctx, const std::string& id) {
  aws::ec2::DescribeSnapshotsRequest d;
  d.snapshot_ids = {id};
  auto found = aws::ec2::describe_snapshots(ctx.client, d);
  if (!found || found->empty() || found->front().state != "error") return false;
  ctx.events.info(id + " from an earlier attempt ended in state error; replacing it");
  AMIBAKE_TRY(aws::ec2::delete_snapshot(ctx.client, id));
  AMIBAKE_TRY(ctx.journal.deleted(id));
  return true;
}

// ---- step: upload ----
Result<json> step_upload(StepContext& ctx) {
  std::string parent = base_source(ctx)["root_snapshot"];
  AMIBAKE_ASSIGN(auto img, image::BlockImage::open(image_path(ctx)));
  std::vector<image::ChangedBlock> changed;
  if (ctx.results["install"].value("mode", "full") == "lazy") {
    // The lazy install listed them (dirty blocks that differ from what was fetched).
    AMIBAKE_ASSIGN(auto indices, lazy_changed_blocks(ctx));
    for (uint64_t i : indices) changed.push_back({i, false});
  } else {
    AMIBAKE_ASSIGN(auto before, load_hashes(hashes_path(ctx)));
    image::BlockHashes after;
    AMIBAKE_ASSIGN(changed, img.changed_blocks(before, /*threads=*/2, &after));
  }
  ctx.events.info(std::to_string(changed.size()) + " blocks changed by the install");

  // An earlier attempt's snapshot (same build) is reused while it is pending (blocks can
  // be written again) or once completed; one that ended in "error" (its upload timed
  // out) is deleted and a new client token starts a fresh one.
  int attempt = 1;
  for (const auto& r : ctx.journal.state().resources) {
    if (r.step != "upload" || r.kind != "snapshot") continue;
    ++attempt;
    if (r.deleted) continue;
    AMIBAKE_ASSIGN(bool removed, remove_if_failed(ctx, r.id));
    if (!removed) --attempt;  // still usable: its token is the one to send again
  }
  aws::ebs::StartSnapshotRequest start;
  start.parent_snapshot_id = parent;
  start.volume_size = ctx.results["fetch"]["volume_size_gib"];
  start.description = root_snapshot_description(ctx);
  start.client_token = ctx.build_id + "-root" + (attempt > 1 ? "-" + std::to_string(attempt) : "");
  start.timeout = 60;  // minutes; an abandoned upload ends in state "error" by itself
  start.tags = root_snapshot_tags(ctx);
  AMIBAKE_TRY(ctx.journal.intent("upload", "snapshot", start.client_token));
  AMIBAKE_ASSIGN(auto started, aws::ebs::start_snapshot(ctx.client, start));
  std::string snap = started.snapshot_id;
  AMIBAKE_TRY(ctx.record("upload", "snapshot", snap, false));
  bool already_complete = started.status == "completed";
  if (!already_complete && started.status != "pending") {
    return make_error(snap + ": StartSnapshot answered status '" + started.status +
                          "' for client token " + start.client_token,
                      "remove it with `amibake cleanup " + ctx.build_id + "` and build again");
  }
  if (already_complete) ctx.events.info(snap + ": completed by an earlier attempt");
  if (!already_complete) {
    AMIBAKE_ASSIGN(auto yield, yield_claim_to_twin(ctx, snap));
    if (yield) return *yield;
  }
  ClaimHeartbeat heartbeat(ctx, snap);  // a twin build sees this one is alive

  std::vector<std::string> checksums(changed.size());
  std::atomic<uint64_t> done{0}, bytes{0};
  auto t0 = Clock::now();
  AMIBAKE_TRY(parallel_for(ctx, already_complete ? 0 : changed.size(), ctx.options.concurrency,
                           [&](size_t i) -> Status {
    AMIBAKE_ASSIGN(std::string data, img.read_block(changed[i].index));
    aws::ebs::PutSnapshotBlockRequest put;
    put.snapshot_id = snap;
    put.block_index = static_cast<int64_t>(changed[i].index);
    put.checksum = aws::sha256_base64(data);
    put.data = std::move(data);
    put.progress = static_cast<int64_t>(done.load() * 100 / std::max<size_t>(1, changed.size()));
    AMIBAKE_TRY(aws::ebs::put_snapshot_block(ctx.client, put));
    checksums[i] = put.checksum;
    uint64_t n = ++done;
    bytes += image::kBlockSize;
    ctx.events.progress("blocks uploaded", n, changed.size(), bytes.load(), since(t0));
    return ok();
  }));
  double upload_secs = since(t0);
  if (!already_complete) {
    aws::ebs::CompleteSnapshotRequest complete;
    complete.snapshot_id = snap;
    complete.changed_blocks_count = static_cast<int64_t>(changed.size());
    AMIBAKE_ASSIGN(complete.checksum, aws::ebs::linear_aggregate_checksum(checksums));
    AMIBAKE_ASSIGN(std::string status, aws::ebs::complete_snapshot(ctx.client, complete));
    ctx.events.info(snap + ": CompleteSnapshot answered '" + status + "'");
  }
  AMIBAKE_TRY(aws::wait_snapshot_completed(ctx.client, snap,
                                           ctx.wait_options(snap, std::chrono::minutes(120))));
  return json{{"snapshot", snap},
              {"changed_blocks", changed.size()},
              {"bytes", bytes.load()},
              {"seconds", upload_secs}};
}

}  // namespace amibake::bake
