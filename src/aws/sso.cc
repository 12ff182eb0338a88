// IAM Identity Center (SSO) credentials.
//
// The problem: most teams sign in with `aws sso login`, which leaves an OIDC access
// token in ~/.aws/sso/cache; the role credentials amibake signs with must be traded
// for that token at the SSO portal, and the token itself lasts hours while a build
// may outlast the role credentials. The approach follows botocore step by step
// (credentials.py SSOProvider / SSOCredentialFetcher, tokens.py SSOTokenProvider,
// utils.py SSOTokenLoader), so a profile that works with the AWS CLI works here and
// fails with the same words when it does not:
//
//   1. read_sso_profile merges [sso-session NAME] into the profile and checks the keys.
//   2. Every fetch reads the cache file <sha1(session name | start URL)>.json.
//   3. sso-session profiles only: less than 15 minutes left → CreateToken with the
//      refresh token (unsigned POST /token); the answer replaces accessToken,
//      expiresAt (and refreshToken) in the cache file, which is rewritten atomically
//      with mode 0600 and every other field kept. A failed refresh is only a warning
//      while the old token still works. Legacy profiles never refresh.
//   4. An expired token is an error before any portal call; otherwise GET
//      /federation/credentials with the token in x-amz-sso_bearer_token. 401/403 means
//      the session is gone: the same error. Either way the error names the exact
//      `aws sso login` command and nothing is retried.
//
// Tokens, refresh tokens and client secrets are registered with the redacting logger
// as soon as they are read and never put into messages.
#include "aws/sso.h"

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/sigv4.h"
#include "base/files.h"
#include "base/log.h"

namespace amibake::aws {
namespace {

constexpr std::chrono::minutes kTokenRefreshWindow{15};  // tokens.py _REFRESH_WINDOW

std::string json_str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string until(SystemTime t) {
  auto left =
      std::chrono::duration_cast<std::chrono::minutes>(t - std::chrono::system_clock::now());
  if (left.count() <= 0) return "expired at " + format_iso8601(t);
  if (left.count() < 120) return "expires in " + std::to_string(left.count()) + " min";
  return "expires in " + std::to_string((left.count() + 30) / 60) + "h";  // nearest hour
}

// The AWS CLI's words for a session that is over (UnauthorizedSSOTokenError), with
// the precise command instead of "with the corresponding profile".
Error session_over(const SsoProfile& p, const std::string& why) {
  return make_error("profile \"" + p.profile +
                        "\": The SSO session associated with this profile has expired or is "
                        "otherwise invalid (" +
                        why + ")",
                    "To refresh this SSO session run `" + p.login_command() + "`");
}

struct CachedToken {
  nlohmann::json doc;  // the whole file, so a rewrite keeps every field
  SsoToken token;
};

Result<CachedToken> load_token(const SsoProfile& p) {
  std::string path = p.token_cache_path();
  std::string name = p.legacy() ? p.start_url : p.session_name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return make_error("profile \"" + p.profile + "\": Error loading SSO Token: Token for " + name +
                          " does not exist (no " + path + ")",
                      "sign in with `" + p.login_command() + "`");
  }
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  CachedToken t;
  t.doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::string invalid = "profile \"" + p.profile + "\": Error loading SSO Token: Token for " +
                        p.start_url + " is invalid (" + path + ")";
  if (!t.doc.is_object())
    return make_error(invalid + ": not a JSON object",
                      "sign in again with `" + p.login_command() + "`");
  t.token.access_token = json_str(t.doc, "accessToken");
  std::string expires = json_str(t.doc, "expiresAt");
  if (t.token.access_token.empty() || expires.empty()) {
    return make_error(invalid + ": accessToken or expiresAt missing",
                      "sign in again with `" + p.login_command() + "`");
  }
  log::register_secret(t.token.access_token);
  log::register_secret(json_str(t.doc, "refreshToken"));
  log::register_secret(json_str(t.doc, "clientSecret"));
  if (!parse_iso8601(expires, &t.token.expires_at)) {
    return make_error(invalid + ": expiresAt \"" + expires + "\" is not an ISO 8601 time",
                      "sign in again with `" + p.login_command() + "`");
  }
  t.token.refreshable =
      !json_str(t.doc, "refreshToken").empty() && !json_str(t.doc, "clientId").empty() &&
      !json_str(t.doc, "clientSecret").empty() && !json_str(t.doc, "registrationExpiresAt").empty();
  return t;
}

std::string answer_error(const HttpResult& r) {
  if (!r.ok()) return r.error->message;
  std::string what = "HTTP " + std::to_string(r.response.status);
  auto j = nlohmann::json::parse(r.response.body, nullptr, /*allow_exceptions=*/false);
  std::string code = r.response.header("x-amzn-ErrorType");
  if (code.empty() && j.is_object()) code = json_str(j, "error");
  if (code.empty() && j.is_object()) code = json_str(j, "__type");
  code = code.substr(0, code.find(':'));
  if (size_t hash = code.find('#'); hash != std::string::npos) code = code.substr(hash + 1);
  if (!code.empty()) what += " " + code;
  std::string msg = j.is_object() ? json_str(j, "message") : "";
  if (msg.empty() && j.is_object()) msg = json_str(j, "error_description");
  if (msg.empty() && j.is_object()) msg = json_str(j, "Message");
  if (!msg.empty()) what += ": " + msg;
  return what;
}

bool transient(const HttpResult& r) {
  if (!r.ok())
    return r.error->kind != TransportErrorKind::kTls &&
           r.error->kind != TransportErrorKind::kPolicy;
  return r.response.status == 429 || r.response.status >= 500;
}

// Sends `req` up to three times while the answer is a throttle, a 5xx or a lost
// connection; anything else is returned at once.
HttpResult send_with_retries(Transport& transport, const HttpRequest& req) {
  HttpResult r;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    r = transport.send(req);
    if (!transient(r)) break;
  }
  return r;
}

