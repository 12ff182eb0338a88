// bake_bench: the direct bake's figures on a big base (issue 5, "Benchmarks").
//
// Scenario: the AL2023 catalog image with >= 2 GiB of pseudo-random files written in
// its 30 GiB volume (tests/fixtures/make-bench-base), served by awsemu at speed 0 on
// loopback; one `amibake build examples/batch-worker.toml` run end to end. Printed, not
// asserted (targets from the issue in brackets):
//   - wall time of the build and time per step (from the manifest)       [< 30 s]
//   - bytes fetched and uploaded (manifest)
//   - uploaded blocks / blocks the install really changed                 [1.0]
//     "really changed" is measured here, independently of amibake: every block of the
//     parent (the owned copy's root) and of the new root snapshot is downloaded and
//     hashed; blocks whose content differs are counted (absent = zeros).
//   - amibake's fetch throughput / awsemu's raw GetSnapshotBlock throughput  [>= 0.8]
//   - the lazy fetch (issue 12): blocks fetched / written, wall time, bytes down; then with
//     awsemu --latency (60 ms per GetSnapshotBlock, 100 ms per PutSnapshotBlock) the full
//     and the lazy bake's wall times and their ratio                      [<= 0.01, < 3 s, <= 0.15]
//   - then the chroot method on the same base: wall time and time per step
//     the raw figure is this program reading every block of the same snapshot with the
//     same concurrency through the same AwsClient (SigV4, checksum check included),
//     discarding the data: what a fetch would cost with no local writes or hashing.
//     awsemu's image file is read once beforehand so both runs see a warm page cache.
//
// Needs root (amibake's loop devices and mounts; the fixture build); exits 77 without.
// Usage: bake_bench [--concurrency N] (default 16, amibake's default)
#include "source_paths.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/ebs.h"
#include "base/files.h"
#include "image/block_image.h"
#include "tests/support/background.h"

namespace {

using namespace amibake;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kKey = "AKIAAWSEMU0EXAMPLE00";
constexpr const char* kSecret = "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0";

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

int fail(const std::string& what) {
  std::fprintf(stderr, "bake_bench: %s\n", what.c_str());
  return 1;
}

// Reads the data extents of a sparse file once, so the page cache is warm.
void warm(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<char> buf(1 << 20);
  off_t pos = 0;
  for (;;) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    for (off_t p = data; p < hole;) {
      ssize_t n = ::pread(fd, buf.data(), buf.size(), p);
      if (n <= 0) break;
      p += n;
    }
    pos = hole;
  }
  ::close(fd);
}

