// End-to-end: recipes with one wrong value each are refused by the real amibake binary
// before anything is built (issue 15). Each case is a recipe a new user could write; the
// build must exit 2 with a message naming the recipe's line and key, and awsemu must hold
// no image, snapshot or volume of the account afterwards. Also: the host checks (a
// non-root user stops before any AWS call), `plan` listing every problem at once, and two
// builds of one recipe started together giving one AMI.
//
// Needs root (the bake fixture's loop devices, the scratch mkfs of the options check).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "aws/ec2.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "tests/support/bake_fixture.h"

namespace amibake {
namespace {

using testing::CliRun;

// The recipe every case starts from: valid, one line per key so a case can replace one.
//   1 [base]  2 variant  3 [image]  4 name  5 description  6 [[volume]]  7 device
//   8 size_gib  9 mount
const std::vector<std::string> kGood = {"[base]",
                                        "variant = \"al2023\"",
                                        "[image]",
                                        "name = \"t-{base_name}-{date}\"",
                                        "description = \"refusal test\"",
                                        "[[volume]]",
                                        "device = \"/dev/xvdb\"",
                                        "size_gib = 100",
                                        "mount = \"/data\""};

struct BadRecipe {
  const char* what;
  int line;          // line to replace (1-based), or 0 to append `text` at the end
  std::string text;  // one or more lines
  int expect_line;   // the line the message must name
  const char* expect_key;
};

std::string recipe_text(const BadRecipe& c) {
  std::vector<std::string> lines = kGood;
  if (c.line > 0) {
    lines[c.line - 1] = c.text;
  } else {
    lines.push_back(c.text);
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::string repeat(char c, size_t n) { return std::string(n, c); }

std::string many_tags(int n) {
  std::string t = "tags = {";
  for (int i = 0; i < n; ++i)
    t += (i ? ", " : " ") + std::string("k") + std::to_string(i) + " = \"v\"";
  return t + " }";
}

const std::vector<BadRecipe>& bad_recipes() {
  static const std::vector<BadRecipe> cases = {
      // Mount points that would cover the system at boot.
      {"mount /usr", 9, "mount = \"/usr\"", 9, "volume[0].mount"},
      {"mount /var", 9, "mount = \"/var\"", 9, "volume[0].mount"},
      {"mount /etc", 9, "mount = \"/etc\"", 9, "volume[0].mount"},
      {"mount /boot", 9, "mount = \"/boot\"", 9, "volume[0].mount"},
      {"mount /data/../etc", 9, "mount = \"/data/../etc\"", 9, "volume[0].mount"},
      {"mount /", 9, "mount = \"/\"", 9, "volume[0].mount"},
      {"mount relative", 9, "mount = \"data\"", 9, "volume[0].mount"},
      {"mount trailing slash", 9, "mount = \"/data/\"", 9, "volume[0].mount"},
      {"mount double slash", 9, "mount = \"//data\"", 9, "volume[0].mount"},
      {"mount below /usr", 9, "mount = \"/usr/local/data\"", 9, "volume[0].mount"},
      {"mount below /proc", 9, "mount = \"/proc/data\"", 9, "volume[0].mount"},
      {"mount /lib64", 9, "mount = \"/lib64\"", 9, "volume[0].mount"},
      // Options proven on a scratch filesystem with the tools datavol runs.
      {"bogus mount option", 0, "mount_options = \"defaults,,bogus=1\"", 10,
       "volume[0].mount_options"},
      {"empty mount options", 0, "mount_options = \"\"", 10, "volume[0].mount_options"},
      {"mount options with spaces", 0, "mount_options = \"defaults, noatime\"", 10,
       "volume[0].mount_options"},
      {"bad mkfs option", 0, "mkfs_options = [\"-b\", \"size=3\"]", 10, "volume[0].mkfs_options"},
      {"mkfs options not a list", 0, "mkfs_options = \"-K\"", 10, "volume[0].mkfs_options"},
      {"label too long for xfs", 0, "label = \"waytoolonglabel\"", 10, "volume[0].label"},
      {"owner syntax", 0, "owner = \"bad owner!\"", 10, "volume[0].owner"},
      {"required_by path", 0, "required_by = [\"../docker\"]", 10, "volume[0].required_by"},
      {"mode not octal", 0, "mode = \"999\"", 10, "volume[0].mode"},
      {"wait_seconds too long", 0, "wait_seconds = 100000", 10, "volume[0].wait_seconds"},
      {"filesystem btrfs", 0, "filesystem = \"btrfs\"", 10, "volume[0].filesystem"},
      {"hide_existing wrong type", 0, "hide_existing = \"yes\"", 10, "volume[0].hide_existing"},
      {"unknown volume key", 0, "encryptd = true", 10, "volume[0].encryptd"},
      // AWS's limits on the mapping.
      {"device /dev/foo", 7, "device = \"/dev/foo\"", 7, "volume[0].device"},
      {"device is a root name", 7, "device = \"/dev/sda1\"", 7, "volume[0].device"},
      {"device xvda", 7, "device = \"/dev/xvda\"", 7, "volume[0].device"},
      {"size too large", 8, "size_gib = 100000", 8, "volume[0].size_gib"},
      {"size zero", 8, "size_gib = 0", 8, "volume[0].size_gib"},
      {"size wrong type", 8, "size_gib = \"100\"", 8, "volume[0].size_gib"},
      {"unknown volume type", 0, "type = \"gp4\"", 10, "volume[0].type"},
      {"st1 too small", 0, "type = \"st1\"", 8, "volume[0].size_gib"},
      {"gp3 iops too low", 0, "iops = 100", 10, "volume[0].iops"},
      {"gp3 iops too high", 0, "iops = 90000", 10, "volume[0].iops"},
      {"gp3 iops over 500 per GiB", 8, "size_gib = 4\niops = 3000", 9, "volume[0].iops"},
      {"gp3 throughput too high", 0, "throughput = 5000", 10, "volume[0].throughput"},
      {"gp3 throughput over the IOPS ratio", 0, "throughput = 1000", 10, "volume[0].throughput"},
      {"iops on gp2", 0, "type = \"gp2\"\niops = 3000", 11, "volume[0].iops"},
      {"throughput on io1", 0, "type = \"io1\"\niops = 3000\nthroughput = 200", 12,
       "volume[0].throughput"},
      {"io2 without iops", 0, "type = \"io2\"", 6, "volume[0].iops"},
      {"kms key malformed", 0, "kms_key_id = \"not a key!\"", 10, "volume[0].kms_key_id"},
      {"kms key without encryption", 0, "kms_key_id = \"alias/ami\"\nencrypted = false", 10,
       "volume[0].kms_key_id"},
      // Clashes between volumes.
      {"same slot twice", 0, "[[volume]]\ndevice = \"/dev/sdb\"\nmount = \"/scratch\"", 11,
       "volume[1].device"},
      {"same mount twice", 0, "[[volume]]\ndevice = \"/dev/xvdc\"\nmount = \"/data\"", 12,
       "volume[1].mount"},
      {"inner mount listed first", 9,
       "mount = \"/data/inner\"\n[[volume]]\ndevice = "
       "\"/dev/xvdc\"\nmount = \"/data\"",
       9, "volume[0].mount"},
      // The image's name, description and tags.
      {"name charset", 4, "name = \"bad name!*?\"", 4, "image.name"},
      {"name too short", 4, "name = \"ab\"", 4, "image.name"},
      {"name unknown placeholder", 4, "name = \"t-{nosuch}\"", 4, "image.name"},
      {"name too long once expanded", 4, "name = \"" + repeat('x', 100) + "-{base_name}-{date}\"",
       4, "image.name"},
      {"name too long as written", 4, "name = \"" + repeat('x', 129) + "\"", 4, "image.name"},
      {"description too long", 5, "description = \"" + repeat('d', 300) + "\"", 5,
       "image.description"},
      {"reserved aws: tag", 5, "tags = { \"aws:owner\" = \"me\" }", 5, "image.tags"},
      {"reserved amibake: tag", 5, "snapshot_tags = { \"amibake:role\" = \"x\" }", 5,
       "image.snapshot_tags"},
      {"51 tags", 5, many_tags(51), 5, "image.tags"},
      {"45 tags besides amibake's", 5, many_tags(45), 5, "image.tags"},
      {"tag value too long", 5, "tags = { k = \"" + repeat('v', 300) + "\" }", 5, "image.tags"},
      {"tag key too long", 5, "tags = { " + repeat('k', 129) + " = \"v\" }", 5, "image.tags"},
      {"root size huge", 5, "root_size_gib = 100000", 5, "image.root_size_gib"},
      {"unknown image key", 5, "descripton = \"x\"", 5, "image.descripton"},
      // Attributes and base.
      {"boot mode", 0, "[attributes]\nboot_mode = \"bios\"", 11, "attributes.boot_mode"},
      {"tpm version", 0, "[attributes]\ntpm_support = \"v1.2\"", 11, "attributes.tpm_support"},
      {"imds v1", 0, "[attributes]\nimds_support = \"v1.0\"", 11, "attributes.imds_support"},
      {"tpm with legacy bios", 0,
       "[attributes]\nboot_mode = \"legacy-bios\"\ntpm_support = \"v2.0\"", 12,
       "attributes.tpm_support"},
      {"unknown variant", 2, "variant = \"al2032\"", 1, "base"},
      {"malformed ami id", 2, "ami = \"ami-nothex\"", 1, "base"},
      {"unknown top-level table", 0, "[extra]\nx = 1", 10, "extra"},
      {"syntax error", 9, "mount = ", 9, ""},
  };
  return cases;
}

class BakeRefusal : public testing::BakeFixture {
 protected:
  std::string write_recipe(const std::string& name, const std::string& text) const {
    std::string path = dir_ + "/" + name;
    EXPECT_TRUE(write_file_atomic(path, text, 0644));
    return path;
  }
  // Every image and snapshot the account owns, and every volume, in awsemu.
  std::vector<std::string> owned() const {
    auto c = client();
    std::vector<std::string> ids;
    aws::ec2::DescribeImagesRequest ir;
    ir.owners = {"self"};
    for (const auto& i : aws::ec2::describe_images(*c, ir).value()) ids.push_back(i.image_id);
    aws::ec2::DescribeSnapshotsRequest sr;
    sr.owner_ids = {"self"};
    for (const auto& s : aws::ec2::describe_snapshots(*c, sr).value()) ids.push_back(s.snapshot_id);
    for (const auto& v : aws::ec2::describe_volumes(*c, {}).value()) ids.push_back(v.volume_id);
    return ids;
  }
};

TEST_F(BakeRefusal, EveryBadRecipeExitsTwoNamingLineAndKeyAndCreatesNothing) {
  ASSERT_GE(bad_recipes().size(), 40u);
  for (const auto& c : bad_recipes()) {
    SCOPED_TRACE(c.what);
    std::string path = write_recipe("bad.toml", recipe_text(c));
    CliRun r = amibake({"build", path});
    EXPECT_EQ(r.rc, 2) << r.err;
    std::string where = path + ":" + std::to_string(c.expect_line) + ": " + c.expect_key;
    EXPECT_NE(r.err.find(where), std::string::npos) << "expected '" << where << "' in:\n" << r.err;
    EXPECT_EQ(r.out, "") << "stdout carries only an AMI id";
    EXPECT_EQ(r.err.find("--resume"), std::string::npos) << "nothing to resume:\n" << r.err;
  }
  EXPECT_EQ(owned(), std::vector<std::string>{}) << "awsemu holds resources of refused builds";
  EXPECT_EQ(host_leftovers(), "");
}

TEST_F(BakeRefusal, PlanListsEveryProblemAtOnce) {
  std::string text = "[base]\nvariant = \"al2023\"\n[[volume]]\ndevice = \"/dev/xvdb\"\n"
                     "mount = \"/usr\"\nsize_gib = 0\nencryptd = 1\n";
  std::string path = write_recipe("three.toml", text);
  CliRun r = amibake({"plan", path});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("3 problems"), std::string::npos) << r.err;
  for (const char* k :
       {":5: volume[0].mount", ":6: volume[0].size_gib", ":7: volume[0].encryptd"}) {
    EXPECT_NE(r.err.find(path + k), std::string::npos) << k << " missing in:\n" << r.err;
  }
}

TEST_F(BakeRefusal, GoodRecipeStillBakesAfterTheChecks) {
  std::string text =
      recipe_text({"", 0, "mount_options = \"defaults,noatime,logbsize=256k\"", 0, ""});
  CliRun r = amibake({"build", write_recipe("good.toml", text)});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ami-", 0), 0u) << r.out;
}

TEST_F(BakeRefusal, NonRootUserStopsBeforeAnyAwsCall) {
  if (!program_exists("runuser")) GTEST_SKIP() << "runuser not installed";
  // A folder `nobody` can read, for the recipe; the binary lies in the build tree.
  auto d = make_temp_dir("amibake-nobody");
  ASSERT_TRUE(d);
  ::chmod(d->c_str(), 0755);
  std::string path = *d + "/r.toml";
  ASSERT_TRUE(write_file_atomic(path, recipe_text({"", 0, "", 0, ""}), 0644));
  std::vector<std::string> argv = {"runuser", "-u", "nobody", "--", "env"};
  for (const auto& e : env()) argv.push_back(e);
  argv.insert(argv.end(), {"HOME=/nonexistent", AMIBAKE_BINARY, "build", path});
  std::string out, err;
  int rc = testing::run_capture(argv, {}, &out, &err);
  std::filesystem::remove_all(*d);
  EXPECT_EQ(rc, 2) << err;
  EXPECT_NE(err.find("this host cannot build"), std::string::npos) << err;
  EXPECT_NE(err.find("root"), std::string::npos) << err;
  EXPECT_NE(err.find("nothing was created"), std::string::npos) << err;
  EXPECT_EQ(owned(), std::vector<std::string>{});
}

TEST_F(BakeRefusal, TwoBuildsOfOneRecipeAtOnceGiveOneAmiAndLeaveNothing) {
  // A slow CompleteSnapshot holds each build's claim open for a second, as AWS's
  // snapshot completion does, so the two builds overlap.
  start_emu({"--faults", "slow=1,slow_seconds=1,op=CompleteSnapshot"});
  std::string path = write_recipe("twin.toml", recipe_text({"", 0, "", 0, ""}));
  CliRun a, b;
  std::thread ta([&] { a = amibake({"build", path}); });
  std::thread tb([&] { b = amibake({"build", path}); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(b.rc, 0) << b.err;
  EXPECT_EQ(a.out, b.out) << "both print the one AMI";
  std::string both = a.err + b.err;
  EXPECT_TRUE(both.find("waiting for its AMI instead of baking it twice") != std::string::npos ||
              both.find("was baked from the same base and recipe; reusing it") != std::string::npos)
      << both;
  auto images = images_tagged("amibake:role", "image");
  ASSERT_EQ(images.size(), 1u);
  // One root snapshot (the AMI's); the loser's claim was removed before any block went up.
  EXPECT_EQ(snapshots_tagged("amibake:role", "root-snapshot").size(), 1u);
  EXPECT_EQ(host_leftovers(), "");
}

}  // namespace
}  // namespace amibake
