// Publishing end to end (issue 11): the real amibake against a real awsemu, with the
// launch templates and Batch compute environments made first by the AWS CLI, then every
// pointer read back in every region through the APIs; a second build moves them all;
// prune lists, keeps what is referenced, and deletes the rest with its snapshots.
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "aws/ec2.h"
#include "aws/model.h"
#include "aws/ssm.h"
#include "base/files.h"
#include "tests/support/background.h"
#include "tests/support/bake_fixture.h"

namespace amibake::testing {
namespace {

using aws::model::Json;

const std::vector<std::string> kRegions = {"us-east-1", "us-west-2", "eu-west-1"};

class BakePublish : public BakeFixture {
 protected:
  std::unique_ptr<aws::AwsClient> client_in(const std::string& region) const {
    aws::Credentials c;
    c.access_key_id = kEmuKey;
    c.secret_access_key = kEmuSecret;
    return aws::AwsClient::for_endpoint(url_, c, region);
  }
  // The AWS CLI against awsemu in `region`; its JSON answer.
  Json aws_cli(const std::string& region, std::vector<std::string> args) const {
    // The CLI takes an empty AWS_PROFILE for a profile's name: unset, not empty.
    std::vector<std::string> argv = {"env", "-u", "AWS_PROFILE", "-u", "AWS_SESSION_TOKEN",
                                     "/usr/bin/aws", "--endpoint-url", url_, "--region", region,
                                     "--output", "json"};  // this CLI ignores AWS_ENDPOINT_URL
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> e;
    for (const auto& kv : env()) {
      if (!kv.starts_with("AWS_PROFILE=") && !kv.starts_with("AWS_SESSION_TOKEN=")) e.push_back(kv);
    }
    e.push_back("HOME=" + dir_);
    e.push_back("AWS_PAGER=");
    std::string out, err;
    int rc = run_capture(argv, e, &out, &err);
    EXPECT_EQ(rc, 0) << "aws " << args[0] << " " << args[1] << ": " << err;
    Json j = Json::parse(out.empty() ? "{}" : out, nullptr, false);
    return j.is_discarded() ? Json::object() : j;
  }
  std::string write_recipe(const std::string& name, const std::string& publish) const {
    std::string text = *read_file(example_recipe("batch-worker.toml"));
    std::string path = dir_ + "/" + name;
    EXPECT_TRUE(write_file_atomic(path, text + "\n" + publish, 0644));
    return path;
  }
  void make_targets(const std::string& strategy = "BEST_FIT_PROGRESSIVE") const {
    for (const auto& r : kRegions) {
      aws_cli(r, {"ec2", "create-launch-template", "--launch-template-name", "bw-lt",
                  "--launch-template-data", R"({"InstanceType":"m5.large"})"});
      aws_cli(r, {"batch", "create-compute-environment", "--compute-environment-name", "bw-ce",
                  "--type", "MANAGED", "--compute-resources",
                  R"({"type":"EC2","allocationStrategy":")" + strategy +
                      R"(","minvCpus":0,"maxvCpus":16,"instanceTypes":["optimal"],)"
                      R"("subnets":["subnet-1"],"securityGroupIds":["sg-1"],"instanceRole":"ecsInstanceRole",)"
                      R"("launchTemplate":{"launchTemplateName":"bw-lt","version":"$Default"}})"});
    }
  }
  // The image each region's SSM parameter, template default and compute environment
  // point at; all three must agree with `want` (region -> AMI).
  void expect_pointers(const std::map<std::string, std::string>& want) const {
    for (const auto& [region, ami] : want) {
      auto c = client_in(region);
      auto p = aws::ssm::get_parameter(*c, "/amibake/bw/image_id");
      ASSERT_TRUE(p) << region << ": " << p.error().message;
      EXPECT_EQ(p->value, ami) << region;
      auto v = aws::model::call(*c, aws::model::ec2(), "DescribeLaunchTemplateVersions",
                                Json{{"LaunchTemplateName", "bw-lt"}, {"Versions", Json::array({"$Default"})}});
      ASSERT_TRUE(v) << v.error().message;
      const Json& def = (*v)["LaunchTemplateVersions"][0];
      EXPECT_EQ(def["LaunchTemplateData"]["ImageId"], ami) << region;
      // Inherited from the source version: only ImageId changed.
      EXPECT_EQ(def["LaunchTemplateData"]["InstanceType"], "m5.large") << region;
      Json ce = aws_cli(region, {"batch", "describe-compute-environments", "--compute-environments", "bw-ce"});
      const Json& lt = ce["computeEnvironments"][0]["computeResources"]["launchTemplate"];
      EXPECT_EQ(lt["version"], std::to_string(def["VersionNumber"].get<int64_t>())) << region;
      EXPECT_EQ(ce["computeEnvironments"][0]["status"], "VALID") << region;
      Json img = aws_cli(region, {"ec2", "describe-images", "--image-ids", ami});
      EXPECT_FALSE(img["Images"][0].value("DeprecationTime", "").empty()) << region;
      Json perm = aws_cli(region, {"ec2", "describe-image-attribute", "--image-id", ami,
                                   "--attribute", "launchPermission"});
      EXPECT_EQ(perm["LaunchPermissions"][0]["UserId"], "111122223333") << region;
    }
  }
  // Nothing made twice and nothing leaked by build `id`, whose published AMIs are `pub`:
  // in each region one AMI of the build (the copies are the only images the account
  // owns there), only the snapshots that AMI uses, and `lt_versions` versions of bw-lt
  // (the AWS CLI's first one and one per build).
  void expect_made_once(const std::string& id, const std::map<std::string, std::string>& pub,
                        size_t lt_versions) const {
    for (const auto& [region, ami] : pub) {
      Json images = aws_cli(region, {"ec2", "describe-images", "--owners", "self", "--filters",
                                     "Name=tag:amibake:build-id,Values=" + id});
      ASSERT_EQ(images["Images"].size(), 1u) << region << ": " << images.dump();
      EXPECT_EQ(images["Images"][0]["ImageId"], ami) << region;
      std::set<std::string> used;
      for (const auto& m : images["Images"][0]["BlockDeviceMappings"]) {
        if (m.contains("Ebs") && m["Ebs"].contains("SnapshotId")) used.insert(m["Ebs"]["SnapshotId"]);
      }
      if (region != "us-east-1") {  // us-east-1 also holds the base copy and its snapshot
        EXPECT_EQ(aws_cli(region, {"ec2", "describe-images", "--owners", "self"})["Images"].size(), 1u)
            << region << ": an extra image";
        Json snaps = aws_cli(region, {"ec2", "describe-snapshots", "--owner-ids", "self"});
        std::set<std::string> have;
        for (const auto& sn : snaps["Snapshots"]) have.insert(sn["SnapshotId"]);
        EXPECT_EQ(have, used) << region << ": snapshots beyond the copy's own";
      }
      Json versions = aws_cli(region, {"ec2", "describe-launch-template-versions",
                                       "--launch-template-name", "bw-lt"});
      EXPECT_EQ(versions["LaunchTemplateVersions"].size(), lt_versions) << region << ": " << versions.dump();
    }
  }
  // Waits until `ready` holds (polled every 50 ms) or `limit` passes.
  static bool wait_until(const std::function<bool()>& ready, std::chrono::seconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (ready()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // Starts `amibake build recipe`, kills it (-9) once `moment` holds, restarts awsemu
  // with `emu` (state kept) and resumes; returns the build id and the resumed run.
  std::pair<std::string, CliRun> kill_then_resume(const std::string& recipe,
                                                  const std::function<bool(const std::string&)>& moment,
                                                  const std::vector<std::string>& emu) {
    testing::BackgroundProcess build;
    std::string log = start_amibake(build, {"build", recipe});
    bool seen = wait_until([&] { return moment(read_file(log).value_or("")); }, std::chrono::seconds(180));
    ::kill(build.pid(), SIGKILL);
    build.stop();
    std::string text = read_file(log).value_or("");
    EXPECT_TRUE(seen) << "the moment to kill never came:\n" << text;
    EXPECT_EQ(text.find("amibake: [done]"), std::string::npos) << "the kill landed too late:\n" << text;
    std::string id = build_id_in(text);
    EXPECT_FALSE(id.empty()) << text;
    start_emu(emu);
    return {id, amibake({"build", "--resume", id, "--json"})};
  }
  // region -> the family's AMI in it, from the build's --json "published".
  static std::map<std::string, std::string> published_of(const CliRun& run) {
    std::map<std::string, std::string> out;
    Json j = Json::parse(run.out, nullptr, false);
    if (j.is_discarded() || !j.contains("published")) return out;
    for (const auto& [region, p] : j["published"].items()) out[region] = p["image"];
    return out;
  }
};

const char* kPublish = R"(
[publish]
regions = ["us-west-2", "eu-west-1"]
share_accounts = ["111122223333"]
ssm_parameter = "/amibake/bw/image_id"
launch_templates = ["bw-lt"]
batch_compute_environments = ["bw-ce"]
deprecate_after_days = 30

[retention]
keep = 1
min_age_days = 0
)";

TEST_F(BakePublish, BuildPublishesEverywhereASecondMovesEveryPointerAndPruneKeepsWhatIsUsed) {
  start_emu({});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);

