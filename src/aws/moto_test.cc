// Integration tests against moto (python3 -m moto.server), through the real AwsClient:
// libcurl transport, SigV4 signing, endpoint override, error parsing.
// (Owned by helper "ops"; core's own moto test is sts_moto_test.cc.)
//
// Each suite starts its own moto on a free loopback port, waits until it answers and
// kills it at the end; without moto the tests skip with the reason. Two servers:
//   MotoTest      no signature checking: EC2, SSM, STS and EBS round trips.
//   MotoAuthTest  INITIAL_NO_AUTH_ACTION_COUNT=3: the first three calls create an IAM
//                 user, its admin policy and an access key; after that moto verifies
//                 every signature, so our signed requests must be exactly right.
// Where moto differs from AWS the test says so in a comment rather than pretending.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "aws/answer.h"
#include "aws/ebs.h"
#include "aws/ec2.h"
#include "aws/query.h"
#include "aws/ssm.h"
#include "aws/sts.h"
#include "aws/waiter.h"
#include "base/subprocess.h"

namespace amibake::aws {
namespace {

using namespace std::chrono_literals;

// ---- the moto process ----

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool port_answers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

class MotoServer {
 public:
  // Starts moto with `extra_env` ("NAME=value"); nullptr and `why` set when it cannot.
  static std::unique_ptr<MotoServer> start(const std::vector<std::string>& extra_env,
                                           std::string* why) {
    RunOptions probe_options;
    probe_options.timeout = 60s;
    auto probe = run_process({"python3", "-c", "import moto.server"}, probe_options);
    if (!probe || probe->exit_code != 0) {
      *why = "moto is not installed (python3 -c 'import moto.server' failed)";
      return nullptr;
    }
    auto server = std::unique_ptr<MotoServer>(new MotoServer());
    server->port_ = free_loopback_port();
    server->log_ = "/tmp/amibake-moto-" + std::to_string(getpid()) + "-" +
                   std::to_string(server->port_) + ".log";
    const std::string port = std::to_string(server->port_);
    pid_t pid = fork();
    if (pid == 0) {
      int log = open(server->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
      }
      setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
      for (const std::string& kv : extra_env) putenv(strdup(kv.c_str()));
      execlp("python3", "python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", port.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    server->pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (port_answers(server->port_)) return server;
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        server->pid_ = -1;
        *why = "moto exited before answering; see " + server->log_;
        server->log_.clear();  // keep it for the message
        return nullptr;
      }
      std::this_thread::sleep_for(100ms);
    }
    *why = "moto did not answer on port " + port + " within 60 s; see " + server->log_;
    server->stop();
    server->log_.clear();  // keep it for the message
    return nullptr;
  }

  // Stops the server we started (by its pid only): SIGTERM, then SIGKILL after 5 s.
  // Its log is removed; a server that failed to start is never returned, so its log
  // stays for the message that names it.
  ~MotoServer() {
    stop();
    if (!log_.empty()) unlink(log_.c_str());
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return void(pid_ = -1);
      std::this_thread::sleep_for(100ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // A client signing with `key_id`/`secret` (moto accepts any key when not checking).
  std::unique_ptr<AwsClient> client(const std::string& key_id, const std::string& secret) const {
    Credentials c;
    c.access_key_id = key_id;
    c.secret_access_key = secret;
    c.source = "test";
    return AwsClient::for_endpoint(url(), c, "us-east-1");
  }

 private:
  MotoServer() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

// Fast waits: moto's resources change state at once.
WaitOptions quick_wait() {
  WaitOptions o;
  o.timeout = 30s;
  o.interval = 200ms;
  return o;
}

// RunInstances is not one of the operations the program needs, so the test encodes
// the few fields it uses itself; only the instance id of the answer is read.
Result<std::string> run_instance(AwsClient& c, const std::string& image_id) {
  QueryForm f("RunInstances", kEc2ApiVersion);
  f.add("ImageId", image_id);
  f.add("InstanceType", "t3.micro");
  f.add("MinCount", "1");
  f.add("MaxCount", "1");
  AMIBAKE_ASSIGN(AwsResponse resp,
                 c.send(make_query_request("ec2", Protocol::kEc2, "RunInstances", f, false)));
  AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer("ec2", "RunInstances", resp.body));
  std::vector<pugi::xml_node> instances = xml_items(a.root(), "instancesSet");
  if (instances.empty()) return make_error("RunInstances: no instance in the answer");
  return std::string(xml_child(instances.front(), "instanceId").child_value());
}

// ---- without signature checking ----

class MotoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    server_ = MotoServer::start({}, &why_).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << why_;
    client_ = server_->client("AKIDMOTOTEST", "moto-test-secret-not-checked");
  }
  // Returns one AMI of moto's catalog of Amazon images.
  ec2::Image catalog_image() {
    ec2::DescribeImagesRequest r;
    r.owners = {"amazon"};
    auto images = ec2::describe_images(*client_, r);
    EXPECT_TRUE(images) << images.error().describe();
    if (!images || images->empty()) return {};
    return images->front();
  }

