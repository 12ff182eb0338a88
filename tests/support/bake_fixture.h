// Test support: the fixture shared by the end-to-end bake suites (bake_e2e_test,
// bake_resilience_test): the catalog images made once per suite, a real awsemu process
// per test (restartable on the same --data, with extra flags such as --faults), the
// real amibake binary run with an environment confined to the test's temp folder, and
// read-back helpers that look at the emulator through the EC2 API.
//
// Needs root (the fixtures and amibake use loop devices and mounts): SetUp skips
// otherwise. The test's folder is kept when the test failed, for inspection.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aws/client.h"
#include "image/loop.h"
#include "image/mount.h"
#include "tests/support/background.h"

namespace amibake::testing {

// The identity awsemu accepts by default (a public test value, not a secret).
inline constexpr const char* kEmuKey = "AKIAAWSEMU0EXAMPLE00";
inline constexpr const char* kEmuSecret = "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0";

struct CliRun {
  int rc = -1;
  std::string out, err;
};

// The first build id ("b-YYYYMMDD-HHMMSS-xxxxxx") in `text`, or "".
std::string build_id_in(const std::string& text);
// Lines of `text` that contain `needle`, each ending in '\n'.
std::string lines_with(const std::string& text, const std::string& needle);
// The folder make-base-images writes the catalog to (in the build tree).
std::string fixtures_dir();
// examples/<name> in the source tree.
std::string example_recipe(const std::string& name);

// Everything about a root tree that two bakes of one recipe must agree on: per path its
// type, mode, owner, size, content digest, link target and SELinux label (times left out).
std::map<std::string, std::string> tree_of(const std::string& root);

// A disk image's root partition mounted read-only for the length of a check.
struct ReadOnlyRoot {
  std::optional<image::LoopDevice> loop;
  std::optional<image::Mount> mount;
  explicit ReadOnlyRoot(const std::string& disk);
  std::string path(const std::string& p) const { return mount->path() + p; }
};

class BakeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  // (Re)starts awsemu on dir_/emu with the catalog and `extra` flags, at speed 0 unless
  // `extra` holds a --speed.
  void start_emu(const std::vector<std::string>& extra);
  // The catalog folder awsemu serves: make-base-images' by default.
  virtual std::string catalog_dir() const { return fixtures_dir(); }
  // amibake's environment: awsemu's endpoint and keys, state, work and TMPDIR in dir_.
  std::vector<std::string> env() const;
  CliRun amibake(std::vector<std::string> args) const;
  // Starts amibake with `args` in the background (its environment as amibake()'s), its
  // stdout and stderr to a fresh dir_/amibake.N.log; returns that log's path.
  std::string start_amibake(BackgroundProcess& p, const std::vector<std::string>& args);
  // awsemu's count of calls to `op` ("ebs:GetSnapshotBlock", "ec2:CopyImage") since it
  // last started (its /_awsemu/stats), or -1 when it does not answer.
  int64_t emu_calls(const std::string& op) const;
  std::unique_ptr<aws::AwsClient> client() const;
  // Ids of the account's images / snapshots carrying tag key = value.
  std::vector<std::string> images_tagged(const std::string& key, const std::string& value) const;
  std::vector<std::string> snapshots_tagged(const std::string& key, const std::string& value) const;
  // Every image, snapshot and volume carrying amibake:build-id = build_id.
  std::vector<std::string> tagged_with(const std::string& build_id) const;
  // Loop devices and mounts whose backing file or mount point lies in dir_ ("" if none).
  std::string host_leftovers() const;
  // Detaches every attached volume while awsemu answers (its loop devices outlive it).
  void detach_all_volumes();
  // Downloads snapshot `snap` through EBS direct into a sparse image in dir_; returns its path.
  std::string download(const std::string& snap) const;

  std::string dir_, url_;
  int emu_starts_ = 0;
  int background_runs_ = 0;
  BackgroundProcess emu_;
  static inline bool fixtures_ok_ = false;
  static inline std::string fixtures_error_;
};

}  // namespace amibake::testing
