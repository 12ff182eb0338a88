#include "source_paths.h"
#include <gtest/gtest.h>

#include <set>

#include <map>
#include <mutex>

#include "aws/client.h"
#include "aws/http.h"
#include "bake/base_image.h"
#include "bake/host_checks.h"
#include "bake/recipe.h"
#include "bake/variants.h"
#include "base/files.h"

namespace amibake::bake {
namespace {

TEST(Variants, EveryVariantMapsToAnEcsRecommendedImageIdParameter) {
  ASSERT_GE(variants().size(), 8u);
  EXPECT_EQ(variants()[0].name, kDefaultVariant);
  for (const auto& v : variants()) {
    EXPECT_EQ(v.ssm_parameter.rfind("/aws/service/ecs/optimized-ami/", 0), 0u) << v.name;
    EXPECT_TRUE(v.ssm_parameter.ends_with("/recommended/image_id")) << v.name;
  }
  for (const char* name : {"al2023", "al2023-arm64", "al2023-gpu", "al2023-neuron", "al2",
                           "al2-arm64", "al2-gpu", "al2-kernel-5.10"}) {
    EXPECT_NE(find_variant(name), nullptr) << name;
  }
  EXPECT_EQ(find_variant("al2024"), nullptr);
}

TEST(BaseSelector, RejectsTwoSourcesUnknownVariantAndBadIds) {
  EXPECT_TRUE(validate({}));
  BaseSelector two;
  two.variant = "al2";
  two.ami_id = "ami-0123456789abcdef0";
  EXPECT_FALSE(validate(two));
  BaseSelector typo;
  typo.variant = "al2032";
  auto r = validate(typo);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'al2032'"), std::string::npos);
  EXPECT_NE(r.error().hint.find("al2023-arm64"), std::string::npos);
  EXPECT_EQ(r.error().code, 2);
  BaseSelector bad_id;
  bad_id.ami_id = "ami-xyz";
  EXPECT_FALSE(validate(bad_id));
  BaseSelector bad_path;
  bad_path.ssm_parameter = "aws/service/x";
  EXPECT_FALSE(validate(bad_path));
}

TEST(HostChecks, ReadsKernelFilesystemsList) {
  auto dir = make_temp_dir("amibake-hostcheck");
  ASSERT_TRUE(dir);
  std::string p = *dir + "/filesystems";
  ASSERT_TRUE(write_file_atomic(p, "nodev\tsysfs\nnodev\tproc\n\text4\n\txfs\n"));
  EXPECT_TRUE(kernel_supports_filesystem(p, "xfs"));
  EXPECT_TRUE(kernel_supports_filesystem(p, "ext4"));
  EXPECT_FALSE(kernel_supports_filesystem(p, "proc-not-there"));
}

TEST(HostChecks, ReportsEveryDirectMethodNeedWithAFixWhenMissing) {
  auto dir = make_temp_dir("amibake-hostcheck");
  ASSERT_TRUE(dir);
  HostPaths p;
  p.loop_control = *dir + "/no-loop-control";
  p.proc_filesystems = *dir + "/none";
  ASSERT_TRUE(write_file_atomic(p.proc_filesystems, "nodev\tproc\n"));
  p.work_dir = *dir + "/work/not/yet/created";
  auto checks = check_direct_method_host(p, /*min_free_bytes=*/1ull << 60);
  std::map<std::string, Check> by_name;
  for (const auto& c : checks) by_name[c.name] = c;
  ASSERT_TRUE(by_name.count("loop devices"));
  EXPECT_FALSE(by_name["loop devices"].ok);
  EXPECT_FALSE(by_name["loop devices"].fix.empty());
  ASSERT_TRUE(by_name.count("free disk"));
  EXPECT_FALSE(by_name["free disk"].ok);  // nobody has an exbibyte free
  EXPECT_NE(by_name["free disk"].fix.find("AMIBAKE_WORK_DIR"), std::string::npos);
  ASSERT_TRUE(by_name.count("root"));
  ASSERT_TRUE(by_name.count("xfs mountable"));
  ASSERT_TRUE(by_name.count("ext4 mountable"));
}

// A transport that answers from a table keyed by the request's operation, and
// records what it was asked.
class TableTransport : public aws::Transport {
 public:
  std::map<std::string, aws::HttpResponse> answers;  // key: "Action=X" or X-Amz-Target
  std::vector<std::string> asked;

