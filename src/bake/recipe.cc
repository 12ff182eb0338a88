// Recipe parsing. Each table is read by a small function that takes the keys it
// knows one by one and then rejects whatever is left: that is what makes unknown
// keys errors. Every error carries "<file>:<line>: <key>: <what is wrong>" so the
// user can jump to it. Volume limits follow the EC2 CreateVolume documentation.
#include "bake/recipe.h"

#include <algorithm>
#include <set>
#include <sstream>

// Same toml++ configuration as datavol's config.cc (header-only, no exceptions), so
// both copies in one binary are the same code.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "base/files.h"

namespace amibake::bake {
namespace {

// Reads keys out of one TOML table, remembering which were used.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string origin, std::string prefix)
      : t_(t), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

  Error error_at(const toml::node& n, const std::string& key, const std::string& what) const {
    return make_error(origin_ + ":" + std::to_string(n.source().begin.line) + ": " + prefix_ +
                          key + ": " + what,
                      "see docs/recipe.md for the recipe fields", 2);
  }

  template <typename T>
  Status get(const std::string& key, T* out, const char* type_name) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return ok();
    auto v = n->value<T>();
    if (!v || !n->is<T>()) return error_at(*n, key, std::string("expected ") + type_name);
    *out = *v;
    return ok();
  }
  Status get_string(const std::string& key, std::string* out) { return get(key, out, "a string"); }
  Status get_bool(const std::string& key, bool* out) { return get(key, out, "true or false"); }
  Status get_int(const std::string& key, int64_t* out) { return get(key, out, "an integer"); }
  template <typename T>
  Status get_optional(const std::string& key, std::optional<T>* out, const char* type_name) {
    if (!t_.get(key)) {
      used_.insert(key);
      return ok();
    }
    T v{};
    AMIBAKE_TRY(get(key, &v, type_name));
    *out = v;
    return ok();
  }
  Status get_string_list(const std::string& key, std::vector<std::string>* out) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return ok();
    const toml::array* a = n->as_array();
    if (!a) return error_at(*n, key, "expected a list of strings");
    out->clear();
    for (const auto& item : *a) {
      auto s = item.value<std::string>();
      if (!s || !item.is_string()) return error_at(item, key, "expected a list of strings");
      out->push_back(*s);
    }
    return ok();
  }
  Status get_string_map(const std::string& key, std::map<std::string, std::string>* out) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return ok();
    const toml::table* tt = n->as_table();
    if (!tt) return error_at(*n, key, "expected a table of strings");
    for (const auto& [k, v] : *tt) {
      auto s = v.value<std::string>();
      if (!s || !v.is_string()) return error_at(v, key + "." + std::string(k.str()), "expected a string");
      (*out)[std::string(k.str())] = *s;
    }
    return ok();
  }
  const toml::table* table(const std::string& key) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    return n ? n->as_table() : nullptr;
  }
  const toml::node* node(const std::string& key) const { return t_.get(key); }
  // Fails on the first key nobody asked for.
  Status reject_unknown() const {
    for (const auto& [k, v] : t_) {
      std::string key(k.str());
      if (!used_.count(key)) return error_at(v, key, "unknown key");
    }
    return ok();
  }

 private:
  const toml::table& t_;
  std::string origin_, prefix_;
  std::set<std::string> used_;
};

struct VolumeLimits {
  const char* type;
  int64_t min_gib, max_gib;
  bool iops_allowed, throughput_allowed;
};
constexpr VolumeLimits kVolumeLimits[] = {
    {"gp3", 1, 16384, true, true},      {"gp2", 1, 16384, false, false},
    {"io1", 4, 16384, true, false},     {"io2", 4, 65536, true, false},
    {"st1", 125, 16384, false, false},  {"sc1", 125, 16384, false, false},
    {"standard", 1, 1024, false, false},
};

