// datavol.toml parsing with toml++ (header-only mode so the datavol binary stays static:
// Debian ships toml++ only as a shared library).
//
// Validation is strict: an unknown key, a wrong type, two ways of finding one volume or an
// unsupported filesystem is an error at load time, never a surprise at mkfs time. Labels are
// checked against the filesystem's limit because mkfs would otherwise fail half-way through
// a boot.
#include "datavol/config.h"

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include <set>
#include <sstream>
#include <cstdio>

#include "base/files.h"

namespace amibake::datavol {
namespace {

const std::set<std::string> kKnownKeys = {
    "device",       "volume_id",    "instance_store", "mount", "filesystem",
    "label",        "mkfs_options", "mount_options",  "owner", "mode",
    "wait_seconds", "grow",         "required_by"};

size_t label_limit(const std::string& fs) { return fs == "xfs" ? 12 : 16; }

Error key_error(const std::string& where, const std::string& key, const std::string& what) {
  return make_error(
      where + ": " + key + ": " + what,
      "[[volume]] keys: device | volume_id | instance_store, mount, filesystem, label, "
      "mkfs_options, mount_options, owner, mode, wait_seconds, grow, required_by",
      2);
}

Result<std::vector<std::string>> string_array(const toml::node& node, const std::string& where,
                                              const std::string& key) {
  const toml::array* arr = node.as_array();
  if (!arr) return key_error(where, key, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) return key_error(where, key, "expected an array of strings");
    out.push_back(*s);
  }
  return out;
}

Result<std::string> string_value(const toml::node& node, const std::string& where,
                                 const std::string& key) {
  auto s = node.value<std::string>();
  if (!s) return key_error(where, key, "expected a string");
  return *s;
}

Result<mode_t> parse_mode(const toml::node& node, const std::string& where) {
  // "0755" (string, octal) is the readable form; an integer is taken as written in octal
  // digits too (755), since TOML has no octal-looking decimal.
  std::string text;
  if (auto s = node.value<std::string>()) {
    text = *s;
  } else if (auto i = node.value<int64_t>()) {
    text = std::to_string(*i);
  } else {
    return key_error(where, "mode", "expected a string such as \"0755\"");
  }
  if (text.empty() || text.size() > 4 || text.find_first_not_of("01234567") != std::string::npos) {
    return key_error(where, "mode", "\"" + text + "\" is not an octal mode such as \"0755\"");
  }
  return static_cast<mode_t>(std::stoul(text, nullptr, 8));
}

Status apply_key(VolumeConfig& v, const std::string& key, const toml::node& node,
                 const std::string& where) {
  if (key == "device") {
    AMIBAKE_ASSIGN(v.device, string_value(node, where, key));
  } else if (key == "volume_id") {
    AMIBAKE_ASSIGN(v.volume_id, string_value(node, where, key));
  } else if (key == "instance_store") {
    AMIBAKE_ASSIGN(std::string mode, string_value(node, where, key));
    if (mode == "raid0")
      v.instance_store = InstanceStoreMode::kRaid0;
    else if (mode == "each")
      v.instance_store = InstanceStoreMode::kEach;
    else
      return key_error(where, key, "\"" + mode + "\" is not \"raid0\" or \"each\"");
  } else if (key == "mount") {
    AMIBAKE_ASSIGN(v.mount, string_value(node, where, key));
  } else if (key == "filesystem") {
    AMIBAKE_ASSIGN(v.filesystem, string_value(node, where, key));
  } else if (key == "label") {
    AMIBAKE_ASSIGN(v.label, string_value(node, where, key));
  } else if (key == "mkfs_options") {
    AMIBAKE_ASSIGN(v.mkfs_options, string_array(node, where, key));
  } else if (key == "mount_options") {
    AMIBAKE_ASSIGN(v.mount_options, string_value(node, where, key));
  } else if (key == "owner") {
    AMIBAKE_ASSIGN(v.owner, string_value(node, where, key));
  } else if (key == "mode") {
    AMIBAKE_ASSIGN(v.mode, parse_mode(node, where));
  } else if (key == "wait_seconds") {
    auto i = node.value<int64_t>();
    if (!i || *i < 0 || *i > 3600) return key_error(where, key, "expected 0..3600");
    v.wait_seconds = static_cast<int>(*i);
  } else if (key == "grow") {
    auto b = node.value<bool>();
    if (!b) return key_error(where, key, "expected true or false");
    v.grow = *b;
  } else if (key == "required_by") {
    AMIBAKE_ASSIGN(v.required_by, string_array(node, where, key));
  }
  return ok();
}

Status validate(VolumeConfig& v, const toml::table& t, const std::string& where) {
  int ways = (t.contains("device") ? 1 : 0) + (t.contains("volume_id") ? 1 : 0) +
             (t.contains("instance_store") ? 1 : 0);
  if (ways != 1) {
    return key_error(where, "device/volume_id/instance_store",
                     "set exactly one way of finding the volume");
  }
  v.find_by = t.contains("device")      ? FindBy::kDevice
              : t.contains("volume_id") ? FindBy::kVolumeId
                                        : FindBy::kInstanceStore;
  if (v.find_by == FindBy::kDevice && v.device.empty()) return key_error(where, "device", "empty");
  if (v.find_by == FindBy::kVolumeId && v.volume_id.rfind("vol", 0) != 0) {
    return key_error(where, "volume_id", "\"" + v.volume_id + "\" is not a volume id (vol-...)");
  }
  if (v.filesystem != "xfs" && v.filesystem != "ext4") {
    return key_error(where, "filesystem", "\"" + v.filesystem + "\" is not \"xfs\" or \"ext4\"");
  }
  if (auto m = check_mount_point(v.mount); !m) {
    // A hand-written config that would mount over the system is refused like a disk
    // with data on it: nothing is mounted, and the exit code says "refused".
    Error e = key_error(where, "mount", m.error().message);
    e.code = kExitRefused;
    return e;
  }
  if (v.label.size() > label_limit(v.filesystem)) {
    return key_error(where, "label",
                     "\"" + v.label + "\" is longer than " +
                         std::to_string(label_limit(v.filesystem)) + " characters, the " +
                         v.filesystem + " limit");
  }
  if (v.mount_options.empty()) return key_error(where, "mount_options", "empty");
  return ok();
}

}  // namespace