class SsoProvider : public CredentialsProvider {
 public:
  SsoProvider(SsoProfile profile, SsoEndpoints endpoints, std::shared_ptr<Transport> transport)
      : profile_(std::move(profile)),
        endpoints_(std::move(endpoints)),
        transport_(transport ? std::move(transport) : make_curl_transport()) {}

  Result<Credentials> get() override {
    std::lock_guard lock(mu_);
    AMIBAKE_ASSIGN(SsoToken token, current_token());
    return role_credentials(token);
  }

  std::string describe() const override {
    return "IAM Identity Center " + profile_.describe() + " (profile " + profile_.profile + ")";
  }

 private:
  // Step 2 and 3: the cached token, refreshed when it is about to expire.
  Result<SsoToken> current_token() {
    AMIBAKE_ASSIGN(CachedToken cached, load_token(profile_));
    SystemTime now = std::chrono::system_clock::now();
    std::string refresh_failure;
    if (!profile_.legacy() && cached.token.expires_at - now < kTokenRefreshWindow) {
      auto refreshed = refresh(cached, now);
      if (refreshed) return *refreshed;
      refresh_failure = refreshed.error().message;
    }
    if (cached.token.expires_at <= now) {
      std::string why = "token " + until(cached.token.expires_at);
      if (profile_.legacy()) {
        why += "; legacy sso_start_url profiles are not refreshed";
      } else {
        why += "; refresh failed: " + refresh_failure;
      }
      return session_over(profile_, why);
    }
    if (!refresh_failure.empty()) {
      log::warn("sso-session " + profile_.session_name + ": token refresh failed, using the " +
                "current token until it expires at " + format_iso8601(cached.token.expires_at) +
                ": " + refresh_failure);
    }
    return cached.token;
  }

