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
inline constexpr const char* kRegion = "us-east-1";  // the host's region, the default
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
  std::vector<std::string> launch_organizations, launch_ous;  // ARNs
  std::string deprecation_time;            // ISO 8601, empty = none
  std::vector<Mapping> mappings;
  Tags tags;
  std::string client_token, source_image_id;
  std::string client_token_params;  // what the request with client_token asked (idempotency)
  std::string source_region;        // CopyImage's SourceRegion
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
  std::vector<std::string> volume_user_ids;  // createVolumePermission
  std::vector<std::string> volume_groups;    // "all"
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

// One version of a parameter, as GetParameterHistory lists them.
struct ParameterVersion {
  int64_t version = 1;
  std::string value, type = "String", data_type = "text", description;
  double last_modified = 0;
  double ready_at = 0;  // pending (aws:ec2:image): when its validation is done
};

struct Parameter {
  std::string name, type = "String", value, data_type = "text", description;
  int64_t version = 1;
  double last_modified = 0;
  std::vector<ParameterVersion> history;  // every version that became the value, oldest first
  // aws:ec2:image versions being validated (AWS validates asynchronously): each becomes
  // the value at its ready_at if it names an AMI of the region, else it is dropped.
  std::vector<ParameterVersion> pending;
  int64_t versions_put = 0;  // the highest version number handed out
  // A parameter whose first version is still pending has version 0: not found yet.
  bool exists() const { return version > 0; }
};

// A launch template version; `data` is the LaunchTemplateData in botocore's member
// names (the JSON shape of the API), see launch_templates.cc.
struct LaunchTemplateVersion {
  int64_t number = 1;
  std::string description;
  std::string client_token;  // CreateLaunchTemplateVersion's; the same token answers this version
  double create_time = 0;
  nlohmann::json data = nlohmann::json::object();
};

struct LaunchTemplate {
  std::string id, name, client_token;
  int64_t default_version = 1, latest_version = 1;
  double create_time = 0;
  Tags tags;
  std::vector<LaunchTemplateVersion> versions;  // ascending; deleted versions absent
};

// An AWS Batch compute environment; the request's JSON parts are kept as given.
struct ComputeEnvironment {
  std::string name, arn, type = "MANAGED", state = "ENABLED", service_role, uuid;
  std::string status = "CREATING";  // CREATING | UPDATING | VALID | INVALID | DELETING | DELETED
  std::string status_reason;
  std::string next_status;          // what status becomes at ready_at ("" = none)
  double ready_at = 0, created_at = 0;
  nlohmann::json compute_resources;  // null for UNMANAGED
  nlohmann::json update_policy;
  nlohmann::json eks_configuration;
  int64_t unmanaged_vcpus = 0;
  Tags tags;
};

// A recorded instance (RunInstances); nothing boots.
struct Instance {
  std::string id, image_id, instance_type = "m5.large", reservation_id, zone, subnet_id;
  std::string state = "pending";  // pending | running | shutting-down | terminated
  std::string key_name, client_token, launch_template_id, launch_template_version;
  std::vector<std::string> security_group_ids;
  double launch_time = 0, ready_at = 0;
  Tags tags;
};

// Keys accepted by the signature check besides the configured test identity.
struct IssuedKey {
  std::string access_key_id, secret, session_token, arn;
  double expires = 0;
};

// One region's resources: every region named in a request's credential scope is a
// world of its own, as on AWS.
struct World {
  std::map<std::string, Image> images;
  std::map<std::string, Snapshot> snapshots;
  std::map<std::string, Volume> volumes;
  std::map<std::string, Parameter> parameters;
  std::map<std::string, LaunchTemplate> launch_templates;        // by id
  std::map<std::string, ComputeEnvironment> compute_environments;  // by name
  std::map<std::string, Instance> instances;
};

// Everything awsemu holds: the regions' worlds plus what is global (snapshot content,
// which copies across regions share; issued keys; id draws).
struct Universe {
  std::map<std::string, World> regions;
  std::map<std::string, Layer> layers;
  std::map<std::string, IssuedKey> keys;
  // Eventual-consistency window: id -> time before which Describe* says NotFound.
  std::map<std::string, double> invisible_until;
  // Numbers drawn from the seeded generator so far; replayed on load so a restarted
  // awsemu never hands out an id it gave before (even of a deleted resource).
  uint64_t rng_draws = 0;
};

// JSON round trip of the whole universe (state.json, format 3: per region). Formats 1
// and 2 (one region) load as region us-east-1.
nlohmann::json to_json(const Universe& u);
Universe universe_from_json(const nlohmann::json& j);

// Formats epoch seconds as "2026-11-25T07:39:51.000Z".
std::string iso_time(double epoch_seconds);
// Parses "2026-11-25T07:39:51Z" (fraction optional); returns false if malformed.
bool parse_iso_time(const std::string& text, double* epoch_seconds);

}  // namespace amibake::emu
