#!/bin/bash
# awsemu driven end to end by the real AWS CLI (/usr/bin/aws), as one ctest.
# Usage: aws_cli_test.sh PATH/TO/awsemu
# Steps: describe-images, ssm get-parameter, create-volume + wait volume-available,
# create-snapshot + wait snapshot-completed, register-image + describe-images showing
# every field back, the EBS direct round trip compared byte for byte, bad values (names,
# device names, sizes, KMS keys, tags) refused with AWS's error codes, a wrong secret
# refused; then publishing across us-east-1 and eu-west-1: describe-regions, copy-image
# (tags, encryption, client token), sharing, deprecation, SSM aws:ec2:image parameters
# and history, launch template versions, Batch compute environment updates (allowed and
# refused), instances, deregister-image with its snapshots. Exits 77 (skipped) when
# /usr/bin/aws is missing.
set -euo pipefail

AWSEMU=${1:?usage: aws_cli_test.sh PATH/TO/awsemu}
[ -x /usr/bin/aws ] || { echo "SKIP: /usr/bin/aws is not installed"; exit 77; }
T=$(mktemp -d /tmp/awsemu-cli.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- awsemu log:" >&2; cat "$T/awsemu.err" >&2; exit 1; }
step() { echo "== $*"; }

# A tiny catalog: one Amazon-owned image whose root is a 2 GiB sparse file with a few
# written blocks (tests/fixtures/make-base-images builds the real ones).
mkdir -p "$T/catalog" "$T/home/.aws"
truncate -s 2G "$T/catalog/root.img"
for off in 0 3 1000; do
  head -c 524288 /dev/urandom | dd of="$T/catalog/root.img" bs=524288 seek=$off conv=notrunc status=none
done
cat > "$T/catalog/catalog.json" <<JSON
{"images": [{"name": "al2023-ami-ecs-hvm-2023.0.20251101-kernel-6.1-x86_64",
  "file": "root.img", "architecture": "x86_64", "boot_mode": "uefi-preferred",
  "volume_size": 2,
  "ssm_parameters": ["/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
                     "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"]}]}
JSON
cat > "$T/home/.aws/credentials" <<CREDS
[default]
aws_access_key_id = AKIAAWSEMU0EXAMPLE00
aws_secret_access_key = awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0
[wrong]
aws_access_key_id = AKIAAWSEMU0EXAMPLE00
aws_secret_access_key = not-the-right-secret-key-at-all-000000000
CREDS

"$AWSEMU" --port 0 --data "$T/data" --catalog "$T/catalog" --speed 0.05 --seed 7 \
  > "$T/awsemu.out" 2> "$T/awsemu.err" &
PID=$!
for _ in $(seq 100); do [ -s "$T/awsemu.out" ] && break; sleep 0.05; done
URL=$(sed -n 's/^awsemu listening on \(http:[^ ]*\)$/\1/p' "$T/awsemu.out" | head -1)
[ -n "$URL" ] || fail "awsemu did not print its URL"

export HOME="$T/home" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$T/home/.aws/config"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
aws() { /usr/bin/aws --endpoint-url "$URL" --region us-east-1 --no-cli-pager --output json "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

step describe-images
IMAGES=$(aws ec2 describe-images --owners amazon)
AMI=$(echo "$IMAGES" | field 'd["Images"][0]["ImageId"]')
BASE_SNAP=$(echo "$IMAGES" | field 'd["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]')
[ "$(echo "$IMAGES" | field 'd["Images"][0]["ImageOwnerAlias"]')" = amazon ] || fail "owner alias"

step ssm get-parameter
P=$(aws ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id)
[ "$(echo "$P" | field 'd["Parameter"]["Value"]')" = "$AMI" ] || fail "SSM parameter is not $AMI"
DOC=$(aws ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended)
[ "$(echo "$DOC" | field 'json.loads(d["Parameter"]["Value"])["image_id"]')" = "$AMI" ] || fail "recommended doc"

step create-volume + wait volume-available
V=$(aws ec2 create-volume --availability-zone us-east-1a --snapshot-id "$BASE_SNAP" --volume-type gp3 \
      --tag-specifications 'ResourceType=volume,Tags=[{Key=purpose,Value=cli-test}]')
VOL=$(echo "$V" | field 'd["VolumeId"]')
[ "$(echo "$V" | field 'd["State"]')" = creating ] || fail "new volume not creating"
aws ec2 wait volume-available --volume-ids "$VOL"
[ "$(aws ec2 describe-volumes --filters Name=tag:purpose,Values=cli-test | field 'd["Volumes"][0]["State"]')" = available ] \
  || fail "volume not available after wait"

step create-snapshot + wait snapshot-completed
SNAP=$(aws ec2 create-snapshot --volume-id "$VOL" --description cli-test | field 'd["SnapshotId"]')
aws ec2 wait snapshot-completed --snapshot-ids "$SNAP"
[ "$(aws ec2 describe-snapshots --snapshot-ids "$SNAP" | field 'd["Snapshots"][0]["Progress"]')" = 100% ] || fail "progress"

step register-image + describe-images shows every field
cat > "$T/bdm.json" <<JSON
[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "$SNAP", "VolumeSize": 30, "VolumeType": "gp3",
  "Iops": 3000, "Throughput": 125, "DeleteOnTermination": true, "Encrypted": false}},
 {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 1024, "VolumeType": "gp3", "Encrypted": true,
  "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/0b0b0b0b-1111-2222-3333-444444444444",
  "DeleteOnTermination": true}}]
