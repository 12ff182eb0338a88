// SSM Parameter Store over JSON 1.1 (see ssm.h).
//
// Request bodies are built with nlohmann::json in botocore's member order (dump() keeps
// insertion order only for ordered_json, which is what we use, so encoding tests can
// compare exact bodies). Answers go through JsonReader: nothing is accessed before
// its type is checked, so a garbled answer is an error and never an exception.
#include "aws/ssm.h"

#include <algorithm>
#include <cstddef>

#include "aws/answer.h"

namespace amibake::aws::ssm {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kService = "ssm";

Parameter read_parameter(JsonReader& rd, const json& p) {
  Parameter out;
  out.name = rd.str(p, "Name");
  out.type = rd.str(p, "Type");
  out.value = rd.str(p, "Value");
  out.version = rd.integer(p, "Version");
  out.arn = rd.str(p, "ARN");
  out.data_type = rd.str(p, "DataType");
  out.selector = rd.str(p, "Selector");
  out.source_result = rd.str(p, "SourceResult");
  out.last_modified_date = rd.opt_number(p, "LastModifiedDate");
  return out;
}

// Reads an array of Parameter objects under `key`.
std::vector<Parameter> read_parameters(JsonReader& rd, const json& obj, std::string_view key) {
  std::vector<Parameter> out;
  if (const json* arr = rd.array(obj, key)) {
    for (const json& p : *arr) {
      if (!p.is_object()) {
        rd.fail("\"" + std::string(key) + "\" holds a " + p.type_name() + ", expected objects");
        break;
      }
      out.push_back(read_parameter(rd, p));
    }
  }
  return out;
}

template <typename T>
Result<T> call(AwsClient& c, const AwsRequest& request, Result<T> (*parse)(std::string_view)) {
  Result<AwsResponse> response = c.send(request);
  if (!response) return response.error();
  return parse(response->body);
}

}  // namespace

AwsRequest make_ssm_request(std::string operation, std::string body, bool idempotent) {
  AwsRequest r;
  r.service = std::string(kService);
  r.protocol = Protocol::kJson;
  r.method = "POST";
  r.path = "/";
  r.headers.emplace_back("Content-Type", "application/x-amz-json-1.1");
  r.headers.emplace_back("X-Amz-Target", "AmazonSSM." + operation);
  r.operation = std::move(operation);
  r.body = std::move(body);
  r.idempotent = idempotent;
  return r;
}

AwsRequest encode_get_parameter(const std::string& name, bool with_decryption) {
  ordered_json j;
  j["Name"] = name;
  if (with_decryption) j["WithDecryption"] = true;
  return make_ssm_request("GetParameter", dump_no_throw(j));
}

Result<Parameter> parse_get_parameter(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "GetParameter", body));
  JsonReader rd(kService, "GetParameter");
  const json* p = rd.object(j, "Parameter");
  if (!p) rd.fail("no \"Parameter\" object");
  Parameter out = p ? read_parameter(rd, *p) : Parameter{};
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<Parameter> get_parameter(AwsClient& c, const std::string& name, bool with_decryption) {
  return call(c, encode_get_parameter(name, with_decryption), &parse_get_parameter);
}

AwsRequest encode_get_parameters(const std::vector<std::string>& names, bool with_decryption) {
  ordered_json j;
  j["Names"] = names;
  if (with_decryption) j["WithDecryption"] = true;
  return make_ssm_request("GetParameters", dump_no_throw(j));
}

