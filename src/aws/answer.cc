// Reading AWS answer bodies without trusting them (see answer.h).
//
// The approach: parse the whole body first (pugixml / nlohmann in their
// non-throwing modes), then read fields through small readers that check every type
// before touching a value and remember the first thing that was wrong. Parsers for
// individual operations stay flat lists of field reads and check once at the end, so
// a malformed answer produces one clear error instead of a crash, an exception, or a
// half-filled struct silently returned.
//
// EC2 answers carry a default namespace (xmlns="http://ec2.amazonaws.com/doc/...")
// and other servers may use a prefix, so elements are matched by local name only.
#include "aws/answer.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace amibake::aws {

using nlohmann::json;

Error malformed_answer(std::string_view service, std::string_view operation,
                       std::string_view what) {
  return make_error(std::string(service) + " " + std::string(operation) +
                        ": malformed answer: " + std::string(what),
                    "the endpoint did not answer like AWS; check --endpoint-url / "
                    "AWS_ENDPOINT_URL and retry");
}

bool parse_int64(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, *out);
  return ec == std::errc() && ptr == last;
}

std::string dump_no_throw(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
}

// ---- XML ----

Result<XmlAnswer> parse_xml_answer(std::string_view service, std::string_view operation,
                                   std::string_view body) {
  XmlAnswer answer{std::make_unique<pugi::xml_document>()};
  if (body.empty()) return malformed_answer(service, operation, "empty body, expected XML");
  pugi::xml_parse_result parsed =
      answer.doc->load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return malformed_answer(
        service, operation,
        "XML parse error at byte " + std::to_string(parsed.offset) + ": " + parsed.description());
  }
  pugi::xml_node root = answer.root();
  const std::string expected = std::string(operation) + "Response";
  if (!root || local_name(root) != expected) {
    return malformed_answer(
        service, operation,
        "expected <" + expected + ">, got <" + std::string(root ? root.name() : "") + ">");
  }
  return answer;
}

std::string_view local_name(pugi::xml_node node) {
  std::string_view name = node.name();
  const size_t colon = name.rfind(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node xml_child(pugi::xml_node node, std::string_view name) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && local_name(c) == name) return c;
  }
  return {};
}

std::vector<pugi::xml_node> xml_items(pugi::xml_node node, std::string_view set) {
  std::vector<pugi::xml_node> out;
  pugi::xml_node s = xml_child(node, set);
  for (pugi::xml_node c = s.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && local_name(c) == "item") out.push_back(c);
  }
  return out;
}

XmlReader::XmlReader(std::string_view service, std::string_view operation)
    : service_(service), operation_(operation) {}

std::string XmlReader::str(pugi::xml_node node, std::string_view name) {
  return xml_child(node, name).child_value();
}

std::optional<int64_t> XmlReader::opt_int(pugi::xml_node node, std::string_view name) {
  pugi::xml_node c = xml_child(node, name);
  std::string_view text = c.child_value();
  if (!c || text.empty()) return std::nullopt;
  int64_t v = 0;
  if (!parse_int64(text, &v)) {
    fail("<" + std::string(name) + "> holds '" + std::string(text.substr(0, 40)) +
         "', not an integer");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> XmlReader::opt_bool(pugi::xml_node node, std::string_view name) {
  pugi::xml_node c = xml_child(node, name);
  if (!c) return std::nullopt;
  std::string_view text = c.child_value();
  if (text == "true") return true;
  if (text == "false") return false;
  fail("<" + std::string(name) + "> holds '" + std::string(text.substr(0, 40)) +
       "', not true/false");
  return std::nullopt;
}

void XmlReader::fail(std::string what) {
  if (first_error_.empty()) first_error_ = std::move(what);
}

Status XmlReader::status() const {
  if (first_error_.empty()) return ok();
  return malformed_answer(service_, operation_, first_error_);
}

// ---- JSON ----

Result<json> parse_json_answer(std::string_view service, std::string_view operation,
                               std::string_view body) {
  if (body.empty()) return json::object();
  json j = json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return malformed_answer(service, operation, "body is not valid JSON");
  }
  if (!j.is_object()) {
    return malformed_answer(service, operation,
                            std::string("expected a JSON object, got ") + j.type_name());
  }
  return j;
}

JsonReader::JsonReader(std::string_view service, std::string_view operation)
    : service_(service), operation_(operation) {}

const json* JsonReader::member(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string JsonReader::str(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (!m) return {};
  if (!m->is_string()) {
    fail("\"" + std::string(key) + "\" is a " + m->type_name() + ", expected a string");
    return {};
  }
  return m->get_ref<const std::string&>();
}

std::optional<int64_t> JsonReader::opt_int(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (!m) return std::nullopt;
  if (m->is_number_integer() && !m->is_number_unsigned()) return m->get<int64_t>();
  if (m->is_number_unsigned()) {
    const uint64_t u = m->get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
  } else if (m->is_number_float()) {
    const double d = m->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) {
      return static_cast<int64_t>(d);
    }
  } else if (m->is_string()) {
    int64_t v = 0;
    if (parse_int64(m->get_ref<const std::string&>(), &v)) return v;
  }
  fail("\"" + std::string(key) + "\" is not an integer (" +
       m->dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 40) + ")");
  return std::nullopt;
}

std::optional<double> JsonReader::opt_number(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (!m) return std::nullopt;
  if (m->is_number()) return m->get<double>();
  fail("\"" + std::string(key) + "\" is a " + m->type_name() + ", expected a number");
  return std::nullopt;
}

std::optional<bool> JsonReader::opt_bool(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (!m) return std::nullopt;
  if (m->is_boolean()) return m->get<bool>();
  fail("\"" + std::string(key) + "\" is a " + m->type_name() + ", expected a boolean");
  return std::nullopt;
}

const json* JsonReader::array(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (m && !m->is_array()) {
    fail("\"" + std::string(key) + "\" is a " + m->type_name() + ", expected an array");
    return nullptr;
  }
  return m;
}

const json* JsonReader::object(const json& obj, std::string_view key) {
  const json* m = member(obj, key);
  if (m && !m->is_object()) {
    fail("\"" + std::string(key) + "\" is a " + m->type_name() + ", expected an object");
    return nullptr;
  }
  return m;
}

void JsonReader::fail(std::string what) {
  if (first_error_.empty()) first_error_ = std::move(what);
}

Status JsonReader::status() const {
  if (first_error_.empty()) return ok();
  return malformed_answer(service_, operation_, first_error_);
}

}  // namespace amibake::aws
