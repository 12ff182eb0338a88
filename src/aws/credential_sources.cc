// Credential sources: one small provider per place credentials can come from.
//
// Each provider answers fresh credentials with a `source` string a human can act on
// ("credential_process of profile dev", "container endpoint http://..."), and
// registers every secret it learns with the redacting logger before anything else
// can print it. Providers of temporary credentials are wrapped in the
// CachingCredentialsProvider by the chain builder (credentials.cc), so they may be
// slow (a process, a network call) without being called on every request.
#include "aws/credential_sources.h"

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/imds.h"
#include "aws/sts.h"
#include "base/files.h"
#include "base/log.h"
#include "base/subprocess.h"

namespace amibake::aws {
namespace {

std::string json_str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

Status check_not_expired(const Credentials& c, const std::string& subject) {
  if (c.expiration && *c.expiration <= std::chrono::system_clock::now()) {
    return make_error(subject + ": credentials expired at " + format_iso8601(*c.expiration),
                      "renew them at their source (log in again / refresh the role session)");
  }
  return ok();
}

class EnvironmentProvider : public CredentialsProvider {
 public:
  Result<Credentials> get() override {
    Credentials c;
    c.access_key_id = env_or("AWS_ACCESS_KEY_ID");
    c.secret_access_key = env_or("AWS_SECRET_ACCESS_KEY");
    c.session_token = env_or("AWS_SESSION_TOKEN");
    c.source = "environment (AWS_ACCESS_KEY_ID)";
    c.register_secrets();
    if (c.empty()) {
      return make_error("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set",
                        "set both variables, or unset both to use another credential source");
    }
    std::string exp = env_or("AWS_CREDENTIAL_EXPIRATION");
    SystemTime t;
    if (!exp.empty() && parse_iso8601(exp, &t)) c.expiration = t;
    AMIBAKE_TRY(check_not_expired(c, "environment"));
    return c;
  }
  std::string describe() const override {
    return "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  }
};

class ProcessProvider : public CredentialsProvider {
 public:
  ProcessProvider(std::string line, std::string profile_desc)
      : line_(std::move(line)), profile_desc_(std::move(profile_desc)) {}

  Result<Credentials> get() override {
    std::string subject = "credential_process of " + profile_desc_;
    std::vector<std::string> argv;
    if (!split_command_line(line_, &argv) || argv.empty()) {
      return make_error(subject + ": cannot parse the command line \"" + line_ + "\"",
                        "check the quoting of credential_process");
    }
    RunOptions options;
    options.timeout = std::chrono::minutes(2);
    auto run = run_process(argv, options);
    if (!run) return run.error().wrap(subject);
    const ProcessResult& r = *run;
    if (r.exit_code != 0) {
      std::string err = r.err;
      while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
      if (size_t nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
      return make_error(subject + ": \"" + argv[0] + "\" exited with code " +
                            std::to_string(r.exit_code) + (err.empty() ? "" : ": " + err),
                        "run the command by hand to see what it needs (a login, an MFA code)");
    }
    AMIBAKE_ASSIGN(Credentials c, parse_credentials_json(r.out, subject));
    c.source = subject;
    AMIBAKE_TRY(check_not_expired(c, subject));
    return c;
  }
  std::string describe() const override { return "credential_process of " + profile_desc_; }

 private:
  std::string line_, profile_desc_;
};

class ContainerProvider : public CredentialsProvider {
 public:
  ContainerProvider(std::string url, std::string token, std::string token_file,
                    std::shared_ptr<Transport> transport)
      : url_(std::move(url)),
        token_(std::move(token)),
        token_file_(std::move(token_file)),
        transport_(transport ? std::move(transport) : make_curl_transport()) {}

