// EBS direct APIs (REST-JSON, signing name "ebs"): read a snapshot's blocks, write a
// new snapshot block by block.
//
// Blocks are 512 KiB. Every block read is checked against the SHA-256 the service
// sends with it; every block written carries its SHA-256, and CompleteSnapshot carries
// the LINEAR aggregate (SHA-256 over the concatenated raw per-block digests, in block
// index order). Same three-piece shape as ec2.h: encode_*, parse_*, and the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "aws/paginate.h"
#include "aws/query.h"
#include "base/result.h"

namespace amibake::aws::ebs {

inline constexpr int64_t kBlockSize = 512 * 1024;

struct Block {
  int64_t index = 0;
  std::string token;
};

// What ListSnapshotBlocks answers, all pages merged.
struct SnapshotBlocks {
  std::vector<Block> blocks;
  int64_t volume_size = 0;            // GiB
  int64_t block_size = 0;             // bytes
  std::optional<double> expiry_time;  // epoch seconds; tokens expire then
};

struct ListSnapshotBlocksRequest {
  std::string snapshot_id;
  std::optional<int64_t> starting_block_index;
  std::optional<int64_t> max_results;  // 100..10000 per page
};
AwsRequest encode_list_snapshot_blocks(const ListSnapshotBlocksRequest& r,
                                       const std::string& token);
// One page; `page_out` gets the blocks and the next token, `meta` the sizes.
struct SnapshotBlocksPage {
  Page<Block> page;
  SnapshotBlocks meta;  // blocks left empty; sizes and expiry filled in
};
Result<SnapshotBlocksPage> parse_list_snapshot_blocks(std::string_view body);
// Every written block of the snapshot (all pages; empty pages with a token are followed).
Result<SnapshotBlocks> list_snapshot_blocks(AwsClient& c, const ListSnapshotBlocksRequest& r);

struct ChangedBlock {
  int64_t index = 0;
  std::string first_token;   // empty when the block is absent from the first snapshot
  std::string second_token;  // empty when the block is absent from the second snapshot
};
struct ChangedBlocks {
  std::vector<ChangedBlock> blocks;
  int64_t volume_size = 0;
  int64_t block_size = 0;
  std::optional<double> expiry_time;
};
struct ListChangedBlocksRequest {
  std::string first_snapshot_id;  // optional: without it, lists every written block
  std::string second_snapshot_id;
  std::optional<int64_t> starting_block_index;
  std::optional<int64_t> max_results;
};
AwsRequest encode_list_changed_blocks(const ListChangedBlocksRequest& r, const std::string& token);
struct ChangedBlocksPage {
  Page<ChangedBlock> page;
  ChangedBlocks meta;
};
Result<ChangedBlocksPage> parse_list_changed_blocks(std::string_view body);
Result<ChangedBlocks> list_changed_blocks(AwsClient& c, const ListChangedBlocksRequest& r);

struct BlockData {
  std::string data;
  std::string checksum;  // base64 SHA-256 as sent
  std::string checksum_algorithm;
  int64_t data_length = 0;
};
AwsRequest encode_get_snapshot_block(const std::string& snapshot_id, int64_t block_index,
                                     const std::string& block_token);
// Checks x-amz-Data-Length against the body and, for SHA256, x-amz-Checksum against
// the data: "snap-1: GetSnapshotBlock 17: checksum mismatch" otherwise.
Result<BlockData> parse_get_snapshot_block(const std::string& snapshot_id, int64_t block_index,
                                           const AwsResponse& response);
Result<BlockData> get_snapshot_block(AwsClient& c, const std::string& snapshot_id,
                                     int64_t block_index, const std::string& block_token);

struct StartSnapshotRequest {
  int64_t volume_size = 0;  // GiB
  std::string parent_snapshot_id;
  std::vector<Tag> tags;
  std::string description;
  std::string client_token;  // makes StartSnapshot idempotent (retries, resume)
  std::optional<bool> encrypted;
  std::string kms_key_arn;
  std::optional<int64_t> timeout;  // minutes until an incomplete snapshot is abandoned
};
struct StartSnapshotResult {
  std::string snapshot_id;
  std::string owner_id;
  std::string status;  // "pending"
  std::optional<double> start_time;
  int64_t volume_size = 0;
  int64_t block_size = 0;
  std::string parent_snapshot_id;
  std::string kms_key_arn;
  std::string description;
  std::string sse_type;
  std::vector<Tag> tags;
};
AwsRequest encode_start_snapshot(const StartSnapshotRequest& r);
Result<StartSnapshotResult> parse_start_snapshot(std::string_view body);
Result<StartSnapshotResult> start_snapshot(AwsClient& c, const StartSnapshotRequest& r);

struct PutSnapshotBlockRequest {
  std::string snapshot_id;
  int64_t block_index = 0;
  std::string data;                 // exactly kBlockSize bytes
  std::string checksum;             // base64 SHA-256 of data; computed when empty
  std::optional<int64_t> progress;  // 0..100, informational
};
// The request signs UNSIGNED-PAYLOAD (the body is covered by x-amz-Checksum).
AwsRequest encode_put_snapshot_block(const PutSnapshotBlockRequest& r);
// Returns the checksum the service echoed; fails when it differs from the one sent.
Result<std::string> put_snapshot_block(AwsClient& c, const PutSnapshotBlockRequest& r);

struct CompleteSnapshotRequest {
  std::string snapshot_id;
  int64_t changed_blocks_count = 0;
  std::string checksum;  // LINEAR aggregate, base64; omitted when empty
};
AwsRequest encode_complete_snapshot(const CompleteSnapshotRequest& r);
Result<std::string> parse_complete_snapshot(
    std::string_view body);  // "completed" | "pending" | "error"
Result<std::string> complete_snapshot(AwsClient& c, const CompleteSnapshotRequest& r);

// Returns the LINEAR aggregate checksum: base64(SHA-256(raw digest 0 || raw digest 1
// || ...)) of the base64 per-block SHA-256 checksums, which must be in block-index
// order. Fails when a checksum is not base64 of 32 bytes.
Result<std::string> linear_aggregate_checksum(const std::vector<std::string>& block_checksums);

}  // namespace amibake::aws::ebs