  aws::HttpResult send(const aws::HttpRequest& r) override {
    std::lock_guard lock(mu_);
    std::string key;
    for (const auto& [k, v] : r.headers) {
      if (k == "X-Amz-Target" || k == "x-amz-target") key = v;
    }
    if (key.empty()) {
      size_t a = r.body.find("Action=");
      key = r.body.substr(a, r.body.find('&', a) - a);
    }
    asked.push_back(key);
    aws::HttpResult out;
    auto it = answers.find(key);
    if (it == answers.end()) {
      out.response.status = 400;
      out.response.body = "<Response><Errors><Error><Code>Unexpected</Code><Message>" + key +
                          "</Message></Error></Errors><RequestID>r</RequestID></Response>";
    } else {
      out.response = it->second;
    }
    return out;
  }

 private:
  std::mutex mu_;
};

aws::HttpResponse answer(int status, std::string body) {
  aws::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

constexpr const char* kImageXml = R"(<?xml version="1.0" encoding="UTF-8"?>
<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <imagesSet><item>
    <imageId>ami-0123456789abcdef0</imageId>
    <imageState>available</imageState>
    <imageOwnerId>591542846629</imageOwnerId>
    <imageOwnerAlias>amazon</imageOwnerAlias>
    <creationDate>2026-11-20T01:02:03.000Z</creationDate>
    <architecture>x86_64</architecture>
    <name>al2023-ami-ecs-hvm-2023.0.20261120-kernel-6.1-x86_64</name>
    <rootDeviceType>ebs</rootDeviceType>
    <rootDeviceName>/dev/xvda</rootDeviceName>
    <blockDeviceMapping><item><deviceName>/dev/xvda</deviceName>
      <ebs><snapshotId>snap-0aaa</snapshotId><volumeSize>30</volumeSize>
      <deleteOnTermination>true</deleteOnTermination><volumeType>gp3</volumeType>
      <encrypted>false</encrypted></ebs></item></blockDeviceMapping>
    <virtualizationType>hvm</virtualizationType>
    <enaSupport>true</enaSupport><sriovNetSupport>simple</sriovNetSupport>
    <bootMode>uefi-preferred</bootMode><imdsSupport>v2.0</imdsSupport>
    <deprecationTime>2028-11-20T01:02:00.000Z</deprecationTime>
  </item></imagesSet>
</DescribeImagesResponse>)";

std::unique_ptr<aws::AwsClient> table_client(std::shared_ptr<TableTransport> t) {
  aws::Credentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return aws::AwsClient::for_endpoint("http://127.0.0.1:9", c, "us-east-1", t);
}

TEST(ResolveBase, VariantGoesThroughItsSsmParameterThenDescribesTheImage) {
  auto t = std::make_shared<TableTransport>();
  t->answers["AmazonSSM.GetParameter"] = answer(200, R"({"Parameter":{"Name":"/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id","Type":"String","Value":"ami-0123456789abcdef0","Version":1}})");
  t->answers["Action=DescribeImages"] = answer(200, kImageXml);
  auto client = table_client(t);
  auto r = resolve_base(*client, {});
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->image.image_id, "ami-0123456789abcdef0");
  EXPECT_EQ(r->image.root_snapshot_id(), "snap-0aaa");
  EXPECT_NE(r->resolved_via.find("amazon-linux-2023/recommended/image_id"), std::string::npos);
  ASSERT_EQ(t->asked.size(), 2u);
  std::string text = describe_text(*r);
  EXPECT_NE(text.find("uefi-preferred"), std::string::npos);
  EXPECT_NE(text.find("/dev/xvda  snap-0aaa  30 GiB gp3"), std::string::npos);
  auto j = describe_json(*r);
  EXPECT_EQ(j["RootSnapshotId"], "snap-0aaa");
  EXPECT_EQ(j["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], 30);
  EXPECT_EQ(j["ImdsSupport"], "v2.0");
}

TEST(ResolveBase, AcceptsTheJsonRecommendedParameterValue) {
  auto t = std::make_shared<TableTransport>();
  t->answers["AmazonSSM.GetParameter"] = answer(200, R"({"Parameter":{"Name":"/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended","Type":"String","Value":"{\"image_id\":\"ami-0123456789abcdef0\",\"image_name\":\"x\"}","Version":1}})");
  t->answers["Action=DescribeImages"] = answer(200, kImageXml);
  auto client = table_client(t);
  BaseSelector s;
  s.ssm_parameter = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended";
  auto r = resolve_base(*client, s);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->image.image_id, "ami-0123456789abcdef0");
}

TEST(ResolveBase, MissingParameterSaysWhereItLookedAndSuggestsVariants) {
  auto t = std::make_shared<TableTransport>();
  t->answers["AmazonSSM.GetParameter"] =
      answer(400, R"({"__type":"ParameterNotFound","message":"not found"})");
  auto client = table_client(t);
  BaseSelector s;
  s.ssm_parameter = "/aws/service/nope";
  auto r = resolve_base(*client, s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'/aws/service/nope'"), std::string::npos);
  EXPECT_NE(r.error().hint.find("al2023"), std::string::npos);
  EXPECT_NE(r.error().hint.find("us-east-1"), std::string::npos);
}

TEST(ResolveBase, MissingImageIsAClearError) {
  auto t = std::make_shared<TableTransport>();
  t->answers["Action=DescribeImages"] = answer(400,
      "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id "
      "'[ami-0123456789abcdef0]' does not exist</Message></Error></Errors>"
      "<RequestID>r</RequestID></Response>");
  auto client = table_client(t);
  BaseSelector s;
  s.ami_id = "ami-0123456789abcdef0";
  auto r = resolve_base(*client, s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().aws_code, "InvalidAMIID.NotFound");
  EXPECT_EQ(r.error().message.rfind("ami-0123456789abcdef0: ", 0), 0u);
}

}  // namespace
}  // namespace amibake::bake

