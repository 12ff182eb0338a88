// The default credentials chain.
//
// The problem: credentials can come from a dozen places, and when none works the
// user must learn where we looked, not just "no credentials". The approach: decide
// statically, from environment variables and the profile files, which source is
// configured (as the SDKs do: the first configured source wins, later ones are not
// tried), and fall back to the container endpoint and then the IMDSv2 role, which
// need network probes. When the last resort fails, the error lists every place
// checked and what was found there.
//
// Order (AWS SDKs): environment keys; web identity from AWS_WEB_IDENTITY_TOKEN_FILE +
// AWS_ROLE_ARN; the selected profile (static keys, role_arn with source_profile /
// web_identity_token_file / credential_source, mfa_serial), IAM Identity Center (sso.cc),
// credential_process); the ECS/EKS
// container endpoint; the IMDSv2 instance role. As in the AWS CLI, --profile given
// on the command line wins over environment keys; AWS_PROFILE does not.
//
// Temporary credentials are wrapped in CachingCredentialsProvider, which refreshes
// them 5 minutes before they expire and serialises refreshes with a mutex.
#include "aws/credentials.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "aws/config.h"
#include "aws/credential_sources.h"
#include "aws/http.h"
#include "aws/imds.h"
#include "aws/sso.h"
#include "base/files.h"
#include "base/log.h"

namespace amibake::aws {
namespace {

std::unique_ptr<CredentialsProvider> cached(std::unique_ptr<CredentialsProvider> p) {
  return std::make_unique<CachingCredentialsProvider>(std::move(p));
}

// The last link: asks `inner` (IMDS) and, when it fails, answers the full list of
// places searched.
class LastResortProvider : public CredentialsProvider {
 public:
  LastResortProvider(std::unique_ptr<CredentialsProvider> inner, std::vector<std::string> looked,
                     std::string inner_disabled_reason)
      : inner_(std::move(inner)),
        looked_(std::move(looked)),
        disabled_(std::move(inner_disabled_reason)) {}

  Result<Credentials> get() override {
    std::string last;
    if (inner_) {
      auto c = inner_->get();
      if (c) return c;
      last = "IMDSv2 instance role: " + c.error().message;
    } else {
      last = "IMDSv2 instance role: " + disabled_;
    }
    std::string msg = "credentials: none found; looked in:";
    for (const auto& l : looked_) msg += "\n    - " + l;
    msg += "\n    - " + last;
    return make_error(msg,
                      "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run `aws configure`, or pass "
                      "--profile NAME for a profile in ~/.aws/config");
  }
  std::string describe() const override { return "IMDSv2 instance role"; }
  void invalidate() override {
    if (inner_) inner_->invalidate();
  }

