// EC2 launch templates: CreateLaunchTemplate, CreateLaunchTemplateVersion (SourceVersion
// inherits the source's data, given fields override), ModifyLaunchTemplate (default
// version), DescribeLaunchTemplates, DescribeLaunchTemplateVersions ($Default, $Latest,
// numbers, ranges, and the account-wide $Default/$Latest form), DeleteLaunchTemplate.
//
// LaunchTemplateData is kept as JSON in botocore's member names. It is read from the
// Query parameters and written back as XML by one parser and one writer driven by a
// table generated from botocore's EC2 model (launch_template_shapes.inc, made by
// tools/gen_launch_template_shapes.py), so every field of the model round-trips.
#include <algorithm>
#include <set>

#include "emulator/ec2_internal.h"
#include "emulator/validate.h"

namespace amibake::emu {
namespace {

#include "emulator/launch_template_shapes.inc"

const nlohmann::json& shapes() {
  static const nlohmann::json table = nlohmann::json::parse(kLaunchTemplateShapes);
  return table;
}

bool has_prefix(const std::map<std::string, std::string>& params, const std::string& prefix) {
  auto it = params.lower_bound(prefix);
  return it != params.end() && it->first.rfind(prefix, 0) == 0;
}

nlohmann::json scalar(const std::string& kind, const std::string& text) {
  if (kind == "b") return text == "true";
  if (kind == "i") {
    try {
      return std::stoll(text);
    } catch (const std::exception&) {
      return text;
    }
  }
  return text;
}

// Reads the members of `node` from Query parameters under `prefix`.
nlohmann::json parse_node(const nlohmann::json& node, const std::map<std::string, std::string>& params,
                          const std::string& prefix) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [member, spec] : node.items()) {
    std::string key = prefix + spec["q"].get<std::string>();
    std::string kind = spec["k"];
    if (kind == "t") {
      if (has_prefix(params, key + ".")) out[member] = parse_node(spec["c"], params, key + ".");
    } else if (kind == "l" || kind == "L") {
      nlohmann::json list = nlohmann::json::array();
      for (int i = 1;; ++i) {
        std::string item = key + "." + std::to_string(i);
        if (kind == "l") {
          auto it = params.find(item);
          if (it == params.end()) break;
          list.push_back(it->second);
        } else {
          if (!has_prefix(params, item + ".")) break;
          list.push_back(parse_node(spec["c"], params, item + "."));
        }
      }
      if (!list.empty()) out[member] = list;
    } else if (auto it = params.find(key); it != params.end()) {
      out[member] = scalar(kind, it->second);
    }
  }
  return out;
}

// Writes `data` (members of `node`) as EC2 XML.
void write_node(Xml& x, const nlohmann::json& node, const nlohmann::json& data) {
  for (const auto& [member, value] : data.items()) {
    if (!node.contains(member)) continue;
    const auto& spec = node[member];
    std::string tag = spec["x"], kind = spec["k"];
    if (kind == "t" && value.is_object()) {
      x.open(tag);
      write_node(x, spec["c"], value);
      x.close(tag);
    } else if ((kind == "l" || kind == "L") && value.is_array()) {
      x.open(tag);
      for (const auto& item : value) {
        x.open("item");
        if (kind == "L") write_node(x, spec["c"], item);
        else x.str() += xml_escape(item.is_string() ? item.get<std::string>() : item.dump());
        x.close("item");
      }
      x.close(tag);
    } else if (value.is_boolean()) {
      x.boolean(tag, value.get<bool>());
    } else if (value.is_number_integer()) {
      x.number(tag, value.get<int64_t>());
    } else if (value.is_string()) {
      x.leaf(tag, value.get<std::string>());
    }
  }
}

bool valid_template_name(const std::string& name) {
  if (name.size() < 3 || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '(' || c == ')' || c == '.' ||
           c == '-' || c == '/' || c == '_';
  });
}

