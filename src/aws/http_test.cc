// The libcurl transport against local servers, and the URL policy.
#include "aws/http.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>
#include <algorithm>

#include "aws/client.h"
#include "aws/test_support.h"
#include "base/subprocess.h"

namespace amibake::aws {
namespace {

using testing::LocalServer;
using testing::ScopedEnv;
using Clock = std::chrono::steady_clock;

TEST(UrlPolicy, HttpsToAnyHostIsAllowed) {
  EXPECT_TRUE(check_url_policy("https://ec2.us-east-1.amazonaws.com").has_value());
}

TEST(UrlPolicy, HttpToLoopbackAndMetadataIsAllowed) {
  for (const char* u :
       {"http://127.0.0.1:8080/", "http://localhost/x", "http://[::1]:9/", "http://127.3.2.1",
        "http://169.254.169.254/latest", "http://169.254.170.2/v2/credentials"}) {
    EXPECT_TRUE(check_url_policy(u).has_value()) << u;
  }
}

TEST(UrlPolicy, HttpToNonLoopbackIsRefusedWithHint) {
  for (const char* u : {"http://ec2.us-east-1.amazonaws.com", "http://10.0.0.1/",
                        "http://127.0.0.1.evil.example/", "http://128.0.0.1/"}) {
    Status s = check_url_policy(u);
    ASSERT_FALSE(s.has_value()) << u;
    EXPECT_NE(s.error().message.find("refusing plain http"), std::string::npos);
    EXPECT_FALSE(s.error().hint.empty());
  }
}

TEST(UrlPolicy, OtherSchemesAndGarbageAreRefused) {
  EXPECT_FALSE(check_url_policy("ftp://127.0.0.1/").has_value());
  EXPECT_FALSE(check_url_policy("file:///etc/passwd").has_value());
  EXPECT_FALSE(check_url_policy("127.0.0.1:80").has_value());
  EXPECT_FALSE(check_url_policy("http://user@127.0.0.1/").has_value());
}

TEST(SplitUrl, SplitsHostPortPathQuery) {
  UrlParts p;
  ASSERT_TRUE(split_url("http://[::1]:8080/a/b?x=1", &p));
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, "8080");
  EXPECT_EQ(p.path, "/a/b");
  EXPECT_EQ(p.query, "x=1");
  ASSERT_TRUE(split_url("https://ec2.amazonaws.com", &p));
  EXPECT_EQ(p.path, "/");
  EXPECT_EQ(p.port, "");
}

TEST(CurlTransport, RefusesHttpToNonLoopbackWithoutSending) {
  ScopedEnv env;
  auto t = make_curl_transport();
  HttpRequest req;
  req.url = "http://192.0.2.1/";  // TEST-NET-1: never routed
  auto start = Clock::now();
  HttpResult r = t->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kPolicy);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(100));
}

TEST(CurlTransport, SendsHeadersBodyAndUserAgent) {
  ScopedEnv env;
  LocalServer server;
  std::string got_ua, got_body, got_x, got_method;
  server.http().Post("/echo", [&](const httplib::Request& req, httplib::Response& res) {
    got_ua = req.get_header_value("User-Agent");
    got_x = req.get_header_value("X-Test");
    got_body = req.body;
    got_method = req.method;
    res.set_header("X-Answer", "42");
    res.set_content("pong", "text/plain");
  });
  server.start();
  HttpRequest req;
  req.method = "POST";
  req.url = server.url() + "/echo";
  req.headers = {{"X-Test", "yes"}};
  req.body = "ping";
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "pong");
  EXPECT_EQ(r.response.header("x-answer"), "42");
  EXPECT_EQ(got_ua, std::string("amibake/") + AMIBAKE_VERSION);
  EXPECT_EQ(got_x, "yes");
  EXPECT_EQ(got_body, "ping");
  EXPECT_EQ(got_method, "POST");
}

TEST(CurlTransport, NonSuccessStatusIsAnAnswerNotATransportError) {
  ScopedEnv env;
  LocalServer server;
  server.http().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content("busy", "text/plain");
  });
  server.start();
  HttpRequest req;
  req.url = server.url() + "/";
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.response.status, 503);
}