  Result<Credentials> get() override {
    std::string subject = "container credentials endpoint " + url_;
    HttpRequest req;
    req.url = url_;
    req.timeouts.connect = std::chrono::seconds(2);
    req.timeouts.total = std::chrono::seconds(5);
    std::string token = token_;
    if (!token_file_.empty()) {
      AMIBAKE_ASSIGN(token, read_file(token_file_));
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    }
    if (!token.empty()) {
      log::register_secret(token);
      req.headers.emplace_back("Authorization", token);
    }
    HttpResult r;
    for (int attempt = 0; attempt < 2; ++attempt) {  // one quick retry, as the SDKs do
      r = transport_->send(req);
      if (r.ok() && r.response.status < 500) break;
    }
    if (!r.ok()) return make_error(subject + ": " + r.error->message, r.error->hint);
    if (r.response.status != 200) {
      return make_error(subject + ": HTTP " + std::to_string(r.response.status),
                        "check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) and the task role");
    }
    AMIBAKE_ASSIGN(Credentials c, parse_credentials_json(r.response.body, subject));
    c.source = subject;
    AMIBAKE_TRY(check_not_expired(c, subject));
    return c;
  }
  std::string describe() const override { return "container credentials endpoint " + url_; }

 private:
  std::string url_, token_, token_file_;
  std::shared_ptr<Transport> transport_;
};

class ImdsProvider : public CredentialsProvider {
 public:
  ImdsProvider(std::string endpoint, std::shared_ptr<Transport> transport) {
    ImdsClient::Options o;
    o.endpoint = std::move(endpoint);
    o.transport = std::move(transport);
    imds_ = std::make_unique<ImdsClient>(std::move(o));
  }

  Result<Credentials> get() override {
    AMIBAKE_ASSIGN(std::string roles, imds_->get("meta-data/iam/security-credentials/"));
    std::string role = roles.substr(0, roles.find('\n'));
    while (!role.empty() && (role.back() == '\r' || role.back() == ' ')) role.pop_back();
    if (role.empty()) {
      return make_error("IMDS: this instance has no IAM role",
                        "attach an instance profile with the permissions amibake needs");
    }
    std::string subject = "IMDSv2 instance role " + role;
    AMIBAKE_ASSIGN(std::string body, imds_->get("meta-data/iam/security-credentials/" + role));
    nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("Code") && json_str(j, "Code") != "Success") {
      return make_error(subject + ": " + json_str(j, "Code") + ": " + json_str(j, "Message"));
    }
    AMIBAKE_ASSIGN(Credentials c, parse_credentials_json(body, subject));
    c.source = subject;
    return c;
  }
  std::string describe() const override { return "IMDSv2 instance role at " + imds_->endpoint(); }

 private:
  std::unique_ptr<ImdsClient> imds_;
};

std::unique_ptr<AwsClient> sts_client(const StsTarget& sts,
                                      std::shared_ptr<CredentialsProvider> creds) {
  AwsClient::Options o;
  o.region = sts.region.empty() ? "us-east-1" : sts.region;
  o.endpoints = EndpointResolver(o.region, ClientSettings{}, nullptr);
  o.endpoint_override = sts.endpoint;
  o.credentials = std::move(creds);
  o.transport = sts.transport;
  return std::make_unique<AwsClient>(std::move(o));
}

class WebIdentityProvider : public CredentialsProvider {
 public:
  WebIdentityProvider(std::string role_arn, std::string token_file, std::string session_name,
                      StsTarget sts, std::string origin)
      : role_arn_(std::move(role_arn)),
        token_file_(std::move(token_file)),
        session_name_(std::move(session_name)),
        origin_(std::move(origin)),
        client_(sts_client(sts, nullptr)) {}

  Result<Credentials> get() override {
    std::string subject = "web identity (" + origin_ + ")";
    auto token = read_file(token_file_);
    if (!token) {
      return make_error(subject + ": cannot read the token file: " + token.error().message,
                        "check web_identity_token_file / AWS_WEB_IDENTITY_TOKEN_FILE");
    }
    std::string t = *token;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    log::register_secret(t);
    sts::WebIdentityRequest req{role_arn_, session_name_, t, 0};
    auto c = sts::assume_role_with_web_identity(*client_, req);
    if (!c) return c.error().wrap(subject);
    c->source = "assume-role-with-web-identity " + role_arn_ + " via " + origin_;
    return c;
  }
  std::string describe() const override { return "web identity token (" + origin_ + ")"; }

