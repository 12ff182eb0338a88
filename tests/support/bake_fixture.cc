// The shared end-to-end bake fixture (see bake_fixture.h). The binaries' paths come
// from compile definitions set on this library: AMIBAKE_BINARY, AWSEMU_BINARY,
// AMIBAKE_BINARY_DIR (and AMIBAKE_SOURCE_DIR, set project-wide).
#include "source_paths.h"
#include "tests/support/bake_fixture.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "aws/ebs.h"
#include "aws/http.h"
#include "aws/ec2.h"
#include "aws/sigv4.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "image/block_image.h"
#include "image/partition.h"

namespace amibake::testing {

std::string build_id_in(const std::string& text) {
  std::smatch m;
  static const std::regex re("b-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}");
  return std::regex_search(text, m, re) ? m.str() : "";
}

std::string lines_with(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line, hits;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) hits += line + "\n";
  }
  return hits;
}

std::string fixtures_dir() { return std::string(AMIBAKE_BINARY_DIR) + "/fixtures"; }

std::string example_recipe(const std::string& name) {
  return std::string(AMIBAKE_SOURCE_DIR) + "/examples/" + name;
}

std::map<std::string, std::string> tree_of(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string p = it->path().string();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    std::string d = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_gid);
    if (S_ISREG(st.st_mode)) {
      d += " " + std::to_string(st.st_size) + " " + aws::sha256_hex(read_file(p).value_or("?"));
    } else if (S_ISLNK(st.st_mode)) {
      d += " -> " + fs::read_symlink(p).string();
    }
    char label[256];
    ssize_t n = ::lgetxattr(p.c_str(), "security.selinux", label, sizeof label);
    if (n > 0) d += " se:" + std::string(label, static_cast<size_t>(n));
    out[p.substr(root.size())] = d;
  }
  return out;
}

ReadOnlyRoot::ReadOnlyRoot(const std::string& disk) {
  auto table = image::read_partition_table(disk);
  EXPECT_TRUE(table);
  if (!table) return;
  auto root = image::find_root_partition(*table);
  EXPECT_TRUE(root);
  if (!root) return;
  image::LoopOptions lo;
  lo.offset = root->start;
  lo.size_limit = root->size;
  lo.read_only = true;
  auto l = image::LoopDevice::attach(disk, lo);
  EXPECT_TRUE(l) << l.error().message;
  if (!l) return;
  loop.emplace(std::move(*l));
  image::MountOptions mo;
  mo.read_only = true;
  auto m = image::Mount::mount_device(loop->path(), mo);
  EXPECT_TRUE(m) << m.error().message;
  if (m) mount.emplace(std::move(*m));
}

std::string BakeFixture::download(const std::string& snap) const {
  auto c = client();
  aws::ebs::ListSnapshotBlocksRequest l;
  l.snapshot_id = snap;
  auto blocks = aws::ebs::list_snapshot_blocks(*c, l);
  EXPECT_TRUE(blocks) << blocks.error().describe();
  std::string path = dir_ + "/" + snap + ".img";
  if (!blocks) return path;
  auto img = image::BlockImage::create(path, static_cast<uint64_t>(blocks->volume_size) << 30);
  EXPECT_TRUE(img);
  if (!img) return path;
  for (const auto& b : blocks->blocks) {
    auto data = aws::ebs::get_snapshot_block(*c, snap, b.index, b.token);
    EXPECT_TRUE(data) << data.error().describe();
    if (data) {
      EXPECT_TRUE(img->write_block(static_cast<uint64_t>(b.index), data->data));
    }
  }
  return path;
}

void BakeFixture::SetUpTestSuite() {
  if (::geteuid() != 0) return;
  std::string out, err;
  int rc = run_capture({std::string(AMIBAKE_SOURCE_DIR) + "/tests/fixtures/make-base-images",
                        fixtures_dir()},
                       {}, &out, &err);
  fixtures_ok_ = rc == 0;
  if (!fixtures_ok_) fixtures_error_ = err;
}

void BakeFixture::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for loop devices and mounts";
  ASSERT_TRUE(fixtures_ok_) << "make-base-images failed: " << fixtures_error_;
  auto d = make_temp_dir("amibake-bake");
  ASSERT_TRUE(d);
  dir_ = *d;
  ASSERT_TRUE(make_dirs(dir_ + "/tmp", 0700));
  start_emu({});
}

void BakeFixture::TearDown() {
  emu_.stop();
  if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
}