namespace amibake::bake {
namespace {

TEST(Recipe, ExampleBatchWorkerParsesToTheOriginalAmi) {
  auto r = load_recipe(std::string(AMIBAKE_SOURCE_DIR) + "/examples/batch-worker.toml");
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->base.variant, "al2023");
  ASSERT_EQ(r->volumes.size(), 1u);
  const auto& v = r->volumes[0];
  EXPECT_EQ(v.device, "/dev/xvdb");
  EXPECT_EQ(v.size_gib, 1024);
  EXPECT_EQ(v.type, "gp3");
  EXPECT_TRUE(v.encrypted);
  EXPECT_EQ(v.datavol.mount, "/data");
  EXPECT_EQ(v.datavol.filesystem, "xfs");
  EXPECT_EQ(v.datavol.mode, std::optional<mode_t>(0755));
  EXPECT_EQ(r->attributes.imds_support, "v2.0");
}

TEST(Recipe, ExampleAl1ParsesWithTwoVolumes) {
  auto r = load_recipe(std::string(AMIBAKE_SOURCE_DIR) + "/examples/al1-sysv.toml");
  ASSERT_TRUE(r) << r.error().describe();
  ASSERT_EQ(r->volumes.size(), 2u);
  EXPECT_EQ(r->volumes[1].device, "/dev/xvdcz");
  EXPECT_TRUE(r->volumes[1].datavol.required_by.empty());
  EXPECT_FALSE(r->root_size_gib);
}

Error recipe_error(const std::string& text) {
  auto r = parse_recipe(text, "r.toml");
  EXPECT_FALSE(r);
  return r ? Error{} : r.error();
}

TEST(Recipe, UnknownKeyNamesLineAndKey) {
  Error e = recipe_error("[base]\nvariant = \"al2023\"\n[[volume]]\nsize_gib = 10\nencryptd = true\n");
  EXPECT_EQ(e.message, "r.toml:5: volume[0].encryptd: unknown key");
  EXPECT_EQ(e.code, 2);
}

TEST(Recipe, WrongTypeNamesLineAndExpectedType) {
  Error e = recipe_error("[[volume]]\nsize_gib = \"1024\"\n");
  EXPECT_EQ(e.message, "r.toml:2: volume[0].size_gib: expected an integer");
}

TEST(Recipe, SizeOutOfRangeForTypeIsRejected) {
  Error e = recipe_error("[[volume]]\ntype = \"st1\"\nsize_gib = 100\n");
  EXPECT_NE(e.message.find("out of range for st1 (125–16384)"), std::string::npos) << e.message;
  e = recipe_error("[[volume]]\nsize_gib = 0\n");
  EXPECT_NE(e.message.find("out of range"), std::string::npos);
}

TEST(Recipe, SyntaxErrorNamesLine) {
  Error e = recipe_error("[base]\nvariant = \n");
  EXPECT_EQ(e.message.rfind("r.toml:2:", 0), 0u) << e.message;
}

TEST(Recipe, UnknownVariantInRecipeIsRejected) {
  Error e = recipe_error("[base]\nvariant = \"al2032\"\n[[volume]]\n");
  EXPECT_NE(e.message.find("unknown variant 'al2032'"), std::string::npos) << e.message;
}

TEST(Recipe, NoVolumeIsRejected) {
  Error e = recipe_error("[base]\nvariant = \"al2\"\n");
  EXPECT_NE(e.message.find("no [[volume]]"), std::string::npos);
}

TEST(Recipe, DeviceClashWithBaseMappingIsRejected) {
  auto r = parse_recipe("[[volume]]\ndevice = \"sdb\"\n", "r.toml");
  ASSERT_TRUE(r);
  aws::ec2::Image base;
  base.image_id = "ami-0123456789abcdef0";
  base.root_device_name = "/dev/xvda";
  aws::ec2::BlockDeviceMapping root, eph;
  root.device_name = "/dev/xvda";
  eph.device_name = "/dev/xvdb";
  eph.virtual_name = "ephemeral0";
  base.block_device_mappings = {root, eph};
  auto s = check_against_base(*r, base);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("clashes with ami-0123456789abcdef0's mapping /dev/xvdb"),
            std::string::npos);
  base.block_device_mappings = {root};
  EXPECT_TRUE(check_against_base(*r, base));
}

