// Polling waiters (see waiter.h).
//
// The loop is deliberately plain: poll, report, decide, sleep no longer than the time
// left. The deadline is checked after each poll, so a wait with a zero timeout still
// polls once, and the last observed state is always available for the timeout error
// (the one piece of information a user needs to judge "stuck" from "slow").
//
// The typed helpers keep the latest described resource in a local so they can return
// it whole; the generic loop only sees its state string.
#include "aws/waiter.h"

#include <algorithm>
#include <thread>

namespace amibake::aws {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += " or ";
    out += "'" + s + "'";
  }
  return out;
}

std::string with_detail(const WaitState& s) {
  return s.detail.empty() ? "" : " (" + s.detail + ")";
}

}  // namespace

Result<WaitState> wait_for(std::string_view what, const PollFunction& poll,
                           const std::vector<std::string>& targets,
                           const std::vector<std::string>& failures, const WaitOptions& options) {
  using Clock = std::chrono::steady_clock;
  auto now = options.now ? options.now : [] { return Clock::now(); };
  auto sleep = options.sleep ? options.sleep
                             : [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  const std::string subject(what);
  const Clock::time_point deadline = now() + options.timeout;
  WaitState last{"(none)", ""};
  for (;;) {
    Result<WaitState> polled = poll();
    if (polled) {
      last = *polled;
    } else if (contains(options.tolerated_error_codes, polled.error().aws_code)) {
      last = WaitState{"not-found", polled.error().aws_code};
    } else {
      return polled.error().wrap(subject + ": waiting for " + quoted_list(targets));
    }
    if (options.on_progress) options.on_progress(last);
    if (contains(targets, last.state)) return last;
    if (contains(failures, last.state)) {
      return make_error(subject + ": reached state '" + last.state + "' while waiting for " +
                            quoted_list(targets) + with_detail(last),
                        "inspect the resource in the console or with the AWS CLI; it will not "
                        "recover on its own");
    }
    const Clock::time_point t = now();
    if (t >= deadline) {
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count();
      Error e = make_error(subject + ": timed out after " + std::to_string(secs) +
                               " s waiting for " + quoted_list(targets) + "; last state '" +
                               last.state + "'" + with_detail(last),
                           "the operation may still finish; wait longer or check it with the "
                           "AWS CLI");
      return e;
    }
    if (options.should_stop) AMIBAKE_TRY(options.should_stop());
    sleep(std::min<std::chrono::milliseconds>(
        options.interval, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - t)));
  }
}

Result<ec2::Volume> wait_volume_available(AwsClient& c, const std::string& volume_id,
                                          WaitOptions options) {
  options.tolerated_error_codes.emplace_back("InvalidVolume.NotFound");
  ec2::Volume last;
  auto poll = [&]() -> Result<WaitState> {
    ec2::DescribeVolumesRequest r;
    r.volume_ids = {volume_id};
    AMIBAKE_ASSIGN(std::vector<ec2::Volume> vols, ec2::describe_volumes(c, r));
    if (vols.empty()) return WaitState{"not-found", ""};
    last = std::move(vols.front());
    return WaitState{last.state, ""};
  };
  AMIBAKE_TRY(wait_for(volume_id, poll, {"available"}, {"error", "deleting", "deleted"}, options));
  return last;
}

Result<ec2::Volume> wait_volume_attached(AwsClient& c, const std::string& volume_id,
                                         const std::string& instance_id, WaitOptions options) {
  options.tolerated_error_codes.emplace_back("InvalidVolume.NotFound");
  ec2::Volume last;
  auto poll = [&]() -> Result<WaitState> {
    ec2::DescribeVolumesRequest r;
    r.volume_ids = {volume_id};
    AMIBAKE_ASSIGN(std::vector<ec2::Volume> vols, ec2::describe_volumes(c, r));
    if (vols.empty()) return WaitState{"not-found", ""};
    last = std::move(vols.front());
    if (last.state == "error" || last.state == "deleting" || last.state == "deleted") {
      return WaitState{last.state, ""};
    }
    for (const ec2::VolumeAttachment& a : last.attachments) {
      if (a.instance_id == instance_id) return WaitState{a.state, "volume " + last.state};
    }
    return WaitState{"detached", "volume " + last.state};
  };
  AMIBAKE_TRY(wait_for(volume_id + " on " + instance_id, poll, {"attached"},
                       {"error", "deleting", "deleted"}, options));
  return last;
}

Result<ec2::Snapshot> wait_snapshot_completed(AwsClient& c, const std::string& snapshot_id,
                                              WaitOptions options) {
  options.tolerated_error_codes.emplace_back("InvalidSnapshot.NotFound");
  ec2::Snapshot last;
  auto poll = [&]() -> Result<WaitState> {
    ec2::DescribeSnapshotsRequest r;
    r.snapshot_ids = {snapshot_id};
    AMIBAKE_ASSIGN(std::vector<ec2::Snapshot> snaps, ec2::describe_snapshots(c, r));
    if (snaps.empty()) return WaitState{"not-found", ""};
    last = std::move(snaps.front());
    std::string detail = last.progress;
    if (!last.state_message.empty()) detail += (detail.empty() ? "" : ", ") + last.state_message;
    return WaitState{last.state, detail};
  };
  AMIBAKE_TRY(wait_for(snapshot_id, poll, {"completed"}, {"error"}, options));
  return last;
}

Result<ec2::Image> wait_image_available(AwsClient& c, const std::string& image_id,
                                        WaitOptions options) {
  options.tolerated_error_codes.emplace_back("InvalidAMIID.NotFound");
  ec2::Image last;
  auto poll = [&]() -> Result<WaitState> {
    ec2::DescribeImagesRequest r;
    r.image_ids = {image_id};
    r.include_deprecated = true;
    AMIBAKE_ASSIGN(std::vector<ec2::Image> images, ec2::describe_images(c, r));
    if (images.empty()) return WaitState{"not-found", ""};
    last = std::move(images.front());
    return WaitState{last.state, last.state_reason};
  };
  AMIBAKE_TRY(wait_for(image_id, poll, {"available"},
                       {"failed", "error", "invalid", "deregistered", "disabled"}, options));
  return last;
}

}  // namespace amibake::aws
