// The secret scan: every line the logger emits while these tests run is captured,
// and at the end of the test program (each ctest process runs one test) the capture
// is searched for the marker every test secret carries. A hit fails the run.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "aws/test_support.h"
#include "base/log.h"

namespace amibake::aws::testing {
namespace {

std::mutex g_mu;
std::vector<std::string>& lines() {
  static std::vector<std::string> v;
  return v;
}

void capture(log::Level, std::string_view line) {
  std::lock_guard lock(g_mu);
  lines().emplace_back(line);
}

class SecretScan : public ::testing::Environment {
 public:
  void SetUp() override {
    log::set_level(log::Level::kDebug);
    log::set_sink(capture);
  }
  void TearDown() override {
    log::set_sink(nullptr);
    std::lock_guard lock(g_mu);
    for (const auto& l : lines()) {
      EXPECT_EQ(l.find(kSecretMarker), std::string::npos) << "a secret reached the log: " << l;
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kScan =
    ::testing::AddGlobalTestEnvironment(new SecretScan);

TEST(SecretScan, CaptureSeesLogLinesAndRedactsRegisteredSecrets) {
  log::register_secret("Sekrit-registered-0001");
  log::info("probe line with Sekrit-registered-0001 in it");
  std::lock_guard lock(g_mu);
  ASSERT_FALSE(lines().empty());
  EXPECT_NE(lines().back().find("probe line"), std::string::npos);
  EXPECT_EQ(lines().back().find("Sekrit"), std::string::npos) << lines().back();
}

}  // namespace
}  // namespace amibake::aws::testing
