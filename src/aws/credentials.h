// Credentials and the provider chain (DESIGN.md "The AWS layer", issue 2).
//
// A CredentialsProvider answers "which keys do I sign with now?". The default chain
// follows the AWS SDKs' order: environment, web identity from the environment, shared
// profile files (static keys, credential_process, role_arn + source_profile /
// web_identity_token_file / credential_source), ECS container endpoint, IMDSv2 role.
// Temporary credentials are cached and refreshed ahead of their expiry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::aws {

class Transport;
class ProfileFiles;

using SystemTime = std::chrono::system_clock::time_point;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;         // never printed; registered with log::register_secret
  std::string session_token;             // empty for long-term keys
  std::optional<SystemTime> expiration;  // unset for keys that do not expire
  // Where they came from, for `amibake doctor` and errors: "environment",
  // "profile dev in /home/u/.aws/credentials", "IMDSv2 instance role web-role", ...
  std::string source;

  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
  // Registers the secret key and session token with the redacting logger.
  void register_secrets() const;
};

// Answers the credentials to sign with. Implementations must be thread-safe.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Returns current credentials or an error saying why none are available.
  virtual Result<Credentials> get() = 0;
  // Short description for the "no credentials" message: "environment variables
  // AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".
  virtual std::string describe() const = 0;
  // Drops cached credentials so the next get() fetches fresh ones (called when a
  // service says the token expired before its announced expiry). Default: nothing.
  virtual void invalidate() {}
};

// Always answers the same credentials (tests, and keys given directly).
class StaticCredentialsProvider : public CredentialsProvider {
 public:
  explicit StaticCredentialsProvider(Credentials c);
  Result<Credentials> get() override;
  std::string describe() const override { return "static credentials"; }

 private:
  Credentials creds_;
};

// Wraps a provider of temporary credentials: caches its answer and asks again when
// the cached credentials expire within `refresh_ahead`. Thread-safe; one refresh at
// a time. If a refresh fails while the cached credentials are still valid, the
// cached ones are used (and the refresh is retried on the next call).
class CachingCredentialsProvider : public CredentialsProvider {
 public:
  using Clock = std::function<SystemTime()>;
  CachingCredentialsProvider(std::unique_ptr<CredentialsProvider> inner,
                             std::chrono::seconds refresh_ahead = std::chrono::minutes(5),
                             Clock clock = nullptr);
  Result<Credentials> get() override;
  std::string describe() const override { return inner_->describe(); }
  void invalidate() override;

 private:
  std::unique_ptr<CredentialsProvider> inner_;
  std::chrono::seconds refresh_ahead_;
  Clock clock_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
};

// Asks the user for an MFA code shown as `prompt`; returns it, or why it cannot ask.
using MfaPrompter = std::function<Result<std::string>(const std::string& prompt)>;

// Inputs of the default chain. Every field defaults to the process environment
// and real locations; tests override them.
struct CredentialsOptions {
  std::string profile;  // --profile; empty = AWS_PROFILE, else "default"
  // True when the profile came from --profile: as in the AWS CLI, an explicit profile
  // then wins over credentials in environment variables.
  bool profile_from_flag = false;
  std::string region;        // region for STS calls made by role providers
  std::string sts_endpoint;  // endpoint override for STS (empty = resolved from env/region)
  std::shared_ptr<Transport> transport;  // nullptr = libcurl transport
  // Base URL of the ECS container endpoint for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  // (default http://169.254.170.2); tests point it at a loopback server.
  std::string container_host = "http://169.254.170.2";
  // For assume-role profiles with mfa_serial: a code given on the command line
  // (--mfa-code), else `mfa_prompter` (nullptr = the terminal) is asked.
  std::string mfa_code;
  MfaPrompter mfa_prompter;
};

// Parses an ISO 8601 UTC time as AWS writes expirations ("2026-11-25T08:38:45Z",
// with optional fraction, "Z" or "+00:00"). Returns false when malformed.
bool parse_iso8601(std::string_view text, SystemTime* out);
// Formats `t` as "2026-11-25T08:38:45Z".
std::string format_iso8601(SystemTime t);

// Builds the SDK default chain. Fails only for configuration errors that must not be
// skipped silently, such as an explicitly selected profile that does not exist.
Result<std::unique_ptr<CredentialsProvider>> make_default_credentials_provider(
    const CredentialsOptions& options);

}  // namespace amibake::aws
