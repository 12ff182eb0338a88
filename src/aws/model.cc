// Model-driven encoding and decoding (model.h), following botocore's serialize.py and
// parsers.py for the EC2, JSON 1.1 and REST-JSON protocols.
#include "aws/model.h"

#include <cmath>
#include <mutex>

#include "aws/answer.h"
#include "aws/query.h"
#include "aws/sigv4.h"

extern "C" {
extern const char amibake_model_ec2_start[], amibake_model_ec2_end[];
extern const char amibake_model_ssm_start[], amibake_model_ssm_end[];
extern const char amibake_model_batch_start[], amibake_model_batch_end[];
extern const char amibake_model_kms_start[], amibake_model_kms_end[];
}

namespace amibake::aws::model {

namespace {

using nlohmann::json;

// Loads an embedded model once; an embedded model that does not parse is a build
// defect, so it aborts with the reason rather than limping on.
const Service& embedded(std::string_view name, const char* begin, const char* end) {
  Result<Service> s = parse_service(name, std::string_view(begin, end - begin));
  if (!s) {
    std::fprintf(stderr, "amibake: embedded AWS model %.*s is broken: %s\n",
                 static_cast<int>(name.size()), name.data(), s.error().message.c_str());
    std::abort();
  }
  return *new Service(std::move(*s));
}

Error bad_input(const Service& svc, std::string_view op, const std::string& where,
                const std::string& what) {
  return make_error(svc.name + " " + std::string(op) + ": request member " + where + ": " + what,
                    "this is a defect in amibake: please report it with the command you ran");
}

// One operation's encoding context.
struct Encoder {
  const Service& svc;
  std::string_view op;
  Status status = ok();

  const json& shape(const std::string& name) const { return svc.shapes.at(name); }
  void fail(const std::string& where, const std::string& what) {
    if (status) status = bad_input(svc, op, where, what);
  }

  // Checks `value` against scalar shape `type`; returns its wire text.
  // Checks `value` against scalar shape `sh` (type and, as botocore's validator does,
  // a string's min/max length); returns its wire text.
  bool scalar_text(const Json& value, const json& sh, const std::string& where, std::string* out) {
    const std::string type = sh.value("type", "string");
    if (type == "string" || type == "timestamp" || type == "blob") {
      if (value.is_string()) {
        *out = value.get<std::string>();
        if (type == "string" && sh.contains("min") && out->size() < sh["min"].get<size_t>()) {
          fail(where, "shorter than the model's minimum length " + sh["min"].dump());
          return false;
        }
        if (type == "string" && sh.contains("max") && out->size() > sh["max"].get<size_t>()) {
          fail(where, "longer than the model's maximum length " + sh["max"].dump());
          return false;
        }
        return true;
      }
      if (type == "timestamp" && value.is_number()) {
        *out = std::to_string(value.get<int64_t>());
        return true;
      }
    } else if (type == "integer" || type == "long") {
      if (value.is_number_integer()) {
        *out = std::to_string(value.get<int64_t>());
        return true;
      }
    } else if (type == "boolean") {
      if (value.is_boolean()) {
        *out = value.get<bool>() ? "true" : "false";
        return true;
      }
    } else if (type == "double" || type == "float") {
      if (value.is_number()) {
        *out = value.dump();
        return true;
      }
    }
    fail(where, "expected " + type + ", got " + std::string(value.type_name()));
    return false;
  }

  // Checks required members and that every given member exists.
  bool check_structure(const json& sh, const Json& value, const std::string& where) {
    if (!value.is_object()) {
      fail(where, "expected a structure, got " + std::string(value.type_name()));
      return false;
    }
    const json& members = sh.contains("members") ? sh["members"] : json::object();
    for (const auto& [key, v] : value.items()) {
      if (!members.contains(key)) {
        fail(where.empty() ? key : where + "." + key, "the model has no such member");
        return false;
      }
    }
    if (sh.contains("required")) {
      for (const auto& r : sh["required"]) {
        if (!value.contains(r.get<std::string>())) {
          fail(where.empty() ? r.get<std::string>() : where + "." + r.get<std::string>(),
               "required member missing");
          return false;
        }
      }
    }
    return true;
  }

