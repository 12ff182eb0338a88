// libFuzzer target: every EC2 XML answer parser on arbitrary bytes.
//
// Each parser first checks the root element, so on a given input one parser goes deep
// and the others stop early; feeding the input to all of them keeps the corpus plain
// XML files (no selector byte) while still covering every parser. The only property
// checked is the one that matters for network input: no crash, no sanitizer report,
// no exception (an exception escaping here aborts the fuzzer).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aws/ec2.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amibake::aws::ec2;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)parse_describe_images(body);
  (void)parse_describe_snapshots(body);
  (void)parse_describe_volumes(body);
  (void)parse_describe_instances(body);
  (void)parse_describe_tags(body);
  (void)parse_describe_availability_zones(body);
  (void)parse_describe_image_attribute(body);
  (void)parse_get_ebs_encryption_by_default(body);
  (void)parse_create_volume(body);
  (void)parse_create_snapshot(body);
  (void)parse_attach_volume(body);
  (void)parse_detach_volume(body);
  (void)parse_register_image(body);
  (void)parse_copy_image(body);
  (void)parse_copy_snapshot(body);
  (void)parse_return_answer("DeleteVolume", body);
  return 0;
}
