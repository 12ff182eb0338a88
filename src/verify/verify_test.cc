// Unit tests of the verify pieces that need no VM: endpoint check, serials, the QEMU
// command line, verdict parsing and judging, the report, the command's refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "base/files.h"
#include "verify/qemu.h"
#include "verify/verify.h"
#include "verify/verify_cmd.h"

namespace amibake::verify {
namespace {

TEST(VerifyLoopback, AcceptsOnlyLoopbackHosts) {
  EXPECT_TRUE(is_loopback_url("http://127.0.0.1:4566"));
  EXPECT_TRUE(is_loopback_url("http://localhost:80/"));
  EXPECT_TRUE(is_loopback_url("http://[::1]:9000"));
  EXPECT_TRUE(is_loopback_url("http://127.1.2.3"));
  EXPECT_FALSE(is_loopback_url("https://ec2.us-east-1.amazonaws.com"));
  EXPECT_FALSE(is_loopback_url("http://127.0.0.1.example.com:80"));
  EXPECT_FALSE(is_loopback_url("http://10.0.0.1:4566"));
}

TEST(VerifySerial, IsANitroLikeVolumeIdOfTwentyCharactersStablePerDevice) {
  std::string s = volume_serial("ami-0123", "/dev/xvdb");
  EXPECT_EQ(s.size(), 20u);
  EXPECT_EQ(s.rfind("vol", 0), 0u);
  EXPECT_EQ(s, volume_serial("ami-0123", "/dev/xvdb"));
  EXPECT_NE(s, volume_serial("ami-0123", "/dev/xvda"));
}

TEST(VerifyQemuArgv, EachDiskIsAnNvmeDeviceWithItsSerialAndTheEbsMapIsOnTheCommandLine) {
  std::vector<Disk> disks = {{"/dev/xvda", "vol0aaa", "/d/xvda.img", 1, true, false},
                             {"/dev/xvdb", "vol0bbb", "/d/xvdb.img", 2, false, false}};
  BootFiles f{"/d/vmlinuz", "/d/initrd", "root=PARTUUID=x rw panic=-1"};
  auto argv = qemu_argv(disks, f, "/d/console.log", "tcg", *machine_for("x86_64"));
  auto has = [&](const std::string& a) { return std::find(argv.begin(), argv.end(), a) != argv.end(); };
  EXPECT_EQ(argv.front(), "qemu-system-x86_64");
  EXPECT_TRUE(has("nvme,drive=disk0,serial=vol0aaa"));
  EXPECT_TRUE(has("nvme,drive=disk1,serial=vol0bbb"));
  EXPECT_TRUE(has("root=PARTUUID=x rw panic=-1 console=ttyS0 amibake.ebs=vol0aaa:xvda,vol0bbb:xvdb"));
  EXPECT_TRUE(has("file:/d/console.log"));
  EXPECT_FALSE(has("host")) << "-cpu host is for KVM only";
}

TEST(VerifyQemuArgv, Arm64BootsOnTheVirtBoardWithANeoverseN1AndThePl011Console) {
  std::vector<Disk> disks = {{"/dev/xvda", "vol0aaa", "/d/xvda.img", 1, true, false}};
  BootFiles f{"/d/vmlinuz", "/d/initrd", "root=PARTUUID=x rw panic=-1", "arm64"};
  auto argv = qemu_argv(disks, f, "/d/console.log", "tcg", *machine_for("arm64"));
  std::vector<std::string> head(argv.begin(), argv.begin() + 7);
  EXPECT_EQ(head, (std::vector<std::string>{"qemu-system-aarch64", "-M", "virt", "-cpu", "neoverse-n1",
                                            "-accel", "tcg"}));
  auto has = [&](const std::string& a) { return std::find(argv.begin(), argv.end(), a) != argv.end(); };
  EXPECT_TRUE(has("root=PARTUUID=x rw panic=-1 console=ttyAMA0 amibake.ebs=vol0aaa:xvda"));
  EXPECT_TRUE(has("nvme,drive=disk0,serial=vol0aaa"));
  // Under KVM (an arm64 host) the CPU is the host's, given once.
  auto kvm = qemu_argv(disks, f, "/d/console.log", "kvm", *machine_for("arm64"));
  EXPECT_EQ(std::count(kvm.begin(), kvm.end(), "-cpu"), 1);
  EXPECT_EQ(std::find(kvm.begin(), kvm.end(), "neoverse-n1"), kvm.end());
  EXPECT_NE(std::find(kvm.begin(), kvm.end(), "host"), kvm.end());
}

TEST(VerifyMachine, OtherArchitecturesAreRefusedWithTheReason) {
  for (const char* arch : {"i386", "x86_64_mac", "arm64_mac", ""}) {
    auto m = machine_for(arch);
    ASSERT_FALSE(m) << arch;
    EXPECT_NE(m.error().message.find("x86_64 and arm64"), std::string::npos) << m.error().message;
  }
  EXPECT_EQ(machine_for("arm64")->console, "ttyAMA0");
  EXPECT_EQ(machine_for("x86_64")->console, "ttyS0");
}

// The boot headers the kernel's boot protocols define, on files of the right offsets.
TEST(VerifyMachine, KernelArchitectureIsReadFromItsBootHeader) {
  std::string dir = *make_temp_dir("verify-kernel");
  std::string arm(4096, '\0'), x86(4096, '\0');
  arm.replace(56, 4, std::string("ARM\x64", 4));
  x86.replace(0x202, 4, "HdrS");
  ASSERT_TRUE(write_file_atomic(dir + "/arm", arm));
  ASSERT_TRUE(write_file_atomic(dir + "/x86", x86));
  ASSERT_TRUE(write_file_atomic(dir + "/gz", "\x1f\x8b\x08 compressed"));
  EXPECT_EQ(kernel_architecture(dir + "/arm"), "arm64");
  EXPECT_EQ(kernel_architecture(dir + "/x86"), "x86_64");
  EXPECT_EQ(kernel_architecture(dir + "/gz"), "");
  EXPECT_EQ(kernel_architecture(dir + "/missing"), "");
  // A kernel of the other architecture than the AMI's is refused before QEMU starts.
  BootFiles f{dir + "/x86", dir + "/x86", "root=x", "arm64"};
  auto r = boot_qemu({}, f, dir + "/console.log", "tcg", 5);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("is an x86_64 kernel"), std::string::npos) << r.error().message;
  std::filesystem::remove_all(dir);
}

TEST(VerifyAccelerators, AnExplicitChoiceIsTheOnlyOneTried) {
  EXPECT_EQ(accelerators("tcg", *machine_for("x86_64")), std::vector<std::string>{"tcg"});
}

TEST(VerifyAccelerators, AForeignArchitectureIsNeverTriedUnderKvm) {
  ::unsetenv("AMIBAKE_QEMU_ACCEL");
#if defined(__aarch64__)
  const char* foreign = "x86_64";
#else
  const char* foreign = "arm64";
#endif
  EXPECT_EQ(accelerators("", *machine_for(foreign)), std::vector<std::string>{"tcg"});
}

TEST(VerifyVerdict, IsFoundAmongConsoleNoise) {
  auto v = find_verdict("[  1.0] boot\r\nAMIBAKE-VERDICT {\"data\":{\"mounted\":false}}\r\n[ 2.0] bye\n");
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_FALSE((*v)["data"]["mounted"].get<bool>());
}

TEST(VerifyVerdict, MissingOrBrokenLineIsAnError) {
  EXPECT_FALSE(find_verdict("kernel panic\n"));
  EXPECT_FALSE(find_verdict("AMIBAKE-VERDICT {\"data\":\n"));
}

TEST(VerifyVerdict, PassesOnlyWhenDockerAndEcsSawDataMounted) {
  auto v = nlohmann::json::parse(R"({"data":{"mounted":true},"docker":{"data":"mounted"},
                                    "ecs":{"data":"mounted"}})");
  EXPECT_TRUE(verdict_passes(v));
  v["ecs"]["data"] = "missing";
  EXPECT_FALSE(verdict_passes(v));
  v["ecs"]["data"] = "not-started";
  EXPECT_FALSE(verdict_passes(v));
  v["ecs"]["data"] = "mounted";
  v["data"]["mounted"] = false;
  EXPECT_FALSE(verdict_passes(v));
}

