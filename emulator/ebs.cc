// EBS direct APIs (REST-JSON): StartSnapshot, PutSnapshotBlock, GetSnapshotBlock,
// ListSnapshotBlocks, ListChangedBlocks, CompleteSnapshot.
//
// A snapshot started here is a layer (layers.cc): a sparse file of its own blocks, on top
// of its parent's layer when it has one, so unwritten blocks read as the parent's and
// starting it costs nothing; a block of zeros punches a hole and, at CompleteSnapshot,
// is recorded as cleared, so the parent's block is hidden and the block no longer
// listed. Each put's SHA-256 is recorded per block index; CompleteSnapshot checks
// ChangedBlocksCount against the number of distinct blocks written and the LINEAR
// aggregate, which is base64(SHA-256(raw 32-byte digests of the written blocks,
// concatenated in ascending block index)) — the way AWS's own coldsnap computes it.
// Block I/O and hashing run outside the world lock, so many puts and gets proceed in
// parallel; the lock is only held for bookkeeping.
#include <algorithm>

#include "aws/sigv4.h"
#include "emulator/blockstore.h"
#include "emulator/layers.h"
#include "emulator/service.h"
#include "emulator/validate.h"

namespace amibake::emu {
namespace {

constexpr double kTokenLifetime = 7 * 24 * 3600;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    if (slash > pos) out.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

Reply validation(const Call& call, const std::string& message, const std::string& reason = "") {
  nlohmann::json extra = nlohmann::json::object();
  if (!reason.empty()) extra["Reason"] = reason;
  return error_reply(call, 400, "ValidationException", message, extra);
}

Reply not_found(const Call& call, const std::string& id) {
  return error_reply(call, 404, "ResourceNotFoundException",
                     "The snapshot '" + id + "' does not exist.",
                     {{"Reason", "SNAPSHOT_NOT_FOUND"}});
}

std::string block_token(const std::string& snapshot_id, int64_t index) {
  std::string digest = aws::sha256_raw("awsemu-block:" + snapshot_id + ":" + std::to_string(index));
  return aws::base64_encode(digest.substr(0, 30));
}

std::string page_token(const std::string& snapshot_id, int64_t next) {
  return aws::base64_encode("awsemu-page:" + snapshot_id + ":" + std::to_string(next));
}

// Returns the next block index a page token stands for, or -1 if it is not ours.
int64_t parse_page_token(const std::string& token, const std::string& snapshot_id) {
  std::string text;
  std::string head = "awsemu-page:" + snapshot_id + ":";
  if (!aws::base64_decode(token, &text) || text.rfind(head, 0) != 0) return -1;
  try {
    return std::stoll(text.substr(head.size()));
  } catch (const std::exception&) {
    return -1;
  }
}

// Finds a snapshot the caller may use with EBS direct (mu() held); else the error.
Snapshot* owned(Context& ctx, const Call& call, const std::string& id, Reply* error) {
  auto it = ctx.world().snapshots.find(id);
  if (it == ctx.world().snapshots.end() || ctx.hidden(id)) {
    *error = not_found(call, id);
    return nullptr;
  }
  if (it->second.owner_id != kAccountId) {
    *error = error_reply(call, 403, "AccessDeniedException",
                         "You do not have permission to access snapshot " + id +
                             ": the EBS direct APIs do not read public or unowned snapshots",
                         {{"Reason", "UNAUTHORIZED_ACCOUNT"}});
    return nullptr;
  }
  return &it->second;
}

Reply start_snapshot(Context& ctx, const Call& call) {
  const auto& j = call.json;
  if (!j.contains("VolumeSize") || !j["VolumeSize"].is_number_integer() || j["VolumeSize"].get<int64_t>() < 1) {
    return validation(call, "VolumeSize is required and must be at least 1 (GiB)", "INVALID_VOLUME_SIZE");
  }
  int64_t size = j["VolumeSize"].get<int64_t>();
  std::string parent_id = j.value("ParentSnapshotId", "");
  bool encrypted = j.value("Encrypted", false);
  int64_t timeout = j.value("Timeout", 60);
  std::string token = j.value("ClientToken", "");
  if (!parent_id.empty() && j.contains("Encrypted")) {
    return validation(call, "ParentSnapshotId and Encrypted cannot be used together: a child "
                            "snapshot takes the encryption of its parent", "INVALID_PARAMETER_VALUE");
  }
  if (timeout < 10 || timeout > 4320) {
    return validation(call, "Timeout must be between 10 and 4320 minutes", "INVALID_PARAMETER_VALUE");
  }
  if (size > 65536) return validation(call, "VolumeSize is above 64 TiB", "INVALID_VOLUME_SIZE");
  if (auto bad = check_description(j.value("Description", ""))) return refuse(call, *bad);
  std::string kms_key_arn = j.value("KmsKeyArn", "");
  if (j.contains("KmsKeyArn")) {
    if (auto bad = check_kms_key(kms_key_arn, KmsKeyForm::kKeyArn)) return refuse(call, *bad);
  }
  TagList tags;
  if (j.contains("Tags")) {
    if (!j["Tags"].is_array()) return validation(call, "Tags must be a list", "INVALID_TAG");
    for (const auto& t : j["Tags"]) {
      if (!t.is_object()) return validation(call, "Each tag must be an object", "INVALID_TAG");
      auto text = [&t](const char* member) {
        auto it = t.find(member);
        return it != t.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      tags.emplace_back(text("Key"), text("Value"));
    }
  }
  if (auto bad = check_tags({}, tags, kEbsTagRules)) return refuse(call, *bad);
  std::lock_guard<std::mutex> lock(ctx.mu());
  Snapshot s;
  if (!token.empty()) {
    for (const auto& [id, other] : ctx.world().snapshots) {
      if (other.direct && other.client_token == token) s = other;
    }
  }
  if (s.id.empty()) {
    Snapshot* parent = nullptr;
    if (!parent_id.empty()) {
      Reply error;
      parent = owned(ctx, call, parent_id, &error);
      if (!parent) return error;
      if (parent->state != "completed") {
        return validation(call, "The parent snapshot " + parent_id + " is not completed", "INVALID_SNAPSHOT_ID");
      }
      if (size < parent->volume_size) {
        return validation(call, "VolumeSize " + std::to_string(size) + " is smaller than the parent's " +
                                    std::to_string(parent->volume_size), "INVALID_VOLUME_SIZE");
      }
    }
    s.id = ctx.new_id("snap");
    s.owner_id = kAccountId;
    s.volume_id = "vol-ffffffff";
    s.volume_size = static_cast<int>(size);
    s.description = j.value("Description", "");
    s.encrypted = parent ? parent->encrypted : encrypted;
    s.kms_key_id = parent ? parent->kms_key_id : kms_key_arn;
    s.client_token = token;
    s.direct = true;
    s.parent_id = parent_id;
    s.start_time = ctx.now();
    s.timeout_at = ctx.options().speed > 0 ? ctx.after(static_cast<double>(timeout) * 60) : 0;
    s.layer = s.id;
    for (const auto& [key, value] : tags) s.tags[key] = value;
    // An empty layer on the parent's: unwritten blocks read as the parent's (layers.cc).
    Status made = create_layer(ctx, s.layer, parent ? parent->layer : "", size * kGiB);
    if (!made) return error_reply(call, 500, "InternalServerException", made.error().message);
    ctx.world().snapshots[s.id] = s;
    ctx.maybe_hide(call.action, s.id);
    ctx.commit();
  }
  nlohmann::json out = {{"SnapshotId", s.id},   {"OwnerId", s.owner_id},
                        {"Status", s.state},    {"StartTime", s.start_time},
                        {"VolumeSize", s.volume_size}, {"BlockSize", kBlockSize},
                        {"SseType", s.encrypted ? "sse-ebs" : "none"}};
  if (!s.description.empty()) out["Description"] = s.description;
  if (!s.parent_id.empty()) out["ParentSnapshotId"] = s.parent_id;
  if (!s.kms_key_id.empty()) out["KmsKeyArn"] = s.kms_key_id;
  if (!s.tags.empty()) {
    out["Tags"] = nlohmann::json::array();
    for (const auto& [k, v] : s.tags) out["Tags"].push_back({{"Key", k}, {"Value", v}});
  }
  return json_reply(call, out, 201);
}

bool parse_index(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 12) return false;
  for (char c : text) if (c < '0' || c > '9') return false;
  *out = std::stoll(text);
  return true;
}

Reply put_block(Context& ctx, const Call& call, const std::string& id, const std::string& index_text) {
  int64_t index = 0;
  if (!parse_index(index_text, &index)) return validation(call, "BlockIndex is not a number", "INVALID_BLOCK");
  std::string path;
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    Reply error;
    Snapshot* s = owned(ctx, call, id, &error);
    if (!s) return error;
    if (s->state != "pending" || !s->direct || s->sealed) {
      return validation(call, "The snapshot " + id + " is " + (s->sealed ? "being completed" : s->state) +
                                  "; blocks can only be written to a pending snapshot started with StartSnapshot",
                        "INVALID_SNAPSHOT_ID");
    }
    if (index >= static_cast<int64_t>(s->volume_size) * kGiB / kBlockSize) {
      return validation(call, "BlockIndex " + index_text + " is beyond the volume size", "INVALID_BLOCK");
    }
    path = ctx.layer_path(ctx.layers()[s->layer]);
  }
  std::string length = call.header("x-amz-data-length");
  if (length != std::to_string(kBlockSize) || call.body.size() != static_cast<size_t>(kBlockSize)) {
    return validation(call, "DataLength must be 524288 and match the body (got header \"" + length +
                                "\", body " + std::to_string(call.body.size()) + " bytes)", "INVALID_PARAMETER_VALUE");
  }
  if (call.header("x-amz-checksum-algorithm") != "SHA256") {
    return validation(call, "ChecksumAlgorithm must be SHA256", "INVALID_PARAMETER_VALUE");
  }
  std::string digest = aws::sha256_raw(call.body);
  std::string checksum = aws::base64_encode(digest);
  if (call.header("x-amz-checksum") != checksum) {
    return validation(call, "The checksum of block " + index_text + " does not match its data", "INVALID_PARAMETER_VALUE");
  }
  {
    // Re-check under the lock and register the write, so CompleteSnapshot cannot seal
    // the snapshot while this block is still going into its file.
    std::lock_guard<std::mutex> lock(ctx.mu());
    auto it = ctx.world().snapshots.find(id);
    if (it == ctx.world().snapshots.end()) return not_found(call, id);
    if (it->second.state != "pending" || it->second.sealed) {
      return validation(call, "The snapshot " + id + " was completed or failed during the put",
                        "INVALID_SNAPSHOT_ID");
    }
    ++ctx.puts_in_flight()[id];
  }
  Status written = blocks::write_block(path, index, call.body);
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    if (--ctx.puts_in_flight()[id] == 0) ctx.puts_in_flight().erase(id);
    if (!written) return error_reply(call, 500, "InternalServerException", written.error().message);
    auto it = ctx.world().snapshots.find(id);
    if (it == ctx.world().snapshots.end()) return not_found(call, id);
    it->second.written[index] = digest;
    ctx.mark_dirty();
  }
  Reply r = json_reply(call, nlohmann::json::object(), 201);
  r.body.clear();
  r.headers.emplace_back("x-amz-Checksum", checksum);
  r.headers.emplace_back("x-amz-Checksum-Algorithm", "SHA256");
  return r;
}

