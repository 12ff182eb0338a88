// Two builds of one base and recipe at once (two CI jobs started by one push).
//
// AWS has no lock, so a build claims the recipe with the resource it makes first: its
// root snapshot, tagged with the base, the recipe hash and amibake:claim-alive (a time
// the build refreshes every 30 s while it uploads and waits, and sets to "stopped" when
// it fails). Every claimant then lists the claims; the first by AWS's own start time
// (then build id) bakes, the others wait for its AMI and delete their empty snapshot.
// A claim whose heartbeat is older than two minutes belongs to a build that died
// (kill -9, a lost machine): it is ignored, and a build waiting on it bakes after all,
// so a dead build never blocks the recipe for long.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "aws/credentials.h"
#include "aws/ec2.h"
#include "bake/build_steps.h"

namespace amibake::bake {
namespace {

using nlohmann::json;
using SystemClock = std::chrono::system_clock;

constexpr auto kHeartbeatEvery = std::chrono::seconds(30);
constexpr auto kClaimStale = std::chrono::minutes(2);

// True when the claim on snapshot `s` is held by a live build.
bool claim_alive(const aws::ec2::Snapshot& s) {
  std::string beat = aws::ec2::find_tag(s.tags, kTagClaimAlive);
  if (beat == "stopped") return false;
  aws::SystemTime t{}, started{};
  bool have_beat = aws::parse_iso8601(beat, &t);
  if (aws::parse_iso8601(s.start_time, &started) && (!have_beat || started > t)) t = started;
  if (!have_beat && t == aws::SystemTime{}) return true;  // nothing readable: the wait is bounded
  return SystemClock::now() - t < kClaimStale;
}

std::vector<aws::Filter> same_bake(StepContext& ctx) {
  return {{"tag:" + std::string(kTagBaseImage), {ctx.results["resolve"]["base_image"]}},
          {"tag:" + std::string(kTagRecipeHash), {ctx.options.recipe_hash}}};
}

}  // namespace

std::string claim_alive_now() { return aws::format_iso8601(SystemClock::now()); }

Result<std::string> find_twin(StepContext& ctx, bool claimed) {
  // With --force an AMI of this recipe exists on purpose: only builds still in flight
  // (a pending AMI, a pending root snapshot) count, not finished ones.
  const bool force = ctx.options.force;
  aws::ec2::DescribeImagesRequest images;
  images.owners = {"self"};
  images.filters = same_bake(ctx);
  images.filters.push_back({"state", force ? std::vector<std::string>{"pending"}
                                           : std::vector<std::string>{"pending", "available"}});
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_images(ctx.client, images));
  for (const auto& i : found) {
    std::string other = aws::ec2::find_tag(i.tags, kTagBuildId);
    if (!other.empty() && other != ctx.build_id) return other;
  }
  aws::ec2::DescribeSnapshotsRequest snaps;
  snaps.owner_ids = {"self"};
  snaps.filters = same_bake(ctx);
  snaps.filters.push_back({"tag:" + std::string(kTagRole), {"root-snapshot"}});
  snaps.filters.push_back({"status", force ? std::vector<std::string>{"pending"}
                                            : std::vector<std::string>{"pending", "completed"}});
  AMIBAKE_ASSIGN(auto claims, aws::ec2::describe_snapshots(ctx.client, snaps));
  // The first claim wins: ordered by the snapshot's start time as AWS records it (every
  // build sees the same order), then by build id. A claim of our own that the listing
  // does not show yet (eventual consistency) counts as the newest.
  std::pair<std::string, std::string> first;  // (start time, build id)
  for (const auto& s : claims) {
    std::string other = aws::ec2::find_tag(s.tags, kTagBuildId);
    if (other.empty()) continue;
    if (other == ctx.build_id ? !claimed : !claim_alive(s)) continue;
    std::pair<std::string, std::string> key = {s.start_time, other};
    if (first.second.empty() || key < first) first = key;
  }
  return first.second == ctx.build_id ? std::string() : first.second;
}

Result<std::string> wait_for_twin(StepContext& ctx, const std::string& twin) {
  ctx.events.info("build " + twin + " is baking the same base and recipe; waiting for its AMI " +
                  "instead of baking it twice");
  aws::WaitOptions w = ctx.wait_options("build " + twin, std::chrono::minutes(60));
  auto deadline = std::chrono::steady_clock::now() + w.timeout;
  auto stopped = [&](const std::string& why) -> Result<std::string> {
    ctx.events.info("build " + twin + " " + why + "; baking here after all");
    return std::string();
  };
  while (std::chrono::steady_clock::now() < deadline) {
    AMIBAKE_TRY(ctx.check_interrupt());
    aws::ec2::DescribeImagesRequest d;
    d.owners = {"self"};
    d.filters = {{"tag:" + std::string(kTagBuildId), {twin}}};
    AMIBAKE_ASSIGN(auto images, aws::ec2::describe_images(ctx.client, d));
    for (const auto& i : images) {
      if (i.state == "available") return i.image_id;
      if (i.state != "pending") return stopped("ended with its AMI " + i.image_id + " " + i.state);
    }
    if (images.empty()) {
      // No AMI yet: the twin must still hold a live claim, or it stopped.
      aws::ec2::DescribeSnapshotsRequest s;
      s.owner_ids = {"self"};
      s.filters = {{"tag:" + std::string(kTagBuildId), {twin}},
                   {"tag:" + std::string(kTagRole), {"root-snapshot"}},
                   {"status", {"pending", "completed"}}};
      AMIBAKE_ASSIGN(auto snaps, aws::ec2::describe_snapshots(ctx.client, s));
      bool alive = false;
      for (const auto& sn : snaps) alive = alive || claim_alive(sn);
      if (!alive) return stopped("stopped without an AMI");
    }
    w.sleep(w.interval);
  }
  return stopped("did not finish within " + std::to_string(w.timeout.count()) + " minutes");
}

Result<std::optional<json>> yield_claim_to_twin(StepContext& ctx, const std::string& snapshot) {
  AMIBAKE_ASSIGN(std::string twin, find_twin(ctx, /*claimed=*/true));
  if (twin.empty()) return std::optional<json>();
  AMIBAKE_ASSIGN(std::string ami, wait_for_twin(ctx, twin));
  if (ami.empty()) return std::optional<json>();  // the twin stopped: bake after all
  // The claim goes before anything more is made; nothing of it is used.
  AMIBAKE_TRY(aws::ec2::delete_snapshot(ctx.client, snapshot));
  AMIBAKE_TRY(ctx.journal.deleted(snapshot));
  return std::optional<json>(yielded(ami, twin));
}

ClaimHeartbeat::ClaimHeartbeat(StepContext& ctx, std::string snapshot)
    : thread_([this, &ctx, snapshot = std::move(snapshot)] {
        std::unique_lock lock(mu_);
        while (!cv_.wait_for(lock, kHeartbeatEvery, [this] { return stop_; })) {
          lock.unlock();
          // A missed beat is harmless (the claim goes stale after four): errors ignored.
          (void)aws::ec2::create_tags(ctx.client, {snapshot}, {{kTagClaimAlive, claim_alive_now()}});
          lock.lock();
        }
      }) {}

ClaimHeartbeat::~ClaimHeartbeat() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void release_claims(StepContext& ctx) {
  for (const auto& r : ctx.journal.state().live_resources()) {
    if (r.kind != "snapshot") continue;
    // Only the root snapshot carries the claim tag; tagging another is harmless.
    (void)aws::ec2::create_tags(ctx.client, {r.id}, {{kTagClaimAlive, "stopped"}});
  }
}

}  // namespace amibake::bake