 private:
  std::unique_ptr<CredentialsProvider> inner_;
  std::vector<std::string> looked_;
  std::string disabled_;
};

struct ChainContext {
  const CredentialsOptions& options;
  const ProfileFiles& files;
  StsTarget sts;
};

Result<std::shared_ptr<CredentialsProvider>> provider_for_profile(const ChainContext& ctx,
                                                                  const std::string& name,
                                                                  std::set<std::string>& visited);

std::string profile_desc(const ChainContext& ctx, const std::string& name) {
  return "profile " + name + " in " + ctx.files.where(name);
}

Result<std::shared_ptr<CredentialsProvider>> static_keys(const ChainContext& ctx,
                                                         const std::string& name,
                                                         const ProfileSection& p) {
  Credentials c;
  auto get = [&](const char* k) { return p.count(k) ? p.at(k) : std::string(); };
  c.access_key_id = get("aws_access_key_id");
  c.secret_access_key = get("aws_secret_access_key");
  c.session_token = get("aws_session_token");
  c.source = profile_desc(ctx, name);
  c.register_secrets();
  if (c.empty()) {
    return make_error(
        profile_desc(ctx, name) + ": aws_access_key_id and aws_secret_access_key must both be set",
        "add the missing key, e.g. with `aws configure --profile " + name + "`");
  }
  return std::shared_ptr<CredentialsProvider>(std::make_shared<StaticCredentialsProvider>(c));
}

Result<std::shared_ptr<CredentialsProvider>> credential_source(const ChainContext& ctx,
                                                               const std::string& name,
                                                               const std::string& source) {
  if (source == "Environment")
    return std::shared_ptr<CredentialsProvider>(make_environment_provider());
  if (source == "Ec2InstanceMetadata") {
    return std::shared_ptr<CredentialsProvider>(
        cached(make_imds_provider("", ctx.options.transport)));
  }
  if (source == "EcsContainer") {
    std::string rel = env_or("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    std::string full = rel.empty() ? env_or("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                                   : ctx.options.container_host + rel;
    if (full.empty()) {
      return make_error(profile_desc(ctx, name) +
                        ": credential_source = EcsContainer but no container endpoint is set");
    }
    return std::shared_ptr<CredentialsProvider>(cached(make_container_provider(
        full, env_or("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        env_or("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), ctx.options.transport)));
  }
  return make_error(profile_desc(ctx, name) + ": unknown credential_source \"" + source + "\"",
                    "use Environment, Ec2InstanceMetadata or EcsContainer");
}

Result<std::shared_ptr<CredentialsProvider>> role_provider(const ChainContext& ctx,
                                                           const std::string& name,
                                                           const ProfileSection& p,
                                                           std::set<std::string>& visited) {
  auto get = [&](const char* k) { return p.count(k) ? p.at(k) : std::string(); };
  std::string origin = profile_desc(ctx, name);
  AssumeRoleSettings s;
  s.role_arn = get("role_arn");
  s.session_name = get("role_session_name");
  s.external_id = get("external_id");
  if (std::string d = get("duration_seconds"); !d.empty()) {
    char* end = nullptr;
    long v = std::strtol(d.c_str(), &end, 10);
    if (*end != '\0' || v < 900 || v > 43200) {
      return make_error(origin + ": duration_seconds \"" + d +
                            "\" is not a number of seconds "
                            "from 900 to 43200",
                        "set duration_seconds to at most the role's maximum session duration");
    }
    s.duration_seconds = static_cast<int>(v);
  }
  s.mfa_serial = get("mfa_serial");
  s.mfa_code = ctx.options.mfa_code;
  s.prompter = ctx.options.mfa_prompter;
  if (!get("web_identity_token_file").empty()) {
    return std::shared_ptr<CredentialsProvider>(cached(make_web_identity_provider(
        s.role_arn, get("web_identity_token_file"), s.session_name, ctx.sts, origin)));
  }
  std::shared_ptr<CredentialsProvider> source;
  if (std::string sp = get("source_profile"); !sp.empty()) {
    if (sp == name) {
      AMIBAKE_ASSIGN(source, static_keys(ctx, name, p));
    } else {
      AMIBAKE_ASSIGN(source, provider_for_profile(ctx, sp, visited));
      if (!source) {
        return make_error(origin + ": source_profile \"" + sp + "\" has no credentials",
                          "add keys to profile \"" + sp + "\" or point source_profile elsewhere");
      }
    }
  } else if (std::string cs = get("credential_source"); !cs.empty()) {
    AMIBAKE_ASSIGN(source, credential_source(ctx, name, cs));
  } else {
    return make_error(origin +
                          ": role_arn needs source_profile, credential_source or "
                          "web_identity_token_file",
                      "add source_profile = <profile with keys> to the profile");
  }
  return std::shared_ptr<CredentialsProvider>(
      cached(make_assume_role_provider(s, std::move(source), ctx.sts, origin)));
}

// Returns the provider a profile configures, nullptr when it configures none, or an
// error (unknown profile, loops, bad settings).
Result<std::shared_ptr<CredentialsProvider>> provider_for_profile(const ChainContext& ctx,
                                                                  const std::string& name,
                                                                  std::set<std::string>& visited) {
  const ProfileSection* p = ctx.files.find(name);
  if (!p) {
    std::string known;
    for (const auto& n : ctx.files.names()) known += (known.empty() ? "" : ", ") + n;
    return make_error("profile \"" + name + "\": not found in " + ctx.files.config_path() + " or " +
                          ctx.files.credentials_path(),
                      known.empty() ? "create it with `aws configure --profile " + name + "`"
                                    : "known profiles: " + known);
  }
  if (!visited.insert(name).second) {
    return make_error("profile \"" + name + "\": source_profile chain loops back to itself",
                      "break the loop in " + ctx.files.config_path());
  }
  if (p->count("role_arn")) return role_provider(ctx, name, *p, visited);
  AMIBAKE_ASSIGN(std::optional<SsoProfile> sso, read_sso_profile(ctx.files, name));
  if (sso) {
    // The SSO hosts are resolved in sso_region, with the profile's endpoint settings
    // but not --endpoint-url (which, as in the AWS CLI, is for the command's service).
    std::string services_name = p->count("services") ? p->at("services") : "";
    EndpointResolver ends(sso->region, ClientSettings{}, p, ctx.files.services_of(name),
                          services_name);
    SsoEndpoints e{ends.endpoint("sso"), ends.endpoint("sso-oidc")};
    return std::shared_ptr<CredentialsProvider>(
        cached(make_sso_provider(std::move(*sso), e, ctx.options.transport)));
  }
  if (p->count("aws_access_key_id") || p->count("aws_secret_access_key")) {
    return static_keys(ctx, name, *p);
  }
  if (p->count("credential_process")) {
    return std::shared_ptr<CredentialsProvider>(
        cached(make_process_provider(p->at("credential_process"), profile_desc(ctx, name))));
  }
  return std::shared_ptr<CredentialsProvider>();
}

}  // namespace

StaticCredentialsProvider::StaticCredentialsProvider(Credentials c) : creds_(std::move(c)) {
  creds_.register_secrets();
}

Result<Credentials> StaticCredentialsProvider::get() {
  if (creds_.expiration && *creds_.expiration <= std::chrono::system_clock::now()) {
    return make_error(
        creds_.source + ": credentials expired at " + format_iso8601(*creds_.expiration),
        "renew the session credentials");
  }
  return creds_;
}

void Credentials::register_secrets() const {
  log::register_secret(secret_access_key);
  log::register_secret(session_token);
}

CachingCredentialsProvider::CachingCredentialsProvider(std::unique_ptr<CredentialsProvider> inner,
                                                       std::chrono::seconds refresh_ahead,
                                                       Clock clock)
    : inner_(std::move(inner)),
      refresh_ahead_(refresh_ahead),
      clock_(clock ? std::move(clock) : [] { return std::chrono::system_clock::now(); }) {}

Result<Credentials> CachingCredentialsProvider::get() {
  std::lock_guard lock(mu_);
  SystemTime now = clock_();
  if (cached_ && (!cached_->expiration || *cached_->expiration - refresh_ahead_ > now)) {
    return *cached_;
  }
  auto fresh = inner_->get();
  if (fresh) {
    if (fresh->expiration && *fresh->expiration <= now) {
      return make_error(fresh->source + ": answered credentials that expired at " +
                            format_iso8601(*fresh->expiration),
                        "check the clock of this machine and of the credential source");
    }
    cached_ = *fresh;
    return fresh;
  }
  // Refresh failed: keep using what we have while it is still valid.
  if (cached_ && cached_->expiration && *cached_->expiration > now) {
    log::warn("credentials: refresh failed, using the current ones until they expire: " +
              fresh.error().message);
    return *cached_;
  }
  return fresh;
}

void CachingCredentialsProvider::invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
}

bool parse_iso8601(std::string_view text, SystemTime* out) {
  std::tm tm{};
  std::string s(text);
  const char* p = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p) return false;
  if (*p == '.') {
    ++p;
    while (std::isdigit(static_cast<unsigned char>(*p))) ++p;
  }
  long offset = 0;
  if (*p == 'Z' || *p == 'z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return false;
    offset = sign * (hh * 3600L + mm * 60L);
    p += 6;
  } else if (*p != '\0') {
    return false;
  }
  if (*p != '\0') return false;
  *out = std::chrono::system_clock::from_time_t(timegm(&tm) - offset);
  return true;
}

