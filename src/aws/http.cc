// The libcurl transport.
//
// Why these choices:
// - One easy handle per thread, reset between requests with curl_easy_reset (which
//   keeps the connection cache, DNS cache and TLS sessions), so parallel block
//   transfers each keep their own warm connection without a shared-handle lock.
// - Three timeouts, because a request that hangs forever is a known EBS direct
//   failure mode: connect, read stall (CURLOPT_LOW_SPEED_LIMIT/TIME) and total.
// - TLS peer and host verification are always on; there is no switch to turn them off
//   (AWS_CA_BUNDLE may name extra CA certificates to trust).
// - Plain http only to loopback and the metadata addresses (check_url_policy), so a
//   typo in --endpoint-url cannot send signed requests in clear text over a network.
// - Proxies come from the environment (libcurl reads https_proxy/http_proxy), but
//   loopback and metadata addresses are always added to NO_PROXY: a corporate proxy
//   must never see IMDS traffic or a test's local endpoint.
// - libcurl callbacks never throw: they append to std::string only.
#include "aws/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "base/files.h"

namespace amibake::aws {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_loopback_or_metadata(const std::string& host) {
  if (iequals(host, "localhost") || host == "::1") return true;
  if (host == "169.254.169.254" || iequals(host, "fd00:ec2::254")) return true;  // IMDS
  if (host == "169.254.170.2" || host == "169.254.170.23") return true;          // ECS/EKS
  if (iequals(host, "fd00:ec2::23")) return true;
  // 127.0.0.0/8, dotted quad only.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.')
      ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c)))
      return false;
  }
  return dots == 3;
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct EasyHandle {
  CURL* h = nullptr;
  EasyHandle() {
    static CurlGlobal global;
    h = curl_easy_init();
  }
  ~EasyHandle() {
    if (h) curl_easy_cleanup(h);
  }
};

CURL* thread_handle() {
  thread_local EasyHandle handle;
  return handle.h;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<HttpResponse*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    resp->headers.clear();  // a new status line (100 Continue, redirects): start over
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  resp->headers.emplace_back(std::string(name), std::string(value));
  return size * n;
}

TransportErrorKind kind_of(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportErrorKind::kConnect;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportErrorKind::kTimeout;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportErrorKind::kReset;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return TransportErrorKind::kTls;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return TransportErrorKind::kPolicy;
    default:
      return TransportErrorKind::kOther;
  }
}

std::string hint_for(TransportErrorKind kind) {
  switch (kind) {
    case TransportErrorKind::kConnect:
      return "check the endpoint URL, DNS and network/proxy settings (https_proxy, no_proxy)";
    case TransportErrorKind::kTimeout:
      return "the endpoint did not answer in time; check network connectivity, or retry later";
    case TransportErrorKind::kTls:
      return "TLS verification failed; check the system CA certificates; behind a proxy that "
             "re-signs TLS, name its CA certificate with ca_bundle in the profile or AWS_CA_BUNDLE";
    default:
      return "";
  }
}

std::string no_proxy_list() {
  std::string env = env_or("NO_PROXY", env_or("no_proxy"));
  std::string fixed = "localhost,127.0.0.1,::1,169.254.169.254,169.254.170.2,169.254.170.23";
  return env.empty() ? fixed : env + "," + fixed;
}