  static MotoServer* server_;
  static std::string why_;
  std::unique_ptr<AwsClient> client_;
};
MotoServer* MotoTest::server_ = nullptr;
std::string MotoTest::why_;

TEST_F(MotoTest, DescribeImagesReadsTheAmazonCatalog) {
  ec2::DescribeImagesRequest r;
  r.owners = {"amazon"};
  auto images = ec2::describe_images(*client_, r);
  ASSERT_TRUE(images) << images.error().describe();
  ASSERT_FALSE(images->empty());
  for (const ec2::Image& i : *images) {
    EXPECT_EQ(i.image_id.rfind("ami-", 0), 0u) << i.image_id;
    EXPECT_FALSE(i.architecture.empty()) << i.image_id;
  }
  const ec2::Image& first = images->front();
  auto again = ec2::describe_image(*client_, first.image_id);
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(again->name, first.name);
  EXPECT_EQ(again->root_device_name, first.root_device_name);
}

TEST_F(MotoTest, DescribeImagesFiltersByName) {
  ec2::Image base = catalog_image();
  ASSERT_FALSE(base.name.empty());
  ec2::DescribeImagesRequest r;
  r.owners = {"amazon"};
  r.filters = {{"name", {base.name}}};
  auto images = ec2::describe_images(*client_, r);
  ASSERT_TRUE(images) << images.error().describe();
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ(images->front().image_id, base.image_id);
}

TEST_F(MotoTest, UnknownImageIsNotFoundWithCode) {
  auto image = ec2::describe_image(*client_, "ami-00000000000000000");
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().aws_code, "InvalidAMIID.NotFound") << image.error().describe();
}

TEST_F(MotoTest, SsmHasTheEcsPublicParameter) {
  // moto ships a snapshot of the ECS-optimized public parameters (ids of real AWS AMIs
  // that are not in moto's own image catalog).
  auto p = ssm::get_parameter(
      *client_, "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id");
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(p->value.rfind("ami-", 0), 0u) << p->value;
}

TEST_F(MotoTest, EveryEcsVariantResolvesToADescribableImage) {
  // The flow of `amibake base`: SSM public parameter -> AMI id -> DescribeImages.
  // moto carries both the parameters and the ECS-optimized images they name.
  struct Variant {
    const char* path;
    const char* architecture;
  };
  const std::string prefix = "/aws/service/ecs/optimized-ami/";
  const std::vector<Variant> variants = {
      {"amazon-linux-2023/recommended/image_id", "x86_64"},
      {"amazon-linux-2023/arm64/recommended/image_id", "arm64"},
      {"amazon-linux-2023/gpu/recommended/image_id", "x86_64"},
      {"amazon-linux-2023/neuron/recommended/image_id", "x86_64"},
      {"amazon-linux-2/recommended/image_id", "x86_64"},
      {"amazon-linux-2/arm64/recommended/image_id", "arm64"},
      {"amazon-linux-2/gpu/recommended/image_id", "x86_64"},
      {"amazon-linux-2/kernel-5.10/recommended/image_id", "x86_64"},
  };
  std::vector<std::string> names;
  for (const Variant& v : variants) names.push_back(prefix + v.path);
  auto params = ssm::get_parameters(*client_, names);
  ASSERT_TRUE(params) << params.error().describe();
  EXPECT_TRUE(params->invalid_parameters.empty());
  ASSERT_EQ(params->parameters.size(), variants.size());
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.path);
    auto p = ssm::get_parameter(*client_, prefix + v.path);
    ASSERT_TRUE(p) << p.error().describe();
    auto image = ec2::describe_image(*client_, p->value);
    ASSERT_TRUE(image) << image.error().describe();
    EXPECT_EQ(image->architecture, v.architecture);
    EXPECT_EQ(image->image_owner_alias, "amazon");
    EXPECT_NE(image->name.find("ecs"), std::string::npos) << image->name;
    EXPECT_FALSE(image->root_snapshot_id().empty());
  }
}

