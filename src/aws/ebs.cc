// EBS direct APIs over REST-JSON (see ebs.h).
//
// Paths carry the snapshot id and block index; list calls take their paging in the
// query string (pageToken, maxResults, startingBlockIndex); block data travels as raw
// bytes with its checksum in headers. JSON answers go through JsonReader, which also
// accepts a BlockIndex sent as a string ("17"): moto and LocalStack send them so.
//
// Integrity is checked here, where the bytes arrive: a block whose SHA-256 does not
// match the service's checksum, or whose length differs from x-amz-Data-Length, is an
// error naming the snapshot and block, and PutSnapshotBlock verifies the checksum the
// service echoes.
#include "aws/ebs.h"

#include "aws/answer.h"
#include "aws/sigv4.h"

namespace amibake::aws::ebs {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kService = "ebs";

AwsRequest ebs_request(std::string operation, std::string method, std::string path,
                       bool idempotent) {
  AwsRequest r;
  r.service = std::string(kService);
  r.operation = std::move(operation);
  r.protocol = Protocol::kRestJson;
  r.method = std::move(method);
  r.path = std::move(path);
  r.idempotent = idempotent;
  return r;
}

// Appends "key=value" to an encoded query string.
void add_query(std::string& q, std::string_view key, const std::string& value) {
  if (!q.empty()) q += '&';
  q += key;
  q += '=';
  q += sigv4::uri_encode(value);
}

void add_paging(std::string& q, const std::string& token, std::optional<int64_t> max_results,
                std::optional<int64_t> starting_block_index) {
  if (!token.empty()) add_query(q, "pageToken", token);
  if (max_results) add_query(q, "maxResults", std::to_string(*max_results));
  if (starting_block_index) {
    add_query(q, "startingBlockIndex", std::to_string(*starting_block_index));
  }
}

std::string snapshot_path(const std::string& snapshot_id) {
  return "/snapshots/" + sigv4::uri_encode(snapshot_id);
}

// Reads an array of objects under `key`, calling read(obj) for each.
template <typename F>
void for_each_object(JsonReader& rd, const json& j, std::string_view key, F read) {
  const json* arr = rd.array(j, key);
  if (!arr) return;
  for (const json& item : *arr) {
    if (!item.is_object()) {
      rd.fail("\"" + std::string(key) + "\" holds a " + item.type_name() + ", expected objects");
      return;
    }
    read(item);
  }
}

std::vector<Tag> read_tags(JsonReader& rd, const json& j) {
  std::vector<Tag> tags;
  for_each_object(rd, j, "Tags", [&](const json& t) {
    tags.push_back(Tag{rd.str(t, "Key"), rd.str(t, "Value")});
  });
  return tags;
}

}  // namespace

// ---- listing ----

AwsRequest encode_list_snapshot_blocks(const ListSnapshotBlocksRequest& r,
                                       const std::string& token) {
  AwsRequest req = ebs_request("ListSnapshotBlocks", "GET",
                               snapshot_path(r.snapshot_id) + "/blocks", /*idempotent=*/true);
  add_paging(req.query, token, r.max_results, r.starting_block_index);
  return req;
}