  CliRun plan = amibake({"plan", recipe});
  ASSERT_EQ(plan.rc, 0) << plan.err;
  EXPECT_NE(plan.out.find("launch-templates: bw-lt in eu-west-1"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("batch: bw-ce in us-west-2"), std::string::npos) << plan.out;

  CliRun first = amibake({"build", recipe, "--json"});
  ASSERT_EQ(first.rc, 0) << first.err;
  auto one = published_of(first);
  ASSERT_EQ(one.size(), 3u) << first.out;
  for (const auto& r : kRegions) ASSERT_TRUE(one.count(r)) << r;
  expect_pointers(one);
  // Every copy and its snapshots carry the build's tags (cleanup and prune find them).
  std::string build = build_id_in(first.err);
  for (const auto& r : {"us-west-2", "eu-west-1"}) {
    Json snaps = aws_cli(r, {"ec2", "describe-snapshots", "--owner-ids", "self", "--filters",
                             "Name=tag:amibake:build-id,Values=" + build});
    EXPECT_FALSE(snaps["Snapshots"].empty()) << r;
  }

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new {date} in the name
  CliRun second = amibake({"build", recipe, "--force", "--json"});
  ASSERT_EQ(second.rc, 0) << second.err;
  auto two = published_of(second);
  ASSERT_EQ(two.size(), 3u);
  for (const auto& r : kRegions) EXPECT_NE(two[r], one[r]) << r;
  expect_pointers(two);

  // Listing changes nothing.
  CliRun list = amibake({"prune", recipe});
  ASSERT_EQ(list.rc, 0) << list.err;
  for (const auto& r : kRegions) {
    EXPECT_NE(list.out.find(r + "  " + one[r]), std::string::npos) << list.out;
    EXPECT_NE(lines_with(list.out, one[r]).find("prune "), std::string::npos) << list.out;
    EXPECT_NE(lines_with(list.out, two[r]).find("keep"), std::string::npos) << list.out;
  }
  EXPECT_NE(list.out.find("3 AMI(s) would be deregistered; nothing changed"), std::string::npos);
  for (const auto& r : kRegions) {
    EXPECT_EQ(aws_cli(r, {"ec2", "describe-images", "--image-ids", one[r]})["Images"].size(), 1u);
  }

  // Still in use: another template's default in us-east-1, a running instance in eu-west-1.
  aws_cli("us-east-1", {"ec2", "create-launch-template", "--launch-template-name", "other-lt",
                        "--launch-template-data", R"({"ImageId":")" + one["us-east-1"] + R"("})"});
  Json run = aws_cli("eu-west-1", {"ec2", "run-instances", "--image-id", one["eu-west-1"],
                                   "--instance-type", "m5.large", "--count", "1"});
  ASSERT_FALSE(run["Instances"].empty());
  Json west = aws_cli("us-west-2", {"ec2", "describe-images", "--image-ids", one["us-west-2"]});
  std::string west_snap = west["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"];

  CliRun del = amibake({"prune", recipe, "--delete"});
  ASSERT_EQ(del.rc, 0) << del.err;
  EXPECT_NE(lines_with(del.out, one["us-east-1"]).find("used by launch template other-lt"),
            std::string::npos)
      << del.out;
  EXPECT_NE(lines_with(del.out, one["eu-west-1"]).find("used by instance"), std::string::npos)
      << del.out;
  EXPECT_NE(lines_with(del.out, one["us-west-2"]).find("deregistered, 1 of 1 snapshot(s) deleted"),
            std::string::npos)
      << del.out;
  {
    aws::ec2::DescribeImagesRequest ask;
    ask.image_ids = {one["us-west-2"]};
    auto west_now = aws::ec2::describe_images(*client_in("us-west-2"), ask);
    EXPECT_TRUE(!west_now ? west_now.error().aws_code == "InvalidAMIID.NotFound"
                          : west_now->empty() || west_now->front().state == "deregistered");
  }
  Json gone = aws_cli("us-west-2", {"ec2", "describe-snapshots", "--owner-ids", "self", "--filters",
                                    "Name=snapshot-id,Values=" + west_snap});
  EXPECT_TRUE(gone["Snapshots"].empty()) << gone.dump();
  for (const auto& r : {"us-east-1", "eu-west-1"}) {
    EXPECT_EQ(aws_cli(r, {"ec2", "describe-images", "--image-ids", one[r]})["Images"].size(), 1u) << r;
  }
}

TEST_F(BakePublish, PublishRollsBackToAnOlderAmi) {
  start_emu({});
  make_targets();
  std::string recipe = write_recipe("bw.toml", R"(
[publish]
ssm_parameter = "/amibake/bw/image_id"
launch_templates = ["bw-lt"]
batch_compute_environments = ["bw-ce"]
)");
  CliRun first = amibake({"build", recipe});
  ASSERT_EQ(first.rc, 0) << first.err;
  std::string old_ami = first.out.substr(0, first.out.find('\n'));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CliRun second = amibake({"build", recipe, "--force"});
  ASSERT_EQ(second.rc, 0) << second.err;
  CliRun back = amibake({"publish", recipe, "--ami", old_ami});
  ASSERT_EQ(back.rc, 0) << back.err;
  auto c = client_in("us-east-1");
  EXPECT_EQ(aws::ssm::get_parameter(*c, "/amibake/bw/image_id")->value, old_ami);
  Json ce = aws_cli("us-east-1", {"batch", "describe-compute-environments", "--compute-environments", "bw-ce"});
  auto v = aws::model::call(*c, aws::model::ec2(), "DescribeLaunchTemplateVersions",
                            Json{{"LaunchTemplateName", "bw-lt"}, {"Versions", Json::array({"$Default"})}});
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"], old_ami);
  EXPECT_EQ(ce["computeEnvironments"][0]["computeResources"]["launchTemplate"]["version"],
            std::to_string((*v)["LaunchTemplateVersions"][0]["VersionNumber"].get<int64_t>()));
  // Without --ami: the family's newest.
  CliRun newest = amibake({"publish", recipe});
  ASSERT_EQ(newest.rc, 0) << newest.err;
  EXPECT_EQ(aws::ssm::get_parameter(*c, "/amibake/bw/image_id")->value,
            second.out.substr(0, second.out.find('\n')));
}

TEST_F(BakePublish, MissingTargetsAndNonUpdatableEnvironmentsAreRefusedBeforeAnythingIsMade) {
  start_emu({});
  make_targets("BEST_FIT");
  struct Case {
    const char* publish;
    const char* want;
  } cases[] = {
      {"[publish]\nregions = [\"us-east-9\"]\n", "'us-east-9' is not a region enabled for this account"},
      {"[publish]\nregions = [\"eu-west-1\"]\nlaunch_templates = [\"nope-lt\"]\n",
       "launch template 'nope-lt' does not exist in us-east-1"},
      {"[publish]\nbatch_compute_environments = [\"bw-ce\"]\nlaunch_templates = [\"bw-lt\"]\n",
       "uses allocation strategy BEST_FIT, which Batch cannot update in place"},
      {"[publish]\nbatch_compute_environments = [\"nope-ce\"]\n",
       "Batch compute environment 'nope-ce' does not exist in us-east-1"},
  };
  int n = 0;
  for (const auto& c : cases) {
    std::string recipe = write_recipe("r" + std::to_string(n++) + ".toml", c.publish);
    CliRun plan = amibake({"plan", recipe});
    EXPECT_EQ(plan.rc, 2) << c.publish << plan.err;
    EXPECT_NE(plan.err.find(c.want), std::string::npos) << plan.err;
    CliRun build = amibake({"build", recipe});
    EXPECT_EQ(build.rc, 2) << c.publish << build.err;
    EXPECT_NE(build.err.find(c.want), std::string::npos) << build.err;
    std::string id = build_id_in(build.err);
    EXPECT_TRUE(tagged_with(id).empty()) << c.publish;
  }
  // A template missing in one region only.
  aws_cli("us-east-1", {"ec2", "create-launch-template", "--launch-template-name", "east-only",
                        "--launch-template-data", R"({"InstanceType":"m5.large"})"});
  std::string recipe = write_recipe("east.toml",
                                    "[publish]\nregions = [\"eu-west-1\"]\nlaunch_templates = [\"east-only\"]\n");
  CliRun build = amibake({"build", recipe});
  EXPECT_EQ(build.rc, 2) << build.err;
  EXPECT_NE(build.err.find("launch template 'east-only' does not exist in eu-west-1"), std::string::npos)
      << build.err;
  EXPECT_TRUE(tagged_with(build_id_in(build.err)).empty());
}

// An AMI encrypted with the AWS-managed key aws/ebs cannot be shared: publish-check asks
// KMS (DescribeKey) about every key the shared AMIs use and refuses before anything is
// shared or copied — the key of a `publish --ami` AMI's snapshots, a region's copy key.
TEST_F(BakePublish, SharingWhatTheAwsManagedKeyEncryptsIsRefusedBeforeAnythingIsMade) {
  start_emu({});
  CliRun built = amibake({"build", write_recipe("plain.toml", "")});
  ASSERT_EQ(built.rc, 0) << built.err;
  std::string ami = built.out.substr(0, built.out.find('\n'));
  // Encrypted without a key: EC2 encrypts the copy's snapshot with aws/ebs.
  Json copy = aws_cli("us-east-1", {"ec2", "copy-image", "--source-image-id", ami, "--source-region",
                                    "us-east-1", "--name", "bw-aws-ebs", "--encrypted", "--copy-image-tags"});
  std::string encrypted = copy.value("ImageId", "");
  ASSERT_FALSE(encrypted.empty()) << copy.dump();
  aws_cli("us-east-1", {"ec2", "wait", "image-available", "--image-ids", encrypted});
  Json snap = aws_cli("us-east-1", {"ec2", "describe-snapshots", "--snapshot-ids",
                                    aws_cli("us-east-1", {"ec2", "describe-images", "--image-ids", encrypted})
                                        ["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]});
  std::string key = snap["Snapshots"][0].value("KmsKeyId", "");
  ASSERT_EQ(aws_cli("us-east-1", {"kms", "describe-key", "--key-id", key})["KeyMetadata"]["KeyManager"], "AWS");

  std::string recipe = write_recipe("share.toml", "[publish]\nregions = [\"us-west-2\"]\n"
                                                  "share_accounts = [\"111122223333\"]\n");
  const int64_t copies = emu_calls("ec2:CopyImage");
  CliRun pub = amibake({"publish", recipe, "--ami", encrypted});
  EXPECT_EQ(pub.rc, 2) << pub.err;
  EXPECT_NE(pub.err.find("is the AWS-managed KMS key " + key), std::string::npos) << pub.err;
  EXPECT_NE(pub.err.find("customer-managed KMS key whose key policy lets the shared accounts use it"),
            std::string::npos)
      << pub.err;
  EXPECT_EQ(emu_calls("ec2:CopyImage"), copies);
  EXPECT_EQ(emu_calls("ec2:ModifyImageAttribute"), 0);
  EXPECT_TRUE(aws_cli("us-west-2", {"ec2", "describe-images", "--owners", "self"})["Images"].empty());
  Json perm = aws_cli("us-east-1", {"ec2", "describe-image-attribute", "--image-id", encrypted,
                                    "--attribute", "launchPermission"});
  EXPECT_TRUE(perm["LaunchPermissions"].empty()) << perm.dump();
  // The unencrypted AMI itself may be shared.
  EXPECT_EQ(amibake({"plan", recipe}).rc, 0);

  // A region's copy key: aws/ebs is refused by plan and build; a customer-managed one is not.
  std::string managed = write_recipe("managed.toml", "[publish]\nregions = [\"us-west-2\"]\n"
                                                     "kms_key_ids = { \"us-west-2\" = \"alias/aws/ebs\" }\n"
                                                     "share_accounts = [\"111122223333\"]\n");
  CliRun plan = amibake({"plan", managed});
  EXPECT_EQ(plan.rc, 2) << plan.err;
  EXPECT_NE(plan.err.find("publish.kms_key_ids us-west-2 is the AWS-managed KMS key alias/aws/ebs"),
            std::string::npos)
      << plan.err;
  CliRun build = amibake({"build", managed, "--force"});
  EXPECT_EQ(build.rc, 2) << build.err;
  EXPECT_TRUE(tagged_with(build_id_in(build.err)).empty());
  EXPECT_EQ(emu_calls("ec2:CopyImage"), copies);
  std::string customer = write_recipe("customer.toml", "[publish]\nregions = [\"us-west-2\"]\n"
                                                       "kms_key_ids = { \"us-west-2\" = \"alias/ami\" }\n"
                                                       "share_accounts = [\"111122223333\"]\n");
  CliRun fine = amibake({"plan", customer});
  EXPECT_EQ(fine.rc, 0) << fine.err;
}

// Rollback across regions: `publish --ami <older>` finds the older AMI's copies (by
// name and amibake:build-id) and points everything at them, copying nothing again.
TEST_F(BakePublish, RollbackWithRegionsReusesTheOlderAmisCopies) {
  start_emu({});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  CliRun first = amibake({"build", recipe, "--json"});
  ASSERT_EQ(first.rc, 0) << first.err;
  auto one = published_of(first);
  ASSERT_EQ(one.size(), 3u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new {date} in the name
  CliRun second = amibake({"build", recipe, "--force"});
  ASSERT_EQ(second.rc, 0) << second.err;
  const int64_t copies = emu_calls("ec2:CopyImage");
  CliRun back = amibake({"publish", recipe, "--ami", one["us-east-1"], "--json"});
  ASSERT_EQ(back.rc, 0) << back.err;
  EXPECT_EQ(emu_calls("ec2:CopyImage"), copies) << back.err;
  EXPECT_EQ(published_of(back), one) << back.out;
  for (const auto& r : {"us-west-2", "eu-west-1"}) {
    EXPECT_EQ(aws_cli(r, {"ec2", "describe-images", "--owners", "self"})["Images"].size(), 2u) << r;
  }
  expect_pointers(one);
  // The publish run owns none of the copies: its cleanup would remove nothing.
  std::string id = build_id_in(back.err);
  ASSERT_FALSE(id.empty()) << back.err;
  auto journal = read_file(dir_ + "/state/amibake/builds/" + id + ".jsonl").value_or("");
  EXPECT_EQ(journal.find("\"event\":\"created\""), std::string::npos) << journal;
}

// kill -9 while the copies are in flight: awsemu has carried out the first region's
// CopyImage but holds its answer (--latency), so the copy exists and its id was never
// seen. The resumed build's client tokens find it: one copy per region.
TEST_F(BakePublish, KillDuringTheCopiesThenResumeMakesOneCopyPerRegion) {
  start_emu({"--latency", "CopyImage=3000"});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  // The moment: the copy step runs and awsemu took a CopyImage besides the base's own copy.
  auto [id, resumed] = kill_then_resume(
      recipe,
      [&](const std::string& log) {
        return log.find("amibake: [copy]") != std::string::npos && emu_calls("ec2:CopyImage") >= 2;
      },
      {});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  auto pub = published_of(resumed);
  ASSERT_EQ(pub.size(), 3u) << resumed.out;
  expect_made_once(id, pub, 2);
  expect_pointers(pub);
}

// kill -9 after awsemu made the first region's copy but before its id reached the journal
// (awsemu holds the CopyImage answer, --latency), then `amibake cleanup` (no --resume):
// the journal's intent names the region, and cleanup finds the copy there by its
// amibake:build-id tag and removes it with its (untagged) snapshots.
TEST_F(BakePublish, KillBetweenCopyImageAndItsJournalLineThenCleanupLeaksNoCopy) {
  start_emu({"--latency", "CopyImage=3000"});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  testing::BackgroundProcess build;
  std::string log = start_amibake(build, {"build", recipe});
  bool seen = wait_until(
      [&] {
        return read_file(log).value_or("").find("amibake: [copy]") != std::string::npos &&
               emu_calls("ec2:CopyImage") >= 2;  // the base's own copy, then us-west-2's
      },
      std::chrono::seconds(180));
  ::kill(build.pid(), SIGKILL);
  build.stop();
  std::string text = read_file(log).value_or("");
  ASSERT_TRUE(seen) << text;
  std::string id = build_id_in(text);
  ASSERT_FALSE(id.empty()) << text;
  std::string journal = read_file(dir_ + "/state/amibake/builds/" + id + ".jsonl").value_or("");
  ASSERT_NE(journal.find("\"region\":\"us-west-2\""), std::string::npos) << journal;
  std::istringstream lines(journal);
  for (std::string line; std::getline(lines, line);) {
    Json e = Json::parse(line, nullptr, false);
    ASSERT_FALSE(e.is_object() && e.value("event", "") == "created" && e.value("region", "") != "us-east-1")
        << "a copy reached the journal: the kill came too late\n" << journal;
  }
  start_emu({});
  auto tagged_in = [&](const std::string& region, const char* what) {
    std::string cmd = std::string("describe-") + what;
    Json j = aws_cli(region, {"ec2", cmd, what == std::string("images") ? "--owners" : "--owner-ids", "self",
                              "--filters", "Name=tag:amibake:build-id,Values=" + id});
    return j[what == std::string("images") ? "Images" : "Snapshots"].size();
  };
  ASSERT_EQ(tagged_in("us-west-2", "images"), 1u) << "no copy was made before the kill";

  CliRun clean = amibake({"cleanup", id});
  ASSERT_EQ(clean.rc, 0) << clean.err;
  EXPECT_NE(clean.err.find("in us-west-2 (found by the build's tag"), std::string::npos) << clean.err;
  EXPECT_TRUE(tagged_with(id).empty());
  for (const auto& r : {"us-west-2", "eu-west-1"}) {
    EXPECT_EQ(tagged_in(r, "images"), 0u) << r;
    EXPECT_TRUE(aws_cli(r, {"ec2", "describe-images", "--owners", "self"})["Images"].empty()) << r;
    Json snaps = aws_cli(r, {"ec2", "describe-snapshots", "--owner-ids", "self"});
    EXPECT_TRUE(snaps["Snapshots"].empty()) << r << ": " << snaps.dump();
  }
}

// kill -9 while Batch updates the first compute environment (UPDATING for 3 s at speed
// 0.1): the resumed build finds its own update in progress, waits it out and does not
// send it again; the launch template versions of the finished step are not made again.
TEST_F(BakePublish, KillDuringTheBatchUpdateThenResumeUpdatesEachEnvironmentOnce) {
  start_emu({"--speed", "0.1"});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  // The moment: the journal holds the compute environment pointer (written just before
  // UpdateComputeEnvironment) and awsemu received the update.
  auto [id, resumed] = kill_then_resume(
      recipe,
      [&](const std::string& log) {
        std::string id = build_id_in(log);
        if (id.empty()) return false;
        std::string journal = read_file(dir_ + "/state/amibake/builds/" + id + ".jsonl").value_or("");
        return journal.find("\"key\":\"compute-environment us-east-1") != std::string::npos &&
               emu_calls("batch:UpdateComputeEnvironment") >= 1;
      },
      {"--speed", "0.1"});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("already has this update"), std::string::npos) << resumed.err;
  // The resumed build updated only the two other regions' environments.
  EXPECT_EQ(emu_calls("batch:UpdateComputeEnvironment"), 2);
  EXPECT_EQ(emu_calls("ec2:CreateLaunchTemplateVersion"), 0);
  auto pub = published_of(resumed);
  ASSERT_EQ(pub.size(), 3u) << resumed.out;
  expect_made_once(id, pub, 2);
  expect_pointers(pub);
}

// Batch turns an environment INVALID when an AMI its update names cannot be described
// when Batch applies the update — here the build's AMI, deregistered (as by a person)
// while the environment is UPDATING (6 s at speed 0.2). The batch step fails with Batch's
// statusReason; cleanup puts the environment's imageIdOverride back and waits until it is
// VALID again.
TEST_F(BakePublish, AnInvalidComputeEnvironmentFailsTheBatchStepAndCleanupPutsItBackValid) {
  start_emu({"--speed", "0.2"});
  std::string base = aws_cli("us-east-1", {"ec2", "describe-images", "--owners", "amazon"})["Images"][0]["ImageId"];
  aws_cli("us-east-1", {"batch", "create-compute-environment", "--compute-environment-name", "ov-ce",
                        "--type", "MANAGED", "--compute-resources",
                        R"({"type":"EC2","allocationStrategy":"BEST_FIT_PROGRESSIVE","minvCpus":0,"maxvCpus":16,)"
                        R"("instanceTypes":["optimal"],"subnets":["subnet-1"],"securityGroupIds":["sg-1"],)"
                        R"("instanceRole":"ecsInstanceRole","ec2Configuration":[{"imageType":"ECS_AL2023",)"
                        R"("imageIdOverride":")" + base + R"("}]})"});
  std::string recipe = write_recipe("ov.toml", "[publish]\nbatch_compute_environments = [\"ov-ce\"]\n");
  testing::BackgroundProcess build;
  std::string log = start_amibake(build, {"build", recipe});
  ASSERT_TRUE(wait_until([&] { return emu_calls("batch:UpdateComputeEnvironment") >= 1; },
                         std::chrono::seconds(300)))
      << read_file(log).value_or("");
  std::string id = build_id_in(read_file(log).value_or(""));
  ASSERT_FALSE(id.empty());
  Json mine = aws_cli("us-east-1", {"ec2", "describe-images", "--owners", "self", "--filters",
                                    "Name=tag:amibake:build-id,Values=" + id});
  ASSERT_EQ(mine["Images"].size(), 1u) << mine.dump();
  std::string ami = mine["Images"][0]["ImageId"];
  Json ce = aws_cli("us-east-1", {"batch", "describe-compute-environments", "--compute-environments", "ov-ce"});
  ASSERT_EQ(ce["computeEnvironments"][0]["status"], "UPDATING") << "the update ended before the AMI went";
  aws_cli("us-east-1", {"ec2", "deregister-image", "--image-id", ami});
  ASSERT_TRUE(wait_until([&] { return !build.running(); }, std::chrono::seconds(120)));
  std::string text = read_file(log).value_or("");
  EXPECT_NE(text.find("reached state 'INVALID'"), std::string::npos) << text;
  EXPECT_NE(text.find("CLIENT_ERROR - AMI cannot be described"), std::string::npos) << text;
  EXPECT_NE(text.find("amibake cleanup " + id), std::string::npos) << text;
  ce = aws_cli("us-east-1", {"batch", "describe-compute-environments", "--compute-environments", "ov-ce"});
  EXPECT_EQ(ce["computeEnvironments"][0]["status"], "INVALID");
  EXPECT_EQ(ce["computeEnvironments"][0]["computeResources"]["ec2Configuration"][0]["imageIdOverride"], ami);

  CliRun clean = amibake({"cleanup", id});
  ASSERT_EQ(clean.rc, 0) << clean.err;
  EXPECT_NE(clean.err.find("VALID again"), std::string::npos) << clean.err;
  // cleanup returned only once the environment was VALID again, with the AMI from before.
  ce = aws_cli("us-east-1", {"batch", "describe-compute-environments", "--compute-environments", "ov-ce"});
  EXPECT_EQ(ce["computeEnvironments"][0]["status"], "VALID") << ce.dump();
  EXPECT_EQ(ce["computeEnvironments"][0]["computeResources"]["ec2Configuration"][0]["imageIdOverride"], base);
  EXPECT_TRUE(tagged_with(id).empty());
}

// Throttling, server errors and lost answers on the publish operations only (op=):
// retries with client tokens, the resend of a Batch update whose answer was lost, and
// SSM's re-put all end in the right pointers, one copy per region, one template version.
TEST_F(BakePublish, FaultsDuringPublishStillPublishOnceAndRight) {
  start_emu({"--speed", "0.1", "--faults",
             "throttle=0.1,5xx=0.1,lost=0.1,op=CopyImage|ModifyImageAttribute|CreateTags|"
             "EnableImageDeprecation|DescribeLaunchTemplates|CreateLaunchTemplateVersion|"
             "ModifyLaunchTemplate|ssm:PutParameter|batch:DescribeComputeEnvironments|"
             "batch:UpdateComputeEnvironment"});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  CliRun r;
  std::vector<std::string> e = env();
  e.push_back("AWS_MAX_ATTEMPTS=8");  // three faults in a row are likely over ~60 calls
  r.rc = run_capture({AMIBAKE_BINARY, "build", recipe, "--json"}, e, &r.out, &r.err);
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string log = read_file(emu_.log_path()).value_or("");
  EXPECT_NE(log.find("answer lost"), std::string::npos) << "no lost answer was injected";
  auto pub = published_of(r);
  ASSERT_EQ(pub.size(), 3u) << r.out;
  start_emu({});  // read back without faults
  expect_made_once(build_id_in(r.err), pub, 2);
  expect_pointers(pub);
}

// A build that fails after the launch-templates step (Batch denies the update) leaves
// the pointers of the build before it: cleanup deletes its launch template versions,
// puts the defaults back, and puts the SSM parameter's value back.
TEST_F(BakePublish, CleanupOfAFailedPublishPutsEveryPointerBack) {
  start_emu({});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  CliRun first = amibake({"build", recipe, "--json"});
  ASSERT_EQ(first.rc, 0) << first.err;
  auto one = published_of(first);
  ASSERT_EQ(one.size(), 3u);

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new {date} in the name
  start_emu({"--deny", "batch:UpdateComputeEnvironment"});
  CliRun failed = amibake({"build", recipe, "--force"});
  ASSERT_EQ(failed.rc, 1) << failed.err;
  std::string id = build_id_in(failed.err);
  EXPECT_NE(failed.err.find("amibake cleanup " + id), std::string::npos) << failed.err;
  // The failed build moved the SSM parameter and the template defaults.
  auto c = client_in("us-west-2");
  EXPECT_NE(aws::ssm::get_parameter(*c, "/amibake/bw/image_id")->value, one["us-west-2"]);

  start_emu({});
  CliRun clean = amibake({"cleanup", id});
  ASSERT_EQ(clean.rc, 0) << clean.err;
  EXPECT_TRUE(tagged_with(id).empty());
  for (const auto& r : kRegions) {
    Json versions = aws_cli(r, {"ec2", "describe-launch-template-versions", "--launch-template-name", "bw-lt"});
    EXPECT_EQ(versions["LaunchTemplateVersions"].size(), 2u) << r << ": " << versions.dump();
    if (r != "us-east-1") {
      EXPECT_EQ(aws_cli(r, {"ec2", "describe-images", "--owners", "self"})["Images"].size(), 1u) << r;
    }
  }
  expect_pointers(one);
  // Again: nothing left to do, nothing changed.
  CliRun again = amibake({"cleanup", id});
  EXPECT_EQ(again.rc, 0) << again.err;
  expect_pointers(one);
}

// The first build's SSM parameter did not exist before it: its cleanup deletes it.
TEST_F(BakePublish, CleanupDeletesAnSsmParameterTheBuildCreated) {
  start_emu({"--deny", "ModifyLaunchTemplate"});
  make_targets();
  std::string recipe = write_recipe("bw.toml", kPublish);
  CliRun failed = amibake({"build", recipe});
  ASSERT_EQ(failed.rc, 1) << failed.err;
  std::string id = build_id_in(failed.err);
  start_emu({});
  auto c = client_in("eu-west-1");
  ASSERT_TRUE(aws::ssm::get_parameter(*c, "/amibake/bw/image_id"));
  CliRun clean = amibake({"cleanup", id});
  ASSERT_EQ(clean.rc, 0) << clean.err;
  for (const auto& r : kRegions) {
    auto p = aws::ssm::get_parameter(*client_in(r), "/amibake/bw/image_id");
    if (p) {
      ADD_FAILURE() << r << ": the parameter is left, value " << p->value;
    } else {
      EXPECT_EQ(p.error().aws_code, "ParameterNotFound") << r;
    }
    Json versions = aws_cli(r, {"ec2", "describe-launch-template-versions", "--launch-template-name", "bw-lt"});
    EXPECT_EQ(versions["LaunchTemplateVersions"].size(), 1u) << r << ": " << versions.dump();
  }
  EXPECT_TRUE(tagged_with(id).empty());
}

}  // namespace
}  // namespace amibake::testing
