// The HTTP side of awsemu: cpp-httplib on 127.0.0.1 with a large thread pool (each
// keep-alive connection holds a worker; the EBS benchmark runs 32 at once and hang
// faults hold workers for their whole hang), every method routed to one handler that
// runs the dispatch stages, and a small flusher thread that saves the world when
// block writes have changed it (block writes do not save synchronously; every other
// change does).
//
// Two things cpp-httplib 0.11 does not offer are done from outside, on its sockets found
// through /proc/self/fd: a listen backlog larger than its compiled-in 5 (needed for 32
// clients connecting at once), and a real TCP reset for the "reset" and "hang" faults
// (handlers never see their socket). Both are Linux-only, as awsemu is.
#include "emulator/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <thread>

#include "base/log.h"
#include "emulator/dispatch.h"

namespace amibake::emu {

struct Emulator::Impl {
  httplib::Server http;
  std::thread serve_thread;
  std::thread flush_thread;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  bool started = false;
  std::atomic<uint64_t> fault_sequence{0};
};

namespace {

void send_reply(Reply&& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [k, v] : reply.headers) res.set_header(k, v);
  if (reply.body.size() >= size_t{64} * 1024) {
    // Large bodies (GetSnapshotBlock) are streamed from a shared copy, not copied again.
    auto body = std::make_shared<std::string>(std::move(reply.body));
    res.set_content_provider(body->size(), reply.content_type,
                             [body](size_t offset, size_t length, httplib::DataSink& sink) {
                               sink.write(body->data() + offset, length);
                               return true;
                             });
  } else {
    res.set_content(reply.body, reply.content_type);
  }
}

// Returns the port of a socket address (IPv4 or IPv6), or -1.
int port_of(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return -1;
}

// Calls `fn` with each socket descriptor of this process until it returns true.
void for_each_socket(const std::function<bool(int fd)>& fn) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* entry = ::readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    struct stat st;
    if (fd <= 2 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (fn(fd)) break;
  }
  ::closedir(dir);
}

// The local and peer ports of a socket (-1 when it has no peer: a listening socket).
std::pair<int, int> ports_of(int fd) {
  sockaddr_storage peer{}, local{};
  socklen_t peer_len = sizeof peer, local_len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return {-1, -1};
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
    return {port_of(local), -1};
  }
  return {port_of(local), port_of(peer)};
}

// Aborts the TCP connection `req` came on with a RST, before any byte of the answer.
// httplib does not hand its socket to handlers, so the socket is found among this
// process's descriptors by its two ports (local = server port, peer = client port: a
// client socket in the same process has them the other way round). connect() with
// AF_UNSPEC makes Linux drop the connection with a reset while the descriptor stays
// open for httplib to close as usual. Returns false if the socket was not found.
bool abort_connection(const httplib::Request& req) {
  bool done = false;
  for_each_socket([&](int fd) {
    if (ports_of(fd) != std::pair{req.local_port, req.remote_port}) return false;
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    (void)::connect(fd, &unspec, sizeof unspec);
    done = true;
    return true;
  });
  return done;
}

// Raises the listen backlog of our listening socket. cpp-httplib 0.11 is compiled with
// a backlog of 5, so 32 clients connecting at once overflow the accept queue and some
// connections die (seen as "Failure when receiving data from the peer" in the
// benchmark, and ListenOverflows in nstat). listen() again on a listening socket only
// changes its backlog; the socket is found by its port and by having no peer.
void raise_listen_backlog(int port) {
  for_each_socket([&](int fd) {
    if (ports_of(fd) == std::pair{port, -1}) (void)::listen(fd, SOMAXCONN);
    return false;
  });
}

// Ends the server's side of every open connection. On stop, cpp-httplib's workers
// notice only between requests, so a worker holding an idle keep-alive connection waits
// out the keep-alive timeout (30 s) before the stop completes; a client that keeps its
// connection open (every test does) made each stop take that long, or be killed.
// Shutting those sockets down ends the waits at once; the clients see the connection
// close, as they would on any server restart.
void shutdown_connections(int port) {
  for_each_socket([&](int fd) {
    auto [local, peer] = ports_of(fd);
    if (local == port && peer != -1) (void)::shutdown(fd, SHUT_RDWR);
    return false;
  });
}

// Resets the connection; if that is impossible, cuts the answer after its headers.
void send_reset(const httplib::Request& req, httplib::Response& res) {
  abort_connection(req);
  res.status = 200;
  res.set_content_provider(
      4096, "application/octet-stream",
      [](size_t, size_t, httplib::DataSink&) { return false; });
}

bool from_loopback(const httplib::Request& req) {
  const std::string& a = req.remote_addr;
  return a.rfind("127.", 0) == 0 || a == "::1" || a.rfind("::ffff:127.", 0) == 0;
}

// GET /_awsemu/stats: requests per operation since start, as a JSON object. Unsigned,
// so only for clients on this machine.
void send_stats(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  if (!from_loopback(req)) {
    res.status = 403;
    res.set_content("awsemu: /_awsemu/stats answers loopback clients only\n", "text/plain");
    return;
  }
  if (req.method != "GET") {
    res.status = 405;
    res.set_content("awsemu: /_awsemu/stats takes GET\n", "text/plain");
    return;
  }
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& [op, n] : ctx.call_counts()) counts[op] = n;
  res.set_content(counts.dump(), "application/json");
}

