// The datavol binary's command line: exit codes, install into an image tree, static linking.
#include <gtest/gtest.h>
#include <limits.h>
#include <unistd.h>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/datavol_under_test.h"

namespace amibake {
namespace {

ProcessResult datavol(const std::vector<std::string>& args) {
  auto r = run_process(datavol_command(args));
  EXPECT_TRUE(r.has_value());
  return r.value_or(ProcessResult{});
}

TEST(DatavolCli, VersionExitsZero) {
  auto r = datavol({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, std::string("datavol ") + AMIBAKE_VERSION + "\n");
}

TEST(DatavolCli, HelpExitsZeroAndDocumentsExitCodes) {
  auto r = datavol({"help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("3 refused for safety"), std::string::npos) << r.out;
}

TEST(DatavolCli, UsageErrorsExitTwo) {
  EXPECT_EQ(datavol({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(datavol({"install"}).exit_code, 2);  // --root missing
  EXPECT_EQ(datavol({}).exit_code, 2);
  EXPECT_EQ(datavol({"install", "--root", "/tmp", "--init", "upstart"}).exit_code, 2);
}

TEST(DatavolCli, MissingConfigIsAFailureNamingThePath) {
  auto r =
      datavol({"--config", "/nonexistent/datavol.toml", "--run-dir", "/nonexistent/run", "setup"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/datavol.toml"), std::string::npos) << r.err;
}

TEST(DatavolCli, EmptyConfigIsNothingToDo) {
  auto dir = *make_temp_dir("datavol-cli");
  ASSERT_TRUE(write_file_atomic(dir + "/c.toml", "# no volumes\n"));
  auto r = datavol({"--config", dir + "/c.toml", "--run-dir", dir + "/run", "setup"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos);
  (void)run_process({"rm", "-rf", dir});
}

TEST(DatavolCli, GlobalFlagsAreAcceptedAfterTheSubcommand) {
  auto dir = *make_temp_dir("datavol-cli");
  ASSERT_TRUE(write_file_atomic(dir + "/c.toml", "# no volumes\n"));
  auto r = datavol({"setup", "--config", dir + "/c.toml", "--run-dir", dir + "/run", "-v"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos) << r.err;
  auto missing = datavol({"setup", "--run-dir", dir + "/run", "--config", dir + "/absent.toml"});
  EXPECT_EQ(missing.exit_code, 1) << missing.err;  // read the flag: names the file it looked for
  EXPECT_NE(missing.err.find(dir + "/absent.toml"), std::string::npos) << missing.err;
  (void)run_process({"rm", "-rf", dir});
}

TEST(DatavolCli, InstallWritesConfigUnitDropinsAndLinks) {
  auto dir = *make_temp_dir("datavol-cli");
  ASSERT_TRUE(write_file_atomic(dir + "/c.toml",
                                "[[volume]]\ndevice = \"xvdb\"\nmount = \"/scratch\"\n"
                                "required_by = [\"docker\"]\n"));
  auto r = datavol(
      {"install", "--root", dir + "/img", "--init", "systemd", "--config-from", dir + "/c.toml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "/etc/datavol/datavol.toml\n/etc/systemd/system/datavol.service\n"
            "/etc/systemd/system/multi-user.target.wants/datavol.service\n"
            "/etc/systemd/system/docker.service.d/50-datavol.conf\n");
  auto dropin = read_file(dir + "/img/etc/systemd/system/docker.service.d/50-datavol.conf");
  EXPECT_NE(dropin->find("Requires=datavol.service\nAfter=datavol.service\n"), std::string::npos) << *dropin;
  EXPECT_EQ(dropin->find("RequiresMountsFor="), std::string::npos) << *dropin;
  auto unit = read_file(dir + "/img/etc/systemd/system/datavol.service");
  EXPECT_NE(unit->find("scratch.mount"), std::string::npos);
  (void)run_process({"rm", "-rf", dir});
}

TEST(DatavolCli, InstallRefusesAnInvalidConfig) {
  auto dir = *make_temp_dir("datavol-cli");
  ASSERT_TRUE(write_file_atomic(dir + "/c.toml", "[[volume]]\nfilesystem = \"zfs\"\n"));
  auto r = datavol({"install", "--root", dir + "/img", "--config-from", dir + "/c.toml"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(access((dir + "/img/etc/datavol/datavol.toml").c_str(), F_OK), 0);
  (void)run_process({"rm", "-rf", dir});
}

TEST(DatavolCli, ResolveNamesTheDeviceInAFakeTree) {
  auto dir = *make_temp_dir("datavol-cli");
  ASSERT_TRUE(make_dirs(dir + "/sys/block/xvdb"));
  ASSERT_TRUE(write_file_atomic(dir + "/sys/block/xvdb/dev", "202:16\n"));
  ASSERT_TRUE(make_dirs(dir + "/dev"));
  auto r = datavol({"--sys", dir + "/sys", "--dev", dir + "/dev", "resolve", "/dev/sdb"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, dir + "/dev/xvdb\tkernel name xvdb\n");
  r = datavol({"--sys", dir + "/sys", "--dev", dir + "/dev", "resolve", "xvdc"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no device matches \"xvdc\"; seen:\nxvdb xen xvdb\n"), std::string::npos)
      << r.err;
  (void)run_process({"rm", "-rf", dir});
}

// Defence in depth (issue 15): a config written by hand that mounts over the system is
// refused with the "refused" code before any device is touched.
TEST(DatavolCli, SystemMountPointsAreRefusedWithExitThreeAndNothingMounted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a loop device";
  auto dir = *make_temp_dir("datavol-cli");
  std::string img = dir + "/blank.img";
  ASSERT_TRUE(run_checked({"truncate", "-s", "64M", img}));
  auto loop = run_checked({"losetup", "--find", "--show", img});
  ASSERT_TRUE(loop) << loop.error().message;
  std::string dev = loop->substr(0, loop->find('\n'));
  for (const char* mount : {"/usr", "/etc", "/data/../etc", "/var", "/boot/efi"}) {
    SCOPED_TRACE(mount);
    ASSERT_TRUE(write_file_atomic(
        dir + "/c.toml", "[[volume]]\ndevice = \"" + dev + "\"\nmount = \"" + mount + "\"\n"));
    auto r = datavol({"--config", dir + "/c.toml", "--run-dir", dir + "/run", "--fstab",
                      dir + "/fstab", "setup"});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find(std::string("\"") + mount + "\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("mount"), std::string::npos) << r.err;
  }
  // Untouched: no signature written, not mounted, no fstab line.
  auto probe = run_process({"blkid", "-p", dev});
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->out, "");
  EXPECT_EQ(read_file("/proc/self/mountinfo")->find(dev + " "), std::string::npos);
  EXPECT_FALSE(read_file(dir + "/fstab").has_value());
  (void)run_process({"losetup", "-d", dev});
  (void)run_process({"rm", "-rf", dir});
}

TEST(DatavolCli, BinaryIsStaticAndUnderThreeMiB) {
  if (!program_exists("file")) GTEST_SKIP() << "file(1) not installed";
  auto r = run_checked({"file", "-L", DATAVOL_BINARY});
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("statically linked"), std::string::npos) << *r;
  auto size = read_file(DATAVOL_BINARY)->size();
  EXPECT_LT(size, 3u << 20) << size;
}

}  // namespace
}  // namespace amibake
