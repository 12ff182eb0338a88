// Configuration: the shared profile files, the region, and service endpoints, as the
// AWS SDKs define them.
//
// Region: --region, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, IMDS.
// Endpoints: --endpoint-url, AWS_ENDPOINT_URL_<SERVICE>, the profile's
// `endpoint_url`, AWS_ENDPOINT_URL, else https://<service>.<region>.amazonaws.com.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace amibake::aws {

// The flags every command accepts (--region, --profile, --endpoint-url).
struct ClientSettings {
  std::optional<std::string> region;
  std::optional<std::string> profile;
  std::optional<std::string> endpoint_url;
  // --mfa-code: the code for an assume-role profile's mfa_serial when there is no
  // terminal to ask on (secret for its short life: never logged).
  std::optional<std::string> mfa_code;
  // Attempts per request when AWS_MAX_ATTEMPTS is not set (the SDK default is 3).
  // amibake asks for more: a build makes thousands of block transfers, and giving up
  // on one after three throttles would throw away the whole build.
  std::optional<int> default_max_attempts;
};

// Keys of one profile, lower-case names ("aws_access_key_id", "role_arn").
using ProfileSection = std::map<std::string, std::string>;
// A "[services x]" section: service key ("ec2", "sso_oidc") -> its nested keys
// ("endpoint_url").
using ServiceSection = std::map<std::string, ProfileSection>;

// ~/.aws/config and ~/.aws/credentials, parsed. Paths honour AWS_CONFIG_FILE,
// AWS_SHARED_CREDENTIALS_FILE and HOME. Missing files are empty, not errors.
class ProfileFiles {
 public:
  // Loads both files; a file that exists but cannot be read is an error.
  static Result<ProfileFiles> load();
  // Parses INI text: "[name]" in credentials, "[profile name]"/"[default]" in config.
  static Result<ProfileFiles> parse(std::string_view config_text, std::string_view credentials_text,
                                    std::string config_path = "config",
                                    std::string credentials_path = "credentials");

  // Returns the merged keys of profile `name` (credentials file wins), or nullptr.
  const ProfileSection* find(const std::string& name) const;
  // Returns where profile `name` is defined, e.g. "/home/u/.aws/credentials".
  std::string where(const std::string& name) const;
  bool in_credentials_file(const std::string& name) const;
  // Returns the keys of "[sso-session name]" in the config file, or nullptr.
  const ProfileSection* sso_session(const std::string& name) const;
  // Returns "[services name]", or nullptr.
  const ServiceSection* services(const std::string& name) const;
  // Returns the [services] section profile `profile` names with `services = x`, or nullptr.
  const ServiceSection* services_of(const std::string& profile) const;
  // Returns the names of every profile, sorted.
  std::vector<std::string> names() const;
  const std::string& config_path() const { return config_path_; }
  const std::string& credentials_path() const { return credentials_path_; }

 private:
  std::map<std::string, ProfileSection> merged_;
  std::map<std::string, ProfileSection> sso_sessions_;
  std::map<std::string, ServiceSection> services_;
  std::map<std::string, bool> from_credentials_;
  std::string config_path_, credentials_path_;
};

// Returns the profile name: --profile, else AWS_PROFILE, else "default".
std::string selected_profile(const ClientSettings& settings);
// Returns true when the profile was chosen explicitly (flag or AWS_PROFILE).
bool profile_explicit(const ClientSettings& settings);

// Returns the region from flags, environment, profile and IMDS (in that order), or an
// error with a hint listing the ways to set it. `try_imds` = false skips IMDS.
struct RegionAnswer {
  std::string region;
  std::string source;  // "--region", "AWS_REGION", "profile dev", "IMDS"
};
Result<RegionAnswer> resolve_region(const ClientSettings& settings, const ProfileFiles& files,
                                    bool try_imds = true);

// Resolves service endpoints for one region.
class EndpointResolver {
 public:
  EndpointResolver() = default;
  // Default AWS endpoints for `region` only; reads no flags or environment.
  explicit EndpointResolver(std::string region) : region_(std::move(region)) {}
  // `profile` and `services` (its "[services x]" section, named `services_name`) may be
  // null. Reads AWS_ENDPOINT_URL* and AWS_IGNORE_CONFIGURED_ENDPOINT_URLS now.
  EndpointResolver(std::string region, const ClientSettings& settings,
                   const ProfileSection* profile, const ServiceSection* services = nullptr,
                   std::string services_name = {});
  // Returns the base URL (no trailing '/') for `service` ("ec2", "ssm", "sts", "ebs",
  // "sso" = the IAM Identity Center portal, "sso-oidc" = its token endpoint).
  std::string endpoint(std::string_view service) const;
  // Returns where the endpoint for `service` came from ("default", "--endpoint-url",
  // "AWS_ENDPOINT_URL_EC2", "[services dev] ec2", "AWS_ENDPOINT_URL", "profile endpoint_url").
  std::string endpoint_source(std::string_view service) const;
  const std::string& region() const { return region_; }
  // Forces one endpoint for every service (tests).
  void set_override(std::string url) {
    global_override_ = std::move(url);
    global_source_ = "override";
  }

 private:
  std::string region_;
  std::string global_override_, global_source_;
  std::map<std::string, std::string> per_service_;  // service -> url
  std::map<std::string, std::string> per_source_;   // service -> source
};

// Returns the AWS_ENDPOINT_URL_<SERVICE> suffix for a signing name ("ebs" -> "EBS",
// "sso-oidc" -> "SSO_OIDC").
std::string endpoint_env_suffix(std::string_view service);

// The services whose AWS_ENDPOINT_URL_<SERVICE> variables are read.
inline constexpr const char* kEndpointServices[] = {"ec2", "ssm", "sts", "ebs", "sso", "sso-oidc"};

// Returns true when configured endpoints (AWS_ENDPOINT_URL*, [services], endpoint_url)
// are to be ignored: AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, else the profile's
// ignore_configured_endpoint_urls. `profile` may be null.
bool ignore_configured_endpoint_urls(const ProfileSection* profile);

}  // namespace amibake::aws