// Finds a completed, owned snapshot for reading (mu() held); sets *layer (its content)
// and *volume_size; with `digest`, the SHA-256 of block `index` when it was put to it.
std::optional<Reply> readable(Context& ctx, const Call& call, const std::string& id,
                              std::string* layer, int* volume_size, int64_t index = -1,
                              std::string* digest = nullptr) {
  Reply error;
  Snapshot* s = owned(ctx, call, id, &error);
  if (!s) return error;
  if (s->state != "completed") {
    return validation(call, "The snapshot " + id + " is " + s->state +
                                "; only completed snapshots can be read", "INVALID_SNAPSHOT_ID");
  }
  *layer = s->layer;
  *volume_size = s->volume_size;
  if (digest) {
    // A block put to this snapshot: its SHA-256 is already known (and final).
    auto it = s->written.find(index);
    if (it != s->written.end()) *digest = it->second;
  }
  return std::nullopt;
}

Reply get_block(Context& ctx, const Call& call, const std::string& id, const std::string& index_text) {
  int64_t index = 0;
  if (!parse_index(index_text, &index)) return validation(call, "BlockIndex is not a number", "INVALID_BLOCK");
  std::string layer;
  int volume_size = 0;
  std::string digest;
  BlockSource source;
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    if (auto bad = readable(ctx, call, id, &layer, &volume_size, index, &digest)) return *bad;
    source = locate_block(ctx, layer, index);
  }
  auto token = call.query.find("blockToken");
  if (token == call.query.end() || token->second != block_token(id, index)) {
    return validation(call, "The block token is not valid for block " + index_text + " of " + id, "INVALID_BLOCK_TOKEN");
  }
  auto data = source.path.empty() ? Result<std::string>(std::string(kBlockSize, '\0'))
                                  : blocks::read_block(source.path, index, kBlockSize);
  if (!data) return error_reply(call, 500, "InternalServerException", data.error().message);
  std::string key = id + "/" + index_text;
  std::string checksum = digest.empty() ? "" : aws::base64_encode(digest);
  if (checksum.empty()) {
    std::lock_guard<std::mutex> lock(ctx.cache_mu());
    auto it = ctx.checksum_cache().find(key);
    if (it != ctx.checksum_cache().end()) checksum = it->second;
  }
  if (checksum.empty()) {
    checksum = aws::sha256_base64(*data);
    std::lock_guard<std::mutex> lock(ctx.cache_mu());
    ctx.checksum_cache()[key] = checksum;  // completed snapshots never change
  }
  Reply r;
  r.content_type = "application/octet-stream";
  r.body = std::move(data).value();
  r.headers = {{"x-amz-Data-Length", std::to_string(kBlockSize)},
               {"x-amz-Checksum", checksum},
               {"x-amz-Checksum-Algorithm", "SHA256"},
               {"x-amzn-RequestId", call.request_id}};
  return r;
}

