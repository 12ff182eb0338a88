// The QEMU boot test (issue 6): a real kernel, real systemd and real NVMe disks prove that
// an AMI baked by amibake has /data mounted before docker and ECS start.
//
// Once per suite: build the bootable Debian base (tests/fixtures/make-boot-image, cached),
// serve it from awsemu as an Amazon-owned base, bake a batch-worker recipe on it with the
// real amibake binary. Each test then boots the AMI through the verify library (the code
// behind `amibake verify --boot`) and checks the guest's verdict; disk contents are
// checked from the host after the guest powered off.
//
// Each TCG boot takes about 40 s on a 2-core machine (plus 20 s for a first KVM attempt
// where /dev/kvm exists but hangs); the four boots are the four scenarios of the issue
// (fresh boot + reboot share their disks). Prints BENCH lines with the
// boot-to-/data time. Needs root (loop devices for the fixture and the kernel extraction)
// and qemu-system-x86_64; skips with the reason otherwise.
//
// Built twice (tests/CMakeLists.txt): boot_test for x86_64 and, with AMIBAKE_BOOT_ARCH
// "arm64", boot_arm64_test: the same bake on the arm64 bootable base (make-boot-image
// --arch arm64, cached), its AMI booted by verify under qemu-system-aarch64 -M virt -cpu
// neoverse-n1 (TCG on an x86_64 host). The arm64 binary runs the fresh boot + reboot and
// the ext4 refusal; the missing-disk case exercises only verify's command code and the
// udev/systemd stand-ins, which do not depend on the architecture, so it runs on x86_64
// only and arm64 CI pays for two TCG boots fewer.
#include "source_paths.h"
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/ebs.h"
#include "aws/ec2.h"
#include "aws/http.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "tests/support/background.h"
#include "verify/verify.h"
#include "verify/verify_cmd.h"

namespace amibake {
namespace {

namespace fs = std::filesystem;
using testing::BackgroundProcess;

constexpr const char* kKey = "AKIAAWSEMU0EXAMPLE00";
constexpr const char* kSecret = "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0";
constexpr uint64_t kTiB = 1ull << 40;

#ifndef AMIBAKE_BOOT_ARCH
#define AMIBAKE_BOOT_ARCH "x86_64"
#endif
constexpr const char* kArch = AMIBAKE_BOOT_ARCH;
const bool kArm64 = std::string(kArch) == "arm64";
const char* qemu_binary() { return kArm64 ? "qemu-system-aarch64" : "qemu-system-x86_64"; }

std::string fixtures_dir() {
  return std::string(AMIBAKE_BINARY_DIR) + (kArm64 ? "/fixtures-boot-arm64" : "/fixtures-boot");
}

std::string sh(const std::vector<std::string>& argv) {
  auto r = run_checked(argv);
  return r ? *r : "ERROR: " + r.error().message;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class BootTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || !program_exists(qemu_binary())) return;
    setup_error_ = setup();
  }
  static void TearDownTestSuite() {
    emu_.stop();
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for loop devices and mounts";
    if (!program_exists(qemu_binary())) GTEST_SKIP() << qemu_binary() << " is not installed";
    ASSERT_EQ(setup_error_, "");
  }

