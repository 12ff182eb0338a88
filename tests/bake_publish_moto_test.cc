// `amibake publish RECIPE --ami AMI` against moto (python3 -m moto.server) with signature
// checking on (issue 11, "Against moto"): a second endpoint besides awsemu, driven as far
// as it behaves like AWS, with every result read back through the AWS CLI.
//
// Signature checking: moto checks SigV4 signatures (and IAM policies) once
// INITIAL_NO_AUTH_ACTION_COUNT actions have been served. The fixture lets three through
// (CreateUser, PutUserPolicy, CreateAccessKey); after that amibake and the CLI sign with
// the access key moto issued, and a request signed with a wrong secret is refused
// (checked).
//
// What moto serves faithfully, and the tests assert: CopyImage across regions (the copy
// exists in the target region only, available, with its source's name), the copy's
// snapshots tagged by amibake, ModifyImageAttribute launchPermission, SSM PutParameter
// with DataType aws:ec2:image and GetParameterHistory, DescribeLaunchTemplates,
// CreateLaunchTemplateVersion's ImageId and VersionDescription, ModifyLaunchTemplate
// DefaultVersion, DescribeRegions, GetEbsEncryptionByDefault (off, so
// GetEbsDefaultKmsKeyId, which moto 5.2 answers with HTTP 500, is not asked).
//
// Where moto differs from AWS (probed by hand against moto 5.2, and by the tests where it
// matters). None is worked around in amibake; the recipes avoid what they can:
// - moto's signature check of a form-encoded (Query protocol: EC2) body re-encodes the
//   parsed form instead of hashing the bytes received, so a space must be sent as '+'
//   (botocore's urlencode), as amibake now does; AWS hashes the bytes and takes %20 too.
//   amibake sent %20 until this test showed the refusal (AuthFailure on
//   CreateLaunchTemplateVersion, whose VersionDescription has spaces).
// - CopyImage ignores CopyImageTags and ClientToken: the copy has no tags (a later
//   `publish --ami` of the same AMI cannot find the copy again by amibake:build-id and
//   copies again; prune does not see the copy as the family's), and a resent CopyImage
//   makes a second copy. The tests publish once and report the missing tags.
// - RegisterImage ignores BlockDeviceMappings (moto makes its own /dev/sda1 snapshot).
// - aws:ec2:image is not validated (any id becomes the value at once): amibake's read-back
//   passes on the first read, so the wait for SSM's validation is not shown.
// - CreateLaunchTemplateVersion ignores SourceVersion (the new version has only ImageId,
//   not the source's InstanceType) and ClientToken: the inheritance is reported, not
//   asserted.
// - Batch UpdateComputeEnvironment ignores computeResources, and EnableImageDeprecation
//   is not implemented: the main tests' recipes have no batch_compute_environments (amibake
//   would report an update moto never made) and no deprecate_after_days. Two more tests
//   probe moto with the calls amibake makes and skip naming what moto answered; if a
//   later moto serves them, they run the step and read it back.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/model.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "tests/support/background.h"
#include "tests/support/bake_fixture.h"

namespace amibake::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kHome = "us-east-1";
constexpr const char* kOther = "us-west-2";
constexpr const char* kAccount = "111122223333";
constexpr const char* kParameter = "/amibake/bw/image_id";
const std::vector<std::string> kRegions = {kHome, kOther};

std::string tag(const json& tags, const std::string& key) {
  for (const auto& t : tags) {
    if (t.value("Key", "") == key) return t.value("Value", "");
  }
  return "";
}