void handle(Context& ctx, std::atomic<uint64_t>& fault_sequence, const httplib::Request& req,
            httplib::Response& res) {
  if (req.path == "/_awsemu/stats") return send_stats(ctx, req, res);
  if (req.path.rfind("/latest/", 0) == 0) {
    std::map<std::string, std::string> headers;
    for (const auto& [k, v] : req.headers) {
      std::string key = k;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers[key] = v;
    }
    send_reply(handle_imds(ctx, req.method, req.path, headers), res);
    return;
  }
  RawRequest raw{req.method, req.target, req.path, {}, req.body};
  for (const auto& [k, v] : req.headers) raw.headers.emplace(k, v);
  auto built = build_call(ctx, raw);
  if (!built) {
    res.status = 400;
    res.set_content(built.error().message, "text/plain");
    return;
  }
  Call call = std::move(built).value();
  const std::string op = call.service + ":" + call.action;
  ctx.count_call(op);
  // --latency: every answer of the operation waits, after the work and without any lock
  // held, as a round trip to AWS would.
  auto latency = ctx.options().latency_ms.find(op);
  double delay_ms = latency == ctx.options().latency_ms.end() ? 0 : latency->second;
  auto answer = [delay_ms, &res](Reply&& reply) {
    if (delay_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
    send_reply(std::move(reply), res);
  };
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    ctx.advance();
  }
  if (auto refused = authenticate(ctx, call, raw)) return answer(std::move(*refused));
  if (auto bad_region = check_region(call)) return answer(std::move(*bad_region));
  if (auto denied = check_denied(ctx, call)) return answer(std::move(*denied));
  Fault fault = ctx.faults().draw(call.action);
  uint64_t seq = fault_sequence++;
  switch (fault) {
    case Fault::kThrottle:
    case Fault::k5xx:
      log::info("awsemu: fault: " + call.action + ": injected " +
                (fault == Fault::kThrottle ? "throttle" : "server error"));
      return answer(fault_reply(call, fault, seq));
    case Fault::kReset:
      log::info("awsemu: fault: " + call.action + ": connection reset");
      return send_reset(req, res);
    case Fault::kHang:
      log::info("awsemu: fault: " + call.action + ": hanging");
      std::this_thread::sleep_for(std::chrono::duration<double>(ctx.faults().spec().hang_seconds));
      return send_reset(req, res);
    case Fault::kSlow:
      std::this_thread::sleep_for(std::chrono::duration<double>(ctx.faults().spec().slow_seconds));
      break;
    case Fault::kLost: {
      // Carried out, answer lost: what a client must not take for "not done".
      Reply done = route(ctx, call);
      log::info("awsemu: fault: " + call.action + ": done (HTTP " + std::to_string(done.status) +
                "), answer lost to a connection reset");
      return send_reset(req, res);
    }
    case Fault::kNone: break;
  }
  answer(route(ctx, call));
}

}  // namespace

Emulator::Emulator(Options options)
    : ctx_(std::make_unique<Context>(std::move(options))), impl_(std::make_unique<Impl>()) {}

Emulator::~Emulator() { stop(); }

std::string Emulator::url() const {
  return "http://" + ctx_->options().host + ":" + std::to_string(port_);
}

Status Emulator::start() {
  const Options& opt = ctx_->options();
  if (opt.data_dir.empty()) {
    return make_error("awsemu: --data is required", "pass --data DIR (created if missing)", 2);
  }
  AMIBAKE_TRY(ctx_->load());
  if (!opt.catalog_dir.empty()) {
    std::lock_guard<std::mutex> lock(ctx_->mu());
    AMIBAKE_TRY(load_catalog(*ctx_, opt.catalog_dir));
    ctx_->commit();
  }
  auto& http = impl_->http;
  int threads = opt.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_keep_alive_max_count(1000000);
  http.set_keep_alive_timeout(30);
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_tcp_nodelay(true);
  Context& ctx = *ctx_;
  Impl& impl = *impl_;
  auto handler = [&ctx, &impl](const httplib::Request& req, httplib::Response& res) {
    handle(ctx, impl.fault_sequence, req, res);
  };
  const char* any = R"(/.*)";
  http.Get(any, handler);
  http.Post(any, handler);
  http.Put(any, handler);
  http.Delete(any, handler);
  http.Patch(any, handler);
  if (opt.port == 0) {
    port_ = http.bind_to_any_port(opt.host);
  } else {
    port_ = http.bind_to_port(opt.host, opt.port) ? opt.port : -1;
  }
  if (port_ <= 0) {
    return make_error("awsemu: bind " + opt.host + ":" + std::to_string(opt.port) + ": failed",
                      "pick another --port, or --port 0 for a free one");
  }
  impl.serve_thread = std::thread([&impl] { impl.http.listen_after_bind(); });
  while (!http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  raise_listen_backlog(port_);
  impl.flush_thread = std::thread([&ctx, &impl] {
    std::unique_lock<std::mutex> lock(impl.stop_mu);
    while (!impl.stopping) {
      impl.stop_cv.wait_for(lock, std::chrono::milliseconds(200));
      ctx.flush();
    }
  });
  impl.started = true;
  return ok();
}

void Emulator::stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->http.stop();
  shutdown_connections(port_);
  if (impl_->serve_thread.joinable()) impl_->serve_thread.join();
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->flush_thread.joinable()) impl_->flush_thread.join();
  std::lock_guard<std::mutex> lock(ctx_->mu());
  ctx_->commit();
}

}  // namespace amibake::emu
