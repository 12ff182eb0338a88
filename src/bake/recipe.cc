// Recipe parsing and the recipe's own checks (issue 15: a typo never bricks a fleet).
//
// Each table is read by a small reader that takes the keys it knows one by one and then
// rejects whatever is left: that is what makes unknown keys errors. Nothing stops at the
// first problem: every problem is collected with "<file>:<line>: <key>: <what is wrong>",
// so `amibake plan` shows them all at once and the user fixes the recipe in one pass.
//
// The checks here need neither AWS nor the image: AWS's own limits (AMI names and
// descriptions, tags, device names, volume sizes/IOPS/throughput per type, KMS key id
// forms), mount points (datavol's check_mount_point, the same rule datavol applies at
// boot), and datavol's own config rules. What needs the base (the expanded name's
// length, the root device, the root volume's type) is check_against_base; what needs
// this host (a scratch mkfs + mount of the options) is recipe_host_check.cc; what needs
// the image (owners, units, non-empty mount points) runs during the install.
#include "bake/recipe.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <sstream>

// Same toml++ configuration as datavol's config.cc (header-only, no exceptions), so
// both copies in one binary are the same code.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "base/files.h"

namespace amibake::bake {

Status RecipeProblems::to_status() const {
  if (lines.empty()) return ok();
  // In the order of the file: "origin:LINE: ..." sorted by LINE (0 when there is none).
  auto line_of = [this](const std::string& l) {
    if (l.compare(0, origin.size() + 1, origin + ":") != 0) return 0L;
    return std::strtol(l.c_str() + origin.size() + 1, nullptr, 10);
  };
  std::vector<std::string> sorted = lines;
  std::stable_sort(sorted.begin(), sorted.end(), [&](const std::string& a, const std::string& b) {
    return line_of(a) < line_of(b);
  });
  std::string message = sorted.front();
  if (sorted.size() > 1) {
    message = origin + ": " + std::to_string(sorted.size()) + " problems:";
    for (const auto& l : sorted) message += "\n  " + l;
  }
  return make_error(message, "fix the recipe (see docs/recipe.md for every key and its limits)", 2);
}

void RecipeProblems::add(int line, const std::string& key, const std::string& what) {
  lines.push_back(origin + (line > 0 ? ":" + std::to_string(line) : "") + ": " + key + ": " + what);
}

namespace {

// Reads keys out of one TOML table, remembering which were used; type errors become
// problems and leave the default in place.
class TableReader {
 public:
  TableReader(const toml::table& t, RecipeProblems& problems, std::map<std::string, int>& lines,
              std::string prefix)
      : t_(t), problems_(problems), lines_(lines), prefix_(std::move(prefix)) {
    for (const auto& [k, v] : t_) {
      lines_[prefix_ + std::string(k.str())] = static_cast<int>(v.source().begin.line);
    }
  }
  std::map<std::string, int>& lines() { return lines_; }

  // The line of `key`'s value, or of the table when the key is absent.
  int line_of(const std::string& key) const {
    const toml::node* n = t_.get(key);
    return static_cast<int>((n ? n->source() : t_.source()).begin.line);
  }
  void problem(const std::string& key, const std::string& what) {
    problems_.add(line_of(key), prefix_ + key, what);
  }
  void problem_at(const toml::node& n, const std::string& key, const std::string& what) {
    problems_.add(static_cast<int>(n.source().begin.line), prefix_ + key, what);
  }

  template <typename T>
  bool get(const std::string& key, T* out, const char* type_name) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return false;
    auto v = n->value<T>();
    if (!v || !n->is<T>()) {
      problem(key, std::string("expected ") + type_name);
      return false;
    }
    *out = *v;
    return true;
  }
  bool get_string(const std::string& key, std::string* out) { return get(key, out, "a string"); }
  bool get_bool(const std::string& key, bool* out) { return get(key, out, "true or false"); }
  bool get_int(const std::string& key, int64_t* out) { return get(key, out, "an integer"); }
  template <typename T>
  void get_optional(const std::string& key, std::optional<T>* out, const char* type_name) {
    T v{};
    if (get(key, &v, type_name)) *out = v;
  }
  bool get_string_list(const std::string& key, std::vector<std::string>* out) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return false;
    const toml::array* a = n->as_array();
    if (!a) {
      problem(key, "expected a list of strings");
      return false;
    }
    std::vector<std::string> items;
    for (const auto& item : *a) {
      auto s = item.value<std::string>();
      if (!s || !item.is_string()) {
        problem_at(item, key, "expected a list of strings");
        return false;
      }
      items.push_back(*s);
    }
    *out = std::move(items);
    return true;
  }
  void get_string_map(const std::string& key, std::map<std::string, std::string>* out) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    const toml::table* tt = n->as_table();
    if (!tt) return problem(key, "expected a table of strings");
    for (const auto& [k, v] : *tt) {
      auto s = v.value<std::string>();
      if (!s || !v.is_string()) {
        problem_at(v, key + "." + std::string(k.str()), "expected a string");
        continue;
      }
      (*out)[std::string(k.str())] = *s;
    }
  }
  // The sub-table `key`; a value of another type is a problem.
  const toml::table* table(const std::string& key) {
    used_.insert(key);
    const toml::node* n = t_.get(key);
    if (n && !n->as_table()) problem(key, "expected a table ([" + key + "])");
    return n ? n->as_table() : nullptr;
  }
  const toml::node* node(const std::string& key) const { return t_.get(key); }
  void mark_used(const std::string& key) { used_.insert(key); }
  void reject_unknown() {
    for (const auto& [k, v] : t_) {
      std::string key(k.str());
      if (!used_.count(key)) problem_at(v, key, "unknown key");
    }
  }

 private:
  const toml::table& t_;
  RecipeProblems& problems_;
  std::map<std::string, int>& lines_;
  std::string prefix_;
  std::set<std::string> used_;
};