JSON
NEW_AMI=$(aws ec2 register-image --name "baked-cli-test" --description "cli test image" \
  --architecture x86_64 --root-device-name /dev/xvda --virtualization-type hvm --ena-support \
  --sriov-net-support simple --boot-mode uefi-preferred --tpm-support v2.0 --imds-support v2.0 \
  --block-device-mappings "file://$T/bdm.json" | field 'd["ImageId"]')
aws ec2 wait image-available --image-ids "$NEW_AMI"
aws ec2 describe-images --image-ids "$NEW_AMI" > "$T/image.json"
python3 - "$T/image.json" "$T/bdm.json" <<'PY' || fail "registered image fields differ"
import json, sys
img = json.load(open(sys.argv[1]))["Images"][0]
want = {"Name": "baked-cli-test", "Description": "cli test image", "Architecture": "x86_64",
        "RootDeviceName": "/dev/xvda", "VirtualizationType": "hvm", "EnaSupport": True,
        "SriovNetSupport": "simple", "BootMode": "uefi-preferred", "TpmSupport": "v2.0",
        "ImdsSupport": "v2.0", "State": "available", "OwnerId": "123456789012"}
bad = {k: (img.get(k), v) for k, v in want.items() if img.get(k) != v}
bdm = json.load(open(sys.argv[2]))
got = {m["DeviceName"]: m["Ebs"] for m in img["BlockDeviceMappings"]}
for m in bdm:
    for k, v in m["Ebs"].items():
        if got.get(m["DeviceName"], {}).get(k) != v:
            bad[m["DeviceName"] + "." + k] = (got.get(m["DeviceName"], {}).get(k), v)
if bad:
    print("mismatches (got, want):", bad)
    sys.exit(1)
PY

step ebs start / put / complete / list / get round trip
head -c 524288 /dev/urandom > "$T/b5"
head -c 524288 /dev/urandom > "$T/b9"
S5=$(openssl dgst -sha256 -binary "$T/b5" | base64)
S9=$(openssl dgst -sha256 -binary "$T/b9" | base64)
AGG=$( (openssl dgst -sha256 -binary "$T/b5"; openssl dgst -sha256 -binary "$T/b9") | openssl dgst -sha256 -binary | base64)
ESNAP=$(aws ebs start-snapshot --volume-size 1 --timeout 60 --description cli-ebs | field 'd["SnapshotId"]')
aws ebs put-snapshot-block --snapshot-id "$ESNAP" --block-index 9 --block-data "$T/b9" \
  --data-length 524288 --checksum "$S9" --checksum-algorithm SHA256 > /dev/null
aws ebs put-snapshot-block --snapshot-id "$ESNAP" --block-index 5 --block-data "$T/b5" \
  --data-length 524288 --checksum "$S5" --checksum-algorithm SHA256 > /dev/null
aws ebs complete-snapshot --snapshot-id "$ESNAP" --changed-blocks-count 2 --checksum "$AGG" \
  --checksum-algorithm SHA256 --checksum-aggregation-method LINEAR > /dev/null
