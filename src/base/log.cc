// The logger. Redaction is pattern based on top of the registered secrets:
// - "Signature=<hex>" (SigV4 Authorization header values)
// - "X-Amz-Security-Token"/"SessionToken"/"SecretAccessKey"/"aws_secret_access_key"
//   followed by a separator and a value
// - 40-character base64 runs (the shape of an AWS secret access key)
// False positives only cost readability of a log line; a missed secret costs an
// account, so the patterns err on the side of redacting.
#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <regex>
#include <set>
#include <string>

namespace amibake::log {
namespace {

std::mutex g_mu;
std::set<std::string>& secrets() {
  static std::set<std::string> s;
  return s;
}
std::atomic<Level> g_level{[] {
  const char* env = std::getenv("AMIBAKE_LOG");
  if (env && std::string_view(env) == "debug") return Level::kDebug;
  return Level::kInfo;
}()};
std::string g_program;
Sink g_sink = nullptr;

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warning";
    case Level::kError: return "error";
  }
  return "?";
}

}  // namespace

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

void set_program(std::string_view name) {
  std::lock_guard lock(g_mu);
  g_program = name;
}

void register_secret(std::string_view secret) {
  if (secret.size() < 8) return;
  std::lock_guard lock(g_mu);
  secrets().insert(std::string(secret));
}

std::string redact(std::string_view text) {
  std::string out(text);
  {
    std::lock_guard lock(g_mu);
    for (const auto& s : secrets()) {
      for (size_t pos = out.find(s); pos != std::string::npos; pos = out.find(s, pos)) {
        out.replace(pos, s.size(), "<redacted>");
        pos += 10;
      }
    }
  }
  static const std::regex kSignature(R"((Signature=)[0-9a-fA-F]{16,})");
  static const std::regex kNamed(
      R"(((?:X-Amz-Security-Token|SessionToken|SecretAccessKey|secret_access_key|session_token|Token)["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=_\-]{8,})",
      std::regex::icase);
  static const std::regex kSecretShape(R"((^|[^A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=]))");
  out = std::regex_replace(out, kSignature, "$1<redacted>");
  out = std::regex_replace(out, kNamed, "$1<redacted>");
  out = std::regex_replace(out, kSecretShape, "$1<redacted>");
  return out;
}

void set_sink(Sink sink) {
  std::lock_guard lock(g_mu);
  g_sink = sink;
}

void write(Level l, std::string_view message) {
  if (l < g_level.load()) return;
  std::string line;
  {
    std::lock_guard lock(g_mu);
    if (!g_program.empty()) line = g_program + ": ";
  }
  if (l != Level::kInfo) line += std::string(level_name(l)) + ": ";
  line += redact(message);
  Sink sink;
  {
    std::lock_guard lock(g_mu);
    sink = g_sink;
  }
  if (sink) {
    sink(l, line);
    return;
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace amibake::log
