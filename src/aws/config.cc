// Shared config files, region and endpoint resolution, following the AWS SDKs'
// documented precedence (the "shared config and credentials files" and
// "service-specific endpoints" pages of the SDK reference guide).
//
// The INI dialect: '#' and ';' start comments, "[default]" and "[profile x]" in
// config, "[x]" in credentials; indented lines continue a nested key (such as an
// "s3 =" block) and are ignored here. Sections that are not profiles ("[sso-session]",
// "[services]") are ignored. Keys are case-insensitive. The credentials file wins
// when both files define the same key of a profile.
//
// Not supported (documented gap): the "[services x]" per-profile endpoint sections.
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

// Parses one file into section -> keys. `config_style` maps "[profile x]" to x and
// drops non-profile sections; otherwise "[x]" is profile x.
Result<std::map<std::string, ProfileSection>> parse_ini(std::string_view text, bool config_style,
                                                        const std::string& path) {
  std::map<std::string, ProfileSection> out;
  ProfileSection* current = nullptr;
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
      if (config_style) {
        if (name.rfind("profile ", 0) == 0 || name.rfind("profile\t", 0) == 0) {
          name = trim(std::string_view(name).substr(8));
        } else if (name != "default") {
          continue;  // sso-session, services, plugins...: not a profile
        }
      }
      current = &out[name];
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(raw.front()))) continue;  // nested value
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return make_error(path + ":" + std::to_string(line_no) + ": expected key = value",
                        "fix or remove the line");
    }
    if (!current) continue;  // key outside a profile section
    (*current)[lower(trim(std::string_view(line).substr(0, eq)))] =
        trim(std::string_view(line).substr(eq + 1));
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
  files.merged_ = std::move(config);
  for (auto& [name, keys] : creds) {
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

EndpointResolver::EndpointResolver(std::string region, const ClientSettings& settings,
                                   const ProfileSection* profile)
    : region_(std::move(region)) {
  if (settings.endpoint_url && !settings.endpoint_url->empty()) {
    global_override_ = strip_slash(*settings.endpoint_url);
    global_source_ = "--endpoint-url";
    return;
  }
  std::string ignore = lower(env_or("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"));
  if (ignore == "true") return;
  for (const char* svc : {"ec2", "ssm", "sts", "ebs"}) {
    std::string var = "AWS_ENDPOINT_URL_" + endpoint_env_suffix(svc);
    std::string v = env_or(var.c_str());
    if (!v.empty()) {
      per_service_[svc] = strip_slash(v);
      per_source_[svc] = var;
    }
  }
  // SDK precedence: service env var, [services] section (unsupported), global env var,
  // then the profile's global endpoint_url.
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
  if (auto it = per_service_.find(std::string(service)); it != per_service_.end())
    return it->second;
  if (!global_override_.empty()) return global_override_;
  std::string suffix = region_.rfind("cn-", 0) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
  return "https://" + std::string(service) + "." + region_ + "." + suffix;
}

std::string EndpointResolver::endpoint_source(std::string_view service) const {
  if (global_source_ == "--endpoint-url" || global_source_ == "override") return global_source_;
  if (auto it = per_source_.find(std::string(service)); it != per_source_.end()) return it->second;
  if (!global_override_.empty()) return global_source_;
  return "default";
}

}  // namespace amibake::aws
