#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/files.h"
#include "base/log.h"
#include "base/result.h"
#include "base/subprocess.h"

namespace amibake {
namespace {

Result<int> half(int x) {
  if (x % 2) return make_error("half: " + std::to_string(x) + " is odd", "pass an even number");
  return x / 2;
}
Result<int> quarter(int x) {
  AMIBAKE_ASSIGN(int h, half(x));
  return half(h);
}

TEST(Result, PropagatesErrorWithHint) {
  auto r = quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "half: 3 is odd");
  EXPECT_EQ(r.error().describe(), "half: 3 is odd\n  hint: pass an even number");
  EXPECT_EQ(*quarter(8), 2);
}

TEST(Log, RedactsRegisteredSecret) {
  log::register_secret("s3cr3t-value-123");
  EXPECT_EQ(log::redact("key=s3cr3t-value-123 end"), "key=<redacted> end");
}

TEST(Log, RedactsSignatureAndSecretShapes) {
  std::string authz =
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
      "aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
  std::string r = log::redact(authz);
  EXPECT_EQ(r.find("5fa00fa3"), std::string::npos);
  EXPECT_NE(r.find("AKIDEXAMPLE"), std::string::npos);  // key ids are not secret
  EXPECT_EQ(log::redact("secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY here"),
            "secret <redacted> here");
  EXPECT_EQ(log::redact("\"SessionToken\": \"FQoGZXIvYXdzEBYaDExampleToken\""),
            "\"SessionToken\": \"<redacted>\"");
}

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  auto c = run_checked({"sh", "-c", "echo boom >&2; exit 2"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message, "sh: exited with 2: boom");
}

TEST(Subprocess, ExtraEnvOverridesInherited) {
  setenv("AMIBAKE_TEST_VAR", "inherited", 1);
  RunOptions o;
  o.extra_env = {"AMIBAKE_TEST_VAR=given"};
  auto r = run_process({"sh", "-c", "echo $AMIBAKE_TEST_VAR"}, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "given\n");
}

TEST(Subprocess, MissingProgramIsAClearError) {
  auto r = run_process({"no-such-program-amibake"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot start"), std::string::npos);
}

TEST(Subprocess, TimeoutKillsChild) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto r = run_process({"sleep", "5"}, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos);
}

TEST(Files, AtomicWriteSetsModeAndAppendSyncs) {
  auto dir = make_temp_dir("amibake-test");
  ASSERT_TRUE(dir);
  std::string p = *dir + "/state.json";
  ASSERT_TRUE(write_file_atomic(p, "{}", 0600));
  struct stat st {};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(append_line_synced(p, "x"));
  EXPECT_EQ(*read_file(p), "{}x\n");
  ASSERT_TRUE(make_dirs(*dir + "/a/b/c"));
  EXPECT_EQ(stat((*dir + "/a/b/c").c_str(), &st), 0);
  EXPECT_FALSE(read_file(*dir + "/missing"));
}

}  // namespace
}  // namespace amibake
