// Test harness: an in-process awsemu on a free port with a temporary --data folder,
// and a small signing client (httplib + the project's SigV4) for each protocol.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "emulator/server.h"

namespace amibake::emu::testing {

struct Response {
  int status = 0;  // 0 = no HTTP answer (connection cut, timeout)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  // Returns the text of the first <tag>...</tag> in the body, or "".
  std::string xml(const std::string& tag) const;
  // Returns the error code of any protocol's error shape.
  std::string error_code() const;
};

// Writes a one-image catalog (a sparse 1 GiB root with blocks 0, 2 and 7 written) into
// `dir`; returns nothing, the ids are stable hashes awsemu derives from the name.
void write_tiny_catalog(const std::string& dir);

class TestEmu {
 public:
  // Starts awsemu with `options` (data dir and port are filled in when empty).
  explicit TestEmu(Options options = {}, bool with_catalog = false);
  ~TestEmu();

  Emulator& emulator() { return *emu_; }
  const Options& options() const { return options_; }
  // Stops and starts again on the same --data (a new port).
  void restart();

  // EC2 Query call, signed for "ec2".
  Response ec2(const std::string& action, const std::map<std::string, std::string>& params = {});
  Response sts(const std::string& action, const std::map<std::string, std::string>& params = {});
  Response ssm(const std::string& operation, const nlohmann::json& body);
  // EBS REST call; `path` may carry a query string.
  Response ebs(const std::string& method, const std::string& path, const std::string& body = "",
               const std::map<std::string, std::string>& headers = {});
  // Unsigned call (IMDS).
  Response raw(const std::string& method, const std::string& path,
               const std::map<std::string, std::string>& headers = {});

  // Starts an EBS snapshot; returns its id (empty on failure).
  std::string start_snapshot(int size_gib, const std::string& parent = "", int timeout_minutes = 60);
  // Puts one block filled with `fill` bytes (0 = zeros); returns the response.
  Response put_block(const std::string& snapshot, int64_t index, char fill);
  Response complete(const std::string& snapshot, int64_t count, const std::string& aggregate = "");

  // Batch REST-JSON call: POST /v1/<lower-case operation>, signed for "batch".
  Response batch(const std::string& operation, const nlohmann::json& body);

  // The region requests are signed for (their credential scope); tests switch it.
  std::string region = "us-east-1";
  // Keys used to sign; tests change them to try wrong secrets or issued keys.
  std::string access_key_id, secret_access_key, session_token;
  double client_timeout_seconds = 30;

 private:
  Response send(const std::string& service, const std::string& method, const std::string& target,
                std::map<std::string, std::string> headers, const std::string& body,
                bool unsigned_payload);
  Options options_;
  std::string temp_dir_;
  std::unique_ptr<Emulator> emu_;
};

// Returns a 512 KiB block filled with `fill`.
std::string block_of(char fill);

}  // namespace amibake::emu::testing