TEST(Recipe, EveryProblemIsListedWithItsLineAndKey) {
  Error e = recipe_error(
      "[image]\nname = \"xy!\"\n[[volume]]\nmount = \"/usr\"\nsize_gib = 0\n"
      "encryptd = true\n");
  EXPECT_EQ(e.code, 2);
  EXPECT_EQ(e.message.rfind("r.toml: 4 problems:", 0), 0u) << e.message;
  for (const char* want :
       {"r.toml:2: image.name: '!' is not allowed", "r.toml:4: volume[0].mount:",
        "r.toml:5: volume[0].size_gib:", "r.toml:6: volume[0].encryptd: unknown key"}) {
    EXPECT_NE(e.message.find(want), std::string::npos) << want << " in " << e.message;
  }
}

TEST(Recipe, KmsKeyIdsInEveryFormAwsAcceptsParse) {
  for (const char* id :
       {"1234abcd-12ab-34cd-56ef-1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab",
        "alias/ami-key",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:alias/ami",
        "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"}) {
    auto r = parse_recipe(std::string("[[volume]]\nkms_key_id = \"") + id + "\"\n", "r.toml");
    EXPECT_TRUE(r) << id << ": " << r.error().message;
  }
  for (const char* id : {"not a key!", "alias/", "arn:aws:kms:us-east-1:1:key/x", "1234abcd"}) {
    Error e = recipe_error(std::string("[[volume]]\nkms_key_id = \"") + id + "\"\n");
    EXPECT_NE(e.message.find("volume[0].kms_key_id"), std::string::npos) << id;
  }
}

