// EBS direct semantics of awsemu, through its HTTP interface.
#include <gtest/gtest.h>

#include <thread>

#include "aws/sigv4.h"
#include "emulator/test_support.h"

namespace amibake::emu {
namespace {

using testing::block_of;
using testing::Response;
using testing::TestEmu;

Options instant() {
  Options o;
  o.speed = 0;
  return o;
}

std::vector<int64_t> listed(TestEmu& emu, const std::string& snap, const std::string& query = "") {
  Response r = emu.ebs("GET", "/snapshots/" + snap + "/blocks" + query);
  std::vector<int64_t> out;
  auto j = r.json();
  if (r.status != 200 || !j.is_object()) return {-1};
  for (const auto& b : j["Blocks"]) out.push_back(b["BlockIndex"]);
  return out;
}

std::string token_of(TestEmu& emu, const std::string& snap, int64_t index) {
  auto j = emu.ebs("GET", "/snapshots/" + snap + "/blocks").json();
  for (const auto& b : j["Blocks"]) {
    if (b["BlockIndex"] == index) return b["BlockToken"];
  }
  return "";
}

Response get(TestEmu& emu, const std::string& snap, int64_t index) {
  return emu.ebs("GET", "/snapshots/" + snap + "/blocks/" + std::to_string(index) +
                            "?blockToken=" + aws::sigv4::uri_encode(token_of(emu, snap, index)));
}

// Makes a completed snapshot with blocks `fills` (index -> fill byte).
std::string completed(TestEmu& emu, const std::map<int64_t, char>& fills, const std::string& parent = "") {
  std::string snap = emu.start_snapshot(1, parent);
  for (const auto& [i, fill] : fills) EXPECT_EQ(emu.put_block(snap, i, fill).status, 201);
  EXPECT_EQ(emu.complete(snap, static_cast<int64_t>(fills.size())).status, 202);
  return snap;
}

TEST(EbsDirect, RoundTripReturnsTheBytesPut) {
  TestEmu emu(instant());
  std::string snap = completed(emu, {{4, 'x'}});
  Response r = get(emu, snap, 4);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, block_of('x'));
  EXPECT_EQ(r.headers["x-amz-checksum"], aws::sha256_base64(block_of('x')));
  EXPECT_EQ(r.headers["x-amz-checksum-algorithm"], "SHA256");
  EXPECT_EQ(r.headers["x-amz-data-length"], "524288");
}

TEST(EbsDirect, ChildInheritsUnwrittenBlocksFromParent) {
  TestEmu emu(instant());
  std::string parent = completed(emu, {{0, 'p'}, {1, 'q'}});
  std::string child = completed(emu, {{2, 'c'}}, parent);
  EXPECT_EQ(listed(emu, child), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(get(emu, child, 1).body, block_of('q'));
  EXPECT_EQ(get(emu, child, 2).body, block_of('c'));
}

TEST(EbsDirect, WritingZerosClearsAParentBlock) {
  TestEmu emu(instant());
  std::string parent = completed(emu, {{0, 'p'}, {1, 'q'}});
  std::string child = completed(emu, {{1, 0}}, parent);
  EXPECT_EQ(listed(emu, child), (std::vector<int64_t>{0}));
  EXPECT_EQ(listed(emu, parent), (std::vector<int64_t>{0, 1}));  // parent untouched
}

TEST(EbsDirect, PutWithWrongChecksumIsRejected) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  std::string data = block_of('a');
  Response r = emu.ebs("PUT", "/snapshots/" + snap + "/blocks/0", data,
                       {{"x-amz-data-length", "524288"},
                        {"x-amz-checksum", aws::sha256_base64(block_of('b'))},
                        {"x-amz-checksum-algorithm", "SHA256"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "ValidationException");
}

TEST(EbsDirect, LinearAggregateIsShaOfRawDigestsInIndexOrder) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  ASSERT_EQ(emu.put_block(snap, 7, 'b').status, 201);  // out of order on purpose
  ASSERT_EQ(emu.put_block(snap, 3, 'a').status, 201);
  std::string right = aws::sha256_base64(aws::sha256_raw(block_of('a')) + aws::sha256_raw(block_of('b')));
  std::string wrong = aws::sha256_base64(aws::sha256_raw(block_of('b')) + aws::sha256_raw(block_of('a')));
  Response bad = emu.complete(snap, 2, wrong);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error_code(), "ValidationException");
  Response good = emu.complete(snap, 2, right);
  EXPECT_EQ(good.status, 202) << good.body;
  EXPECT_EQ(good.json()["Status"], "completed");
}

TEST(EbsDirect, WrongChangedBlocksCountIsRejected) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  ASSERT_EQ(emu.put_block(snap, 0, 'a').status, 201);
  ASSERT_EQ(emu.put_block(snap, 0, 'b').status, 201);  // same block twice counts once
  EXPECT_EQ(emu.complete(snap, 2).status, 400);
  EXPECT_EQ(emu.complete(snap, 1).status, 202);
}