// Runs work(i) for i in [0, n) on `threads` threads; returns the first error message.
std::string parallel(size_t n, int threads, const std::function<std::string(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::string first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) {
        std::string e = work(i);
        if (!e.empty()) {
          std::lock_guard lock(mu);
          if (first.empty()) first = e;
          return;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return first;
}

struct Pass {
  std::map<int64_t, image::Digest> digests;  // only when hashing
  uint64_t bytes = 0;
  double seconds = 0;
  std::string error;
};

// Reads every written block of `snap`; hashes them when `hash`.
Pass read_all(aws::AwsClient& c, const std::string& snap, int threads, bool hash) {
  Pass p;
  aws::ebs::ListSnapshotBlocksRequest l;
  l.snapshot_id = snap;
  auto blocks = aws::ebs::list_snapshot_blocks(c, l);
  if (!blocks) {
    p.error = blocks.error().describe();
    return p;
  }
  std::atomic<uint64_t> bytes{0};
  std::mutex mu;
  auto t0 = Clock::now();
  p.error = parallel(blocks->blocks.size(), threads, [&](size_t i) -> std::string {
    const auto& b = blocks->blocks[i];
    auto data = aws::ebs::get_snapshot_block(c, snap, b.index, b.token);
    if (!data) return data.error().describe();
    bytes += data->data.size();
    if (hash) {
      auto d = image::sha256(data->data);
      std::lock_guard lock(mu);
      p.digests[b.index] = d;
    }
    return "";
  });
  p.seconds = since(t0);
  p.bytes = bytes.load();
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int concurrency = 16;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--concurrency") concurrency = std::stoi(argv[i + 1]);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bake_bench: needs root (loop devices, mounts); skipped\n");
    return 77;
  }
  std::string src = AMIBAKE_SOURCE_DIR, bin = AMIBAKE_BINARY_DIR;
  std::string out, err;
  if (testing::run_capture({src + "/tests/fixtures/make-base-images", bin + "/fixtures"}, {}, &out, &err) != 0) {
    return fail("make-base-images failed: " + err);
  }
  // The same cached base as bake_lazy_test's bench-base test (made once per machine).
  if (testing::run_capture({src + "/tests/fixtures/make-bench-base", "--cache", "/var/tmp/amibake-fixture-cache",
                            bin + "/fixtures"},
                           {}, &out, &err) != 0) {
    return fail("make-bench-base failed: " + err);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  std::string catalog = out.substr(out.find_last_of('\n') + 1);
  auto cat = json::parse(read_file(catalog + "/catalog.json").value_or("{}"), nullptr, false);
  if (cat.is_discarded() || !cat.contains("images")) return fail("bad " + catalog + "/catalog.json");
  const json& base = cat["images"][0];
  warm(catalog + "/" + std::string(base["file"]));

  auto dir = make_temp_dir("amibake-bench");
  if (!dir) return fail(dir.error().message);
  testing::BackgroundProcess emu;
  if (!emu.start({AWSEMU_BINARY, "--port", "0", "--data", *dir + "/emu", "--catalog", catalog, "--speed", "0"},
                 {}, *dir + "/emu.log", &err)) {
    return fail(err);
  }
  std::string line = emu.wait_for_line("awsemu listening on ", std::chrono::seconds(30));
  if (line.empty()) return fail("awsemu did not start; see " + *dir + "/emu.log");
  std::string url = line.substr(std::string("awsemu listening on ").size());
  url = url.substr(0, url.find_first_of(" \r\n"));
  std::vector<std::string> env = {
      "AWS_ACCESS_KEY_ID=" + std::string(kKey), "AWS_SECRET_ACCESS_KEY=" + std::string(kSecret),
      "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + url, "AWS_EC2_METADATA_DISABLED=true",
      "XDG_STATE_HOME=" + *dir + "/state", "AMIBAKE_WORK_DIR=" + *dir + "/work", "TMPDIR=" + *dir,
      "AMIBAKE_POLL_MS=100", "AWS_PROFILE=", "AWS_SESSION_TOKEN="};

  auto t0 = Clock::now();
  int rc = testing::run_capture({AMIBAKE_BINARY, "build", src + "/examples/batch-worker.toml",
                                 "--concurrency", std::to_string(concurrency), "--fetch", "full"},
                                env, &out, &err);
  double wall = since(t0);
  if (rc != 0) return fail("amibake build failed (exit " + std::to_string(rc) + "):\n" + err);
  std::smatch m;
  std::regex re("b-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}");
  if (!std::regex_search(err, m, re)) return fail("no build id in:\n" + err);
  auto manifest = json::parse(read_file(*dir + "/state/amibake/builds/" + m.str() + ".manifest.json").value_or("{}"),
                              nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("steps")) return fail("no manifest for " + m.str());
  const json& steps = manifest["steps"];
  uint64_t fetched = steps["fetch"]["bytes"], uploaded = steps["upload"]["bytes"];
  int64_t fetched_blocks = steps["fetch"]["blocks"], uploaded_blocks = steps["upload"]["changed_blocks"];
  double fetch_secs = steps["fetch"]["seconds"];
  std::string parent = steps["own-copy"]["root_snapshot"], child = steps["upload"]["snapshot"];

  aws::Credentials creds;
  creds.access_key_id = kKey;
  creds.secret_access_key = kSecret;
  auto client = aws::AwsClient::for_endpoint(url, creds);
  Pass raw = read_all(*client, parent, concurrency, /*hash=*/false);
  if (!raw.error.empty()) return fail("raw read of " + parent + ": " + raw.error);
  Pass before = read_all(*client, parent, concurrency, /*hash=*/true);
  Pass after = read_all(*client, child, concurrency, /*hash=*/true);
  if (!before.error.empty() || !after.error.empty()) return fail(before.error + after.error);
  int64_t really_changed = 0;
  std::map<int64_t, bool> indices;
  for (const auto& [i, d] : before.digests) indices[i] = true;
  for (const auto& [i, d] : after.digests) indices[i] = true;
  for (const auto& [i, unused] : indices) {
    auto a = before.digests.find(i), b = after.digests.find(i);
    const auto& da = a == before.digests.end() ? image::zero_block_digest() : a->second;
    const auto& db = b == after.digests.end() ? image::zero_block_digest() : b->second;
    if (da != db) ++really_changed;
  }

  double fetch_rate = fetch_secs > 0 ? mib(fetched) / fetch_secs : 0;
  double raw_rate = raw.seconds > 0 ? mib(raw.bytes) / raw.seconds : 0;
  std::printf("bake_bench: base %s, %d GiB volume, %.2f GiB written; awsemu --speed 0; concurrency %d\n",
              std::string(base["name"]).c_str(), int(base["volume_size"]),
              static_cast<double>(base.value("written_bytes", int64_t{0})) / (1 << 30), concurrency);
  std::printf("  end-to-end wall time      %8.2f s   [target < 30 s]\n", wall);
  for (const auto& [step, secs] : manifest["seconds"].items()) {
    std::printf("    %-10s %8.2f s\n", step.c_str(), secs.get<double>());
  }
  std::printf("    (fetch: %.2f s of block transfers incl. the local write and fsync; upload: %.2f s of "
              "PutSnapshotBlock, the rest of the step is re-hashing the image and completing)\n",
              fetch_secs, steps["upload"].value("seconds", 0.0));
  std::printf("  fetched                  %8.1f MiB in %lld blocks\n", mib(fetched), (long long)fetched_blocks);
  std::printf("  uploaded                 %8.1f MiB in %lld blocks\n", mib(uploaded), (long long)uploaded_blocks);
  std::printf("  blocks really changed    %8lld (parent vs new root, by content)\n", (long long)really_changed);
  std::printf("  uploaded / changed       %8.3f     [target 1.0]\n",
              really_changed ? double(uploaded_blocks) / double(really_changed) : 0.0);
  std::printf("  fetch throughput         %8.1f MiB/s (amibake, manifest)\n", fetch_rate);
  std::printf("  raw GetSnapshotBlock     %8.1f MiB/s (%.1f MiB in %.3f s, same concurrency, no local write)\n", raw_rate,
              mib(raw.bytes), raw.seconds);
  std::printf("  fetch / raw              %8.3f     [target >= 0.8]\n", raw_rate > 0 ? fetch_rate / raw_rate : 0.0);

  // The lazy fetch (issue 12) on the same base: only the blocks the install touches.
  // Each run is --force (same recipe) and its figures come from its manifest.
  struct Run {
    double wall = 0;
    json manifest;
  };
  auto build = [&](std::vector<std::string> extra) -> Result<Run> {
    std::vector<std::string> argv = {
        AMIBAKE_BINARY, "build",         src + "/examples/batch-worker.toml",
        "--force",      "--concurrency", std::to_string(concurrency)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // The recipe's name carries {date} (seconds): a build in the same second as the last
    // would find its name taken.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    auto start = Clock::now();
    std::string o, e;
    if (testing::run_capture(argv, env, &o, &e) != 0)
      return make_error("amibake build failed:\n" + e);
    Run r;
    r.wall = since(start);
    std::smatch id;
    if (!std::regex_search(e, id, re)) return make_error("no build id in:\n" + e);
    r.manifest = json::parse(
        read_file(*dir + "/state/amibake/builds/" + id.str() + ".manifest.json").value_or("{}"),
        nullptr, false);
    return r;
  };
  auto lazy = build({"--fetch", "lazy"});
  if (!lazy) return fail(lazy.error().message);
  const json& li = lazy->manifest["steps"]["install"];
  int64_t listed = li.value("blocks_listed", int64_t{0}),
          lazy_fetched = li.value("blocks_fetched", int64_t{0});
  std::printf("  lazy fetch, speed 0:\n");
  std::printf("    wall time              %8.2f s   [target < 3 s]\n", lazy->wall);
  std::printf("    blocks fetched/written %8lld / %lld = %.4f  [target <= 0.01; full fetch 1.0]\n",
              (long long)lazy_fetched, (long long)listed,
              listed ? double(lazy_fetched) / double(listed) : 0.0);
  std::printf("    bytes downloaded       %8.1f MiB (full fetch: %.1f MiB)\n",
              mib(li.value("bytes_fetched", uint64_t{0})), mib(fetched));
  // The same with AWS-like per-call latency: awsemu restarted on its data with --latency.
  emu.stop();
  if (!emu.start({AWSEMU_BINARY, "--port", "0", "--data", *dir + "/emu", "--catalog", catalog,
                  "--speed", "0", "--latency", "ebs:GetSnapshotBlock=60,ebs:PutSnapshotBlock=100"},
                 {}, *dir + "/emu2.log", &err)) {
    return fail(err);
  }
  line = emu.wait_for_line("awsemu listening on ", std::chrono::seconds(30));
  if (line.empty()) return fail("awsemu did not restart; see " + *dir + "/emu2.log");
  url = line.substr(std::string("awsemu listening on ").size());
  url = url.substr(0, url.find_first_of(" \r\n"));
  for (auto& kv : env) {
    if (kv.rfind("AWS_ENDPOINT_URL=", 0) == 0) kv = "AWS_ENDPOINT_URL=" + url;
  }
  auto full_lat = build({"--fetch", "full"});
  if (!full_lat) return fail(full_lat.error().message);
  auto lazy_lat = build({"--fetch", "lazy"});  // prefetches what the lazy run above read
  if (!lazy_lat) return fail(lazy_lat.error().message);
  std::printf("  with --latency ebs:GetSnapshotBlock=60,ebs:PutSnapshotBlock=100:\n");
  std::printf("    full fetch wall time   %8.2f s\n", full_lat->wall);
  std::printf(
      "    lazy fetch wall time   %8.2f s   (%lld blocks prefetched)\n", lazy_lat->wall,
      (long long)lazy_lat->manifest["steps"]["install"].value("blocks_prefetched", int64_t{0}));
  std::printf("    lazy / full            %8.3f     [target <= 0.15]\n",
              full_lat->wall > 0 ? lazy_lat->wall / full_lat->wall : 0.0);

  // The chroot method on the same base (issue 7): awsemu plays the EC2 host (IMDSv2 on
  // its port, AttachVolume as a loop device with a by-id link in its device folder).
  std::vector<std::string> host_env;
  for (const auto& kv : env) {
    if (kv.rfind("AWS_EC2_METADATA_DISABLED=", 0) != 0) host_env.push_back(kv);
  }
  host_env.push_back("AWS_EC2_METADATA_SERVICE_ENDPOINT=" + url + "/");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new {date} for the name
  t0 = Clock::now();
  rc = testing::run_capture({AMIBAKE_BINARY, "build", src + "/examples/batch-worker.toml",
                             "--method", "chroot", "--force", "--device-dir",
                             *dir + "/emu/dev/disk/by-id"},
                            host_env, &out, &err);
  double chroot_wall = since(t0);
  if (rc != 0) return fail("amibake build --method chroot failed (exit " + std::to_string(rc) + "):\n" + err);
  if (!std::regex_search(err, m, re)) return fail("no build id in:\n" + err);
  auto chroot_manifest = json::parse(
      read_file(*dir + "/state/amibake/builds/" + m.str() + ".manifest.json").value_or("{}"), nullptr, false);
  if (chroot_manifest.is_discarded() || !chroot_manifest.contains("seconds")) {
    return fail("no manifest for " + m.str());
  }
  std::printf("  chroot method wall time  %8.2f s   (same base; awsemu builds the attached volume's\n"
              "                                       file at AttachVolume, its snapshot is incremental)\n",
              chroot_wall);
  for (const auto& [step, secs] : chroot_manifest["seconds"].items()) {
    std::printf("    %-13s %8.2f s\n", step.c_str(), secs.get<double>());
  }
  emu.stop();
  std::filesystem::remove_all(*dir);
  return 0;
}