TEST_F(MotoTest, SsmPutGetAndListByPath) {
  ssm::PutParameterRequest put;
  put.name = "/amibake/test/latest";
  put.value = "ami-0123456789abcdef0";
  put.overwrite = true;
  auto v = ssm::put_parameter(*client_, put);
  ASSERT_TRUE(v) << v.error().describe();
  EXPECT_GE(v->version, 1);
  auto got = ssm::get_parameter(*client_, put.name);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(got->value, put.value);
  auto many = ssm::get_parameters(*client_, {put.name, "/amibake/test/absent"});
  ASSERT_TRUE(many) << many.error().describe();
  ASSERT_EQ(many->parameters.size(), 1u);
  EXPECT_EQ(many->invalid_parameters, std::vector<std::string>{"/amibake/test/absent"});
  auto listed = ssm::get_parameters_by_path(*client_, {"/amibake/test", true, false, {}});
  ASSERT_TRUE(listed) << listed.error().describe();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name, put.name);
}

TEST_F(MotoTest, SsmMissingParameterIsParameterNotFound) {
  auto p = ssm::get_parameter(*client_, "/amibake/does/not/exist");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().aws_code, "ParameterNotFound") << p.error().describe();
}

TEST_F(MotoTest, StsGetCallerIdentity) {
  auto id = sts::get_caller_identity(*client_);
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_EQ(id->account, "123456789012");
  EXPECT_FALSE(id->arn.empty());
}

TEST_F(MotoTest, ZonesAndEncryptionDefault) {
  auto zones = ec2::describe_availability_zones(*client_);
  ASSERT_TRUE(zones) << zones.error().describe();
  ASSERT_FALSE(zones->empty());
  EXPECT_EQ(zones->front().region_name, "us-east-1");
  auto enc = ec2::get_ebs_encryption_by_default(*client_);
  ASSERT_TRUE(enc) << enc.error().describe();
  EXPECT_FALSE(enc->enabled);
}

