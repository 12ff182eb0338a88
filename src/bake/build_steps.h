// Internal to the bake: the context every step sees, and the steps that live in
// other files (direct.cc). Not part of the public interface (build.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "aws/client.h"
#include "aws/ebs.h"
#include "aws/model.h"
#include "aws/query.h"
#include "aws/waiter.h"
#include "bake/build.h"
#include "bake/events.h"
#include "bake/journal.h"

namespace amibake::bake {

struct StepContext {
  aws::AwsClient& client;
  const BuildOptions& options;
  Events& events;
  const std::atomic<int>& interrupts;
  Journal& journal;
  std::string build_id;
  std::string work;  // this build's local folder: <work_dir>/<build_id>
  // Results of finished steps, by step name (also in the journal).
  std::map<std::string, nlohmann::json> results;
  std::string current_step;  // the step running now (journal intents name it)
  // Clients for the other regions publish reaches, made on first use.
  std::map<std::string, std::unique_ptr<aws::AwsClient>> region_clients;

  // The client for `region` (the build's own for its region).
  Result<aws::AwsClient*> client_in(const std::string& region);

  // Returns an error with exit code 130 once Ctrl-C was pressed.
  Status check_interrupt() const;
  // Tags for a resource this build makes.
  std::vector<aws::Tag> tags(const std::string& role, bool temporary) const;
  // Options for an AWS waiter in a step: AMIBAKE_POLL_MS interval, NotFound just after
  // create tolerated, progress as events, and a sleep that ends at once on Ctrl-C.
  aws::WaitOptions wait_options(const std::string& what, std::chrono::minutes timeout);
  // Journals a created resource of this build.
  Status record(const std::string& step, const std::string& kind, const std::string& id,
                bool temporary);
};

// The image the new root starts from, as a step result (build.cc): the account's copy
// (direct "own-copy") or the base itself or its copy (chroot "source"). Fields: image,
// root_snapshot, root_device, mappings, architecture, boot_mode, ena, sriov, tpm,
// virtualization, uefi_data.
inline const nlohmann::json& base_source(StepContext& ctx) {
  return ctx.results.count("own-copy") ? ctx.results["own-copy"] : ctx.results["source"];
}
// The new root snapshot's id (direct "upload", chroot "snapshot"), or "" before it exists.
inline std::string new_root_snapshot(StepContext& ctx) {
  for (const char* step : {"upload", "snapshot"}) {
    if (ctx.results.count(step)) return ctx.results[step].value("snapshot", "");
  }
  return "";
}

// True when a request got no answer at all (connection reset, timeout): it may or may
// not have been carried out. The retry layer does not repeat such non-idempotent calls
// (AttachVolume, CreateSnapshot, RegisterImage...), so the step looks at the outcome.
inline bool got_no_answer(const Error& e) { return e.aws_code.empty() && e.http_status == 0; }

// True when every computeResources field of `update` (as step "batch" sends it) already
// has that value in compute environment `ce` (ec2Configuration by imageIdOverride,
// launchTemplate by version): the update was made, perhaps by an earlier attempt.
bool compute_environment_has(const aws::model::Json& ce, const aws::model::Json& update);

// Puts back the pointers build `journal` moved (Journal::pointer: compute environments,
// launch template default versions, SSM parameters; newest first), and deletes the
// launch template versions it made. A pointer someone else moved since is left as it is.
// Appends what it could not do to `failed`; `client_in` gives each region's client.
void restore_pointers(Journal& journal, const std::function<Result<aws::AwsClient*>(const std::string&)>& client_in,
                      Events& events, std::vector<std::string>& failed);

// Finds the account's copy of the base (by tag) or makes it (CopyImage with a client
// token from the base id; a shared cache kept across builds) and waits until it is
// available; returns its id. A base the account owns is returned as is.
Result<std::string> find_or_copy_base(StepContext& ctx);
// Describes `image_id` as a source for the new AMI (see base_source for the fields).
Result<nlohmann::json> describe_source(StepContext& ctx, const std::string& image_id);

// The direct method's data steps (direct.cc). Each returns its journaled result.
Result<nlohmann::json> step_fetch(StepContext& ctx);
Result<nlohmann::json> step_install(StepContext& ctx);
Result<nlohmann::json> step_upload(StepContext& ctx);

// The new root snapshot's description and tags (both methods make it the same way).
std::string root_snapshot_description(StepContext& ctx);
std::vector<aws::Tag> root_snapshot_tags(const StepContext& ctx);
// Deletes snapshot `id` of an earlier attempt if it ended in state "error" (an abandoned
// or failed snapshot) and journals that; returns whether it did.
Result<bool> remove_if_failed(StepContext& ctx, const std::string& id);

// Two builds of one base and recipe at once (twin.cc). The root snapshot is the claim:
// find_twin returns the build id to wait for, or "" to go on. An AMI of another build
// (pending or available) always wins; among live claims (root snapshots whose
// amibake:claim-alive heartbeat is fresh) the first by AWS's start time wins. With
// `claimed` false (nothing started yet), any other build's live claim is one to wait for.
Result<std::string> find_twin(StepContext& ctx, bool claimed);
// Waits, bounded, for `twin`'s AMI and returns its id; returns "" when the twin stopped
// without one (its claim released, gone or stale), so this build bakes after all. A
// caller holding a claim deletes it only once it has the AMI.
Result<std::string> wait_for_twin(StepContext& ctx, const std::string& twin);
// For a build that just claimed the recipe with root snapshot `snapshot`: when an earlier
// claim wins and its AMI appears, deletes `snapshot` and returns the step result that ends
// this build with that AMI (yielded); nullopt to go on baking.
Result<std::optional<nlohmann::json>> yield_claim_to_twin(StepContext& ctx,
                                                          const std::string& snapshot);
// The value of a fresh amibake:claim-alive tag (now, ISO 8601).
std::string claim_alive_now();
// Keeps this build's claim alive while it lives: retags `snapshot` with
// amibake:claim-alive every 30 s from a thread of its own.
class ClaimHeartbeat {
 public:
  ClaimHeartbeat(StepContext& ctx, std::string snapshot);
  ~ClaimHeartbeat();
  ClaimHeartbeat(const ClaimHeartbeat&) = delete;
  ClaimHeartbeat& operator=(const ClaimHeartbeat&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};
// Marks this build's claims "stopped" (a failed build that may be resumed later), so a
// twin waiting on it bakes at once instead of waiting for the claim to go stale.
void release_claims(StepContext& ctx);
// The step result that ends a build with `ami` (the driver then removes what else this
// build made): {"reuse_image": ami, "yielded_to": twin}.
inline nlohmann::json yielded(const std::string& ami, const std::string& twin) {
  return {{"reuse_image", ami}, {"yielded_to", twin}};
}

// Installs the payload into the disk (a local image file, a lazy disk's FUSE file, or an
// attached block device) with Ctrl-C/SIGTERM held while it is mounted; returns the
// install report as JSON. `lazy`: the disk is a lazy disk's file (direct I/O loop, ext4
// without background bitmap reads).
Result<nlohmann::json> install_payload_held(StepContext& ctx, const std::string& disk,
                                            bool lazy = false);

// The lazy fetch (lazy_fetch.cc). save_listing keeps the snapshot's block list and
// tokens for install_lazily, which installs through a lazy disk (falling back to
// `full_fetch` with --fetch auto when FUSE cannot be used) and lists the blocks to upload
// for lazy_changed_blocks. lazy_unavailable_reason is "" when /dev/fuse opens.
// release_lazy_leftovers unmounts and detaches what a killed lazy install left under
// `work` (one event line per action).
Status save_listing(const StepContext& ctx, const aws::ebs::SnapshotBlocks& blocks);
Result<nlohmann::json> install_lazily(StepContext& ctx,
                                      const std::function<Result<nlohmann::json>()>& full_fetch);
Result<std::vector<uint64_t>> lazy_changed_blocks(const StepContext& ctx);
std::string lazy_unavailable_reason();
void release_lazy_leftovers(const std::string& work, Events& events);

// Publishing (publish.cc): checked right after resolve, run after verify.
Result<nlohmann::json> step_publish_check(StepContext& ctx);
// What step_publish_check checks, for plan too: regions enabled, templates and compute
// environments present and updatable in every region, sharing possible with the key.
Result<nlohmann::json> check_publish(
    aws::AwsClient& home, const BuildOptions& options,
    const std::function<Result<aws::AwsClient*>(const std::string&)>& client_in);
Result<nlohmann::json> step_copy(StepContext& ctx);
Result<nlohmann::json> step_share(StepContext& ctx);
Result<nlohmann::json> step_ssm(StepContext& ctx);
Result<nlohmann::json> step_launch_templates(StepContext& ctx);
Result<nlohmann::json> step_batch(StepContext& ctx);
Result<nlohmann::json> step_deprecate(StepContext& ctx);
// Per region: AMI, snapshots, SSM version, launch template versions, Batch updates.
nlohmann::json publish_summary(StepContext& ctx);

// The chroot method's steps (chroot.cc). Each returns its journaled result.
Result<nlohmann::json> step_host(StepContext& ctx);
Result<nlohmann::json> step_source(StepContext& ctx);
Result<nlohmann::json> step_volume(StepContext& ctx);
Result<nlohmann::json> step_attach(StepContext& ctx);
Result<nlohmann::json> step_install_device(StepContext& ctx);
Result<nlohmann::json> step_detach(StepContext& ctx);
Result<nlohmann::json> step_snapshot(StepContext& ctx);
Result<nlohmann::json> step_remove_volume(StepContext& ctx);

}  // namespace amibake::bake
