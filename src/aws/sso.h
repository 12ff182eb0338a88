// IAM Identity Center (SSO) credentials, as the AWS CLI v2 and botocore get them: the
// token `aws sso login` cached, refreshed through the OIDC token endpoint when it is
// about to expire, traded for role credentials at the SSO portal.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/http.h"

namespace amibake::aws {

// The settings of one SSO profile, after merging its [sso-session] section.
struct SsoProfile {
  std::string profile;       // profile name
  std::string session_name;  // sso_session; empty for a legacy sso_start_url profile
  std::string start_url;     // sso_start_url
  std::string region;        // sso_region (where the portal and OIDC endpoints are)
  std::string account_id;    // sso_account_id
  std::string role_name;     // sso_role_name

  bool legacy() const { return session_name.empty(); }
  // Returns the command that renews the session: "aws sso login --sso-session corp",
  // or "aws sso login --profile dev" for a legacy profile.
  std::string login_command() const;
  // Returns ~/.aws/sso/cache/<sha1 hex of the session name, or of the start URL>.json.
  std::string token_cache_path() const;
  // Returns "sso-session corp, account 111122223333, role Admin" (or "sso_start_url
  // https://..." for a legacy profile).
  std::string describe() const;
};

// Returns the SSO settings of profile `name`; nullopt when the profile configures no
// SSO; an error worded as botocore words it for a missing sso-session section, values
// that differ between profile and session, or missing keys ("The profile \"dev\" is
// configured to use SSO but is missing required configuration: sso_region").
Result<std::optional<SsoProfile>> read_sso_profile(const ProfileFiles& files,
                                                   const std::string& name);

// Where the two IAM Identity Center services are: the portal (GetRoleCredentials) and
// the OIDC token endpoint (CreateToken). Resolved like any endpoint (config.h) in the
// profile's sso_region, so AWS_ENDPOINT_URL_SSO(_OIDC) and [services] entries apply.
struct SsoEndpoints {
  std::string portal;  // https://portal.sso.<region>.amazonaws.com
  std::string oidc;    // https://oidc.<region>.amazonaws.com
};

// The token cache file, as read (no refresh). For `amibake doctor` and tests.
struct SsoToken {
  std::string access_token;  // secret
  SystemTime expires_at;
  bool refreshable = false;  // refreshToken, clientId, clientSecret, registrationExpiresAt
};
// Reads the cached token of `profile`; errors say how to log in.
Result<SsoToken> read_sso_token(const SsoProfile& profile);

// Returns the role credentials provider of an SSO profile (not caching: the chain
// wraps it in CachingCredentialsProvider, which makes many threads share one fetch).
// Each fetch reads the token cache; for sso-session profiles a token with less than
// 15 minutes left is refreshed first and the cache rewritten (0600, atomically, client
// fields kept). An expired or rejected token is an error naming the login command.
// `transport` nullptr = libcurl.
std::unique_ptr<CredentialsProvider> make_sso_provider(SsoProfile profile, SsoEndpoints endpoints,
                                                       std::shared_ptr<Transport> transport);

}  // namespace amibake::aws