Result<SnapshotBlocksPage> parse_list_snapshot_blocks(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "ListSnapshotBlocks", body));
  JsonReader rd(kService, "ListSnapshotBlocks");
  SnapshotBlocksPage out;
  for_each_object(rd, j, "Blocks", [&](const json& b) {
    std::optional<int64_t> index = rd.opt_int(b, "BlockIndex");
    if (!index || *index < 0) rd.fail("a block without a valid \"BlockIndex\"");
    out.page.items.push_back(Block{index.value_or(0), rd.str(b, "BlockToken")});
  });
  out.page.next_token = rd.str(j, "NextToken");
  out.meta.volume_size = rd.integer(j, "VolumeSize");
  out.meta.block_size = rd.integer(j, "BlockSize");
  out.meta.expiry_time = rd.opt_number(j, "ExpiryTime");
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<SnapshotBlocks> list_snapshot_blocks(AwsClient& c, const ListSnapshotBlocksRequest& r) {
  SnapshotBlocks all;
  auto fetch = [&](const std::string& token) -> Result<Page<Block>> {
    AMIBAKE_ASSIGN(AwsResponse resp, c.send(encode_list_snapshot_blocks(r, token)));
    AMIBAKE_ASSIGN(SnapshotBlocksPage p, parse_list_snapshot_blocks(resp.body));
    // Sizes are the same on every page; an empty page may omit them.
    if (p.meta.volume_size) all.volume_size = p.meta.volume_size;
    if (p.meta.block_size) all.block_size = p.meta.block_size;
    if (p.meta.expiry_time) all.expiry_time = p.meta.expiry_time;
    return std::move(p.page);
  };
  AMIBAKE_TRY(collect_pages<Block>(r.snapshot_id + ": ebs ListSnapshotBlocks", fetch, &all.blocks));
  return all;
}

AwsRequest encode_list_changed_blocks(const ListChangedBlocksRequest& r, const std::string& token) {
  AwsRequest req =
      ebs_request("ListChangedBlocks", "GET",
                  snapshot_path(r.second_snapshot_id) + "/changedblocks", /*idempotent=*/true);
  if (!r.first_snapshot_id.empty()) add_query(req.query, "firstSnapshotId", r.first_snapshot_id);
  add_paging(req.query, token, r.max_results, r.starting_block_index);
  return req;
}

Result<ChangedBlocksPage> parse_list_changed_blocks(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "ListChangedBlocks", body));
  JsonReader rd(kService, "ListChangedBlocks");
  ChangedBlocksPage out;
  for_each_object(rd, j, "ChangedBlocks", [&](const json& b) {
    std::optional<int64_t> index = rd.opt_int(b, "BlockIndex");
    if (!index || *index < 0) rd.fail("a block without a valid \"BlockIndex\"");
    out.page.items.push_back(ChangedBlock{index.value_or(0), rd.str(b, "FirstBlockToken"),
                                          rd.str(b, "SecondBlockToken")});
  });
  out.page.next_token = rd.str(j, "NextToken");
  out.meta.volume_size = rd.integer(j, "VolumeSize");
  out.meta.block_size = rd.integer(j, "BlockSize");
  out.meta.expiry_time = rd.opt_number(j, "ExpiryTime");
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<ChangedBlocks> list_changed_blocks(AwsClient& c, const ListChangedBlocksRequest& r) {
  ChangedBlocks all;
  auto fetch = [&](const std::string& token) -> Result<Page<ChangedBlock>> {
    AMIBAKE_ASSIGN(AwsResponse resp, c.send(encode_list_changed_blocks(r, token)));
    AMIBAKE_ASSIGN(ChangedBlocksPage p, parse_list_changed_blocks(resp.body));
    if (p.meta.volume_size) all.volume_size = p.meta.volume_size;
    if (p.meta.block_size) all.block_size = p.meta.block_size;
    if (p.meta.expiry_time) all.expiry_time = p.meta.expiry_time;
    return std::move(p.page);
  };
  AMIBAKE_TRY(collect_pages<ChangedBlock>(r.second_snapshot_id + ": ebs ListChangedBlocks", fetch,
                                          &all.blocks));
  return all;
}

// ---- reading a block ----

AwsRequest encode_get_snapshot_block(const std::string& snapshot_id, int64_t block_index,
                                     const std::string& block_token) {
  AwsRequest req =
      ebs_request("GetSnapshotBlock", "GET",
                  snapshot_path(snapshot_id) + "/blocks/" + std::to_string(block_index),
                  /*idempotent=*/true);
  add_query(req.query, "blockToken", block_token);
  return req;
}

