// --faults: parsing, determinism, and each fault kind as a client sees it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <thread>

#include "emulator/faults.h"
#include "emulator/test_support.h"

namespace amibake::emu {
namespace {

using testing::Response;
using testing::TestEmu;

Options with_faults(const std::string& spec) {
  Options o;
  o.speed = 0;
  o.faults = parse_fault_spec(spec).value();
  return o;
}

TEST(FaultSpec, ParsesRatesTimesAndOperations) {
  auto spec = parse_fault_spec("throttle=0.1,5xx=0.05,hang_seconds=3,op=PutSnapshotBlock|ec2:CreateVolume");
  ASSERT_TRUE(spec.has_value()) << spec.error().message;
  EXPECT_DOUBLE_EQ(spec->throttle, 0.1);
  EXPECT_DOUBLE_EQ(spec->server_error, 0.05);
  EXPECT_DOUBLE_EQ(spec->hang_seconds, 3);
  EXPECT_EQ(spec->ops, (std::set<std::string>{"PutSnapshotBlock", "CreateVolume"}));
}

TEST(FaultSpec, RejectsUnknownKind) { EXPECT_FALSE(parse_fault_spec("explode=0.1").has_value()); }

TEST(FaultSpec, RejectsRatesAboveOne) {
  EXPECT_FALSE(parse_fault_spec("throttle=1.5").has_value());
  EXPECT_FALSE(parse_fault_spec("throttle=0.6,5xx=0.6").has_value());
}

TEST(FaultInjector, SameSeedGivesSameFaults) {
  FaultSpec spec = parse_fault_spec("throttle=0.3,5xx=0.3").value();
  FaultInjector a(spec, 42), b(spec, 42);
  int fired = 0;
  for (int i = 0; i < 200; ++i) {
    Fault fa = a.draw("X");
    EXPECT_EQ(fa, b.draw("X"));
    fired += fa != Fault::kNone;
  }
  EXPECT_GT(fired, 80);
  EXPECT_LT(fired, 160);
}

TEST(Faults, ThrottleAnswersEachProtocolsThrottlingError) {
  TestEmu emu(with_faults("throttle=1"));
  Response r = emu.ec2("DescribeVolumes");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.error_code(), "RequestLimitExceeded");
  EXPECT_EQ(emu.ebs("POST", "/snapshots", R"({"VolumeSize":1})").error_code(), "RequestThrottledException");
  EXPECT_EQ(emu.ssm("GetParameter", {{"Name", "x"}}).error_code(), "ThrottlingException");
}

TEST(Faults, ServerErrorAnswers5xx) {
  TestEmu emu(with_faults("5xx=1"));
  Response a = emu.ec2("DescribeVolumes");
  Response b = emu.ec2("DescribeVolumes");
  EXPECT_GE(a.status, 500);
  EXPECT_GE(b.status, 500);
  EXPECT_NE(a.status, b.status);  // 500 and 503 alternate
}

TEST(Faults, ResetCutsTheAnswer) {
  TestEmu emu(with_faults("reset=1"));
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 0);
}

TEST(Faults, ResetIsATcpResetBeforeAnyByte) {
  Options o = with_faults("reset=1");
  o.verify_signatures = false;  // a hand-written request below
  TestEmu emu(o);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(emu.emulator().port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string request = "GET /?Action=DescribeVolumes HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buf[64];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  int err = errno;
  ::close(fd);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, ECONNRESET);
}

TEST(Faults, HangOutlastsTheClientTimeout) {
  TestEmu emu(with_faults("hang=1,hang_seconds=1.5"));
  emu.client_timeout_seconds = 0.5;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST(Faults, SlowDelaysButAnswers) {
  TestEmu emu(with_faults("slow=1,slow_seconds=0.3"));
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

TEST(Faults, LostCarriesTheRequestOutButResetsTheAnswer) {
  TestEmu emu(with_faults("lost=1,op=CreateVolume"));
  EXPECT_EQ(emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}}).status, 0);
  Response list = emu.ec2("DescribeVolumes");
  EXPECT_EQ(list.status, 200);
  EXPECT_FALSE(list.xml("volumeId").empty()) << "the volume was made though its answer was lost";
}

TEST(FaultSpec, LostCountsTowardsTheOneFaultPerRequest) {
  EXPECT_DOUBLE_EQ(parse_fault_spec("lost=0.25").value().lost, 0.25);
  EXPECT_FALSE(parse_fault_spec("reset=0.6,lost=0.6").has_value());
}

TEST(Faults, NotFoundHidesANewResourceForAWhile) {
  TestEmu emu(with_faults("notfound=1,notfound_seconds=1"));
  std::string vol = emu.ec2("CreateVolume", {{"AvailabilityZone", "us-east-1a"}, {"Size", "1"}}).xml("volumeId");
  ASSERT_FALSE(vol.empty());
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).error_code(), "InvalidVolume.NotFound");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(emu.ec2("DescribeVolumes", {{"VolumeId.1", vol}}).status, 200);
}

TEST(Faults, OpLimitsFaultsToTheNamedOperations) {
  TestEmu emu(with_faults("throttle=1,op=DescribeVolumes"));
  EXPECT_EQ(emu.ec2("DescribeVolumes").status, 503);
  EXPECT_EQ(emu.ec2("DescribeSnapshots").status, 200);
}

}  // namespace
}  // namespace amibake::emu