TEST(VerifyReport, NamesTheDataVolumeItsFilesystemSizeMountAndTheServices) {
  BootResult r;
  r.ami_id = "ami-1";
  r.accel = "tcg";
  r.wall_seconds = 80;
  r.disks = {{"/dev/xvda", "vol0aaa", "a", 30ull << 30, true, false},
             {"/dev/xvdb", "vol0bbb", "b", 1ull << 40, false, false}};
  r.verdict = nlohmann::json::parse(R"({"data":{"mounted":true,"fstype":"xfs","size":1099511627776,
      "source":"/dev/nvme1n1","ready_us":41500000},"docker":{"data":"mounted","uptime":45.2},
      "containerd":{"data":"mounted","uptime":44.0},"ecs":{"data":"mounted","uptime":46.0},
      "datavol":"active","datavol_log_b64":"ZGF0YTogZm9ybWF0dGVkIHhmcwo=",
      "disks":[{"name":"nvme0n1","size":1,"serial":"vol0aaa"},{"name":"nvme1n1","size":2,"serial":"vol0bbb"}]})");
  std::string text = format_report(r);
  EXPECT_NE(text.find("/dev/xvdb  vol0bbb  /dev/nvme1n1  1.0 TiB  xfs mounted at /data"), std::string::npos) << text;
  EXPECT_NE(text.find("ready 41.5 s after kernel start"), std::string::npos) << text;
  EXPECT_NE(text.find("docker.service: started at 45.2 s with /data mounted"), std::string::npos) << text;
  EXPECT_NE(text.find("  data: formatted xfs"), std::string::npos) << text;
  EXPECT_NE(text.find("PASS"), std::string::npos) << text;
}