aws ec2 wait snapshot-completed --snapshot-ids "$ESNAP"
aws ebs list-snapshot-blocks --snapshot-id "$ESNAP" > "$T/blocks.json"
[ "$(field '[b["BlockIndex"] for b in d["Blocks"]]' < "$T/blocks.json")" = "[5, 9]" ] || fail "listed blocks"
for i in 0 1; do
  IDX=$(field "d['Blocks'][$i]['BlockIndex']" < "$T/blocks.json")
  TOK=$(field "d['Blocks'][$i]['BlockToken']" < "$T/blocks.json")
  aws ebs get-snapshot-block --snapshot-id "$ESNAP" --block-index "$IDX" --block-token "$TOK" "$T/got$IDX" > /dev/null
  cmp "$T/b$IDX" "$T/got$IDX" || fail "block $IDX differs"
done

step "AWS's validation: bad values get AWS's error codes"
# expect_error CODE ARGS...: the aws call must fail with error code CODE.
expect_error() {
  local code=$1; shift
  if aws "$@" > "$T/err.out" 2>&1; then fail "accepted: aws $*"; fi
  grep -q "An error occurred ($code)" "$T/err.out" \
    || fail "aws $*: expected $code, got: $(cat "$T/err.out")"
}
# tags_json N [RESOURCE]: N tags, as a JSON tag list or (with RESOURCE) a TagSpecifications list.
tags_json() {
  python3 -c "import json,sys; t=[{'Key':'k%d'%i,'Value':'v'} for i in range(int(sys.argv[1]))]
print(json.dumps([{'ResourceType':sys.argv[2],'Tags':t}] if len(sys.argv)>2 else t))" "$@"
}
long() { python3 -c "print('$1' * $2)"; }
root_bdm() { echo "[{\"DeviceName\":\"/dev/xvda\",\"Ebs\":{\"SnapshotId\":\"$SNAP\"}}${1:-}]"; }
expect_error InvalidAMIName.Malformed ec2 register-image --name "bad:name" \
  --root-device-name /dev/xvda --block-device-mappings "$(root_bdm)"
expect_error InvalidAMIName.Duplicate ec2 register-image --name baked-cli-test \
  --root-device-name /dev/xvda --block-device-mappings "$(root_bdm)"
expect_error InvalidParameterValue ec2 register-image --name long-description \
  --description "$(long d 256)" --root-device-name /dev/xvda --block-device-mappings "$(root_bdm)"
expect_error InvalidBlockDeviceMapping ec2 register-image --name partition-device \
  --root-device-name /dev/xvda \
  --block-device-mappings "$(root_bdm ',{"DeviceName":"/dev/sdf1","Ebs":{"VolumeSize":10}}')"
expect_error InvalidBlockDeviceMapping ec2 register-image --name same-device-twice \
  --root-device-name /dev/xvda \
  --block-device-mappings "$(root_bdm ',{"DeviceName":"/dev/xvda","Ebs":{"VolumeSize":10}}')"
expect_error InvalidBlockDeviceMapping ec2 register-image --name too-large \
  --root-device-name /dev/xvda --block-device-mappings \
  "$(root_bdm ',{"DeviceName":"/dev/xvdb","Ebs":{"VolumeSize":16385,"VolumeType":"gp2"}}')"
expect_error InvalidBlockDeviceMapping ec2 register-image --name root-not-mapped \
  --root-device-name /dev/sda1 --block-device-mappings "$(root_bdm)"
expect_error InvalidParameterValue ec2 register-image --name bad-kms --root-device-name /dev/xvda \
  --block-device-mappings \
  "$(root_bdm ',{"DeviceName":"/dev/xvdb","Ebs":{"VolumeSize":10,"Encrypted":true,"KmsKeyId":"my-key"}}')"
# (this CLI's register-image and copy-image have no --tag-specifications yet)
expect_error TagLimitExceeded ec2 create-volume --availability-zone us-east-1a --size 1 \
  --tag-specifications "$(tags_json 51 volume)"
expect_error InvalidParameterValue ec2 create-volume --availability-zone us-east-1a --size 1 \
  --encrypted --kms-key-id alias/
expect_error InvalidParameterValue ec2 create-volume --availability-zone us-east-1a --size 1025 \
  --volume-type standard
expect_error InvalidParameterValue ec2 create-volume --availability-zone us-east-1a --size 1 \
  --tag-specifications 'ResourceType=volume,Tags=[{Key=aws:owner,Value=me}]'
expect_error InvalidParameterValue ec2 create-snapshot --volume-id "$VOL" \
  --tag-specifications "ResourceType=snapshot,Tags=[{Key=k,Value=$(long v 257)}]"
expect_error InvalidParameterValue ec2 copy-snapshot --source-snapshot-id "$SNAP" \
  --source-region us-east-1 --encrypted --kms-key-id 0b0b0b0b-1111