TEST(CurlTransport, ClosedPortIsAConnectErrorWithinTheTimeout) {
  ScopedEnv env;
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/";
  auto start = Clock::now();
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kConnect);
  EXPECT_NE(r.error->message.find("connection failed"), std::string::npos) << r.error->message;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(CurlTransport, ServerThatStallsHitsTheTotalTimeout) {
  ScopedEnv env;
  LocalServer server;
  server.http().Get("/slow", [](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    res.set_content("late", "text/plain");
  });
  server.start();
  HttpRequest req;
  req.url = server.url() + "/slow";
  req.timeouts.total = std::chrono::milliseconds(300);
  auto start = Clock::now();
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kTimeout);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1200));
}

TEST(CurlTransport, ReadStallIsDetectedByTheLowSpeedLimit) {
  ScopedEnv env;
  LocalServer server;
  server.http().Get("/stall", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/plain", [](size_t offset, httplib::DataSink& sink) {
      if (offset == 0) {
        sink.write("x", 1);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      sink.done();
      return true;
    });
  });
  server.start();
  HttpRequest req;
  req.url = server.url() + "/stall";
  req.timeouts.low_speed_bytes = 1;
  req.timeouts.low_speed_time = std::chrono::seconds(1);
  req.timeouts.total = std::chrono::seconds(10);
  auto start = Clock::now();
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kTimeout);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2400));
}

TEST(CurlTransport, ReusesTheConnectionForSequentialRequests) {
  ScopedEnv env;
  LocalServer server;
  server.keep_alive(true);
  std::set<std::string> peers;
  std::mutex mu;
  server.http().Get("/", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    peers.insert(req.remote_addr + ":" + std::to_string(req.remote_port));
    res.set_content("ok", "text/plain");
  });
  server.start();
  auto t = make_curl_transport();
  for (int i = 0; i < 5; ++i) {
    HttpRequest req;
    req.url = server.url() + "/";
    ASSERT_TRUE(t->send(req).ok());
  }
  EXPECT_EQ(peers.size(), 1u) << "each request opened a new connection";
}

// A raw HTTP/1.1 server on 127.0.0.1: answers GETs (keep-alive), and counts each POST,
// then resets the connection without answering, as if the answer was lost after the
// server carried the request out. One thread per connection.
class LosingServer {
 public:
  LosingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard lock(mu_);
        conns_.push_back(c);
        workers_.emplace_back([this, c] { serve(c); });
      }
    });
  }
  ~LosingServer() {
    ::shutdown(fd_, SHUT_RDWR);  // ends accept()
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int c : conns_) {
        if (c >= 0) ::shutdown(c, SHUT_RDWR);  // ends a recv() on a kept-alive connection
      }
    }
    for (auto& w : workers_) w.join();  // the acceptor is gone: workers_ no longer grows
    for (int c : conns_) {
      if (c >= 0) ::close(c);
    }
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  int posts() const { return posts_.load(); }

 private:
  void serve(int c) {
    std::string buf;
    char chunk[4096];
    auto fill = [&] {
      ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
      if (n > 0) buf.append(chunk, static_cast<size_t>(n));
      return n > 0;
    };
    for (;;) {
      size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (!fill()) return;
        continue;
      }
      std::string head = buf.substr(0, end);
      size_t length = 0;
      if (size_t at = head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(head.substr(at + 16));
      }
      while (buf.size() < end + 4 + length) {
        if (!fill()) return;
      }
      buf.erase(0, end + 4 + length);
      if (head.rfind("POST", 0) == 0) {
        ++posts_;
        linger l{1, 0};  // closing now sends a reset: no answer
        ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        std::lock_guard lock(mu_);
        std::replace(conns_.begin(), conns_.end(), c, -1);  // closed here, not by the destructor
        ::close(c);
        return;
      }
      std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      (void)!::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> posts_{0};
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

// A request whose answer is lost on a reused connection is sent again by libcurl itself;
// a non-idempotent one therefore goes out on a fresh connection, which libcurl never
// resends (http.h, HttpRequest::idempotent).
TEST(CurlTransport, NonIdempotentRequestIsSentOnceWhenItsAnswerIsLost) {
  for (bool idempotent : {true, false}) {
    ScopedEnv env;
    LosingServer server;
    auto t = make_curl_transport();
    HttpRequest get;
    get.url = server.url();
    ASSERT_TRUE(t->send(get).ok());  // leaves a connection to reuse
    HttpRequest post;
    post.method = "POST";
    post.url = server.url();
    post.body = "Action=CreateSnapshot";
    post.idempotent = idempotent;
    HttpResult r = t->send(post);
    EXPECT_FALSE(r.ok());
    if (idempotent) {
      // libcurl's own resend on a reused connection that died without an answer: why
      // non-idempotent requests must not go out on one.
      EXPECT_EQ(server.posts(), 2) << "libcurl no longer resends; the fresh connection may be moot";
    } else {
      EXPECT_EQ(server.posts(), 1) << "a non-idempotent request was carried out twice";
    }
  }
}

TEST(CurlTransport, LoopbackBypassesAnEnvironmentProxy) {
  ScopedEnv env;
  env.set("http_proxy", "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  env.set("HTTP_PROXY", "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  LocalServer server;
  server.http().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("direct", "text/plain");
  });
  server.start();
  HttpRequest req;
  req.url = server.url() + "/";
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.response.body, "direct");
}

