// Shared helpers for the image tests: scratch folders, sparse files, root checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace amibake::image::testing {

// A scratch folder under $TMPDIR, removed (recursively) on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Returns "" when loop devices and mount(2) are usable here, else the reason they are not
// (tests GTEST_SKIP() with it).
std::string why_no_loop_devices();

// Creates a sparse file of `size` bytes.
void make_sparse_file(const std::string& path, uint64_t size);

// Runs argv; fails the current test (ADD_FAILURE) and returns false on a non-zero exit.
bool run_ok(const std::vector<std::string>& argv, const std::string& stdin_data = {});

// Returns the whole file.
std::string slurp(const std::string& path);

// Real disk images for tests that mount them (root only).
enum class TestDiskKind {
  kGptXfs,   // GPT, partition 1 typed Linux root x86-64 from 1 MiB on, XFS labelled "root"
  kMbrExt4,  // MBR, partition 1 (0x83, bootable) from 1 MiB on, ext4 labelled "root"
};

// Creates a sparse disk image of `size` bytes at `path` with `kind`'s table and an empty
// filesystem on the root partition (mkfs over a loop device at the partition's offset).
// Fails the current test (ADD_FAILURE) and returns false when a tool fails.
bool make_test_disk(const std::string& path, TestDiskKind kind, uint64_t size);

}  // namespace amibake::image::testing
