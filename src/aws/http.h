// HTTP transport: a small interface (so tests swap in a recording fake) and the
// libcurl implementation used by the program.
//
// Policy enforced by every transport built here: TLS is always verified; plain http
// is allowed only to loopback (127.0.0.0/8, ::1, localhost) and the instance/container
// metadata addresses; anything else over http is refused before a byte is sent.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace amibake::aws {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpTimeouts {
  std::chrono::milliseconds connect{5000};
  // Read stall: fail when fewer than low_speed_bytes/s arrive for low_speed_time.
  long low_speed_bytes = 1;
  std::chrono::seconds low_speed_time{30};
  std::chrono::milliseconds total{120000};  // whole request; 0 = no limit
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // scheme://host[:port]/path?query, already encoded
  HeaderList headers;
  std::string body;
  HttpTimeouts timeouts;
  // false: sent on a fresh connection. libcurl silently sends a request again when the
  // reused connection it went out on dies before any answer, and the server may have
  // carried out the first one: a non-idempotent call (CreateSnapshot, AttachVolume,
  // RegisterImage) would then happen twice. Only reused connections get that resend.
  bool idempotent = true;
};

struct HttpResponse {
  int status = 0;
  HeaderList headers;  // names as received, in order
  std::string body;
  // Returns the first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// Why a request got no HTTP answer. Retry decisions branch on this.
enum class TransportErrorKind {
  kConnect,  // refused, unreachable, DNS failure: nothing was sent
  kTimeout,  // connect/read-stall/total timeout: outcome unknown
  kReset,    // connection reset or closed mid-exchange: outcome unknown
  kTls,      // certificate or handshake failure: not retried
  kPolicy,   // refused by our own rules (http to a non-loopback host, bad URL)
  kOther,
};
std::string_view to_string(TransportErrorKind kind);

struct TransportError {
  TransportErrorKind kind = TransportErrorKind::kOther;
  std::string message;  // "http://127.0.0.1:1/: connect failed: Connection refused"
  std::string hint;
};

// Either an HTTP answer (any status) or a transport error.
struct HttpResult {
  std::optional<TransportError> error;
  HttpResponse response;
  bool ok() const { return !error.has_value(); }
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `request` and returns the answer or why there was none. Thread-safe.
  virtual HttpResult send(const HttpRequest& request) = 0;
};

// Returns an error when `url` may not be fetched: not http/https, or http to a host
// that is neither loopback nor a metadata address. Returns ok otherwise.
Status check_url_policy(std::string_view url);

// Splits "scheme://host[:port]/rest" into its parts; false when malformed.
struct UrlParts {
  std::string scheme;
  std::string host;   // without brackets for IPv6
  std::string port;   // may be empty
  std::string path;   // starts with '/', "/" when absent (without query)
  std::string query;  // without '?'
};
bool split_url(std::string_view url, UrlParts* out);

// Returns the libcurl transport: one easy handle per thread reused across requests
// (connection reuse), proxies from the environment (never for loopback/metadata),
// User-Agent "amibake/<version>". Certificates are verified against AWS_CA_BUNDLE when
// set (read per request), else `ca_bundle` when not empty, else the system store.
std::shared_ptr<Transport> make_curl_transport(std::string ca_bundle = {});

// Returns "amibake/<AMIBAKE_VERSION>".
std::string user_agent();

}  // namespace amibake::aws
