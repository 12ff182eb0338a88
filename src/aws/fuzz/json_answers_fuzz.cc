// libFuzzer target: every SSM and EBS JSON answer parser on arbitrary bytes, plus the
// GetSnapshotBlock reader with the input as block data and fixed headers.
// Checked property: no crash, no sanitizer report, no exception escaping (nlohmann is
// used only in its non-throwing modes).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aws/ebs.h"
#include "aws/ssm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amibake::aws;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)ssm::parse_get_parameter(body);
  (void)ssm::parse_get_parameters(body);
  (void)ssm::parse_put_parameter(body);
  (void)ssm::parse_get_parameters_by_path(body);
  (void)ebs::parse_list_snapshot_blocks(body);
  (void)ebs::parse_list_changed_blocks(body);
  (void)ebs::parse_start_snapshot(body);
  (void)ebs::parse_complete_snapshot(body);
  AwsResponse block;
  block.status = 200;
  block.body = std::string(body);
  block.headers = {{"x-amz-Checksum", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
                   {"x-amz-Data-Length", std::to_string(size)}};
  (void)ebs::parse_get_snapshot_block("snap-fuzz", 0, block);
  return 0;
}