Result<BlockData> parse_get_snapshot_block(const std::string& snapshot_id, int64_t block_index,
                                           const AwsResponse& response) {
  const std::string subject = snapshot_id + ": GetSnapshotBlock " + std::to_string(block_index);
  BlockData out;
  out.data = response.body;
  out.checksum = response.header("x-amz-Checksum");
  out.checksum_algorithm = response.header("x-amz-Checksum-Algorithm");
  const std::string length = response.header("x-amz-Data-Length");
  const std::string retry_hint = "retry; if it persists the snapshot may be damaged";
  if (!length.empty()) {
    if (!parse_int64(length, &out.data_length) || out.data_length < 0) {
      return make_error(subject + ": malformed x-amz-Data-Length '" + length.substr(0, 40) + "'",
                        retry_hint);
    }
    if (static_cast<size_t>(out.data_length) != out.data.size()) {
      return make_error(subject + ": received " + std::to_string(out.data.size()) +
                            " bytes, x-amz-Data-Length says " + length,
                        retry_hint);
    }
  } else {
    out.data_length = static_cast<int64_t>(out.data.size());
  }
  // Only SHA256 is defined today; an algorithm we do not know cannot be checked, and
  // silently accepting unchecked data is not acceptable, so it is an error.
  if (out.checksum.empty()) {
    return make_error(subject + ": the answer carries no x-amz-Checksum", retry_hint);
  }
  if (!out.checksum_algorithm.empty() && out.checksum_algorithm != "SHA256") {
    return make_error(
        subject + ": unsupported checksum algorithm '" + out.checksum_algorithm.substr(0, 40) + "'",
        "amibake checks SHA256 only; report this");
  }
  if (sha256_base64(out.data) != out.checksum) {
    return make_error(subject + ": checksum mismatch", retry_hint);
  }
  return out;
}

Result<BlockData> get_snapshot_block(AwsClient& c, const std::string& snapshot_id,
                                     int64_t block_index, const std::string& block_token) {
  AMIBAKE_ASSIGN(AwsResponse resp,
                 c.send(encode_get_snapshot_block(snapshot_id, block_index, block_token)));
  return parse_get_snapshot_block(snapshot_id, block_index, resp);
}

// ---- writing a snapshot ----

AwsRequest encode_start_snapshot(const StartSnapshotRequest& r) {
  ordered_json j;
  j["VolumeSize"] = r.volume_size;
  if (!r.parent_snapshot_id.empty()) j["ParentSnapshotId"] = r.parent_snapshot_id;
  if (!r.tags.empty()) {
    ordered_json tags = ordered_json::array();
    for (const Tag& t : r.tags) tags.push_back({{"Key", t.key}, {"Value", t.value}});
    j["Tags"] = std::move(tags);
  }
  if (!r.description.empty()) j["Description"] = r.description;
  if (!r.client_token.empty()) j["ClientToken"] = r.client_token;
  if (r.encrypted) j["Encrypted"] = *r.encrypted;
  if (!r.kms_key_arn.empty()) j["KmsKeyArn"] = r.kms_key_arn;
  if (r.timeout) j["Timeout"] = *r.timeout;
  AwsRequest req = ebs_request("StartSnapshot", "POST", "/snapshots",
                               /*idempotent=*/!r.client_token.empty());
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = dump_no_throw(j);
  return req;
}

Result<StartSnapshotResult> parse_start_snapshot(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "StartSnapshot", body));
  JsonReader rd(kService, "StartSnapshot");
  StartSnapshotResult out;
  out.snapshot_id = rd.str(j, "SnapshotId");
  out.owner_id = rd.str(j, "OwnerId");
  out.status = rd.str(j, "Status");
  out.start_time = rd.opt_number(j, "StartTime");
  out.volume_size = rd.integer(j, "VolumeSize");
  out.block_size = rd.integer(j, "BlockSize");
  out.parent_snapshot_id = rd.str(j, "ParentSnapshotId");
  out.kms_key_arn = rd.str(j, "KmsKeyArn");
  out.description = rd.str(j, "Description");
  out.sse_type = rd.str(j, "SseType");
  out.tags = read_tags(rd, j);
  if (out.snapshot_id.empty()) rd.fail("no \"SnapshotId\"");
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<StartSnapshotResult> start_snapshot(AwsClient& c, const StartSnapshotRequest& r) {
  AMIBAKE_ASSIGN(AwsResponse resp, c.send(encode_start_snapshot(r)));
  return parse_start_snapshot(resp.body);
}