TEST(Recipe, NamePatternIsCheckedAsWrittenAndOnceExpandedForTheBase) {
  EXPECT_NE(recipe_error("[image]\nname = \"w-{when}\"\n[[volume]]\n")
                .message.find("unknown placeholder {when}"),
            std::string::npos);
  auto r = parse_recipe(
      "[image]\nname = \"" + std::string(100, 'x') + "-{base_name}\"\n[[volume]]\n", "r.toml");
  ASSERT_TRUE(r) << r.error().message;
  aws::ec2::Image base;
  base.image_id = "ami-0123456789abcdef0";
  base.root_device_name = "/dev/xvda";
  base.name = "al2023-ami-ecs-hvm-2023.0.20241217-kernel-6.1-x86_64";
  auto s = check_against_base(*r, base);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("r.toml:2: image.name:"), std::string::npos)
      << s.error().message;
  base.name = "short";
  EXPECT_TRUE(check_against_base(*r, base));
}

TEST(Recipe, DefaultsKeepRequiredByUnsetAndHideExistingOff) {
  auto r = parse_recipe("[[volume]]\n", "r.toml");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->volumes[0].required_by_set);
  EXPECT_FALSE(r->volumes[0].hide_existing);
  r = parse_recipe("[[volume]]\nrequired_by = []\nhide_existing = true\n", "r.toml");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->volumes[0].required_by_set);
  EXPECT_TRUE(r->volumes[0].hide_existing);
}

TEST(Recipe, NamePlaceholdersExpand) {
  aws::ec2::Image base;
  base.image_id = "ami-1";
  base.name = "al2023-ami-ecs";
  EXPECT_EQ(expand_name("w-{base_name}-{date}-{base_id}", base, "20261125-080000"),
            "w-al2023-ami-ecs-20261125-080000-ami-1");
}

}  // namespace
}  // namespace amibake::bake

#include <sys/stat.h>
#include "bake/journal.h"
#include "bake/build.h"

