// Resolving the base AMI: a named variant, an SSM parameter, an AMI id, or a name
// pattern becomes one described image (the bake's first step).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/ec2.h"
#include "base/result.h"

namespace amibake::bake {

// How the user named the base. Exactly one field is set; all empty = default variant.
struct BaseSelector {
  std::string variant;        // "al2023"
  std::string ami_id;         // "ami-0abc..."
  std::string ssm_parameter;  // "/aws/service/ecs/optimized-ami/..."
  std::string name_filter;    // "al2023-ami-ecs-hvm-*-x86_64", newest wins
  std::string owner = "amazon";  // owner for name_filter searches
};

// Checks the selector before any AWS call: at most one source, a known variant,
// an AMI id that looks like one, an SSM path that starts with '/'.
Status validate(const BaseSelector& selector);

struct ResolvedBase {
  aws::ec2::Image image;
  std::string resolved_via;  // "SSM parameter /aws/service/...", "AMI id", "name filter ..."
};

// Resolves `selector` in the client's region and describes the image. Errors say
// what was looked up where, and what to try instead.
Result<ResolvedBase> resolve_base(aws::AwsClient& client, const BaseSelector& selector);

// Returns the image as a human-readable block (one field per line).
std::string describe_text(const ResolvedBase& base);
// Returns the image as JSON with every field `describe_text` shows.
nlohmann::json describe_json(const ResolvedBase& base);

}  // namespace amibake::bake