// A TLS server on loopback with a freshly made self-signed certificate.
struct TlsServer {
  std::string dir, cert, key;
  std::unique_ptr<httplib::SSLServer> server;
  std::thread thread;
  int port = 0;
  bool ok = false;
  TlsServer() {
    dir = make_temp_dir("amibake-tls").value_or("/tmp");
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    auto r = run_process({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                          key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                          "subjectAltName=IP:127.0.0.1"});
    if (!r || r->exit_code != 0) return;
    server = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    server->Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("secure", "text/plain");
    });
    server->set_keep_alive_max_count(1);
    port = server->bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server->listen_after_bind(); });
    while (!server->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ok = true;
  }
  ~TlsServer() {
    if (thread.joinable()) {
      server->stop();
      thread.join();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port) + "/"; }
};

TEST(CurlTransport, UntrustedCertificateIsATlsError) {
  ScopedEnv env;
  TlsServer tls;
  if (!tls.ok) GTEST_SKIP() << "openssl could not make a test certificate";
  HttpRequest req;
  req.url = tls.url();
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kTls) << r.error->message;
  EXPECT_NE(r.error->hint.find("CA"), std::string::npos);
}

TEST(CurlTransport, AwsCaBundleAddsTrustedCertificates) {
  ScopedEnv env;
  TlsServer tls;
  if (!tls.ok) GTEST_SKIP() << "openssl could not make a test certificate";
  env.set("AWS_CA_BUNDLE", tls.cert);
  HttpRequest req;
  req.url = tls.url();
  HttpResult r = make_curl_transport()->send(req);
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.response.body, "secure");
}

// The profile's ca_bundle reaches the transport make_client builds: the self-signed
// server is trusted through it, and only through it.
TEST(CurlTransport, ProfileCaBundleIsTrustedAndOnlyIt) {
  ScopedEnv env;
  testing::TempHome home(env);
  TlsServer tls;
  if (!tls.ok) GTEST_SKIP() << "openssl could not make a test certificate";
  env.set("AWS_ACCESS_KEY_ID", "AKIDTLS");
  env.set("AWS_SECRET_ACCESS_KEY", "Sekrit-tls-0001");
  home.write(".aws/config", "[profile proxy]\nregion = us-east-1\nca_bundle = " + tls.cert +
                                "\n[profile plain]\nregion = us-east-1\n");
  HttpRequest req;
  req.url = tls.url();
  ClientSettings with;
  with.profile = "proxy";
  auto c = make_client(with);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  HttpResult r = (*c)->transport()->send(req);
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.response.body, "secure");

  ClientSettings without;
  without.profile = "plain";
  auto d = make_client(without);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  HttpResult f = (*d)->transport()->send(req);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error->kind, TransportErrorKind::kTls) << f.error->message;
  EXPECT_NE(f.error->hint.find("ca_bundle"), std::string::npos) << f.error->hint;
  EXPECT_NE(f.error->hint.find("AWS_CA_BUNDLE"), std::string::npos) << f.error->hint;
}

TEST(CurlTransport, AwsCaBundleWinsOverTheProfile) {
  ScopedEnv env;
  TlsServer tls;
  if (!tls.ok) GTEST_SKIP() << "openssl could not make a test certificate";
  HttpRequest req;
  req.url = tls.url();
  env.set("AWS_CA_BUNDLE", tls.cert);
  EXPECT_TRUE(make_curl_transport("/nonexistent/bundle.pem")->send(req).ok());
  env.set("AWS_CA_BUNDLE", "/nonexistent/bundle.pem");
  HttpResult r = make_curl_transport(tls.cert)->send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, TransportErrorKind::kTls) << r.error->message;
}

}  // namespace
}  // namespace amibake::aws
