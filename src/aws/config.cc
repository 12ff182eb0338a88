// Shared config files, region and endpoint resolution, following the AWS SDKs'
// documented precedence (the "shared config and credentials files" and
// "service-specific endpoints" pages of the SDK reference guide).
//
// The INI dialect: '#' and ';' start comments, "[default]" and "[profile x]" in
// config, "[x]" in credentials; indented lines continue a nested key (such as an
// "s3 =" block) and are ignored here. Sections that are not profiles ("[sso-session]",
// "[services]") are kept apart from profiles (below). Keys are case-insensitive. The credentials
// file wins when both files define the same key of a profile.
//
// "[sso-session x]" sections are kept for IAM Identity Center profiles (sso.cc);
// "[services x]" sections keep their nested "service =" blocks (endpoint_url), which a
// profile selects with `services = x`.
#include "aws/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "aws/imds.h"
#include "base/files.h"

namespace amibake::aws {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) == 0) return env_or("HOME") + path.substr(1);
  return path;
}

// Sections of one parsed file. Config-style files put "[profile x]"/"[default]" in
// `profiles`, "[sso-session x]" in `sso_sessions` and "[services x]" in `services`;
// a credentials file has only profiles ("[x]").
struct IniSections {
  std::map<std::string, ProfileSection> profiles;
  std::map<std::string, ProfileSection> sso_sessions;
  std::map<std::string, ServiceSection> services;
};

// Returns the key a service has in a [services] section: lower case, '-' and ' ' as
// '_' ("SSO OIDC", "sso-oidc" -> "sso_oidc"), as the SDKs turn service ids into keys.
std::string service_key(std::string_view service) {
  std::string s(service);
  for (char& c : s)
    c = c == '-' || c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Strips a "kind " prefix from a section name: "profile dev" -> "dev". False when the
// name does not start with the kind.
bool strip_kind(const std::string& name, std::string_view kind, std::string* rest) {
  if (name.size() <= kind.size() || name.compare(0, kind.size(), kind) != 0) return false;
  char sep = name[kind.size()];
  if (sep != ' ' && sep != '\t') return false;
  *rest = trim(std::string_view(name).substr(kind.size() + 1));
  return true;
}

Result<IniSections> parse_ini(std::string_view text, bool config_style, const std::string& path) {
  IniSections out;
  ProfileSection* current = nullptr;
  ServiceSection* services = nullptr;  // set inside a [services x] section
  ProfileSection* nested = nullptr;    // the "ec2 =" block being read in it
  size_t start = 0;
  int line_no = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return make_error(
            path + ":" + std::to_string(line_no) + ": malformed section header \"" + line + "\"",
            "fix the line to read [name] or [profile name]");
      }
      std::string name = trim(std::string_view(line).substr(1, line.size() - 2));
      current = nullptr;
      services = nullptr;
      nested = nullptr;
      std::string rest;
      if (!config_style) {
        current = &out.profiles[name];
      } else if (strip_kind(name, "profile", &rest)) {
        current = &out.profiles[rest];
      } else if (name == "default") {
        current = &out.profiles[name];
      } else if (strip_kind(name, "sso-session", &rest)) {
        current = &out.sso_sessions[rest];
      } else if (strip_kind(name, "services", &rest)) {
        services = &out.services[rest];
      }  // plugins, preview...: not read
      continue;
    }
    size_t eq = line.find('=');
    bool indented = std::isspace(static_cast<unsigned char>(raw.front()));
    if (indented) {
      // A nested value: in a [services] block ("ec2 =" then "  endpoint_url = ...") it
      // belongs to that service; under a profile key (an "s3 =" block) it is not read.
      if (services && nested && eq != std::string::npos) {
        (*nested)[lower(trim(std::string_view(line).substr(0, eq)))] =
            trim(std::string_view(line).substr(eq + 1));
      }
      continue;
    }
    if (eq == std::string::npos) {
      return make_error(path + ":" + std::to_string(line_no) + ": expected key = value",
                        "fix or remove the line");
    }
    std::string key = lower(trim(std::string_view(line).substr(0, eq)));
    std::string value = trim(std::string_view(line).substr(eq + 1));
    if (services) {
      nested = value.empty() ? &(*services)[service_key(key)] : nullptr;
      continue;
    }
    if (!current) continue;  // key outside a known section
    (*current)[key] = value;
  }
  return out;
}