Status check_mount_point(const std::string& path) {
  auto refuse = [&](const std::string& why) {
    return make_error("\"" + path + "\" " + why,
                      "mount data volumes on a new directory such as /data or /var/lib/docker", 2);
  };
  if (path.empty() || path[0] != '/') return refuse("is not an absolute path");
  if (path == "/") return refuse("is the root filesystem");
  if (path.back() == '/') return refuse("ends in '/': write it without");
  // Components are checked, not resolved: "/data/../etc" must not quietly become /etc.
  std::vector<std::string> parts;
  for (size_t i = 1; i <= path.size();) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    if (c.empty()) return refuse("has an empty component ('//')");
    if (c == "." || c == "..") return refuse("has a '" + c + "' component: write the plain path");
    parts.push_back(c);
    i = j + 1;
  }
  static const std::set<std::string> kSystem = {"bin",   "boot",  "dev",    "etc",  "lib",
                                                "lib32", "lib64", "libx32", "proc", "root",
                                                "run",   "sbin",  "sys",    "usr",  "var"};
  // Directories the system owns whole: nothing may be mounted anywhere below them.
  static const std::set<std::string> kSystemTree = {"bin",   "boot",  "dev",    "etc",  "lib",
                                                    "lib32", "lib64", "libx32", "proc", "run",
                                                    "sbin",  "sys",   "usr"};
  const std::string& top = parts.front();
  if (parts.size() == 1 && kSystem.count(top)) {
    return refuse("is a system directory: mounting over it makes the instance unusable");
  }
  if (kSystemTree.count(top)) {
    return refuse("is below /" + top + ", which belongs to the system");
  }
  return ok();
}