class CurlTransport : public Transport {
 public:
  explicit CurlTransport(std::string ca_bundle) : ca_bundle_(std::move(ca_bundle)) {}
  HttpResult send(const HttpRequest& request) override {
    HttpResult result;
    if (Status policy = check_url_policy(request.url); !policy) {
      result.error =
          TransportError{TransportErrorKind::kPolicy, policy.error().message, policy.error().hint};
      return result;
    }
    CURL* h = thread_handle();
    if (!h) {
      result.error =
          TransportError{TransportErrorKind::kOther, "libcurl: cannot create handle", ""};
      return result;
    }
    curl_easy_reset(h);
    std::string ua = user_agent();
    std::string no_proxy = no_proxy_list();
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    // AWS_CA_BUNDLE (as the SDKs define it) adds trust for a private CA, e.g. a
    // TLS-inspecting proxy; verification itself stays on.
    // The profile's ca_bundle is the fallback, as in the SDKs. The bundle replaces the
    // system store for this request.
    std::string ca_bundle = env_or("AWS_CA_BUNDLE", ca_bundle_);
    if (!ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca_bundle.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua.c_str());
    curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy.c_str());
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(request.timeouts.connect.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeouts.total.count()));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, request.timeouts.low_speed_bytes);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(request.timeouts.low_speed_time.count()));
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // let curl decode gzip answers
    if (!request.idempotent) curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);  // see http.h

    if (request.method == "GET") {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (request.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }

    curl_slist* headers = nullptr;
    bool has_content_type = false;
    for (const auto& [k, v] : request.headers) {
      if (iequals(k, "content-type")) has_content_type = true;
      std::string line = v.empty() ? k + ";" : k + ": " + v;
      headers = curl_slist_append(headers, line.c_str());
    }
    // libcurl adds defaults we did not sign; suppress them.
    headers = curl_slist_append(headers, "Expect:");
    if (!has_content_type && request.method != "GET" && request.method != "HEAD") {
      headers = curl_slist_append(headers, "Content-Type:");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &result.response.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &result.response);
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (rc != CURLE_OK) {
      TransportErrorKind kind = kind_of(rc);
      std::string cause = errbuf[0] ? errbuf : curl_easy_strerror(rc);
      result.error = TransportError{
          kind,
          request.method + " " + request.url + ": " + std::string(to_string(kind)) + ": " + cause,
          hint_for(kind)};
      result.response = HttpResponse{};
      return result;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    result.response.status = static_cast<int>(status);
    return result;
  }

 private:
  std::string ca_bundle_;
};

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

std::string_view to_string(TransportErrorKind kind) {
  switch (kind) {
    case TransportErrorKind::kConnect:
      return "connection failed";
    case TransportErrorKind::kTimeout:
      return "timed out";
    case TransportErrorKind::kReset:
      return "connection reset";
    case TransportErrorKind::kTls:
      return "TLS failure";
    case TransportErrorKind::kPolicy:
      return "refused";
    case TransportErrorKind::kOther:
      return "transport error";
  }
  return "transport error";
}

bool split_url(std::string_view url, UrlParts* out) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  UrlParts p;
  p.scheme = std::string(url.substr(0, sep));
  for (char& c : p.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = url.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) return false;  // no userinfo
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    p.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      p.port = std::string(after.substr(1));
    }
  } else {
    size_t colon = authority.rfind(':');
    p.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) p.port = std::string(authority.substr(colon + 1));
  }
  if (p.host.empty()) return false;
  for (char c : p.port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t q = rest.find('?');
  p.path = std::string(rest.substr(0, q));
  if (p.path.empty()) p.path = "/";
  if (q != std::string_view::npos) p.query = std::string(rest.substr(q + 1));
  *out = std::move(p);
  return true;
}

Status check_url_policy(std::string_view url) {
  UrlParts p;
  if (!split_url(url, &p)) {
    return make_error("\"" + std::string(url) + "\": not a valid URL",
                      "give an endpoint like https://ec2.us-east-1.amazonaws.com");
  }
  if (p.scheme == "https") return ok();
  if (p.scheme != "http") {
    return make_error("\"" + std::string(url) + "\": unsupported scheme \"" + p.scheme + "\"",
                      "use an https:// endpoint");
  }
  if (is_loopback_or_metadata(p.host)) return ok();
  return make_error("\"" + std::string(url) +
                        "\": refusing plain http to a non-loopback host (signed requests and "
                        "credentials would travel unencrypted)",
                    "use https://, or http:// only to 127.0.0.1/localhost for a local endpoint");
}

std::shared_ptr<Transport> make_curl_transport(std::string ca_bundle) {
  return std::make_shared<CurlTransport>(std::move(ca_bundle));
}

std::string user_agent() { return std::string("amibake/") + AMIBAKE_VERSION; }

}  // namespace amibake::aws
