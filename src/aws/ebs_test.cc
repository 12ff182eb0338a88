// Tests for the EBS direct APIs: paths, query strings and headers as botocore builds
// them, answers with numbers sent as strings (moto, LocalStack), empty pages that
// still carry a token, checksum checks on read and write, and the LINEAR aggregate.
#include "aws/ebs.h"

#include <gtest/gtest.h>

#include "aws/ops_fake_transport_test.h"
#include "aws/sigv4.h"

namespace amibake::aws::ebs {
namespace {

using testing::header_of;
using testing::make_scripted_client;
using testing::ScriptedTransport;

std::string header(const AwsRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

TEST(EbsEncode, ListSnapshotBlocksPutsPagingInQuery) {
  AwsRequest r = encode_list_snapshot_blocks({"snap-1", 5, 100}, "t/=+");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/snapshots/snap-1/blocks");
  EXPECT_EQ(r.query, "pageToken=t%2F%3D%2B&maxResults=100&startingBlockIndex=5");
  EXPECT_EQ(r.service, "ebs");
  EXPECT_EQ(r.protocol, Protocol::kRestJson);
  EXPECT_TRUE(r.body.empty());
}

TEST(EbsEncode, ListChangedBlocksNamesBothSnapshots) {
  AwsRequest r = encode_list_changed_blocks({"snap-1", "snap-2", {}, {}}, "");
  EXPECT_EQ(r.path, "/snapshots/snap-2/changedblocks");
  EXPECT_EQ(r.query, "firstSnapshotId=snap-1");
}

TEST(EbsEncode, GetSnapshotBlockEncodesToken) {
  AwsRequest r = encode_get_snapshot_block("snap-1", 3, "tok+/=");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/snapshots/snap-1/blocks/3");
  EXPECT_EQ(r.query, "blockToken=tok%2B%2F%3D");
}

TEST(EbsEncode, StartSnapshotMatchesBotocoreFieldOrder) {
  StartSnapshotRequest s{8, "snap-0", {{"a", "b"}}, "d", "tok", true, "arn", 60};
  AwsRequest r = encode_start_snapshot(s);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/snapshots");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(r.body,
            R"({"VolumeSize":8,"ParentSnapshotId":"snap-0","Tags":[{"Key":"a","Value":"b"}],)"
            R"("Description":"d","ClientToken":"tok","Encrypted":true,"KmsKeyArn":"arn",)"
            R"("Timeout":60})");
  EXPECT_TRUE(r.idempotent);
}

TEST(EbsEncode, PutSnapshotBlockSendsRawBodyUnsigned) {
  const std::string data(kBlockSize, 'x');
  AwsRequest r = encode_put_snapshot_block({"snap-1", 3, data, "", 50});
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.path, "/snapshots/snap-1/blocks/3");
  EXPECT_EQ(r.body, data);
  EXPECT_TRUE(r.unsigned_payload);
  EXPECT_EQ(header(r, "x-amz-Data-Length"), "524288");
  EXPECT_EQ(header(r, "x-amz-Checksum"), sha256_base64(data));
  EXPECT_EQ(header(r, "x-amz-Checksum-Algorithm"), "SHA256");
  EXPECT_EQ(header(r, "x-amz-Progress"), "50");
}

TEST(EbsEncode, CompleteSnapshotSendsAggregateHeaders) {
  AwsRequest r = encode_complete_snapshot({"snap-1", 3, "abc"});
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/snapshots/completion/snap-1");
  EXPECT_EQ(header(r, "x-amz-ChangedBlocksCount"), "3");
  EXPECT_EQ(header(r, "x-amz-Checksum"), "abc");
  EXPECT_EQ(header(r, "x-amz-Checksum-Algorithm"), "SHA256");
  EXPECT_EQ(header(r, "x-amz-Checksum-Aggregation-Method"), "LINEAR");
}

TEST(EbsParse, ListSnapshotBlocksReadsBlocksAndSizes) {
  auto p = parse_list_snapshot_blocks(
      R"({"BlockSize":524288,"Blocks":[{"BlockIndex":0,"BlockToken":"t0"},{"BlockIndex":17,"BlockToken":"t17"}],)"
      R"("ExpiryTime":1.575e9,"VolumeSize":8,"NextToken":"n"})");
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->page.items.size(), 2u);
  EXPECT_EQ(p->page.items[1].index, 17);
  EXPECT_EQ(p->page.items[1].token, "t17");
  EXPECT_EQ(p->page.next_token, "n");
  EXPECT_EQ(p->meta.block_size, 524288);
  EXPECT_EQ(p->meta.volume_size, 8);
  ASSERT_TRUE(p->meta.expiry_time.has_value());
}

