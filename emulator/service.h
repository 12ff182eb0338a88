// Internal interface shared by awsemu's service handlers (EC2, SSM, STS, EBS, IMDS).
//
// A request arrives at server.cc, which authenticates it, works out service and
// operation, applies --deny and --faults, and hands a `Call` to the service's
// handler. Handlers work on the shared `Context` (the world, under one mutex) and
// return a `Reply`. Error replies are built by the per-protocol helpers below so
// every service answers errors in its own wire shape.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "emulator/faults.h"
#include "emulator/model.h"

namespace amibake::emu {

// What awsemu was started with (see emulator/README.md for the flags).
struct Options {
  std::string host = "127.0.0.1";
  int port = 0;                 // 0 = pick a free one
  std::string data_dir;         // required
  std::string catalog_dir;      // optional: folder holding catalog.json
  std::string device_dir;       // by-id link folder; default <data>/dev/disk/by-id
  uint64_t seed = 1;
  double speed = 1.0;           // multiplies every duration; 0 = instant
  FaultSpec faults;
  std::set<std::string> deny;   // operations answered with an authorization error
  std::string access_key_id = "AKIAAWSEMU0EXAMPLE00";
  std::string secret_access_key = "awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0";
  bool verify_signatures = true;
  int threads = 64;
  bool unshared_catalog_snapshots = false;  // catalog snapshots not usable by the account
  // --latency: "service:Action" -> milliseconds added to each answer of that operation.
  std::map<std::string, double> latency_ms;
};

enum class Protocol { kEc2, kQuery, kJson, kRestJson };

// A parsed, authenticated request.
struct Call {
  std::string service;   // "ec2", "ssm", "sts", "ebs", "batch"
  std::string region = "us-east-1";  // of the SigV4 credential scope; the host's when unsigned
  std::string action;    // "DescribeImages", "PutSnapshotBlock", ...
  Protocol protocol = Protocol::kEc2;
  std::map<std::string, std::string> params;  // Query protocols: decoded form fields
  nlohmann::json json;                        // JSON protocols: parsed body
  std::string method, path;                   // raw HTTP parts
  std::string_view body;                      // the request body (not copied)
  std::map<std::string, std::string> headers; // lower-case names
  std::map<std::string, std::string> query;   // decoded query string (REST)
  std::string request_id;
  std::string access_key_id;
  // Returns header `name` (lower-case) or "".
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  std::string param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

struct Reply {
  int status = 200;
  std::string content_type = "text/xml;charset=UTF-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The shared state behind every handler.
class Context {
 public:
  explicit Context(Options options);

  const Options& options() const { return options_; }
  std::mutex& mu() { return mu_; }
  // The world of the region this thread's request is for (RegionScope; the host's region
  // outside a request). Created on first use, with the catalog's images. Only with mu() held.
  World& world() { return world(current_region()); }
  World& world(const std::string& region);
  // Regions that have a world so far (mu() held).
  std::map<std::string, World>& regions() { return universe_.regions; }
  std::map<std::string, Layer>& layers() { return universe_.layers; }      // mu() held
  std::map<std::string, IssuedKey>& keys() { return universe_.keys; }      // mu() held
  FaultInjector& faults() { return faults_; }

  // The region of the request being handled on this thread.
  static const std::string& current_region();
  // Sets this thread's region for its lifetime (route() makes one per request).
  class RegionScope {
   public:
    explicit RegionScope(const std::string& region);
    ~RegionScope();
    RegionScope(const RegionScope&) = delete;
    RegionScope& operator=(const RegionScope&) = delete;

   private:
    std::string previous_;
  };

  // The catalog (catalog.cc) fills every region's world with Amazon's images: it is
  // kept here so a region first named later gets them too.
  struct CatalogEntry {
    nlohmann::json entry;
    std::string dir, owner_id, owner_alias;
  };
  std::vector<CatalogEntry>& catalog() { return catalog_; }

  double now() const;                     // wall clock, epoch seconds
  double after(double aws_seconds) const; // now + aws_seconds * speed
  // Returns a fresh id "<prefix>-<17 hex>" not used by any resource (mu() held).
  std::string new_id(const std::string& prefix);
  std::string new_request_id();
  // Returns `n` random bytes from the seeded generator (mu() held).
  std::string random_bytes(size_t n);
  // Returns the next number of the seeded generator, counting draws (mu() held).
  uint64_t draw() {
    ++universe_.rng_draws;
    return rng_();
  }