// ---- AWS's limits (CreateVolume / EbsBlockDevice documentation in botocore's EC2 model) ----

struct VolumeLimits {
  const char* type;
  int64_t min_gib, max_gib;
  int64_t min_iops, max_iops, iops_per_gib;  // 0 max: IOPS not settable
  bool iops_required;
  int64_t min_throughput, max_throughput;  // 0 max: not settable
};
constexpr VolumeLimits kVolumeLimits[] = {
    {"gp3", 1, 65536, 3000, 80000, 500, false, 125, 2000},
    {"gp2", 1, 16384, 0, 0, 0, false, 0, 0},
    {"io1", 4, 16384, 100, 64000, 50, true, 0, 0},
    {"io2", 4, 65536, 100, 256000, 1000, true, 0, 0},
    {"st1", 125, 16384, 0, 0, 0, false, 0, 0},
    {"sc1", 125, 16384, 0, 0, 0, false, 0, 0},
    {"standard", 1, 1024, 0, 0, 0, false, 0, 0},
};
// gp3: at most 0.25 MiB/s of throughput per provisioned IOPS (3000 IOPS -> 750 MiB/s).
constexpr int64_t kGp3IopsPerMibps = 4;
constexpr int64_t kGp3BaselineIops = 3000;

const VolumeLimits* limits_for(const std::string& type) {
  for (const auto& l : kVolumeLimits) {
    if (type == l.type) return &l;
  }
  return nullptr;
}

// AMI names: 3-128 of letters, digits, ( ) [ ] space . / - ' @ _ (RegisterImage's Name).
bool allowed_in_ami_name(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("()[] ./-'@_").find(c) != std::string_view::npos;
}
constexpr size_t kAmiNameMin = 3, kAmiNameMax = 128, kDescriptionMax = 255;
// What each placeholder can expand to, at the least (its length is known only for the
// base that gets resolved; check_against_base checks the expanded text).
constexpr size_t kDateLength = 15;       // YYYYMMDD-HHMMSS
constexpr size_t kBaseIdMinLength = 12;  // ami- and 8 hex digits

// The pattern's literal text (placeholders removed), the least it can expand to, and
// problems with its placeholders.
struct Pattern {
  std::string literal;
  size_t min_length = 0;
  std::vector<std::string> problems;
};
Pattern read_pattern(const std::string& text) {
  Pattern p;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '{') {
      if (text[i] == '}') p.problems.push_back("a '}' without its '{'");
      p.literal += text[i];
      continue;
    }
    size_t close = text.find('}', i);
    if (close == std::string::npos) {
      p.problems.push_back("'{' without its '}'");
      break;
    }
    std::string name = text.substr(i + 1, close - i - 1);
    if (name == "date") {
      p.min_length += kDateLength;
    } else if (name == "base_id") {
      p.min_length += kBaseIdMinLength;
    } else if (name != "base_name") {
      p.problems.push_back("unknown placeholder {" + name +
                           "} (use {date}, {base_name}, {base_id})");
    }
    i = close;
  }
  p.min_length += p.literal.size();
  return p;
}

void check_name_pattern(TableReader& r, const std::string& key, const std::string& text) {
  Pattern p = read_pattern(text);
  for (const auto& what : p.problems) r.problem(key, what);
  for (char c : p.literal) {
    if (allowed_in_ami_name(c)) continue;
    std::string shown = std::isprint(static_cast<unsigned char>(c))
                            ? std::string(1, c)
                            : "byte " + std::to_string(static_cast<unsigned char>(c));
    r.problem(
        key,
        "'" + shown +
            "' is not allowed in an AMI name (letters, digits, spaces and ( ) [ ] . / - ' @ _)");
    break;
  }
  if (p.min_length > kAmiNameMax) {
    r.problem(key, "is at least " + std::to_string(p.min_length) +
                       " characters once expanded; AWS allows AMI names of 3–128");
  } else if (p.literal.size() == text.size() && text.size() < kAmiNameMin) {
    r.problem(key, "'" + text + "' is shorter than 3 characters; AWS allows AMI names of 3–128");
  }
}