TEST_F(MotoTest, VolumeSnapshotImageRoundTrip) {
  const Tag build{"amibake:build-id", "moto-round-trip"};
  // Volume with tags, found again by tag filter.
  ec2::CreateVolumeRequest cv;
  cv.availability_zone = "us-east-1a";
  cv.size = 8;
  cv.volume_type = "gp3";
  cv.tag_specifications = {{"volume", {build}}};
  auto vol = ec2::create_volume(*client_, cv);
  ASSERT_TRUE(vol) << vol.error().describe();
  auto avail = wait_volume_available(*client_, vol->volume_id, quick_wait());
  ASSERT_TRUE(avail) << avail.error().describe();
  EXPECT_EQ(avail->size, 8);
  ec2::DescribeVolumesRequest dv;
  dv.filters = {tag_filter(build.key, {build.value})};
  auto found = ec2::describe_volumes(*client_, dv);
  ASSERT_TRUE(found) << found.error().describe();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->front().volume_id, vol->volume_id);

  // Snapshot of it, waited for with progress.
  auto snap = ec2::create_snapshot(*client_, {vol->volume_id, "root", {{"snapshot", {build}}}});
  ASSERT_TRUE(snap) << snap.error().describe();
  WaitOptions w = quick_wait();
  int progress_calls = 0;
  w.on_progress = [&](const WaitState&) { ++progress_calls; };
  auto done = wait_snapshot_completed(*client_, snap->snapshot_id, w);
  ASSERT_TRUE(done) << done.error().describe();
  EXPECT_GE(progress_calls, 1);
  EXPECT_EQ(ec2::find_tag(done->tags, build.key), build.value);

  // Image from the snapshot plus a blank 1 TiB data volume, every attribute set.
  ec2::RegisterImageRequest ri;
  ri.name = "amibake-moto-round-trip";
  ri.description = "baked by the moto test";
  ri.architecture = "x86_64";
  ri.root_device_name = "/dev/xvda";
  ri.virtualization_type = "hvm";
  ri.ena_support = true;
  ri.sriov_net_support = "simple";
  ri.boot_mode = "uefi";
  ri.tpm_support = "v2.0";
  ri.imds_support = "v2.0";
  ri.block_device_mappings = {
      {"/dev/xvda", "", false,
       ec2::EbsBlockDevice{snap->snapshot_id, 8, "gp3", {}, {}, {}, "", true}},
      {"/dev/xvdb", "", false, ec2::EbsBlockDevice{"", 1024, "gp3", {}, {}, {}, "", true}}};
  ri.tag_specifications = {{"image", {build}}};
  auto image_id = ec2::register_image(*client_, ri);
  ASSERT_TRUE(image_id) << image_id.error().describe();
  auto image = wait_image_available(*client_, *image_id, quick_wait());
  ASSERT_TRUE(image) << image.error().describe();
  EXPECT_EQ(image->name, ri.name);
  EXPECT_EQ(image->description, ri.description);
  // moto's RegisterImage keeps only Name and Description (it invents /dev/sda1 and a
  // fresh snapshot), so mappings and attributes cannot round-trip here; their
  // encoding is checked byte for byte against botocore in ec2_test.cc instead.
  EXPECT_FALSE(image->root_snapshot_id().empty());

  // Tags, by tag and by DescribeTags. moto ignores RegisterImage's TagSpecifications,
  // so the build tag is (re)applied with CreateTags, as the bake does after the fact.
  ASSERT_TRUE(ec2::create_tags(*client_, {*image_id}, {build, {"stage", "tested"}}));
  auto tags = ec2::describe_tags(*client_, {{"resource-id", {*image_id}}});
  ASSERT_TRUE(tags) << tags.error().describe();
  bool saw_stage = false;
  for (const auto& t : *tags) saw_stage |= (t.key == "stage" && t.value == "tested");
  EXPECT_TRUE(saw_stage);
  ec2::DescribeImagesRequest by_tag;
  by_tag.owners = {"self"};
  by_tag.filters = {tag_filter(build.key, {build.value}), tag_key_filter("stage")};
  auto tagged = ec2::describe_images(*client_, by_tag);
  ASSERT_TRUE(tagged) << tagged.error().describe();
  ASSERT_EQ(tagged->size(), 1u);
  EXPECT_EQ(tagged->front().image_id, *image_id);

  // Attributes: share with an account and read it back; read the description.
  ec2::ModifyImageAttributeRequest share;
  share.image_id = *image_id;
  share.launch_permission_add = {{"111122223333", "", "", ""}};
  ASSERT_TRUE(ec2::modify_image_attribute(*client_, share));
  auto perms = ec2::describe_image_attribute(*client_, *image_id, "launchPermission");
  ASSERT_TRUE(perms) << perms.error().describe();
  ASSERT_EQ(perms->launch_permissions.size(), 1u);
  EXPECT_EQ(perms->launch_permissions[0].user_id, "111122223333");
  auto desc = ec2::describe_image_attribute(*client_, *image_id, "description");
  ASSERT_TRUE(desc) << desc.error().describe();
  EXPECT_EQ(desc->description, std::optional<std::string>(ri.description));
  // EnableImageDeprecation is not implemented by moto 5.2 (HTTP 500); it is covered by
  // Ec2Call.EnableImageDeprecationSendsTheTime with a scripted transport.

  // Clean up, and see it gone.
  ASSERT_TRUE(ec2::deregister_image(*client_, *image_id));
  ASSERT_TRUE(ec2::delete_snapshot(*client_, snap->snapshot_id));
  ASSERT_TRUE(ec2::delete_volume(*client_, vol->volume_id));
  ec2::DescribeVolumesRequest gone;
  gone.volume_ids = {vol->volume_id};
  auto after = ec2::describe_volumes(*client_, gone);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().aws_code, "InvalidVolume.NotFound");
}

