// EC2/Query request encoding: the form body of every EC2 (and Query-protocol) call.
//
// The EC2 protocol flattens structures and lists into dotted keys, numbered from 1:
//   Filter.1.Name=tag%3AName & Filter.1.Value.1=x & BlockDeviceMapping.1.Ebs.VolumeSize=8
// QueryForm is an ordered list of such pairs; encode() percent-encodes it the way
// botocore does (RFC 3986 unreserved kept, everything else %XX), so request bodies
// can be compared byte for byte with what the AWS CLI sends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/client.h"

namespace amibake::aws {

// A resource tag (EC2 Key/Value; SSM and EBS use the same shape).
struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};

// An EC2 Describe* filter: name and the values it matches (any of them).
struct Filter {
  std::string name;
  std::vector<std::string> values;
};

// Returns the filter "tag:<key>" matching any of `values`.
Filter tag_filter(std::string_view key, std::vector<std::string> values);
// Returns the filter "tag-key" matching resources that carry tag `key` (any value).
Filter tag_key_filter(std::string_view key);

// Tags to apply at creation (EC2 TagSpecification): resource type such as "image",
// "snapshot", "volume".
struct TagSpecification {
  std::string resource_type;
  std::vector<Tag> tags;
};

// Ordered form fields of one EC2/Query request.
class QueryForm {
 public:
  // Starts a form with Action=<action>&Version=<version>.
  QueryForm(std::string_view action, std::string_view version);

  // Appends key=value (value may be empty: EC2's NoDevice is sent as "NoDevice=").
  void add(std::string key, std::string value);
  // Appends key=value only when `value` is not empty.
  void add_nonempty(std::string key, const std::string& value);
  // Appends key=true|false when `value` is set.
  void add_bool(std::string key, std::optional<bool> value);
  // Appends key=<decimal> when `value` is set.
  void add_int(std::string key, std::optional<int64_t> value);
  // Appends <prefix>.1=v1, <prefix>.2=v2, ...
  void add_list(std::string_view prefix, const std::vector<std::string>& values);
  // Appends Filter.N.Name / Filter.N.Value.M.
  void add_filters(const std::vector<Filter>& filters);
  // Appends <prefix>.N.Key / <prefix>.N.Value.
  void add_tags(std::string_view prefix, const std::vector<Tag>& tags);
  // Appends TagSpecification.N.ResourceType / TagSpecification.N.Tag.M.Key|Value.
  void add_tag_specifications(const std::vector<TagSpecification>& specs);

  // Returns the application/x-www-form-urlencoded body, fields in insertion order.
  std::string encode() const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// The EC2 API version every EC2 request names.
inline constexpr std::string_view kEc2ApiVersion = "2016-11-15";

// Returns a POST / request for `service` carrying `form` as its body, with the
// form Content-Type. `operation` is the form's Action.
AwsRequest make_query_request(std::string service, Protocol protocol, std::string operation,
                              const QueryForm& form, bool idempotent);

}  // namespace amibake::aws