Reply not_found_by_name(const Call& call) {
  return error_reply(call, 400, "InvalidLaunchTemplateName.NotFoundException",
                     "At least one of the launch templates specified in the request does not exist.");
}

Reply not_found_by_id(const Call& call, const std::string& id) {
  if (id.rfind("lt-", 0) != 0) {
    return error_reply(call, 400, "InvalidLaunchTemplateId.Malformed",
                       "The specified launch template ID " + id + " is not valid.");
  }
  return error_reply(call, 400, "InvalidLaunchTemplateId.NotFound",
                     "The specified launch template, with template ID " + id + ", does not exist.");
}

// Finds the template named by LaunchTemplateId or LaunchTemplateName (mu() held).
LaunchTemplate* find_template(Context& ctx, const Call& call, Reply* error) {
  std::string id = call.param("LaunchTemplateId"), name = call.param("LaunchTemplateName");
  if (id.empty() == name.empty()) {
    *error = error_reply(call, 400, id.empty() ? "MissingParameter" : "InvalidParameterCombination",
                         "The request must contain exactly one of the parameters "
                         "LaunchTemplateId or LaunchTemplateName");
    return nullptr;
  }
  auto& templates = ctx.world().launch_templates;
  if (!id.empty()) {
    auto it = templates.find(id);
    if (it == templates.end() || ctx.hidden(id)) {
      *error = not_found_by_id(call, id);
      return nullptr;
    }
    return &it->second;
  }
  for (auto& [tid, t] : templates) {
    if (t.name == name && !ctx.hidden(tid)) return &t;
  }
  *error = not_found_by_name(call);
  return nullptr;
}

