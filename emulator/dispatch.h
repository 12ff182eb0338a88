// Request dispatch stages used by server.cc (and by tests, which call them directly).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "emulator/service.h"

namespace amibake::emu {

// The parts of an HTTP request dispatch needs (independent of the HTTP library).
struct RawRequest {
  std::string method;
  std::string target;  // as on the wire: path?query, still percent-encoded
  std::string path;    // decoded path, no query
  std::multimap<std::string, std::string> headers;
  std::string_view body;  // points into the HTTP request, valid while it is handled
};

// Returns the credential-scope service of an Authorization header, or "".
std::string service_from_authorization(const std::string& authorization);

// Works out service, protocol, operation and parameters of `raw`.
Result<Call> build_call(Context& ctx, const RawRequest& raw);

// Checks the SigV4 signature of `raw`; returns the error reply when it is refused.
// Sets call.access_key_id.
std::optional<Reply> authenticate(Context& ctx, Call& call, const RawRequest& raw);

// Returns the authorization error for an operation listed in --deny.
std::optional<Reply> check_denied(Context& ctx, const Call& call);

// Returns the reply of an injected throttle (kThrottle) or server error (k5xx).
Reply fault_reply(const Call& call, Fault fault, uint64_t sequence);

// Hands `call` to its service.
Reply route(Context& ctx, Call& call);

}  // namespace amibake::emu