AwsRequest encode_put_snapshot_block(const PutSnapshotBlockRequest& r) {
  AwsRequest req =
      ebs_request("PutSnapshotBlock", "PUT",
                  snapshot_path(r.snapshot_id) + "/blocks/" + std::to_string(r.block_index),
                  /*idempotent=*/true);  // writing the same block again is harmless
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  req.headers.emplace_back("x-amz-Data-Length", std::to_string(r.data.size()));
  req.headers.emplace_back("x-amz-Checksum",
                           r.checksum.empty() ? sha256_base64(r.data) : r.checksum);
  req.headers.emplace_back("x-amz-Checksum-Algorithm", "SHA256");
  if (r.progress) req.headers.emplace_back("x-amz-Progress", std::to_string(*r.progress));
  req.body = r.data;
  req.unsigned_payload = true;
  return req;
}

Result<std::string> put_snapshot_block(AwsClient& c, const PutSnapshotBlockRequest& r) {
  AwsRequest req = encode_put_snapshot_block(r);
  AMIBAKE_ASSIGN(AwsResponse resp, c.send(req));
  std::string sent;
  for (const auto& [name, value] : req.headers) {
    if (name == "x-amz-Checksum") sent = value;
  }
  const std::string echoed = resp.header("x-amz-Checksum");
  // The echo is how the service proves it stored what we sent; an absent echo is
  // tolerated (some emulators omit it), a different one is not.
  if (!echoed.empty() && echoed != sent) {
    return make_error(r.snapshot_id + ": PutSnapshotBlock " + std::to_string(r.block_index) +
                          ": the service stored checksum " + echoed + ", we sent " + sent,
                      "retry the block; if it persists, restart the snapshot");
  }
  return sent;
}

AwsRequest encode_complete_snapshot(const CompleteSnapshotRequest& r) {
  AwsRequest req = ebs_request("CompleteSnapshot", "POST",
                               "/snapshots/completion/" + sigv4::uri_encode(r.snapshot_id),
                               /*idempotent=*/true);
  req.headers.emplace_back("x-amz-ChangedBlocksCount", std::to_string(r.changed_blocks_count));
  if (!r.checksum.empty()) {
    req.headers.emplace_back("x-amz-Checksum", r.checksum);
    req.headers.emplace_back("x-amz-Checksum-Algorithm", "SHA256");
    req.headers.emplace_back("x-amz-Checksum-Aggregation-Method", "LINEAR");
  }
  return req;
}

Result<std::string> parse_complete_snapshot(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "CompleteSnapshot", body));
  JsonReader rd(kService, "CompleteSnapshot");
  std::string status = rd.str(j, "Status");
  AMIBAKE_TRY(rd.status());
  return status;
}

Result<std::string> complete_snapshot(AwsClient& c, const CompleteSnapshotRequest& r) {
  AMIBAKE_ASSIGN(AwsResponse resp, c.send(encode_complete_snapshot(r)));
  Result<std::string> status = parse_complete_snapshot(resp.body);
  if (status && *status == "error") {
    return make_error(r.snapshot_id + ": CompleteSnapshot: the service reports status 'error'",
                      "check the block count and aggregate checksum, then start a new snapshot");
  }
  return status;
}

Result<std::string> linear_aggregate_checksum(const std::vector<std::string>& block_checksums) {
  std::string concatenated;
  concatenated.reserve(block_checksums.size() * 32);
  for (size_t i = 0; i < block_checksums.size(); ++i) {
    std::string raw;
    if (!base64_decode(block_checksums[i], &raw) || raw.size() != 32) {
      return make_error("linear aggregate checksum: checksum #" + std::to_string(i) + " '" +
                            block_checksums[i].substr(0, 64) + "' is not a base64 SHA-256",
                        "this is a bug in the caller; report it");
    }
    concatenated += raw;
  }
  return sha256_base64(concatenated);
}

}  // namespace amibake::aws::ebs
