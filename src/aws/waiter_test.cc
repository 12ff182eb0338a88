// Tests for the waiters: a fake clock advanced by the fake sleep, so every test runs
// instantly and the timeout arithmetic is exact.
#include "aws/waiter.h"

#include <gtest/gtest.h>

#include "aws/ops_fake_transport_test.h"

namespace amibake::aws {
namespace {

using namespace std::chrono_literals;
using testing::make_scripted_client;
using testing::ScriptedTransport;

// A poll function answering a scripted sequence of states (the last one repeats).
struct Script {
  std::vector<Result<WaitState>> answers;
  size_t calls = 0;
  PollFunction fn() {
    return [this]() -> Result<WaitState> {
      const size_t i = std::min(calls, answers.size() - 1);
      ++calls;
      return answers[i];
    };
  }
};

struct FakeTime {
  std::chrono::steady_clock::time_point t{};
  std::vector<std::chrono::milliseconds> sleeps;
  WaitOptions options(std::chrono::milliseconds timeout, std::chrono::milliseconds interval) {
    WaitOptions o;
    o.timeout = timeout;
    o.interval = interval;
    o.now = [this] { return t; };
    o.sleep = [this](std::chrono::milliseconds d) {
      sleeps.push_back(d);
      t += d;
    };
    return o;
  }
};

TEST(Waiter, ReturnsWhenTargetReached) {
  Script s{{WaitState{"creating", ""}, WaitState{"creating", ""}, WaitState{"available", ""}}};
  FakeTime time;
  auto r = wait_for("vol-1", s.fn(), {"available"}, {"error"}, time.options(60s, 5s));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->state, "available");
  EXPECT_EQ(s.calls, 3u);
  EXPECT_EQ(time.sleeps, (std::vector<std::chrono::milliseconds>{5s, 5s}));
}

TEST(Waiter, FailureStateStopsWithDetail) {
  Script s{{WaitState{"pending", "10%"}, WaitState{"error", "internal failure"}}};
  FakeTime time;
  auto r = wait_for("snap-1", s.fn(), {"completed"}, {"error"}, time.options(60s, 1s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "snap-1: reached state 'error' while waiting for 'completed' (internal failure)");
  EXPECT_FALSE(r.error().hint.empty());
}

TEST(Waiter, TimeoutErrorHoldsLastObservedState) {
  Script s{{WaitState{"pending", "45%"}}};
  FakeTime time;
  auto r = wait_for("snap-1", s.fn(), {"completed"}, {"error"}, time.options(10s, 3s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "snap-1: timed out after 10 s waiting for 'completed'; last state 'pending' (45%)");
  // Polls at 0, 3, 6, 9 and at the 10 s deadline (the last sleep is cut to 1 s).
  EXPECT_EQ(s.calls, 5u);
  EXPECT_EQ(time.sleeps.back(), 1s);
}

TEST(Waiter, ZeroTimeoutStillPollsOnce) {
  Script s{{WaitState{"available", ""}}};
  FakeTime time;
  auto r = wait_for("vol-1", s.fn(), {"available"}, {}, time.options(0s, 1s));
  ASSERT_TRUE(r);
  EXPECT_EQ(s.calls, 1u);
}

TEST(Waiter, ProgressCallbackSeesEveryPoll) {
  Script s{
      {WaitState{"pending", "0%"}, WaitState{"pending", "50%"}, WaitState{"completed", "100%"}}};
  FakeTime time;
  WaitOptions o = time.options(60s, 1s);
  std::vector<std::string> seen;
  o.on_progress = [&](const WaitState& st) { seen.push_back(st.state + " " + st.detail); };
  ASSERT_TRUE(wait_for("snap-1", s.fn(), {"completed"}, {"error"}, o));
  EXPECT_EQ(seen, (std::vector<std::string>{"pending 0%", "pending 50%", "completed 100%"}));
}

TEST(Waiter, ToleratedErrorCodeKeepsWaiting) {
  Error not_found = make_error("ec2 DescribeImages: InvalidAMIID.NotFound");
  not_found.aws_code = "InvalidAMIID.NotFound";
  Script s{{not_found, WaitState{"available", ""}}};
  FakeTime time;
  WaitOptions o = time.options(60s, 1s);
  o.tolerated_error_codes = {"InvalidAMIID.NotFound"};
  auto r = wait_for("ami-1", s.fn(), {"available"}, {"failed"}, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(s.calls, 2u);
}

TEST(Waiter, OtherPollErrorsStopTheWait) {
  Error denied =
      make_error("ec2 DescribeVolumes: UnauthorizedOperation", "grant ec2:DescribeVolumes");
  denied.aws_code = "UnauthorizedOperation";
  Script s{{denied}};
  FakeTime time;
  auto r = wait_for("vol-1", s.fn(), {"available"}, {}, time.options(60s, 1s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "vol-1: waiting for 'available': ec2 DescribeVolumes: UnauthorizedOperation");
  EXPECT_EQ(r.error().aws_code, "UnauthorizedOperation");
  EXPECT_EQ(r.error().hint, "grant ec2:DescribeVolumes");
}

TEST(Waiter, TimeoutWhileNotFoundSaysNotFound) {
  Error not_found = make_error("not found");
  not_found.aws_code = "InvalidVolume.NotFound";
  Script s{{not_found}};
  FakeTime time;
  WaitOptions o = time.options(2s, 1s);
  o.tolerated_error_codes = {"InvalidVolume.NotFound"};
  auto r = wait_for("vol-1", s.fn(), {"available"}, {}, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("last state 'not-found' (InvalidVolume.NotFound)"),
            std::string::npos)
      << r.error().message;
}

std::string snapshot_answer(const std::string& state, const std::string& progress) {
  return "<DescribeSnapshotsResponse><snapshotSet><item><snapshotId>snap-1</snapshotId>"
         "<status>" +
         state + "</status><progress>" + progress +
         "</progress></item></snapshotSet></DescribeSnapshotsResponse>";
}

TEST(TypedWaiter, SnapshotCompletedReportsProgress) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(200, snapshot_answer("pending", "10%"));
  transport->answer(200, snapshot_answer("pending", "80%"));
  transport->answer(200, snapshot_answer("completed", "100%"));
  auto client = make_scripted_client(transport);
  FakeTime time;
  WaitOptions o = time.options(60s, 2s);
  std::vector<std::string> progress;
  o.on_progress = [&](const WaitState& s) { progress.push_back(s.detail); };
  auto snap = wait_snapshot_completed(*client, "snap-1", o);
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ(snap->state, "completed");
  EXPECT_EQ(progress, (std::vector<std::string>{"10%", "80%", "100%"}));
  EXPECT_NE(transport->requests()[0].body.find("SnapshotId.1=snap-1"), std::string::npos);
}

TEST(TypedWaiter, VolumeAttachedLooksAtTheInstanceAttachment) {
  auto transport = std::make_shared<ScriptedTransport>();
  auto answer = [](const std::string& vstate, const std::string& astate) {
    return "<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><status>" + vstate +
           "</status><attachmentSet><item><instanceId>i-1</instanceId><status>" + astate +
           "</status></item></attachmentSet></item></volumeSet></DescribeVolumesResponse>";
  };
  transport->answer(200, answer("in-use", "attaching"));
  transport->answer(200, answer("in-use", "attached"));
  auto client = make_scripted_client(transport);
  FakeTime time;
  auto v = wait_volume_attached(*client, "vol-1", "i-1", time.options(60s, 1s));
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->attachments[0].state, "attached");
  EXPECT_EQ(transport->requests().size(), 2u);
}

TEST(TypedWaiter, ImageFailedStopsWithReason) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(200,
                    "<DescribeImagesResponse><imagesSet><item><imageId>ami-1</imageId>"
                    "<imageState>failed</imageState><stateReason><message>copy failed"
                    "</message></stateReason></item></imagesSet></DescribeImagesResponse>");
  auto client = make_scripted_client(transport);
  FakeTime time;
  auto img = wait_image_available(*client, "ami-1", time.options(60s, 1s));
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().message,
            "ami-1: reached state 'failed' while waiting for 'available' (copy failed)");
}

}  // namespace
}  // namespace amibake::aws

namespace amibake::aws {
namespace {

TEST(Waiter, ShouldStopEndsTheWaitWithItsErrorBeforeSleeping) {
  int polls = 0, sleeps = 0;
  WaitOptions o;
  o.sleep = [&](std::chrono::milliseconds) { ++sleeps; };
  o.should_stop = [&]() -> Status {
    if (polls >= 2) return make_error("interrupted", "", 130);
    return ok();
  };
  auto r = wait_for("vol-1", [&]() -> Result<WaitState> { ++polls; return WaitState{"creating", ""}; },
                    {"available"}, {"error"}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 130);
  EXPECT_EQ(polls, 2);
  EXPECT_EQ(sleeps, 1);
}

}  // namespace
}  // namespace amibake::aws