namespace amibake::bake {
namespace {

// A resumed publish step records its pointer again: the state from before the build must
// survive, and cleanup's "restored" must survive a reopen.
TEST(Journal, PointerKeepsTheFirstRecordAndItsRestoreAcrossReopen) {
  auto dir = make_temp_dir("amibake-journal");
  ASSERT_TRUE(dir);
  std::string id = Journal::new_build_id();
  {
    auto j = Journal::create(*dir + "/builds", id, {{"recipe", "r.toml"}});
    ASSERT_TRUE(j) << j.error().message;
    ASSERT_TRUE(j->pointer("launch-template us-east-1 lt-1", {{"previous_default", 1}}));
    ASSERT_TRUE(j->pointer("ssm-parameter us-east-1 /p", {{"previous_value", "ami-1"}}));
    ASSERT_TRUE(j->pointer("launch-template us-east-1 lt-1", {{"previous_default", 2}}));
    ASSERT_TRUE(j->pointer_restored("ssm-parameter us-east-1 /p"));
  }
  auto j = Journal::open(*dir + "/builds", id);
  ASSERT_TRUE(j) << j.error().message;
  const auto& s = j->state();
  EXPECT_EQ(s.pointer_order, (std::vector<std::string>{"launch-template us-east-1 lt-1",
                                                       "ssm-parameter us-east-1 /p"}));
  EXPECT_EQ(s.pointers.at("launch-template us-east-1 lt-1")["previous_default"], 1);
  EXPECT_FALSE(s.pointers.at("launch-template us-east-1 lt-1").value("restored", false));
  EXPECT_TRUE(s.pointers.at("ssm-parameter us-east-1 /p").value("restored", false));
}

// A copy's intent names its region, and replay keeps it after the copy's "created" line:
// cleanup searches those regions by tag for a copy whose id never reached the journal.
TEST(Journal, IntentRegionsSurviveAReopen) {
  auto dir = make_temp_dir("amibake-journal");
  ASSERT_TRUE(dir);
  std::string id = Journal::new_build_id();
  {
    auto j = Journal::create(*dir + "/builds", id, {{"recipe", "r.toml"}});
    ASSERT_TRUE(j) << j.error().message;
    ASSERT_TRUE(j->intent("upload", "snapshot", "tok-home"));
    ASSERT_TRUE(j->intent("copy", "image", "tok-west", "us-west-2"));
    ASSERT_TRUE(j->intent("copy", "image", "tok-eu", "eu-west-1"));
    ASSERT_TRUE(j->created({"image", "ami-2", "eu-west-1", "copy", false, false}));
  }
  auto j = Journal::open(*dir + "/builds", id);
  ASSERT_TRUE(j) << j.error().message;
  EXPECT_EQ(j->state().intent_regions, (std::set<std::string>{"eu-west-1", "us-west-2"}));
}

TEST(Journal, ReplaysResourcesAndStepsAfterReopen) {
  auto dir = make_temp_dir("amibake-journal");
  ASSERT_TRUE(dir);
  std::string id = Journal::new_build_id();
  EXPECT_EQ(id.rfind("b-", 0), 0u);
  {
    auto j = Journal::create(*dir + "/builds", id, {{"recipe", "r.toml"}});
    ASSERT_TRUE(j) << j.error().message;
    ASSERT_TRUE(j->intent("upload", "snapshot", "tok-1"));
    ASSERT_TRUE(j->created({"snapshot", "snap-1", "us-east-1", "upload", false, false}));
    ASSERT_TRUE(j->created({"volume", "vol-1", "us-east-1", "attach", true, false}));
    ASSERT_TRUE(j->step_done("fetch", {{"blocks", 12}}));
    ASSERT_TRUE(j->deleted("vol-1"));
    struct stat st {};
    ASSERT_EQ(stat(j->path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(stat((*dir + "/builds").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
  auto j = Journal::open(*dir + "/builds", id);
  ASSERT_TRUE(j) << j.error().message;
  const auto& s = j->state();
  EXPECT_EQ(s.build_id, id);
  EXPECT_EQ(s.start["recipe"], "r.toml");
  EXPECT_EQ(s.step_results.at("fetch")["blocks"], 12);
  auto live = s.live_resources();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].id, "snap-1");
  EXPECT_EQ(Journal::list(*dir + "/builds"), std::vector<std::string>{id});
}

TEST(Journal, TornLastLineIsIgnoredButDamageElsewhereIsAnError) {
  auto s = Journal::replay(
      "{\"event\":\"start\",\"build_id\":\"b-1\"}\n{\"event\":\"created\",\"id\":\"ami-1\",\"kind\":\"image\"}\n{\"event\":\"crea");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->live_resources().size(), 1u);
  auto bad = Journal::replay("{\"event\":\"start\"}\ngarbage\n{\"event\":\"finished\"}\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("line 2"), std::string::npos);
}

TEST(Journal, LiveResourcesComeNewestFirst) {
  auto s = Journal::replay(
      "{\"event\":\"created\",\"id\":\"snap-1\",\"kind\":\"snapshot\"}\n"
      "{\"event\":\"created\",\"id\":\"ami-1\",\"kind\":\"image\"}\n");
  ASSERT_TRUE(s);
  auto live = s->live_resources();
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].id, "ami-1");  // deregister the image before deleting its snapshot
}

}  // namespace
}  // namespace amibake::bake

namespace amibake::bake {
namespace {

TEST(Journal, JournalTornBeforeItsStartEntryReadsAsEmptyNotACrash) {
  auto s = Journal::replay("{\"event\":\"sta");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->start_string("recipe", "none"), "none");
  EXPECT_TRUE(s->live_resources().empty());
}

TEST(ListBuilds, UnfinishedBuildHasNoAmiAndSaysSo) {
  auto dir = make_temp_dir("amibake-list");
  ASSERT_TRUE(dir);
  auto j = Journal::create(*dir, "b-20261125-000000-000001", {{"recipe", "r.toml"}, {"region", "eu-west-1"}});
  ASSERT_TRUE(j);
  auto builds = list_builds(*dir);
  ASSERT_EQ(builds.size(), 1u);
  EXPECT_EQ(builds[0].state, "unfinished");
  EXPECT_EQ(builds[0].ami, "");
  EXPECT_EQ(builds[0].region, "eu-west-1");
  ASSERT_TRUE(j->finished({{"ami", "ami-1"}}));
  builds = list_builds(*dir);
  EXPECT_EQ(builds[0].state, "finished");
  EXPECT_EQ(builds[0].ami, "ami-1");
}

}  // namespace
}  // namespace amibake::bake