  // Moves every due state transition in every region (mu() held). Marks the world dirty
  // if anything moved.
  void advance();
  // Saves state.json now (mu() held); errors are logged, the request still succeeds.
  void commit();
  // Marks the world as changed; a background flush saves it soon (mu() held).
  void mark_dirty() { dirty_ = true; }
  // Saves if dirty (takes mu()).
  void flush();
  // Loads state.json if present. Call once before serving.
  Status load();

  std::string layer_path(const Layer& layer) const;
  std::string volume_path(const Volume& v) const;
  std::string device_dir() const;

  // Marks `id` invisible for a while if the notfound fault fires for `op` (mu() held).
  void maybe_hide(const std::string& op, const std::string& id);
  // Returns true when `id` is inside its eventual-consistency window (mu() held).
  bool hidden(const std::string& id);

  // Block puts in progress per snapshot (mu() held): CompleteSnapshot refuses while a
  // put is still writing, so a completed snapshot can never change afterwards.
  std::map<std::string, int>& puts_in_flight() { return puts_in_flight_; }

  // Cache of block checksums of completed (immutable) snapshots: "snap/index" -> b64.
  std::mutex& cache_mu() { return cache_mu_; }
  std::map<std::string, std::string>& checksum_cache() { return checksum_cache_; }

  // Block lists of completed layers, which never change (layers.cc; mu() held).
  struct LayerCache {
    std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> root_extents;
    std::map<std::string, std::shared_ptr<const std::vector<int64_t>>> content;
  };
  LayerCache& layer_cache() { return layer_cache_; }

  // Counts one request of `op` ("ec2:CreateSnapshot"); thread-safe, any lock.
  void count_call(const std::string& op);
  // Returns the requests counted per operation since start; thread-safe.
  std::map<std::string, uint64_t> call_counts();

 private:
  Options options_;
  std::mutex mu_;
  Universe universe_;
  std::vector<CatalogEntry> catalog_;
  FaultInjector faults_;
  std::mt19937_64 rng_;
  std::atomic<bool> dirty_{false};
  std::atomic<uint64_t> request_counter_{0};
  // Saves are ordered by generation so a slow background save never overwrites a
  // newer synchronous one.
  std::mutex save_mu_;
  uint64_t generation_ = 0;        // bumped under mu_ at each serialisation
  uint64_t saved_generation_ = 0;  // under save_mu_
  void write_state(const std::string& text, uint64_t generation);
  bool advance_region(World& w, double t);
  std::mutex cache_mu_;
  std::map<std::string, std::string> checksum_cache_;
  std::map<std::string, int> puts_in_flight_;
  LayerCache layer_cache_;
  std::mutex counts_mu_;
  std::map<std::string, uint64_t> call_counts_;
};

// ---- replies ---------------------------------------------------------------

inline constexpr const char* kEc2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/";
inline constexpr const char* kStsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/";

// Returns an error reply in the wire shape of `protocol`. `extra` adds JSON fields
// (e.g. {"Reason": "UNAUTHORIZED_ACCOUNT"}) for the JSON protocols.
Reply error_reply(Protocol protocol, int status, const std::string& code,
                  const std::string& message, const std::string& request_id,
                  const nlohmann::json& extra = nlohmann::json::object());
// Returns an error reply for the protocol of `call`.
Reply error_reply(const Call& call, int status, const std::string& code,
                  const std::string& message,
                  const nlohmann::json& extra = nlohmann::json::object());
// JSON reply (SSM: application/x-amz-json-1.1; EBS: application/json).
Reply json_reply(const Call& call, const nlohmann::json& body, int status = 200);

// Escapes text for XML element content.
std::string xml_escape(const std::string& text);

// Builds EC2/STS XML answers: open/close/leaf, with escaping.
class Xml {
 public:
  Xml& open(const std::string& tag) { out_ += "<" + tag + ">"; return *this; }
  Xml& close(const std::string& tag) { out_ += "</" + tag + ">"; return *this; }
  Xml& leaf(const std::string& tag, const std::string& value) {
    out_ += "<" + tag + ">" + xml_escape(value) + "</" + tag + ">";
    return *this;
  }
  // Writes the leaf only when value is not empty.
  Xml& opt(const std::string& tag, const std::string& value) {
    return value.empty() ? *this : leaf(tag, value);
  }
  Xml& boolean(const std::string& tag, bool value) { return leaf(tag, value ? "true" : "false"); }
  Xml& number(const std::string& tag, int64_t value) { return leaf(tag, std::to_string(value)); }
  Xml& tags(const Tags& tags);  // <tagSet><item><key/><value/></item>...</tagSet>
  std::string& str() { return out_; }