bool valid_region(const std::string& r) {
  return !r.empty() && r.size() < 64 && std::all_of(r.begin(), r.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

std::string strip_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

Result<ProfileFiles> ProfileFiles::parse(std::string_view config_text,
                                         std::string_view credentials_text, std::string config_path,
                                         std::string credentials_path) {
  AMIBAKE_ASSIGN(auto config, parse_ini(config_text, /*config_style=*/true, config_path));
  AMIBAKE_ASSIGN(auto creds, parse_ini(credentials_text, /*config_style=*/false, credentials_path));
  ProfileFiles files;
  files.config_path_ = std::move(config_path);
  files.credentials_path_ = std::move(credentials_path);
  files.merged_ = std::move(config.profiles);
  files.sso_sessions_ = std::move(config.sso_sessions);
  files.services_ = std::move(config.services);
  for (auto& [name, keys] : creds.profiles) {
    auto& dst = files.merged_[name];
    for (auto& [k, v] : keys) dst[k] = v;
    files.from_credentials_[name] = true;
  }
  return files;
}

Result<ProfileFiles> ProfileFiles::load() {
  std::string home = env_or("HOME");
  std::string config_path = expand_home(env_or("AWS_CONFIG_FILE", home + "/.aws/config"));
  std::string creds_path =
      expand_home(env_or("AWS_SHARED_CREDENTIALS_FILE", home + "/.aws/credentials"));
  std::string config_text, creds_text;
  std::error_code ec;
  if (std::filesystem::exists(config_path, ec)) {
    AMIBAKE_ASSIGN(config_text, read_file(config_path));
  }
  if (std::filesystem::exists(creds_path, ec)) {
    AMIBAKE_ASSIGN(creds_text, read_file(creds_path));
  }
  return parse(config_text, creds_text, config_path, creds_path);
}

const ProfileSection* ProfileFiles::find(const std::string& name) const {
  auto it = merged_.find(name);
  return it == merged_.end() ? nullptr : &it->second;
}

bool ProfileFiles::in_credentials_file(const std::string& name) const {
  return from_credentials_.count(name) > 0;
}

std::vector<std::string> ProfileFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [name, keys] : merged_) out.push_back(name);
  return out;
}

const ProfileSection* ProfileFiles::sso_session(const std::string& name) const {
  auto it = sso_sessions_.find(name);
  return it == sso_sessions_.end() ? nullptr : &it->second;
}

const ServiceSection* ProfileFiles::services(const std::string& name) const {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : &it->second;
}

const ServiceSection* ProfileFiles::services_of(const std::string& profile) const {
  const ProfileSection* p = find(profile);
  if (!p) return nullptr;
  auto it = p->find("services");
  return it == p->end() ? nullptr : services(it->second);
}

std::string ProfileFiles::where(const std::string& name) const {
  return in_credentials_file(name) ? credentials_path_ : config_path_;
}

std::string selected_profile(const ClientSettings& settings) {
  if (settings.profile && !settings.profile->empty()) return *settings.profile;
  return env_or("AWS_PROFILE", env_or("AWS_DEFAULT_PROFILE", "default"));
}

bool profile_explicit(const ClientSettings& settings) {
  return (settings.profile && !settings.profile->empty()) || !env_or("AWS_PROFILE").empty() ||
         !env_or("AWS_DEFAULT_PROFILE").empty();
}