#include "bake/events.h"

namespace amibake::bake {
namespace {

TEST(Events, LiveBarShowsCountsSizeRateAndEta) {
  EXPECT_EQ(render_bar("blocks fetched", 120, 240, 60ull << 20, 2.0, 10),
            "blocks fetched [#####-----] 120/240  60.0 MiB  30 MiB/s  ETA 2 s");
  EXPECT_EQ(render_bar("blocks uploaded", 18, 18, 9ull << 20, 1.0, 4),
            "blocks uploaded [####] 18/18  9.0 MiB  9 MiB/s  ETA 0 s");
  EXPECT_EQ(render_bar("x", 0, 0, 0, 0, 3), "x [###] 0/0  ETA 0 s");
  EXPECT_EQ(render_bar("snapshot percent", 45, 100, 0, 9.0, 4), "snapshot percent [#---] 45/100  ETA 11 s");
}

}  // namespace
}  // namespace amibake::bake

namespace amibake::bake {
namespace {

std::vector<std::string> policy_actions(const std::string& method) {
  std::vector<std::string> out;
  nlohmann::json policy = iam_policy(method);  // the loop below must not outlive it
  for (const auto& a : policy["Statement"][0]["Action"]) out.push_back(a);
  return out;
}

TEST(IamPolicy, ChrootMethodAsksForVolumeActionsAndNoEbsDirectAction) {
  auto chroot = policy_actions("chroot");
  for (const char* a : {"ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume",
                        "ec2:DeleteVolume", "ec2:CreateSnapshot", "ec2:DescribeInstances",
                        "ec2:RegisterImage", "ec2:CopyImage"}) {
    EXPECT_NE(std::find(chroot.begin(), chroot.end(), a), chroot.end()) << a;
  }
  for (const auto& a : chroot) EXPECT_NE(a.rfind("ebs:", 0), 0u) << a;
  auto direct = policy_actions("direct");
  EXPECT_NE(std::find(direct.begin(), direct.end(), "ebs:PutSnapshotBlock"), direct.end());
  EXPECT_EQ(std::find(direct.begin(), direct.end(), "ec2:AttachVolume"), direct.end());
}

}  // namespace
}  // namespace amibake::bake

// ---- [publish] and [retention] (docs/publish.md) ----