TEST_F(MotoTest, AttachAndDetachVolumeToAnInstance) {
  ec2::Image base = catalog_image();
  ASSERT_FALSE(base.image_id.empty());
  auto instance_id = run_instance(*client_, base.image_id);
  ASSERT_TRUE(instance_id) << instance_id.error().describe();
  auto instances = ec2::describe_instances(*client_, {{*instance_id}, {}, {}});
  ASSERT_TRUE(instances) << instances.error().describe();
  ASSERT_EQ(instances->size(), 1u);
  const std::string zone = instances->front().availability_zone;
  ASSERT_FALSE(zone.empty());

  ec2::CreateVolumeRequest cv;
  cv.availability_zone = zone;
  cv.size = 4;
  auto vol = ec2::create_volume(*client_, cv);
  ASSERT_TRUE(vol) << vol.error().describe();
  ASSERT_TRUE(wait_volume_available(*client_, vol->volume_id, quick_wait()));
  auto att = ec2::attach_volume(*client_, vol->volume_id, *instance_id, "/dev/sdf");
  ASSERT_TRUE(att) << att.error().describe();
  auto attached = wait_volume_attached(*client_, vol->volume_id, *instance_id, quick_wait());
  ASSERT_TRUE(attached) << attached.error().describe();
  EXPECT_EQ(attached->attachments.front().device, "/dev/sdf");
  auto det = ec2::detach_volume(*client_, {vol->volume_id, *instance_id, "", {}});
  ASSERT_TRUE(det) << det.error().describe();
  auto free_again = wait_volume_available(*client_, vol->volume_id, quick_wait());
  ASSERT_TRUE(free_again) << free_again.error().describe();
  EXPECT_TRUE(free_again->attachments.empty());
  EXPECT_TRUE(ec2::delete_volume(*client_, vol->volume_id));
}

TEST_F(MotoTest, CopyImageAndSnapshot) {
  ec2::Image base = catalog_image();
  ASSERT_FALSE(base.image_id.empty());
  ec2::CopyImageRequest ci;
  ci.source_image_id = base.image_id;
  ci.source_region = "us-east-1";
  ci.name = "amibake-owned-copy";
  ci.client_token = "amibake-moto-copy-1";
  auto copy = ec2::copy_image(*client_, ci);
  ASSERT_TRUE(copy) << copy.error().describe();
  auto image = wait_image_available(*client_, *copy, quick_wait());
  ASSERT_TRUE(image) << image.error().describe();
  EXPECT_EQ(image->name, "amibake-owned-copy");

  ec2::CreateVolumeRequest cv;
  cv.availability_zone = "us-east-1a";
  cv.size = 1;
  auto vol = ec2::create_volume(*client_, cv);
  ASSERT_TRUE(vol) << vol.error().describe();
  auto snap = ec2::create_snapshot(*client_, {vol->volume_id, "", {}});
  ASSERT_TRUE(snap) << snap.error().describe();
  auto snap_copy =
      ec2::copy_snapshot(*client_, {snap->snapshot_id, "us-east-1", "copy", {}, "", {}});
  ASSERT_TRUE(snap_copy) << snap_copy.error().describe();
  ec2::DescribeSnapshotsRequest ds;
  ds.snapshot_ids = {*snap_copy};
  auto described = ec2::describe_snapshots(*client_, ds);
  ASSERT_TRUE(described) << described.error().describe();
  ASSERT_EQ(described->size(), 1u);
  EXPECT_EQ(described->front().description, "copy");
}

