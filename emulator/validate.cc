// AWS's own validation rules, and the one table of how each refusal is answered.
//
// Where the rules come from (see also emulator/README.md, "Validation"):
// - AMI names and descriptions: the RegisterImage / CopyImage API reference (Name: 3-128
//   characters of letters, numbers, ( ) [ ] space . / - ' @ _; Description up to 255).
// - Device names: the Linux rows of "Device names for volumes on Amazon EC2 instances"
//   (HVM: /dev/sd[a-z], /dev/xvd[a-d][a-z], /dev/xvd[e-z], and the root names /dev/sda1
//   and /dev/xvda; paravirtual: /dev/sd[a-z], /dev/sd[a-z][1-15], /dev/hd[a-z],
//   /dev/hd[a-z][1-15]). /dev/xvd[b-d] single letters are accepted too: older editions
//   of the page list /dev/xvd[b-c][a-z] beside /dev/sd[a-z] with sd↔xvd being the same
//   device on Xen, and EC2 accepts /dev/xvdb for HVM data volumes in practice. Partition
//   names such as /dev/sdf1 or /dev/xvda1 are refused on HVM, as EC2 does ("Invalid
//   device name /dev/sde1").
// - Volume sizes: botocore's EC2 model, CreateVolume Size (gp2 1-16384 GiB, gp3 1-65536,
//   io1 4-16384, io2 4-65536, st1/sc1 125-16384, standard 1-1024), as src/bake/recipe.cc.
// - KMS keys: the EC2 API's KmsKeyId documentation (key id, alias, key ARN, alias ARN;
//   multi-Region key ids "mrk-"), and botocore's ebs model for KmsKeyArn (pattern
//   arn:aws[a-z\-]*:kms:.*:[0-9]{12}:key/.*).
// - Tags: "Tag restrictions" in the EC2 user guide (50 per resource, key 1-128, value
//   <= 256, "aws:" reserved in any case) and botocore's ebs model (TagKey max 127,
//   TagValue max 255), whose length errors EBS answers in the request-validation style
//   "1 validation error detected: Value ... at 'tags.1.member.key' ...".
#include "emulator/validate.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <regex>

namespace amibake::emu {
namespace {

// How one refusal is answered: EC2 status and code (and the code inside a block device
// mapping, when it differs), and EBS direct's status, code and Reason.
struct Answer {
  Refusal what;
  int ec2_status;
  const char* ec2_code;
  const char* ec2_mapping_code;  // nullptr = ec2_code
  int ebs_status;
  const char* ebs_code;
  const char* ebs_reason;
};

// Codes: EC2 from "Error codes for the Amazon EC2 API" (InvalidAMIName.Malformed,
// InvalidAMIName.Duplicate, InvalidBlockDeviceMapping, InvalidSnapshot.NotFound,
// IncorrectState, TagLimitExceeded, InvalidParameterValue); EBS from botocore's ebs
// model (ValidationException and its ValidationExceptionReason enum,
// ResourceNotFoundException with SNAPSHOT_NOT_FOUND).
constexpr Answer kAnswers[] = {
    {Refusal::kAmiNameMalformed, 400, "InvalidAMIName.Malformed", nullptr, 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kAmiNameDuplicate, 400, "InvalidAMIName.Duplicate", nullptr, 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kDescriptionTooLong, 400, "InvalidParameterValue", nullptr, 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kDeviceNameInvalid, 400, "InvalidParameterValue", "InvalidBlockDeviceMapping", 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kDeviceNameDuplicate, 400, "InvalidBlockDeviceMapping", nullptr, 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kRootDeviceNotMapped, 400, "InvalidBlockDeviceMapping", nullptr, 400,
     "ValidationException", "INVALID_PARAMETER_VALUE"},
    {Refusal::kVolumeSizeOutOfRange, 400, "InvalidParameterValue", "InvalidBlockDeviceMapping", 400,
     "ValidationException", "INVALID_VOLUME_SIZE"},
    {Refusal::kVolumeSmallerThanSnapshot, 400, "InvalidParameterValue", "InvalidBlockDeviceMapping",
     400, "ValidationException", "INVALID_VOLUME_SIZE"},
    {Refusal::kSnapshotNotFound, 400, "InvalidSnapshot.NotFound", nullptr, 404,
     "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND"},
    {Refusal::kSnapshotNotCompleted, 400, "IncorrectState", nullptr, 400, "ValidationException",
     "INVALID_SNAPSHOT_ID"},
    {Refusal::kKmsKeyMalformed, 400, "InvalidParameterValue", nullptr, 400, "ValidationException",
     "INVALID_CUSTOMER_KEY"},
    {Refusal::kTagLimitExceeded, 400, "TagLimitExceeded", nullptr, 400, "ValidationException",
     "INVALID_TAG"},
    {Refusal::kTagInvalid, 400, "InvalidParameterValue", nullptr, 400, "ValidationException",
     "INVALID_TAG"},
};

// The table has one row per Refusal, in the enum's order, so a lookup is an index.
constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < std::size(kAnswers); ++i) {
    if (static_cast<size_t>(kAnswers[i].what) != i) return false;
  }
  return std::size(kAnswers) == static_cast<size_t>(Refusal::kTagInvalid) + 1;
}
static_assert(rows_in_enum_order(), "kAnswers needs one row per Refusal, in enum order");