TEST(EbsDirect, TimeoutMovesUnfinishedSnapshotToError) {
  Options o;
  o.speed = 0.003;  // Timeout 10 min -> 1.8 s
  TestEmu emu(o);
  std::string snap = emu.start_snapshot(1, "", 10);
  ASSERT_EQ(emu.put_block(snap, 0, 'a').status, 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  Response d = emu.ec2("DescribeSnapshots", {{"SnapshotId.1", snap}});
  EXPECT_EQ(d.xml("status"), "error");
  EXPECT_EQ(emu.put_block(snap, 1, 'a').status, 400);
  EXPECT_EQ(emu.complete(snap, 1).status, 400);
}

TEST(EbsDirect, PendingSnapshotIsNotReadable) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  ASSERT_EQ(emu.put_block(snap, 0, 'a').status, 201);
  Response r = emu.ebs("GET", "/snapshots/" + snap + "/blocks");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "ValidationException");
}

TEST(EbsDirect, ParentTogetherWithEncryptedIsValidationError) {
  TestEmu emu(instant());
  std::string parent = completed(emu, {{0, 'p'}});
  Response r = emu.ebs("POST", "/snapshots",
                       nlohmann::json({{"VolumeSize", 1}, {"ParentSnapshotId", parent}, {"Encrypted", true}}).dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "ValidationException");
}

TEST(EbsDirect, ListSnapshotBlocksPagesWithTokens) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  for (int i = 0; i < 150; ++i) ASSERT_EQ(emu.put_block(snap, i, 'z').status, 201);
  ASSERT_EQ(emu.complete(snap, 150).status, 202);
  auto first = emu.ebs("GET", "/snapshots/" + snap + "/blocks?maxResults=100").json();
  ASSERT_EQ(first["Blocks"].size(), 100u);
  ASSERT_TRUE(first.contains("NextToken"));
  std::string token = first["NextToken"];
  auto second = emu.ebs("GET", "/snapshots/" + snap + "/blocks?maxResults=100&pageToken=" +
                                   aws::sigv4::uri_encode(token)).json();
  ASSERT_EQ(second["Blocks"].size(), 50u);
  EXPECT_EQ(second["Blocks"][0]["BlockIndex"], 100);
  EXPECT_FALSE(second.contains("NextToken"));
  EXPECT_EQ(listed(emu, snap, "?startingBlockIndex=140").size(), 10u);
  EXPECT_EQ(emu.ebs("GET", "/snapshots/" + snap + "/blocks?maxResults=10").status, 400);
  EXPECT_EQ(emu.ebs("GET", "/snapshots/" + snap + "/blocks?pageToken=bogus").status, 400);
}

TEST(EbsDirect, ListChangedBlocksShowsOnlyDifferences) {
  TestEmu emu(instant());
  std::string parent = completed(emu, {{0, 'p'}, {1, 'q'}, {2, 'r'}});
  std::string child = completed(emu, {{1, 'Q'}, {2, 0}, {5, 'n'}}, parent);
  auto j = emu.ebs("GET", "/snapshots/" + child + "/changedblocks?firstSnapshotId=" + parent).json();
  std::vector<int64_t> idx;
  for (const auto& b : j["ChangedBlocks"]) idx.push_back(b["BlockIndex"]);
  EXPECT_EQ(idx, (std::vector<int64_t>{1, 2, 5}));
  EXPECT_FALSE(j["ChangedBlocks"][1].contains("SecondBlockToken"));  // block 2 cleared
}

TEST(EbsDirect, AmazonOwnedSnapshotIsRefused) {
  TestEmu emu(instant(), /*with_catalog=*/true);
  Response d = emu.ec2("DescribeSnapshots", {{"Owner.1", "amazon"}});
  std::string snap = d.xml("snapshotId");
  ASSERT_FALSE(snap.empty());
  Response r = emu.ebs("GET", "/snapshots/" + snap + "/blocks");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.error_code(), "AccessDeniedException");
  EXPECT_EQ(r.json()["Reason"], "UNAUTHORIZED_ACCOUNT");
  EXPECT_EQ(emu.start_snapshot(1, snap), "");
}

TEST(EbsDirect, BadBlockTokenIsRejected) {
  TestEmu emu(instant());
  std::string snap = completed(emu, {{0, 'a'}});
  Response r = emu.ebs("GET", "/snapshots/" + snap + "/blocks/0?blockToken=AAAA");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["Reason"], "INVALID_BLOCK_TOKEN");
}

TEST(EbsDirect, UnknownSnapshotIsResourceNotFound) {
  TestEmu emu(instant());
  Response r = emu.put_block("snap-0123456789abcdef0", 0, 'a');
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "ResourceNotFoundException");
}