  // Builds the fixture, starts awsemu on it, bakes; returns "" or what went wrong.
  static std::string setup() {
    auto dir = make_temp_dir("amibake-boot");
    if (!dir) return dir.error().message;
    work_ = *dir;
    std::string out, err;
    int rc = testing::run_capture({std::string(AMIBAKE_SOURCE_DIR) + "/tests/fixtures/make-boot-image",
                                   fixtures_dir(), "--arch", kArch, "--cache", "/var/tmp/amibake-fixture-cache"},
                                  {}, &out, &err);
    if (rc != 0) return "make-boot-image failed: " + err;
    // A catalog folder holding only the boot image, its file by absolute path.
    auto text = read_file(fixtures_dir() + "/boot-catalog.json");
    if (!text) return text.error().message;
    auto catalog = nlohmann::json::parse(*text);
    auto& entry = catalog["images"][0];
    entry["file"] = fixtures_dir() + "/" + entry["file"].get<std::string>();
    image_name_ = entry["name"];
    if (!make_dirs(work_ + "/catalog")) return "cannot create the catalog folder";
    if (!write_file_atomic(work_ + "/catalog/catalog.json", catalog.dump(2))) return "cannot write catalog";
    std::vector<std::string> argv = {AWSEMU_BINARY, "--port", "0", "--data", work_ + "/emu",
                                     "--catalog", work_ + "/catalog", "--speed", "0"};
    if (!emu_.start(argv, {}, work_ + "/emu.log", &err)) return err;
    std::string line = emu_.wait_for_line("awsemu listening on ", std::chrono::seconds(30));
    if (line.empty()) return "awsemu did not start; see " + work_ + "/emu.log";
    url_ = line.substr(std::string("awsemu listening on ").size());
    url_ = url_.substr(0, url_.find_first_of(" \r\n"));
    return bake();
  }

  static std::string bake() {
    aws::ec2::DescribeImagesRequest request;
    request.owners = {"amazon"};
    request.filters = {{"name", {image_name_}}};
    auto base = aws::ec2::describe_images(*client(), request);
    if (!base || base->size() != 1) return "awsemu does not list the boot image " + image_name_;
    if (base->front().architecture != kArch) {
      return "the boot image is " + base->front().architecture + ", not " + kArch;
    }
    // examples/batch-worker.toml on the bootable base; a short wait for the missing-disk case.
    std::string recipe = "[base]\nami = \"" + base->front().image_id + "\"\n"
                         "[image]\nname = \"boot-test-{date}\"\n"
                         "[attributes]\nimds_support = \"v2.0\"\n"
                         "[[volume]]\ndevice = \"/dev/xvdb\"\nsize_gib = 1024\ntype = \"gp3\"\n"
                         "encrypted = true\ndelete_on_termination = true\nmount = \"/data\"\n"
                         "filesystem = \"xfs\"\nlabel = \"data\"\nmode = \"0755\"\nwait_seconds = 20\n"
                         "required_by = [\"docker\", \"containerd\", \"ecs\"]\n";
    if (!write_file_atomic(work_ + "/boot.toml", recipe)) return "cannot write the recipe";
    std::string out, err;
    int rc = testing::run_capture({AMIBAKE_BINARY, "build", work_ + "/boot.toml"}, cli_env(), &out, &err);
    if (rc != 0) return "amibake build failed: " + err;
    ami_ = trim(out);
    // The AMI is registered with the base's architecture: what verify picks QEMU by.
    auto baked = aws::ec2::describe_image(*client(), ami_);
    if (!baked) return baked.error().message;
    if (baked->architecture != kArch) return ami_ + " is " + baked->architecture + ", not " + kArch;
    return "";
  }

  // The amibake binary's environment: awsemu's endpoint and keys, state in work_.
  static std::vector<std::string> cli_env() {
    return {"AWS_ACCESS_KEY_ID=" + std::string(kKey), "AWS_SECRET_ACCESS_KEY=" + std::string(kSecret),
            "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + url_, "AWS_EC2_METADATA_DISABLED=true",
            "XDG_STATE_HOME=" + work_ + "/state", "AMIBAKE_WORK_DIR=" + work_ + "/work",
            "AMIBAKE_POLL_MS=100", "AWS_PROFILE=", "AWS_SESSION_TOKEN="};
  }

  // awsemu's count of calls to `op` ("ebs:GetSnapshotBlock") since it started.
  static int64_t calls(const std::string& op) {
    aws::HttpRequest req;
    req.url = url_ + "/_awsemu/stats";
    auto r = aws::make_curl_transport()->send(req);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return -1;
    auto j = nlohmann::json::parse(r.response.body, nullptr, false);
    return j.is_object() ? j.value(op, int64_t{0}) : -1;
  }

