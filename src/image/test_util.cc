#include "image/test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/loop.h"
#include "image/partition.h"

namespace amibake::image::testing {

ScratchDir::ScratchDir() {
  auto dir = make_temp_dir("amibake-image-test");
  if (!dir) {
    ADD_FAILURE() << dir.error().message;
    return;
  }
  path_ = *dir;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string why_no_loop_devices() {
  if (::geteuid() != 0) return "needs root for loop devices and mount(2)";
  int fd = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (fd < 0) return "/dev/loop-control is not usable (no loop module?)";
  ::close(fd);
  return {};
}

void make_sparse_file(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  ::close(fd);
}

bool run_ok(const std::vector<std::string>& argv, const std::string& stdin_data) {
  RunOptions options;
  options.stdin_data = stdin_data;
  auto r = run_process(argv, options);
  if (!r) {
    ADD_FAILURE() << r.error().message;
    return false;
  }
  if (r->exit_code != 0) {
    ADD_FAILURE() << argv[0] << " exited " << r->exit_code << ": " << r->err << r->out;
    return false;
  }
  return true;
}

std::string slurp(const std::string& path) {
  auto r = read_file(path);
  EXPECT_TRUE(r) << path;
  return r ? *r : std::string();
}

bool make_test_disk(const std::string& path, TestDiskKind kind, uint64_t size) {
  make_sparse_file(path, size);
  if (kind == TestDiskKind::kGptXfs) {
    if (!run_ok({"sgdisk", "-n", "1:2048:0", "-t", "1:8304", "-c", "1:root", path})) return false;
  } else if (!run_ok({"sfdisk", "-q", path}, "label: dos\nstart=2048, type=83, bootable\n")) {
    return false;
  }
  auto table = read_partition_table(path);
  if (!table) {
    ADD_FAILURE() << table.error().message;
    return false;
  }
  auto root = find_root_partition(*table);
  if (!root) {
    ADD_FAILURE() << root.error().message;
    return false;
  }
  LoopOptions options;
  options.offset = root->start;
  options.size_limit = root->size;
  auto loop = LoopDevice::attach(path, options);
  if (!loop) {
    ADD_FAILURE() << loop.error().message;
    return false;
  }
  if (kind == TestDiskKind::kGptXfs)
    return run_ok({"mkfs.xfs", "-q", "-f", "-L", "root", loop->path()});
  return run_ok({"mkfs.ext4", "-q", "-F", "-L", "root", loop->path()});
}

}  // namespace amibake::image::testing