struct Paging {
  int64_t start = 0;
  size_t max = 10000;
};

std::optional<Reply> read_paging(const Call& call, const std::string& id, Paging* p) {
  if (auto it = call.query.find("maxResults"); it != call.query.end()) {
    int64_t n = 0;
    if (!parse_index(it->second, &n) || n < 100 || n > 10000) {
      return validation(call, "MaxResults must be between 100 and 10000", "INVALID_PARAMETER_VALUE");
    }
    p->max = static_cast<size_t>(n);
  }
  if (auto it = call.query.find("startingBlockIndex"); it != call.query.end()) {
    if (!parse_index(it->second, &p->start)) return validation(call, "StartingBlockIndex is not a number", "INVALID_BLOCK");
  }
  if (auto it = call.query.find("pageToken"); it != call.query.end()) {
    int64_t next = parse_page_token(it->second, id);
    if (next < 0) return validation(call, "The page token is not valid", "INVALID_PAGE_TOKEN");
    p->start = std::max(p->start, next);
  }
  return std::nullopt;
}

Reply list_blocks(Context& ctx, const Call& call, const std::string& id) {
  Paging paging;
  if (auto bad = read_paging(call, id, &paging)) return *bad;
  std::string layer;
  int volume_size = 0;
  std::shared_ptr<const std::vector<int64_t>> indexes;
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    if (auto bad = readable(ctx, call, id, &layer, &volume_size)) return *bad;
    auto listed = content_blocks(ctx, layer);
    if (!listed) return error_reply(call, 500, "InternalServerException", listed.error().message);
    indexes = *listed;
  }
  nlohmann::json list = nlohmann::json::array();
  nlohmann::json out = {{"ExpiryTime", ctx.now() + kTokenLifetime}, {"VolumeSize", volume_size},
                        {"BlockSize", kBlockSize}};
  for (int64_t index : *indexes) {
    if (index < paging.start) continue;
    if (list.size() == paging.max) {
      out["NextToken"] = page_token(id, index);
      break;
    }
    list.push_back({{"BlockIndex", index}, {"BlockToken", block_token(id, index)}});
  }
  out["Blocks"] = list;
  return json_reply(call, out);
}

