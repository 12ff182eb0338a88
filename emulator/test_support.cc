// Test harness for awsemu (see test_support.h).
#include "emulator/test_support.h"

#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "aws/sigv4.h"
#include "base/files.h"

namespace amibake::emu::testing {

std::string Response::xml(const std::string& tag) const {
  size_t start = body.find("<" + tag + ">");
  if (start == std::string::npos) return "";
  start += tag.size() + 2;
  size_t end = body.find("</" + tag + ">", start);
  return end == std::string::npos ? "" : body.substr(start, end - start);
}

std::string Response::error_code() const {
  if (auto it = headers.find("x-amzn-errortype"); it != headers.end()) return it->second;
  auto j = json();
  if (j.is_object() && j.contains("__type")) return j["__type"];
  return xml("Code");
}

std::string block_of(char fill) { return std::string(size_t{512} * 1024, fill); }

void write_tiny_catalog(const std::string& dir) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/root.img", std::ios::binary);
    for (int64_t index : {0, 2, 7}) {
      f.seekp(index * size_t{512} * 1024);
      std::string b = block_of(static_cast<char>('a' + index));
      f.write(b.data(), static_cast<std::streamsize>(b.size()));
    }
  }
  std::filesystem::resize_file(dir + "/root.img", 1LL << 30);
  std::ofstream(dir + "/catalog.json") << R"({"images": [{"name": "al2023-ami-ecs-hvm-test-x86_64",
    "file": "root.img", "architecture": "x86_64", "boot_mode": "uefi-preferred", "volume_size": 1,
    "ssm_parameters": ["/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"]}]})";
}

TestEmu::TestEmu(Options options, bool with_catalog) : options_(std::move(options)) {
  temp_dir_ = make_temp_dir("awsemu-test").value();
  if (options_.data_dir.empty()) options_.data_dir = temp_dir_ + "/data";
  if (with_catalog) {
    write_tiny_catalog(temp_dir_ + "/catalog");
    options_.catalog_dir = temp_dir_ + "/catalog";
  }
  options_.port = 0;
  if (options_.threads == 64) options_.threads = 16;
  access_key_id = options_.access_key_id;
  secret_access_key = options_.secret_access_key;
  emu_ = std::make_unique<Emulator>(options_);
  Status st = emu_->start();
  if (!st) throw std::runtime_error(st.error().message);
}

TestEmu::~TestEmu() {
  emu_->stop();
  std::filesystem::remove_all(temp_dir_);
}

void TestEmu::restart() {
  emu_->stop();
  emu_ = std::make_unique<Emulator>(options_);
  Status st = emu_->start();
  if (!st) throw std::runtime_error(st.error().message);
}

Response TestEmu::send(const std::string& service, const std::string& method,
                       const std::string& target, std::map<std::string, std::string> headers,
                       const std::string& body, bool unsigned_payload) {
  namespace sigv4 = amibake::aws::sigv4;
  std::string host = "127.0.0.1:" + std::to_string(emu_->port());
  if (!service.empty()) {
    std::time_t now = std::time(nullptr);
    char amz_date[32];
    std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
    sigv4::Request req;
    req.method = method;
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string::npos ? "" : target.substr(q + 1);
    req.headers.emplace_back("host", host);
    for (const auto& [k, v] : headers) req.headers.emplace_back(k, v);
    req.payload_hash = unsigned_payload ? std::string(sigv4::kUnsignedPayload) : aws::sha256_hex(body);
    aws::Credentials creds;
    creds.access_key_id = access_key_id;
    creds.secret_access_key = secret_access_key;
    creds.session_token = session_token;
    sigv4::Scope scope{std::string(amz_date, 8), region, service};
    sigv4::sign(req, creds, scope, amz_date);
    headers.clear();
    for (const auto& [k, v] : req.headers) {
      if (k != "host") headers[k] = v;
    }
  }
  httplib::Client client("127.0.0.1", emu_->port());
  auto timeout = std::chrono::duration<double>(client_timeout_seconds);
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  client.set_url_encode(false);
  httplib::Headers h;
  std::string content_type = "application/octet-stream";
  for (const auto& [k, v] : headers) {
    if (k == "content-type" || k == "Content-Type") content_type = v;
    else h.emplace(k, v);
  }
  httplib::Result res = method == "GET"    ? client.Get(target.c_str(), h)
                        : method == "PUT"  ? client.Put(target.c_str(), h, body, content_type.c_str())
                        : method == "POST" ? client.Post(target.c_str(), h, body, content_type.c_str())
                                           : client.Delete(target.c_str(), h);
  Response out;
  if (!res) return out;
  out.status = res->status;
  out.body = res->body;
  for (const auto& [k, v] : res->headers) {
    std::string key = k;
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[key] = v;
  }
  return out;
}