Result<GetParametersResult> parse_get_parameters(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "GetParameters", body));
  JsonReader rd(kService, "GetParameters");
  GetParametersResult out;
  out.parameters = read_parameters(rd, j, "Parameters");
  if (const json* arr = rd.array(j, "InvalidParameters")) {
    for (const json& n : *arr) {
      if (n.is_string()) {
        out.invalid_parameters.push_back(n.get<std::string>());
      } else {
        rd.fail("\"InvalidParameters\" holds a non-string");
      }
    }
  }
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<GetParametersResult> get_parameters(AwsClient& c, const std::vector<std::string>& names,
                                           bool with_decryption) {
  constexpr size_t kBatch = 10;  // GetParameters accepts at most 10 names
  GetParametersResult all;
  for (size_t i = 0; i < names.size(); i += kBatch) {
    const auto first = names.begin() + static_cast<std::ptrdiff_t>(i);
    const auto last =
        names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), i + kBatch));
    std::vector<std::string> batch(first, last);
    AMIBAKE_ASSIGN(GetParametersResult part,
                   call(c, encode_get_parameters(batch, with_decryption), &parse_get_parameters));
    for (Parameter& p : part.parameters) all.parameters.push_back(std::move(p));
    for (std::string& n : part.invalid_parameters) all.invalid_parameters.push_back(std::move(n));
  }
  return all;
}

AwsRequest encode_put_parameter(const PutParameterRequest& r) {
  ordered_json j;
  j["Name"] = r.name;
  if (!r.description.empty()) j["Description"] = r.description;
  j["Value"] = r.value;
  if (!r.type.empty()) j["Type"] = r.type;
  if (!r.key_id.empty()) j["KeyId"] = r.key_id;
  if (r.overwrite) j["Overwrite"] = *r.overwrite;
  if (!r.allowed_pattern.empty()) j["AllowedPattern"] = r.allowed_pattern;
  if (!r.tags.empty()) {
    ordered_json tags = ordered_json::array();
    for (const Tag& t : r.tags) tags.push_back({{"Key", t.key}, {"Value", t.value}});
    j["Tags"] = std::move(tags);
  }
  if (!r.tier.empty()) j["Tier"] = r.tier;
  if (!r.data_type.empty()) j["DataType"] = r.data_type;
  // Re-putting the same value with Overwrite is harmless; without it a resend after an
  // unknown outcome fails with ParameterAlreadyExists, so only overwrite is retried.
  return make_ssm_request("PutParameter", dump_no_throw(j),
                          /*idempotent=*/r.overwrite.value_or(false));
}

Result<PutParameterResult> parse_put_parameter(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "PutParameter", body));
  JsonReader rd(kService, "PutParameter");
  PutParameterResult out{rd.integer(j, "Version"), rd.str(j, "Tier")};
  AMIBAKE_TRY(rd.status());
  return out;
}

Result<PutParameterResult> put_parameter(AwsClient& c, const PutParameterRequest& r) {
  return call(c, encode_put_parameter(r), &parse_put_parameter);
}

AwsRequest encode_get_parameters_by_path(const GetParametersByPathRequest& r,
                                         const std::string& token) {
  ordered_json j;
  j["Path"] = r.path;
  if (r.recursive) j["Recursive"] = *r.recursive;
  if (r.with_decryption) j["WithDecryption"] = true;
  if (r.max_results) j["MaxResults"] = *r.max_results;
  if (!token.empty()) j["NextToken"] = token;
  return make_ssm_request("GetParametersByPath", dump_no_throw(j));
}

Result<Page<Parameter>> parse_get_parameters_by_path(std::string_view body) {
  AMIBAKE_ASSIGN(json j, parse_json_answer(kService, "GetParametersByPath", body));
  JsonReader rd(kService, "GetParametersByPath");
  Page<Parameter> page;
  page.items = read_parameters(rd, j, "Parameters");
  page.next_token = rd.str(j, "NextToken");
  AMIBAKE_TRY(rd.status());
  return page;
}

Result<std::vector<Parameter>> get_parameters_by_path(AwsClient& c,
                                                      const GetParametersByPathRequest& r) {
  std::vector<Parameter> out;
  AMIBAKE_TRY(collect_pages<Parameter>(
      "ssm GetParametersByPath",
      [&](const std::string& token) {
        return call(c, encode_get_parameters_by_path(r, token), &parse_get_parameters_by_path);
      },
      &out));
  return out;
}

}  // namespace amibake::aws::ssm
