// AWS's own validation of what clients send (names, descriptions, device names, volume
// sizes, KMS key ids, tags), so that awsemu refuses what AWS refuses.
//
// Each rule is one function here and is called from every handler that needs it; each
// situation a rule can report is a `Refusal`, and one table in validate.cc says which
// HTTP status, code (and, for EBS direct, Reason) it gets in each protocol. Handlers turn
// a `Violation` into their answer with `refuse`.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "emulator/model.h"
#include "emulator/service.h"

namespace amibake::emu {

// Every situation a rule below can report (the rows of the table in validate.cc).
enum class Refusal {
  kAmiNameMalformed,
  kAmiNameDuplicate,
  kDescriptionTooLong,
  kDeviceNameInvalid,
  kDeviceNameDuplicate,
  kRootDeviceNotMapped,
  kVolumeSizeOutOfRange,
  kVolumeSmallerThanSnapshot,
  kSnapshotNotFound,
  kSnapshotNotCompleted,
  kKmsKeyMalformed,
  kTagLimitExceeded,
  kTagInvalid,  // keep last: validate.cc checks that its table has a row for each
};

// A rule's verdict: which situation, and the message (in AWS's words where known).
struct Violation {
  Refusal what;
  std::string message;
};
using Verdict = std::optional<Violation>;

// Where a value was sent: EC2 answers some situations inside a block device mapping
// with InvalidBlockDeviceMapping rather than the code it uses for a plain parameter.
enum class Where { kParameter, kMapping };

// Returns the error reply for `v` in the protocol of `call`, from the one table.
Reply refuse(const Call& call, const Violation& v, Where where = Where::kParameter);

// ---- rules ---------------------------------------------------------------

// AMI names: 3-128 characters of letters, digits and ( ) [ ] space . / - ' @ _.
Verdict check_image_name(const std::string& name);
// AMI names are unique per region and owner: refuses `name` if `owner` has an image so
// named in `world` (the world is one region).
Verdict check_image_name_free(const World& world, const std::string& owner,
                              const std::string& name);
// Descriptions (of AMIs, and of EBS direct snapshots) are at most 255 characters.
Verdict check_description(const std::string& description);

// Device names a block device mapping or AttachVolume may use on Linux, per
// virtualization type ("hvm" or "paravirtual"), as AWS's "Device names for volumes on
// Amazon EC2 instances" table lists them.
Verdict check_device_name(const std::string& device, const std::string& virtualization_type);

// Volume size limits per volume type (empty type = gp2, EC2's default); `size_gib` 0
// means "not given" and passes.
Verdict check_volume_size(const std::string& volume_type, int size_gib);

// KMS key identifiers. EC2 (KmsKeyId) takes a key id, a multi-Region key id, an alias
// name, a key ARN or an alias ARN; EBS direct (KmsKeyArn) only a key ARN.
enum class KmsKeyForm { kAnyIdentifier, kKeyArn };
Verdict check_kms_key(const std::string& key, KmsKeyForm form);

// One tag as sent, in request order.
using TagList = std::vector<std::pair<std::string, std::string>>;
// Per-service tag limits and message style.
struct TagRules {
  size_t max_key;
  size_t max_value;
  bool framework_messages;  // EBS direct's "1 validation error detected: ..." wording
};
extern const TagRules kEc2TagRules;  // keys <= 128, values <= 256
extern const TagRules kEbsTagRules;  // keys <= 127, values <= 255 (botocore's ebs model)
// Checks the tags `adding` to a resource that already has `existing`: keys 1..max_key
// characters without the reserved "aws:" prefix (any case), values <= max_value, and at
// most 50 tags on the resource afterwards (keys already present are overwritten, not
// counted twice).
Verdict check_tags(const Tags& existing, const TagList& adding, const TagRules& rules);
// The same for a tag map (TagSpecification, which awsemu reads into a map).
Verdict check_tags(const Tags& existing, const Tags& adding, const TagRules& rules);

}  // namespace amibake::emu
