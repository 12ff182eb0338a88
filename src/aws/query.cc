// EC2/Query form encoding (see query.h).
//
// Percent-encoding is botocore's (urlencode: quote_plus): the RFC 3986 unreserved set kept,
// everything else as %XX, except a space, which is '+'. AWS takes %20 as well (the
// signature covers the body's bytes), but moto re-encodes the parsed form to check the
// signature and refused every value with a space sent as %20.
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

namespace {

// uri_encode writes a '%' of the input as "%25", so "%20" in its output is a space.
std::string form_encode(std::string_view s) {
  std::string encoded = sigv4::uri_encode(s), out;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded.compare(i, 3, "%20") == 0) {
      out += '+';
      i += 2;
    } else {
      out += encoded[i];
    }
  }
  return out;
}

}  // namespace

std::string QueryForm::encode() const {
  std::string out;
  for (const auto& [key, value] : fields_) {
    if (!out.empty()) out += '&';
    out += form_encode(key);
    out += '=';
    out += form_encode(value);
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
