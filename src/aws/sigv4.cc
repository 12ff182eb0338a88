// SigV4 signing in stages.
//
// The problem: AWS verifies a request by recomputing, from what it received, a
// canonical form of the request, and checking an HMAC over it. Any difference in how
// we and the server canonicalise (header whitespace, query order, path encoding)
// gives SignatureDoesNotMatch with no further detail. So each stage is a pure
// function tested against the official vectors, and the rules live here only.
//
// Canonicalisation choices, matching what non-S3 services expect:
// - path: remove "." and ".." segments and repeated '/', keep a trailing '/', then
//   URI-encode each byte except unreserved and '/'. The path we are given is already
//   encoded for the wire, so a '%' is encoded again ("double encoding"), which is
//   what every service except S3 checks against.
// - query: split on '&', decode each key and value, re-encode strictly, sort by key
//   then value. A parameter without '=' gets an empty value.
// - headers: lower-case names, values trimmed with inner whitespace runs collapsed
//   (obs-fold line continuations included), repeated names joined with ',' in order,
//   sorted by name.
#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

namespace amibake::aws {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// Trims and collapses runs of whitespace (spaces, tabs, CR/LF of folded lines).
std::string canonical_header_value(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string normalize_path(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  for (auto seg : segments) {
    out.push_back('/');
    out.append(seg);
  }
  bool trailing = path.back() == '/' ||
                  (path.size() >= 2 && path.substr(path.size() - 2) == "/.") ||
                  (path.size() >= 3 && path.substr(path.size() - 3) == "/..");
  if (out.empty()) return "/";
  if (trailing) out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view item = query.substr(start, amp - start);
    start = amp + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view k = item.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    params.emplace_back(sigv4::uri_encode(sigv4::uri_decode(k)),
                        sigv4::uri_encode(sigv4::uri_decode(v)));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

std::string derive_key(std::string_view secret, const sigv4::Scope& scope) {
  std::string k = hmac_sha256_raw("AWS4" + std::string(secret), scope.date);
  k = hmac_sha256_raw(k, scope.region);
  k = hmac_sha256_raw(k, scope.service);
  return hmac_sha256_raw(k, "aws4_request");
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string sha256_raw(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof md);
}

std::string sha256_hex(std::string_view data) { return hex_encode(sha256_raw(data)); }
std::string sha256_base64(std::string_view data) { return base64_encode(sha256_raw(data)); }

std::string sha1_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  return hex_encode(std::string_view(reinterpret_cast<char*>(md), len));
}

std::string hmac_sha256_raw(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  std::string buf(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  buf.resize(len);
  *out = std::move(buf);
  return true;
}

namespace sigv4 {

std::string uri_encode(std::string_view s, bool encode_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (is_unreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string canonical_request(const Request& request, std::string* signed_headers_out) {
  std::map<std::string, std::string> headers;  // sorted by lower-case name
  for (const auto& [name, value] : request.headers) {
    std::string key = lower(name);
    std::string v = canonical_header_value(value);
    auto [it, inserted] = headers.emplace(key, v);
    if (!inserted) it->second += "," + v;
  }
  std::string creq = request.method + "\n";
  creq += uri_encode(normalize_path(request.path), /*encode_slash=*/false) + "\n";
  creq += canonical_query(request.query) + "\n";
  std::string signed_headers;
  for (const auto& [k, v] : headers) {
    creq += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += k;
  }
  creq += "\n" + signed_headers + "\n" + request.payload_hash;
  if (signed_headers_out) *signed_headers_out = signed_headers;
  return creq;
}

std::string credential_scope(const Scope& scope) {
  return scope.date + "/" + scope.region + "/" + scope.service + "/aws4_request";
}

std::string string_to_sign(std::string_view amz_date, const Scope& scope,
                           std::string_view canonical_request) {
  return std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + credential_scope(scope) +
         "\n" + sha256_hex(canonical_request);
}

std::string signature(std::string_view secret_access_key, const Scope& scope,
                      std::string_view string_to_sign) {
  return hex_encode(hmac_sha256_raw(derive_key(secret_access_key, scope), string_to_sign));
}

std::string authorization_header(std::string_view access_key_id, const Scope& scope,
                                 std::string_view signed_headers, std::string_view signature) {
  return std::string(kAlgorithm) + " Credential=" + std::string(access_key_id) + "/" +
         credential_scope(scope) + ", SignedHeaders=" + std::string(signed_headers) +
         ", Signature=" + std::string(signature);
}

bool is_unsigned_header(std::string_view name) {
  static const char* kSkip[] = {"authorization",
                                "user-agent",
                                "content-length",
                                "expect",
                                "connection",
                                "transfer-encoding",
                                "x-amzn-trace-id",
                                "keep-alive",
                                "proxy-authorization",
                                "te",
                                "upgrade",
                                "accept-encoding"};
  std::string n = lower(name);
  return std::any_of(std::begin(kSkip), std::end(kSkip), [&](const char* s) { return n == s; });
}

void sign(Request& request, const Credentials& credentials, const Scope& scope,
          std::string_view amz_date) {
  // Drop anything a previous signing added, so re-signing a retried request is clean.
  std::erase_if(request.headers, [](const auto& h) {
    std::string n = lower(h.first);
    return n == "authorization" || n == "x-amz-date" || n == "x-amz-security-token";
  });
  request.headers.emplace_back("X-Amz-Date", std::string(amz_date));
  if (!credentials.session_token.empty()) {
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  if (request.payload_hash == kUnsignedPayload) {
    bool has = std::any_of(request.headers.begin(), request.headers.end(),
                           [](const auto& h) { return lower(h.first) == "x-amz-content-sha256"; });
    if (!has) request.headers.emplace_back("X-Amz-Content-Sha256", std::string(kUnsignedPayload));
  }
  Request to_sign = request;
  std::erase_if(to_sign.headers, [](const auto& h) { return is_unsigned_header(h.first); });
  std::string signed_headers;
  std::string creq = canonical_request(to_sign, &signed_headers);
  std::string sig =
      signature(credentials.secret_access_key, scope, string_to_sign(amz_date, scope, creq));
  request.headers.emplace_back(
      "Authorization", authorization_header(credentials.access_key_id, scope, signed_headers, sig));
}

bool parse_authorization(std::string_view v, ParsedAuthorization* out) {
  if (v.substr(0, kAlgorithm.size()) != kAlgorithm) return false;
  v.remove_prefix(kAlgorithm.size());
  ParsedAuthorization p;
  bool have_cred = false, have_sh = false, have_sig = false;
  while (!v.empty()) {
    while (!v.empty() && (v.front() == ' ' || v.front() == ',')) v.remove_prefix(1);
    size_t end = v.find(',');
    std::string_view item = v.substr(0, end);
    v = end == std::string_view::npos ? std::string_view() : v.substr(end);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (item.empty()) continue;
      return false;
    }
    std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "Credential") {
      std::vector<std::string> parts;
      size_t s = 0;
      while (true) {
        size_t slash = val.find('/', s);
        parts.emplace_back(val.substr(s, slash == std::string_view::npos ? val.npos : slash - s));
        if (slash == std::string_view::npos) break;
        s = slash + 1;
      }
      if (parts.size() != 5 || parts[4] != "aws4_request") return false;
      p.access_key_id = parts[0];
      p.scope = Scope{parts[1], parts[2], parts[3]};
      have_cred = true;
    } else if (key == "SignedHeaders") {
      p.signed_headers_text = std::string(val);
      size_t s = 0;
      while (s <= val.size()) {
        size_t semi = val.find(';', s);
        if (semi == std::string_view::npos) semi = val.size();
        if (semi > s) p.signed_headers.emplace_back(val.substr(s, semi - s));
        s = semi + 1;
      }
      have_sh = !p.signed_headers.empty();
    } else if (key == "Signature") {
      p.signature = std::string(val);
      have_sig = !p.signature.empty();
    }
  }
  if (!have_cred || !have_sh || !have_sig) return false;
  *out = std::move(p);
  return true;
}

}  // namespace sigv4

}  // namespace amibake::aws
