// Credential sources: one small provider per place credentials can come from.
//
// Each provider answers fresh credentials with a `source` string a human can act on
// ("credential_process of profile dev", "container endpoint http://..."), and
// registers every secret it learns with the redacting logger before anything else
// can print it. Providers of temporary credentials are wrapped in the
// CachingCredentialsProvider by the chain builder (credentials.cc), so they may be
// slow (a process, a network call) without being called on every request.
#include "aws/credential_sources.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

#include "aws/client.h"
#include "aws/imds.h"
#include "aws/sigv4.h"
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

// AssumeRole. With mfa_serial it behaves as the AWS CLI does: the answer is kept in
// ~/.aws/cli/cache/<key>.json (same key, same shape) and reused until 15 minutes
// before it expires, so one code serves a role session of up to its full duration,
// across amibake runs and shared with the AWS CLI.
class AssumeRoleProvider : public CredentialsProvider {
 public:
  AssumeRoleProvider(AssumeRoleSettings settings, std::shared_ptr<CredentialsProvider> source,
                     StsTarget sts, std::string origin)
      : settings_(std::move(settings)),
        source_desc_(source->describe()),
        origin_(std::move(origin)),
        client_(sts_client(sts, std::move(source))) {}

  Result<Credentials> get() override {
    std::lock_guard lock(mu_);
    sts::AssumeRoleRequest req;
    req.role_arn = settings_.role_arn;
    req.role_session_name = settings_.session_name;
    req.external_id = settings_.external_id;
    req.duration_seconds = settings_.duration_seconds;
    std::string subject = "assume role " + settings_.role_arn + " (" + origin_ + ")";
    if (!settings_.mfa_serial.empty()) {
      if (auto c = load_cached(); c) return *c;
      AMIBAKE_ASSIGN(req.token_code, mfa_code(subject));
      req.serial_number = settings_.mfa_serial;
    }
    auto c = sts::assume_role(*client_, req);
    if (!c) return c.error().wrap(subject);
    c->source = "assume-role " + settings_.role_arn + " via " + origin_;
    if (!settings_.mfa_serial.empty()) save_cached(*c);
    return c;
  }
  std::string describe() const override {
    return "assume-role " + settings_.role_arn + " (" + origin_ + ") with " + source_desc_;
  }

 private:
  static constexpr std::chrono::minutes kCacheWindow{15};  // botocore's expiry window

  std::string cache_path() const {
    std::string dir =
        settings_.cache_dir.empty() ? env_or("HOME") + "/.aws/cli/cache" : settings_.cache_dir;
    return dir + "/" + assume_role_cache_key(settings_) + ".json";
  }

  // The code for one AssumeRole: --mfa-code once (a code cannot be used twice), then
  // the terminal.
  Result<std::string> mfa_code(const std::string& subject) {
    std::string code = std::exchange(settings_.mfa_code, std::string());
    if (!code.empty()) return code;
    MfaPrompter ask = settings_.prompter ? settings_.prompter : prompt_on_terminal;
    auto asked = ask("Enter MFA code for " + settings_.mfa_serial + ": ");
    if (!asked) {
      return make_error(subject + ": mfa_serial " + settings_.mfa_serial +
                            " needs a code: " + asked.error().message,
                        "pass --mfa-code CODE with the current code of that device, or run "
                        "amibake on a terminal");
    }
    return *asked;
  }

  std::optional<Credentials> load_cached() const {
    std::string path = cache_path();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    auto text = read_file(path);
    if (!text) return std::nullopt;
    auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("Credentials") || !j["Credentials"].is_object())
      return std::nullopt;
    auto c = parse_credentials_json(j["Credentials"].dump(), path);
    if (!c || !c->expiration) return std::nullopt;
    if (*c->expiration - kCacheWindow <= std::chrono::system_clock::now()) return std::nullopt;
    c->source = "assume-role " + settings_.role_arn + " via " + origin_ +
                " (MFA session cached in " + path + ")";
    return *c;
  }

  void save_cached(const Credentials& c) const {
    if (!c.expiration) return;
    nlohmann::json j = {{"Credentials",
                         {{"AccessKeyId", c.access_key_id},
                          {"SecretAccessKey", c.secret_access_key},
                          {"SessionToken", c.session_token},
                          {"Expiration", format_iso8601(*c.expiration)}}},
                        {"ProviderType", "assume-role"}};
    std::string path = cache_path();
    Status st = make_dirs(path.substr(0, path.rfind('/')), 0700);
    if (st) st = write_file_atomic(path, j.dump(), 0600);
    if (!st)
      log::warn("assume role " + settings_.role_arn +
                ": MFA session not cached: " + st.error().message + ", ignoring");
  }

  AssumeRoleSettings settings_;
  std::string source_desc_, origin_;
  std::unique_ptr<AwsClient> client_;
  std::mutex mu_;
};

}  // namespace

std::string assume_role_cache_key(const AssumeRoleSettings& s) {
  // Python's json.dumps(args, sort_keys=True): keys sorted, ", " and ": " separators.
  std::vector<std::pair<std::string, std::string>> args;  // name -> JSON value
  auto str = [](const std::string& v) { return nlohmann::json(v).dump(); };
  if (s.duration_seconds > 0)
    args.emplace_back("DurationSeconds", std::to_string(s.duration_seconds));
  if (!s.external_id.empty()) args.emplace_back("ExternalId", str(s.external_id));
  args.emplace_back("RoleArn", str(s.role_arn));
  if (!s.session_name.empty()) args.emplace_back("RoleSessionName", str(s.session_name));
  if (!s.mfa_serial.empty()) args.emplace_back("SerialNumber", str(s.mfa_serial));
  std::string text = "{";
  for (size_t i = 0; i < args.size(); ++i) {
    text += (i ? ", " : "") + str(args[i].first) + ": " + args[i].second;
  }
  text += "}";
  return sha1_hex(text);
}

Result<std::string> prompt_on_terminal(const std::string& prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(std::string("there is no terminal to ask on (/dev/tty: ") +
                      std::strerror(errno) + ")");
  }
  termios saved{};
  bool is_tty = ::tcgetattr(fd, &saved) == 0;
  if (is_tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string line;
  char ch = 0;
  while (::read(fd, &ch, 1) == 1 && ch != '\n' && ch != '\r') line.push_back(ch);
  if (is_tty) ::tcsetattr(fd, TCSAFLUSH, &saved);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  if (line.empty()) return make_error("no code was entered");
  return line;
}

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
