// Wire formats shared by the handlers: error shapes per protocol, the EC2 response
// envelope, EC2 Query list/struct flattening ("Filter.1.Value.2"), and filters.
//
// Error shapes, as the AWS CLI (botocore) parses them:
//   EC2:       <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
//   STS query: <ErrorResponse xmlns=STS><Error><Type/><Code/><Message/></Error><RequestId/>
//   JSON 1.1:  {"__type": "...", "message": "..."}
//   REST-JSON: x-amzn-ErrorType header + {"Message": "...", "Reason": "..."} body
#include <algorithm>

#include "emulator/service.h"

namespace amibake::emu {

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

Xml& Xml::tags(const Tags& tags) {
  open("tagSet");
  for (const auto& [k, v] : tags) open("item").leaf("key", k).leaf("value", v).close("item");
  return close("tagSet");
}

Reply error_reply(Protocol protocol, int status, const std::string& code,
                  const std::string& message, const std::string& request_id,
                  const nlohmann::json& extra) {
  Reply r;
  r.status = status;
  switch (protocol) {
    case Protocol::kEc2:
      r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>" +
               xml_escape(code) + "</Code><Message>" + xml_escape(message) +
               "</Message></Error></Errors><RequestID>" + request_id + "</RequestID></Response>";
      break;
    case Protocol::kQuery:
      r.body = std::string("<ErrorResponse xmlns=\"") + kStsNamespace +
               "\"><Error><Type>" + (status >= 500 ? "Receiver" : "Sender") + "</Type><Code>" +
               xml_escape(code) + "</Code><Message>" + xml_escape(message) +
               "</Message></Error><RequestId>" + request_id + "</RequestId></ErrorResponse>";
      break;
    case Protocol::kJson: {
      nlohmann::json j = extra;
      j["__type"] = code;
      j["message"] = message;
      r.content_type = "application/x-amz-json-1.1";
      r.body = j.dump();
      break;
    }
    case Protocol::kRestJson: {
      nlohmann::json j = extra;
      j["Message"] = message;
      r.content_type = "application/json";
      r.body = j.dump();
      r.headers.emplace_back("x-amzn-ErrorType", code);
      break;
    }
  }
  r.headers.emplace_back("x-amzn-RequestId", request_id);
  return r;
}

Reply error_reply(const Call& call, int status, const std::string& code,
                  const std::string& message, const nlohmann::json& extra) {
  return error_reply(call.protocol, status, code, message, call.request_id, extra);
}

Reply json_reply(const Call& call, const nlohmann::json& body, int status) {
  Reply r;
  r.status = status;
  r.content_type =
      call.protocol == Protocol::kJson ? "application/x-amz-json-1.1" : "application/json";
  r.body = body.dump();
  r.headers.emplace_back("x-amzn-RequestId", call.request_id);
  return r;
}

Reply ec2_reply(const Call& call, const std::string& inner) {
  Reply r;
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + call.action + "Response xmlns=\"" +
           kEc2Namespace + "\"><requestId>" + call.request_id + "</requestId>" + inner + "</" +
           call.action + "Response>";
  return r;
}

std::vector<std::string> query_list(const Call& call, const std::string& prefix) {
  std::vector<std::string> out;
  for (int i = 1;; ++i) {
    auto it = call.params.find(prefix + "." + std::to_string(i));
    if (it == call.params.end()) break;
    out.push_back(it->second);
  }
  return out;
}

std::vector<std::map<std::string, std::string>> query_structs(
    const std::map<std::string, std::string>& params, const std::string& prefix) {
  std::vector<std::map<std::string, std::string>> out;
  for (int i = 1;; ++i) {
    std::string head = prefix + "." + std::to_string(i) + ".";
    std::map<std::string, std::string> item;
    for (auto it = params.lower_bound(head); it != params.end(); ++it) {
      if (it->first.compare(0, head.size(), head) != 0) break;
      item[it->first.substr(head.size())] = it->second;
    }
    if (item.empty()) break;
    out.push_back(std::move(item));
  }
  return out;
}

std::vector<std::string> sub_list(const std::map<std::string, std::string>& item,
                                  const std::string& name) {
  std::vector<std::string> out;
  for (int i = 1;; ++i) {
    auto it = item.find(name + "." + std::to_string(i));
    if (it == item.end()) break;
    out.push_back(it->second);
  }
  return out;
}

std::vector<Filter> query_filters(const Call& call) {
  std::vector<Filter> out;
  for (const auto& item : query_structs(call.params, "Filter")) {
    Filter f;
    auto it = item.find("Name");
    if (it != item.end()) f.name = it->second;
    f.values = sub_list(item, "Value");
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

// Glob match with '*' and '?' (EC2 filter wildcards).
bool glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return glob(p + 1, s) || (*s && glob(p, s + 1));
  if (*s && (*p == '?' || *p == *s)) return glob(p + 1, s + 1);
  return false;
}

}  // namespace

bool filter_matches(const std::vector<std::string>& patterns,
                    const std::vector<std::string>& values) {
  for (const auto& p : patterns) {
    for (const auto& v : values) {
      if (glob(p.c_str(), v.c_str())) return true;
    }
  }
  return false;
}

bool tag_filters_match(const Filter& f, const Tags& tags, bool* handled) {
  *handled = true;
  if (f.name.rfind("tag:", 0) == 0) {
    auto it = tags.find(f.name.substr(4));
    return it != tags.end() && filter_matches(f.values, {it->second});
  }
  if (f.name == "tag-key" || f.name == "tag-value") {
    std::vector<std::string> vals;
    for (const auto& [k, v] : tags) vals.push_back(f.name == "tag-key" ? k : v);
    return filter_matches(f.values, vals);
  }
  *handled = false;
  return true;
}

Tags tag_specifications(const Call& call, const std::string& resource_type) {
  Tags tags;
  for (const auto& spec : query_structs(call.params, "TagSpecification")) {
    auto rt = spec.find("ResourceType");
    if (rt != spec.end() && rt->second != resource_type) continue;
    for (const auto& tag : query_structs(spec, "Tag")) {
      auto k = tag.find("Key");
      auto v = tag.find("Value");
      if (k != tag.end()) tags[k->second] = v == tag.end() ? "" : v->second;
    }
  }
  return tags;
}

}  // namespace amibake::emu