const Answer& answer_for(Refusal what) { return kAnswers[static_cast<size_t>(what)]; }

// Counts Unicode characters (code points) of UTF-8 text, as AWS's length limits do.
size_t characters(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

bool starts_with_aws(const std::string& key) {
  if (key.size() < 4) return false;
  std::string head = key.substr(0, 4);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return head == "aws:";
}

struct SizeLimit {
  const char* type;
  int min, max;
};
constexpr SizeLimit kSizeLimits[] = {
    {"gp2", 1, 16384},   {"gp3", 1, 65536},   {"io1", 4, 16384},     {"io2", 4, 65536},
    {"st1", 125, 16384}, {"sc1", 125, 16384}, {"standard", 1, 1024},
};

}  // namespace

const TagRules kEc2TagRules = {128, 256, /*framework_messages=*/false};
const TagRules kEbsTagRules = {127, 255, /*framework_messages=*/true};

Reply refuse(const Call& call, const Violation& v, Where where) {
  const Answer& a = answer_for(v.what);
  if (call.protocol == Protocol::kRestJson) {
    return error_reply(call, a.ebs_status, a.ebs_code, v.message, {{"Reason", a.ebs_reason}});
  }
  const char* code =
      where == Where::kMapping && a.ec2_mapping_code ? a.ec2_mapping_code : a.ec2_code;
  return error_reply(call, a.ec2_status, code, v.message);
}

Verdict check_image_name(const std::string& name) {
  static const std::regex kName(R"([a-zA-Z0-9()\[\] ./'@_-]{3,128})");
  if (std::regex_match(name, kName)) return std::nullopt;
  return Violation{Refusal::kAmiNameMalformed,
                   "AMI names must be between 3 and 128 characters long, and may contain "
                   "letters, numbers, '(', ')', '[', ']', ' ', '.', '/', '-', ''', '@' and '_'"};
}

Verdict check_image_name_free(const World& world, const std::string& owner,
                              const std::string& name) {
  for (const auto& [id, image] : world.images) {
    if (image.owner_id == owner && image.name == name) {
      return Violation{Refusal::kAmiNameDuplicate,
                       "AMI name " + name + " is already in use by AMI " + id};
    }
  }
  return std::nullopt;
}

Verdict check_description(const std::string& description) {
  if (characters(description) <= 255) return std::nullopt;
  return Violation{Refusal::kDescriptionTooLong,
                   "Value for parameter description is invalid. Length of " +
                       std::to_string(characters(description)) +
                       " exceeds the maximum of 255 characters."};
}

Verdict check_device_name(const std::string& device, const std::string& virtualization_type) {
  static const std::regex kHvm(R"(/dev/(sd[a-z]|sda1|xvd[a-z]|xvd[a-d][a-z]))");
  static const std::regex kParavirtual(R"(/dev/(sd|hd)[a-z]([1-9]|1[0-5])?)");
  const std::regex& allowed = virtualization_type == "paravirtual" ? kParavirtual : kHvm;
  if (std::regex_match(device, allowed)) return std::nullopt;
  return Violation{Refusal::kDeviceNameInvalid, "Invalid device name " + device};
}