void BakeFixture::start_emu(const std::vector<std::string>& extra) {
  emu_.stop();
  std::vector<std::string> argv = {AWSEMU_BINARY, "--port", "0", "--data", dir_ + "/emu",
                                   "--catalog", catalog_dir()};
  // Speed 0 unless `extra` names one (awsemu takes --speed once).
  if (std::find(extra.begin(), extra.end(), "--speed") == extra.end()) {
    argv.insert(argv.end(), {"--speed", "0"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::string err;
  // A fresh log per start: the previous run's "listening" line must not be read.
  std::string log = dir_ + "/emu." + std::to_string(++emu_starts_) + ".log";
  ASSERT_TRUE(emu_.start(argv, {}, log, &err)) << err;
  std::string line = emu_.wait_for_line("awsemu listening on ", std::chrono::seconds(30));
  ASSERT_FALSE(line.empty()) << "awsemu did not start; see " << log;
  url_ = line.substr(std::string("awsemu listening on ").size());
  url_ = url_.substr(0, url_.find_first_of(" \r\n"));
}

std::vector<std::string> BakeFixture::env() const {
  return {"AWS_ACCESS_KEY_ID=" + std::string(kEmuKey),
          "AWS_SECRET_ACCESS_KEY=" + std::string(kEmuSecret),
          "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + url_, "AWS_EC2_METADATA_DISABLED=true",
          "XDG_STATE_HOME=" + dir_ + "/state", "AMIBAKE_WORK_DIR=" + dir_ + "/work",
          "TMPDIR=" + dir_ + "/tmp", "AMIBAKE_POLL_MS=100", "AWS_PROFILE=", "AWS_SESSION_TOKEN="};
}

CliRun BakeFixture::amibake(std::vector<std::string> args) const {
  CliRun r;
  args.insert(args.begin(), AMIBAKE_BINARY);
  r.rc = run_capture(args, env(), &r.out, &r.err);
  return r;
}

std::string BakeFixture::start_amibake(BackgroundProcess& p, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {AMIBAKE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log = dir_ + "/amibake." + std::to_string(++background_runs_) + ".log";
  std::string err;
  EXPECT_TRUE(p.start(argv, env(), log, &err)) << err;
  return log;
}

int64_t BakeFixture::emu_calls(const std::string& op) const {
  aws::HttpRequest req;
  req.url = url_ + "/_awsemu/stats";
  auto r = aws::make_curl_transport()->send(req);
  if (!r.ok()) return -1;
  auto j = nlohmann::json::parse(r.response.body, nullptr, false);
  return j.is_object() ? j.value(op, int64_t{0}) : -1;
}

std::unique_ptr<aws::AwsClient> BakeFixture::client() const {
  aws::Credentials c;
  c.access_key_id = kEmuKey;
  c.secret_access_key = kEmuSecret;
  return aws::AwsClient::for_endpoint(url_, c);
}

std::vector<std::string> BakeFixture::images_tagged(const std::string& key,
                                                    const std::string& value) const {
  auto c = client();
  aws::ec2::DescribeImagesRequest ir;
  ir.owners = {"self"};
  ir.filters = {{"tag:" + key, {value}}};
  std::vector<std::string> ids;
  for (const auto& i : aws::ec2::describe_images(*c, ir).value()) ids.push_back(i.image_id);
  return ids;
}

std::vector<std::string> BakeFixture::snapshots_tagged(const std::string& key,
                                                       const std::string& value) const {
  auto c = client();
  aws::ec2::DescribeSnapshotsRequest sr;
  sr.owner_ids = {"self"};
  sr.filters = {{"tag:" + key, {value}}};
  std::vector<std::string> ids;
  for (const auto& s : aws::ec2::describe_snapshots(*c, sr).value()) ids.push_back(s.snapshot_id);
  return ids;
}

std::vector<std::string> BakeFixture::tagged_with(const std::string& build_id) const {
  auto ids = images_tagged("amibake:build-id", build_id);
  for (auto& s : snapshots_tagged("amibake:build-id", build_id)) ids.push_back(s);
  auto c = client();
  aws::ec2::DescribeVolumesRequest vr;
  vr.filters = {{"tag:amibake:build-id", {build_id}}};
  for (const auto& v : aws::ec2::describe_volumes(*c, vr).value()) ids.push_back(v.volume_id);
  return ids;
}

void BakeFixture::detach_all_volumes() {
  if (dir_.empty() || !fixtures_ok_) return;
  start_emu({});
  auto c = client();
  if (auto vols = aws::ec2::describe_volumes(*c, {})) {
    for (const auto& v : *vols) {
      if (v.attachments.empty()) continue;
      aws::ec2::DetachVolumeRequest d;
      d.volume_id = v.volume_id;
      (void)aws::ec2::detach_volume(*c, d);
    }
  }
}

std::string BakeFixture::host_leftovers() const {
  std::string found;
  auto loops = run_process({"losetup", "-a"});
  if (loops) found += lines_with(loops->out, dir_);
  auto mi = read_file("/proc/self/mountinfo");
  if (mi) found += lines_with(*mi, dir_);
  return found;
}

}  // namespace amibake::testing
