// IMDSv2 for the one host instance, served under /latest/ on the main port (so
// AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT/ points clients at it).
//
// Tokens are stateless: "<expiry>.<mac>" where mac is a SHA-256 over the expiry and the
// configured secret, so they survive nothing and need no table. Role credentials are
// issued like STS keys (stored in the world, accepted by the signature check).
#include <cstdlib>

#include "aws/sigv4.h"
#include "emulator/service.h"

namespace amibake::emu {
namespace {

constexpr const char* kRoleName = "awsemu-host-role";

Reply text(int status, const std::string& body) {
  Reply r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = body;
  return r;
}

std::string make_token(Context& ctx, double expires) {
  std::string e = std::to_string(static_cast<int64_t>(expires));
  return e + "." + aws::sha256_hex("imds:" + e + ":" + ctx.options().secret_access_key).substr(0, 40);
}

bool token_valid(Context& ctx, const std::string& token) {
  size_t dot = token.find('.');
  if (dot == std::string::npos) return false;
  double expires = std::atof(token.substr(0, dot).c_str());
  return expires > ctx.now() && make_token(ctx, expires) == token;
}

std::string role_credentials(Context& ctx) {
  std::string arn = std::string("arn:aws:sts::") + kAccountId + ":assumed-role/" + kRoleName + "/" +
                    kHostInstanceId;
  std::lock_guard<std::mutex> lock(ctx.mu());
  const IssuedKey* found = nullptr;
  for (const auto& [id, k] : ctx.keys()) {
    if (k.arn == arn && k.expires > ctx.now() + 900) found = &k;
  }
  IssuedKey key;
  if (found) {
    key = *found;
  } else {
    auto pick = [&](size_t n, const char* alphabet) {
      std::string bytes = ctx.random_bytes(n), out;
      size_t len = std::char_traits<char>::length(alphabet);
      for (unsigned char c : bytes) out += alphabet[c % len];
      return out;
    };
    key.access_key_id = "ASIA" + pick(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    key.secret = pick(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    key.session_token = "IQoJb3JpZ2luX2VjEIMDS" + pick(160, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    key.arn = arn;
    key.expires = ctx.now() + 6 * 3600;
    ctx.keys()[key.access_key_id] = key;
    ctx.commit();
  }
  nlohmann::json j = {{"Code", "Success"},
                      {"LastUpdated", iso_time(key.expires - 6 * 3600)},
                      {"Type", "AWS-HMAC"},
                      {"AccessKeyId", key.access_key_id},
                      {"SecretAccessKey", key.secret},
                      {"Token", key.session_token},
                      {"Expiration", iso_time(key.expires).substr(0, 19) + "Z"}};
  return j.dump(2);
}

}  // namespace

Reply handle_imds(Context& ctx, const std::string& method, const std::string& path,
                  const std::map<std::string, std::string>& headers) {
  auto header = [&](const char* name) {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };
  if (path == "/latest/api/token") {
    if (method != "PUT") return text(405, "");
    std::string ttl_text = header("x-aws-ec2-metadata-token-ttl-seconds");
    int ttl = std::atoi(ttl_text.c_str());
    if (ttl < 1 || ttl > 21600) return text(400, "");
    Reply r = text(200, make_token(ctx, ctx.now() + ttl));
    r.headers.emplace_back("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", std::to_string(ttl));
    return r;
  }
  if (method != "GET") return text(405, "");
  if (!token_valid(ctx, header("x-aws-ec2-metadata-token"))) return text(401, "");
  std::string p = path.substr(std::string("/latest/").size());
  if (p == "meta-data" || p == "meta-data/") {
    return text(200, "ami-id\navailability-zone\nhostname\niam/\ninstance-id\ninstance-type\n"
                     "local-ipv4\nplacement/\n");
  }
  if (p == "meta-data/instance-id") return text(200, kHostInstanceId);
  if (p == "meta-data/instance-type") return text(200, "m5.large");
  if (p == "meta-data/ami-id") return text(200, "ami-0host0000000000000");
  if (p == "meta-data/hostname" || p == "meta-data/local-hostname") return text(200, "ip-10-0-0-10.ec2.internal");
  if (p == "meta-data/local-ipv4") return text(200, "10.0.0.10");
  if (p == "meta-data/placement/availability-zone") return text(200, kHostZone);
  if (p == "meta-data/placement/availability-zone-id") return text(200, "use1-az1");
  if (p == "meta-data/placement/region") return text(200, kRegion);
  if (p == "meta-data/placement/" || p == "meta-data/placement") {
    return text(200, "availability-zone\navailability-zone-id\nregion");
  }
  if (p == "meta-data/iam/security-credentials/" || p == "meta-data/iam/security-credentials") {
    return text(200, kRoleName);
  }
  if (p == std::string("meta-data/iam/security-credentials/") + kRoleName) {
    return text(200, role_credentials(ctx));
  }
  if (p == "meta-data/iam/info") {
    nlohmann::json j = {{"Code", "Success"},
                        {"InstanceProfileArn", std::string("arn:aws:iam::") + kAccountId + ":instance-profile/awsemu-host"},
                        {"InstanceProfileId", "AIPAAWSEMUHOSTPROFILE"}};
    return text(200, j.dump(2));
  }
  if (p == "dynamic/instance-identity/document") {
    nlohmann::json j = {{"accountId", kAccountId},      {"architecture", "x86_64"},
                        {"availabilityZone", kHostZone}, {"imageId", "ami-0host0000000000000"},
                        {"instanceId", kHostInstanceId}, {"instanceType", "m5.large"},
                        {"privateIp", "10.0.0.10"},      {"region", kRegion},
                        {"version", "2017-09-30"}};
    return text(200, j.dump(2));
  }
  return text(404, "");
}

}  // namespace amibake::emu