  // The written blocks of the baked AMI's root snapshot.
  static int64_t root_blocks_listed() {
    auto img = aws::ec2::describe_image(*client(), ami_);
    if (!img) return -1;
    aws::ebs::ListSnapshotBlocksRequest l;
    l.snapshot_id = img->root_snapshot_id();
    auto blocks = aws::ebs::list_snapshot_blocks(*client(), l);
    return blocks ? static_cast<int64_t>(blocks->blocks.size()) : -1;
  }

  static std::unique_ptr<aws::AwsClient> client() {
    aws::Credentials c;
    c.access_key_id = kKey;
    c.secret_access_key = kSecret;
    return aws::AwsClient::for_endpoint(url_, c);
  }

  // Boots the baked AMI with disks kept in `disks` (reused when already there).
  verify::BootResult boot(const std::string& disks, std::vector<std::string> without = {}) {
    verify::BootOptions o;
    o.ami_id = ami_;
    o.keep_disks_dir = disks;
    o.timeout_seconds = 600;
    o.without_devices = std::move(without);
    o.accel = accel_;  // after the first boot: what worked (skips a hanging KVM's 20 s)
    auto c = client();
    auto r = verify::boot_ami(*c, o);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (!r) return {};
    accel_ = r->accel;
    std::cout << verify::format_report(*r);
    auto data = r->verdict.value("data", nlohmann::json::object());
    if (data.contains("ready_us") && data["ready_us"].is_number()) {
      std::cout << "BENCH boot-to-/data " << kArch << " " << data["ready_us"].get<double>() / 1e6
                << " s (guest, " << r->accel << "); QEMU start to verdict " << r->wall_seconds << " s\n";
    }
    return *r;
  }

  std::string datavol_log(const verify::BootResult& r) {
    std::string b64 = r.verdict.value("datavol_log_b64", "");
    return sh({"sh", "-c", "echo '" + b64 + "' | base64 -d"});
  }

  static inline std::string work_, url_, ami_, image_name_, setup_error_, accel_;
  static inline BackgroundProcess emu_;
};

std::string fs_uuid(const std::string& file) {
  return trim(sh({"blkid", "-p", "-o", "value", "-s", "UUID", file}));
}

TEST_F(BootTest, FreshBootHasXfsDataBeforeDockerAndEcsAndARebootKeepsIt) {
  std::string disks = work_ + "/fresh";
  verify::BootResult first = boot(disks);
  ASSERT_FALSE(first.verdict.is_null());
  const auto& v = first.verdict;
  ASSERT_TRUE(v["data"]["mounted"].get<bool>()) << v.dump();
  EXPECT_EQ(v["data"]["fstype"], "xfs");
  uint64_t size = v["data"]["size"];
  EXPECT_GT(size, kTiB * 99 / 100) << "about 1 TiB";
  EXPECT_LE(size, kTiB);
  EXPECT_EQ(v["docker"]["data"], "mounted");
  EXPECT_EQ(v["containerd"]["data"], "mounted");
  EXPECT_EQ(v["ecs"]["data"], "mounted");
  EXPECT_TRUE(v["data"]["ready_us"].is_number());
  EXPECT_TRUE(verify::verdict_passes(v));
  std::string marker = v["data"]["marker"], marker_sha = v["data"]["marker_sha256"];
  ASSERT_FALSE(marker.empty());
  std::string uuid = fs_uuid(disks + "/xvdb.img");
  ASSERT_FALSE(uuid.empty());

  // Reboot the same disks: the marker written on the first boot survived, same checksum,
  // and the filesystem is the same one (not reformatted).
  verify::BootResult second = boot(disks);
  ASSERT_FALSE(second.verdict.is_null());
  const auto& w = second.verdict;
  EXPECT_NE(w["boot_id"], v["boot_id"]) << "a second boot, not the same log";
  ASSERT_TRUE(w["data"]["mounted"].get<bool>()) << w.dump();
  EXPECT_EQ(w["data"]["marker"], marker);
  EXPECT_EQ(w["data"]["marker_sha256"], marker_sha);
  EXPECT_EQ(w["docker"]["data"], "mounted");
  EXPECT_EQ(w["ecs"]["data"], "mounted");
  EXPECT_EQ(fs_uuid(disks + "/xvdb.img"), uuid);
  for (const auto& d : second.disks) EXPECT_TRUE(d.reused) << d.device_name;
}

