// Regions: the commercial regions awsemu serves, DescribeRegions, and the answer to a
// request signed for a region AWS does not have.
//
// Every region named in a request's credential scope is a world of its own (Context::
// world(region)); this file only says which names are regions. On AWS a request for an
// unknown region cannot reach an endpoint at all (the CLI reports "Could not connect to
// the endpoint URL"); one sent to a real endpoint with such a scope is refused for its
// credential: "Credential should be scoped to a valid region". awsemu, being the one
// endpoint for every region, gives that refusal in each protocol's shape: EC2
// AuthFailure, STS SignatureDoesNotMatch, SSM / Batch / EBS InvalidSignatureException.
// An opt-in region the account has not enabled is refused as AWS refuses it: EC2
// AuthFailure "AWS was not able to validate the provided access credentials", the
// JSON services UnrecognizedClientException.
#include <algorithm>

#include "emulator/ec2_internal.h"

namespace amibake::emu {

const std::vector<RegionInfo>& known_regions() {
  static const std::vector<RegionInfo> kRegions = {
      {"ap-south-1", false},     {"eu-north-1", false},     {"eu-west-3", false},
      {"eu-west-2", false},      {"eu-west-1", false},      {"ap-northeast-3", false},
      {"ap-northeast-2", false}, {"ap-northeast-1", false}, {"ca-central-1", false},
      {"sa-east-1", false},      {"ap-southeast-1", false}, {"ap-southeast-2", false},
      {"eu-central-1", false},   {"us-east-1", false},      {"us-east-2", false},
      {"us-west-1", false},      {"us-west-2", false},      {"af-south-1", true},
      {"ap-east-1", true},       {"ap-south-2", true},      {"ap-southeast-3", true},
      {"ap-southeast-4", true},  {"ap-southeast-5", true},  {"ap-southeast-7", true},
      {"ca-west-1", true},       {"eu-central-2", true},    {"eu-south-1", true},
      {"eu-south-2", true},      {"il-central-1", true},    {"me-central-1", true},
      {"me-south-1", true},      {"mx-central-1", true},
  };
  return kRegions;
}

const RegionInfo* find_region(const std::string& name) {
  for (const auto& r : known_regions()) {
    if (name == r.name) return &r;
  }
  return nullptr;
}

std::vector<std::string> region_zones(const std::string& region) {
  std::vector<std::string> out;
  for (char c : std::string("abcdef")) out.push_back(region + c);
  return out;
}

std::optional<Reply> check_region(const Call& call) {
  const RegionInfo* r = find_region(call.region);
  if (r && !r->opt_in) return std::nullopt;
  if (r) {  // an opt-in region not enabled for the account
    if (call.protocol == Protocol::kEc2) {
      return error_reply(call, 401, "AuthFailure",
                         "AWS was not able to validate the provided access credentials");
    }
    return error_reply(call, call.protocol == Protocol::kQuery ? 403 : 400,
                       call.protocol == Protocol::kQuery ? "InvalidClientTokenId"
                                                         : "UnrecognizedClientException",
                       "The security token included in the request is invalid.");
  }
  std::string msg = "Credential should be scoped to a valid region. ";
  switch (call.protocol) {
    case Protocol::kEc2: return error_reply(call, 401, "AuthFailure", msg);
    case Protocol::kQuery: return error_reply(call, 403, "SignatureDoesNotMatch", msg);
    case Protocol::kJson: return error_reply(call, 400, "InvalidSignatureException", msg);
    case Protocol::kRestJson: return error_reply(call, 403, "InvalidSignatureException", msg);
  }
  return std::nullopt;
}

Reply describe_regions(Context& ctx, const Call& call) {
  (void)ctx;
  auto names = query_list(call, "RegionName");
  auto filters = query_filters(call);
  bool all = call.param("AllRegions") == "true";
  for (const auto& n : names) {
    if (!find_region(n)) {
      return error_reply(call, 400, "InvalidParameterValue", "Invalid region: " + n);
    }
  }
  for (const auto& f : filters) {
    if (f.name != "region-name" && f.name != "endpoint" && f.name != "opt-in-status") {
      return error_reply(call, 400, "InvalidParameterValue", "The filter '" + f.name + "' is invalid");
    }
  }
  Xml x;
  x.open("regionInfo");
  for (const auto& r : known_regions()) {
    std::string name = r.name;
    if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
    if (r.opt_in && !all && names.empty()) continue;  // AWS lists only enabled regions by default
    std::string endpoint = "ec2." + name + ".amazonaws.com";
    std::string status = r.opt_in ? "not-opted-in" : "opt-in-not-required";
    bool ok = std::all_of(filters.begin(), filters.end(), [&](const Filter& f) {
      const std::string& v = f.name == "region-name" ? name : f.name == "endpoint" ? endpoint : status;
      return filter_matches(f.values, {v});
    });
    if (!ok) continue;
    x.open("item").leaf("regionName", name).leaf("regionEndpoint", endpoint);
    x.leaf("optInStatus", status).close("item");
  }
  x.close("regionInfo");
  return ec2_reply(call, x.str());
}

}  // namespace amibake::emu