TEST(EbsParse, BlockIndexAsStringIsAccepted) {
  auto p = parse_list_snapshot_blocks(R"({"Blocks":[{"BlockIndex":"42","BlockToken":"t"}]})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->page.items[0].index, 42);
}

TEST(EbsParse, BadBlockIndexIsError) {
  EXPECT_FALSE(parse_list_snapshot_blocks(R"({"Blocks":[{"BlockIndex":"x","BlockToken":"t"}]})"));
  EXPECT_FALSE(parse_list_snapshot_blocks(R"({"Blocks":[{"BlockIndex":-1,"BlockToken":"t"}]})"));
  EXPECT_FALSE(parse_list_snapshot_blocks(R"({"Blocks":[{"BlockToken":"t"}]})"));
  EXPECT_FALSE(parse_list_snapshot_blocks(R"({"Blocks":{"BlockIndex":1}})"));
  EXPECT_FALSE(parse_list_snapshot_blocks(R"({"Blocks":[1,2]})"));
}

TEST(EbsParse, ListChangedBlocksReadsBothTokens) {
  auto p = parse_list_changed_blocks(
      R"({"ChangedBlocks":[{"BlockIndex":"2","FirstBlockToken":"a","SecondBlockToken":"b"},)"
      R"({"BlockIndex":3,"SecondBlockToken":"c"}],"VolumeSize":"8","BlockSize":524288})");
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->page.items.size(), 2u);
  EXPECT_EQ(p->page.items[0].index, 2);
  EXPECT_EQ(p->page.items[0].first_token, "a");
  EXPECT_EQ(p->page.items[1].first_token, "");
  EXPECT_EQ(p->meta.volume_size, 8);
}

TEST(EbsParse, StartSnapshotReadsId) {
  auto s = parse_start_snapshot(
      R"({"SnapshotId":"snap-1","OwnerId":"123456789012","Status":"pending","StartTime":1.7e9,)"
      R"("VolumeSize":8,"BlockSize":524288,"Tags":[{"Key":"a","Value":"b"}],"ParentSnapshotId":"snap-0"})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->snapshot_id, "snap-1");
  EXPECT_EQ(s->status, "pending");
  EXPECT_EQ(s->block_size, 524288);
  ASSERT_EQ(s->tags.size(), 1u);
  EXPECT_EQ(s->tags[0].value, "b");
  EXPECT_FALSE(parse_start_snapshot(R"({"Status":"pending"})"));
}

TEST(EbsParse, GetSnapshotBlockChecksData) {
  AwsResponse resp;
  resp.status = 200;
  resp.body = std::string(kBlockSize, '\0');
  resp.headers = {{"x-amz-Checksum", sha256_base64(resp.body)},
                  {"x-amz-Checksum-Algorithm", "SHA256"},
                  {"x-amz-Data-Length", "524288"}};
  auto b = parse_get_snapshot_block("snap-1", 17, resp);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->data_length, kBlockSize);
  resp.body[100] = 'x';
  b = parse_get_snapshot_block("snap-1", 17, resp);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message, "snap-1: GetSnapshotBlock 17: checksum mismatch");
}