  // EC2 protocol: dotted keys, lists numbered from 1 (serialize.py EC2Serializer).
  void ec2_value(QueryForm& form, const Json& value, const std::string& shape_name,
                 const std::string& prefix) {
    const json& sh = shape(shape_name);
    const std::string type = sh.value("type", "string");
    if (type == "structure") {
      if (!check_structure(sh, value, prefix)) return;
      for (const auto& [key, v] : value.items()) {
        if (v.is_null()) continue;
        const json& m = sh["members"][key];
        std::string name = key;
        if (m.contains("queryName")) {
          name = m["queryName"].get<std::string>();
        } else if (m.contains("locationName")) {
          name = m["locationName"].get<std::string>();
          if (!name.empty()) name[0] = static_cast<char>(std::toupper(name[0]));
        }
        ec2_value(form, v, m["shape"].get<std::string>(), prefix.empty() ? name : prefix + "." + name);
      }
    } else if (type == "list") {
      if (!value.is_array()) return fail(prefix, "expected a list");
      for (size_t i = 0; i < value.size(); ++i) {
        ec2_value(form, value[i], sh["member"]["shape"].get<std::string>(),
                  prefix + "." + std::to_string(i + 1));
      }
    } else if (type == "map") {
      fail(prefix, "maps are not supported by the EC2 encoder");
    } else {
      std::string text;
      if (scalar_text(value, sh, prefix, &text)) form.add(prefix, text);
    }
  }

  // JSON protocols: the value with locationName keys, checked against the shape.
  Json json_value(const Json& value, const std::string& shape_name, const std::string& where) {
    const json& sh = shape(shape_name);
    const std::string type = sh.value("type", "string");
    if (type == "structure") {
      Json out = Json::object();
      if (!check_structure(sh, value, where)) return out;
      for (const auto& [key, v] : value.items()) {
        if (v.is_null()) continue;
        const json& m = sh["members"][key];
        std::string name = m.value("locationName", key);
        out[name] = json_value(v, m["shape"].get<std::string>(), where.empty() ? key : where + "." + key);
      }
      return out;
    }
    if (type == "list") {
      Json out = Json::array();
      if (!value.is_array()) {
        fail(where, "expected a list");
        return out;
      }
      for (size_t i = 0; i < value.size(); ++i) {
        out.push_back(json_value(value[i], sh["member"]["shape"].get<std::string>(),
                                 where + "[" + std::to_string(i) + "]"));
      }
      return out;
    }
    if (type == "map") {
      Json out = Json::object();
      if (!value.is_object()) {
        fail(where, "expected a map");
        return out;
      }
      for (const auto& [k, v] : value.items()) {
        out[k] = json_value(v, sh["value"]["shape"].get<std::string>(), where + "." + k);
      }
      return out;
    }
    std::string text;
    scalar_text(value, sh, where, &text);
    return value;
  }
};

// ---- decoding ----

struct Decoder {
  const Service& svc;
  std::string_view op;
  std::string first_error;

  const json& shape(const std::string& name) const { return svc.shapes.at(name); }
  void fail(const std::string& what) {
    if (first_error.empty()) first_error = what;
  }

  Json scalar(std::string_view text, const std::string& type, const std::string& where) {
    if (type == "integer" || type == "long") {
      int64_t v = 0;
      if (!parse_int64(text, &v)) fail(where + " is not an integer");
      return v;
    }
    if (type == "boolean") {
      if (text != "true" && text != "false") fail(where + " is not a boolean");
      return text == "true";
    }
    if (type == "double" || type == "float") {
      char* end = nullptr;
      std::string s(text);
      double d = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0') fail(where + " is not a number");
      return d;
    }
    return std::string(text);
  }

