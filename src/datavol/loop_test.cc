// End-to-end on real loop devices: the datavol binary against real mkfs, mount, fstab
// (a temp file), and signatures made by the real tools.
//
// Needs root and working loop devices; skips with the reason otherwise. Every loop device,
// mount and md array a test makes is undone in TearDown, even when the test failed.
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/datavol_under_test.h"
#include "datavol/host.h"
#include "datavol/nvme.h"
#include "datavol/setup.h"

namespace amibake::datavol {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool md_available() { return access("/proc/mdstat", F_OK) == 0; }

// ext4 online resize needs CAP_SYS_RESOURCE, which some containers drop even for root.
bool has_cap_sys_resource() {
  auto status = read_file("/proc/self/status");
  size_t at = status ? status->find("CapEff:") : std::string::npos;
  if (at == std::string::npos) return false;
  uint64_t caps = std::stoull(status->substr(at + 7), nullptr, 16);
  return caps & (1ull << 24);
}

class DatavolLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mkfs, mount)";
    for (const char* p : {"losetup", "mount", "umount", "mkfs.xfs", "mkfs.ext4", "sha256sum"}) {
      if (!program_exists(p)) GTEST_SKIP() << p << " not installed";
    }
    dir_ = *make_temp_dir("datavol-loop");
    fstab_ = dir_ + "/fstab";
    run_dir_ = dir_ + "/run";
    mount_ = dir_ + "/data";
    ASSERT_TRUE(write_file_atomic(fstab_, "# test fstab\nUUID=x / xfs defaults 0 0\n"));
    auto probe = run_process({"losetup", "-f"});
    if (!probe || probe->exit_code != 0) GTEST_SKIP() << "no free loop device";
  }

  void TearDown() override {
    if (dir_.empty()) return;
    // Deepest mounts first: everything we mounted lives under dir_.
    auto mounts = read_mountinfo("/proc/self/mountinfo");
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      if (it->mount_point.rfind(dir_, 0) == 0) (void)run_process({"umount", it->mount_point});
    }
    for (const auto& md : arrays_) (void)run_process({"mdadm", "--stop", md});
    for (const auto& dev : loops_) (void)run_process({"losetup", "-d", dev});
    (void)run_process({"rm", "-rf", dir_});
  }

  // A sparse file of `size` ("400M") attached as a loop device.
  std::string attach(const std::string& size) {
    std::string file = dir_ + "/disk" + std::to_string(loops_.size());
    EXPECT_TRUE(run_checked({"truncate", "-s", size, file}).has_value());
    auto dev = run_checked({"losetup", "-f", "--show", file});
    EXPECT_TRUE(dev.has_value());
    if (!dev) return "";
    loops_.push_back(trim(*dev));
    files_.push_back(file);
    return loops_.back();
  }

  void write_config(const std::string& device, const std::string& filesystem = "xfs",
                    const std::string& extra = "") {
    ASSERT_TRUE(write_file_atomic(dir_ + "/datavol.toml",
                                  "[[volume]]\ndevice = \"" + device + "\"\nmount = \"" + mount_ +
                                      "\"\nfilesystem = \"" + filesystem +
                                      "\"\nwait_seconds = 0\nrequired_by = []\n" + extra));
  }

  // Runs the datavol binary with every host path pointed at the test's own files.
  int datavol(const std::string& command, std::string* err = nullptr) {
    auto r = run_process(datavol_command({"--config", dir_ + "/datavol.toml", "--fstab", fstab_,
                                          "--run-dir", run_dir_, command}));
    EXPECT_TRUE(r.has_value());
    if (!r) return -1;
    if (err) *err = r->err;
    return r->exit_code;
  }

  std::string checksum(const std::string& path) {
    auto out = run_checked({"sha256sum", path});
    return out ? out->substr(0, 64) : "error";
  }

  // The source device's maj:min mounted at `mount_point`, or "" when nothing is.
  std::string mounted_at(const std::string& mount_point) {
    for (const auto& m : read_mountinfo("/proc/self/mountinfo")) {
      if (m.mount_point == mount_point) return m.fstype;
    }
    return "";
  }

  std::string status_json() { return read_file(run_dir_ + "/status.json").value_or(""); }

  // Grows `fs` after the device was enlarged with truncate + losetup -c.
  void grow(const char* fs);

  std::string dir_, fstab_, run_dir_, mount_;
  std::vector<std::string> loops_, files_, arrays_;
};

