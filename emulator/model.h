// awsemu's world: the resources it holds, and how they are saved.
//
// Every resource is a plain struct; the whole world is one `World` value that is
// serialised to <data>/state.json (fsync + atomic rename) and read back on start.
// Times are wall-clock epoch seconds (double) so a restart resumes transitions that
// were in flight. States are not advanced by a timer: `advance(now)` is called
// before each request and moves whatever is due (see context.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace amibake::emu {

using Tags = std::map<std::string, std::string>;

inline constexpr int64_t kBlockSize = int64_t{512} * 1024;    // EBS direct block size
inline constexpr int64_t kGiB = 1024LL * 1024 * 1024;
inline constexpr const char* kAccountId = "123456789012";   // the caller's account
inline constexpr const char* kAmazonOwnerId = "591542846629";  // owner of the ECS AMIs
inline constexpr const char* kHostInstanceId = "i-0abc0123456789def";
inline constexpr const char* kRegion = "us-east-1";
inline constexpr const char* kHostZone = "us-east-1a";

// One block device mapping of an image, every field RegisterImage accepts.
struct Mapping {
  std::string device_name;
  std::string virtual_name;
  bool no_device = false;
  bool has_ebs = false;
  std::string snapshot_id;
  int volume_size = 0;  // GiB; 0 = unset
  std::string volume_type;
  int iops = 0;
  int throughput = 0;
  std::optional<bool> encrypted;
  std::string kms_key_id;
  std::optional<bool> delete_on_termination;
};

struct Image {
  std::string id, owner_id, owner_alias, name, description, architecture = "x86_64";
  std::string boot_mode, tpm_support, imds_support, sriov_net_support;
  std::string virtualization_type = "hvm", root_device_name = "/dev/xvda";
  std::optional<bool> ena_support;
  std::string state = "pending";  // pending | available | failed
  double creation_time = 0, ready_at = 0;
  bool is_public = false;
  std::vector<std::string> launch_user_ids;
  std::vector<std::string> launch_groups;  // "all"
  std::string deprecation_time;            // ISO 8601, empty = none
  std::vector<Mapping> mappings;
  Tags tags;
  std::string client_token, source_image_id;
};

// One layer of snapshot content (see layers.cc). A layer with a `base` holds only the
// blocks that differ from the base's content: `blocks` (data, at their offsets in
// `file`) and `zeros` (cleared, hiding the base's block); every other block reads as
// the base's. A layer without a base is a whole sparse file: its data extents are its
// blocks, holes read as zeros. Snapshots name the layer holding their content, and
// copies share it; a layer lives while a snapshot, a volume or another layer needs it.
struct Layer {
  std::string id;
  std::string file;             // relative to <data>/snapshots, or absolute: a catalog image
  std::string base;             // the layer below, "" = none
  std::vector<int64_t> blocks;  // with a base: own blocks holding data, ascending
  std::vector<int64_t> zeros;   // with a base: own blocks cleared to zeros, ascending
  bool external = false;        // a catalog image: never written, never removed
};

struct Snapshot {
  std::string id, owner_id, owner_alias, volume_id, description;
  int volume_size = 0;              // GiB
  std::string state = "pending";    // pending | completed | error
  std::string state_message;
  double start_time = 0, ready_at = 0;
  bool encrypted = false;
  std::string kms_key_id;
  Tags tags;
  std::string client_token;
  std::string layer;  // the layer holding this snapshot's content
  std::string file;   // before layers (state format 1): data file in <data>/snapshots
  // EBS direct (StartSnapshot) bookkeeping; `direct` snapshots complete only by
  // CompleteSnapshot, and fall to "error" at timeout_at.
  bool direct = false;
  bool sealed = false;  // CompleteSnapshot accepted; completes at ready_at
  std::string parent_id;
  double timeout_at = 0;
  std::map<int64_t, std::string> written;  // block index -> raw SHA-256 of what was put
};

struct Attachment {
  std::string instance_id, device, state;  // attaching | attached | detaching
  double attach_time = 0, ready_at = 0;
  std::string loop_device, link;  // set when a real loop device was attached
};

struct Volume {
  std::string id, snapshot_id, zone = kHostZone, volume_type = "gp3";
  int size = 0, iops = 0, throughput = 0;
  std::string state = "creating";  // creating | available | in-use | deleting
  double create_time = 0, ready_at = 0;
  bool encrypted = false;
  std::string kms_key_id;
  Tags tags;
  std::string client_token;
  std::string file;  // relative to <data>/volumes
  // A volume made from a snapshot has no file of its own until it is attached (nothing
  // else can write it): until then its content is `base_layer`'s. Once materialised,
  // base_layer is what the file was last compared with, for CreateSnapshot's diff.
  std::string base_layer;
  bool materialised = true;
  std::optional<Attachment> attachment;
};

struct Parameter {
  std::string name, type = "String", value, data_type = "text", description;
  int64_t version = 1;
  double last_modified = 0;
};

// Keys accepted by the signature check besides the configured test identity.
struct IssuedKey {
  std::string access_key_id, secret, session_token, arn;
  double expires = 0;
};

struct World {
  std::map<std::string, Image> images;
  std::map<std::string, Snapshot> snapshots;
  std::map<std::string, Layer> layers;
  std::map<std::string, Volume> volumes;
  std::map<std::string, Parameter> parameters;
  std::map<std::string, IssuedKey> keys;
  // Eventual-consistency window: id -> time before which Describe* says NotFound.
  std::map<std::string, double> invisible_until;
  // Numbers drawn from the seeded generator so far; replayed on load so a restarted
  // awsemu never hands out an id it gave before (even of a deleted resource).
  uint64_t rng_draws = 0;
};

// JSON round trip of the whole world (state.json).
nlohmann::json to_json(const World& world);
World world_from_json(const nlohmann::json& j);

// Formats epoch seconds as "2026-11-25T07:39:51.000Z".
std::string iso_time(double epoch_seconds);
// Parses "2026-11-25T07:39:51Z" (fraction optional); returns false if malformed.
bool parse_iso_time(const std::string& text, double* epoch_seconds);

}  // namespace amibake::emu
