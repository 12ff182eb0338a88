// Sign-in as users have it, end to end: the real amibake binary against a real awsemu,
// with credentials from IAM Identity Center (a loopback portal and OIDC endpoint that
// hand out awsemu's own keys) and from an assume-role profile with mfa_serial, asked on
// a real pseudo-terminal (forkpty) and without any terminal (setsid).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "aws/test_support.h"
#include "base/files.h"
#include "tests/support/background.h"

namespace amibake {
namespace {

using amibake::testing::BackgroundProcess;
using amibake::testing::run_capture;

// A portal and OIDC endpoint on one loopback server; the portal hands out awsemu's
// default keys (awsemu accepts only keys it knows).
struct FakeSso {
  aws::testing::LocalServer server;
  std::atomic<int> portal_calls{0}, oidc_calls{0};
  std::atomic<int> portal_status{200};
  std::string last_bearer;
  FakeSso() {
    server.http().Get("/federation/credentials", [this](const httplib::Request& req,
                                                        httplib::Response& res) {
      ++portal_calls;
      last_bearer = req.get_header_value("x-amz-sso_bearer_token");
      if (req.get_param_value("role_name") != "Admin" ||
          req.get_param_value("account_id") != "123456789012" || last_bearer.empty()) {
        res.status = 400;
        return;
      }
      if (portal_status != 200) {
        res.status = portal_status;
        res.set_header("x-amzn-ErrorType", "UnauthorizedException");
        res.set_content(R"({"message":"Session token not found or invalid"})", "application/json");
        return;
      }
      auto expiration =
          std::chrono::duration_cast<std::chrono::milliseconds>(
              (std::chrono::system_clock::now() + std::chrono::hours(1)).time_since_epoch())
              .count();
      nlohmann::json j = {{"roleCredentials",
                           {{"accessKeyId", "AKIAAWSEMU0EXAMPLE00"},
                            {"secretAccessKey", "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0"},
                            {"sessionToken", "Sekrit-sso-e2e-session-0001"},
                            {"expiration", expiration}}}};
      res.set_content(j.dump(), "application/json");
    });
    server.http().Post("/token", [this](const httplib::Request&, httplib::Response& res) {
      ++oidc_calls;
      res.set_content(R"({"accessToken":"Sekrit-e2e-refreshed-0001","expiresIn":28800})",
                      "application/json");
    });
    server.start();
  }
};

class CredentialsE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = make_temp_dir("amibake-creds-e2e");
    ASSERT_TRUE(d);
    dir_ = *d;
    home_ = dir_ + "/home";
    ASSERT_TRUE(make_dirs(home_ + "/.aws", 0700));
    std::string err;
    ASSERT_TRUE(emu_.start({AWSEMU_BINARY, "--port", "0", "--data", dir_ + "/emu", "--speed", "0"},
                           {}, dir_ + "/emu.log", &err))
        << err;
    std::string line = emu_.wait_for_line("awsemu listening on ", std::chrono::seconds(30));
    ASSERT_FALSE(line.empty()) << "awsemu did not start; see " << dir_ << "/emu.log";
    emu_url_ = line.substr(std::string("awsemu listening on ").size());
    emu_url_ = emu_url_.substr(0, emu_url_.find_first_of(" \r\n"));
    write(".aws/config",
          "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n"
          "sso_role_name = Admin\n"
          "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
          "sso_region = eu-west-1\n"
          "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/Baker\n"
          "source_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\n");
    write(".aws/credentials",
          "[base]\naws_access_key_id = AKIAAWSEMU0EXAMPLE00\n"
          "aws_secret_access_key = awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0\n");
  }
  void TearDown() override {
    emu_.stop();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void write(const std::string& rel, const std::string& text) {
    ASSERT_TRUE(write_file_atomic(home_ + "/" + rel, text, 0600));
  }
  void write_sso_token(int minutes_left) {
    ASSERT_TRUE(make_dirs(home_ + "/.aws/sso/cache", 0700));
    nlohmann::json j = {{"startUrl", "https://corp.awsapps.com/start"},
                        {"region", "eu-west-1"},
                        {"accessToken", "Sekrit-e2e-access-0001"},
                        {"expiresAt", aws::format_iso8601(std::chrono::system_clock::now() +
                                                          std::chrono::minutes(minutes_left))}};
    write(".aws/sso/cache/" + aws::sha1_hex("corp") + ".json", j.dump());
  }
  // The whole environment of an amibake run: nothing of the developer's leaks in.
  std::vector<std::string> environment() const {
    return {"HOME=" + home_,
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "AWS_REGION=us-east-1",
            "AWS_ENDPOINT_URL=" + emu_url_,
            "AWS_ENDPOINT_URL_SSO=" + sso_.server.url(),
            "AWS_ENDPOINT_URL_SSO_OIDC=" + sso_.server.url(),
            "AWS_EC2_METADATA_DISABLED=true",
            "XDG_STATE_HOME=" + dir_ + "/state"};
  }
  // Runs amibake without a controlling terminal (setsid), with `environment()` only.
  int run(const std::vector<std::string>& args, std::string* out, std::string* err) {
    std::vector<std::string> argv = {"env", "-i"};
    for (const auto& e : environment()) argv.push_back(e);
    argv.insert(argv.end(), {"setsid", "-w", AMIBAKE_BINARY});
    argv.insert(argv.end(), args.begin(), args.end());
    return run_capture(argv, {}, out, err);
  }

  // Runs amibake on a fresh pseudo-terminal; when the output shows `prompt`, types
  // `typed` + Enter. Returns the exit code; `screen` gets everything the terminal showed.
  int run_on_terminal(const std::vector<std::string>& args, const std::string& prompt,
                      const std::string& typed, std::string* screen) {
    std::vector<std::string> env = environment();
    env.push_back("TERM=dumb");
    std::vector<std::string> argv = {AMIBAKE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    int master = -1;
    pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    if (pid < 0) return -1;
    if (pid == 0) {
      std::vector<char*> cargv, cenv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      for (auto& e : env) cenv.push_back(e.data());
      cenv.push_back(nullptr);
      ::execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    bool typed_it = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;  // EIO: the child closed the terminal
      screen->append(buf, static_cast<size_t>(n));
      if (!typed_it && screen->find(prompt) != std::string::npos) {
        std::string line = typed + "\n";
        (void)!::write(master, line.data(), line.size());
        typed_it = true;
      }
    }
    ::close(master);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string mfa_cache_dir() const { return home_ + "/.aws/cli/cache"; }

  std::string dir_, home_, emu_url_;
  BackgroundProcess emu_;
  FakeSso sso_;
};

// --- IAM Identity Center ---

TEST_F(CredentialsE2e, SsoSessionProfileSignsRealCallsToAwsemu) {
  write_sso_token(/*minutes_left=*/180);
  std::string out, err;
  int rc = run({"gc", "--profile", "dev"}, &out, &err);
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(sso_.portal_calls.load(), 1);
  EXPECT_EQ(sso_.last_bearer, "Sekrit-e2e-access-0001");
  EXPECT_EQ(sso_.oidc_calls.load(), 0);
  EXPECT_EQ(err.find("Sekrit"), std::string::npos) << err;
}

TEST_F(CredentialsE2e, DoctorNamesTheSsoSourceAndTheIdentity) {
  write_sso_token(180);
  std::string out, err;
  run({"doctor", "--profile", "dev"}, &out, &err);
  EXPECT_NE(out.find("from IAM Identity Center sso-session corp, account 123456789012, role Admin, "
                     "token expires in 3h"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("✓ identity: account 123456789012"), std::string::npos) << out;
  EXPECT_EQ(out.find("Sekrit"), std::string::npos) << out;
}

TEST_F(CredentialsE2e, ExpiredSsoSessionExitsOneWithTheLoginCommandAndNoRetries) {
  write_sso_token(/*minutes_left=*/-30);  // no refresh token in the cache
  std::string out, err;
  int rc = run({"gc", "--profile", "dev"}, &out, &err);
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("The SSO session associated with this profile has expired or is otherwise "
                     "invalid"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("aws sso login --sso-session corp"), std::string::npos) << err;
  EXPECT_EQ(err.find("attempts"), std::string::npos) << err;  // no stack of retries
  EXPECT_EQ(sso_.portal_calls.load(), 0);
  EXPECT_EQ(err.find("Sekrit"), std::string::npos) << err;
}

TEST_F(CredentialsE2e, DoctorGivesTheLoginCommandForAnExpiredToken) {
  write_sso_token(-30);
  std::string out, err;
  int rc = run({"doctor", "--profile", "dev"}, &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("✗ credentials: profile \"dev\": The SSO session associated with this profile "
                     "has expired"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("fix: To refresh this SSO session run `aws sso login --sso-session corp`"),
            std::string::npos)
      << out;
}

TEST_F(CredentialsE2e, PortalRejectingTheTokenExitsOneWithTheLoginCommand) {
  write_sso_token(180);
  sso_.portal_status = 401;
  std::string out, err;
  int rc = run({"gc", "--profile", "dev"}, &out, &err);
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("aws sso login --sso-session corp"), std::string::npos) << err;
  EXPECT_EQ(sso_.portal_calls.load(), 1);
}

// --- mfa_serial ---

TEST_F(CredentialsE2e, MfaCodeIsAskedOnTheTerminalWithoutEchoAndTheSessionCached) {
  std::string screen;
  int rc = run_on_terminal({"gc", "--profile", "mfa"},
                           "Enter MFA code for arn:aws:iam::123456789012:mfa/alice: ", "246810",
                           &screen);
  EXPECT_EQ(rc, 0) << screen;
  EXPECT_NE(screen.find("Enter MFA code for arn:aws:iam::123456789012:mfa/alice: "),
            std::string::npos)
      << screen;
  EXPECT_EQ(screen.find("246810"), std::string::npos) << "the code was echoed:\n" << screen;
  size_t cached = 0;
  for (const auto& e : std::filesystem::directory_iterator(mfa_cache_dir())) {
    struct stat st {};
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
    ++cached;
  }
  EXPECT_EQ(cached, 1u);

  // The next run, even without a terminal, uses the cached role session.
  std::string out, err;
  EXPECT_EQ(run({"gc", "--profile", "mfa"}, &out, &err), 0) << err;
  EXPECT_EQ(err.find("Enter MFA code"), std::string::npos) << err;
}

TEST_F(CredentialsE2e, MfaWithoutATerminalFailsWithTheReasonAndTheFlag) {
  std::string out, err;
  int rc = run({"gc", "--profile", "mfa"}, &out, &err);
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("needs a code: there is no terminal to ask on"), std::string::npos) << err;
  EXPECT_NE(err.find("--mfa-code"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(mfa_cache_dir()));

  EXPECT_EQ(run({"gc", "--profile", "mfa", "--mfa-code", "135790"}, &out, &err), 0) << err;
  EXPECT_TRUE(std::filesystem::exists(mfa_cache_dir()));
}

}  // namespace
}  // namespace amibake
