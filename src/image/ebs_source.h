// A snapshot read through EBS direct as a LazyDisk's block source: GetSnapshotBlock with the
// block's token from ListSnapshotBlocks, checksum checked by the client. Shared by the
// bake's lazy install (bake/lazy_fetch.cc) and verify --boot's lazy root (verify/verify.cc).
//
// Header-only on purpose: it is glue between the AWS client and the image library, and
// amibake_image does not link the AWS client; only code that links both includes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "aws/ebs.h"
#include "image/lazy_disk.h"

namespace amibake::image {

class EbsBlockSource : public BlockSource {
 public:
  // `tokens`: block index -> its ListSnapshotBlocks token. `client` must outlive this.
  EbsBlockSource(aws::AwsClient& client, std::string snapshot,
                 std::map<uint64_t, std::string> tokens)
      : client_(client), snapshot_(std::move(snapshot)), tokens_(std::move(tokens)) {}

  // The client does the retries (with per-attempt timeouts); a final failure is final.
  Result<std::string> fetch(uint64_t index) override {
    auto t = tokens_.find(index);
    if (t == tokens_.end()) return make_error("block " + std::to_string(index) + " is not listed");
    AMIBAKE_ASSIGN(auto block, aws::ebs::get_snapshot_block(
                                   client_, snapshot_, static_cast<int64_t>(index), t->second));
    return std::move(block.data);
  }

 private:
  aws::AwsClient& client_;
  std::string snapshot_;
  std::map<uint64_t, std::string> tokens_;
};

}  // namespace amibake::image