TEST_F(MotoTest, EbsDirectWriteThenReadBack) {
  ebs::StartSnapshotRequest start;
  start.volume_size = 1;
  start.description = "amibake ebs direct";
  start.tags = {{"amibake:build-id", "moto-ebs"}};
  start.client_token = "amibake-moto-ebs-1";
  auto snap = ebs::start_snapshot(*client_, start);
  ASSERT_TRUE(snap) << snap.error().describe();
  ASSERT_FALSE(snap->snapshot_id.empty());

  std::vector<std::string> blocks = {std::string(ebs::kBlockSize, 'a'),
                                     std::string(ebs::kBlockSize, '\0')};
  blocks[1][12345] = 'z';
  std::vector<std::string> sums;
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto sum = ebs::put_snapshot_block(
        *client_, {snap->snapshot_id, static_cast<int64_t>(i * 7), blocks[i], "", 50});
    ASSERT_TRUE(sum) << sum.error().describe();
    sums.push_back(*sum);
  }
  auto aggregate = ebs::linear_aggregate_checksum(sums);
  ASSERT_TRUE(aggregate);
  auto status = ebs::complete_snapshot(*client_, {snap->snapshot_id, 2, *aggregate});
  ASSERT_TRUE(status) << status.error().describe();
  EXPECT_EQ(*status, "completed");

  // moto answers BlockIndex as a string here: the reader must accept it.
  auto listed = ebs::list_snapshot_blocks(*client_, {snap->snapshot_id, {}, {}});
  ASSERT_TRUE(listed) << listed.error().describe();
  ASSERT_EQ(listed->blocks.size(), 2u);
  EXPECT_EQ(listed->blocks[0].index, 0);
  EXPECT_EQ(listed->blocks[1].index, 7);
  // AWS answers BlockSize 524288; moto answers 512. Only its presence is checked.
  EXPECT_GT(listed->block_size, 0);
  for (size_t i = 0; i < 2; ++i) {
    auto data = ebs::get_snapshot_block(*client_, snap->snapshot_id, listed->blocks[i].index,
                                        listed->blocks[i].token);
    ASSERT_TRUE(data) << data.error().describe();
    EXPECT_TRUE(data->data == blocks[i]) << "block " << i << " differs";
  }

  // A second snapshot with block 0 equal and block 7 different: one changed block.
  // (moto cannot list changed blocks without a first snapshot: it answers HTTP 500.)
  auto snap2 = ebs::start_snapshot(*client_, {1, "", {}, "", "", {}, "", {}});
  ASSERT_TRUE(snap2) << snap2.error().describe();
  blocks[1][0] = 'y';
  ASSERT_TRUE(ebs::put_snapshot_block(*client_, {snap2->snapshot_id, 0, blocks[0], "", {}}));
  ASSERT_TRUE(ebs::put_snapshot_block(*client_, {snap2->snapshot_id, 7, blocks[1], "", {}}));
  auto changed =
      ebs::list_changed_blocks(*client_, {snap->snapshot_id, snap2->snapshot_id, {}, {}});
  ASSERT_TRUE(changed) << changed.error().describe();
  ASSERT_EQ(changed->blocks.size(), 1u);
  EXPECT_EQ(changed->blocks[0].index, 7);
  EXPECT_FALSE(changed->blocks[0].first_token.empty());
  EXPECT_FALSE(changed->blocks[0].second_token.empty());
}

// ---- with signature checking ----

class MotoAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    // Calls 1-3 (CreateUser, PutUserPolicy, CreateAccessKey) are not checked.
    server_ = MotoServer::start({"INITIAL_NO_AUTH_ACTION_COUNT=3"}, &why_).release();
    if (server_) create_user_key();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << why_;
    ASSERT_FALSE(key_id_.empty()) << "setting up the IAM user failed: " << why_;
  }

  // Sends one IAM Query call (IAM is not an operation the program needs).
  static Result<AwsResponse> iam(AwsClient& c, const std::string& action,
                                 const std::vector<std::pair<std::string, std::string>>& params) {
    QueryForm f(action, "2010-05-08");
    for (const auto& [k, v] : params) f.add(k, v);
    return c.send(make_query_request("iam", Protocol::kQuery, action, f, false));
  }

  static void create_user_key() {
    auto c = server_->client("AKIDBOOTSTRAP", "bootstrap-secret-not-checked");
    auto user = iam(*c, "CreateUser", {{"UserName", "amibake-ci"}});
    if (!user) return void(why_ = user.error().describe());
    const std::string admin =
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})";
    auto policy =
        iam(*c, "PutUserPolicy",
            {{"UserName", "amibake-ci"}, {"PolicyName", "all"}, {"PolicyDocument", admin}});
    if (!policy) return void(why_ = policy.error().describe());
    auto key = iam(*c, "CreateAccessKey", {{"UserName", "amibake-ci"}});
    if (!key) return void(why_ = key.error().describe());
    auto doc = parse_xml_answer("iam", "CreateAccessKey", key->body);
    if (!doc) return void(why_ = doc.error().describe());
    pugi::xml_node k = xml_child(xml_child(doc->root(), "CreateAccessKeyResult"), "AccessKey");
    key_id_ = xml_child(k, "AccessKeyId").child_value();
    secret_ = xml_child(k, "SecretAccessKey").child_value();
  }

  static MotoServer* server_;
  static std::string why_, key_id_, secret_;
};
MotoServer* MotoAuthTest::server_ = nullptr;
std::string MotoAuthTest::why_, MotoAuthTest::key_id_, MotoAuthTest::secret_;

