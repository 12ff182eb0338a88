// NVMe Identify Controller: reading it (admin passthrough ioctl) and understanding it
// (a pure parser), plus the block-device-mapping name normalisation both discovery and
// the config rely on.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/result.h"

namespace amibake::datavol {

inline constexpr size_t kIdentifySize = 4096;
inline constexpr uint16_t kAmazonVendorId = 0x1D0F;
inline constexpr std::string_view kEbsModel = "Amazon Elastic Block Store";
inline constexpr std::string_view kInstanceStoreModel = "Amazon EC2 NVMe Instance Storage";

// What one Identify Controller page says, trimmed of its space/NUL padding.
struct NvmeIdentity {
  uint16_t vendor_id = 0;
  std::string serial;       // bytes 4-23, e.g. "vol0abc123"
  std::string model;        // bytes 24-63
  std::string vendor_area;  // bytes 3072-3103 as written, e.g. "sdb", "/dev/xvdb", "ephemeral0:sdb"

  // True for Amazon EBS / instance-store controllers (vendor 0x1D0F and the known model).
  bool is_ebs() const;
  bool is_instance_store() const;
  // "vol-0abc..." when the serial is an EBS volume id ("vol0abc..."), else "".
  std::string volume_id() const;
  // The block device mapping name, normalised (see normalize_mapping_name): "xvdb" for
  // "sdb", "/dev/xvdb" or "ephemeral0:sdb"; "" when there is none ("ephemeral1:none").
  std::string mapping_name() const;
  // N for an instance-store "ephemeralN:..." vendor area, else -1.
  int ephemeral_index() const;
};

// Parses a 4096-byte Identify Controller page. Fails when `page` is shorter.
Result<NvmeIdentity> parse_identify_controller(std::string_view page);

// Normalises a block device mapping name so that every spelling of the same slot
// compares equal: strips "/dev/", maps "sd"/"hd" to "xvd", and drops trailing partition
// digits: "/dev/sdf" -> "xvdf", "sda1" -> "xvda", "xvdb" -> "xvdb". Names that are not
// sd/hd/xvd names ("nvme1n1", "loop3") are returned without "/dev/" and otherwise as given.
std::string normalize_mapping_name(std::string_view name);

// "vol0abc" or "vol-0abc" -> "vol-0abc"; anything else is returned unchanged.
std::string normalize_volume_id(std::string_view id);

// Reads Identify Controller pages. The seam between discovery and the kernel: tests
// hand out fixture bytes, production issues the admin ioctl.
class IdentifySource {
 public:
  virtual ~IdentifySource() = default;
  // Returns the raw 4096-byte page of controller `ctrl_path` (e.g. "/dev/nvme1").
  virtual Result<std::string> identify_controller(const std::string& ctrl_path) = 0;
};

// Issues NVME_IOCTL_ADMIN_CMD (opcode 0x06, CNS=1) on the controller character device.
class IoctlIdentifySource : public IdentifySource {
 public:
  Result<std::string> identify_controller(const std::string& ctrl_path) override;
};

// Hands out fixed pages by controller path; missing paths fail like an absent device.
class FakeIdentifySource : public IdentifySource {
 public:
  std::map<std::string, std::string> pages;
  Result<std::string> identify_controller(const std::string& ctrl_path) override;
};

// Builds a page laid out like the real thing (tests and fixtures use it).
std::string make_identify_page(uint16_t vendor_id, std::string_view serial, std::string_view model,
                               std::string_view vendor_area, char pad = ' ');

}  // namespace amibake::datavol