void check_description_pattern(TableReader& r, const std::string& text) {
  Pattern p = read_pattern(text);
  for (const auto& what : p.problems) r.problem("description", what);
  if (p.min_length > kDescriptionMax) {
    r.problem("description", "is at least " + std::to_string(p.min_length) +
                                 " characters once expanded; AWS allows 255");
  }
}

bool starts_with_nocase(const std::string& s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// EC2 tags: at most 50 per resource (amibake's own included), keys 1-128 characters,
// values up to 256, no "aws:" prefix (AWS's), no "amibake:" prefix (ours).
void check_tags(TableReader& r, const std::string& key,
                const std::map<std::string, std::string>& tags) {
  constexpr size_t kMaxTags = 50, kMaxKey = 128, kMaxValue = 256;
  if (tags.size() + kAmibakeTagsPerResource > kMaxTags) {
    r.problem(key, std::to_string(tags.size()) +
                       " tags, but a resource takes at most 50 and amibake adds " +
                       std::to_string(kAmibakeTagsPerResource) + " of its own: keep at most " +
                       std::to_string(kMaxTags - kAmibakeTagsPerResource));
  }
  for (const auto& [k, v] : tags) {
    if (k.empty() || k.size() > kMaxKey) {
      r.problem(key, "tag key '" + k + "' must be 1–128 characters");
    } else if (starts_with_nocase(k, "aws:")) {
      r.problem(key, "tag key '" + k + "': the aws: prefix is reserved for AWS");
    } else if (starts_with_nocase(k, "amibake:")) {
      r.problem(key, "tag key '" + k + "': the amibake: prefix is reserved for amibake's own tags");
    }
    if (v.size() > kMaxValue) {
      r.problem(key, "tag '" + k + "' has a value of " + std::to_string(v.size()) +
                         " characters; AWS allows 256");
    }
  }
}

// Device names AWS accepts for EBS volumes on Linux HVM instances (EC2 User Guide,
// "Device names on Linux instances"): /dev/sd[b-z], /dev/xvd[b-z], /dev/xvd[b-d][a-z];
// the "/dev/" may be left out. sda* and xvda are the root's.
bool valid_ebs_device(const std::string& device) {
  static const std::regex kDevice("^(/dev/)?(sd[b-z]|xvd[b-z]|xvd[b-d][a-z])$");
  return std::regex_match(device, kDevice);
}

// KMS key ids in the forms EC2 accepts: key id, multi-Region key id, alias name, and
// the ARNs of a key or an alias.
bool valid_kms_key_id(const std::string& id) {
  static const std::regex kForms(
      "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
      "|mrk-[0-9a-f]{32}"
      "|alias/[A-Za-z0-9/_-]{1,250}"
      "|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
      "[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250}))$");
  return std::regex_match(id, kForms);
}

// "user", "user:group", "uid:gid": names as useradd takes them (the image decides whether
// they exist, at install).
bool valid_owner_syntax(const std::string& owner) {
  static const std::regex kOwner(
      "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$");
  return std::regex_match(owner, kOwner);
}

// A systemd unit name (or SysV script name): no path, no spaces.
bool valid_unit_name(const std::string& unit) {
  static const std::regex kUnit("^[A-Za-z0-9:_.@\\\\-]{1,255}$");
  return std::regex_match(unit, kUnit) && unit != "." && unit != "..";
}

void parse_base(TableReader& top, RecipeProblems& problems, BaseSelector* base) {
  const toml::table* t = top.table("base");
  if (!t) return;
  TableReader r(*t, problems, top.lines(), "base.");
  r.get_string("variant", &base->variant);
  r.get_string("ami", &base->ami_id);
  r.get_string("ssm_parameter", &base->ssm_parameter);
  r.get_string("name_filter", &base->name_filter);
  r.get_string("owner", &base->owner);
  r.reject_unknown();
  if (auto v = validate(*base); !v) {
    problems.add(static_cast<int>(t->source().begin.line), "base", v.error().message);
  }
}

void check_volume_limits(TableReader& r, const RecipeVolume& v) {
  const VolumeLimits* lim = limits_for(v.type);
  if (!lim) {
    return r.problem(
        "type", "unknown volume type '" + v.type + "' (gp3, gp2, io1, io2, st1, sc1, standard)");
  }
  if (v.size_gib < lim->min_gib || v.size_gib > lim->max_gib) {
    r.problem("size_gib", std::to_string(v.size_gib) + " GiB is out of range for " + v.type + " (" +
                              std::to_string(lim->min_gib) + "–" + std::to_string(lim->max_gib) +
                              ")");
  }
  if (v.iops) {
    if (lim->max_iops == 0) {
      r.problem("iops", "not settable for " + v.type + " (gp3, io1, io2 only)");
    } else if (*v.iops < lim->min_iops || *v.iops > lim->max_iops) {
      r.problem("iops", std::to_string(*v.iops) + " is out of range for " + v.type + " (" +
                            std::to_string(lim->min_iops) + "–" + std::to_string(lim->max_iops) +
                            ")");
    } else if (*v.iops > v.size_gib * lim->iops_per_gib && v.size_gib >= lim->min_gib) {
      r.problem("iops", std::to_string(*v.iops) + " IOPS on " + std::to_string(v.size_gib) +
                            " GiB is over " + v.type + "'s " + std::to_string(lim->iops_per_gib) +
                            " IOPS per GiB");
    }
  } else if (lim->iops_required) {
    r.problem("iops", "required for " + v.type);
  }
  if (v.throughput) {
    if (lim->max_throughput == 0) {
      r.problem("throughput", "only settable for gp3");
    } else if (*v.throughput < lim->min_throughput || *v.throughput > lim->max_throughput) {
      r.problem("throughput", std::to_string(*v.throughput) + " MiB/s is out of range for " +
                                  v.type + " (" + std::to_string(lim->min_throughput) + "–" +
                                  std::to_string(lim->max_throughput) + ")");
    } else if (*v.throughput * kGp3IopsPerMibps > v.iops.value_or(kGp3BaselineIops)) {
      r.problem("throughput", std::to_string(*v.throughput) + " MiB/s needs at least " +
                                  std::to_string(*v.throughput * kGp3IopsPerMibps) +
                                  " IOPS (gp3 allows 0.25 MiB/s per IOPS); set iops");
    }
  }
}

void parse_volume(const toml::table& t, RecipeProblems& problems, std::map<std::string, int>& lines,
                  size_t index, RecipeVolume* v) {
  TableReader r(t, problems, lines, "volume[" + std::to_string(index) + "].");
  r.get_string("device", &v->device);
  r.get_int("size_gib", &v->size_gib);
  r.get_string("type", &v->type);
  r.get_optional("iops", &v->iops, "an integer");
  r.get_optional("throughput", &v->throughput, "an integer");
  r.get_bool("encrypted", &v->encrypted);
  r.get_string("kms_key_id", &v->kms_key_id);
  r.get_bool("delete_on_termination", &v->delete_on_termination);
  // datavol's own settings, same names as in datavol.toml.
  auto& d = v->datavol;
  r.get_string("mount", &d.mount);
  r.get_string("filesystem", &d.filesystem);
  r.get_string("label", &d.label);
  r.get_string_list("mkfs_options", &d.mkfs_options);
  r.get_string("mount_options", &d.mount_options);
  r.get_string("owner", &d.owner);
  std::string mode;
  r.get_string("mode", &mode);
  int64_t wait = d.wait_seconds;
  if (r.get_int("wait_seconds", &wait)) {
    if (wait < 0 || wait > 3600) {
      r.problem("wait_seconds", std::to_string(wait) + " is out of range (0–3600)");
    } else {
      d.wait_seconds = static_cast<int>(wait);
    }
  }
  r.get_bool("grow", &d.grow);
  v->required_by_set = r.get_string_list("required_by", &d.required_by);
  r.get_bool("hide_existing", &v->hide_existing);
  r.reject_unknown();

  if (!mode.empty()) {
    char* end = nullptr;
    long m = std::strtol(mode.c_str(), &end, 8);
    if (*end || m < 0 || m > 07777) {
      r.problem("mode", "'" + mode + "' is not an octal mode like \"0755\"");
    } else {
      d.mode = static_cast<mode_t>(m);
    }
  }
  check_volume_limits(r, *v);
  if (!valid_ebs_device(v->device)) {
    r.problem("device", "'" + v->device +
                            "' is not a device name EC2 takes for an EBS volume (/dev/sd[b-z], "
                            "/dev/xvd[b-z], /dev/xvd[b-d][a-z]; e.g. /dev/xvdb)");
  }
  if (!v->kms_key_id.empty()) {
    if (!valid_kms_key_id(v->kms_key_id)) {
      r.problem("kms_key_id",
                "'" + v->kms_key_id + "' is not a KMS key id, alias/NAME, or key or alias ARN");
    }
    if (!v->encrypted) r.problem("kms_key_id", "set, but encrypted = false");
  }
  if (d.filesystem != "xfs" && d.filesystem != "ext4") {
    r.problem("filesystem", "'" + d.filesystem + "' is not supported (xfs, ext4)");
  }
  if (auto m = datavol::check_mount_point(d.mount); !m) r.problem("mount", m.error().message);
  // mkfs refuses longer labels: xfs 12 characters, ext4 16.
  size_t label_max = d.filesystem == "xfs" ? 12 : 16;
  if (d.label.size() > label_max) {
    r.problem("label", "'" + d.label + "' is longer than the " + std::to_string(label_max) +
                           " characters " + d.filesystem + " allows");
  }
  if (d.mount_options.empty())
    r.problem("mount_options", "must not be empty (the default is \"defaults,noatime\")");
  if (d.mount_options.find_first_of(" \t\n") != std::string::npos) {
    r.problem("mount_options",
              "'" + d.mount_options + "' has white space: separate options with commas");
  }
  if (!d.owner.empty() && !valid_owner_syntax(d.owner)) {
    r.problem("owner", "'" + d.owner + "' is not \"user\", \"user:group\" or \"uid:gid\"");
  }
  for (const auto& u : d.required_by) {
    if (!valid_unit_name(u)) r.problem("required_by", "'" + u + "' is not a unit name");
  }
  for (const auto& o : d.mkfs_options) {
    if (o.empty()) r.problem("mkfs_options", "an empty argument");
  }
  d.find_by = datavol::FindBy::kDevice;
  d.device = v->device;
}

void parse_attributes(TableReader& top, RecipeProblems& problems, AttributeOverrides* a) {
  const toml::table* t = top.table("attributes");
  if (!t) return;
  TableReader r(*t, problems, top.lines(), "attributes.");
  r.get_string("imds_support", &a->imds_support);
  r.get_optional("boot_mode", &a->boot_mode, "a string");
  r.get_optional("ena_support", &a->ena_support, "true or false");
  r.get_optional("sriov_net_support", &a->sriov_net_support, "a string");
  r.get_optional("tpm_support", &a->tpm_support, "a string");
  r.reject_unknown();
  if (a->imds_support != "v2.0" && !a->imds_support.empty()) {
    r.problem("imds_support", "must be \"v2.0\" or \"\"");
  }
  if (a->boot_mode && *a->boot_mode != "legacy-bios" && *a->boot_mode != "uefi" &&
      *a->boot_mode != "uefi-preferred") {
    r.problem("boot_mode", "'" + *a->boot_mode + "' is not legacy-bios, uefi or uefi-preferred");
  }
  if (a->sriov_net_support && *a->sriov_net_support != "simple") {
    r.problem("sriov_net_support", "'" + *a->sriov_net_support + "' is not \"simple\"");
  }
  if (a->tpm_support && *a->tpm_support != "v2.0") {
    r.problem("tpm_support", "'" + *a->tpm_support + "' is not \"v2.0\"");
  }
  if (a->tpm_support && a->boot_mode == "legacy-bios") {
    r.problem("tpm_support", "NitroTPM needs UEFI: boot_mode is legacy-bios");
  }
}

// Family names become the tag amibake:family and part of prune's listing.
void check_family(TableReader& r, const std::string& family) {
  static const std::regex re("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
  if (!std::regex_match(family, re)) {
    r.problem("family", "'" + family +
                            "' is not 1-64 letters, digits, '.', '_' or '-' starting with a letter "
                            "or digit");
  }
}

// The default family: the recipe file's stem ("recipes/batch-worker.toml" -> batch-worker),
// with characters a family may not hold replaced by '-'.
std::string default_family(const std::string& path) {
  std::string stem = path.substr(path.find_last_of('/') + 1);
  if (size_t dot = stem.rfind('.'); dot != std::string::npos && dot > 0) stem.resize(dot);
  for (char& c : stem) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  }
  if (stem.empty() || !std::isalnum(static_cast<unsigned char>(stem[0]))) stem = "amibake" + stem;
  return stem.substr(0, 64);
}

// Region names as AWS spells them (us-east-1, ap-southeast-2, us-gov-west-1, cn-north-1):
// whether the region exists and is enabled is asked of DescribeRegions before the build.
bool valid_region_name(const std::string& region) {
  static const std::regex re("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$");
  return std::regex_match(region, re);
}

void parse_publish(TableReader& top, RecipeProblems& problems, PublishSettings* p) {
  const toml::table* t = top.table("publish");
  if (!t) return;
  TableReader r(*t, problems, top.lines(), "publish.");
  r.get_string_list("regions", &p->regions);
  r.get_string_map("kms_key_ids", &p->kms_key_ids);
  r.get_string_list("share_accounts", &p->share_accounts);
  r.get_string_list("share_organizations", &p->share_organizations);
  r.get_string_list("share_ous", &p->share_ous);
  r.get_bool("share_snapshots", &p->share_snapshots);
  r.get_string("ssm_parameter", &p->ssm_parameter);
  r.get_string_list("launch_templates", &p->launch_templates);
  r.get_bool("set_default_version", &p->set_default_version);
  r.get_string_list("batch_compute_environments", &p->batch_compute_environments);
  r.get_optional("deprecate_after_days", &p->deprecate_after_days, "an integer");
  r.reject_unknown();

  auto duplicates = [&](const char* key, const std::vector<std::string>& items) {
    std::set<std::string> seen;
    for (const auto& i : items) {
      if (!seen.insert(i).second) r.problem(key, "'" + i + "' is listed twice");
    }
  };
  auto each = [&](const char* key, const std::vector<std::string>& items, const std::regex& re,
                  const char* what) {
    for (const auto& i : items) {
      if (!std::regex_match(i, re)) r.problem(key, "'" + i + "' is not " + what);
    }
    duplicates(key, items);
  };
  for (const auto& region : p->regions) {
    if (!valid_region_name(region)) {
      r.problem("regions", "'" + region + "' is not a region name (like us-west-2)");
    }
  }
  duplicates("regions", p->regions);
  for (const auto& [region, key] : p->kms_key_ids) {
    if (std::find(p->regions.begin(), p->regions.end(), region) == p->regions.end()) {
      r.problem("kms_key_ids", "'" + region + "' is not one of publish.regions (a key applies "
                               "to that region's copy)");
    }
    if (!valid_kms_key_id(key)) {
      r.problem("kms_key_ids", region + ": '" + key +
                                   "' is not a KMS key id, alias/NAME, or key or alias ARN");
    }
  }
  each("share_accounts", p->share_accounts, std::regex("^[0-9]{12}$"), "a 12-digit account id");
  each("share_organizations", p->share_organizations,
       std::regex("^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$"),
       "an organization ARN (arn:aws:organizations::ACCOUNT:organization/o-...)");
  each("share_ous", p->share_ous,
       std::regex("^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/"
                  "ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$"),
       "an organizational unit ARN (arn:aws:organizations::ACCOUNT:ou/o-.../ou-...)");
  if (p->share_snapshots && !p->sharing()) {
    r.problem("share_snapshots", "true, but there is nothing to share with (share_accounts, "
                                 "share_organizations, share_ous)");
  }
  if (!p->ssm_parameter.empty()) {
    // PutParameter's rules: a-zA-Z0-9_.-/ only, a hierarchy starts with '/', at most 15
    // levels, 1011 characters for a fully qualified name, no aws/ssm prefix.
    static const std::regex re("^(/[A-Za-z0-9_.-]+)+$|^[A-Za-z0-9_.-]+$");
    std::string lower = p->ssm_parameter;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string first = lower.substr(lower[0] == '/' ? 1 : 0);
    if (!std::regex_match(p->ssm_parameter, re)) {
      r.problem("ssm_parameter", "'" + p->ssm_parameter +
                                     "' is not a parameter name: letters, digits, '_', '.', "
                                     "'-' and '/'-separated levels starting with '/'");
    } else if (first.starts_with("aws") || first.starts_with("ssm")) {
      r.problem("ssm_parameter", "names starting with 'aws' or 'ssm' are reserved by AWS");
    } else if (std::count(p->ssm_parameter.begin(), p->ssm_parameter.end(), '/') > 15) {
      r.problem("ssm_parameter", "more than 15 levels");
    } else if (p->ssm_parameter.size() > 1011) {
      r.problem("ssm_parameter", "longer than 1011 characters");
    }
  }
  each("launch_templates", p->launch_templates,
       std::regex("^lt-[0-9a-f]{17}$|^[A-Za-z0-9().\\-/_]{3,128}$"),
       "a launch template name (3-128 of letters, digits, ( ) . - / _) or id (lt-...)");
  if (std::find_if(p->launch_templates.begin(), p->launch_templates.end(),
                   [](const std::string& t) { return t.starts_with("lt-") && t.size() == 20; }) !=
          p->launch_templates.end() &&
      !p->regions.empty()) {
    r.problem("launch_templates", "a launch template id (lt-...) exists in one region only: with "
                                  "publish.regions, name the template instead");
  }
  each("batch_compute_environments", p->batch_compute_environments,
       std::regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$|^arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:"
                  "compute-environment/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"),
       "a compute environment name (letters, digits, '-', '_', up to 128) or ARN");
  if (p->deprecate_after_days && (*p->deprecate_after_days < 1 || *p->deprecate_after_days > 3650)) {
    r.problem("deprecate_after_days", std::to_string(*p->deprecate_after_days) +
                                          " is out of range (1-3650: EC2 deprecates at most 10 "
                                          "years ahead)");
  }
}