Result<RegionAnswer> resolve_region(const ClientSettings& settings, const ProfileFiles& files,
                                    bool try_imds) {
  RegionAnswer a;
  std::string profile = selected_profile(settings);
  if (settings.region && !settings.region->empty()) {
    a = {*settings.region, "--region"};
  } else if (!env_or("AWS_REGION").empty()) {
    a = {env_or("AWS_REGION"), "AWS_REGION"};
  } else if (!env_or("AWS_DEFAULT_REGION").empty()) {
    a = {env_or("AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION"};
  } else if (const ProfileSection* p = files.find(profile); p && p->count("region")) {
    a = {p->at("region"), "profile " + profile + " in " + files.config_path()};
  } else if (try_imds) {
    ImdsClient imds;
    if (!imds.disabled()) {
      if (auto r = imds.region(); r) a = {*r, "IMDS (this EC2 instance's region)"};
    }
  }
  if (a.region.empty()) {
    return make_error("region: not set",
                      "pass --region, set AWS_REGION, or add region = ... to profile \"" + profile +
                          "\" in " + files.config_path());
  }
  if (!valid_region(a.region)) {
    return make_error("region \"" + a.region + "\" (from " + a.source + "): not a region name",
                      "use a region such as us-east-1");
  }
  return a;
}

std::string endpoint_env_suffix(std::string_view service) {
  std::string s(service);
  for (char& c : s)
    c = c == '-' || c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

namespace {

bool is_true(const std::string& v) { return lower(v) == "true"; }

}  // namespace

bool ignore_configured_endpoint_urls(const ProfileSection* profile) {
  std::string env = env_or("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  if (!env.empty()) return is_true(env);
  return profile && profile->count("ignore_configured_endpoint_urls") &&
         is_true(profile->at("ignore_configured_endpoint_urls"));
}

EndpointResolver::EndpointResolver(std::string region, const ClientSettings& settings,
                                   const ProfileSection* profile, const ServiceSection* services,
                                   std::string services_name)
    : region_(std::move(region)) {
  if (settings.endpoint_url && !settings.endpoint_url->empty()) {
    global_override_ = strip_slash(*settings.endpoint_url);
    global_source_ = "--endpoint-url";
    return;
  }
  if (ignore_configured_endpoint_urls(profile)) return;
  // SDK precedence: service env var, the profile's [services] section, global env var,
  // then the profile's global endpoint_url.
  if (services) {
    for (const auto& [key, block] : *services) {
      auto url = block.find("endpoint_url");
      if (url == block.end() || url->second.empty()) continue;
      per_service_[key] = strip_slash(url->second);
      per_source_[key] = "[services " + services_name + "] " + key;
    }
  }
  for (const char* svc : kEndpointServices) {
    std::string var = "AWS_ENDPOINT_URL_" + endpoint_env_suffix(svc);
    std::string v = env_or(var.c_str());
    if (!v.empty()) {
      per_service_[service_key(svc)] = strip_slash(v);
      per_source_[service_key(svc)] = var;
    }
  }
  if (!env_or("AWS_ENDPOINT_URL").empty()) {
    global_override_ = strip_slash(env_or("AWS_ENDPOINT_URL"));
    global_source_ = "AWS_ENDPOINT_URL";
  } else if (profile && profile->count("endpoint_url")) {
    global_override_ = strip_slash(profile->at("endpoint_url"));
    global_source_ = "profile endpoint_url";
  }
}

std::string EndpointResolver::endpoint(std::string_view service) const {
  if (global_source_ == "--endpoint-url" || global_source_ == "override") return global_override_;
  if (auto it = per_service_.find(service_key(service)); it != per_service_.end())
    return it->second;
  if (!global_override_.empty()) return global_override_;
  std::string suffix = region_.rfind("cn-", 0) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
  // The two IAM Identity Center hosts do not follow <service>.<region>.
  if (service == "sso") return "https://portal.sso." + region_ + "." + suffix;
  if (service == "sso-oidc") return "https://oidc." + region_ + "." + suffix;
  return "https://" + std::string(service) + "." + region_ + "." + suffix;
}

std::string EndpointResolver::endpoint_source(std::string_view service) const {
  if (global_source_ == "--endpoint-url" || global_source_ == "override") return global_source_;
  if (auto it = per_source_.find(service_key(service)); it != per_source_.end()) return it->second;
  if (!global_override_.empty()) return global_source_;
  return "default";
}

}  // namespace amibake::aws
