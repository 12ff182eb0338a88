// Pieces shared by ec2.cc and ec2_images.cc; not part of the public interface.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "aws/answer.h"
#include "aws/ec2.h"

namespace amibake::aws::ec2::internal {

inline constexpr std::string_view kService = "ec2";

// Returns a POST request for EC2 `form` (Action is the operation).
AwsRequest ec2_request(std::string_view operation, const QueryForm& form, bool idempotent);
// Returns a form starting Action=<operation>&Version=2016-11-15.
QueryForm ec2_form(std::string_view operation);

// Appends BlockDeviceMapping.N.* for `mappings` (RegisterImage's request shape).
void add_block_device_mappings(QueryForm& form, const std::vector<BlockDeviceMapping>& mappings);

// Reads <tagSet><item><key/><value/></item>...</tagSet> under `node`.
std::vector<Tag> read_tags(pugi::xml_node node);
// Reads <blockDeviceMapping><item>... under `node`.
std::vector<BlockDeviceMapping> read_block_device_mappings(XmlReader& rd, pugi::xml_node node);

// Sends `request` and parses the answer body with `parse`.
template <typename T>
Result<T> call(AwsClient& client, const AwsRequest& request,
               Result<T> (*parse)(std::string_view body)) {
  Result<AwsResponse> response = client.send(request);
  if (!response) return response.error();
  return parse(response->body);
}

// Sends `request` whose answer is <return>true</return>.
Status call_return(AwsClient& client, const AwsRequest& request);

}  // namespace amibake::aws::ec2::internal