std::string render_config(const Config& config) {
  toml::array volumes;
  for (const auto& v : config.volumes) {
    toml::table t;
    switch (v.find_by) {
      case FindBy::kDevice: t.insert("device", v.device); break;
      case FindBy::kVolumeId: t.insert("volume_id", v.volume_id); break;
      case FindBy::kInstanceStore:
        t.insert("instance_store", v.instance_store == InstanceStoreMode::kRaid0 ? "raid0" : "each");
        break;
    }
    t.insert("mount", v.mount);
    t.insert("filesystem", v.filesystem);
    if (!v.label.empty()) t.insert("label", v.label);
    if (!v.mkfs_options.empty()) {
      toml::array a;
      for (const auto& o : v.mkfs_options) a.push_back(o);
      t.insert("mkfs_options", std::move(a));
    }
    t.insert("mount_options", v.mount_options);
    if (!v.owner.empty()) t.insert("owner", v.owner);
    if (v.mode) {
      char m[8];
      std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(*v.mode));
      t.insert("mode", std::string(m));
    }
    t.insert("wait_seconds", static_cast<int64_t>(v.wait_seconds));
    t.insert("grow", v.grow);
    toml::array req;
    for (const auto& u : v.required_by) req.push_back(u);
    t.insert("required_by", std::move(req));
    volumes.push_back(std::move(t));
  }
  toml::table root;
  root.insert("volume", std::move(volumes));
  std::ostringstream o;
  o << "# Written by amibake from the recipe; read by datavol at boot.\n\n" << root << "\n";
  return o.str();
}

std::string VolumeConfig::describe() const {
  switch (find_by) {
    case FindBy::kDevice:
      return "device " + device;
    case FindBy::kVolumeId:
      return "volume " + volume_id;
    case FindBy::kInstanceStore:
      return std::string("instance store ") +
             (instance_store == InstanceStoreMode::kRaid0 ? "raid0" : "each");
  }
  return "?";
}

std::string VolumeConfig::effective_label() const {
  if (!label.empty()) return label;
  std::string base = mount.substr(mount.find_last_of('/') + 1);
  if (base.empty()) base = "data";
  return base.substr(0, label_limit(filesystem));
}

Result<Config> parse_config(const std::string& text, const std::string& origin) {
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) {
    const auto& err = parsed.error();
    return make_error(origin + ":" + std::to_string(err.source().begin.line) + ": " +
                          std::string(err.description()),
                      "fix the TOML syntax", 2);
  }
  const toml::table& root = parsed.table();
  Config config;
  for (const auto& [key, node] : root) {
    if (key.str() != "volume") {
      return key_error(origin, std::string(key.str()), "unknown top-level key");
    }
  }
  const toml::array* volumes = root["volume"].as_array();
  if (!volumes && root.contains("volume")) {
    return key_error(origin, "volume", "expected [[volume]] tables");
  }
  if (!volumes) return config;
  size_t index = 0;
  for (const auto& item : *volumes) {
    std::string where = origin + ": volume " + std::to_string(index++);
    const toml::table* t = item.as_table();
    if (!t) return key_error(where, "volume", "expected a table");
    VolumeConfig v;
    for (const auto& [key, node] : *t) {
      std::string k(key.str());
      if (!kKnownKeys.count(k)) return key_error(where, k, "unknown key");
      AMIBAKE_TRY(apply_key(v, k, node, where));
    }
    AMIBAKE_TRY(validate(v, *t, where));
    config.volumes.push_back(std::move(v));
  }
  return config;
}

Result<Config> load_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    Error e = text.error();
    e.hint = "write one ([[volume]] tables, see `datavol help`) or pass --config FILE";
    return e;
  }
  return parse_config(*text, path);
}

std::vector<std::string> required_units(const Config& config) {
  std::vector<std::string> out;
  for (const auto& v : config.volumes) {
    for (std::string u : v.required_by) {
      if (u.find('.') == std::string::npos) u += ".service";
      bool seen = false;
      for (const auto& o : out) seen = seen || o == u;
      if (!seen) out.push_back(u);
    }
  }
  return out;
}

}  // namespace amibake::datavol