 private:
  std::string role_arn_, token_file_, session_name_, origin_;
  std::unique_ptr<AwsClient> client_;
};

class AssumeRoleProvider : public CredentialsProvider {
 public:
  AssumeRoleProvider(AssumeRoleSettings settings, std::shared_ptr<CredentialsProvider> source,
                     StsTarget sts, std::string origin)
      : settings_(std::move(settings)),
        source_desc_(source->describe()),
        origin_(std::move(origin)),
        client_(sts_client(sts, std::move(source))) {}

  Result<Credentials> get() override {
    sts::AssumeRoleRequest req{settings_.role_arn, settings_.session_name, settings_.external_id,
                               settings_.duration_seconds};
    auto c = sts::assume_role(*client_, req);
    if (!c) return c.error().wrap("assume role " + settings_.role_arn + " (" + origin_ + ")");
    c->source = "assume-role " + settings_.role_arn + " via " + origin_;
    return c;
  }
  std::string describe() const override {
    return "assume-role " + settings_.role_arn + " (" + origin_ + ") with " + source_desc_;
  }

 private:
  AssumeRoleSettings settings_;
  std::string source_desc_, origin_;
  std::unique_ptr<AwsClient> client_;
};

}  // namespace

bool split_command_line(const std::string& line, std::vector<std::string>* out) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < line.size()) {
        cur.push_back(line[++i]);
      } else {
        cur.push_back(c);
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      cur.push_back(line[++i]);
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (quote) return false;
  if (in_word) words.push_back(std::move(cur));
  *out = std::move(words);
  return true;
}

Result<Credentials> parse_credentials_json(const std::string& body, const std::string& subject) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return make_error(subject + ": answer is not a JSON object",
                      "it must print {\"Version\": 1, \"AccessKeyId\": ..., \"SecretAccessKey\": "
                      "...} on stdout");
  }
  if (j.contains("Version") &&
      !(j["Version"].is_number_integer() && j["Version"].get<int>() == 1)) {
    return make_error(subject + ": unsupported \"Version\" (only 1 is known)");
  }
  Credentials c;
  c.access_key_id = json_str(j, "AccessKeyId");
  c.secret_access_key = json_str(j, "SecretAccessKey");
  c.session_token = json_str(j, "SessionToken");
  if (c.session_token.empty()) c.session_token = json_str(j, "Token");
  c.register_secrets();
  if (c.empty()) return make_error(subject + ": answer lacks AccessKeyId or SecretAccessKey");
  std::string exp = json_str(j, "Expiration");
  if (!exp.empty()) {
    SystemTime t;
    if (!parse_iso8601(exp, &t)) {
      return make_error(subject + ": \"Expiration\": \"" + exp + "\" is not an ISO 8601 time");
    }
    c.expiration = t;
  }
  return c;
}

std::unique_ptr<CredentialsProvider> make_environment_provider() {
  return std::make_unique<EnvironmentProvider>();
}
std::unique_ptr<CredentialsProvider> make_process_provider(std::string line, std::string desc) {
  return std::make_unique<ProcessProvider>(std::move(line), std::move(desc));
}
std::unique_ptr<CredentialsProvider> make_container_provider(std::string url, std::string token,
                                                             std::string token_file,
                                                             std::shared_ptr<Transport> t) {
  return std::make_unique<ContainerProvider>(std::move(url), std::move(token),
                                             std::move(token_file), std::move(t));
}
std::unique_ptr<CredentialsProvider> make_imds_provider(std::string endpoint,
                                                        std::shared_ptr<Transport> t) {
  return std::make_unique<ImdsProvider>(std::move(endpoint), std::move(t));
}
std::unique_ptr<CredentialsProvider> make_web_identity_provider(std::string role_arn,
                                                                std::string token_file,
                                                                std::string session_name,
                                                                StsTarget sts, std::string origin) {
  return std::make_unique<WebIdentityProvider>(std::move(role_arn), std::move(token_file),
                                               std::move(session_name), std::move(sts),
                                               std::move(origin));
}
std::unique_ptr<CredentialsProvider> make_assume_role_provider(
    AssumeRoleSettings settings, std::shared_ptr<CredentialsProvider> source, StsTarget sts,
    std::string origin) {
  return std::make_unique<AssumeRoleProvider>(std::move(settings), std::move(source),
                                              std::move(sts), std::move(origin));
}

}  // namespace amibake::aws
