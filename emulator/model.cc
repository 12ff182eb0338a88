// JSON form of awsemu's world (state.json) and the ISO-8601 time helpers.
//
// The struct-to-JSON mapping is declared with nlohmann's *_WITH_DEFAULT macros, so a
// state file written by an older awsemu (missing fields) still loads. The one field
// that is not text — raw SHA-256 digests of blocks written to a pending snapshot — is
// hex-encoded by hand.
#include "emulator/model.h"

#include <ctime>
#include <cstdio>

namespace nlohmann {
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& v) {
    if (v) j = *v; else j = nullptr;
  }
  static void from_json(const json& j, std::optional<T>& v) {
    if (j.is_null()) v.reset(); else v = j.get<T>();
  }
};
}  // namespace nlohmann

namespace amibake::emu {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Mapping, device_name, virtual_name, no_device,
                                                has_ebs, snapshot_id, volume_size, volume_type,
                                                iops, throughput, encrypted, kms_key_id,
                                                delete_on_termination)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Image, id, owner_id, owner_alias, name,
                                                description, architecture, boot_mode, tpm_support,
                                                imds_support, sriov_net_support,
                                                virtualization_type, root_device_name, ena_support,
                                                state, creation_time, ready_at, is_public,
                                                launch_user_ids, launch_groups,
                                                launch_organizations, launch_ous, deprecation_time,
                                                mappings, tags, client_token, source_image_id,
                                                client_token_params, source_region)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Layer, id, file, base, blocks, zeros, external)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Snapshot, id, owner_id, owner_alias, volume_id,
                                                description, volume_size, state, state_message,
                                                start_time, ready_at, encrypted, kms_key_id, tags,
                                                client_token, volume_user_ids, volume_groups,
                                                layer, file, direct, sealed,
                                                parent_id, timeout_at)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Attachment, instance_id, device, state,
                                                attach_time, ready_at, loop_device, link)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Volume, id, snapshot_id, zone, volume_type, size,
                                                iops, throughput, state, create_time, ready_at,
                                                encrypted, kms_key_id, tags, client_token, file,
                                                base_layer, materialised, attachment)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ParameterVersion, version, value, type,
                                                data_type, description, last_modified, ready_at)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Parameter, name, type, value, data_type,
                                                description, version, last_modified, history,
                                                pending, versions_put)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LaunchTemplateVersion, number, description,
                                                create_time, data, client_token)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LaunchTemplate, id, name, client_token,
                                                default_version, latest_version, create_time, tags,
                                                versions)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ComputeEnvironment, name, arn, type, state,
                                                service_role, uuid, status, status_reason,
                                                next_status, ready_at, created_at,
                                                compute_resources, update_policy,
                                                eks_configuration, unmanaged_vcpus, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Instance, id, image_id, instance_type,
                                                reservation_id, zone, subnet_id, state, key_name,
                                                client_token, launch_template_id,
                                                launch_template_version, security_group_ids,
                                                launch_time, ready_at, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(IssuedKey, access_key_id, secret, session_token,
                                                arn, expires)

namespace {

std::string to_hex(const std::string& raw) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

nlohmann::json snapshots_to_json(const std::map<std::string, Snapshot>& snapshots) {
  nlohmann::json snaps = nlohmann::json::object();
  for (const auto& [id, s] : snapshots) {
    nlohmann::json sj = s;
    nlohmann::json written = nlohmann::json::object();
    for (const auto& [index, digest] : s.written) written[std::to_string(index)] = to_hex(digest);
    sj["written"] = written;
    snaps[id] = sj;
  }
  return snaps;
}

// Reads one region's resources; a format 1 snapshot (a whole file) gets a layer of its
// own in `layers`.
World region_from_json(const nlohmann::json& j, std::map<std::string, Layer>* layers) {
  World w;
  w.images = j.value("images", decltype(w.images){});
  w.volumes = j.value("volumes", decltype(w.volumes){});
  w.parameters = j.value("parameters", decltype(w.parameters){});
  w.launch_templates = j.value("launch_templates", decltype(w.launch_templates){});
  w.compute_environments = j.value("compute_environments", decltype(w.compute_environments){});
  w.instances = j.value("instances", decltype(w.instances){});
  if (j.contains("snapshots")) {
    for (const auto& [id, sj] : j["snapshots"].items()) {
      Snapshot s = sj.get<Snapshot>();
      if (sj.contains("written")) {
        for (const auto& [index, hex] : sj["written"].items()) {
          s.written[std::stoll(index)] = from_hex(hex.get<std::string>());
        }
      }
      if (s.layer.empty() && !s.file.empty()) {
        // Format 1: every snapshot was a whole file; it becomes a layer without a base.
        Layer layer;
        layer.id = s.id;
        layer.file = s.file;
        layer.external = s.file[0] == '/';
        s.layer = s.id;
        layers->emplace(s.id, layer);
      }
      w.snapshots[id] = std::move(s);
    }
  }
  return w;
}

}  // namespace

nlohmann::json to_json(const Universe& u) {
  nlohmann::json j;
  nlohmann::json regions = nlohmann::json::object();
  for (const auto& [name, w] : u.regions) {
    regions[name] = {{"images", w.images},
                     {"snapshots", snapshots_to_json(w.snapshots)},
                     {"volumes", w.volumes},
                     {"parameters", w.parameters},
                     {"launch_templates", w.launch_templates},
                     {"compute_environments", w.compute_environments},
                     {"instances", w.instances}};
  }
  j["regions"] = regions;
  j["layers"] = u.layers;
  j["keys"] = u.keys;
  j["invisible_until"] = u.invisible_until;
  j["rng_draws"] = u.rng_draws;
  j["format"] = 3;  // 3: one world per region; 2: snapshot content in layers
  return j;
}

Universe universe_from_json(const nlohmann::json& j) {
  Universe u;
  u.layers = j.value("layers", decltype(u.layers){});
  u.keys = j.value("keys", decltype(u.keys){});
  u.invisible_until = j.value("invisible_until", decltype(u.invisible_until){});
  u.rng_draws = j.value("rng_draws", uint64_t{0});
  if (j.value("format", 1) >= 3) {
    const nlohmann::json regions = j.value("regions", nlohmann::json::object());
    for (const auto& [name, rj] : regions.items()) {
      u.regions[name] = region_from_json(rj, &u.layers);
    }
  } else {
    // Formats 1 and 2 held one world: the host's region.
    u.regions[kRegion] = region_from_json(j, &u.layers);
  }
  return u;
}

std::string iso_time(double epoch_seconds) {
  time_t secs = static_cast<time_t>(epoch_seconds);
  int millis = static_cast<int>((epoch_seconds - static_cast<double>(secs)) * 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
                tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec,
                millis < 0 ? 0 : millis);
  return buf;
}

bool parse_iso_time(const std::string& text, double* epoch_seconds) {
  struct tm tm_utc = {};
  int year, mon, day, hour = 0, min = 0, sec = 0;
  int n = std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &year, &mon, &day, &hour, &min, &sec);
  if (n != 3 && n != 6) return false;
  tm_utc.tm_year = year - 1900;
  tm_utc.tm_mon = mon - 1;
  tm_utc.tm_mday = day;
  tm_utc.tm_hour = hour;
  tm_utc.tm_min = min;
  tm_utc.tm_sec = sec;
  *epoch_seconds = static_cast<double>(timegm(&tm_utc));
  return true;
}

}  // namespace amibake::emu