Status parse_base(TableReader& top, const std::string& origin, BaseSelector* base) {
  const toml::table* t = top.table("base");
  if (!t) {
    if (top.node("base")) return top.error_at(*top.node("base"), "base", "expected a table");
    return ok();
  }
  TableReader r(*t, origin, "base.");
  AMIBAKE_TRY(r.get_string("variant", &base->variant));
  AMIBAKE_TRY(r.get_string("ami", &base->ami_id));
  AMIBAKE_TRY(r.get_string("ssm_parameter", &base->ssm_parameter));
  AMIBAKE_TRY(r.get_string("name_filter", &base->name_filter));
  AMIBAKE_TRY(r.get_string("owner", &base->owner));
  AMIBAKE_TRY(r.reject_unknown());
  if (auto v = validate(*base); !v) {
    Error e = v.error();
    e.message = origin + ":" + std::to_string(t->source().begin.line) + ": " + e.message;
    return e;
  }
  return ok();
}

Status parse_volume(const toml::table& t, const std::string& origin, size_t index,
                    RecipeVolume* v) {
  TableReader r(t, origin, "volume[" + std::to_string(index) + "].");
  AMIBAKE_TRY(r.get_string("device", &v->device));
  AMIBAKE_TRY(r.get_int("size_gib", &v->size_gib));
  AMIBAKE_TRY(r.get_string("type", &v->type));
  AMIBAKE_TRY(r.get_optional("iops", &v->iops, "an integer"));
  AMIBAKE_TRY(r.get_optional("throughput", &v->throughput, "an integer"));
  AMIBAKE_TRY(r.get_bool("encrypted", &v->encrypted));
  AMIBAKE_TRY(r.get_string("kms_key_id", &v->kms_key_id));
  AMIBAKE_TRY(r.get_bool("delete_on_termination", &v->delete_on_termination));
  // datavol's own settings, same names as in datavol.toml.
  auto& d = v->datavol;
  AMIBAKE_TRY(r.get_string("mount", &d.mount));
  AMIBAKE_TRY(r.get_string("filesystem", &d.filesystem));
  AMIBAKE_TRY(r.get_string("label", &d.label));
  AMIBAKE_TRY(r.get_string_list("mkfs_options", &d.mkfs_options));
  AMIBAKE_TRY(r.get_string("mount_options", &d.mount_options));
  AMIBAKE_TRY(r.get_string("owner", &d.owner));
  std::string mode;
  AMIBAKE_TRY(r.get_string("mode", &mode));
  int64_t wait = d.wait_seconds;
  AMIBAKE_TRY(r.get_int("wait_seconds", &wait));
  d.wait_seconds = static_cast<int>(wait);
  AMIBAKE_TRY(r.get_bool("grow", &d.grow));
  AMIBAKE_TRY(r.get_string_list("required_by", &d.required_by));
  v->required_by_set = r.node("required_by") != nullptr;
  AMIBAKE_TRY(r.get_bool("hide_existing", &v->hide_existing));
  AMIBAKE_TRY(r.reject_unknown());

  auto at = [&](const char* key, const std::string& what) {
    const toml::node* n = r.node(key);
    return n ? r.error_at(*n, key, what) : r.error_at(t, key, what);
  };
  if (!mode.empty()) {
    char* end = nullptr;
    long m = std::strtol(mode.c_str(), &end, 8);
    if (*end || m < 0 || m > 07777) return at("mode", "'" + mode + "' is not an octal mode like \"0755\"");
    d.mode = static_cast<mode_t>(m);
  }
  const VolumeLimits* lim = nullptr;
  for (const auto& l : kVolumeLimits) {
    if (v->type == l.type) lim = &l;
  }
  if (!lim) return at("type", "unknown volume type '" + v->type + "' (gp3, gp2, io1, io2, st1, sc1, standard)");
  if (v->size_gib < lim->min_gib || v->size_gib > lim->max_gib) {
    return at("size_gib", std::to_string(v->size_gib) + " GiB is out of range for " + v->type +
                              " (" + std::to_string(lim->min_gib) + "–" +
                              std::to_string(lim->max_gib) + ")");
  }
  if (v->iops && !lim->iops_allowed) return at("iops", "not settable for " + v->type);
  if (v->throughput && !lim->throughput_allowed) return at("throughput", "only settable for gp3");
  if (v->throughput && (*v->throughput < 125 || *v->throughput > 1000)) {
    return at("throughput", "gp3 throughput is 125–1000 MiB/s");
  }
  if (v->iops && v->type == "gp3" && (*v->iops < 3000 || *v->iops > 16000)) {
    return at("iops", "gp3 IOPS are 3000–16000");
  }
  if ((v->type == "io1" || v->type == "io2") && !v->iops) return at("iops", "required for " + v->type);
  if (d.filesystem != "xfs" && d.filesystem != "ext4") {
    return at("filesystem", "'" + d.filesystem + "' is not supported (xfs, ext4)");
  }
  if (d.mount.empty() || d.mount[0] != '/') return at("mount", "must be an absolute path");
  if (v->device.empty()) return at("device", "must not be empty");
  d.find_by = datavol::FindBy::kDevice;
  d.device = v->device;
  return ok();
}