expect_error InvalidParameterValue ec2 copy-snapshot --source-snapshot-id "$SNAP" \
  --source-region us-east-1 --tag-specifications "ResourceType=snapshot,Tags=[{Key=$(long k 129),Value=v}]"
expect_error InvalidParameterValue ec2 copy-image --source-image-id "$AMI" --source-region us-east-1 \
  --name cli-copy --encrypted --kms-key-id arn:aws:kms:us-east-1:123456789012:key/nope
aws ec2 create-tags --resources "$VOL" --tags "$(tags_json 49)" > /dev/null
expect_error TagLimitExceeded ec2 create-tags --resources "$VOL" --tags Key=x,Value=1 Key=y,Value=2
expect_error InvalidParameterValue ec2 attach-volume --volume-id "$VOL" \
  --instance-id i-0abc0123456789def --device /dev/sdk1
expect_error ValidationException ebs start-snapshot --volume-size 1 --tags "$(tags_json 51)"
expect_error ValidationException ebs start-snapshot --volume-size 1 \
  --tags "Key=$(long k 128),Value=v"
expect_error ValidationException ebs start-snapshot --volume-size 1 --encrypted \
  --kms-key-arn alias/aws/ebs

step wrong secret refused
if /usr/bin/aws --profile wrong --endpoint-url "$URL" --region us-east-1 --no-cli-pager \
     ec2 describe-images --owners amazon > "$T/wrong.out" 2>&1; then
  fail "a wrong secret was accepted"
fi
grep -q AuthFailure "$T/wrong.out" || fail "wrong secret: expected AuthFailure, got: $(cat "$T/wrong.out")"

# ---- publish (issue 11): two regions, sharing, deprecation, SSM, templates, Batch, instances
awsr() { local r=$1; shift; /usr/bin/aws --endpoint-url "$URL" --region "$r" --no-cli-pager --output json "$@"; }
expect_error_in() {
  local region=$1 code=$2; shift 2
  if awsr "$region" "$@" > "$T/err.out" 2>&1; then fail "accepted: aws --region $region $*"; fi
  grep -q "An error occurred ($code)" "$T/err.out" \
    || fail "aws --region $region $*: expected $code, got: $(cat "$T/err.out")"
}

step "regions: describe-regions, catalog per region, unknown region refused"
awsr us-east-1 ec2 describe-regions | field '[r["RegionName"] for r in d["Regions"]]' | grep -q "'eu-west-1'" \
  || fail "describe-regions lacks eu-west-1"
[ "$(awsr us-east-1 ec2 describe-regions --all-regions --region-names af-south-1 | field 'd["Regions"][0]["OptInStatus"]')" = not-opted-in ] \
  || fail "af-south-1 opt-in status"
EU_BASE=$(awsr eu-west-1 ec2 describe-images --owners amazon | field 'd["Images"][0]["ImageId"]')
[ -n "$EU_BASE" ] && [ "$EU_BASE" != "$AMI" ] || fail "eu-west-1 catalog image id $EU_BASE vs $AMI"
[ "$(awsr eu-west-1 ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id | field 'd["Parameter"]["Value"]')" = "$EU_BASE" ] \
  || fail "eu-west-1 public parameter"
expect_error_in xx-nowhere-1 AuthFailure ec2 describe-images --owners self

step "copy-image us-east-1 -> eu-west-1 (tags, encryption, client token) + wait image-available"
# (this CLI's copy-image has no --tag-specifications: the tag is added with create-tags)
SRC=$(awsr us-east-1 ec2 copy-image --source-image-id "$AMI" --source-region us-east-1 --name cli-publish-src \
      | field 'd["ImageId"]')
awsr us-east-1 ec2 create-tags --resources "$SRC" --tags Key=amibake:family,Value=cli
awsr us-east-1 ec2 wait image-available --image-ids "$SRC"
COPY=$(awsr eu-west-1 ec2 copy-image --source-image-id "$SRC" --source-region us-east-1 --name cli-publish \
         --copy-image-tags --encrypted --kms-key-id alias/ami --client-token build-1-eu-west-1 | field 'd["ImageId"]')
[ "$(awsr eu-west-1 ec2 copy-image --source-image-id "$SRC" --source-region us-east-1 --name cli-publish \
       --copy-image-tags --encrypted --kms-key-id alias/ami --client-token build-1-eu-west-1 | field 'd["ImageId"]')" = "$COPY" ] \
  || fail "same client token gave another image"