  // EC2 XML: a structure's members are child elements named by locationName (or the
  // member name); a list is its element's <item> children (or flattened siblings).
  Json xml_value(pugi::xml_node node, const std::string& shape_name, const std::string& where) {
    const json& sh = shape(shape_name);
    const std::string type = sh.value("type", "string");
    if (type == "structure") {
      Json out = Json::object();
      if (!sh.contains("members")) return out;
      for (const auto& [key, m] : sh["members"].items()) {
        const std::string& member_shape = m["shape"].get_ref<const std::string&>();
        std::string name = m.value("locationName", key);
        const json& msh = shape(member_shape);
        if (msh.value("type", "") == "list" && (m.value("flattened", false) || msh.value("flattened", false))) {
          Json items = Json::array();
          for (pugi::xml_node c : node.children()) {
            if (local_name(c) == name) items.push_back(xml_value_of_list_member(c, msh, where + "." + key));
          }
          if (!items.empty()) out[key] = std::move(items);
          continue;
        }
        pugi::xml_node child = xml_child(node, name);
        if (!child) continue;
        out[key] = xml_value(child, member_shape, where + "." + key);
      }
      return out;
    }
    if (type == "list") {
      Json out = Json::array();
      std::string item = sh["member"].value("locationName", "member");
      for (pugi::xml_node c : node.children()) {
        if (c.type() == pugi::node_element && local_name(c) == item) {
          out.push_back(xml_value_of_list_member(c, sh, where));
        }
      }
      return out;
    }
    if (type == "map") {
      fail(where + ": maps are not supported in XML answers");
      return Json::object();
    }
    return scalar(node.child_value(), type, where);
  }
  Json xml_value_of_list_member(pugi::xml_node node, const json& list_shape, const std::string& where) {
    return xml_value(node, list_shape["member"]["shape"].get<std::string>(), where + "[]");
  }

  // JSON answers: members by locationName, types checked against the model.
  Json json_value(const json& value, const std::string& shape_name, const std::string& where) {
    const json& sh = shape(shape_name);
    const std::string type = sh.value("type", "string");
    if (type == "structure") {
      Json out = Json::object();
      if (!value.is_object()) {
        fail(where + " is not an object");
        return out;
      }
      if (!sh.contains("members")) return out;
      for (const auto& [key, m] : sh["members"].items()) {
        if (m.contains("location")) continue;  // headers / status code: not in the body
        std::string name = m.value("locationName", key);
        auto it = value.find(name);
        if (it == value.end() || it->is_null()) continue;
        out[key] = json_value(*it, m["shape"].get<std::string>(), where + "." + key);
      }
      return out;
    }
    if (type == "list") {
      Json out = Json::array();
      if (!value.is_array()) {
        fail(where + " is not a list");
        return out;
      }
      for (const auto& v : value) out.push_back(json_value(v, sh["member"]["shape"].get<std::string>(), where + "[]"));
      return out;
    }
    if (type == "map") {
      Json out = Json::object();
      if (!value.is_object()) {
        fail(where + " is not a map");
        return out;
      }
      for (const auto& [k, v] : value.items()) out[k] = json_value(v, sh["value"]["shape"].get<std::string>(), where + "." + k);
      return out;
    }
    if (type == "integer" || type == "long") {
      if (value.is_number_integer()) return value.get<int64_t>();
      if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>()) {
        return static_cast<int64_t>(value.get<double>());
      }
      if (value.is_string()) return scalar(value.get<std::string>(), type, where);
      fail(where + " is not an integer");
      return 0;
    }
    if (type == "boolean") {
      if (value.is_boolean()) return value.get<bool>();
      fail(where + " is not a boolean");
      return false;
    }
    if (type == "double" || type == "float" || type == "timestamp") {
      if (value.is_number()) return value.get<double>();
      if (value.is_string()) return value.get<std::string>();
      fail(where + " is not a number");
      return 0;
    }
    if (value.is_string()) return value.get<std::string>();
    fail(where + " is not a string");
    return "";
  }
};

const json* find_operation(const Service& svc, std::string_view operation) {
  auto it = svc.operations.find(std::string(operation));
  return it == svc.operations.end() ? nullptr : &*it;
}

// The name of the output's next-token member, or "".
std::string next_token_member(const Service& svc, const json& op) {
  if (!op.contains("output")) return {};
  const json& sh = svc.shapes.at(op["output"]["shape"].get<std::string>());
  for (const char* name : {"NextToken", "nextToken"}) {
    if (sh.contains("members") && sh["members"].contains(name)) return name;
  }
  return {};
}

}  // namespace

bool Service::has(std::string_view operation) const { return find_operation(*this, operation); }

