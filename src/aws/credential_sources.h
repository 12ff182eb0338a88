// The individual credential sources behind make_default_credentials_provider.
// Internal to the aws library (and its tests): other code uses the chain.
#pragma once

#include <memory>
#include <string>

#include "aws/credentials.h"
#include "aws/http.h"

namespace amibake::aws {

class AwsClient;

// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, read on every get().
std::unique_ptr<CredentialsProvider> make_environment_provider();

// credential_process: runs `command_line` (split like a shell would, never through a
// shell) and reads its JSON "Version": 1 answer. `profile_desc` names the profile.
std::unique_ptr<CredentialsProvider> make_process_provider(std::string command_line,
                                                           std::string profile_desc);

// ECS/EKS container endpoint: `url` with an optional Authorization token (value, or a
// file read on every fetch, which wins).
std::unique_ptr<CredentialsProvider> make_container_provider(std::string url,
                                                             std::string auth_token,
                                                             std::string auth_token_file,
                                                             std::shared_ptr<Transport> transport);

// IMDSv2 instance role. `endpoint` empty = ImdsClient's default.
std::unique_ptr<CredentialsProvider> make_imds_provider(std::string endpoint,
                                                        std::shared_ptr<Transport> transport);

// Settings for the STS client used by role providers.
struct StsTarget {
  std::string region;
  std::string endpoint;  // empty = regional default / environment
  std::shared_ptr<Transport> transport;
};

// AssumeRoleWithWebIdentity with the token in `token_file` (read on every refresh).
std::unique_ptr<CredentialsProvider> make_web_identity_provider(std::string role_arn,
                                                                std::string token_file,
                                                                std::string session_name,
                                                                StsTarget sts, std::string origin);

// AssumeRole using `source` credentials.
struct AssumeRoleSettings {
  std::string role_arn;
  std::string session_name;
  std::string external_id;
  int duration_seconds = 0;
  // mfa_serial: when set, the answer is cached in `cache_dir` (~/.aws/cli/cache, as the
  // AWS CLI does, 0600) for its lifetime, and a new one needs a code: `mfa_code` once
  // (--mfa-code), else `prompter`.
  std::string mfa_serial;
  std::string mfa_code;
  MfaPrompter prompter;   // nullptr = prompt_on_terminal
  std::string cache_dir;  // empty = $HOME/.aws/cli/cache
};
// Returns the AWS CLI's cache file name (without ".json") for these settings: the
// SHA-1 hex of botocore's json.dumps(sort_keys=True) of the AssumeRole arguments
// (RoleArn, and RoleSessionName, ExternalId, SerialNumber, DurationSeconds when set).
std::string assume_role_cache_key(const AssumeRoleSettings& settings);

// Asks for a code on the controlling terminal (/dev/tty) with echo off, as getpass
// does. Fails, saying so, when there is no terminal.
Result<std::string> prompt_on_terminal(const std::string& prompt);
std::unique_ptr<CredentialsProvider> make_assume_role_provider(
    AssumeRoleSettings settings, std::shared_ptr<CredentialsProvider> source, StsTarget sts,
    std::string origin);

// Splits a command line into words: whitespace separates, single and double quotes
// group, backslash escapes outside single quotes. Returns false on an open quote.
bool split_command_line(const std::string& line, std::vector<std::string>* out);

// Parses the JSON answer of a credential_process or container endpoint. Token keys:
// "SessionToken" (process) or "Token" (container, IMDS).
Result<Credentials> parse_credentials_json(const std::string& body, const std::string& subject);

}  // namespace amibake::aws