TEST(EbsDirect, ClientTokenMakesStartSnapshotIdempotent) {
  TestEmu emu(instant());
  std::string body = nlohmann::json({{"VolumeSize", 1}, {"ClientToken", "tok-1"}}).dump();
  auto a = emu.ebs("POST", "/snapshots", body).json();
  auto b = emu.ebs("POST", "/snapshots", body).json();
  EXPECT_EQ(a["SnapshotId"], b["SnapshotId"]);
}

TEST(EbsDirect, RestartNeverReissuesAnId) {
  TestEmu emu(instant());
  std::string first = emu.start_snapshot(1);
  ASSERT_EQ(emu.ec2("DeleteSnapshot", {{"SnapshotId", first}}).status, 200);
  emu.restart();
  EXPECT_NE(emu.start_snapshot(1), first);
}

TEST(EbsDirect, PendingSnapshotSurvivesRestart) {
  TestEmu emu(instant());
  std::string snap = emu.start_snapshot(1);
  ASSERT_EQ(emu.put_block(snap, 3, 'a').status, 201);
  emu.restart();
  std::string aggregate = aws::sha256_base64(aws::sha256_raw(block_of('a')));
  EXPECT_EQ(emu.complete(snap, 1, aggregate).status, 202);
  EXPECT_EQ(get(emu, snap, 3).body, block_of('a'));
}

// ---- AWS's validation of StartSnapshot (rules in validate.cc) ----------------

// Starts a 1 GiB snapshot with `extra` body members; returns the response.
Response start_with(TestEmu& emu, const nlohmann::json& extra) {
  nlohmann::json body = {{"VolumeSize", 1}, {"Timeout", 60}};
  body.update(extra);
  return emu.ebs("POST", "/snapshots", body.dump());
}

nlohmann::json tags_of(int n) {
  nlohmann::json tags = nlohmann::json::array();
  for (int i = 0; i < n; ++i) tags.push_back({{"Key", "k" + std::to_string(i)}, {"Value", "v"}});
  return tags;
}

std::string reason_of(const Response& r) {
  auto j = r.json();
  return j.is_object() ? j.value("Reason", "") : "";
}

TEST(EbsValidation, StartSnapshotAcceptsAmibakeStyleTags) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Tags",
                                 {{{"Key", "amibake:build-id"}, {"Value", "b-1"}},
                                  {{"Key", "amibake:temporary"}, {"Value", "true"}}}},
                                {"Description", "amibake root for worker"}});
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST(EbsValidation, StartSnapshotRejectsMoreThan50Tags) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Tags", tags_of(51)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_TAG");
}

TEST(EbsValidation, StartSnapshotRejectsTagKeyLongerThan127) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Tags", {{{"Key", std::string(128, 'k')}, {"Value", "v"}}}}});
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_TAG");
  EXPECT_NE(r.json().value("Message", "").find("less than or equal to 127"), std::string::npos)
      << r.body;
}

TEST(EbsValidation, StartSnapshotRejectsTagValueLongerThan255) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Tags", {{{"Key", "k"}, {"Value", std::string(256, 'v')}}}}});
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_TAG");
}

TEST(EbsValidation, StartSnapshotRejectsAwsPrefixedTagKey) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Tags", {{{"Key", "aws:x"}, {"Value", "v"}}}}});
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_TAG");
}

TEST(EbsValidation, StartSnapshotRejectsKmsKeyArnThatIsNotAKeyArn) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Encrypted", true}, {"KmsKeyArn", "alias/aws/ebs"}});
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_CUSTOMER_KEY");
}

TEST(EbsValidation, StartSnapshotAcceptsAKeyArn) {
  TestEmu emu(instant());
  Response r = start_with(
      emu, {{"Encrypted", true},
            {"KmsKeyArn",
             "arn:aws:kms:us-east-1:123456789012:key/0b0b0b0b-1111-2222-3333-444444444444"}});
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST(EbsValidation, StartSnapshotRejectsDescriptionLongerThan255) {
  TestEmu emu(instant());
  Response r = start_with(emu, {{"Description", std::string(256, 'd')}});
  EXPECT_EQ(r.error_code(), "ValidationException");
  EXPECT_EQ(reason_of(r), "INVALID_PARAMETER_VALUE");
}

TEST(EbsValidation, RejectedStartSnapshotCreatesNoSnapshot) {
  TestEmu emu(instant());
  ASSERT_EQ(start_with(emu, {{"Tags", tags_of(51)}}).status, 400);
  EXPECT_EQ(emu.ec2("DescribeSnapshots", {{"Owner.1", "self"}}).xml("snapshotSet"), "");
}

}  // namespace
}  // namespace amibake::emu
