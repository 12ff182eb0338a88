// Integration against moto (a second, independent AWS endpoint; DESIGN.md) with
// signature checking on: INITIAL_NO_AUTH_ACTION_COUNT=2 lets us create an IAM user
// and key unauthenticated, after which moto verifies every SigV4 signature.
// Skips with a reason where moto is not installed.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <pugixml.hpp>

#include "aws/client.h"
#include "aws/sts.h"
#include "aws/test_support.h"
#include "base/subprocess.h"

extern char** environ;

namespace amibake::aws {
namespace {

using testing::ScopedEnv;

class MotoServer {
 public:
  // Starts moto on a free loopback port; returns false (with `why`) when it cannot.
  bool start(std::string* why) {
    auto probe = run_process({"python3", "-c", "import moto.server"});
    if (!probe || probe->exit_code != 0) {
      *why = "moto is not installed (python3 -c 'import moto.server' failed)";
      return false;
    }
    port_ = testing::closed_port();
    std::string port = std::to_string(port_);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    env_strings.emplace_back("INITIAL_NO_AUTH_ACTION_COUNT=2");
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {"python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", port};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      *why = "cannot start moto";
      pid_ = -1;
      return false;
    }
    auto t = make_curl_transport();
    for (int i = 0; i < 200; ++i) {
      HttpRequest req;
      req.url = url() + "/moto-api/";
      req.timeouts.total = std::chrono::milliseconds(500);
      HttpResult r = t->send(req);
      if (r.ok() && r.response.status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    *why = "moto did not answer within 20 s";
    return false;
  }
  ~MotoServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// Runs one IAM Query call (unauthenticated phase) and returns its body.
Result<std::string> iam_call(AwsClient& c, const std::string& params) {
  AwsRequest r;
  r.service = "iam";
  r.operation = params.substr(7, params.find('&') - 7);
  r.protocol = Protocol::kQuery;
  r.body = params + "&Version=2010-05-08";
  AMIBAKE_ASSIGN(AwsResponse resp, c.send(r));
  return resp.body;
}

class MotoSigned : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!moto_.start(&why)) GTEST_SKIP() << why;
    auto boot = AwsClient::for_endpoint(moto_.url(),
                                        {"AKIDBOOT", "Sekrit-boot-0001", "", std::nullopt, "boot"});
    ASSERT_TRUE(iam_call(*boot, "Action=CreateUser&UserName=baker").has_value());
    auto key = iam_call(*boot, "Action=CreateAccessKey&UserName=baker");
    ASSERT_TRUE(key.has_value()) << key.error().message;
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(key->c_str()));
    auto ak =
        doc.child("CreateAccessKeyResponse").child("CreateAccessKeyResult").child("AccessKey");
    creds_.access_key_id = ak.child("AccessKeyId").text().as_string();
    creds_.secret_access_key = ak.child("SecretAccessKey").text().as_string();
    creds_.source = "moto IAM user baker";
    creds_.register_secrets();
    ASSERT_FALSE(creds_.empty());
  }
  ScopedEnv env_;
  MotoServer moto_;
  Credentials creds_;
};

TEST_F(MotoSigned, OurSignatureIsAccepted) {
  auto client = AwsClient::for_endpoint(moto_.url(), creds_);
  auto id = sts::get_caller_identity(*client);
  ASSERT_TRUE(id.has_value()) << id.error().describe();
  EXPECT_EQ(id->arn, "arn:aws:iam::123456789012:user/baker");
  EXPECT_EQ(id->account, "123456789012");
}

TEST_F(MotoSigned, WrongSecretGivesAClearAuthenticationError) {
  Credentials wrong = creds_;
  wrong.secret_access_key = "Sekrit-wrong-secret-0001";
  auto client = AwsClient::for_endpoint(moto_.url(), wrong);
  auto id = sts::get_caller_identity(*client);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().aws_code, "SignatureDoesNotMatch") << id.error().message;
  EXPECT_EQ(id.error().http_status, 403);
  EXPECT_NE(id.error().hint.find("credentials were rejected"), std::string::npos);
  EXPECT_EQ(id.error().describe().find("Sekrit"), std::string::npos) << "no secret in the error";
}

}  // namespace
}  // namespace amibake::aws