TEST(VerifyReport, SaysHowTheRootDiskWasMadeAndWhatItCost) {
  BootResult r;
  r.ami_id = "ami-1";
  r.verdict = nlohmann::json::object();
  r.root.mode = "lazy";
  r.root.blocks_listed = 1206;
  r.root.blocks_fetched = 281;
  r.root.fetched_for_kernel = 108;
  r.root.blocks_written = 36;
  r.root.seconds = 0.4;
  EXPECT_NE(format_report(r).find("root disk: lazy, 281 of 1206 written blocks fetched (108 to take the "
                                  "kernel out), 36 written locally, never uploaded; ready to boot after 0.4 s"),
            std::string::npos)
      << format_report(r);
  r.root = {};
  r.root.mode = "full";
  r.root.blocks_listed = r.root.blocks_fetched = 1206;
  r.root.note = "lazy fetch unavailable (/dev/fuse: FUSE is not available)";
  r.root.seconds = 3.5;
  EXPECT_NE(format_report(r).find("root disk: downloaded, 1206 of 1206 written blocks (lazy fetch unavailable "
                                  "(/dev/fuse: FUSE is not available)); ready to boot after 3.5 s"),
            std::string::npos)
      << format_report(r);
  r.root = {};
  r.root.mode = "reused";
  EXPECT_NE(format_report(r).find("root disk: reused as it is\n"), std::string::npos) << format_report(r);
}

TEST(VerifyCommand, WithoutBootIsAUsageError) {
  VerifyFlags f;
  f.ami_id = "ami-1";
  EXPECT_EQ(run_verify_command({}, f), 2);
}

TEST(VerifyCommand, RefusesARemoteEndpoint) {
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  aws::ClientSettings s;
  s.region = "us-east-1";
  s.endpoint_url = "https://ec2.us-east-1.amazonaws.com";
  VerifyFlags f;
  f.ami_id = "ami-1";
  f.boot = true;
  EXPECT_EQ(run_verify_command(s, f), 2);
}

}  // namespace
}  // namespace amibake::verify