Status parse_attributes(TableReader& top, const std::string& origin, AttributeOverrides* a) {
  const toml::table* t = top.table("attributes");
  if (!t) return ok();
  TableReader r(*t, origin, "attributes.");
  AMIBAKE_TRY(r.get_string("imds_support", &a->imds_support));
  AMIBAKE_TRY(r.get_optional("boot_mode", &a->boot_mode, "a string"));
  AMIBAKE_TRY(r.get_optional("ena_support", &a->ena_support, "true or false"));
  AMIBAKE_TRY(r.get_optional("sriov_net_support", &a->sriov_net_support, "a string"));
  AMIBAKE_TRY(r.get_optional("tpm_support", &a->tpm_support, "a string"));
  AMIBAKE_TRY(r.reject_unknown());
  if (a->imds_support != "v2.0" && !a->imds_support.empty()) {
    return r.error_at(*r.node("imds_support"), "imds_support", "must be \"v2.0\" or \"\"");
  }
  if (a->boot_mode && *a->boot_mode != "legacy-bios" && *a->boot_mode != "uefi" &&
      *a->boot_mode != "uefi-preferred") {
    return r.error_at(*r.node("boot_mode"), "boot_mode", "legacy-bios, uefi or uefi-preferred");
  }
  return ok();
}

Status parse_image(TableReader& top, const std::string& origin, Recipe* recipe) {
  const toml::table* t = top.table("image");
  if (!t) return ok();
  TableReader r(*t, origin, "image.");
  AMIBAKE_TRY(r.get_string("name", &recipe->name));
  AMIBAKE_TRY(r.get_string("description", &recipe->description));
  AMIBAKE_TRY(r.get_string_map("tags", &recipe->image_tags));
  AMIBAKE_TRY(r.get_string_map("snapshot_tags", &recipe->snapshot_tags));
  AMIBAKE_TRY(r.get_optional("root_size_gib", &recipe->root_size_gib, "an integer"));
  AMIBAKE_TRY(r.reject_unknown());
  if (recipe->name.empty()) return r.error_at(*t, "name", "must not be empty");
  return ok();
}

}  // namespace