Verdict check_volume_size(const std::string& volume_type, int size_gib) {
  if (size_gib == 0) return std::nullopt;
  std::string type = volume_type.empty() ? "gp2" : volume_type;
  for (const auto& limit : kSizeLimits) {
    if (type != limit.type) continue;
    if (size_gib < limit.min) {
      return Violation{Refusal::kVolumeSizeOutOfRange, "Volume of " + std::to_string(size_gib) +
                                                           "GiB is too small for volume "
                                                           "type " +
                                                           type + "; minimum is " +
                                                           std::to_string(limit.min) + "GiB."};
    }
    if (size_gib > limit.max) {
      return Violation{Refusal::kVolumeSizeOutOfRange, "Volume of " + std::to_string(size_gib) +
                                                           "GiB is too large for volume "
                                                           "type " +
                                                           type + "; maximum is " +
                                                           std::to_string(limit.max) + "GiB."};
    }
  }
  return std::nullopt;  // unknown types are refused by the volume type check
}

Verdict check_kms_key(const std::string& key, KmsKeyForm form) {
  // A key id is a UUID, a multi-Region key id "mrk-" + 32 hex digits.
  static const std::string kKeyId =
      "([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|"
      "mrk-[0-9a-fA-F]{32})";
  static const std::string kAlias = "alias/[a-zA-Z0-9/_-]{1,250}";
  static const std::string kArnHead = "arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:";
  static const std::regex kAny(kKeyId + "|" + kAlias + "|" + kArnHead + "(key/" + kKeyId + "|" +
                               kAlias + ")");
  static const std::regex kEbsKeyArn(R"(arn:aws[a-z\-]*:kms:.*:[0-9]{12}:key/.*)");
  if (form == KmsKeyForm::kKeyArn) {
    if (!key.empty() && key.size() <= 2048 && std::regex_match(key, kEbsKeyArn)) {
      return std::nullopt;
    }
    return Violation{Refusal::kKmsKeyMalformed,
                     "1 validation error detected: Value at 'kmsKeyArn' failed to satisfy "
                     "constraint: Member must satisfy regular expression pattern: "
                     "arn:aws[a-z\\-]*:kms:.*:[0-9]{12}:key/.*"};
  }
  if (std::regex_match(key, kAny)) return std::nullopt;
  return Violation{Refusal::kKmsKeyMalformed,
                   "Value (" + key +
                       ") for parameter kmsKeyId is invalid. Expected a key id, "
                       "alias/NAME, a key ARN or an alias ARN."};
}

Verdict check_tags(const Tags& existing, const TagList& adding, const TagRules& rules) {
  auto framework = [](const std::string& value, size_t index, const char* member,
                      const std::string& constraint) {
    return "1 validation error detected: Value '" + value + "' at 'tags." + std::to_string(index) +
           ".member." + member + "' failed to satisfy constraint: " + constraint;
  };
  size_t index = 0;
  for (const auto& [key, value] : adding) {
    ++index;
    if (key.empty()) {
      return Violation{
          Refusal::kTagInvalid,
          rules.framework_messages
              ? framework(key, index, "key",
                          "Member must satisfy regular expression pattern: ^[\\S\\s]+$")
              : "Tag keys must not be empty"};
    }
    if (characters(key) > rules.max_key) {
      std::string limit = std::to_string(rules.max_key);
      return Violation{Refusal::kTagInvalid,
                       rules.framework_messages
                           ? framework(key, index, "key",
                                       "Member must have length less than or equal to " + limit)
                           : "Tag key exceeds the maximum length of " + limit + " characters"};
    }
    if (characters(value) > rules.max_value) {
      std::string limit = std::to_string(rules.max_value);
      return Violation{Refusal::kTagInvalid,
                       rules.framework_messages
                           ? framework(value, index, "value",
                                       "Member must have length less than or equal to " + limit)
                           : "Tag value exceeds the maximum length of " + limit + " characters"};
    }
    if (starts_with_aws(key)) {
      return Violation{Refusal::kTagInvalid,
                       "Value ( " + key +
                           " ) for parameter key is invalid. Tag keys starting "
                           "with 'aws:' are reserved for internal use"};
    }
  }
  Tags after = existing;
  for (const auto& [key, value] : adding) after[key] = value;
  if (after.size() > 50) {
    return Violation{Refusal::kTagLimitExceeded,
                     "The maximum number of Tags for a resource has been reached: a resource "
                     "can have at most 50 tags (this request would leave " +
                         std::to_string(after.size()) + ")."};
  }
  return std::nullopt;
}

Verdict check_tags(const Tags& existing, const Tags& adding, const TagRules& rules) {
  return check_tags(existing, TagList(adding.begin(), adding.end()), rules);
}

}  // namespace amibake::emu