void parse_retention(TableReader& top, RecipeProblems& problems, RetentionSettings* k) {
  const toml::table* t = top.table("retention");
  if (!t) return;
  TableReader r(*t, problems, top.lines(), "retention.");
  r.get_int("keep", &k->keep);
  r.get_int("min_age_days", &k->min_age_days);
  r.reject_unknown();
  if (k->keep < 1) {
    r.problem("keep", std::to_string(k->keep) +
                          " would let prune remove every AMI of the family, the newest too: keep "
                          "at least 1");
  } else if (k->keep > 1000) {
    r.problem("keep", std::to_string(k->keep) + " is out of range (1-1000)");
  }
  if (k->min_age_days < 0 || k->min_age_days > 36500) {
    r.problem("min_age_days", std::to_string(k->min_age_days) + " is out of range (0-36500)");
  }
}

void parse_image(TableReader& top, RecipeProblems& problems, Recipe* recipe) {
  const toml::table* t = top.table("image");
  if (!t) return;
  TableReader r(*t, problems, top.lines(), "image.");
  r.get_string("name", &recipe->name);
  r.get_string("description", &recipe->description);
  r.get_string_map("tags", &recipe->image_tags);
  r.get_string_map("snapshot_tags", &recipe->snapshot_tags);
  r.get_optional("root_size_gib", &recipe->root_size_gib, "an integer");
  if (r.get_string("family", &recipe->family)) check_family(r, recipe->family);
  r.reject_unknown();
  if (recipe->name.empty()) {
    r.problem("name", "must not be empty");
  } else {
    check_name_pattern(r, "name", recipe->name);
  }
  check_description_pattern(r, recipe->description);
  check_tags(r, "tags", recipe->image_tags);
  check_tags(r, "snapshot_tags", recipe->snapshot_tags);
  // The root's type is the base's (checked against it at resolve); no type takes more.
  if (recipe->root_size_gib && (*recipe->root_size_gib < 1 || *recipe->root_size_gib > 65536)) {
    r.problem("root_size_gib",
              std::to_string(*recipe->root_size_gib) +
                  " GiB is out of range (1–65536, and within the base's root volume type)");
  }
}

