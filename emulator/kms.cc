// AWS KMS (JSON 1.1, X-Amz-Target TrentService.*, botocore kms 2014-11-01): DescribeKey,
// which is all amibake asks KMS (is a key AWS-managed?).
//
// awsemu keeps no key registry: as EC2 here takes any well-formed key id, alias or ARN
// and records the key ARN kms_key_arn() derives from it (ec2_storage.cc), DescribeKey
// describes that same key. A key is AWS-managed (KeyManager AWS) when it is named by an
// AWS alias (alias/aws/...: AWS reserves that prefix; alias/aws/ebs is EBS's default
// key) or is the key such an alias names; every other key is a customer-managed one
// (KeyManager CUSTOMER). Like KMS, DescribeKey on alias/aws/ebs answers the key even
// before anything was encrypted with it. Not modelled: keys that do not exist
// (NotFoundException only for a malformed id, or an ARN of another region or account),
// key policies, disabled or pending-deletion keys.
#include "emulator/ec2_internal.h"
#include "emulator/service.h"
#include "emulator/validate.h"

namespace amibake::emu {
namespace {

using nlohmann::json;

bool aws_alias(const std::string& given) {
  std::string alias = given;
  size_t at = alias.find(":alias/");
  if (alias.rfind("arn:", 0) == 0 && at != std::string::npos) alias = alias.substr(at + 1);
  return alias.rfind("alias/aws/", 0) == 0;
}

Reply describe_key(const Call& call) {
  std::string given = call.json.value("KeyId", "");
  const std::string& region = Context::current_region();
  if (given.empty()) {
    return error_reply(call, 400, "ValidationException",
                       "1 validation error detected: Value null at 'keyId' failed to satisfy "
                       "constraint: Member must not be null");
  }
  if (check_kms_key(given, KmsKeyForm::kAnyIdentifier)) {
    return error_reply(call, 400, "NotFoundException", "Invalid keyId '" + given + "'");
  }
  std::string arn = kms_key_arn(region, given);
  std::string home = "arn:aws:kms:" + region + ":" + kAccountId + ":";
  if (arn.rfind(home, 0) != 0) {
    return error_reply(call, 400, "NotFoundException", "Key '" + given + "' does not exist");
  }
  bool managed = aws_alias(given) || is_aws_managed_ebs_key(region, arn);
  std::string id = arn.substr(arn.find(":key/") + 5);
  json meta = {{"AWSAccountId", kAccountId},
               {"KeyId", id},
               {"Arn", arn},
               {"CreationDate", 1.7e9},
               {"Enabled", true},
               {"Description", managed ? "Default key that protects my EBS volumes when no other key is defined"
                                       : ""},
               {"KeyUsage", "ENCRYPT_DECRYPT"},
               {"KeyState", "Enabled"},
               {"Origin", "AWS_KMS"},
               {"KeyManager", managed ? "AWS" : "CUSTOMER"},
               {"CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"},
               {"KeySpec", "SYMMETRIC_DEFAULT"},
               {"EncryptionAlgorithms", json::array({"SYMMETRIC_DEFAULT"})},
               {"MultiRegion", id.rfind("mrk-", 0) == 0}};
  return json_reply(call, {{"KeyMetadata", meta}});
}

}  // namespace

Reply handle_kms(Context& ctx, const Call& call) {
  (void)ctx;
  if (call.action == "DescribeKey") return describe_key(call);
  return error_reply(call, 400, "UnknownOperationException", "awsemu does not implement KMS " + call.action);
}

}  // namespace amibake::emu