  // CreateToken with the refresh token; rewrites the cache file on success.
  Result<SsoToken> refresh(CachedToken& cached, SystemTime now) {
    if (!cached.token.refreshable) {
      return make_error("the cache has no refresh token and client registration");
    }
    SystemTime registration;
    if (!parse_iso8601(json_str(cached.doc, "registrationExpiresAt"), &registration)) {
      return make_error("registrationExpiresAt is not an ISO 8601 time");
    }
    if (registration <= now) {
      return make_error("the client registration expired at " + format_iso8601(registration));
    }
    nlohmann::json body = {{"grantType", "refresh_token"},
                           {"clientId", json_str(cached.doc, "clientId")},
                           {"clientSecret", json_str(cached.doc, "clientSecret")},
                           {"refreshToken", json_str(cached.doc, "refreshToken")}};
    HttpRequest req;
    req.method = "POST";
    req.url = endpoints_.oidc + "/token";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body.dump();
    req.idempotent = false;
    HttpResult r = send_with_retries(*transport_, req);
    if (!r.ok() || r.response.status != 200) {
      return make_error("CreateToken at " + endpoints_.oidc + ": " + answer_error(r));
    }
    auto answer = nlohmann::json::parse(r.response.body, nullptr, /*allow_exceptions=*/false);
    std::string access = answer.is_object() ? json_str(answer, "accessToken") : "";
    auto expires_in = answer.is_object() ? answer.find("expiresIn") : answer.end();
    if (access.empty() || expires_in == answer.end() || !expires_in->is_number_integer()) {
      return make_error("CreateToken at " + endpoints_.oidc +
                        ": answer lacks accessToken or expiresIn");
    }
    log::register_secret(access);
    SsoToken fresh = cached.token;
    fresh.access_token = access;
    fresh.expires_at = now + std::chrono::seconds(expires_in->get<long>());
    cached.doc["accessToken"] = access;
    cached.doc["expiresAt"] = format_iso8601(fresh.expires_at);
    if (std::string rt = json_str(answer, "refreshToken"); !rt.empty()) {
      log::register_secret(rt);
      cached.doc["refreshToken"] = rt;
    }
    if (Status st = write_file_atomic(profile_.token_cache_path(), cached.doc.dump(), 0600); !st) {
      log::warn("sso-session " + profile_.session_name +
                ": refreshed token not saved: " + st.error().message);
    }
    return fresh;
  }

  // Step 4: GetRoleCredentials.
  Result<Credentials> role_credentials(const SsoToken& token) {
    HttpRequest req;
    req.url = endpoints_.portal +
              "/federation/credentials?role_name=" + sigv4::uri_encode(profile_.role_name) +
              "&account_id=" + sigv4::uri_encode(profile_.account_id);
    req.headers = {{"x-amz-sso_bearer_token", token.access_token}};
    HttpResult r = send_with_retries(*transport_, req);
    std::string subject = "IAM Identity Center GetRoleCredentials (" + profile_.describe() + ")";
    if (r.ok() && (r.response.status == 401 || r.response.status == 403)) {
      return session_over(profile_, "the portal rejected the token: " + answer_error(r));
    }
    if (!r.ok()) return make_error(subject + ": " + r.error->message, r.error->hint);
    if (r.response.status != 200) {
      return make_error(
          subject + ": " + answer_error(r),
          r.response.status == 404
              ? "check sso_account_id and sso_role_name; `aws sso list-account-roles` "
                "lists the roles this sign-in may use"
              : "");
    }
    auto j = nlohmann::json::parse(r.response.body, nullptr, /*allow_exceptions=*/false);
    auto rc = j.is_object() ? j.find("roleCredentials") : j.end();
    if (rc == j.end() || !rc->is_object()) {
      return make_error(subject + ": answer lacks roleCredentials");
    }
    Credentials c;
    c.access_key_id = json_str(*rc, "accessKeyId");
    c.secret_access_key = json_str(*rc, "secretAccessKey");
    c.session_token = json_str(*rc, "sessionToken");
    c.register_secrets();
    auto exp = rc->find("expiration");
    if (c.empty() || exp == rc->end() || !exp->is_number()) {
      return make_error(subject + ": answer lacks accessKeyId, secretAccessKey or expiration");
    }
    c.expiration = SystemTime(std::chrono::milliseconds(exp->get<int64_t>()));
    c.source = "IAM Identity Center " + profile_.describe() + ", token " + until(token.expires_at) +
               " (profile " + profile_.profile + ")";
    return c;
  }

