// EC2 entry point and the small operations: tags, the host instance, zones,
// encryption-by-default. Images and storage live in ec2_images.cc / ec2_storage.cc.
#include <algorithm>
#include <map>

#include "emulator/ec2_internal.h"
#include "emulator/validate.h"

namespace amibake::emu {

bool matches_filters(const std::vector<Filter>& filters, const Tags& tags,
                     const std::function<std::vector<std::string>(const std::string&)>& field) {
  for (const auto& f : filters) {
    bool handled = false;
    bool tag_ok = tag_filters_match(f, tags, &handled);
    if (handled) {
      if (!tag_ok) return false;
      continue;
    }
    if (!filter_matches(f.values, field(f.name))) return false;
  }
  return true;
}

Page paginate(const Call& call, size_t total) {
  Page page;
  page.end = total;
  std::string token = call.param("NextToken");
  std::string max = call.param("MaxResults");
  if (!token.empty()) {
    try {
      if (token.rfind("emu-", 0) != 0) throw std::invalid_argument("token");
      page.begin = std::stoul(token.substr(4));
    } catch (const std::exception&) {
      page.error = error_reply(call, 400, "InvalidNextToken", "The token '" + token + "' is invalid");
      return page;
    }
    page.begin = std::min(page.begin, total);
  }
  if (!max.empty()) {
    long n = std::atol(max.c_str());
    if (n < 5 || n > 1000) {
      page.error = error_reply(call, 400, "InvalidParameterValue",
                               "Value (" + max + ") for parameter maxResults is invalid. Expecting a value between 5 and 1000.");
      return page;
    }
    page.end = std::min(total, page.begin + static_cast<size_t>(n));
    if (page.end < total) page.next_token = "emu-" + std::to_string(page.end);
  }
  return page;
}

namespace {

// Finds the tags of any resource id (mu() held); nullptr if unknown. Sets type.
Tags* resource_tags(Context& ctx, const std::string& id, std::string* type, bool* owned) {
  auto& w = ctx.world();
  if (auto it = w.images.find(id); it != w.images.end()) {
    *type = "image";
    *owned = it->second.owner_id == kAccountId;
    return &it->second.tags;
  }
  if (auto it = w.snapshots.find(id); it != w.snapshots.end()) {
    *type = "snapshot";
    *owned = it->second.owner_id == kAccountId;
    return &it->second.tags;
  }
  if (auto it = w.volumes.find(id); it != w.volumes.end()) {
    *type = "volume";
    *owned = true;
    return &it->second.tags;
  }
  return nullptr;
}

Reply change_tags(Context& ctx, const Call& call, bool create) {
  auto ids = query_list(call, "ResourceId");
  auto tags = query_structs(call.params, "Tag");
  if (ids.empty()) return error_reply(call, 400, "MissingParameter", "The request must contain the parameter resourceIdSet");
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& id : ids) {
    std::string type;
    bool owned = false;
    Tags* target = resource_tags(ctx, id, &type, &owned);
    if (!target) {
      std::string code = id.rfind("ami-", 0) == 0    ? "InvalidAMIID.NotFound"
                         : id.rfind("snap-", 0) == 0 ? "InvalidSnapshot.NotFound"
                         : id.rfind("vol-", 0) == 0  ? "InvalidVolume.NotFound"
                                                     : "InvalidID";
      return error_reply(call, 400, code, "The ID '" + id + "' does not exist");
    }
    if (!owned) {
      return error_reply(call, 403, "UnauthorizedOperation", "You are not authorized to tag " + id);
    }
  }
  TagList adding;
  for (const auto& t : tags) {
    adding.emplace_back(t.count("Key") ? t.at("Key") : "", t.count("Value") ? t.at("Value") : "");
  }
  if (create) {
    // Every resource is checked before any is changed, counting the tags it already has.
    for (const auto& id : ids) {
      std::string type;
      bool owned = false;
      Tags* target = resource_tags(ctx, id, &type, &owned);
      if (auto bad = check_tags(*target, adding, kEc2TagRules)) return refuse(call, *bad);
    }
  }
  for (const auto& id : ids) {
    std::string type;
    bool owned = false;
    Tags* target = resource_tags(ctx, id, &type, &owned);
    for (size_t i = 0; i < tags.size(); ++i) {
      const auto& [key, value] = adding[i];
      if (create) {
        (*target)[key] = value;
      } else if (auto it = target->find(key);
                 it != target->end() && (!tags[i].count("Value") || it->second == value)) {
        target->erase(it);
      }
    }
  }
  ctx.commit();
  Xml x;
  x.boolean("return", true);
  return ec2_reply(call, x.str());
}

Reply describe_tags(Context& ctx, const Call& call) {
  auto filters = query_filters(call);
  std::lock_guard<std::mutex> lock(ctx.mu());
  struct Row { std::string id, type, key, value; };
  std::vector<Row> rows;
  auto add = [&](const std::string& id, const std::string& type, const Tags& tags) {
    for (const auto& [k, v] : tags) rows.push_back({id, type, k, v});
  };
  for (const auto& [id, r] : ctx.world().images) if (r.owner_id == kAccountId) add(id, "image", r.tags);
  for (const auto& [id, r] : ctx.world().snapshots) if (r.owner_id == kAccountId) add(id, "snapshot", r.tags);
  for (const auto& [id, r] : ctx.world().volumes) add(id, "volume", r.tags);
  std::vector<const Row*> found;
  for (const auto& row : rows) {
    bool ok = true;
    for (const auto& f : filters) {
      std::vector<std::string> vals;
      if (f.name == "resource-id") vals = {row.id};
      else if (f.name == "resource-type") vals = {row.type};
      else if (f.name == "key") vals = {row.key};
      else if (f.name == "value") vals = {row.value};
      else if (f.name.rfind("tag:", 0) == 0) vals = f.name.substr(4) == row.key ? std::vector<std::string>{row.value} : std::vector<std::string>{};
      else return error_reply(call, 400, "InvalidParameterValue", "The filter '" + f.name + "' is invalid");
      if (!filter_matches(f.values, vals)) ok = false;
    }
    if (ok) found.push_back(&row);
  }
  Page page = paginate(call, found.size());
  if (page.error) return *page.error;
  Xml x;
  x.open("tagSet");
  for (size_t i = page.begin; i < page.end; ++i) {
    const Row& r = *found[i];
    x.open("item").leaf("resourceId", r.id).leaf("resourceType", r.type).leaf("key", r.key)
        .leaf("value", r.value).close("item");
  }
  x.close("tagSet").opt("nextToken", page.next_token);
  return ec2_reply(call, x.str());
}

// The zone id prefix AWS uses for a region: "us-east-1" -> "use1", "ap-southeast-2" -> "apse2".
std::string zone_id_prefix(const std::string& region) {
  static const std::map<std::string, std::string> kWords = {
      {"east", "e"},      {"west", "w"},      {"north", "n"},         {"south", "s"},
      {"central", "c"},   {"southeast", "se"}, {"northeast", "ne"}, {"northwest", "nw"},
      {"southwest", "sw"}};
  size_t a = region.find('-'), b = region.rfind('-');
  if (a == std::string::npos || a == b) return region;
  auto word = kWords.find(region.substr(a + 1, b - a - 1));
  return region.substr(0, a) + (word == kWords.end() ? region.substr(a + 1, 1) : word->second) +
         region.substr(b + 1);
}

Reply describe_availability_zones(const Call& call) {
  auto names = query_list(call, "ZoneName");
  const std::string& region = Context::current_region();
  Xml x;
  x.open("availabilityZoneInfo");
  int i = 0;
  for (const auto& zone : region_zones(region)) {
    ++i;
    if (!names.empty() && std::find(names.begin(), names.end(), zone) == names.end()) continue;
    x.open("item").leaf("zoneName", zone).leaf("zoneState", "available");
    x.leaf("regionName", region).leaf("zoneId", zone_id_prefix(region) + "-az" + std::to_string(i));
    x.leaf("optInStatus", "opt-in-not-required").leaf("groupName", region);
    x.leaf("networkBorderGroup", region).leaf("zoneType", "availability-zone");
    x.open("messageSet").close("messageSet").close("item");
  }
  x.close("availabilityZoneInfo");
  return ec2_reply(call, x.str());
}

}  // namespace

Reply handle_ec2(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a.empty()) return error_reply(call, 400, "MissingAction", "The request must contain the parameter Action");
  if (call.param("DryRun") == "true") {
    return error_reply(call, 412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
  }
  if (a == "CreateTags") return change_tags(ctx, call, true);
  if (a == "DeleteTags") return change_tags(ctx, call, false);
  if (a == "DescribeTags") return describe_tags(ctx, call);
  if (a == "DescribeAvailabilityZones") return describe_availability_zones(call);
  if (a == "DescribeRegions") return describe_regions(ctx, call);
  if (a == "GetEbsEncryptionByDefault") {
    Xml x;
    x.boolean("ebsEncryptionByDefault", false).leaf("sseType", "none");
    return ec2_reply(call, x.str());
  }
  return handle_ec2_storage(ctx, call);
}

}  // namespace amibake::emu