std::string format_iso8601(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::unique_ptr<CredentialsProvider>> make_default_credentials_provider(
    const CredentialsOptions& options) {
  std::vector<std::string> looked;
  AMIBAKE_ASSIGN(ProfileFiles files, ProfileFiles::load());
  ChainContext ctx{options, files,
                   StsTarget{options.region, options.sts_endpoint, options.transport}};

  // 1. Environment keys (unless --profile was given explicitly).
  bool env_keys = !env_or("AWS_ACCESS_KEY_ID").empty() || !env_or("AWS_SECRET_ACCESS_KEY").empty();
  if (env_keys && !options.profile_from_flag) return make_environment_provider();
  looked.push_back(env_keys
                       ? "environment variables (skipped: --profile given)"
                       : "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: not set");

  // 2. Web identity from the environment.
  std::string token_file = env_or("AWS_WEB_IDENTITY_TOKEN_FILE");
  std::string role_arn = env_or("AWS_ROLE_ARN");
  if (!token_file.empty() && !role_arn.empty() && !options.profile_from_flag) {
    return cached(make_web_identity_provider(role_arn, token_file, env_or("AWS_ROLE_SESSION_NAME"),
                                             ctx.sts, "AWS_WEB_IDENTITY_TOKEN_FILE"));
  }
  looked.push_back("AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: not set");

  // 3. The selected profile.
  std::string profile = options.profile.empty()
                            ? env_or("AWS_PROFILE", env_or("AWS_DEFAULT_PROFILE", "default"))
                            : options.profile;
  bool explicit_profile = !options.profile.empty() || !env_or("AWS_PROFILE").empty() ||
                          !env_or("AWS_DEFAULT_PROFILE").empty();
  if (files.find(profile) || explicit_profile) {
    std::set<std::string> visited;
    AMIBAKE_ASSIGN(std::shared_ptr<CredentialsProvider> p,
                   provider_for_profile(ctx, profile, visited));
    if (p) {
      struct Shared : CredentialsProvider {
        std::shared_ptr<CredentialsProvider> p;
        Result<Credentials> get() override { return p->get(); }
        std::string describe() const override { return p->describe(); }
        void invalidate() override { p->invalidate(); }
      };
      auto s = std::make_unique<Shared>();
      s->p = std::move(p);
      return std::unique_ptr<CredentialsProvider>(std::move(s));
    }
    looked.push_back("profile \"" + profile + "\" in " + files.config_path() + " and " +
                     files.credentials_path() + ": no credential settings");
  } else {
    looked.push_back("profile \"" + profile + "\": not in " + files.config_path() + " or " +
                     files.credentials_path());
  }

  // 4. Container endpoint (ECS task role, EKS pod identity).
  std::string rel = env_or("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  std::string full = env_or("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!rel.empty() || !full.empty()) {
    std::string url = !rel.empty() ? options.container_host + rel : full;
    if (Status policy = check_url_policy(url); !policy) {
      return policy.error().wrap("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    }
    return cached(make_container_provider(url, env_or("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                                          env_or("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
                                          options.transport));
  }
  looked.push_back("container endpoint AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI: not set");

  // 5. IMDSv2 instance role, last resort.
  ImdsClient probe(ImdsClient::Options{"", options.transport});
  if (probe.disabled()) {
    return std::unique_ptr<CredentialsProvider>(std::make_unique<LastResortProvider>(
        nullptr, looked, "disabled by AWS_EC2_METADATA_DISABLED"));
  }
  return std::unique_ptr<CredentialsProvider>(std::make_unique<LastResortProvider>(
      cached(make_imds_provider("", options.transport)), looked, ""));
}

}  // namespace amibake::aws