namespace amibake::bake {
namespace {

const char* kPublishRecipe = R"([image]
family = "batch-worker"
[publish]
regions = ["us-west-2", "eu-west-1"]
kms_key_ids = { "eu-west-1" = "alias/ami" }
share_accounts = ["111122223333"]
share_organizations = ["arn:aws:organizations::111122223333:organization/o-abc123defg"]
share_ous = ["arn:aws:organizations::111122223333:ou/o-abc123defg/ou-ab12-cdef3456"]
share_snapshots = true
ssm_parameter = "/amibake/batch-worker/image_id"
launch_templates = ["batch-worker"]
set_default_version = false
batch_compute_environments = ["batch-ce", "arn:aws:batch:us-west-2:111122223333:compute-environment/ce2"]
deprecate_after_days = 90
[retention]
keep = 2
min_age_days = 0
[[volume]]
)";

TEST(RecipePublish, EveryKeyOfTheIssueParses) {
  auto r = parse_recipe(kPublishRecipe, "r.toml");
  ASSERT_TRUE(r) << r.error().message;
  const PublishSettings& p = r->publish;
  EXPECT_EQ(r->family, "batch-worker");
  EXPECT_EQ(p.regions, (std::vector<std::string>{"us-west-2", "eu-west-1"}));
  EXPECT_EQ(p.kms_key_ids.at("eu-west-1"), "alias/ami");
  EXPECT_TRUE(p.sharing());
  EXPECT_TRUE(p.share_snapshots);
  EXPECT_EQ(p.ssm_parameter, "/amibake/batch-worker/image_id");
  EXPECT_FALSE(p.set_default_version);
  EXPECT_EQ(p.batch_compute_environments.size(), 2u);
  EXPECT_EQ(p.deprecate_after_days, 90);
  EXPECT_EQ(r->retention.keep, 2);
  EXPECT_EQ(r->retention.min_age_days, 0);
  EXPECT_TRUE(p.any());
}

TEST(RecipePublish, FamilyDefaultsToTheFileStem) {
  auto r = parse_recipe("[[volume]]\n", "recipes/my worker.toml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->family, "my-worker");
  EXPECT_FALSE(r->publish.any());
  EXPECT_EQ(r->retention.keep, 3);
}

TEST(RecipePublish, EveryBadValueIsNamedWithItsLine) {
  Error e = recipe_error(R"([image]
family = "-bad"
[publish]
regions = ["us-west-2", "mars-1", "us-west-2"]
kms_key_ids = { "ap-south-1" = "alias/x", "us-west-2" = "not a key" }
share_accounts = ["12345"]
share_organizations = ["o-abc"]
share_ous = ["ou-1"]
ssm_parameter = "/aws/reserved"
launch_templates = ["x"]
batch_compute_environments = ["bad name!"]
deprecate_after_days = 0
shares_accounts = []
[retention]
keep = 0
min_age_days = -1
[[volume]]
)");
  EXPECT_EQ(e.code, 2);
  for (const char* want :
       {"r.toml:2: image.family:", "r.toml:4: publish.regions: 'mars-1' is not a region name",
        "publish.regions: 'us-west-2' is listed twice",
        "publish.kms_key_ids: 'ap-south-1' is not one of publish.regions",
        "publish.kms_key_ids: us-west-2: 'not a key'",
        "r.toml:6: publish.share_accounts: '12345' is not a 12-digit account id",
        "r.toml:7: publish.share_organizations:", "r.toml:8: publish.share_ous:",
        "r.toml:9: publish.ssm_parameter: names starting with 'aws' or 'ssm' are reserved",
        "r.toml:10: publish.launch_templates: 'x' is not a launch template name",
        "r.toml:11: publish.batch_compute_environments: 'bad name!'",
        "r.toml:12: publish.deprecate_after_days: 0 is out of range",
        "r.toml:13: publish.shares_accounts: unknown key",
        "r.toml:15: retention.keep: 0 would let prune remove every AMI",
        "r.toml:16: retention.min_age_days: -1 is out of range"}) {
    EXPECT_NE(e.message.find(want), std::string::npos) << want << "\n in " << e.message;
  }
}

TEST(RecipePublish, SnapshotSharingNeedsSomeoneToShareWithAndIdsNeedOneRegion) {
  Error e = recipe_error("[publish]\nshare_snapshots = true\n[[volume]]\n");
  EXPECT_NE(e.message.find("publish.share_snapshots: true, but there is nothing to share with"),
            std::string::npos)
      << e.message;
  Error ids = recipe_error(
      "[publish]\nregions = [\"eu-west-1\"]\nlaunch_templates = [\"lt-0123456789abcdef0\"]\n[[volume]]\n");
  EXPECT_NE(ids.message.find("a launch template id (lt-...) exists in one region only"),
            std::string::npos)
      << ids.message;
}

TEST(RecipePublish, IamPolicyAddsExactlyWhatPublishNeeds) {
  auto r = parse_recipe(kPublishRecipe, "r.toml");
  ASSERT_TRUE(r) << r.error().message;
  auto actions = publish_actions(*r);
  for (const char* a : {"ec2:CopyImage", "ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute",
                        "ssm:PutParameter", "ec2:CreateLaunchTemplateVersion",
                        "batch:UpdateComputeEnvironment", "ec2:EnableImageDeprecation",
                        "ec2:DeregisterImage", "kms:DescribeKey"}) {
    EXPECT_NE(std::find(actions.begin(), actions.end(), a), actions.end()) << a;
  }
  // set_default_version = false: the template's default is never changed.
  EXPECT_EQ(std::find(actions.begin(), actions.end(), "ec2:ModifyLaunchTemplate"), actions.end());
  auto none = parse_recipe("[[volume]]\n", "r.toml");
  ASSERT_TRUE(none);
  EXPECT_TRUE(publish_actions(*none).empty());
}

}  // namespace
}  // namespace amibake::bake