TEST_F(BootTest, ExistingExt4DataDiskIsNeverFormattedAndItsFilesStayIntact) {
  std::string disks = work_ + "/ext4";
  ASSERT_TRUE(make_dirs(disks + "/content"));
  std::string blob;
  for (int i = 0; i < 1 << 18; ++i) blob += static_cast<char>((i * 2654435761u) >> 13);
  ASSERT_TRUE(write_file_atomic(disks + "/content/blob.bin", blob));
  ASSERT_TRUE(write_file_atomic(disks + "/content/hello.txt", "keep me\n"));
  std::string file = disks + "/xvdb.img";
  { std::ofstream(file).close(); }
  ASSERT_EQ(::truncate(file.c_str(), static_cast<off_t>(kTiB)), 0);
  ASSERT_TRUE(run_checked({"mkfs.ext4", "-q", "-F", "-L", "olddata", "-d", disks + "/content", file}));
  std::string uuid = fs_uuid(file);

  verify::BootResult r = boot(disks);
  ASSERT_FALSE(r.verdict.is_null());
  const auto& v = r.verdict;
  // datavol's rule: an existing filesystem of another type than configured is refused.
  EXPECT_FALSE(verify::verdict_passes(v)) << v.dump();
  if (v["data"]["mounted"].get<bool>()) {
    EXPECT_EQ(v["data"]["fstype"], "ext4") << "mounted only as what it is";
  } else {
    EXPECT_NE(v["docker"]["data"], "missing") << "docker must not start without /data";
  }
  EXPECT_NE(datavol_log(r).find("ext4"), std::string::npos) << datavol_log(r);

  // From the host: same filesystem, files intact.
  EXPECT_EQ(trim(sh({"blkid", "-p", "-o", "value", "-s", "TYPE", file})), "ext4");
  EXPECT_EQ(fs_uuid(file), uuid);
  EXPECT_EQ(sh({"debugfs", "-R", "cat /hello.txt", file}), "keep me\n");
  EXPECT_EQ(sh({"debugfs", "-R", "cat /blob.bin", file}) == blob, true) << "blob.bin changed";
}