Reply list_changed(Context& ctx, const Call& call, const std::string& second_id) {
  Paging paging;
  if (auto bad = read_paging(call, second_id, &paging)) return *bad;
  std::string second_layer, first_layer;
  int volume_size = 0, first_size = 0;
  std::string first_id;
  if (auto it = call.query.find("firstSnapshotId"); it != call.query.end()) first_id = it->second;
  std::shared_ptr<const std::vector<int64_t>> second;
  std::vector<int64_t> first, all;
  // Blocks in both: where each snapshot reads them from. The same layer means the same
  // bytes (shared content); otherwise the bytes are compared below, outside the lock.
  std::map<int64_t, std::pair<BlockSource, BlockSource>> both;
  {
    std::lock_guard<std::mutex> lock(ctx.mu());
    if (auto bad = readable(ctx, call, second_id, &second_layer, &volume_size)) return *bad;
    if (!first_id.empty()) {
      if (auto bad = readable(ctx, call, first_id, &first_layer, &first_size)) return *bad;
      if (first_size != volume_size) {
        return validation(call, "The two snapshots have different volume sizes",
                          "UNRELATED_SNAPSHOTS");
      }
    }
    auto s = content_blocks(ctx, second_layer);
    if (!s) return error_reply(call, 500, "InternalServerException", s.error().message);
    second = *s;
    if (!first_id.empty()) {
      auto f = content_blocks(ctx, first_layer);
      if (!f) return error_reply(call, 500, "InternalServerException", f.error().message);
      first = **f;
    }
    std::set_union(first.begin(), first.end(), second->begin(), second->end(),
                   std::back_inserter(all));
    for (int64_t index : all) {
      if (index < paging.start || !std::binary_search(first.begin(), first.end(), index) ||
          !std::binary_search(second->begin(), second->end(), index)) {
        continue;
      }
      both[index] = {locate_block(ctx, first_layer, index), locate_block(ctx, second_layer, index)};
    }
  }
  nlohmann::json list = nlohmann::json::array();
  nlohmann::json out = {{"ExpiryTime", ctx.now() + kTokenLifetime}, {"VolumeSize", volume_size},
                        {"BlockSize", kBlockSize}};
  for (int64_t index : all) {
    if (index < paging.start) continue;
    bool in_first = std::binary_search(first.begin(), first.end(), index);
    bool in_second = std::binary_search(second->begin(), second->end(), index);
    if (in_first && in_second) {
      const auto& [a_at, b_at] = both[index];
      if (a_at.layer == b_at.layer) continue;
      auto a = blocks::read_block(a_at.path, index, kBlockSize);
      auto b = blocks::read_block(b_at.path, index, kBlockSize);
      if (a && b && *a == *b) continue;
    }
    if (list.size() == paging.max) {
      out["NextToken"] = page_token(second_id, index);
      break;
    }
    nlohmann::json item = {{"BlockIndex", index}};
    if (in_first) item["FirstBlockToken"] = block_token(first_id, index);
    if (in_second) item["SecondBlockToken"] = block_token(second_id, index);
    list.push_back(item);
  }
  out["ChangedBlocks"] = list;
  return json_reply(call, out);
}