namespace {
std::string form(const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += "&";
    out += aws::sigv4::uri_encode(k) + "=" + aws::sigv4::uri_encode(v);
  }
  return out;
}
}  // namespace

Response TestEmu::ec2(const std::string& action, const std::map<std::string, std::string>& params) {
  auto p = params;
  p["Action"] = action;
  p["Version"] = "2016-11-15";
  return send("ec2", "POST", "/", {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}},
              form(p), false);
}

Response TestEmu::sts(const std::string& action, const std::map<std::string, std::string>& params) {
  auto p = params;
  p["Action"] = action;
  p["Version"] = "2011-06-15";
  return send("sts", "POST", "/", {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}},
              form(p), false);
}

Response TestEmu::ssm(const std::string& operation, const nlohmann::json& body) {
  return send("ssm", "POST", "/",
              {{"content-type", "application/x-amz-json-1.1"}, {"x-amz-target", "AmazonSSM." + operation}},
              body.dump(), false);
}

Response TestEmu::batch(const std::string& operation, const nlohmann::json& body) {
  std::string path = "/v1/";
  for (char c : operation) path += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return send("batch", "POST", path, {{"content-type", "application/json"}}, body.dump(), false);
}

Response TestEmu::ebs(const std::string& method, const std::string& path, const std::string& body,
                      const std::map<std::string, std::string>& headers) {
  auto h = headers;
  if (!h.count("content-type") && method != "GET") {
    h["content-type"] = method == "PUT" ? "application/octet-stream" : "application/json";
  }
  return send("ebs", method, path, h, body, method == "PUT");
}

Response TestEmu::raw(const std::string& method, const std::string& path,
                      const std::map<std::string, std::string>& headers) {
  return send("", method, path, headers, "", false);
}

std::string TestEmu::start_snapshot(int size_gib, const std::string& parent, int timeout_minutes) {
  nlohmann::json body = {{"VolumeSize", size_gib}, {"Timeout", timeout_minutes}};
  if (!parent.empty()) body["ParentSnapshotId"] = parent;
  Response r = ebs("POST", "/snapshots", body.dump());
  auto j = r.json();
  return r.status == 201 && j.is_object() ? j.value("SnapshotId", "") : "";
}

Response TestEmu::put_block(const std::string& snapshot, int64_t index, char fill) {
  std::string data = block_of(fill);
  return ebs("PUT", "/snapshots/" + snapshot + "/blocks/" + std::to_string(index), data,
             {{"x-amz-data-length", std::to_string(data.size())},
              {"x-amz-checksum", aws::sha256_base64(data)},
              {"x-amz-checksum-algorithm", "SHA256"}});
}

Response TestEmu::complete(const std::string& snapshot, int64_t count, const std::string& aggregate) {
  std::map<std::string, std::string> h = {{"x-amz-changedblockscount", std::to_string(count)}};
  if (!aggregate.empty()) {
    h["x-amz-checksum"] = aggregate;
    h["x-amz-checksum-algorithm"] = "SHA256";
    h["x-amz-checksum-aggregation-method"] = "LINEAR";
  }
  return ebs("POST", "/snapshots/completion/" + snapshot, "", h);
}

}  // namespace amibake::emu::testing
