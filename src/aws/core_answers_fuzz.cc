// libFuzzer target for the core layer's parsers of untrusted input: AWS error
// answers (XML and JSON), STS credential answers, credential_process/container JSON,
// profile files and Authorization headers (awsemu parses those from the network).
// The property checked: no crash, no sanitizer report, no exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "aws/client.h"
#include "aws/config.h"
#include "aws/credential_sources.h"
#include "aws/sigv4.h"
#include "aws/sts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amibake::aws;
  const std::string body(reinterpret_cast<const char*>(data), size);
  AwsResponse resp{400, {{"x-amzn-ErrorType", body.substr(0, 64)}}, body};
  for (Protocol p : {Protocol::kEc2, Protocol::kQuery, Protocol::kJson, Protocol::kRestJson}) {
    (void)parse_aws_error(p, resp);
  }
  (void)sts::parse_credentials_xml(body, "AssumeRoleResult");
  (void)parse_credentials_json(body, "fuzz");
  (void)ProfileFiles::parse(body, body);
  sigv4::ParsedAuthorization auth;
  (void)sigv4::parse_authorization(body, &auth);
  (void)sigv4::canonical_request({"GET", body, body, {{"Host", body}}, ""});
  return 0;
}
