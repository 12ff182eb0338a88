// Model-driven AWS operations: one encoder and one decoder per protocol, steered by
// botocore's own service descriptions, instead of a hand-written encode / parse pair
// per operation.
//
// src/aws/models/<service>.json holds the parts of botocore's service-2.json that the
// listed operations reach (scripts/aws-models writes them; they are embedded in the
// binary). A request is a JSON object with botocore's member names, exactly what one
// would pass to boto3 (`{"SourceImageId": "ami-1", "SourceRegion": "us-east-1"}`);
// the encoder turns it into the wire form of the service's protocol (EC2 Query,
// JSON 1.1, REST-JSON) the way botocore's serializers do, and refuses a member the
// model does not have, a value of the wrong type, or a missing required member —
// so a typo in our own code fails its unit test instead of reaching AWS. The
// decoder turns an answer (EC2 XML or JSON) into a JSON object keyed by botocore's
// member names, with numbers and booleans typed by the model.
//
// Adding an operation: name it in scripts/aws-models, re-run it, and call
// `call(client, ec2(), "Op", input)`; a typed wrapper is optional (publish.cc keeps
// its own small ones).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "base/result.h"

namespace amibake::aws::model {

using Json = nlohmann::ordered_json;

// One service's model: metadata, operations and the shapes they reach.
struct Service {
  std::string name;  // signing name: "ec2", "ssm", "batch"
  Protocol protocol = Protocol::kEc2;
  std::string api_version;
  std::string target_prefix;  // JSON 1.1: "AmazonSSM"
  std::string json_version;   // JSON 1.1: "1.1"
  nlohmann::json operations;
  nlohmann::json shapes;
  // True when the model lists `operation`.
  bool has(std::string_view operation) const;
};

// The embedded models, parsed once.
const Service& ec2();
const Service& ssm();
const Service& batch();
const Service& kms();

// Parses a model file's text (tests use small hand-written ones).
Result<Service> parse_service(std::string_view name, std::string_view text);

// Encodes `input` as `operation`'s request. `idempotent` is derived: an operation with
// an idempotency-token member is safe to resend only when the token is given, Run*
// never, everything else (reads, modifies, deletes) is.
Result<AwsRequest> encode(const Service& service, std::string_view operation, const Json& input);

// Decodes a successful answer's body into the operation's output shape.
Result<Json> decode(const Service& service, std::string_view operation, std::string_view body);

// Encodes, sends through `client` (retries, signing) and decodes.
Result<Json> call(AwsClient& client, const Service& service, std::string_view operation,
                  const Json& input);

// As call(), following the output's NextToken/nextToken to the end and concatenating
// every list member of the pages.
Result<Json> call_all_pages(AwsClient& client, const Service& service,
                            std::string_view operation, Json input);

}  // namespace amibake::aws::model