Result<Service> parse_service(std::string_view name, std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("metadata") || !doc.contains("operations") ||
      !doc.contains("shapes")) {
    return make_error("AWS model " + std::string(name) + " is not a service model");
  }
  Service s;
  s.name = std::string(name);
  const json& meta = doc["metadata"];
  std::string protocol = meta.value("protocol", "");
  if (protocol == "ec2") {
    s.protocol = Protocol::kEc2;
  } else if (protocol == "query") {
    s.protocol = Protocol::kQuery;
  } else if (protocol == "json") {
    s.protocol = Protocol::kJson;
  } else if (protocol == "rest-json") {
    s.protocol = Protocol::kRestJson;
  } else {
    return make_error("AWS model " + s.name + ": unsupported protocol '" + protocol + "'");
  }
  s.api_version = meta.value("apiVersion", "");
  s.target_prefix = meta.value("targetPrefix", "");
  s.json_version = meta.value("jsonVersion", "1.1");
  s.operations = std::move(doc["operations"]);
  s.shapes = std::move(doc["shapes"]);
  // Every shape a member names must exist, or encoding would throw later.
  for (const auto& [shape_name, sh] : s.shapes.items()) {
    std::vector<const json*> refs;
    if (sh.contains("members")) {
      for (const auto& [k, m] : sh["members"].items()) refs.push_back(&m);
    }
    for (const char* part : {"member", "key", "value"}) {
      if (sh.contains(part)) refs.push_back(&sh[part]);
    }
    for (const json* r : refs) {
      if (!r->contains("shape") || !s.shapes.contains((*r)["shape"].get<std::string>())) {
        return make_error("AWS model " + s.name + ": shape " + shape_name + " names a missing shape");
      }
    }
  }
  return s;
}

const Service& ec2() {
  static const Service& s = embedded("ec2", amibake_model_ec2_start, amibake_model_ec2_end);
  return s;
}
const Service& ssm() {
  static const Service& s = embedded("ssm", amibake_model_ssm_start, amibake_model_ssm_end);
  return s;
}
const Service& batch() {
  static const Service& s = embedded("batch", amibake_model_batch_start, amibake_model_batch_end);
  return s;
}
const Service& kms() {
  static const Service& s = embedded("kms", amibake_model_kms_start, amibake_model_kms_end);
  return s;
}

Result<AwsRequest> encode(const Service& svc, std::string_view operation, const Json& input) {
  const json* op = find_operation(svc, operation);
  if (!op) return bad_input(svc, operation, "(operation)", "not in the embedded model");
  Encoder enc{svc, operation};
  AwsRequest r;
  r.service = svc.name;
  r.operation = std::string(operation);
  r.protocol = svc.protocol;
  r.method = (*op)["http"].value("method", "POST");
  std::string input_shape = op->contains("input") ? (*op)["input"]["shape"].get<std::string>() : "";
  const json empty_shape = {{"type", "structure"}, {"members", json::object()}};
  const json& sh = input_shape.empty() ? empty_shape : svc.shapes.at(input_shape);

  // Idempotency: a token member makes a create safe to resend only when it is given.
  bool idempotent = !operation.starts_with("Run");
  if (sh.contains("members")) {
    for (const auto& [k, m] : sh["members"].items()) {
      if (m.value("idempotencyToken", false) && !input.contains(k)) idempotent = false;
    }
  }
  r.idempotent = idempotent;

  if (svc.protocol == Protocol::kEc2 || svc.protocol == Protocol::kQuery) {
    QueryForm form(operation, svc.api_version);
    if (!input_shape.empty()) enc.ec2_value(form, input, input_shape, "");
    if (!enc.status) return enc.status.error();
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    r.body = form.encode();
    r.path = "/";
    return r;
  }
  if (svc.protocol == Protocol::kJson) {
    Json body = input_shape.empty() ? Json::object() : enc.json_value(input, input_shape, "");
    if (!enc.status) return enc.status.error();
    r.path = "/";
    r.headers.emplace_back("Content-Type", "application/x-amz-json-" + svc.json_version);
    r.headers.emplace_back("X-Amz-Target", svc.target_prefix + "." + std::string(operation));
    r.body = dump_no_throw(body);
    return r;
  }
  // REST-JSON: members located in the URI, query string or headers go there; the
  // rest form the JSON body.
  std::string uri = (*op)["http"].value("requestUri", "/");
  Json body = Json::object();
  if (!input_shape.empty()) {
    if (!enc.check_structure(sh, input, "")) return enc.status.error();
    for (const auto& [key, v] : input.items()) {
      const json& m = sh["members"][key];
      std::string loc = m.value("location", "");
      std::string name = m.value("locationName", key);
      if (loc.empty()) {
        body[name] = enc.json_value(v, m["shape"].get<std::string>(), key);
        continue;
      }
      std::string text;
      if (!enc.scalar_text(v, svc.shapes.at(m["shape"].get<std::string>()), key, &text)) break;
      if (loc == "uri") {
        std::string label = "{" + name + "}";
        size_t at = uri.find(label);
        if (at == std::string::npos) return bad_input(svc, operation, key, "no such URI label");
        uri.replace(at, label.size(), sigv4::uri_encode(text));
      } else if (loc == "querystring") {
        if (!r.query.empty()) r.query += '&';
        r.query += sigv4::uri_encode(name) + "=" + sigv4::uri_encode(text);
      } else if (loc == "header") {
        r.headers.emplace_back(name, text);
      }
    }
    if (!enc.status) return enc.status.error();
  }
  size_t q = uri.find('?');
  if (q != std::string::npos) {
    if (!r.query.empty()) r.query = "&" + r.query;
    r.query = uri.substr(q + 1) + r.query;
    uri.resize(q);
  }
  r.path = uri;
  if (!body.empty() || r.method == "POST" || r.method == "PUT") {
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = dump_no_throw(body);
  }
  return r;
}

