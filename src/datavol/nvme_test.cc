// Identify Controller parsing and name normalisation, on pages laid out by the spec.
#include "datavol/nvme.h"

#include <gtest/gtest.h>

namespace amibake::datavol {
namespace {

NvmeIdentity parse(const std::string& page) {
  auto r = parse_identify_controller(page);
  EXPECT_TRUE(r.has_value());
  return r.value_or(NvmeIdentity{});
}

TEST(DatavolNvme, EbsRootVolumeSda1IsXvda) {
  auto id = parse(
      make_identify_page(0x1D0F, "vol0123456789abcdef0", "Amazon Elastic Block Store", "sda1"));
  EXPECT_TRUE(id.is_ebs());
  EXPECT_FALSE(id.is_instance_store());
  EXPECT_EQ(id.volume_id(), "vol-0123456789abcdef0");
  EXPECT_EQ(id.mapping_name(), "xvda");
}

TEST(DatavolNvme, EbsDataVolumeSdbIsXvdb) {
  auto id = parse(make_identify_page(0x1D0F, "vol0aaa", "Amazon Elastic Block Store", "sdb"));
  EXPECT_EQ(id.vendor_area, "sdb");
  EXPECT_EQ(id.mapping_name(), "xvdb");
}

TEST(DatavolNvme, VolumeAttachedAfterLaunchAsDevSdfIsXvdf) {
  auto id = parse(make_identify_page(0x1D0F, "vol0bbb", "Amazon Elastic Block Store", "/dev/sdf"));
  EXPECT_EQ(id.mapping_name(), "xvdf");
}

TEST(DatavolNvme, DevXvdbSpellingIsXvdb) {
  auto id = parse(make_identify_page(0x1D0F, "vol0ccc", "Amazon Elastic Block Store", "/dev/xvdb"));
  EXPECT_EQ(id.mapping_name(), "xvdb");
}

TEST(DatavolNvme, InstanceStoreEphemeral0Sdb) {
  auto id = parse(
      make_identify_page(0x1D0F, "AWS1234", "Amazon EC2 NVMe Instance Storage", "ephemeral0:sdb"));
  EXPECT_TRUE(id.is_instance_store());
  EXPECT_FALSE(id.is_ebs());
  EXPECT_EQ(id.ephemeral_index(), 0);
  EXPECT_EQ(id.mapping_name(), "xvdb");
  EXPECT_EQ(id.volume_id(), "");
}

TEST(DatavolNvme, InstanceStoreEphemeral1NoneHasNoMappingName) {
  auto id = parse(
      make_identify_page(0x1D0F, "AWS5678", "Amazon EC2 NVMe Instance Storage", "ephemeral1:none"));
  EXPECT_EQ(id.ephemeral_index(), 1);
  EXPECT_EQ(id.mapping_name(), "");
}

TEST(DatavolNvme, NulPaddingIsTrimmedLikeSpaces) {
  auto id = parse(make_identify_page(0x1D0F, "vol0ddd", "Amazon Elastic Block Store", "sdc", '\0'));
  EXPECT_EQ(id.serial, "vol0ddd");
  EXPECT_EQ(id.model, "Amazon Elastic Block Store");
  EXPECT_EQ(id.mapping_name(), "xvdc");
}

TEST(DatavolNvme, VendorIdIsLittleEndian) {
  std::string page = make_identify_page(0x1D0F, "x", "y", "z");
  EXPECT_EQ(static_cast<uint8_t>(page[0]), 0x0F);
  EXPECT_EQ(static_cast<uint8_t>(page[1]), 0x1D);
  EXPECT_EQ(parse(page).vendor_id, 0x1D0F);
}

TEST(DatavolNvme, OtherVendorIsNeitherEbsNorInstanceStore) {
  auto id = parse(make_identify_page(0x1B36, "vol0eee", "QEMU NVMe Ctrl", ""));
  EXPECT_FALSE(id.is_ebs());
  EXPECT_FALSE(id.is_instance_store());
  EXPECT_EQ(id.volume_id(),
            "vol-0eee");  // the serial alone still names the volume (QEMU boot test)
}

TEST(DatavolNvme, ShortPageIsAnError) {
  EXPECT_FALSE(parse_identify_controller(std::string(100, ' ')).has_value());
}

TEST(DatavolNames, NormalisesPrefixSdAndPartitionDigits) {
  EXPECT_EQ(normalize_mapping_name("xvdb"), "xvdb");
  EXPECT_EQ(normalize_mapping_name("/dev/xvdb"), "xvdb");
  EXPECT_EQ(normalize_mapping_name("sdb"), "xvdb");
  EXPECT_EQ(normalize_mapping_name("/dev/sdf"), "xvdf");
  EXPECT_EQ(normalize_mapping_name("sda1"), "xvda");
  EXPECT_EQ(normalize_mapping_name("xvda1"), "xvda");
  EXPECT_EQ(normalize_mapping_name("xvdba"), "xvdba");
}

TEST(DatavolNames, NonMappingNamesAreKept) {
  EXPECT_EQ(normalize_mapping_name("/dev/nvme1n1"), "nvme1n1");
  EXPECT_EQ(normalize_mapping_name("/dev/loop3"), "loop3");
  EXPECT_EQ(normalize_mapping_name("sdX1a"), "sdX1a");
}

TEST(DatavolNames, VolumeIdGetsItsDash) {
  EXPECT_EQ(normalize_volume_id("vol0abc"), "vol-0abc");
  EXPECT_EQ(normalize_volume_id("vol-0abc"), "vol-0abc");
  EXPECT_EQ(normalize_volume_id("AWS123"), "AWS123");
}

}  // namespace
}  // namespace amibake::datavol