class PublishAgainstMoto : public ::testing::Test {
 protected:
  void SetUp() override {
    auto probe = run_process({"python3", "-c", "import moto.server"});
    if (!probe || probe->exit_code != 0) GTEST_SKIP() << "moto is not installed (python3 -m moto.server)";
    auto d = make_temp_dir("amibake-pub-moto");
    ASSERT_TRUE(d);
    dir_ = *d;
  }
  void TearDown() override {
    moto_.stop();
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  // Starts a fresh moto (stopping one started before). With `check_signatures`, makes
  // the IAM user whose key signs everything after, and checks that a wrong secret is
  // refused.
  void start_moto(bool check_signatures) {
    moto_.stop();
    int port = free_loopback_port();
    std::string err;
    std::vector<std::string> env;
    if (check_signatures) env.push_back("INITIAL_NO_AUTH_ACTION_COUNT=3");
    ASSERT_TRUE(moto_.start({"python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", std::to_string(port)},
                            env, dir_ + "/moto." + std::to_string(port) + ".log", &err))
        << err;
    ASSERT_TRUE(moto_.wait_for_port(port, 60s)) << "moto did not start; see " << moto_.log_path();
    url_ = "http://127.0.0.1:" + std::to_string(port);
    key_id_ = "test";
    secret_ = "test";
    if (!check_signatures) return;
    cli(kHome, {"iam", "create-user", "--user-name", "amibake"});
    cli(kHome, {"iam", "put-user-policy", "--user-name", "amibake", "--policy-name", "all",
                "--policy-document",
                R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})"});
    json key = cli(kHome, {"iam", "create-access-key", "--user-name", "amibake"});
    ASSERT_TRUE(key["AccessKey"].contains("SecretAccessKey")) << key.dump();
    key_id_ = key["AccessKey"]["AccessKeyId"];
    secret_ = key["AccessKey"]["SecretAccessKey"];
    std::string good = secret_, refusal;
    secret_ = "wrong" + good;
    int rc = cli_rc(kHome, {"ec2", "describe-regions"}, nullptr, &refusal);
    secret_ = good;
    ASSERT_NE(rc, 0) << "moto accepted a request signed with a wrong secret";
    ASSERT_NE(refusal.find("AuthFailure"), std::string::npos) << refusal;
  }

  int cli_rc(const std::string& region, const std::vector<std::string>& args, std::string* out,
             std::string* err) const {
    // The CLI takes an empty AWS_PROFILE for a profile's name: unset, not empty.
    std::vector<std::string> argv = {"env", "-u", "AWS_PROFILE", "-u", "AWS_SESSION_TOKEN",
                                     "/usr/bin/aws", "--endpoint-url", url_, "--region", region,
                                     "--output", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_capture(argv,
                       {"AWS_ACCESS_KEY_ID=" + key_id_, "AWS_SECRET_ACCESS_KEY=" + secret_,
                        "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "HOME=" + dir_, "AWS_MAX_ATTEMPTS=1"},
                       out, err);
  }
  // The AWS CLI against moto in `region`; its JSON answer (a failure fails the test).
  json cli(const std::string& region, const std::vector<std::string>& args) const {
    std::string out, err;
    int rc = cli_rc(region, args, &out, &err);
    EXPECT_EQ(rc, 0) << "aws " << args[0] << " " << args[1] << " in " << region << ": " << err;
    json j = json::parse(out.empty() ? "{}" : out, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  CliRun amibake(std::vector<std::string> args) const {
    std::vector<std::string> env = {
        "AWS_ACCESS_KEY_ID=" + key_id_, "AWS_SECRET_ACCESS_KEY=" + secret_, "AWS_REGION=" + std::string(kHome),
        "AWS_ENDPOINT_URL=" + url_, "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN=",
        "XDG_STATE_HOME=" + dir_ + "/state", "AMIBAKE_WORK_DIR=" + dir_ + "/work", "TMPDIR=" + dir_,
        "AMIBAKE_POLL_MS=100", "AWS_MAX_ATTEMPTS=2"};
    args.insert(args.begin(), AMIBAKE_BINARY);
    CliRun r;
    r.rc = run_capture(args, env, &r.out, &r.err);
    return r;
  }
  // amibake's own client, signing with the current key.
  std::unique_ptr<aws::AwsClient> client(const std::string& region) const {
    aws::Credentials c;
    c.access_key_id = key_id_;
    c.secret_access_key = secret_;
    return aws::AwsClient::for_endpoint(url_, c, region);
  }
  // An AMI the account owns in `region`, tagged as amibake tags the AMIs it builds.
  std::string register_ami(const std::string& region, const std::string& name, const std::string& build) {
    json made = cli(region, {"ec2", "register-image", "--name", name, "--architecture", "x86_64",
                             "--root-device-name", "/dev/xvda", "--virtualization-type", "hvm",
                             "--ena-support"});
    std::string id = made.value("ImageId", "");
    EXPECT_FALSE(id.empty()) << made.dump();
    cli(region, {"ec2", "create-tags", "--resources", id, "--tags", "Key=amibake:build-id,Value=" + build,
                 "Key=amibake:family,Value=bw"});
    return id;
  }
  // What the publish finds: an older AMI of the family in both regions, which the SSM
  // parameter and launch template bw-lt (version 1, with an InstanceType) point at; and
  // the AMI to publish in the build region.
  void make_world() {
    for (const auto& region : kRegions) {
      std::string old = register_ami(region, "bw-old", "b-old");
      old_ami_[region] = old;
      cli(region, {"ssm", "put-parameter", "--name", kParameter, "--type", "String", "--data-type",
                   "aws:ec2:image", "--value", old});
      json lt = cli(region, {"ec2", "create-launch-template", "--launch-template-name", "bw-lt",
                             "--launch-template-data", R"({"InstanceType":"m5.large","ImageId":")" + old + "\"}"});
      lt_id_[region] = lt["LaunchTemplate"].value("LaunchTemplateId", "");
    }
    ami_ = register_ami(kHome, "bw-new", "b-new");
  }
  // The recipe: the example's image, the family "bw" (the file's stem), and `publish`,
  // which never names batch_compute_environments or deprecate_after_days (moto cannot
  // show them; see the top of this file).
  std::string write_recipe(const std::string& publish) const {
    std::string path = dir_ + "/bw.toml";
    EXPECT_TRUE(write_file_atomic(path, *read_file(example_recipe("batch-worker.toml")) + "\n[publish]\n" +
                                            "regions = [\"" + kOther + "\"]\n" + publish,
                                  0644));
    return path;
  }
  // Runs `amibake publish recipe --ami ami_ --json`; its answer.
  json publish(const std::string& recipe) {
    CliRun r = amibake({"publish", recipe, "--ami", ami_, "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    json out = json::parse(r.out, nullptr, false);
    if (r.rc != 0 || out.is_discarded()) return json::object();
    EXPECT_EQ(out["ami"], ami_);
    return out;
  }
  // The copy in kOther, read back there: available, owned, the source's name, not in
  // the build region, its snapshot tagged by the publish run `id`. Returns the copy's id.
  std::string check_copy(const json& pub, const std::string& id) {
    EXPECT_EQ(pub[kHome].value("image", ""), ami_) << pub.dump();
    std::string copy = pub[kOther].value("image", "");
    EXPECT_TRUE(copy.starts_with("ami-")) << pub.dump();
    if (!copy.starts_with("ami-")) return copy;
    EXPECT_NE(copy, ami_);
    EXPECT_FALSE(pub[kOther].contains("compute_environments"));
    EXPECT_FALSE(pub[kOther].contains("deprecate_at"));
    json images = cli(kOther, {"ec2", "describe-images", "--image-ids", copy});
    EXPECT_EQ(images["Images"].size(), 1u) << images.dump();
    json c = images["Images"].empty() ? json::object() : images["Images"][0];
    EXPECT_EQ(c.value("State", ""), "available") << c.dump();
    EXPECT_EQ(c.value("Name", ""), "bw-new");
    EXPECT_EQ(c.value("OwnerId", ""), "123456789012");
    std::string out, err;
    EXPECT_NE(cli_rc(kHome, {"ec2", "describe-images", "--image-ids", copy}, &out, &err), 0)
        << "the copy is visible in " << kHome << ": " << out;
    // CopyImageTags: on AWS the copy carries the source's tags; moto drops them.
    if (tag(c["Tags"], "amibake:build-id").empty()) {
      gaps_.push_back("CopyImage dropped CopyImageTags (the copy " + copy + " has no amibake:build-id)");
    } else {
      EXPECT_EQ(tag(c["Tags"], "amibake:build-id"), "b-new");
      EXPECT_EQ(tag(c["Tags"], "amibake:family"), "bw");
    }
    // The copy's snapshot carries the publish run's tags (amibake's own CreateTags).
    std::vector<std::string> snaps = pub[kOther].value("snapshots", std::vector<std::string>{});
    EXPECT_EQ(snaps.size(), 1u) << pub.dump();
    if (snaps.empty()) return copy;
    for (const auto& m : c["BlockDeviceMappings"]) {
      if (m.contains("Ebs")) {
        EXPECT_EQ(m["Ebs"].value("SnapshotId", ""), snaps[0]);
      }
    }
    json sn = cli(kOther, {"ec2", "describe-snapshots", "--snapshot-ids", snaps[0]});
    EXPECT_EQ(sn["Snapshots"].size(), 1u) << sn.dump();
    if (!sn["Snapshots"].empty()) {
      EXPECT_EQ(tag(sn["Snapshots"][0]["Tags"], "amibake:build-id"), id) << sn.dump();
      EXPECT_EQ(tag(sn["Snapshots"][0]["Tags"], "amibake:family"), "bw") << sn.dump();
    }
    return copy;
  }
  // bw-lt in `region`: version 2 holds `img`, describes publish run `id` and is the
  // default; version 1 is untouched.
  void check_launch_template(const json& pub, const std::string& region, const std::string& img,
                             const std::string& id) {
    SCOPED_TRACE(region);
    json lts = cli(region, {"ec2", "describe-launch-templates", "--launch-template-names", "bw-lt"});
    ASSERT_EQ(lts["LaunchTemplates"].size(), 1u) << lts.dump();
    EXPECT_EQ(lts["LaunchTemplates"][0].value("DefaultVersionNumber", 0), 2);
    EXPECT_EQ(lts["LaunchTemplates"][0].value("LatestVersionNumber", 0), 2);
    EXPECT_EQ(pub[region]["launch_templates"]["bw-lt"].value("version", 0), 2) << pub.dump();
    EXPECT_EQ(pub[region]["launch_templates"]["bw-lt"].value("id", ""), lt_id_[region]);
    json v = cli(region, {"ec2", "describe-launch-template-versions", "--launch-template-name", "bw-lt",
                          "--versions", "$Default"});
    ASSERT_EQ(v["LaunchTemplateVersions"].size(), 1u) << v.dump();
    const json& def = v["LaunchTemplateVersions"][0];
    EXPECT_EQ(def.value("VersionNumber", 0), 2);
    EXPECT_EQ(def["LaunchTemplateData"].value("ImageId", ""), img);
    EXPECT_EQ(def.value("VersionDescription", ""), "amibake bw build " + id);
    // SourceVersion: on AWS version 2 inherits version 1's InstanceType; moto does not.
    if (!def["LaunchTemplateData"].contains("InstanceType")) {
      gaps_.push_back("CreateLaunchTemplateVersion ignored SourceVersion in " + region +
                      " (version 2 lacks version 1's InstanceType)");
    } else {
      EXPECT_EQ(def["LaunchTemplateData"]["InstanceType"], "m5.large");
    }
    json v1 = cli(region, {"ec2", "describe-launch-template-versions", "--launch-template-name", "bw-lt",
                           "--versions", "1"});
    ASSERT_EQ(v1["LaunchTemplateVersions"].size(), 1u) << v1.dump();
    EXPECT_EQ(v1["LaunchTemplateVersions"][0]["LaunchTemplateData"].value("ImageId", ""), old_ami_[region]);
  }
  // What was not asserted because moto differs from AWS there: in the test's output and
  // its XML report (property moto_gaps).
  void report_gaps() {
    std::string notes;
    for (const auto& g : gaps_) notes += (notes.empty() ? "" : "; ") + g;
    RecordProperty("moto_gaps", notes);
    if (!notes.empty()) std::cout << "not checked against moto: " << notes << "\n";
  }

  std::string dir_, url_, key_id_, secret_, ami_;
  std::map<std::string, std::string> old_ami_, lt_id_;
  std::vector<std::string> gaps_;
  BackgroundProcess moto_;
};

// Copy, share and SSM, every request signed and checked by moto.
TEST_F(PublishAgainstMoto, PublishAmiCopiesSharesAndSetsSsmWithSignaturesChecked) {
  ASSERT_NO_FATAL_FAILURE(start_moto(true));
  make_world();
  json out = publish(write_recipe(std::string("share_accounts = [\"") + kAccount + "\"]\nssm_parameter = \"" +
                                  kParameter + "\"\n"));
  std::string id = out.value("build_id", "");
  ASSERT_FALSE(id.empty()) << out.dump();
  const json& pub = out["published"];
  std::string copy = check_copy(pub, id);
  ASSERT_TRUE(copy.starts_with("ami-"));
  std::map<std::string, std::string> want = {{kHome, ami_}, {kOther, copy}};
  for (const auto& [region, img] : want) {
    SCOPED_TRACE(region);
    json perm = cli(region, {"ec2", "describe-image-attribute", "--image-id", img, "--attribute",
                             "launchPermission"});
    ASSERT_EQ(perm["LaunchPermissions"].size(), 1u) << perm.dump();
    EXPECT_EQ(perm["LaunchPermissions"][0].value("UserId", ""), kAccount);
    // The SSM parameter: the region's AMI now, the older one in the version before.
    json p = cli(region, {"ssm", "get-parameter", "--name", kParameter});
    EXPECT_EQ(p["Parameter"].value("Value", ""), img);
    EXPECT_EQ(p["Parameter"].value("DataType", ""), "aws:ec2:image");
    EXPECT_EQ(p["Parameter"].value("Version", 0), 2);
    EXPECT_EQ(pub[region].value("ssm_parameter_version", 0), 2) << pub.dump();
    json h = cli(region, {"ssm", "get-parameter-history", "--name", kParameter});
    ASSERT_EQ(h["Parameters"].size(), 2u) << h.dump();
    EXPECT_EQ(h["Parameters"][0].value("Value", ""), old_ami_[region]);
    EXPECT_EQ(h["Parameters"][1].value("Value", ""), img);
    EXPECT_EQ(h["Parameters"][1].value("Description", ""), "amibake bw build " + id);
    // Not in the recipe: the launch template is as it was.
    json lts = cli(region, {"ec2", "describe-launch-templates", "--launch-template-names", "bw-lt"});
    EXPECT_EQ(lts["LaunchTemplates"][0].value("LatestVersionNumber", 0), 1) << lts.dump();
  }
  report_gaps();
}

// Launch templates, every request signed and checked by moto. The version's description
// ("amibake FAMILY build ID") has spaces: this failed with AuthFailure while amibake sent
// a space in a form body as %20 (see the top of this file); the encoder now sends '+'.
TEST_F(PublishAgainstMoto, PublishAmiMovesLaunchTemplates) {
  ASSERT_NO_FATAL_FAILURE(start_moto(true));
  make_world();
  json out = publish(write_recipe("launch_templates = [\"bw-lt\"]\n"));
  std::string id = out.value("build_id", "");
  ASSERT_FALSE(id.empty()) << out.dump();
  const json& pub = out["published"];
  std::string copy = check_copy(pub, id);
  ASSERT_TRUE(copy.starts_with("ami-"));
  check_launch_template(pub, kHome, ami_, id);
  check_launch_template(pub, kOther, copy, id);
  // The encoding itself: a name with a space is answered (NotFound), not refused.
  auto c = client(kHome);
  auto spaced = aws::model::call(*c, aws::model::ec2(), "DescribeLaunchTemplates",
                                 json{{"LaunchTemplateNames", json::array({"bw lt"})}});
  ASSERT_FALSE(spaced);
  EXPECT_NE(spaced.error().aws_code, "AuthFailure") << spaced.error().describe();
  report_gaps();
}

// Deprecation: moto is probed with the call amibake makes; while it does not serve
// EnableImageDeprecation (or does not show DeprecationTime after it), the test skips
// naming what moto answered. When it does, the publish step runs and is read back.
TEST_F(PublishAgainstMoto, DeprecationRunsWhereMotoServesIt) {
  ASSERT_NO_FATAL_FAILURE(start_moto(true));
  std::string probed_ami = register_ami(kHome, "bw-probe", "b-probe");
  auto c = client(kHome);
  auto probe = aws::model::call(*c, aws::model::ec2(), "EnableImageDeprecation",
                                json{{"ImageId", probed_ami}, {"DeprecateAt", "2099-01-01T00:00:00Z"}});
  if (!probe) {
    GTEST_SKIP() << "moto does not serve EnableImageDeprecation (it answers HTTP " << probe.error().http_status
                 << (probe.error().aws_code.empty() ? "" : " " + probe.error().aws_code)
                 << "), so deprecate_after_days cannot be shown against it";
  }
  json probed = cli(kHome, {"ec2", "describe-images", "--image-ids", probed_ami});
  if (probed["Images"][0].value("DeprecationTime", "").empty()) {
    GTEST_SKIP() << "moto answers EnableImageDeprecation but DescribeImages shows no DeprecationTime";
  }
  make_world();
  json out = publish(write_recipe("deprecate_after_days = 90\n"));
  const json& pub = out["published"];
  std::string copy = check_copy(pub, out.value("build_id", ""));
  for (const auto& [region, img] : std::map<std::string, std::string>{{kHome, ami_}, {kOther, copy}}) {
    json i = cli(region, {"ec2", "describe-images", "--image-ids", img});
    EXPECT_FALSE(i["Images"][0].value("DeprecationTime", "").empty()) << region << ": " << i.dump();
    EXPECT_FALSE(pub[region].value("deprecate_at", "").empty()) << pub.dump();
  }
  report_gaps();
}

// Batch: a managed environment with imageIdOverride is made in moto and updated with
// the call amibake makes; while moto ignores computeResources in UpdateComputeEnvironment
// (the environment keeps its AMI), the test skips naming that. When moto applies it, the
// publish step runs and is read back.
TEST_F(PublishAgainstMoto, BatchRunsWhereMotoAppliesTheUpdate) {
  ASSERT_NO_FATAL_FAILURE(start_moto(true));
  make_world();
  // What moto requires of a managed EC2 environment: a service role (Batch's
  // service-linked one, which amibake requires for in-place updates), an instance
  // profile, a subnet and a security group.
  auto make_ce = [&](const std::string& region, const std::string& image) {
    cli(region, {"iam", "create-role", "--role-name", "AWSServiceRoleForBatch", "--path",
                 "/aws-service-role/batch.amazonaws.com/", "--assume-role-policy-document",
                 R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]})"});
    cli(region, {"iam", "create-instance-profile", "--instance-profile-name", "ecsInstanceRole"});
    json vpc = cli(region, {"ec2", "create-vpc", "--cidr-block", "10.0.0.0/16"});
    std::string vpc_id = vpc["Vpc"].value("VpcId", "");
    json sub = cli(region, {"ec2", "create-subnet", "--vpc-id", vpc_id, "--cidr-block", "10.0.1.0/24"});
    json sg = cli(region, {"ec2", "create-security-group", "--group-name", "bw", "--description", "bw",
                           "--vpc-id", vpc_id});
    json cr = {{"type", "EC2"}, {"allocationStrategy", "BEST_FIT_PROGRESSIVE"}, {"minvCpus", 0},
               {"maxvCpus", 16}, {"instanceTypes", {"optimal"}},
               {"subnets", {sub["Subnet"].value("SubnetId", "")}},
               {"securityGroupIds", {sg.value("GroupId", "")}},
               {"instanceRole", "arn:aws:iam::123456789012:instance-profile/ecsInstanceRole"},
               {"ec2Configuration", {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", image}}}}};
    cli(region, {"batch", "create-compute-environment", "--compute-environment-name", "bw-ce", "--type",
                 "MANAGED", "--service-role",
                 "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch",
                 "--compute-resources", cr.dump()});
  };
  auto override_of = [&](const std::string& region) {
    json ce = cli(region, {"batch", "describe-compute-environments", "--compute-environments", "bw-ce"});
    if (ce["computeEnvironments"].empty()) return std::string("(no environment)");
    json conf = ce["computeEnvironments"][0]["computeResources"].value("ec2Configuration", json::array());
    return conf.empty() ? std::string("(none)") : conf[0].value("imageIdOverride", std::string("(none)"));
  };
  make_ce(kHome, old_ami_[kHome]);
  ASSERT_EQ(override_of(kHome), old_ami_[kHome]);
  auto c = client(kHome);
  auto probe = aws::model::call(
      *c, aws::model::batch(), "UpdateComputeEnvironment",
      json{{"computeEnvironment", "bw-ce"},
           {"computeResources", {{"ec2Configuration", {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", ami_}}}}}}});
  ASSERT_TRUE(probe) << "moto refused UpdateComputeEnvironment: " << probe.error().describe();
  std::string after = override_of(kHome);
  if (after != ami_) {
    GTEST_SKIP() << "moto answers UpdateComputeEnvironment but ignores its computeResources (imageIdOverride "
                 << "stays " << after << ", not " << ami_
                 << "), so batch_compute_environments cannot be shown against it";
  }
  // moto applies the update: put the environment back, make the other region's, publish.
  ASSERT_TRUE(aws::model::call(*c, aws::model::batch(), "UpdateComputeEnvironment",
                               json{{"computeEnvironment", "bw-ce"},
                                    {"computeResources",
                                     {{"ec2Configuration",
                                       {{{"imageType", "ECS_AL2023"}, {"imageIdOverride", old_ami_[kHome]}}}}}}}));
  make_ce(kOther, old_ami_[kOther]);
  json out = publish(write_recipe("batch_compute_environments = [\"bw-ce\"]\n"));
  std::string copy = check_copy(out["published"], out.value("build_id", ""));
  EXPECT_EQ(override_of(kHome), ami_);
  EXPECT_EQ(override_of(kOther), copy);
  report_gaps();
}

}  // namespace
}  // namespace amibake::testing