 private:
  std::string out_;
};

// Wraps `inner` as <ActionResponse xmlns=EC2><requestId/>inner</ActionResponse>.
Reply ec2_reply(const Call& call, const std::string& inner);

// ---- EC2 Query parameter helpers -----------------------------------------

// Returns values of "<prefix>.1", "<prefix>.2", ... in order.
std::vector<std::string> query_list(const Call& call, const std::string& prefix);
// Returns the sub-maps of "<prefix>.N.<rest>" keyed by rest, for N = 1, 2, ...
std::vector<std::map<std::string, std::string>> query_structs(
    const std::map<std::string, std::string>& params, const std::string& prefix);
// Same, with the item sub-map's list "<name>.N" read back.
std::vector<std::string> sub_list(const std::map<std::string, std::string>& item,
                                  const std::string& name);

struct Filter {
  std::string name;
  std::vector<std::string> values;
};
std::vector<Filter> query_filters(const Call& call);
// Returns true when any of `values` matches any pattern (EC2 '*' and '?' wildcards).
bool filter_matches(const std::vector<std::string>& patterns,
                    const std::vector<std::string>& values);
// Applies "tag:<key>", "tag-key", "tag-value" filters; returns false if one fails.
// Sets *handled to true for filters it understood.
bool tag_filters_match(const Filter& f, const Tags& tags, bool* handled);
// Reads TagSpecification.N for `resource_type` into tags.
Tags tag_specifications(const Call& call, const std::string& resource_type);

// ---- service entry points (each returns the reply for one call) ----------

Reply handle_ec2(Context& ctx, const Call& call);
Reply handle_ec2_images(Context& ctx, const Call& call);   // image operations
Reply handle_ec2_storage(Context& ctx, const Call& call);  // volumes, snapshots
Reply handle_ssm(Context& ctx, const Call& call);
Reply handle_batch(Context& ctx, const Call& call);  // batch.cc
Reply handle_kms(Context& ctx, const Call& call);    // kms.cc: DescribeKey
// Why a compute environment about to become VALID is INVALID instead (an AMI it launches
// from is missing or not available in world `w`), or "" (batch.cc; mu() held).
std::string batch_image_problem(const World& w, const ComputeEnvironment& ce);
Reply handle_launch_templates(Context& ctx, const Call& call);  // launch_templates.cc
Reply handle_instances(Context& ctx, const Call& call);         // instances.cc
Reply handle_sts(Context& ctx, const Call& call);
Reply handle_ebs(Context& ctx, Call& call);                // sets call.action
Reply handle_imds(Context& ctx, const std::string& method, const std::string& path,
                  const std::map<std::string, std::string>& headers);

// Returns the EBS operation name for a REST path and method, or "" if unknown.
std::string ebs_action(const std::string& method, const std::string& path);

// Loads catalog.json from `dir` into every region's world (mu() held). Missing dir is
// an error.
Status load_catalog(Context& ctx, const std::string& dir);
// Adds the catalog's images, snapshots and public parameters to region `region`'s world
// `w`, with that region's ids (mu() held; called when a region's world is created).
void add_catalog_to_region(Context& ctx, const std::string& region, World& w);

// ---- regions (regions.cc) -------------------------------------------------

struct RegionInfo {
  const char* name;
  bool opt_in;  // an opt-in region (not enabled for the account)
};
// The commercial regions awsemu knows, in AWS's order.
const std::vector<RegionInfo>& known_regions();
// Returns the region named `name`, or nullptr.
const RegionInfo* find_region(const std::string& name);
// Returns the error AWS gives a request signed for a region it does not serve, or none.
std::optional<Reply> check_region(const Call& call);
Reply describe_regions(Context& ctx, const Call& call);
// Availability zones of a region: "<region>a".."<region>f" (mu() not needed).
std::vector<std::string> region_zones(const std::string& region);

}  // namespace amibake::emu
