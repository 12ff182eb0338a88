// NVMe Identify Controller for EBS and instance-store disks.
//
// On Nitro instances every EBS volume and instance-store disk is an NVMe controller
// (vendor 0x1D0F). The kernel names them nvme0n1, nvme1n1, ... in probe order, which says
// nothing about which volume is which. Amazon writes the answer into the Identify
// Controller page: the serial is the volume id without its dash ("vol0abc..."), and the
// first 32 bytes of the vendor-specific area (offset 3072) hold the block device mapping
// name the volume was attached as ("sdb", "/dev/xvdb", space padded), or for instance
// store "ephemeralN:sdX" ("ephemeralN:none" when the slot has no mapping name). This is
// what amazon-ec2-utils' ebsnvme-id reads; we read it ourselves so datavol works on
// images without Amazon's udev rules.
//
// Parsing is a pure function over the 4096 bytes so it is tested on fixtures laid out by
// the specification; the ioctl lives behind IdentifySource.
#include "datavol/nvme.h"

#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace amibake::datavol {
namespace {

constexpr size_t kSerialOffset = 4, kSerialLen = 20;
constexpr size_t kModelOffset = 24, kModelLen = 40;
constexpr size_t kVendorAreaOffset = 3072, kVendorAreaLen = 32;
constexpr uint8_t kOpcodeIdentify = 0x06;
constexpr uint32_t kCnsController = 1;

std::string trim_padding(std::string_view s) {
  size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\0')) --end;
  size_t start = 0;
  while (start < end && (s[start] == ' ' || s[start] == '\0')) ++start;
  return std::string(s.substr(start, end - start));
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

bool NvmeIdentity::is_ebs() const { return vendor_id == kAmazonVendorId && model == kEbsModel; }

bool NvmeIdentity::is_instance_store() const {
  return vendor_id == kAmazonVendorId && model == kInstanceStoreModel;
}

std::string NvmeIdentity::volume_id() const {
  if (!starts_with(serial, "vol")) return "";
  return normalize_volume_id(serial);
}

std::string NvmeIdentity::mapping_name() const {
  std::string_view name = vendor_area;
  if (starts_with(name, "ephemeral")) {
    size_t colon = name.find(':');
    if (colon == std::string_view::npos) return "";
    name = name.substr(colon + 1);
  }
  if (name.empty() || name == "none") return "";
  return normalize_mapping_name(name);
}

int NvmeIdentity::ephemeral_index() const {
  if (!starts_with(vendor_area, "ephemeral")) return -1;
  int n = 0;
  size_t i = std::strlen("ephemeral");
  if (i >= vendor_area.size() || !std::isdigit(static_cast<unsigned char>(vendor_area[i]))) {
    return -1;
  }
  for (; i < vendor_area.size() && std::isdigit(static_cast<unsigned char>(vendor_area[i])); ++i) {
    n = n * 10 + (vendor_area[i] - '0');
  }
  return n;
}

Result<NvmeIdentity> parse_identify_controller(std::string_view page) {
  if (page.size() < kIdentifySize) {
    return make_error("identify controller: page is " + std::to_string(page.size()) +
                      " bytes, expected " + std::to_string(kIdentifySize));
  }
  NvmeIdentity id;
  id.vendor_id =
      static_cast<uint16_t>(static_cast<uint8_t>(page[0]) | (static_cast<uint8_t>(page[1]) << 8));
  id.serial = trim_padding(page.substr(kSerialOffset, kSerialLen));
  id.model = trim_padding(page.substr(kModelOffset, kModelLen));
  id.vendor_area = trim_padding(page.substr(kVendorAreaOffset, kVendorAreaLen));
  return id;
}

std::string normalize_mapping_name(std::string_view name) {
  if (starts_with(name, "/dev/")) name.remove_prefix(5);
  std::string_view rest;
  if (starts_with(name, "xvd")) {
    rest = name.substr(3);
  } else if (starts_with(name, "sd") || starts_with(name, "hd")) {
    rest = name.substr(2);
  } else {
    return std::string(name);
  }
  size_t letters = 0;
  while (letters < rest.size() && rest[letters] >= 'a' && rest[letters] <= 'z') ++letters;
  if (letters == 0) return std::string(name);
  for (size_t i = letters; i < rest.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(rest[i]))) return std::string(name);
  }
  return "xvd" + std::string(rest.substr(0, letters));
}

std::string normalize_volume_id(std::string_view id) {
  if (!starts_with(id, "vol")) return std::string(id);
  std::string_view rest = id.substr(3);
  if (starts_with(rest, "-")) rest.remove_prefix(1);
  return "vol-" + std::string(rest);
}

Result<std::string> IoctlIdentifySource::identify_controller(const std::string& ctrl_path) {
  int fd = ::open(ctrl_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(ctrl_path + ": open: " + std::strerror(errno),
                      "run datavol as root; the NVMe admin command needs the controller device");
  }
  std::string page(kIdentifySize, '\0');
  nvme_admin_cmd cmd{};
  cmd.opcode = kOpcodeIdentify;
  cmd.addr = reinterpret_cast<uint64_t>(page.data());
  cmd.data_len = kIdentifySize;
  cmd.cdw10 = kCnsController;
  int rc = ::ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);
  int saved = errno;
  ::close(fd);
  if (rc < 0) return make_error(ctrl_path + ": identify controller: " + std::strerror(saved));
  if (rc > 0) {
    return make_error(ctrl_path + ": identify controller: NVMe status 0x" + [&] {
      char b[16];
      std::snprintf(b, sizeof b, "%x", rc);
      return std::string(b);
    }());
  }
  return page;
}

Result<std::string> FakeIdentifySource::identify_controller(const std::string& ctrl_path) {
  auto it = pages.find(ctrl_path);
  if (it == pages.end()) return make_error(ctrl_path + ": open: No such file or directory");
  return it->second;
}

std::string make_identify_page(uint16_t vendor_id, std::string_view serial, std::string_view model,
                               std::string_view vendor_area, char pad) {
  std::string page(kIdentifySize, '\0');
  page[0] = static_cast<char>(vendor_id & 0xff);
  page[1] = static_cast<char>(vendor_id >> 8);
  auto put = [&](size_t off, size_t len, std::string_view v) {
    for (size_t i = 0; i < len; ++i) page[off + i] = i < v.size() ? v[i] : pad;
  };
  put(kSerialOffset, kSerialLen, serial);
  put(kModelOffset, kModelLen, model);
  put(kVendorAreaOffset, kVendorAreaLen, vendor_area);
  return page;
}

}  // namespace amibake::datavol