  SsoProfile profile_;
  SsoEndpoints endpoints_;
  std::shared_ptr<Transport> transport_;
  std::mutex mu_;
};

}  // namespace

std::string SsoProfile::login_command() const {
  return legacy() ? "aws sso login --profile " + profile
                  : "aws sso login --sso-session " + session_name;
}

std::string SsoProfile::token_cache_path() const {
  return env_or("HOME") + "/.aws/sso/cache/" + sha1_hex(legacy() ? start_url : session_name) +
         ".json";
}

std::string SsoProfile::describe() const {
  std::string who = legacy() ? "sso_start_url " + start_url : "sso-session " + session_name;
  return who + ", account " + account_id + ", role " + role_name;
}

Result<std::optional<SsoProfile>> read_sso_profile(const ProfileFiles& files,
                                                   const std::string& name) {
  const ProfileSection* p = files.find(name);
  if (!p) return std::optional<SsoProfile>();
  bool names_role = p->count("sso_role_name") || p->count("sso_account_id");
  bool names_sso = p->count("sso_session") || p->count("sso_start_url");
  // botocore keys on sso_role_name/sso_account_id; a profile that names only a session
  // or start URL and no other credentials is meant as SSO too, so say what it lacks.
  if (!names_role &&
      (!names_sso || p->count("aws_access_key_id") || p->count("credential_process"))) {
    return std::optional<SsoProfile>();
  }
  std::string where = "profile \"" + name + "\" in " + files.where(name);
  ProfileSection resolved = *p;
  std::vector<std::string> required = {"sso_role_name", "sso_account_id", "sso_start_url",
                                       "sso_region"};
  if (p->count("sso_session")) {
    const std::string& session = p->at("sso_session");
    const ProfileSection* s = files.sso_session(session);
    if (!s) {
      return make_error("The specified sso-session does not exist: \"" + session + "\"",
                        "add [sso-session " + session + "] to " + files.config_path() +
                            " (`aws configure sso-session` writes it), or fix sso_session in " +
                            where);
    }
    for (const auto& [key, value] : *s) {
      auto it = resolved.find(key);
      if (it != resolved.end() && it->second != value) {
        return make_error("The value for " + key + " is inconsistent between profile (" +
                              it->second + ") and sso-session (" + value + ").",
                          "remove " + key + " from " + where + " or make both the same");
      }
      resolved[key] = value;
    }
    required.push_back("sso_session");
  }
  std::string missing;
  for (const auto& key : required) {
    if (!resolved.count(key) || resolved.at(key).empty())
      missing += (missing.empty() ? "" : ", ") + key;
  }
  if (!missing.empty()) {
    return make_error(
        "The profile \"" + name +
            "\" is configured to use SSO but is missing required configuration: " + missing,
        "add them to " + where + (p->count("sso_session") ? " or its [sso-session] section" : "") +
            " (`aws configure sso` writes them)");
  }
  SsoProfile out;
  out.profile = name;
  out.session_name = p->count("sso_session") ? p->at("sso_session") : "";
  out.start_url = resolved.at("sso_start_url");
  out.region = resolved.at("sso_region");
  out.account_id = resolved.at("sso_account_id");
  out.role_name = resolved.at("sso_role_name");
  return std::optional<SsoProfile>(std::move(out));
}

Result<SsoToken> read_sso_token(const SsoProfile& profile) {
  AMIBAKE_ASSIGN(CachedToken t, load_token(profile));
  return t.token;
}

std::unique_ptr<CredentialsProvider> make_sso_provider(SsoProfile profile, SsoEndpoints endpoints,
                                                       std::shared_ptr<Transport> transport) {
  return std::make_unique<SsoProvider>(std::move(profile), std::move(endpoints),
                                       std::move(transport));
}

}  // namespace amibake::aws
