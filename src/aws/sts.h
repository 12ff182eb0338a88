// STS operations over the Query protocol (typed requests and results).
#pragma once

#include <string>

#include "aws/client.h"
#include "aws/credentials.h"

namespace amibake::aws::sts {

struct CallerIdentity {
  std::string account;
  std::string arn;
  std::string user_id;
};
// GetCallerIdentity: who the client's credentials belong to.
Result<CallerIdentity> get_caller_identity(AwsClient& client);

struct AssumeRoleRequest {
  std::string role_arn;
  std::string role_session_name;  // empty = "amibake-<unix time>"
  std::string external_id;        // optional
  int duration_seconds = 0;       // 0 = service default (1 h)
  std::string serial_number;      // MFA device (mfa_serial); optional
  std::string token_code;         // the MFA code, with serial_number (secret: never logged)
};
// AssumeRole with the client's credentials; the answer's source is
// "assume-role <arn>" (callers append "via ...").
Result<Credentials> assume_role(AwsClient& client, const AssumeRoleRequest& request);

struct WebIdentityRequest {
  std::string role_arn;
  std::string role_session_name;   // empty = "amibake-<unix time>"
  std::string web_identity_token;  // the OIDC token (secret)
  int duration_seconds = 0;
};
// AssumeRoleWithWebIdentity: sent unsigned, no credentials needed.
Result<Credentials> assume_role_with_web_identity(AwsClient& client,
                                                  const WebIdentityRequest& request);

// Parses the <Credentials> element of an AssumeRole* answer body (XML). Exposed for tests.
Result<Credentials> parse_credentials_xml(const std::string& body,
                                          const std::string& result_element);

}  // namespace amibake::aws::sts
