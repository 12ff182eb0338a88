// Test helpers for the AWS layer (header-only, tests only): a scoped environment, a
// temporary HOME, a recording fake transport, and a local HTTP server on 127.0.0.1.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aws/http.h"
#include "base/files.h"

namespace amibake::aws::testing {

// Sets/unsets environment variables for one test and restores them afterwards.
// The constructor clears every variable that steers the AWS layer, so a developer's
// own AWS settings cannot leak into a test, and disables IMDS.
class ScopedEnv {
 public:
  ScopedEnv() {
    for (const char* v : kAwsVars) unset(v);
    set("AWS_EC2_METADATA_DISABLED", "true");
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }
  void set(const std::string& name, const std::string& value) {
    save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    save(name);
    ::unsetenv(name.c_str());
  }

 private:
  static constexpr const char* kAwsVars[] = {"AWS_ACCESS_KEY_ID",
                                             "AWS_SECRET_ACCESS_KEY",
                                             "AWS_SESSION_TOKEN",
                                             "AWS_PROFILE",
                                             "AWS_DEFAULT_PROFILE",
                                             "AWS_REGION",
                                             "AWS_DEFAULT_REGION",
                                             "AWS_CONFIG_FILE",
                                             "AWS_SHARED_CREDENTIALS_FILE",
                                             "AWS_WEB_IDENTITY_TOKEN_FILE",
                                             "AWS_ROLE_ARN",
                                             "AWS_ROLE_SESSION_NAME",
                                             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                             "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                             "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                             "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                             "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                             "AWS_EC2_METADATA_DISABLED",
                                             "AWS_ENDPOINT_URL",
                                             "AWS_ENDPOINT_URL_EC2",
                                             "AWS_ENDPOINT_URL_SSM",
                                             "AWS_ENDPOINT_URL_STS",
                                             "AWS_ENDPOINT_URL_EBS",
                                             "AWS_ENDPOINT_URL_SSO",
                                             "AWS_ENDPOINT_URL_SSO_OIDC",
                                             "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                                             "AWS_MAX_ATTEMPTS",
                                             "AWS_RETRY_MODE",
                                             "AWS_CREDENTIAL_EXPIRATION",
                                             "AWS_CA_BUNDLE",
                                             "HOME",
                                             "http_proxy",
                                             "https_proxy",
                                             "HTTP_PROXY",
                                             "HTTPS_PROXY",
                                             "ALL_PROXY",
                                             "all_proxy"};
  void save(const std::string& name) {
    for (const auto& s : saved_) {
      if (s.first == name) return;
    }
    const char* v = std::getenv(name.c_str());
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A fresh HOME with ~/.aws; removed at the end.
class TempHome {
 public:
  explicit TempHome(ScopedEnv& env) {
    auto dir = make_temp_dir("amibake-aws-test");
    EXPECT_TRUE(dir.has_value());
    path_ = dir.value_or("/nonexistent");
    std::filesystem::create_directories(path_ + "/.aws");
    env.set("HOME", path_);
  }
  ~TempHome() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void write(const std::string& rel, const std::string& content, mode_t mode = 0600) {
    auto st = write_file_atomic(path_ + "/" + rel, content, mode);
    EXPECT_TRUE(st.has_value());
  }

 private:
  std::string path_;
};

// Recording fake: answers queued results in order (the last one repeats).
class FakeTransport : public Transport {
 public:
  HttpResult send(const HttpRequest& request) override {
    std::lock_guard lock(mu_);
    requests.push_back(request);
    if (answers_.empty()) {
      HttpResult r;
      r.response.status = 200;
      return r;
    }
    HttpResult r = answers_.front();
    if (answers_.size() > 1) answers_.pop_front();
    return r;
  }
  void answer(int status, std::string body = {}, HeaderList headers = {}) {
    HttpResult r;
    r.response = HttpResponse{status, std::move(headers), std::move(body)};
    std::lock_guard lock(mu_);
    answers_.push_back(std::move(r));
  }
  void fail(TransportErrorKind kind, std::string message = "fake failure") {
    HttpResult r;
    r.error = TransportError{kind, std::move(message), ""};
    std::lock_guard lock(mu_);
    answers_.push_back(std::move(r));
  }
  std::vector<HttpRequest> requests;

 private:
  std::mutex mu_;
  std::deque<HttpResult> answers_;
};

// cpp-httplib server on 127.0.0.1, a free port, serving in a background thread.
class LocalServer {
 public:
  LocalServer() = default;
  ~LocalServer() { stop(); }
  httplib::Server& http() { return server_; }
  void keep_alive(bool on) { keep_alive_ = on; }
  // Starts listening; returns the port.
  int start() {
    // stop() waits for idle kept-alive connections to time out, so by default each
    // connection serves one request; keep_alive(true) allows reuse (1 s idle).
    server_.set_keep_alive_timeout(1);
    if (!keep_alive_) server_.set_keep_alive_max_count(1);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return port_;
  }
  void stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  bool keep_alive_ = false;
};

// Returns a loopback port with nothing listening (bound then closed).
inline int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Every secret used by these tests contains this marker, so the log scan
// (secret_scan_test.cc) can look for it.
inline constexpr const char* kSecretMarker = "Sekrit";

}  // namespace amibake::aws::testing