// Checks between volumes: one slot per device in any spelling, one volume per mount
// point, and a mount inside another's comes after it (datavol mounts in order).
void check_volumes_together(const Recipe& recipe, const std::vector<int>& lines,
                            RecipeProblems& problems) {
  std::map<std::string, size_t> devices;
  for (size_t i = 0; i < recipe.volumes.size(); ++i) {
    const auto& v = recipe.volumes[i];
    std::string prefix = "volume[" + std::to_string(i) + "].";
    // The key's own line where the recipe set it, else the volume table's.
    auto line = [&](const char* key) {
      auto it = recipe.key_lines.find(prefix + key);
      return it == recipe.key_lines.end() ? lines[i] : it->second;
    };
    auto [it, fresh] = devices.emplace(normalise_device(v.device), i);
    if (!fresh) {
      problems.add(line("device"), prefix + "device",
                   "'" + v.device + "' is the same slot as volume[" + std::to_string(it->second) +
                       "]'s '" + recipe.volumes[it->second].device +
                       "' (sdX and xvdX are one device)");
    }
    for (size_t j = 0; j < recipe.volumes.size(); ++j) {
      if (i == j) continue;
      const std::string& other = recipe.volumes[j].datavol.mount;
      const std::string& mine = v.datavol.mount;
      if (mine == other && j < i) {
        problems.add(line("mount"), prefix + "mount",
                     "'" + mine + "' is volume[" + std::to_string(j) + "]'s mount point too");
      } else if (mine.size() > other.size() && mine.compare(0, other.size(), other) == 0 &&
                 mine[other.size()] == '/' && j > i) {
        problems.add(line("mount"), prefix + "mount",
                     "'" + mine + "' is inside volume[" + std::to_string(j) + "]'s '" + other +
                         "', which is mounted later and would hide it: list volume[" +
                         std::to_string(j) + "] first");
      }
    }
  }
}

}  // namespace