#if !defined(AMIBAKE_BOOT_ARM64)
// Through the command itself (what `amibake verify AMI --boot --without /dev/xvdb --json`
// runs), so the flags, the loopback check, the JSON output and the exit code are covered.
TEST_F(BootTest, MissingDataDiskStillBootsAndDockerAndEcsDoNotStart) {
  ::setenv("AWS_ACCESS_KEY_ID", kKey, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", kSecret, 1);
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  ::unsetenv("AWS_PROFILE");
  ::unsetenv("AWS_SESSION_TOKEN");
  aws::ClientSettings settings;
  settings.region = "us-east-1";
  settings.endpoint_url = url_;
  verify::VerifyFlags flags;
  flags.ami_id = ami_;
  flags.boot = true;
  flags.keep_disks = work_ + "/missing";
  flags.without = {"/dev/xvdb"};
  flags.accel = accel_;
  flags.json = true;
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int rc = verify::run_verify_command(settings, flags);
  std::cout.rdbuf(old);
  std::cout << captured.str();
  EXPECT_EQ(rc, 1) << "/data missing is a failed verification";
  auto out = nlohmann::json::parse(captured.str(), nullptr, false);
  ASSERT_TRUE(out.is_object()) << captured.str();
  const auto& v = out["verdict"];
  EXPECT_FALSE(out["passed"].get<bool>());
  EXPECT_FALSE(v["data"]["mounted"].get<bool>()) << v.dump();
  EXPECT_EQ(v["docker"]["data"], "not-started") << v.dump();
  EXPECT_EQ(v["ecs"]["data"], "not-started") << v.dump();
  EXPECT_EQ(out["disks"].size(), 1u) << "only the root was attached";
  EXPECT_NE(v["ebs_links"].get<std::string>().find("/dev/xvda"), std::string::npos) << "the instance booted";
}

// The root is served lazily (issue 12): the boot fetches only the blocks the kernel
// extraction and the guest read. The count verify reports (through the command's --json,
// without --keep-disks: a temporary folder) is exactly the GetSnapshotBlock calls awsemu
// answered, and fewer than the root snapshot's written blocks.
TEST_F(BootTest, LazyRootFetchesOnlyWhatTheBootReadsAsAwsemuCounts) {
  const int64_t listed = root_blocks_listed();
  ASSERT_GT(listed, 0);
  const int64_t gets_before = calls("ebs:GetSnapshotBlock");
  std::string out, err;
  std::vector<std::string> argv = {AMIBAKE_BINARY, "verify", ami_, "--boot", "--fetch", "lazy", "--json",
                                   "--timeout", "600"};
  if (!accel_.empty()) argv.insert(argv.end(), {"--accel", accel_});
  int rc = testing::run_capture(argv, cli_env(), &out, &err);
  const int64_t gets = calls("ebs:GetSnapshotBlock") - gets_before;
  ASSERT_EQ(rc, 0) << err << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  const auto& root = j["root_fetch"];
  EXPECT_EQ(root["mode"], "lazy") << root.dump();
  const int64_t fetched = root.value("blocks_fetched", int64_t{-1});
  EXPECT_EQ(fetched, gets) << "every block verify counts as fetched is one GetSnapshotBlock awsemu saw";
  EXPECT_EQ(root.value("blocks_listed", int64_t{-1}), listed);
  EXPECT_GT(fetched, 0);
  EXPECT_LT(fetched, listed) << "a lazy boot reads fewer blocks than the root snapshot has written";
  EXPECT_GT(root.value("blocks_written", int64_t{0}), 0) << "the guest writes to its root (journal, logs)";
  EXPECT_TRUE(j["passed"].get<bool>()) << j["verdict"].dump();
  std::cout << "BENCH lazy boot: " << fetched << " of " << listed << " written root blocks fetched ("
            << root.value("fetched_for_kernel", 0) << " to take the kernel out), "
            << root.value("blocks_written", 0) << " written; disks ready in " << root.value("seconds", 0.0)
            << " s; QEMU start to verdict " << j.value("wall_seconds", 0.0) << " s\n";
}

// Where /dev/fuse cannot serve (here an empty file bound over it in a private mount
// namespace), --fetch auto downloads the whole root instead and says so in one line. The
// run stops at QEMU's 1 s timeout: the disks are made by then and kept in the folder.
TEST_F(BootTest, AutoWithoutFuseDownloadsTheWholeRootAndSaysSo) {
  const int64_t listed = root_blocks_listed();
  ASSERT_GT(listed, 0);
  std::string disks = work_ + "/nofuse", fake = work_ + "/not-fuse";
  ASSERT_TRUE(write_file_atomic(fake, "", 0600));
  const int64_t gets_before = calls("ebs:GetSnapshotBlock");
  std::string cmd = "mount --bind '" + fake + "' /dev/fuse && exec '" AMIBAKE_BINARY "' verify " + ami_ +
                    " --boot --keep-disks '" + disks + "' --timeout 1 --accel tcg";
  std::string out, err;
  int rc = testing::run_capture({"unshare", "--mount", "--propagation", "private", "sh", "-c", cmd}, cli_env(),
                                &out, &err);
  EXPECT_EQ(rc, 1) << "QEMU cannot give a verdict in 1 s:\n" << err;
  EXPECT_EQ(calls("ebs:GetSnapshotBlock") - gets_before, listed) << "every written block downloaded";
  EXPECT_NE(err.find("lazy fetch unavailable"), std::string::npos) << err;
  EXPECT_NE(err.find("downloading the whole snapshot instead"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(disks + "/xvda.img"));
  EXPECT_FALSE(fs::exists(disks + "/xvda.img.lazy.json")) << "a complete disk, not a lazy cache";
}
#endif

}  // namespace
}  // namespace amibake