TEST_F(MotoAuthTest, SignedEc2AndSsmAndStsRequestsAreAccepted) {
  auto c = server_->client(key_id_, secret_);
  ec2::DescribeImagesRequest r;
  r.owners = {"amazon"};
  auto images = ec2::describe_images(*c, r);
  ASSERT_TRUE(images) << images.error().describe();
  EXPECT_FALSE(images->empty());
  ssm::PutParameterRequest put;
  put.name = "/amibake/auth";
  put.value = "v";
  put.overwrite = true;
  auto p = ssm::put_parameter(*c, put);
  ASSERT_TRUE(p) << p.error().describe();
  auto id = sts::get_caller_identity(*c);
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_NE(id->arn.find("amibake-ci"), std::string::npos) << id->arn;
}

TEST_F(MotoAuthTest, SignedEbsRequestsIncludingUnsignedPayloadAreAccepted) {
  auto c = server_->client(key_id_, secret_);
  auto snap = ebs::start_snapshot(*c, {1, "", {}, "", "", {}, "", {}});
  ASSERT_TRUE(snap) << snap.error().describe();
  const std::string block(ebs::kBlockSize, 'q');
  auto put = ebs::put_snapshot_block(*c, {snap->snapshot_id, 0, block, "", {}});
  ASSERT_TRUE(put) << put.error().describe();
  // Not checked here: the EBS calls without a body (ListSnapshotBlocks,
  // GetSnapshotBlock, CompleteSnapshot, ListChangedBlocks). With signature checking on,
  // moto 5.2 rejects them even when boto3 itself signs them (SignatureDoesNotMatch;
  // tried by hand with boto3 against the same moto), so their failure here would say
  // nothing about our signer. They run without signature checking in
  // MotoTest.EbsDirectWriteThenReadBack.
}

TEST_F(MotoAuthTest, WrongSecretIsAClearAuthenticationError) {
  auto c = server_->client(key_id_, secret_ + "x");
  auto images = ec2::describe_images(*c, {});
  ASSERT_FALSE(images);
  const Error& e = images.error();
  EXPECT_EQ(e.aws_code, "AuthFailure") << e.describe();  // EC2's code for a bad signature
  EXPECT_EQ(e.http_status, 401);
  EXPECT_NE(e.message.find("DescribeImages"), std::string::npos) << e.message;
  EXPECT_FALSE(e.hint.empty());
  // The secret never appears in what the user sees.
  EXPECT_EQ(e.describe().find(secret_), std::string::npos);

  // SSM: moto answers authentication errors of JSON-protocol services as XML
  // (<ErrorResponse><Errors><Error>), where real SSM answers JSON. The client's JSON
  // error parser does not read XML, so aws_code stays empty here; what must hold is
  // that the call fails with 403 and the message carries moto's code.
  auto p = ssm::get_parameter(*c, "/amibake/auth");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status, 403);
  EXPECT_NE(p.error().message.find("SignatureDoesNotMatch"), std::string::npos)
      << p.error().describe();
  EXPECT_EQ(p.error().describe().find(secret_), std::string::npos);
}

TEST_F(MotoAuthTest, UnknownAccessKeyIsRejected) {
  auto c = server_->client("AKIAUNKNOWNKEY000000", secret_);
  auto images = ec2::describe_images(*c, {});
  ASSERT_FALSE(images);
  EXPECT_EQ(images.error().aws_code, "AuthFailure") << images.error().describe();
  EXPECT_FALSE(images.error().hint.empty());
  auto p = ssm::get_parameter(*c, "/amibake/auth");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status, 403);
  EXPECT_NE(p.error().message.find("InvalidClientTokenId"), std::string::npos)
      << p.error().describe();
}

}  // namespace
}  // namespace amibake::aws