RecipeRead read_recipe(const std::string& text, const std::string& origin) {
  RecipeRead out;
  out.problems.origin = origin;
  RecipeProblems& problems = out.problems;
  Recipe& recipe = out.recipe;
  recipe.path = origin;
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) {
    const auto& e = parsed.error();
    problems.lines.push_back(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()) + " (TOML syntax)");
    return out;
  }
  toml::table doc = std::move(parsed).table();
  TableReader top(doc, problems, recipe.key_lines, "");
  parse_base(top, problems, &recipe.base);
  parse_image(top, problems, &recipe);
  parse_attributes(top, problems, &recipe.attributes);
  parse_publish(top, problems, &recipe.publish);
  parse_retention(top, problems, &recipe.retention);
  if (recipe.family.empty()) recipe.family = default_family(origin);
  const toml::node* vols = top.node("volume");
  top.mark_used("volume");
  std::vector<int> lines;
  if (vols) {
    const toml::array* a = vols->as_array();
    if (!a || !a->is_array_of_tables()) {
      top.problem("volume", "expected [[volume]] tables");
    } else {
      for (size_t i = 0; i < a->size(); ++i) {
        RecipeVolume v;
        parse_volume(*a->get(i)->as_table(), problems, recipe.key_lines, i, &v);
        lines.push_back(static_cast<int>(a->get(i)->source().begin.line));
        recipe.volumes.push_back(std::move(v));
      }
    }
  }
  top.reject_unknown();
  if (!vols) {
    problems.lines.push_back(origin +
                             ": no [[volume]]: nothing to add to the base (add a "
                             "[[volume]] table, see examples/batch-worker.toml)");
  }
  check_volumes_together(recipe, lines, problems);
  // datavol's own validation (label length, ...) on exactly the config the image will
  // carry: render it and read it back with datavol's parser. Only when the recipe's own
  // checks passed, so one mistake is not reported twice.
  if (problems.lines.empty()) {
    datavol::Config dc;
    for (const auto& v : recipe.volumes) dc.volumes.push_back(v.datavol);
    if (auto back =
            datavol::parse_config(datavol::render_config(dc), origin + " (datavol settings)");
        !back) {
      problems.lines.push_back(back.error().message);
    }
  }
  return out;
}