expect_error_in eu-west-1 IdempotentParameterMismatch ec2 copy-image --source-image-id "$SRC" \
  --source-region us-east-1 --name other-name --client-token build-1-eu-west-1
awsr eu-west-1 ec2 wait image-available --image-ids "$COPY"
CI=$(awsr eu-west-1 ec2 describe-images --image-ids "$COPY")
[ "$(echo "$CI" | field '[t["Value"] for t in d["Images"][0]["Tags"] if t["Key"]=="amibake:family"][0]')" = cli ] \
  || fail "copy-image-tags"
COPY_SNAP=$(echo "$CI" | field 'd["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]')
awsr eu-west-1 ec2 describe-snapshots --snapshot-ids "$COPY_SNAP" \
  | field 'd["Snapshots"][0]["KmsKeyId"]' | grep -q '^arn:aws:kms:eu-west-1:123456789012:key/' || fail "copy key ARN"
expect_error_in us-east-1 InvalidAMIID.NotFound ec2 describe-images --image-ids "$COPY"

step "share: launch permissions (account, organization, OU), snapshot permission, aws/ebs refused"
awsr eu-west-1 ec2 modify-image-attribute --image-id "$COPY" --launch-permission \
  'Add=[{UserId=111122223333},{OrganizationArn=arn:aws:organizations::111122223333:organization/o-abc123defg},{OrganizationalUnitArn=arn:aws:organizations::111122223333:ou/o-abc123defg/ou-ab12-cdef3456}]'
LP=$(awsr eu-west-1 ec2 describe-image-attribute --image-id "$COPY" --attribute launchPermission)
[ "$(echo "$LP" | field 'len(d["LaunchPermissions"])')" = 3 ] || fail "launch permissions: $LP"
echo "$LP" | field 'd["LaunchPermissions"]' | grep -q "OrganizationalUnitArn" || fail "OU permission"
awsr eu-west-1 ec2 modify-image-attribute --image-id "$COPY" --launch-permission 'Remove=[{UserId=111122223333}]'
[ "$(awsr eu-west-1 ec2 describe-image-attribute --image-id "$COPY" --attribute launchPermission | field 'len(d["LaunchPermissions"])')" = 2 ] \
  || fail "remove launch permission"
awsr eu-west-1 ec2 modify-snapshot-attribute --snapshot-id "$COPY_SNAP" --attribute createVolumePermission \
  --operation-type add --user-ids 111122223333
[ "$(awsr eu-west-1 ec2 describe-snapshot-attribute --snapshot-id "$COPY_SNAP" --attribute createVolumePermission | field 'd["CreateVolumePermissions"][0]["UserId"]')" = 111122223333 ] \
  || fail "createVolumePermission"
MANAGED=$(awsr eu-west-1 ec2 copy-image --source-image-id "$SRC" --source-region us-east-1 --name cli-managed-key \
            --encrypted | field 'd["ImageId"]')
expect_error_in eu-west-1 InvalidParameter ec2 modify-image-attribute --image-id "$MANAGED" \
  --launch-permission 'Add=[{UserId=111122223333}]'

step "deprecation: enable shows DeprecationTime, disable clears it"
awsr eu-west-1 ec2 enable-image-deprecation --image-id "$COPY" --deprecate-at 2030-01-01T00:00:00Z > /dev/null
[ "$(awsr eu-west-1 ec2 describe-images --image-ids "$COPY" | field 'd["Images"][0]["DeprecationTime"]')" = 2030-01-01T00:00:00.000Z ] \
  || fail "deprecation time"
awsr eu-west-1 ec2 disable-image-deprecation --image-id "$MANAGED" > /dev/null

step "ssm aws:ec2:image: put, get, history; an id that is no AMI of the region never becomes the value"
V1=$(awsr eu-west-1 ssm put-parameter --name /amibake/cli/image_id --type String --data-type aws:ec2:image \
       --value "$COPY" | field 'd["Version"]')
[ "$V1" = 1 ] || fail "first version $V1"
for _ in $(seq 50); do
  awsr eu-west-1 ssm get-parameter --name /amibake/cli/image_id > "$T/p.json" 2>/dev/null && break; sleep 0.1
done
[ "$(field 'd["Parameter"]["Value"]' < "$T/p.json")" = "$COPY" ] || fail "parameter value"
expect_error_in eu-west-1 ParameterAlreadyExists ssm put-parameter --name /amibake/cli/image_id --type String \
  --data-type aws:ec2:image --value "$COPY"
