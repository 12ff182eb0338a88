// EC2/Query form encoding (see query.h).
//
// Percent-encoding uses sigv4::uri_encode: the form body must be encoded exactly as
// the signer's canonical query would encode it, and botocore encodes form values
// with the same RFC 3986 unreserved set, so one encoder serves both.
#include "aws/query.h"

#include "aws/sigv4.h"

namespace amibake::aws {

Filter tag_filter(std::string_view key, std::vector<std::string> values) {
  return Filter{"tag:" + std::string(key), std::move(values)};
}

Filter tag_key_filter(std::string_view key) { return Filter{"tag-key", {std::string(key)}}; }

QueryForm::QueryForm(std::string_view action, std::string_view version) {
  add("Action", std::string(action));
  add("Version", std::string(version));
}

void QueryForm::add(std::string key, std::string value) {
  fields_.emplace_back(std::move(key), std::move(value));
}

void QueryForm::add_nonempty(std::string key, const std::string& value) {
  if (!value.empty()) add(std::move(key), value);
}

void QueryForm::add_bool(std::string key, std::optional<bool> value) {
  if (value) add(std::move(key), *value ? "true" : "false");
}

void QueryForm::add_int(std::string key, std::optional<int64_t> value) {
  if (value) add(std::move(key), std::to_string(*value));
}

void QueryForm::add_list(std::string_view prefix, const std::vector<std::string>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    add(std::string(prefix) + "." + std::to_string(i + 1), values[i]);
  }
}

void QueryForm::add_filters(const std::vector<Filter>& filters) {
  for (size_t i = 0; i < filters.size(); ++i) {
    const std::string p = "Filter." + std::to_string(i + 1);
    add(p + ".Name", filters[i].name);
    add_list(p + ".Value", filters[i].values);
  }
}

void QueryForm::add_tags(std::string_view prefix, const std::vector<Tag>& tags) {
  for (size_t i = 0; i < tags.size(); ++i) {
    const std::string p = std::string(prefix) + "." + std::to_string(i + 1);
    add(p + ".Key", tags[i].key);
    add(p + ".Value", tags[i].value);
  }
}

void QueryForm::add_tag_specifications(const std::vector<TagSpecification>& specs) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string p = "TagSpecification." + std::to_string(i + 1);
    add(p + ".ResourceType", specs[i].resource_type);
    add_tags(p + ".Tag", specs[i].tags);
  }
}

std::string QueryForm::encode() const {
  std::string out;
  for (const auto& [key, value] : fields_) {
    if (!out.empty()) out += '&';
    out += sigv4::uri_encode(key);
    out += '=';
    out += sigv4::uri_encode(value);
  }
  return out;
}

AwsRequest make_query_request(std::string service, Protocol protocol, std::string operation,
                              const QueryForm& form, bool idempotent) {
  AwsRequest r;
  r.service = std::move(service);
  r.operation = std::move(operation);
  r.protocol = protocol;
  r.method = "POST";
  r.path = "/";
  r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  r.body = form.encode();
  r.idempotent = idempotent;
  return r;
}

}  // namespace amibake::aws