TEST(EbsParse, GetSnapshotBlockShortBodyIsError) {
  AwsResponse resp;
  resp.body = "abc";
  resp.headers = {{"x-amz-Checksum", sha256_base64("abc")}, {"x-amz-Data-Length", "524288"}};
  auto b = parse_get_snapshot_block("snap-1", 2, resp);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message,
            "snap-1: GetSnapshotBlock 2: received 3 bytes, x-amz-Data-Length says 524288");
  resp.headers = {{"x-amz-Data-Length", "3"}};
  EXPECT_FALSE(parse_get_snapshot_block("snap-1", 2, resp));  // no checksum at all
}

TEST(EbsChecksum, LinearAggregateHashesConcatenatedDigests) {
  const std::string a(kBlockSize, 'a'), b(kBlockSize, 'b');
  auto agg = linear_aggregate_checksum({sha256_base64(a), sha256_base64(b)});
  ASSERT_TRUE(agg) << agg.error().message;
  EXPECT_EQ(*agg, sha256_base64(sha256_raw(a) + sha256_raw(b)));
  EXPECT_FALSE(linear_aggregate_checksum({"not base64!"}));
  EXPECT_FALSE(linear_aggregate_checksum({sha256_base64("x").substr(4)}));
}

TEST(EbsCall, ListSnapshotBlocksFollowsEmptyPagesWithToken) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(200, R"({"Blocks":[{"BlockIndex":0,"BlockToken":"a"}],"NextToken":"n1",)"
                         R"("VolumeSize":8,"BlockSize":524288})");
  transport->answer(200, R"({"Blocks":[],"NextToken":"n2"})");
  transport->answer(200, R"({"Blocks":[{"BlockIndex":"9","BlockToken":"b"}]})");
  auto client = make_scripted_client(transport);
  auto all = list_snapshot_blocks(*client, {"snap-1", {}, {}});
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->blocks.size(), 2u);
  EXPECT_EQ(all->blocks[1].index, 9);
  EXPECT_EQ(all->volume_size, 8);
  EXPECT_EQ(all->block_size, 524288);
  auto sent = transport->requests();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].method, "GET");
  EXPECT_NE(sent[2].url.find("/snapshots/snap-1/blocks?pageToken=n2"), std::string::npos)
      << sent[2].url;
}

TEST(EbsCall, PutSnapshotBlockSignsUnsignedPayload) {
  auto transport = std::make_shared<ScriptedTransport>();
  const std::string data(kBlockSize, 'z');
  transport->answer(
      201, "{}", {{"x-amz-Checksum", sha256_base64(data)}, {"x-amz-Checksum-Algorithm", "SHA256"}});
  auto client = make_scripted_client(transport);
  auto sum = put_snapshot_block(*client, {"snap-1", 4, data, "", {}});
  ASSERT_TRUE(sum) << sum.error().message;
  EXPECT_EQ(*sum, sha256_base64(data));
  auto sent = transport->requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].method, "PUT");
  EXPECT_EQ(header_of(sent[0], "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_EQ(sent[0].body.size(), static_cast<size_t>(kBlockSize));
}

TEST(EbsCall, PutSnapshotBlockEchoMismatchIsError) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(201, "{}", {{"x-amz-Checksum", sha256_base64("other")}});
  auto client = make_scripted_client(transport);
  auto sum = put_snapshot_block(*client, {"snap-1", 4, std::string(10, 'z'), "", {}});
  ASSERT_FALSE(sum);
  EXPECT_NE(sum.error().message.find("snap-1: PutSnapshotBlock 4: the service stored checksum"),
            std::string::npos);
}

TEST(EbsCall, CompleteSnapshotErrorStatusIsError) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->answer(202, R"({"Status":"error"})");
  auto client = make_scripted_client(transport);
  auto st = complete_snapshot(*client, {"snap-1", 1, ""});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("status 'error'"), std::string::npos);
}

}  // namespace
}  // namespace amibake::aws::ebs