V2=$(awsr eu-west-1 ssm put-parameter --name /amibake/cli/image_id --type String --data-type aws:ec2:image \
       --value "$SRC" --overwrite | field 'd["Version"]')
[ "$V2" = 2 ] || fail "second version $V2"
sleep 0.5
[ "$(awsr eu-west-1 ssm get-parameter --name /amibake/cli/image_id | field 'd["Parameter"]["Version"]')" = 1 ] \
  || fail "a us-east-1 AMI id became the eu-west-1 value"
awsr eu-west-1 ssm put-parameter --name /amibake/cli/image_id --type String --data-type aws:ec2:image \
  --value "$MANAGED" --overwrite > /dev/null
sleep 0.5
H=$(awsr eu-west-1 ssm get-parameter-history --name /amibake/cli/image_id)
[ "$(echo "$H" | field '[p["Version"] for p in d["Parameters"]]')" = "[1, 3]" ] || fail "history: $H"
[ "$(echo "$H" | field 'd["Parameters"][-1]["Value"]')" = "$MANAGED" ] || fail "history value"
expect_error_in eu-west-1 ValidationException ssm put-parameter --name /amibake/cli/bad --type String \
  --data-type aws:ec2:image --value not-an-ami

step "launch templates: create, version from source, modify default, describe \$Default/\$Latest, delete"
LT=$(awsr eu-west-1 ec2 create-launch-template --launch-template-name cli-lt --version-description v1 \
       --launch-template-data "{\"ImageId\":\"$EU_BASE\",\"InstanceType\":\"m5.large\",\"SecurityGroupIds\":[\"sg-0123456789abcdef0\"],\"BlockDeviceMappings\":[{\"DeviceName\":\"/dev/xvdb\",\"Ebs\":{\"VolumeSize\":100,\"VolumeType\":\"gp3\"}}]}" \
     | field 'd["LaunchTemplate"]["LaunchTemplateId"]')
NEWV=$(awsr eu-west-1 ec2 create-launch-template-version --launch-template-id "$LT" --source-version '$Default' \
         --version-description "amibake build 1" --launch-template-data "{\"ImageId\":\"$COPY\"}" \
       | field 'd["LaunchTemplateVersion"]["VersionNumber"]')
[ "$NEWV" = 2 ] || fail "new version $NEWV"
awsr eu-west-1 ec2 modify-launch-template --launch-template-name cli-lt --default-version "$NEWV" > /dev/null
DV=$(awsr eu-west-1 ec2 describe-launch-template-versions --launch-template-name cli-lt --versions '$Default')
[ "$(echo "$DV" | field 'd["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"]')" = "$COPY" ] || fail "default image"
[ "$(echo "$DV" | field 'd["LaunchTemplateVersions"][0]["LaunchTemplateData"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]')" = 100 ] \
  || fail "SourceVersion data not inherited: $DV"
[ "$(echo "$DV" | field 'd["LaunchTemplateVersions"][0]["LaunchTemplateData"]["SecurityGroupIds"]')" = "['sg-0123456789abcdef0']" ] \
  || fail "security groups not inherited"
[ "$(awsr eu-west-1 ec2 describe-launch-template-versions --versions '$Latest' | field 'd["LaunchTemplateVersions"][0]["VersionNumber"]')" = 2 ] \
  || fail "account-wide \$Latest"
[ "$(awsr eu-west-1 ec2 describe-launch-templates --launch-template-names cli-lt | field 'd["LaunchTemplates"][0]["DefaultVersionNumber"]')" = 2 ] \
  || fail "describe-launch-templates default version"
# delete-launch-template-versions: the default version stays (EC2's rule), another goes.
V3=$(awsr eu-west-1 ec2 create-launch-template-version --launch-template-id "$LT" --source-version 1 \
       --client-token cli-v3 --launch-template-data "{\"ImageId\":\"$EU_BASE\"}" \
     | field 'd["LaunchTemplateVersion"]["VersionNumber"]')
