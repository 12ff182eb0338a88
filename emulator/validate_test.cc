// The validation rules of validate.cc on their own (the HTTP answers are in ec2_test.cc
// and ebs_test.cc).
#include "emulator/validate.h"

#include <gtest/gtest.h>

namespace amibake::emu {
namespace {

bool device_ok(const std::string& device, const std::string& virtualization = "hvm") {
  return !check_device_name(device, virtualization);
}

bool kms_ok(const std::string& key, KmsKeyForm form = KmsKeyForm::kAnyIdentifier) {
  return !check_kms_key(key, form);
}

TEST(Validate, HvmDeviceNamesFollowAwsTable) {
  for (const char* good :
       {"/dev/sda", "/dev/sdf", "/dev/sdz", "/dev/sda1", "/dev/xvda", "/dev/xvdb", "/dev/xvdz",
        "/dev/xvdaa", "/dev/xvdba", "/dev/xvdcz", "/dev/xvddz"}) {
    EXPECT_TRUE(device_ok(good)) << good;
  }
  for (const char* bad :
       {"/dev/sdf1", "/dev/sdk1", "/dev/xvda1", "/dev/xvdeo", "/dev/xvdzz", "/dev/hda",
        "/dev/nvme1n1", "xvdb", "/dev/sd", "/dev/sdA", "/dev/xvdb ", ""}) {
    EXPECT_FALSE(device_ok(bad)) << bad;
  }
}

TEST(Validate, ParavirtualDeviceNamesAllowPartitionsUpTo15) {
  EXPECT_TRUE(device_ok("/dev/sda1", "paravirtual"));
  EXPECT_TRUE(device_ok("/dev/sdf15", "paravirtual"));
  EXPECT_TRUE(device_ok("/dev/hdb3", "paravirtual"));
  EXPECT_FALSE(device_ok("/dev/sdf16", "paravirtual"));
  EXPECT_FALSE(device_ok("/dev/sdf0", "paravirtual"));
  EXPECT_FALSE(device_ok("/dev/xvdb", "paravirtual"));
}

TEST(Validate, VolumeSizeLimitsDependOnType) {
  EXPECT_FALSE(check_volume_size("gp3", 65536));
  EXPECT_TRUE(check_volume_size("gp3", 65537));
  EXPECT_FALSE(check_volume_size("gp2", 16384));
  EXPECT_TRUE(check_volume_size("", 16385));  // gp2, EC2's default
  EXPECT_TRUE(check_volume_size("io1", 3));
  EXPECT_FALSE(check_volume_size("io2", 65536));
  EXPECT_TRUE(check_volume_size("st1", 124));
  EXPECT_TRUE(check_volume_size("sc1", 16385));
  EXPECT_TRUE(check_volume_size("standard", 1025));
  EXPECT_FALSE(check_volume_size("gp2", 0));  // not given
  EXPECT_TRUE(check_volume_size("gp2", -1));
}

TEST(Validate, KmsKeyIdentifiersInEveryFormAwsAccepts) {
  EXPECT_TRUE(kms_ok("0b0b0b0b-1111-2222-3333-444444444444"));
  EXPECT_TRUE(kms_ok("mrk-0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(kms_ok("alias/aws/ebs"));
  EXPECT_TRUE(kms_ok("alias/my_key-1"));
  EXPECT_TRUE(
      kms_ok("arn:aws:kms:us-east-1:123456789012:key/0b0b0b0b-1111-2222-3333-444444444444"));
  EXPECT_TRUE(
      kms_ok("arn:aws:kms:eu-west-2:123456789012:key/mrk-0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(kms_ok("arn:aws:kms:us-east-1:123456789012:alias/my-key"));
  EXPECT_TRUE(kms_ok("arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/k"));
}

TEST(Validate, MalformedKmsKeyIdentifiersAreRefused) {
  for (const char* bad :
       {"my-key", "alias/", "alias/a b", "0b0b0b0b-1111-2222-3333-44444444444", "mrk-0123",
        "arn:aws:kms:us-east-1:1234:key/0b0b0b0b-1111-2222-3333-444444444444",
        "arn:aws:kms:us-east-1:123456789012:key/nope",
        "arn:aws:s3:us-east-1:123456789012:key/0b0b0b0b-1111-2222-3333-444444444444",
        "key/0b0b0b0b-1111-2222-3333-444444444444"}) {
    auto v = check_kms_key(bad, KmsKeyForm::kAnyIdentifier);
    ASSERT_TRUE(v) << bad;
    EXPECT_EQ(v->what, Refusal::kKmsKeyMalformed);
  }
}

TEST(Validate, EbsKmsKeyArnMustBeAKeyArn) {
  EXPECT_TRUE(kms_ok("arn:aws:kms:us-east-1:123456789012:key/0b0b0b0b-1111-2222-3333-444444444444",
                     KmsKeyForm::kKeyArn));
  EXPECT_FALSE(kms_ok("alias/aws/ebs", KmsKeyForm::kKeyArn));
  EXPECT_FALSE(kms_ok("0b0b0b0b-1111-2222-3333-444444444444", KmsKeyForm::kKeyArn));
  EXPECT_FALSE(kms_ok("arn:aws:kms:us-east-1:123456789012:alias/k", KmsKeyForm::kKeyArn));
}

TEST(Validate, ImageNameCharsetAndLength) {
  EXPECT_FALSE(check_image_name("amibake-al2023-ami-ecs-hvm-2023.0.20251101-x86_64-20260101"));
  EXPECT_FALSE(check_image_name("a (b) [c] d./e-'f@g_h"));
  EXPECT_FALSE(check_image_name(std::string(128, 'n')));
  EXPECT_TRUE(check_image_name("ab"));
  EXPECT_TRUE(check_image_name(std::string(129, 'n')));
  EXPECT_TRUE(check_image_name("name:with:colons"));
  EXPECT_TRUE(check_image_name("name,comma"));
}

TEST(Validate, DescriptionLengthCountsCharactersNotBytes) {
  EXPECT_FALSE(check_description(std::string(255, 'd')));
  EXPECT_TRUE(check_description(std::string(256, 'd')));
  std::string accented;
  for (int i = 0; i < 255; ++i) accented += "\xc3\xa9";  // 255 characters, 510 bytes
  EXPECT_FALSE(check_description(accented));
}

TEST(Validate, TagKeyAndValueLimitsPerService) {
  EXPECT_FALSE(
      check_tags({}, TagList{{std::string(128, 'k'), std::string(256, 'v')}}, kEc2TagRules));
  EXPECT_TRUE(check_tags({}, TagList{{std::string(129, 'k'), "v"}}, kEc2TagRules));
  EXPECT_TRUE(check_tags({}, TagList{{"k", std::string(257, 'v')}}, kEc2TagRules));
  EXPECT_TRUE(check_tags({}, TagList{{"", "v"}}, kEc2TagRules));
  EXPECT_TRUE(check_tags({}, TagList{{std::string(128, 'k'), "v"}}, kEbsTagRules));
  EXPECT_TRUE(check_tags({}, TagList{{"k", std::string(256, 'v')}}, kEbsTagRules));
  EXPECT_FALSE(check_tags({}, TagList{{"k", ""}}, kEc2TagRules));
}

TEST(Validate, AwsPrefixIsReservedInAnyCase) {
  for (const char* key : {"aws:x", "AWS:x", "Aws:cloudformation:stack-name"}) {
    auto v = check_tags({}, TagList{{key, "v"}}, kEc2TagRules);
    ASSERT_TRUE(v) << key;
    EXPECT_EQ(v->what, Refusal::kTagInvalid);
  }
  EXPECT_FALSE(check_tags({}, TagList{{"awsx", "v"}, {"amibake:aws", "v"}}, kEc2TagRules));
}

TEST(Validate, TagLimitCountsExistingTagsButNotOverwrittenOnes) {
  Tags existing;
  for (int i = 0; i < 49; ++i) existing["t" + std::to_string(i)] = "v";
  EXPECT_FALSE(check_tags(existing, TagList{{"new", "v"}}, kEc2TagRules));
  auto v = check_tags(existing, TagList{{"new", "v"}, {"new2", "v"}}, kEc2TagRules);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->what, Refusal::kTagLimitExceeded);
  existing["t49"] = "v";
  EXPECT_FALSE(check_tags(existing, TagList{{"t0", "changed"}}, kEc2TagRules));
}

TEST(Validate, EbsTagErrorsUseRequestValidationWording) {
  auto v = check_tags({}, TagList{{"ok", "v"}, {std::string(128, 'k'), "v"}}, kEbsTagRules);
  ASSERT_TRUE(v);
  EXPECT_NE(v->message.find("at 'tags.2.member.key' failed to satisfy constraint: Member must "
                            "have length less than or equal to 127"),
            std::string::npos)
      << v->message;
}

}  // namespace
}  // namespace amibake::emu
