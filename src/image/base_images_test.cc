// The catalog fixture (tests/fixtures/make-base-images) checked with this library: every
// image's table parses, the root partition is the one the manifest names, it mounts
// read-only and holds the expected files, and detection finds the manifest's init system
// and architecture. The script runs once per test binary into the build tree's fixtures
// folder (or $AMIBAKE_FIXTURES_DIR) and is cached by its own hash, so reruns are instant.
#include "source_paths.h"
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/block_image.h"
#include "image/loop.h"
#include "image/mount.h"
#include "image/partition.h"
#include "image/payload.h"
#include "image/root_mount.h"
#include "image/selinux.h"
#include "image/test_util.h"

namespace amibake::image {
namespace {

std::string fixtures_dir() { return env_or("AMIBAKE_FIXTURES_DIR", AMIBAKE_FIXTURES_DIR); }
std::string script() {
  return std::string(AMIBAKE_SOURCE_DIR) + "/tests/fixtures/make-base-images";
}

class BaseImages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = testing::why_no_loop_devices();
    if (!skip_reason_.empty()) return;
    auto started = std::chrono::steady_clock::now();
    auto r = run_process({script(), fixtures_dir()});
    build_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!r || r->exit_code != 0) {
      build_error_ = r ? r->err : r.error().message;
      return;
    }
    auto text = read_file(fixtures_dir() + "/catalog.json");
    if (!text) {
      build_error_ = text.error().message;
      return;
    }
    catalog_ = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(build_error_.empty()) << "make-base-images failed: " << build_error_;
    ASSERT_FALSE(catalog_.is_discarded());
    ASSERT_EQ(catalog_["images"].size(), 4u);
  }

  static std::string image_path(const nlohmann::json& e) {
    return fixtures_dir() + "/" + e["file"].get<std::string>();
  }

  static inline std::string skip_reason_;
  static inline std::string build_error_;
  static inline double build_seconds_ = 0;
  static inline nlohmann::json catalog_;
};

TEST_F(BaseImages, EveryTableParsesWithTheManifestsRootPartition) {
  for (const auto& e : catalog_["images"]) {
    SCOPED_TRACE(e["key"].get<std::string>());
    auto table = read_partition_table(image_path(e));
    ASSERT_TRUE(table) << table.error().message;
    EXPECT_EQ(table_kind_name(table->kind), e["partition_table"].get<std::string>());
    EXPECT_EQ(table->disk_size, 30ull << 30);
    EXPECT_EQ(table->partitions.size(), e["partitions"].size());
    auto root = find_root_partition(*table);
    ASSERT_TRUE(root) << root.error().message;
    EXPECT_EQ(root->index, e["root_partition"].get<int>());
    for (const auto& p : e["partitions"]) {
      bool found = false;
      for (const Partition& q : table->partitions) {
        if (q.index != p["index"].get<int>()) continue;
        found = true;
        EXPECT_EQ(q.start, p["start"].get<uint64_t>());
        EXPECT_EQ(q.size, p["size"].get<uint64_t>());
        if (p.contains("type_guid")) {
          EXPECT_EQ(q.type_guid, p["type_guid"].get<std::string>());
        }
        auto fs = probe_filesystem(image_path(e), q.start, q.size);
        ASSERT_TRUE(fs) << fs.error().message;
        EXPECT_EQ(fs->type, p["fstype"].is_null() ? "" : p["fstype"].get<std::string>());
      }
      EXPECT_TRUE(found) << "partition " << p["index"];
    }
  }
}

TEST_F(BaseImages, EveryRootMountsReadOnlyWithTheExpectedTree) {
  for (const auto& e : catalog_["images"]) {
    SCOPED_TRACE(e["key"].get<std::string>());
    auto mount = mount_root(image_path(e), {/*read_only=*/true, ""});
    ASSERT_TRUE(mount) << mount.error().describe();
    EXPECT_EQ(mount->partition().index, e["root_partition"].get<int>());
    EXPECT_EQ(mount->fstype(), e["root_fstype"].get<std::string>());
    for (const auto& f : e["expected_files"]) {
      auto content = read_file_in_root(mount->path(), f.get<std::string>(), 16);
      EXPECT_TRUE(content) << f << ": " << (content ? "" : content.error().message);
    }
    auto info = detect_image(mount->path());
    ASSERT_TRUE(info);
    EXPECT_EQ(init_system_name(info->init), e["init"].get<std::string>()) << info->init_reason;
    EXPECT_EQ(arch_name(info->arch), e["architecture"].get<std::string>());
    EXPECT_EQ(info->os_id, "amzn");
    if (e["key"] == "al2023-x86_64") {
      EXPECT_EQ(info->selinux.mode, "permissive");
      EXPECT_TRUE(info->selinux.file_contexts_present);
      auto contexts = load_file_contexts(mount->path(), info->selinux.policy_type);
      ASSERT_TRUE(contexts) << contexts.error().message;
      EXPECT_EQ(contexts->lookup("/etc/systemd/system/datavol.service", S_IFREG),
                "system_u:object_r:systemd_unit_file_t:s0");
    }
    Status released = mount->release();
    ASSERT_TRUE(released) << released.error().message;
  }
}

// Recomputes the manifest's content hash: SHA-256 over (block index as 8 little-endian
// bytes, block) for every non-zero 512 KiB block, in order.
TEST_F(BaseImages, ContentHashAndWrittenBytesMatchTheImages) {
  for (const auto& e : catalog_["images"]) {
    SCOPED_TRACE(e["key"].get<std::string>());
    auto image = BlockImage::open(image_path(e));
    ASSERT_TRUE(image);
    auto blocks = image->data_blocks();
    ASSERT_TRUE(blocks);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    size_t nonzero = 0;
    for (uint64_t b : *blocks) {
      auto data = image->read_block(b);
      ASSERT_TRUE(data);
      if (is_all_zero(*data)) continue;
      ++nonzero;
      unsigned char index[8];
      for (int i = 0; i < 8; ++i) index[i] = static_cast<unsigned char>(b >> (8 * i));
      EVP_DigestUpdate(ctx, index, 8);
      EVP_DigestUpdate(ctx, data->data(), data->size());
    }
    Digest d{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, d.data(), &len);
    EVP_MD_CTX_free(ctx);
    EXPECT_EQ(digest_hex(d), e["content_sha256"].get<std::string>());
    struct stat st {};
    ASSERT_EQ(::stat(image_path(e).c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, e["written_bytes"].get<uint64_t>());
    EXPECT_GE(nonzero * kBlockSize, 4u << 20) << "filler data is there";
    EXPECT_LE(nonzero * kBlockSize, 128u << 20) << "a few MiB plus filesystem metadata";
  }
}

TEST_F(BaseImages, SecondRunIsCachedAndChangesNothing) {
  struct stat before {};
  ASSERT_EQ(::stat((fixtures_dir() + "/catalog.json").c_str(), &before), 0);
  auto started = std::chrono::steady_clock::now();
  auto r = run_process({script(), fixtures_dir()});
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->err.find("up to date"), std::string::npos) << r->err;
  EXPECT_LT(seconds, 5.0);
  struct stat after {};
  ASSERT_EQ(::stat((fixtures_dir() + "/catalog.json").c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  std::cerr << "make-base-images: first call in this run took " << build_seconds_
            << " s, cached call " << seconds << " s\n";
}

}  // namespace
}  // namespace amibake::image