[ "$(awsr eu-west-1 ec2 create-launch-template-version --launch-template-id "$LT" --source-version 1 \
       --client-token cli-v3 --launch-template-data "{\"ImageId\":\"$EU_BASE\"}" \
     | field 'd["LaunchTemplateVersion"]["VersionNumber"]')" = "$V3" ] || fail "client token made a new version"
DEL=$(awsr eu-west-1 ec2 delete-launch-template-versions --launch-template-id "$LT" --versions "$V3" 2)
[ "$(echo "$DEL" | field 'd["SuccessfullyDeletedLaunchTemplateVersions"][0]["VersionNumber"]')" = "$V3" ] \
  || fail "version $V3 not deleted: $DEL"
[ "$(echo "$DEL" | field 'd["UnsuccessfullyDeletedLaunchTemplateVersions"][0]["ResponseError"]["Code"]')" = unexpectedError ] \
  || fail "the default version was deleted: $DEL"
expect_error_in eu-west-1 InvalidLaunchTemplateName.NotFoundException ec2 describe-launch-templates \
  --launch-template-names nope-lt
expect_error_in us-east-1 InvalidLaunchTemplateId.NotFound ec2 describe-launch-template-versions \
  --launch-template-id "$LT"

step "batch: create, describe, an allowed and a refused update, delete"
awsr eu-west-1 batch create-compute-environment --compute-environment-name cli-ce --type MANAGED \
  --compute-resources "{\"type\":\"EC2\",\"allocationStrategy\":\"BEST_FIT_PROGRESSIVE\",\"minvCpus\":0,\"maxvCpus\":16,\"instanceTypes\":[\"optimal\"],\"subnets\":[\"subnet-0123456789abcdef0\"],\"securityGroupIds\":[\"sg-0123456789abcdef0\"],\"instanceRole\":\"ecsInstanceRole\",\"ec2Configuration\":[{\"imageType\":\"ECS_AL2023\",\"imageIdOverride\":\"$EU_BASE\"}]}" > /dev/null
awsr eu-west-1 batch create-compute-environment --compute-environment-name cli-ce-bestfit --type MANAGED \
  --compute-resources '{"type":"EC2","allocationStrategy":"BEST_FIT","maxvCpus":4,"instanceTypes":["optimal"],"subnets":["subnet-0123456789abcdef0"],"instanceRole":"ecsInstanceRole"}' > /dev/null
ce_status() { awsr eu-west-1 batch describe-compute-environments --compute-environments "$1" | field 'd["computeEnvironments"][0]["status"]'; }
for _ in $(seq 50); do [ "$(ce_status cli-ce)" = VALID ] && break; sleep 0.1; done
[ "$(ce_status cli-ce)" = VALID ] || fail "cli-ce not VALID"
awsr eu-west-1 batch update-compute-environment --compute-environment cli-ce \
  --compute-resources "{\"ec2Configuration\":[{\"imageType\":\"ECS_AL2023\",\"imageIdOverride\":\"$COPY\"}]}" > /dev/null
# (UPDATING -> VALID over time is checked by awsemu.Batch.*: a CLI call here can take
# longer than the whole update at --speed 0.05)
for _ in $(seq 100); do [ "$(ce_status cli-ce)" = VALID ] && break; sleep 0.1; done
[ "$(awsr eu-west-1 batch describe-compute-environments --compute-environments "arn:aws:batch:eu-west-1:123456789012:compute-environment/cli-ce" | field 'd["computeEnvironments"][0]["computeResources"]["ec2Configuration"][0]["imageIdOverride"]')" = "$COPY" ] \
  || fail "imageIdOverride not updated"
for _ in $(seq 50); do [ "$(ce_status cli-ce-bestfit)" = VALID ] && break; sleep 0.1; done
expect_error_in eu-west-1 ClientException batch update-compute-environment --compute-environment cli-ce-bestfit \
  --compute-resources "{\"ec2Configuration\":[{\"imageType\":\"ECS_AL2023\",\"imageIdOverride\":\"$COPY\"}]}"
awsr eu-west-1 batch update-compute-environment --compute-environment cli-ce-bestfit --compute-resources '{"maxvCpus":8}' > /dev/null
for _ in $(seq 50); do [ "$(ce_status cli-ce-bestfit)" = VALID ] && break; sleep 0.1; done
expect_error_in eu-west-1 ClientException batch delete-compute-environment --compute-environment cli-ce-bestfit
awsr eu-west-1 batch update-compute-environment --compute-environment cli-ce-bestfit --state DISABLED > /dev/null
for _ in $(seq 50); do [ "$(ce_status cli-ce-bestfit)" = VALID ] && break; sleep 0.1; done
awsr eu-west-1 batch delete-compute-environment --compute-environment cli-ce-bestfit > /dev/null
for _ in $(seq 50); do
  [ "$(awsr eu-west-1 batch describe-compute-environments --compute-environments cli-ce-bestfit | field 'len(d["computeEnvironments"])')" = 0 ] && break
  sleep 0.1
done
[ "$(awsr eu-west-1 batch describe-compute-environments --compute-environments cli-ce-bestfit | field 'len(d["computeEnvironments"])')" = 0 ] \
  || fail "deleted compute environment still listed"

step "kms describe-key: the AWS-managed aws/ebs key, a customer-managed key, a malformed id"
K=$(awsr eu-west-1 kms describe-key --key-id alias/aws/ebs)
[ "$(echo "$K" | field 'd["KeyMetadata"]["KeyManager"]')" = AWS ] || fail "aws/ebs not AWS-managed: $K"
KARN=$(echo "$K" | field 'd["KeyMetadata"]["Arn"]')
case "$KARN" in arn:aws:kms:eu-west-1:123456789012:key/*) ;; *) fail "aws/ebs key ARN: $KARN" ;; esac
[ "$(awsr eu-west-1 kms describe-key --key-id "$KARN" | field 'd["KeyMetadata"]["KeyManager"]')" = AWS ] \
  || fail "aws/ebs by its ARN not AWS-managed"
[ "$(awsr eu-west-1 kms describe-key --key-id alias/ami | field 'd["KeyMetadata"]["KeyManager"]')" = CUSTOMER ] \
  || fail "alias/ami not customer-managed"
expect_error_in eu-west-1 NotFoundException kms describe-key --key-id 'not a key'

step "instances: run, describe with filters, terminate"
RUN=$(awsr eu-west-1 ec2 run-instances --image-id "$COPY" --instance-type m5.large --count 2 \
        --tag-specifications 'ResourceType=instance,Tags=[{Key=purpose,Value=cli}]')
[ "$(echo "$RUN" | field 'len(d["Instances"])')" = 2 ] || fail "run-instances count"
I1=$(echo "$RUN" | field 'd["Instances"][0]["InstanceId"]')
awsr eu-west-1 ec2 wait instance-running --instance-ids "$I1"
[ "$(awsr eu-west-1 ec2 describe-instances --filters Name=image-id,Values="$COPY" Name=instance-state-name,Values=running | field 'sum(len(r["Instances"]) for r in d["Reservations"])')" = 2 ] \
  || fail "describe-instances filters"
awsr eu-west-1 ec2 run-instances --launch-template LaunchTemplateName=cli-lt,Version='$Default' --count 1 \
  | field 'd["Instances"][0]["ImageId"]' | grep -qx "$COPY" || fail "run-instances from the launch template"
[ "$(awsr eu-west-1 ec2 terminate-instances --instance-ids "$I1" | field 'd["TerminatingInstances"][0]["CurrentState"]["Name"]')" = shutting-down ] \
  || fail "terminate-instances"
awsr eu-west-1 ec2 wait instance-terminated --instance-ids "$I1"

step "deregister-image with delete-associated-snapshots"
# This CLI (2.9) predates DeleteAssociatedSnapshots; a python3 botocore that has it in its
# model sends it (the pyenv one here does; Debian's python3-botocore is older).
if python3 -c 'import botocore.session as s; m = s.get_session().get_service_model("ec2")
assert "DeleteAssociatedSnapshots" in m.operation_model("DeregisterImage").input_shape.members' 2>/dev/null; then
  DR=$(URL="$URL" IMAGE="$MANAGED" python3 -c '
import json, os, botocore.session
c = botocore.session.get_session().create_client("ec2", region_name="eu-west-1", endpoint_url=os.environ["URL"])
r = c.deregister_image(ImageId=os.environ["IMAGE"], DeleteAssociatedSnapshots=True)
r.pop("ResponseMetadata", None)
print(json.dumps(r))')
  [ "$(echo "$DR" | field 'd["DeleteSnapshotResults"][0]["ReturnCode"]')" = success ] || fail "deregister results: $DR"
else
  echo "SKIP: no python3 botocore with DeregisterImage DeleteAssociatedSnapshots; plain deregister-image"
  awsr eu-west-1 ec2 deregister-image --image-id "$MANAGED"
fi
expect_error_in eu-west-1 InvalidAMIID.NotFound ec2 describe-images --image-ids "$MANAGED"
awsr eu-west-1 ec2 delete-launch-template --launch-template-id "$LT" > /dev/null
expect_error_in eu-west-1 InvalidLaunchTemplateId.NotFound ec2 describe-launch-templates --launch-template-ids "$LT"

echo "PASS: awsemu answered the AWS CLI correctly"