TEST_F(DatavolLoop, BlankDeviceIsFormattedXfsAndMountedWithFstabLine) {
  std::string dev = attach("400M");
  write_config(dev);
  std::string err;
  ASSERT_EQ(datavol("setup", &err), 0) << err;
  EXPECT_EQ(mounted_at(mount_), "xfs");
  auto uuid = run_checked({"blkid", "-p", "-s", "UUID", "-o", "value", dev});
  ASSERT_TRUE(uuid.has_value());
  EXPECT_NE(
      read_file(fstab_)->find("UUID=" + trim(*uuid) + " " + mount_ +
                              " xfs defaults,noatime,nofail,x-systemd.device-timeout=10s 0 2\n"),
      std::string::npos)
      << *read_file(fstab_);
  EXPECT_NE(read_file(fstab_)->find("UUID=x / xfs defaults 0 0\n"), std::string::npos);
  EXPECT_NE(status_json().find("\"action\": \"formatted, mounted, fstab updated\""),
            std::string::npos)
      << status_json();
  auto status = run_process(datavol_command({"--run-dir", run_dir_, "status", "--json"}));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 0);
  EXPECT_NE(status->out.find("\"mounted\": true"), std::string::npos) << status->out;
  ASSERT_TRUE(run_checked({"umount", mount_}).has_value());
  status = run_process(datavol_command({"--run-dir", run_dir_, "status"}));
  EXPECT_NE(status->out.find("NOT mounted"), std::string::npos) << status->out;  // live check
}