Result<Json> decode(const Service& svc, std::string_view operation, std::string_view body) {
  const json* op = find_operation(svc, operation);
  if (!op) return bad_input(svc, operation, "(operation)", "not in the embedded model");
  if (!op->contains("output")) return Json::object();
  const std::string out_shape = (*op)["output"]["shape"].get<std::string>();
  Decoder dec{svc, operation, {}};
  Json out;
  if (svc.protocol == Protocol::kEc2 || svc.protocol == Protocol::kQuery) {
    AMIBAKE_ASSIGN(XmlAnswer a, parse_xml_answer(svc.name, operation, body));
    pugi::xml_node root = a.root();
    if (op->at("output").contains("resultWrapper")) {
      root = xml_child(root, (*op)["output"]["resultWrapper"].get<std::string>());
    }
    out = dec.xml_value(root, out_shape, "answer");
  } else {
    AMIBAKE_ASSIGN(json doc, parse_json_answer(svc.name, operation, body));
    out = dec.json_value(doc, out_shape, "answer");
  }
  if (!dec.first_error.empty()) return malformed_answer(svc.name, operation, dec.first_error);
  return out;
}

Result<Json> call(AwsClient& client, const Service& svc, std::string_view operation,
                  const Json& input) {
  AMIBAKE_ASSIGN(AwsRequest request, encode(svc, operation, input));
  AMIBAKE_ASSIGN(AwsResponse response, client.send(request));
  return decode(svc, operation, response.body);
}

Result<Json> call_all_pages(AwsClient& client, const Service& svc, std::string_view operation,
                            Json input) {
  const json* op = find_operation(svc, operation);
  if (!op) return bad_input(svc, operation, "(operation)", "not in the embedded model");
  const std::string token = next_token_member(svc, *op);
  Json all = Json::object();
  for (int page = 0;; ++page) {
    AMIBAKE_ASSIGN(Json out, call(client, svc, operation, input));
    for (auto& [k, v] : out.items()) {
      if (k == token) continue;
      if (v.is_array() && all.contains(k)) {
        for (auto& item : v) all[k].push_back(std::move(item));
      } else {
        all[k] = std::move(v);
      }
    }
    if (token.empty() || !out.contains(token) || out[token].get<std::string>().empty()) break;
    if (page >= 1000) {
      return make_error(svc.name + " " + std::string(operation) + ": more than 1000 pages",
                        "the service keeps answering NextToken; try again later");
    }
    input[token] = out[token];
  }
  return all;
}

}  // namespace amibake::aws::model
