// Test seam for the service-operation tests: a Transport that records every request
// and answers from a script, so tests drive real AwsClient calls (signing, error
// parsing, pagination) without a network.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aws/client.h"
#include "aws/credentials.h"
#include "aws/http.h"

namespace amibake::aws::testing {

class ScriptedTransport : public Transport {
 public:
  // Queues an answer; answers are consumed in order. With none left, send() answers
  // 500 so a test that makes too many calls fails loudly.
  void answer(int status, std::string body, HeaderList headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    std::lock_guard<std::mutex> lock(mu_);
    answers_.push_back(std::move(r));
  }
  HttpResult send(const HttpRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    HttpResult out;
    if (answers_.empty()) {
      out.response.status = 500;
      out.response.body = "no scripted answer left";
      return out;
    }
    out.response = std::move(answers_.front());
    answers_.pop_front();
    return out;
  }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<HttpResponse> answers_;
  std::vector<HttpRequest> requests_;
};

// Returns a client for us-east-1 sending to a loopback URL through `transport`, with
// a private retry state and no real sleeping (retries of scripted 5xx are instant).
inline std::unique_ptr<AwsClient> make_scripted_client(std::shared_ptr<ScriptedTransport> transport,
                                                       int max_attempts = 1) {
  Credentials creds;
  creds.access_key_id = "AKIDEXAMPLE";
  creds.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  creds.source = "test";
  AwsClient::Options o;
  o.region = "us-east-1";
  o.endpoint_override = "http://127.0.0.1:9";
  o.credentials = std::make_shared<StaticCredentialsProvider>(creds);
  o.transport = std::move(transport);
  o.retry.max_attempts = max_attempts;
  o.sleeper = [](std::chrono::milliseconds) {};
  o.shared_retry_state = false;
  return std::make_unique<AwsClient>(std::move(o));
}

// Returns the value of header `name` (case-insensitive) in `request`, or "".
inline std::string header_of(const HttpRequest& request, const std::string& name) {
  for (const auto& [k, v] : request.headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        })) {
      return v;
    }
  }
  return {};
}

}  // namespace amibake::aws::testing
