// Publishing end to end (issue 11): the real amibake against a real awsemu, with the
// launch templates and Batch compute environments made first by the AWS CLI, then every
// pointer read back in every region through the APIs; a second build moves them all;
// prune lists, keeps what is referenced, and deletes the rest with its snapshots.
#include <gtest/gtest.h>

#include <thread>

#include "aws/ec2.h"
#include "aws/model.h"
#include "aws/ssm.h"
#include "base/files.h"
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

}  // namespace
}  // namespace amibake::testing
