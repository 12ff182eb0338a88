// awsemu_bench: EBS direct throughput of awsemu on loopback.
//
// Starts awsemu in-process (speed 0, signatures checked as usual), starts one
// snapshot, and has N client threads (default 32, libcurl with keep-alive, each
// request SigV4-signed) PutSnapshotBlock distinct blocks; then completes the
// snapshot and has the same threads GetSnapshotBlock every block (checksums checked).
// Prints MiB/s for both. Not a ctest: run it by hand and quote the figure.
//   awsemu_bench [--clients N] [--blocks B] [--data DIR]
#include <curl/curl.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <thread>

#include "aws/sigv4.h"
#include "base/files.h"
#include "emulator/server.h"

namespace {

using namespace amibake;
namespace sigv4 = aws::sigv4;

struct Bench {
  std::string host;
  int port = 0;
  aws::Credentials creds;
};

struct Reply {
  long status = 0;
  std::string body;
  std::string checksum;
  std::string error;  // libcurl's error when there was no HTTP answer
};

size_t on_body(char* p, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->body.append(p, size * n);
  return size * n;
}
size_t on_header(char* p, size_t size, size_t n, void* user) {
  std::string line(p, size * n);
  if (strncasecmp(line.c_str(), "x-amz-checksum:", 15) == 0) {
    std::string v = line.substr(15);
    while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
    static_cast<Reply*>(user)->checksum = v;
  }
  return size * n;
}

Reply call(CURL* curl, const Bench& b, const std::string& method, const std::string& target,
           std::vector<std::pair<std::string, std::string>> extra, const std::string& body) {
  std::time_t now = std::time(nullptr);
  char amz_date[32];
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  sigv4::Request req;
  req.method = method;
  size_t q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string::npos ? "" : target.substr(q + 1);
  req.headers.emplace_back("host", b.host);
  for (auto& h : extra) req.headers.push_back(h);
  req.payload_hash = method == "PUT" ? std::string(sigv4::kUnsignedPayload) : aws::sha256_hex(body);
  sigv4::Scope scope{std::string(amz_date, 8), "us-east-1", "ebs"};
  sigv4::sign(req, b.creds, scope, amz_date);
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (const auto& [k, v] : req.headers) {
    if (k != "host") list = curl_slist_append(list, (k + ": " + v).c_str());
  }
  Reply r;
  std::string url = "http://" + b.host + target;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
  r.body.reserve(size_t{512} * 1024);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  else r.error = curl_easy_strerror(rc);
  curl_slist_free_all(list);
  return r;
}

std::string json_field(const std::string& body, const std::string& key) {
  size_t p = body.find("\"" + key + "\":\"");
  if (p == std::string::npos) return "";
  p += key.size() + 4;
  return body.substr(p, body.find('"', p) - p);
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 32, blocks = 2048;
  std::string data;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--clients")) clients = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--blocks")) blocks = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--data")) data = argv[i + 1];
  }
  std::string temp = make_temp_dir("awsemu-bench").value();
  // Removes the temporary data folder on every return path.
  struct RemoveAtExit {
    std::string dir;
    ~RemoveAtExit() { std::filesystem::remove_all(dir); }
  } remove_at_exit{temp};
  emu::Options o;
  o.data_dir = data.empty() ? temp + "/data" : data;
  o.speed = 0;
  o.threads = std::max(64, clients * 2);
  emu::Emulator server(o);
  if (Status st = server.start(); !st) {
    std::fprintf(stderr, "%s\n", st.error().describe().c_str());
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Bench b{"127.0.0.1:" + std::to_string(server.port()), server.port(), {}};
  b.creds.access_key_id = o.access_key_id;
  b.creds.secret_access_key = o.secret_access_key;

  CURL* setup = curl_easy_init();
  int gib = std::max(1, (blocks * 512 + 1024 * 1024 - 1) / (1024 * 1024));
  Reply started = call(setup, b, "POST", "/snapshots", {{"content-type", "application/json"}},
                       "{\"VolumeSize\":" + std::to_string(gib) + ",\"Timeout\":60}");
  std::string snap = json_field(started.body, "SnapshotId");
  if (started.status != 201 || snap.empty()) {
    std::fprintf(stderr, "StartSnapshot failed: %ld %s\n", started.status, started.body.c_str());
    return 1;
  }

  // CPU seconds used by this whole process (server and clients together).
  auto cpu_seconds = [] {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  // Each client sends its own pseudo-random block; made before any timing starts.
  std::vector<std::string> client_blocks(clients), client_sums(clients);
  for (int c = 0; c < clients; ++c) {
    std::string& block = client_blocks[c];
    block.resize(size_t{512} * 1024);
    std::mt19937_64 rng(c + 1);
    for (size_t i = 0; i < block.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(&block[i], &v, 8);
    }
    client_sums[c] = aws::sha256_base64(block);
  }
  auto run = [&](const char* what, auto per_block) {
    std::atomic<int> next{0}, failures{0};
    double cpu0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        CURL* curl = curl_easy_init();
        const std::string& block = client_blocks[c];
        const std::string& checksum = client_sums[c];
        for (int i; (i = next++) < blocks;) {
          if (!per_block(curl, i, block, checksum)) ++failures;
        }
        curl_easy_cleanup(curl);
      });
    }
    for (auto& t : threads) t.join();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double mib = blocks * 0.5;
    double cpu = cpu_seconds() - cpu0;
    std::printf("%-17s %d clients, %d blocks (%.0f MiB) in %.2f s: %.0f MiB/s (%.2f GiB/s), "
                "%d failures; %.2f CPU-s per GiB (server + clients)\n",
                what, clients, blocks, mib, secs, mib / secs, mib / secs / 1024, failures.load(),
                cpu / (mib / 1024));
    return failures.load();
  };

  int bad = run("PutSnapshotBlock", [&](CURL* curl, int i, const std::string& block, const std::string& checksum) {
    Reply r = call(curl, b, "PUT", "/snapshots/" + snap + "/blocks/" + std::to_string(i),
                   {{"x-amz-data-length", "524288"}, {"x-amz-checksum", checksum},
                    {"x-amz-checksum-algorithm", "SHA256"}, {"content-type", "application/octet-stream"}},
                   block);
    if (r.status != 201) {
      std::fprintf(stderr, "PutSnapshotBlock %d: HTTP %ld %s%s\n", i, r.status, r.error.c_str(),
                   r.body.substr(0, 300).c_str());
    }
    return r.status == 201;
  });
  Reply done = call(setup, b, "POST", "/snapshots/completion/" + snap,
                    {{"x-amz-changedblockscount", std::to_string(blocks)}}, "");
  if (done.status != 202) {
    std::fprintf(stderr, "CompleteSnapshot failed: %ld %s\n", done.status, done.body.c_str());
    return 1;
  }
  // Block tokens come from ListSnapshotBlocks, as a real client would get them.
  std::vector<std::string> tokens(blocks);
  std::string page;
  for (;;) {
    Reply l = call(setup, b, "GET", "/snapshots/" + snap + "/blocks?maxResults=10000" +
                                        (page.empty() ? "" : "&pageToken=" + sigv4::uri_encode(page)), {}, "");
    size_t pos = 0;
    while ((pos = l.body.find("\"BlockIndex\":", pos)) != std::string::npos) {
      int index = std::atoi(l.body.c_str() + pos + 13);
      size_t t = l.body.find("\"BlockToken\":\"", pos) + 14;
      if (index < blocks) tokens[index] = l.body.substr(t, l.body.find('"', t) - t);
      pos = t;
    }
    page = json_field(l.body, "NextToken");
    if (page.empty()) break;
  }
  bad += run("GetSnapshotBlock", [&](CURL* curl, int i, const std::string&, const std::string&) {
    Reply r = call(curl, b, "GET", "/snapshots/" + snap + "/blocks/" + std::to_string(i) +
                                       "?blockToken=" + sigv4::uri_encode(tokens[i]), {}, "");
    return r.status == 200 && r.body.size() == size_t{512} * 1024 && r.checksum == aws::sha256_base64(r.body);
  });
  curl_easy_cleanup(setup);
  server.stop();
  return bad == 0 ? 0 : 1;
}