TEST_F(DatavolLoop, BlankDeviceIsFormattedExt4WhenConfigured) {
  std::string dev = attach("300M");
  write_config(dev, "ext4", "owner = \"1234:5678\"\nmode = \"0750\"\n");
  std::string err;
  ASSERT_EQ(datavol("setup", &err), 0) << err;
  EXPECT_EQ(mounted_at(mount_), "ext4");
  struct stat st;
  ASSERT_EQ(stat(mount_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(DatavolLoop, SecondRunChangesNothing) {
  std::string dev = attach("400M");
  write_config(dev);
  ASSERT_EQ(datavol("setup"), 0);
  std::string fstab = *read_file(fstab_),
              sum_uuid = trim(*run_checked({"blkid", "-p", "-o", "value", "-s", "UUID", dev}));
  std::string err;
  ASSERT_EQ(datavol("setup", &err), 0) << err;
  EXPECT_EQ(*read_file(fstab_), fstab);
  EXPECT_EQ(trim(*run_checked({"blkid", "-p", "-o", "value", "-s", "UUID", dev})), sum_uuid);
  EXPECT_NE(status_json().find("\"action\": \"already mounted\""), std::string::npos)
      << status_json();
  int mounts = 0;
  for (const auto& m : read_mountinfo("/proc/self/mountinfo")) mounts += m.mount_point == mount_;
  EXPECT_EQ(mounts, 1);
}

TEST_F(DatavolLoop, FileSurvivesSimulatedReboot) {
  std::string dev = attach("400M");
  write_config(dev);
  ASSERT_EQ(datavol("setup"), 0);
  ASSERT_TRUE(run_checked({"dd", "if=/dev/urandom", "of=" + mount_ + "/payload", "bs=1M", "count=4",
                           "status=none"})
                  .has_value());
  std::string before = checksum(mount_ + "/payload");
  ASSERT_TRUE(run_checked({"umount", mount_}).has_value());  // the "reboot"
  std::string err;
  ASSERT_EQ(datavol("setup", &err), 0) << err;
  EXPECT_EQ(mounted_at(mount_), "xfs");
  EXPECT_EQ(checksum(mount_ + "/payload"), before);
  EXPECT_NE(status_json().find("\"action\": \"mounted\""), std::string::npos) << status_json();
}

TEST_F(DatavolLoop, EnlargedDeviceIsGrownXfs) { grow("xfs"); }

TEST_F(DatavolLoop, EnlargedDeviceIsGrownExt4) {
  if (!has_cap_sys_resource()) {
    GTEST_SKIP() << "ext4 online resize needs CAP_SYS_RESOURCE, which this environment lacks";
  }
  grow("ext4");
}

void DatavolLoop::grow(const char* fs) {
  {
    SCOPED_TRACE(fs);
    std::string dev = attach("400M");
    mount_ = dir_ + "/data-" + fs;
    write_config(dev, fs);
    ASSERT_EQ(datavol("setup"), 0);
    struct statvfs before, after;
    ASSERT_EQ(statvfs(mount_.c_str(), &before), 0);
    ASSERT_TRUE(run_checked({"truncate", "-s", "1G", files_.back()}).has_value());
    ASSERT_TRUE(run_checked({"losetup", "-c", dev}).has_value());
    std::string err;
    ASSERT_EQ(datavol("setup", &err), 0) << err;
    ASSERT_EQ(statvfs(mount_.c_str(), &after), 0);
    EXPECT_GT(after.f_blocks * after.f_frsize, (before.f_blocks * before.f_frsize) * 2);
    EXPECT_NE(status_json().find("\"action\": \"already mounted, grown\""), std::string::npos)
        << status_json();
    ASSERT_EQ(datavol("setup"), 0);  // and not again
    EXPECT_NE(status_json().find("\"action\": \"already mounted\""), std::string::npos);
  }
}

TEST_F(DatavolLoop, MountedDeviceIsRefused) {
  std::string dev = attach("400M");
  ASSERT_TRUE(run_checked({"mkfs.xfs", "-q", dev}).has_value());
  ASSERT_TRUE(make_dirs(dir_ + "/elsewhere"));
  ASSERT_TRUE(run_checked({"mount", dev, dir_ + "/elsewhere"}).has_value());
  write_config(dev);
  std::string err;
  EXPECT_EQ(datavol("setup", &err), 3) << err;
  EXPECT_NE(err.find("is mounted at " + dir_ + "/elsewhere"), std::string::npos) << err;
  EXPECT_EQ(mounted_at(mount_), "");
}

TEST_F(DatavolLoop, RandomBytesWithoutSignatureAreRefused) {
  for (const char* where : {"first", "last"}) {
    SCOPED_TRACE(where);
    std::string dev = attach("64M");
    std::vector<std::string> dd = {"dd",      "if=/dev/urandom", "of=" + dev,   "bs=1M",
                                   "count=1", "status=none",     "oflag=direct"};
    if (std::string(where) == "last") dd.push_back("seek=63");
    ASSERT_TRUE(run_checked(dd).has_value());
    auto blkid = run_process({"blkid", "-p", dev});
    ASSERT_NE(blkid->exit_code, 0) << "random bytes happen to carry a signature: " << blkid->out;
    std::string sum = checksum(dev), err;
    write_config(dev);
    EXPECT_EQ(datavol("setup", &err), 3) << err;
    EXPECT_NE(err.find("non-zero bytes"), std::string::npos) << err;
    EXPECT_EQ(checksum(dev), sum);
  }
}

TEST_F(DatavolLoop, ProbeCommandIsReadOnly) {
  std::string dev = attach("64M");
  std::string sum = checksum(dev);
  auto r = run_process(datavol_command({"probe", dev}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_NE(r->out.find("blank"), std::string::npos);
  EXPECT_EQ(checksum(dev), sum);
}

// One signature kind, made by the real tool (argv with "{dev}"/"{key}" placeholders).
struct SignatureCase {
  const char* name;
  std::vector<std::string> make;
  const char* configured_fs;  // the config asks for this (differs from an existing fs)
  const char* expect_reason;
};

void PrintTo(const SignatureCase& c, std::ostream* os) { *os << c.name; }

class DatavolSignatures : public DatavolLoop,
                          public ::testing::WithParamInterface<SignatureCase> {};

TEST_P(DatavolSignatures, AreRefusedAndTheDeviceIsUnchanged) {
  const SignatureCase& c = GetParam();
  if (!program_exists(c.make[0])) GTEST_SKIP() << c.make[0] << " not installed";
  std::string dev = attach("400M");
  ASSERT_TRUE(write_file_atomic(dir_ + "/key", "0123456789abcdef0123456789abcdef"));
  std::vector<std::string> argv;
  for (auto a : c.make) {
    if (a == "{dev}") a = dev;
    if (a == "{key}") a = dir_ + "/key";
    argv.push_back(a);
  }
  auto made = run_checked(argv);
  ASSERT_TRUE(made.has_value()) << made.error().message;
  std::string sum = checksum(dev), fstab = *read_file(fstab_), err;
  write_config(dev, c.configured_fs);
  EXPECT_EQ(datavol("setup", &err), 3) << err;
  EXPECT_NE(err.find(c.expect_reason), std::string::npos) << err;
  EXPECT_EQ(checksum(dev), sum);
  EXPECT_EQ(*read_file(fstab_), fstab);
  EXPECT_EQ(mounted_at(mount_), "");
}

INSTANTIATE_TEST_SUITE_P(
    RealTools, DatavolSignatures,
    ::testing::Values(
        SignatureCase{"ext4", {"mkfs.ext4", "-q", "{dev}"}, "xfs", "existing ext4 filesystem"},
        SignatureCase{"xfs", {"mkfs.xfs", "-q", "{dev}"}, "ext4", "existing xfs filesystem"},
        SignatureCase{"btrfs", {"mkfs.btrfs", "-q", "{dev}"}, "xfs", "existing btrfs filesystem"},
        SignatureCase{"gpt", {"sgdisk", "-o", "{dev}"}, "xfs", "gpt partition table"},
        SignatureCase{
            "dos", {"parted", "-s", "{dev}", "mklabel", "msdos"}, "xfs", "dos partition table"},
        SignatureCase{"lvm", {"pvcreate", "-q", "{dev}"}, "xfs", "LVM2_member signature"},
        SignatureCase{
            "luks",
            {"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
             "--pbkdf-force-iterations", "1000", "--key-file", "{key}", "{dev}"},
            "xfs",
            "crypto_LUKS signature"},
        SignatureCase{"swap", {"mkswap", "{dev}"}, "xfs", "swap signature"}),
    [](const auto& info) { return std::string(info.param.name); });

// An md member signature. mdadm --create needs the kernel's md driver; where it is missing
// (this development machine's kernel has none: no /proc/mdstat) the v1.2 superblock is
// written by hand to the kernel's layout (struct mdp_superblock_1 at 4 KiB) instead.
TEST_F(DatavolLoop, MdRaidMemberIsRefused) {
  std::string dev = attach("400M");
  if (md_available() && program_exists("mdadm")) {
    std::string md = "/dev/md/dvsig" + std::to_string(getpid());
    ASSERT_TRUE(run_checked({"mdadm", "--create", md, "--run", "--level=1", "--raid-devices=2",
                             "--metadata=1.2", dev, "missing"})
                    .has_value());
    ASSERT_TRUE(run_checked({"mdadm", "--stop", md}).has_value());
  } else {
    std::string sb(4096, '\0');
    auto put32 = [&](size_t off, uint32_t v) {
      for (int i = 0; i < 4; ++i) sb[off + i] = char(v >> (8 * i));
    };
    put32(0, 0xa92b4efc);  // magic
    put32(4, 1);           // major_version
    sb.replace(32, 8, "dvsig:00");
    put32(72, 1);      // level
    put32(92, 2);      // raid_disks
    put32(128, 2048);  // data_offset (sectors)
    put32(144, 8);     // super_offset: 8 sectors = 4 KiB, i.e. metadata 1.2
    std::ofstream f(dev, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    f.write(sb.data(), static_cast<std::streamsize>(sb.size()));
  }
  auto blkid = run_checked({"blkid", "-p", "-o", "value", "-s", "TYPE", dev});
  ASSERT_TRUE(blkid.has_value());
  ASSERT_EQ(trim(*blkid), "linux_raid_member");
  std::string sum = checksum(dev), err;
  write_config(dev);
  EXPECT_EQ(datavol("setup", &err), 3) << err;
  EXPECT_NE(err.find("linux_raid_member signature"), std::string::npos) << err;
  EXPECT_EQ(checksum(dev), sum);
}

// instance_store = "each" through discovery: a fake sysfs/dev tree in which two
// instance-store NVMe disks are real loop devices (dev links, sysfs maj:min copied).
TEST_F(DatavolLoop, InstanceStoreEachMountsEveryDiskAtMountN) {
  FakeIdentifySource identify;
  DiscoverEnv env;
  env.paths.sys = dir_ + "/sys";
  env.paths.dev = dir_ + "/dev";
  env.paths.fstab = fstab_;
  env.paths.run_dir = run_dir_;
  env.identify = &identify;
  env.poll_interval = std::chrono::milliseconds(50);
  ASSERT_TRUE(make_dirs(env.paths.dev));
  for (int i = 0; i < 2; ++i) {
    std::string loop = attach("400M"), ns = "nvme" + std::to_string(i + 1) + "n1";
    std::string block = env.paths.sys + "/block/" + ns;
    ASSERT_TRUE(make_dirs(block));
    for (const char* attr : {"dev", "size"}) {
      auto value = read_file("/sys/block/" + loop.substr(5) + "/" + attr);
      ASSERT_TRUE(value.has_value());
      ASSERT_TRUE(write_file_atomic(block + "/" + attr, *value));
    }
    ASSERT_EQ(symlink(loop.c_str(), (env.paths.dev + "/" + ns).c_str()), 0);
    // ephemeral1 is nvme1, ephemeral0 nvme2: the order must follow the index, not the name.
    identify.pages[env.paths.dev + "/nvme" + std::to_string(i + 1)] =
        make_identify_page(0x1D0F, "AWS" + std::to_string(i), "Amazon EC2 NVMe Instance Storage",
                           "ephemeral" + std::to_string(1 - i) + ":none");
  }
  Config config;
  VolumeConfig v;
  v.find_by = FindBy::kInstanceStore;
  v.instance_store = InstanceStoreMode::kEach;
  v.mount = mount_;
  v.wait_seconds = 1;
  config.volumes.push_back(v);
  auto reports = setup_all(config, env);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(exit_code_for(reports), 0) << reports[0].reason << reports[1].reason;
  EXPECT_EQ(reports[0].mount, mount_ + "/0");
  EXPECT_EQ(reports[0].device, env.paths.dev + "/nvme2n1");
  EXPECT_EQ(reports[1].mount, mount_ + "/1");
  EXPECT_EQ(mounted_at(mount_ + "/0"), "xfs");
  EXPECT_EQ(mounted_at(mount_ + "/1"), "xfs");
  auto label = run_checked({"blkid", "-p", "-o", "value", "-s", "LABEL", loops_[1]});
  EXPECT_EQ(trim(label.value_or("")), "data0");
}

// RAID0 across three loop devices, created blank, then re-assembled after a "reboot"
// (umount + mdadm --stop), with the data intact.
TEST_F(DatavolLoop, Raid0AcrossThreeDisksIsReassembledAfterReboot) {
  if (!md_available()) GTEST_SKIP() << "kernel has no md driver (/proc/mdstat missing)";
  if (!program_exists("mdadm")) GTEST_SKIP() << "mdadm not installed";
  std::vector<std::string> paths, names;
  for (int i = 0; i < 3; ++i) {
    paths.push_back(attach("200M"));
    names.push_back(paths.back().substr(5));
  }
  VolumeConfig v;
  v.find_by = FindBy::kInstanceStore;
  v.mount = mount_;
  v.label = "r" + std::to_string(getpid() % 100000);
  HostPaths host;
  host.fstab = fstab_;
  host.run_dir = run_dir_;
  arrays_.push_back("/dev/md/datavol-" + v.label);
  VolumeReport first = setup_raid0(v, paths, names, host);
  ASSERT_EQ(first.code, 0) << first.reason;
  EXPECT_EQ(first.action.rfind("array created", 0), 0u) << first.action;
  ASSERT_TRUE(run_checked({"dd", "if=/dev/urandom", "of=" + mount_ + "/payload", "bs=1M", "count=4",
                           "status=none"})
                  .has_value());
  std::string before = checksum(mount_ + "/payload");
  ASSERT_TRUE(run_checked({"umount", mount_}).has_value());
  ASSERT_TRUE(run_checked({"mdadm", "--stop", arrays_.back()}).has_value());
  VolumeReport again = setup_raid0(v, paths, names, host);
  ASSERT_EQ(again.code, 0) << again.reason;
  EXPECT_EQ(again.action.rfind("array assembled", 0), 0u) << again.action;
  EXPECT_EQ(checksum(mount_ + "/payload"), before);
  EXPECT_EQ(again.uuid, first.uuid);
}

}  // namespace
}  // namespace amibake::datavol
