// SSM Parameter Store operations (JSON 1.1: POST / with X-Amz-Target AmazonSSM.<Op>).
//
// amibake reads Amazon's public parameters
// (/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id) to find base
// AMIs, and may publish the baked AMI id under a parameter of its own. Same three-piece
// shape as ec2.h: encode_*, parse_*, and the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "aws/paginate.h"
#include "aws/query.h"
#include "base/result.h"

namespace amibake::aws::ssm {

struct Parameter {
  std::string name;
  std::string type;  // String | StringList | SecureString
  std::string value;
  int64_t version = 0;
  std::string arn;
  std::string data_type;  // "text" | "aws:ec2:image"
  std::string selector;
  std::string source_result;
  std::optional<double> last_modified_date;  // epoch seconds
};

// Returns a POST / JSON 1.1 request for AmazonSSM.<operation> with `body`.
AwsRequest make_ssm_request(std::string operation, std::string body, bool idempotent = true);

AwsRequest encode_get_parameter(const std::string& name, bool with_decryption);
Result<Parameter> parse_get_parameter(std::string_view body);
// GetParameter. A missing parameter is an error with aws_code "ParameterNotFound".
Result<Parameter> get_parameter(AwsClient& c, const std::string& name,
                                bool with_decryption = false);

struct GetParametersResult {
  std::vector<Parameter> parameters;
  std::vector<std::string> invalid_parameters;  // names that do not exist
};
AwsRequest encode_get_parameters(const std::vector<std::string>& names, bool with_decryption);
Result<GetParametersResult> parse_get_parameters(std::string_view body);
// GetParameters for any number of names (sent in batches of 10, the API's limit).
Result<GetParametersResult> get_parameters(AwsClient& c, const std::vector<std::string>& names,
                                           bool with_decryption = false);

struct PutParameterRequest {
  std::string name;
  std::string value;
  std::string type = "String";
  std::string description;
  std::optional<bool> overwrite;
  std::string data_type;  // "aws:ec2:image" makes SSM validate an AMI id
  std::string tier;
  std::string key_id;
  std::string allowed_pattern;
  std::vector<Tag> tags;  // not allowed together with overwrite=true
};
struct PutParameterResult {
  int64_t version = 0;
  std::string tier;
};
AwsRequest encode_put_parameter(const PutParameterRequest& r);
Result<PutParameterResult> parse_put_parameter(std::string_view body);
Result<PutParameterResult> put_parameter(AwsClient& c, const PutParameterRequest& r);

struct GetParametersByPathRequest {
  std::string path;
  std::optional<bool> recursive;
  bool with_decryption = false;
  std::optional<int64_t> max_results;  // 1..10 per page
};
AwsRequest encode_get_parameters_by_path(const GetParametersByPathRequest& r,
                                         const std::string& token);
Result<Page<Parameter>> parse_get_parameters_by_path(std::string_view body);
// Every parameter under `r.path` (all pages).
Result<std::vector<Parameter>> get_parameters_by_path(AwsClient& c,
                                                      const GetParametersByPathRequest& r);

}  // namespace amibake::aws::ssm
