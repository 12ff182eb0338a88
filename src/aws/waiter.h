// Waiting for an AWS resource to reach a state: poll, compare, sleep, until a target
// state, a failure state, or a deadline.
//
// The generic wait_for() knows nothing about EC2: it calls a poll function that
// answers the current state. The typed helpers below wire it to DescribeVolumes,
// DescribeSnapshots and DescribeImages. The clock and the sleep are injectable so
// tests run instantly and deterministically.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "aws/ec2.h"
#include "base/result.h"

namespace amibake::aws {

// What one poll observed.
struct WaitState {
  std::string state;   // "creating", "available", "pending", ...
  std::string detail;  // extra for progress lines and errors: "45%", a state message
};

struct WaitOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds interval{std::chrono::seconds(5)};
  // Called after every poll with what it observed (progress display).
  std::function<void(const WaitState&)> on_progress;
  // AWS error codes that mean "not visible yet" (eventual consistency just after a
  // create): such a poll counts as state "not-found" and the wait goes on.
  std::vector<std::string> tolerated_error_codes;
  // Asked before every sleep: an error stops the wait with that error (Ctrl-C).
  std::function<Status()> should_stop;
  // Test seams: nullptr = steady_clock::now / std::this_thread::sleep_for.
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<void(std::chrono::milliseconds)> sleep;
};

using PollFunction = std::function<Result<WaitState>()>;

// Polls `poll` until its state is one of `targets` (returns that WaitState), one of
// `failures` (error "<what>: reached state 'error' while waiting for 'available'
// (<detail>)"), `poll` fails with an error not tolerated (that error, wrapped with
// `what`), or `options.timeout` passes (error "<what>: timed out after 600 s waiting
// for 'available'; last state 'creating' (<detail>)"). Polls at least once.
Result<WaitState> wait_for(std::string_view what, const PollFunction& poll,
                           const std::vector<std::string>& targets,
                           const std::vector<std::string>& failures, const WaitOptions& options);

// Waits until the volume is "available" (created, or detached). Fails on
// "error"/"deleted"/"deleting". Returns the volume as last described.
Result<ec2::Volume> wait_volume_available(AwsClient& c, const std::string& volume_id,
                                          WaitOptions options = {});
// Waits until the volume is attached to `instance_id` (attachment state "attached").
Result<ec2::Volume> wait_volume_attached(AwsClient& c, const std::string& volume_id,
                                         const std::string& instance_id, WaitOptions options = {});
// Waits until the snapshot is "completed"; on_progress sees detail = its Progress
// ("45%"). Fails on "error".
Result<ec2::Snapshot> wait_snapshot_completed(AwsClient& c, const std::string& snapshot_id,
                                              WaitOptions options = {});
// Waits until the image is "available". Fails on "failed", "error", "invalid",
// "deregistered", "disabled", with the image's state reason as detail.
Result<ec2::Image> wait_image_available(AwsClient& c, const std::string& image_id,
                                        WaitOptions options = {});

}  // namespace amibake::aws
