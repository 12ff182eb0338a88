// Reading the body of a successful AWS answer: XML (EC2/Query) and JSON (JSON 1.1,
// REST-JSON).
//
// Answers come from the network, so nothing here trusts them: a malformed,
// truncated or wrongly-typed answer becomes an Error naming the operation
// ("ec2 DescribeImages: malformed answer: ..."), never a crash or an exception.
// Fields that are absent read as empty / zero / unset, as the AWS SDKs treat them;
// fields that are present but unreadable (a size of "abc") are errors.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace amibake::aws {

// Returns the error for a malformed answer: "<service> <operation>: malformed answer:
// <what>", with a hint about the endpoint.
Error malformed_answer(std::string_view service, std::string_view operation, std::string_view what);

// ---- XML ----

// A parsed XML document (movable; pugi::xml_document itself is not on all versions).
struct XmlAnswer {
  std::unique_ptr<pugi::xml_document> doc;
  pugi::xml_node root() const { return doc->document_element(); }
};

// Parses `body`; fails when it is not well-formed XML or its root element's local name
// is not `<operation>Response` (EC2 and Query answers are all shaped so).
Result<XmlAnswer> parse_xml_answer(std::string_view service, std::string_view operation,
                                   std::string_view body);

// Returns the local part of an element name ("ec2:item" -> "item").
std::string_view local_name(pugi::xml_node node);
// Returns the first child element of `node` whose local name is `name` (or an empty node).
pugi::xml_node xml_child(pugi::xml_node node, std::string_view name);
// Returns the child elements named "item" of `node`'s child `set` (EC2's list shape).
std::vector<pugi::xml_node> xml_items(pugi::xml_node node, std::string_view set);

// Reads typed fields of XML elements, remembering the first malformed one so a
// parser can read everything and check once.
class XmlReader {
 public:
  XmlReader(std::string_view service, std::string_view operation);
  // Text of child `name`, "" when absent.
  std::string str(pugi::xml_node node, std::string_view name);
  // Child `name` as an integer; unset when absent or empty; error when not a number.
  std::optional<int64_t> opt_int(pugi::xml_node node, std::string_view name);
  int64_t integer(pugi::xml_node node, std::string_view name) {
    return opt_int(node, name).value_or(0);
  }
  // Child `name` as "true"/"false"; unset when absent; error otherwise.
  std::optional<bool> opt_bool(pugi::xml_node node, std::string_view name);
  bool boolean(pugi::xml_node node, std::string_view name) {
    return opt_bool(node, name).value_or(false);
  }
  // Records a malformed-answer error (the first one wins).
  void fail(std::string what);
  // Ok, or the first malformed-answer error.
  Status status() const;

 private:
  std::string service_;
  std::string operation_;
  std::string first_error_;
};

// ---- JSON ----

// Parses `body` as a JSON object (no exceptions: nlohmann's non-throwing parse). An
// empty body counts as {} (some REST-JSON answers have none).
Result<nlohmann::json> parse_json_answer(std::string_view service, std::string_view operation,
                                         std::string_view body);

// Reads typed members of JSON objects with the same first-error discipline. Never
// throws: types are checked before every access.
class JsonReader {
 public:
  JsonReader(std::string_view service, std::string_view operation);
  // Member `key` as a string; "" when absent or null; error when another type.
  std::string str(const nlohmann::json& obj, std::string_view key);
  // Member `key` as an integer. Accepts a JSON integer, an integral float, and — for
  // servers such as moto and LocalStack that quote numbers — a decimal string.
  std::optional<int64_t> opt_int(const nlohmann::json& obj, std::string_view key);
  int64_t integer(const nlohmann::json& obj, std::string_view key) {
    return opt_int(obj, key).value_or(0);
  }
  // Member `key` as a number (timestamps: epoch seconds, possibly fractional).
  std::optional<double> opt_number(const nlohmann::json& obj, std::string_view key);
  // Member `key` as a boolean; unset when absent.
  std::optional<bool> opt_bool(const nlohmann::json& obj, std::string_view key);
  // Member `key` when it is an array (nullptr when absent or null; error otherwise).
  const nlohmann::json* array(const nlohmann::json& obj, std::string_view key);
  // Member `key` when it is an object (nullptr when absent or null; error otherwise).
  const nlohmann::json* object(const nlohmann::json& obj, std::string_view key);
  void fail(std::string what);
  Status status() const;

 private:
  const nlohmann::json* member(const nlohmann::json& obj, std::string_view key);
  std::string service_;
  std::string operation_;
  std::string first_error_;
};

// Returns `j` serialized compactly. Never throws: a string that is not valid UTF-8
// (which nlohmann's dump() would throw on) has its bad bytes replaced by U+FFFD; AWS
// would reject such a value anyway, and an exception must not escape a request encoder.
std::string dump_no_throw(const nlohmann::ordered_json& j);

// Parses a whole decimal integer (optional '-'); false on anything else.
bool parse_int64(std::string_view text, int64_t* out);

}  // namespace amibake::aws