Result<Recipe> parse_recipe(const std::string& text, const std::string& origin) {
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) {
    const auto& e = parsed.error();
    return make_error(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                          std::string(e.description()),
                      "fix the TOML syntax", 2);
  }
  toml::table doc = std::move(parsed).table();
  Recipe recipe;
  recipe.path = origin;
  TableReader top(doc, origin, "");
  AMIBAKE_TRY(parse_base(top, origin, &recipe.base));
  AMIBAKE_TRY(parse_image(top, origin, &recipe));
  AMIBAKE_TRY(parse_attributes(top, origin, &recipe.attributes));
  const toml::node* vols = top.node("volume");
  top.table("volume");  // mark used
  if (vols) {
    const toml::array* a = vols->as_array();
    if (!a || !a->is_array_of_tables()) {
      return top.error_at(*vols, "volume", "expected [[volume]] tables");
    }
    for (size_t i = 0; i < a->size(); ++i) {
      RecipeVolume v;
      AMIBAKE_TRY(parse_volume(*a->get(i)->as_table(), origin, i, &v));
      recipe.volumes.push_back(std::move(v));
    }
  }
  AMIBAKE_TRY(top.reject_unknown());
  if (recipe.volumes.empty()) {
    return make_error(origin + ": no [[volume]]: nothing to add to the base",
                      "add a [[volume]] table (see examples/batch-worker.toml)", 2);
  }
  // datavol's own validation (label length, mount paths, ...) on exactly the config
  // the image will carry: render it and read it back with datavol's parser.
  datavol::Config dc;
  for (const auto& v : recipe.volumes) dc.volumes.push_back(v.datavol);
  if (auto back = datavol::parse_config(datavol::render_config(dc), origin + " (datavol settings)");
      !back) {
    Error e = back.error();
    e.code = 2;
    return e;
  }
  std::set<std::string> devices, mounts;
  for (const auto& v : recipe.volumes) {
    if (!devices.insert(normalise_device(v.device)).second) {
      return make_error(origin + ": volume device '" + v.device + "' is used twice", "", 2);
    }
    if (!mounts.insert(v.datavol.mount).second) {
      return make_error(origin + ": mount point '" + v.datavol.mount + "' is used twice", "", 2);
    }
  }
  return recipe;
}

Result<Recipe> load_recipe(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    Error e = text.error();
    e.code = 2;
    e.hint = "give the path of a recipe, e.g. examples/batch-worker.toml";
    return e;
  }
  return parse_recipe(*text, path);
}

std::string normalise_device(const std::string& device) {
  std::string d = device;
  if (d.rfind("/dev/", 0) == 0) d = d.substr(5);
  if (d.rfind("xvd", 0) == 0) d = "sd" + d.substr(3);
  return d;
}

Status check_against_base(const Recipe& recipe, const aws::ec2::Image& base) {
  for (const auto& v : recipe.volumes) {
    for (const auto& m : base.block_device_mappings) {
      if (normalise_device(m.device_name) == normalise_device(v.device)) {
        return make_error(recipe.path + ": volume device '" + v.device + "' clashes with " +
                              base.image_id + "'s mapping " + m.device_name,
                          "choose another device name, e.g. /dev/xvdf", 2);
      }
    }
    if (normalise_device(v.device) == normalise_device(base.root_device_name)) {
      return make_error(recipe.path + ": volume device '" + v.device + "' is the root device", "",
                        2);
    }
  }
  if (recipe.root_size_gib) {
    for (const auto& m : base.block_device_mappings) {
      if (m.device_name == base.root_device_name && m.ebs && m.ebs->volume_size &&
          *recipe.root_size_gib < *m.ebs->volume_size) {
        return make_error(recipe.path + ": image.root_size_gib " +
                              std::to_string(*recipe.root_size_gib) + " is smaller than the base's " +
                              std::to_string(*m.ebs->volume_size) + " GiB",
                          "", 2);
      }
    }
  }
  return ok();
}

std::string expand_name(const std::string& pattern, const aws::ec2::Image& base,
                        const std::string& utc_stamp) {
  std::string out = pattern;
  auto replace_all = [&out](const std::string& from, const std::string& to) {
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size())) {
      out.replace(p, from.size(), to);
    }
  };
  replace_all("{date}", utc_stamp);
  replace_all("{base_name}", base.name);
  replace_all("{base_id}", base.image_id);
  return out;
}

}  // namespace amibake::bake