Reply complete(Context& ctx, const Call& call, const std::string& id) {
  std::string count_text = call.header("x-amz-changedblockscount");
  int64_t count = 0;
  if (!parse_index(count_text, &count)) {
    return validation(call, "ChangedBlocksCount is required and must be a non-negative number", "INVALID_PARAMETER_VALUE");
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  Snapshot* s = owned(ctx, call, id, &error);
  if (!s) return error;
  if (!s->direct) return validation(call, "The snapshot " + id + " was not started with StartSnapshot", "INVALID_SNAPSHOT_ID");
  if (s->state == "error") return validation(call, "The snapshot " + id + " is in the error state: " + s->state_message, "INVALID_SNAPSHOT_ID");
  if (!s->sealed) {
    if (ctx.puts_in_flight().count(id)) {
      return error_reply(call, 409, "ConflictException",
                         "Blocks of " + id + " are still being written; complete the snapshot "
                         "after every PutSnapshotBlock has been answered");
    }
    if (static_cast<size_t>(count) != s->written.size()) {
      return validation(call, "ChangedBlocksCount " + count_text + " does not match the " +
                                  std::to_string(s->written.size()) + " blocks written to " + id,
                        "INVALID_PARAMETER_VALUE");
    }
    std::string checksum = call.header("x-amz-checksum");
    if (!checksum.empty()) {
      if (call.header("x-amz-checksum-algorithm") != "SHA256" ||
          call.header("x-amz-checksum-aggregation-method") != "LINEAR") {
        return validation(call, "An aggregate checksum needs ChecksumAlgorithm SHA256 and "
                                "ChecksumAggregationMethod LINEAR", "INVALID_PARAMETER_VALUE");
      }
      std::string all;
      for (const auto& [index, digest] : s->written) all += digest;
      if (aws::sha256_base64(all) != checksum) {
        return validation(call, "The aggregate checksum does not match the blocks written to " + id,
                          "INVALID_PARAMETER_VALUE");
      }
    }
    s->sealed = true;
    seal_layer(ctx, *s);
    s->ready_at = ctx.after(5 + static_cast<double>(s->written.size()) * kBlockSize / (200.0 * 1024 * 1024));
    ctx.advance();
    ctx.commit();
  }
  return json_reply(call, {{"Status", s->state}}, 202);
}

}  // namespace

