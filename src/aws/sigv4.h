// AWS Signature Version 4, as pure functions in stages (STYLE.md: aws-c-auth).
//
//   canonical_request -> string_to_sign -> signature -> authorization_header
//
// No clock and no I/O: the time is an input. Each stage is tested on its own against
// the official vectors in ../shared/testdata/sigv4. The awsemu verifier uses the same
// stages on a received request, passing exactly the headers named in SignedHeaders.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.h"

namespace amibake::aws {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

namespace sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct Request {
  std::string method;        // "GET", "POST", ...
  std::string path;          // as sent on the wire (already percent-encoded), e.g. "/"
  std::string query;         // as sent on the wire, without '?'; may be empty
  HeaderList headers;        // headers to sign (names in any case; repeats allowed)
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct Scope {
  std::string date;     // YYYYMMDD
  std::string region;   // "us-east-1"
  std::string service;  // signing name: "ec2", "ebs", ...
};

// Stage 1. Returns the canonical request of `request`, signing every header in
// request.headers. The path is normalised (".", "..", repeated '/') and URI-encoded
// once more, as every non-S3 service expects; query parameters are decoded, encoded
// strictly and sorted. If `signed_headers_out` is set it receives "host;x-amz-date".
std::string canonical_request(const Request& request, std::string* signed_headers_out = nullptr);

// Stage 2. Returns "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(creq)>".
std::string string_to_sign(std::string_view amz_date, const Scope& scope,
                           std::string_view canonical_request);

// Stage 3. Returns the hex HMAC signature of `string_to_sign` with the derived key.
std::string signature(std::string_view secret_access_key, const Scope& scope,
                      std::string_view string_to_sign);

// Returns "AWS4-HMAC-SHA256 Credential=<id>/<scope>, SignedHeaders=<sh>, Signature=<sig>".
std::string authorization_header(std::string_view access_key_id, const Scope& scope,
                                 std::string_view signed_headers, std::string_view signature);

// Returns "<date>/<region>/<service>/aws4_request".
std::string credential_scope(const Scope& scope);

// Signs `request` in place: adds X-Amz-Date (= amz_date, "YYYYMMDDTHHMMSSZ"),
// X-Amz-Security-Token when credentials carry a session token, X-Amz-Content-Sha256
// when the payload is unsigned, then Authorization. Headers that must not be signed
// (User-Agent, Content-Length, Expect, Connection, Authorization, ...) are left out of
// the signature but kept in the request. scope.date must equal amz_date's first 8 chars.
void sign(Request& request, const Credentials& credentials, const Scope& scope,
          std::string_view amz_date);

// Returns true when header `name` (any case) is one sign() leaves unsigned.
bool is_unsigned_header(std::string_view name);

// Parsed Authorization header, for verifiers. Returns false when malformed.
struct ParsedAuthorization {
  std::string access_key_id;
  Scope scope;
  std::vector<std::string> signed_headers;  // lower-case, in the header's order
  std::string signed_headers_text;          // "host;x-amz-date"
  std::string signature;
};
bool parse_authorization(std::string_view header_value, ParsedAuthorization* out);

// Returns `s` percent-encoded as SigV4 wants: unreserved (A-Z a-z 0-9 - _ . ~) kept,
// every other byte as %XX upper-case; '/' kept when encode_slash is false.
std::string uri_encode(std::string_view s, bool encode_slash = true);
// Returns `s` with %XX sequences decoded ('+' is left alone).
std::string uri_decode(std::string_view s);

}  // namespace sigv4

// Hashing helpers (OpenSSL). EBS direct needs base64 SHA-256 checksums.
std::string sha256_hex(std::string_view data);
std::string sha256_raw(std::string_view data);     // 32 raw bytes
std::string sha256_base64(std::string_view data);  // base64 of the 32 raw bytes
std::string hmac_sha256_raw(std::string_view key, std::string_view data);
// Lower-case hex SHA-1: the file names of the AWS CLI's SSO token and role caches.
std::string sha1_hex(std::string_view data);
std::string hex_encode(std::string_view bytes);  // lower-case
std::string base64_encode(std::string_view bytes);
// Returns false when `text` is not valid base64.
bool base64_decode(std::string_view text, std::string* out);

}  // namespace amibake::aws
