// Helpers shared by the EC2 handler files (ec2.cc, ec2_images.cc, ec2_storage.cc).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "emulator/service.h"

namespace amibake::emu {

// Returns true when every filter matches: tag filters against `tags`, the rest
// against field(name) (which returns the resource's values for a filter name).
bool matches_filters(const std::vector<Filter>& filters, const Tags& tags,
                     const std::function<std::vector<std::string>(const std::string&)>& field);

// MaxResults/NextToken paging over `total` items (NextToken is an offset).
struct Page {
  size_t begin = 0, end = 0;
  std::string next_token;
  std::optional<Reply> error;
};
Page paginate(const Call& call, size_t total);

// Returns true when the account may use snapshot `s`: its own, or a catalog (Amazon)
// snapshot unless --unshared-catalog-snapshots.
bool snapshot_visible(Context& ctx, const Snapshot& s);

// Validates one EBS volume description as CreateVolume/RegisterImage do (mu() held): type,
// iops, throughput, KMS key, size for the type, and the snapshot (visible, completed, not
// larger than the volume). `device` is empty for CreateVolume, else the mapping's device.
std::optional<Reply> validate_ebs(Context& ctx, const Call& call, const std::string& device,
                                  const std::string& snapshot_id, const std::string& volume_type,
                                  int size, int iops, int throughput, bool encrypted,
                                  const std::string& kms_key_id);

// Copies snapshot `source_id` of world `from` (this region's or another's) to a new
// pending snapshot of this region owned by the caller (mu() held), sharing its content
// layer (no bytes move); *completes_at is raised to the copy's completion time. An
// encrypted copy records `kms_key_id` (see kms_key_arn). Returns its id.
Result<std::string> copy_snapshot_locked(Context& ctx, World& from, const std::string& source_id,
                                         const std::string& description, bool encrypted,
                                         const std::string& kms_key_id, const Tags& tags,
                                         double* completes_at);

// Deletes an owned snapshot, and the layers nothing needs any more (mu() held); false
// if absent.
bool delete_snapshot_locked(Context& ctx, const std::string& id);

// Returns the id of an image whose mappings use `snapshot_id`, or "".
std::string image_using_snapshot(Context& ctx, const std::string& snapshot_id);

// The key ARN EC2 records for the KMS key `given` in `region`: a key id, alias or ARN
// resolves to a key ARN (stable per alias); "" and alias/aws/ebs are the account's
// AWS-managed EBS key.
std::string kms_key_arn(const std::string& region, const std::string& given);
// True when `arn` is the AWS-managed aws/ebs key of `region` (such snapshots and the
// AMIs they back cannot be shared with other accounts).
bool is_aws_managed_ebs_key(const std::string& region, const std::string& arn);

// Seconds (at speed 1) to move `bytes` at `mib_per_s`, plus a fixed `base`.
double transfer_seconds(int64_t bytes, double mib_per_s, double base);

}  // namespace amibake::emu