std::string ebs_action(const std::string& method, const std::string& path) {
  auto parts = split_path(path);
  if (parts.empty() || parts[0] != "snapshots") return "";
  if (parts.size() == 1 && method == "POST") return "StartSnapshot";
  if (parts.size() == 3 && parts[1] == "completion" && method == "POST") return "CompleteSnapshot";
  if (parts.size() == 4 && parts[2] == "blocks") {
    return method == "PUT" ? "PutSnapshotBlock" : method == "GET" ? "GetSnapshotBlock" : "";
  }
  if (parts.size() == 3 && parts[2] == "blocks" && method == "GET") return "ListSnapshotBlocks";
  if (parts.size() == 3 && parts[2] == "changedblocks" && method == "GET") return "ListChangedBlocks";
  return "";
}

Reply handle_ebs(Context& ctx, Call& call) {
  auto parts = split_path(call.path);
  const std::string& a = call.action;
  if (a == "StartSnapshot") return start_snapshot(ctx, call);
  if (a == "CompleteSnapshot") return complete(ctx, call, parts[2]);
  if (a == "PutSnapshotBlock") return put_block(ctx, call, parts[1], parts[3]);
  if (a == "GetSnapshotBlock") return get_block(ctx, call, parts[1], parts[3]);
  if (a == "ListSnapshotBlocks") return list_blocks(ctx, call, parts[1]);
  if (a == "ListChangedBlocks") return list_changed(ctx, call, parts[1]);
  return error_reply(call, 404, "UnknownOperationException",
                     "awsemu: no EBS operation at " + call.method + " " + call.path);
}

}  // namespace amibake::emu