// Resolves "$Latest", "$Default" or a number to a version of `t`; nullptr if absent.
const LaunchTemplateVersion* resolve_version(const LaunchTemplate& t, const std::string& v) {
  int64_t n = 0;
  if (v == "$Latest") n = t.latest_version;
  else if (v == "$Default" || v.empty()) n = t.default_version;
  else {
    try {
      size_t used = 0;
      n = std::stoll(v, &used);
      if (used != v.size()) return nullptr;
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  for (const auto& ver : t.versions) {
    if (ver.number == n) return &ver;
  }
  return nullptr;
}

Reply version_not_found(const Call& call, const LaunchTemplate& t, const std::string& v) {
  return error_reply(call, 400, "InvalidLaunchTemplateId.VersionNotFound",
                     "Could not find launch template version " + v + " for launch template with ID " +
                         t.id + ".");
}

void write_template(Xml& x, const LaunchTemplate& t) {
  x.leaf("launchTemplateId", t.id).leaf("launchTemplateName", t.name);
  x.leaf("createTime", iso_time(t.create_time));
  x.leaf("createdBy", std::string("arn:aws:iam::") + kAccountId + ":user/awsemu");
  x.number("defaultVersionNumber", t.default_version).number("latestVersionNumber", t.latest_version);
  if (!t.tags.empty()) x.tags(t.tags);
}

void write_version(Xml& x, const LaunchTemplate& t, const LaunchTemplateVersion& v) {
  x.leaf("launchTemplateId", t.id).leaf("launchTemplateName", t.name);
  x.number("versionNumber", v.number).opt("versionDescription", v.description);
  x.leaf("createTime", iso_time(v.create_time));
  x.leaf("createdBy", std::string("arn:aws:iam::") + kAccountId + ":user/awsemu");
  x.boolean("defaultVersion", v.number == t.default_version);
  x.open("launchTemplateData");
  write_node(x, shapes(), v.data);
  x.close("launchTemplateData");
}

std::optional<Reply> check_version_description(const Call& call) {
  if (call.param("VersionDescription").size() > 255) {
    return error_reply(call, 400, "InvalidParameterValue",
                       "Value for parameter VersionDescription is too long: at most 255 characters.");
  }
  return std::nullopt;
}

Reply create_launch_template(Context& ctx, const Call& call) {
  std::string name = call.param("LaunchTemplateName");
  if (name.empty()) {
    return error_reply(call, 400, "MissingParameter",
                       "The request must contain the parameter LaunchTemplateName");
  }
  if (!valid_template_name(name)) {
    return error_reply(call, 400, "InvalidLaunchTemplateName.MalformedException",
                       "A launch template name must be between 3 and 128 characters, and may "
                       "contain letters, numbers, and the following characters: - ( ) . / _.'");
  }
  if (!has_prefix(call.params, "LaunchTemplateData.")) {
    return error_reply(call, 400, "MissingParameter",
                       "The request must contain the parameter LaunchTemplateData");
  }
  if (auto bad = check_version_description(call)) return *bad;
  Tags tags = tag_specifications(call, "launch-template");
  if (auto bad = check_tags({}, tags, kEc2TagRules)) return refuse(call, *bad);
  std::string token = call.param("ClientToken");
  std::lock_guard<std::mutex> lock(ctx.mu());
  for (const auto& [id, t] : ctx.world().launch_templates) {
    if (!token.empty() && t.client_token == token) {
      Xml x;
      x.open("launchTemplate");
      write_template(x, t);
      x.close("launchTemplate");
      return ec2_reply(call, x.str());
    }
    if (t.name == name) {
      return error_reply(call, 400, "InvalidLaunchTemplateName.AlreadyExistsException",
                         "Launch template name already in use.");
    }
  }
  LaunchTemplate t;
  t.id = ctx.new_id("lt");
  t.name = name;
  t.client_token = token;
  t.create_time = ctx.now();
  t.tags = tags;
  LaunchTemplateVersion v;
  v.number = 1;
  v.description = call.param("VersionDescription");
  v.create_time = t.create_time;
  v.data = parse_node(shapes(), call.params, "LaunchTemplateData.");
  t.versions.push_back(v);
  ctx.world().launch_templates[t.id] = t;
  ctx.maybe_hide(call.action, t.id);
  ctx.commit();
  Xml x;
  x.open("launchTemplate");
  write_template(x, t);
  x.close("launchTemplate");
  return ec2_reply(call, x.str());
}

Reply create_launch_template_version(Context& ctx, const Call& call) {
  if (auto bad = check_version_description(call)) return *bad;
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  LaunchTemplate* t = find_template(ctx, call, &error);
  if (!t) return error;
  // ClientToken: a retry of a version already made answers that version, as EC2 does;
  // the same token with other parameters is IdempotentParameterMismatch.
  std::string token = call.param("ClientToken");
  std::string asked = call.param("SourceVersion") + "\n" + call.param("VersionDescription") + "\n" +
                      parse_node(shapes(), call.params, "LaunchTemplateData.").dump();
  for (const auto& earlier : t->versions) {
    if (token.empty() || earlier.client_token.empty() || earlier.client_token.find(token + "\n") != 0) {
      continue;
    }
    if (earlier.client_token != token + "\n" + asked) {
      return error_reply(call, 400, "IdempotentParameterMismatch",
                         "The client token " + token + " was used with other parameters.");
    }
    Xml x;
    x.open("launchTemplateVersion");
    write_version(x, *t, earlier);
    x.close("launchTemplateVersion");
    return ec2_reply(call, x.str());
  }
  nlohmann::json data = nlohmann::json::object();
  std::string source = call.param("SourceVersion");
  if (!source.empty()) {
    const LaunchTemplateVersion* from = resolve_version(*t, source);
    if (!from) return version_not_found(call, *t, source);
    data = from->data;
  }
  // Given fields override the source's, member by member at the top level (a given
  // list replaces the source's list), as EC2 merges them.
  const nlohmann::json given = parse_node(shapes(), call.params, "LaunchTemplateData.");
  for (const auto& [k, v] : given.items()) data[k] = v;
  LaunchTemplateVersion v;
  v.number = t->latest_version + 1;
  v.description = call.param("VersionDescription");
  v.create_time = ctx.now();
  v.data = data;
  if (!token.empty()) v.client_token = token + "\n" + asked;
  t->versions.push_back(v);
  t->latest_version = v.number;
  ctx.commit();
  Xml x;
  x.open("launchTemplateVersion");
  write_version(x, *t, v);
  x.close("launchTemplateVersion");
  return ec2_reply(call, x.str());
}

Reply modify_launch_template(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  LaunchTemplate* t = find_template(ctx, call, &error);
  if (!t) return error;
  std::string wanted = call.param("SetDefaultVersion");
  if (!wanted.empty()) {
    const LaunchTemplateVersion* v = resolve_version(*t, wanted);
    if (!v) return version_not_found(call, *t, wanted);
    t->default_version = v->number;
    ctx.commit();
  }
  Xml x;
  x.open("launchTemplate");
  write_template(x, *t);
  x.close("launchTemplate");
  return ec2_reply(call, x.str());
}

Reply describe_launch_templates(Context& ctx, const Call& call) {
  auto ids = query_list(call, "LaunchTemplateId");
  auto names = query_list(call, "LaunchTemplateName");
  auto filters = query_filters(call);
  for (const auto& f : filters) {
    bool tag = f.name.rfind("tag:", 0) == 0 || f.name == "tag-key";
    if (!tag && f.name != "launch-template-name" && f.name != "create-time") {
      return error_reply(call, 400, "InvalidParameterValue", "The filter '" + f.name + "' is invalid");
    }
  }
  std::lock_guard<std::mutex> lock(ctx.mu());
  auto& templates = ctx.world().launch_templates;
  for (const auto& id : ids) {
    if (!templates.count(id) || ctx.hidden(id)) return not_found_by_id(call, id);
  }
  for (const auto& n : names) {
    bool found = std::any_of(templates.begin(), templates.end(), [&](const auto& kv) {
      return kv.second.name == n && !ctx.hidden(kv.first);
    });
    if (!found) return not_found_by_name(call);
  }
  std::vector<const LaunchTemplate*> found;
  for (const auto& [id, t] : templates) {
    if (ctx.hidden(id)) continue;
    if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
    if (!names.empty() && std::find(names.begin(), names.end(), t.name) == names.end()) continue;
    bool ok = matches_filters(filters, t.tags, [&t = t](const std::string& f) -> std::vector<std::string> {
      if (f == "launch-template-name") return {t.name};
      return {iso_time(t.create_time)};
    });
    if (ok) found.push_back(&t);
  }
  Page page = paginate(call, found.size());
  if (page.error) return *page.error;
  Xml x;
  x.open("launchTemplates");
  for (size_t i = page.begin; i < page.end; ++i) {
    x.open("item");
    write_template(x, *found[i]);
    x.close("item");
  }
  x.close("launchTemplates").opt("nextToken", page.next_token);
  return ec2_reply(call, x.str());
}

std::vector<std::string> version_field(const LaunchTemplate& t, const LaunchTemplateVersion& v,
                                       const std::string& name) {
  if (name == "image-id") return {v.data.value("ImageId", "")};
  if (name == "instance-type") return {v.data.value("InstanceType", "")};
  if (name == "is-default-version") return {v.number == t.default_version ? "true" : "false"};
  if (name == "create-time") return {iso_time(v.create_time)};
  return {"\x01unknown"};
}

Reply describe_launch_template_versions(Context& ctx, const Call& call) {
  auto wanted = query_list(call, "LaunchTemplateVersion");
  auto filters = query_filters(call);
  for (const auto& f : filters) {
    if (version_field(LaunchTemplate{}, LaunchTemplateVersion{}, f.name) ==
        std::vector<std::string>{"\x01unknown"}) {
      return error_reply(call, 400, "InvalidParameterValue", "The filter '" + f.name + "' is invalid");
    }
  }
  std::string min_text = call.param("MinVersion"), max_text = call.param("MaxVersion");
  std::lock_guard<std::mutex> lock(ctx.mu());
  std::vector<std::pair<const LaunchTemplate*, const LaunchTemplateVersion*>> found;
  bool account_wide = call.param("LaunchTemplateId").empty() && call.param("LaunchTemplateName").empty();
  if (account_wide) {
    // Without a template, EC2 describes $Latest and/or $Default of every template.
    if (wanted.empty() || std::any_of(wanted.begin(), wanted.end(), [](const std::string& v) {
          return v != "$Latest" && v != "$Default";
        })) {
      return error_reply(call, 400, "InvalidParameterCombination",
                         "Without a launch template ID or name, only the versions $Latest and "
                         "$Default can be described.");
    }
    for (const auto& [id, t] : ctx.world().launch_templates) {
      if (ctx.hidden(id)) continue;
      std::set<int64_t> numbers;
      for (const auto& w : wanted) numbers.insert(w == "$Latest" ? t.latest_version : t.default_version);
      for (int64_t n : numbers) {
        if (const auto* v = resolve_version(t, std::to_string(n))) found.push_back({&t, v});
      }
    }
  } else {
    Reply error;
    LaunchTemplate* t = find_template(ctx, call, &error);
    if (!t) return error;
    if (!wanted.empty()) {
      std::set<int64_t> seen;
      for (const auto& w : wanted) {
        const LaunchTemplateVersion* v = resolve_version(*t, w);
        if (!v) return version_not_found(call, *t, w);
        if (seen.insert(v->number).second) found.push_back({t, v});
      }
    } else {
      const LaunchTemplateVersion* lo = min_text.empty() ? nullptr : resolve_version(*t, min_text);
      const LaunchTemplateVersion* hi = max_text.empty() ? nullptr : resolve_version(*t, max_text);
      if (!min_text.empty() && !lo) return version_not_found(call, *t, min_text);
      if (!max_text.empty() && !hi) return version_not_found(call, *t, max_text);
      for (const auto& v : t->versions) {
        if ((lo && v.number < lo->number) || (hi && v.number > hi->number)) continue;
        found.push_back({t, &v});
      }
    }
  }
  std::vector<std::pair<const LaunchTemplate*, const LaunchTemplateVersion*>> kept;
  for (const auto& [t, v] : found) {
    bool ok = std::all_of(filters.begin(), filters.end(), [&, t = t, v = v](const Filter& f) {
      return filter_matches(f.values, version_field(*t, *v, f.name));
    });
    if (ok) kept.push_back({t, v});
  }
  std::string max = call.param("MaxResults");
  size_t begin = 0, end = kept.size();
  std::string next;
  if (!call.param("NextToken").empty()) {
    std::string token = call.param("NextToken");
    if (token.rfind("emu-", 0) != 0) {
      return error_reply(call, 400, "InvalidNextToken", "The token '" + token + "' is invalid");
    }
    begin = std::min(kept.size(), static_cast<size_t>(std::atol(token.c_str() + 4)));
  }
  if (!max.empty()) {
    long n = std::atol(max.c_str());
    if (n < 1 || n > 200) {
      return error_reply(call, 400, "InvalidParameterValue",
                         "Value (" + max + ") for parameter maxResults is invalid. Expecting a value between 1 and 200.");
    }
    end = std::min(kept.size(), begin + static_cast<size_t>(n));
    if (end < kept.size()) next = "emu-" + std::to_string(end);
  }
  Xml x;
  x.open("launchTemplateVersionSet");
  for (size_t i = begin; i < end; ++i) {
    x.open("item");
    write_version(x, *kept[i].first, *kept[i].second);
    x.close("item");
  }
  x.close("launchTemplateVersionSet").opt("nextToken", next);
  return ec2_reply(call, x.str());
}

// DeleteLaunchTemplateVersions: each asked version is deleted or listed as not deleted
// with EC2's error codes; the default version cannot be deleted (make another the
// default first, or delete the whole template), as on EC2.
Reply delete_launch_template_versions(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  LaunchTemplate* t = find_template(ctx, call, &error);
  if (!t) return error;
  auto wanted = query_list(call, "LaunchTemplateVersion");
  if (wanted.empty()) {
    return error_reply(call, 400, "MissingParameter",
                       "The request must contain the parameter LaunchTemplateVersion");
  }
  if (wanted.size() > 200) {
    return error_reply(call, 400, "InvalidParameterValue", "At most 200 versions can be deleted at once.");
  }
  Xml ok_set, bad_set;
  auto failed = [&](const std::string& v, const std::string& code, const std::string& message) {
    bad_set.open("item").leaf("launchTemplateId", t->id).leaf("launchTemplateName", t->name);
    int64_t n = 0;
    try {
      n = std::stoll(v);
    } catch (const std::exception&) {
    }
    bad_set.number("versionNumber", n);
    bad_set.open("responseError").leaf("code", code).leaf("message", message).close("responseError");
    bad_set.close("item");
  };
  for (const auto& w : wanted) {
    const LaunchTemplateVersion* v = resolve_version(*t, w);
    if (!v || w.rfind("$", 0) == 0) {
      failed(w, "launchTemplateVersionDoesNotExist", "The specified launch template version does not exist.");
      continue;
    }
    if (v->number == t->default_version) {
      failed(w, "unexpectedError",
             "Cannot delete the default version of a launch template. Specify another version "
             "as the default, or delete the launch template.");
      continue;
    }
    int64_t n = v->number;
    t->versions.erase(std::remove_if(t->versions.begin(), t->versions.end(),
                                     [n](const LaunchTemplateVersion& x) { return x.number == n; }),
                      t->versions.end());
    ok_set.open("item").leaf("launchTemplateId", t->id).leaf("launchTemplateName", t->name);
    ok_set.number("versionNumber", n).close("item");
  }
  ctx.commit();
  Xml x;
  x.open("successfullyDeletedLaunchTemplateVersionSet");
  x.str() += ok_set.str();
  x.close("successfullyDeletedLaunchTemplateVersionSet");
  x.open("unsuccessfullyDeletedLaunchTemplateVersionSet");
  x.str() += bad_set.str();
  x.close("unsuccessfullyDeletedLaunchTemplateVersionSet");
  return ec2_reply(call, x.str());
}

Reply delete_launch_template(Context& ctx, const Call& call) {
  std::lock_guard<std::mutex> lock(ctx.mu());
  Reply error;
  LaunchTemplate* t = find_template(ctx, call, &error);
  if (!t) return error;
  Xml x;
  x.open("launchTemplate");
  write_template(x, *t);
  x.close("launchTemplate");
  ctx.world().launch_templates.erase(t->id);
  ctx.commit();
  return ec2_reply(call, x.str());
}

}  // namespace

Reply handle_launch_templates(Context& ctx, const Call& call) {
  const std::string& a = call.action;
  if (a == "CreateLaunchTemplate") return create_launch_template(ctx, call);
  if (a == "CreateLaunchTemplateVersion") return create_launch_template_version(ctx, call);
  if (a == "ModifyLaunchTemplate") return modify_launch_template(ctx, call);
  if (a == "DescribeLaunchTemplates") return describe_launch_templates(ctx, call);
  if (a == "DescribeLaunchTemplateVersions") return describe_launch_template_versions(ctx, call);
  if (a == "DeleteLaunchTemplate") return delete_launch_template(ctx, call);
  if (a == "DeleteLaunchTemplateVersions") return delete_launch_template_versions(ctx, call);
  return handle_instances(ctx, call);
}

}  // namespace amibake::emu