Result<Recipe> parse_recipe(const std::string& text, const std::string& origin) {
  RecipeRead read = read_recipe(text, origin);
  AMIBAKE_TRY(read.problems.to_status());
  return std::move(read.recipe);
}

Result<std::string> read_recipe_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    Error e = text.error();
    e.code = 2;
    e.hint = "give the path of a recipe, e.g. examples/batch-worker.toml";
    return e;
  }
  return text;
}

Result<Recipe> load_recipe(const std::string& path) {
  AMIBAKE_ASSIGN(std::string text, read_recipe_file(path));
  return parse_recipe(text, path);
}

std::string normalise_device(const std::string& device) {
  std::string d = device;
  if (d.rfind("/dev/", 0) == 0) d = d.substr(5);
  if (d.rfind("xvd", 0) == 0) d = "sd" + d.substr(3);
  return d;
}

Status check_against_base(const Recipe& recipe, const aws::ec2::Image& base) {
  RecipeProblems problems;
  problems.origin = recipe.path;
  auto line = [&](const std::string& key) {
    auto it = recipe.key_lines.find(key);
    return it == recipe.key_lines.end() ? 0 : it->second;
  };
  for (size_t i = 0; i < recipe.volumes.size(); ++i) {
    const auto& v = recipe.volumes[i];
    std::string key = "volume[" + std::to_string(i) + "].device";
    if (normalise_device(v.device) == normalise_device(base.root_device_name)) {
      problems.add(line(key), key, "'" + v.device + "' is " + base.image_id + "'s root device");
      continue;
    }
    for (const auto& m : base.block_device_mappings) {
      if (normalise_device(m.device_name) == normalise_device(v.device)) {
        problems.add(line(key), key,
                     "'" + v.device + "' clashes with " + base.image_id + "'s mapping " +
                         m.device_name + " (choose another, e.g. /dev/xvdf)");
      }
    }
  }
  for (const auto& m : base.block_device_mappings) {
    if (!recipe.root_size_gib || m.device_name != base.root_device_name || !m.ebs) continue;
    if (m.ebs->volume_size && *recipe.root_size_gib < *m.ebs->volume_size) {
      problems.add(line("image.root_size_gib"), "image.root_size_gib",
                   std::to_string(*recipe.root_size_gib) + " is smaller than " + base.image_id +
                       "'s root of " + std::to_string(*m.ebs->volume_size) + " GiB");
    }
    const VolumeLimits* lim = limits_for(m.ebs->volume_type);
    if (lim && *recipe.root_size_gib > lim->max_gib) {
      problems.add(line("image.root_size_gib"), "image.root_size_gib",
                   std::to_string(*recipe.root_size_gib) + " GiB is over the " +
                       std::to_string(lim->max_gib) + " GiB a " + m.ebs->volume_type +
                       " root volume (the base's type) takes");
    }
  }
  // The name and description as RegisterImage will get them: the longest stamp is the
  // one the build uses, so this is exact.
  std::string name = expand_name(recipe.name, base, std::string(kDateLength, '0'));
  if (name.size() < kAmiNameMin || name.size() > kAmiNameMax) {
    problems.add(line("image.name"), "image.name",
                 "'" + name + "' is " + std::to_string(name.size()) +
                     " characters once expanded for " + base.image_id +
                     "; AWS allows AMI names of 3–128");
  } else if (!std::all_of(name.begin(), name.end(), allowed_in_ami_name)) {
    problems.add(line("image.name"), "image.name",
                 "'" + name + "' (expanded for " + base.image_id +
                     ") has characters AWS does not allow in AMI names");
  }
  std::string description = expand_name(recipe.description, base, std::string(kDateLength, '0'));
  if (description.size() > kDescriptionMax) {
    problems.add(line("image.description"), "image.description",
                 std::to_string(description.size()) + " characters once expanded for " +
                     base.image_id + "; AWS allows 255");
  }
  return problems.to_status();
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
