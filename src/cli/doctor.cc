// `amibake doctor`. The checks run in the order a user fixes things: without
// credentials nothing else on the AWS side can be asked, so a failing early check
// turns the dependent ones into "skipped" lines instead of a cascade of errors.
// The secret key never appears; the access key id is shown shortened, enough to
// tell two keys apart.
#include "cli/doctor.h"

#include <sys/stat.h>

#include <ostream>

#include "aws/client.h"
#include "aws/imds.h"
#include "aws/sts.h"
#include "bake/host_checks.h"

namespace amibake::cli {
namespace {

void print(std::ostream& out, const bake::Check& c) {
  out << (c.ok ? "✓ " : "✗ ") << c.name << ": " << c.detail << "\n";
  if (!c.ok && !c.fix.empty()) out << "    fix: " << c.fix << "\n";
}

std::string short_key_id(const std::string& id) {
  if (id.size() <= 8) return id;
  return id.substr(0, 4) + "…" + id.substr(id.size() - 4);
}

// Checks the AWS side; returns false when any of them failed.
bool check_aws(const aws::ClientSettings& settings, std::ostream& out) {
  auto client = aws::make_client(settings);
  if (!client) {
    print(out, {"aws configuration", false, client.error().message, client.error().hint});
    return false;
  }
  aws::AwsClient& c = **client;
  bool all_ok = true;
  out << "✓ region: " << c.region() << "\n";
  for (const char* svc : {"ec2", "ssm", "sts", "ebs"}) {
    out << "  endpoint " << svc << ": " << c.endpoint(svc) << " (" << c.endpoint_source(svc)
        << ")\n";
  }
  auto creds = c.credentials().get();
  if (!creds) {
    print(out, {"credentials", false, creds.error().message, creds.error().hint});
    out << "- identity: skipped (no credentials)\n";
    return false;
  }
  print(out, {"credentials", true,
              "key " + short_key_id(creds->access_key_id) + " from " + creds->source, ""});
  auto who = aws::sts::get_caller_identity(c);
  if (!who) {
    print(out, {"identity", false, who.error().message, who.error().hint});
    all_ok = false;
  } else {
    print(out, {"identity", true, "account " + who->account + ", " + who->arn, ""});
  }
  return all_ok;
}

// The chroot method's needs beyond the direct method's local ones: this host is an EC2
// instance (IMDSv2), in the region the client is set to, and udev's by-id folder exists
// (where attached volumes are found by id; NVMe serials are read when it does not).
bool check_ec2_host(const std::string& client_region, std::ostream& out) {
  const std::string fix = "the chroot method runs on an EC2 instance; use the direct method here";
  aws::ImdsClient imds;
  if (imds.disabled()) {
    print(out, {"EC2 host (chroot method)", false, "IMDS disabled by AWS_EC2_METADATA_DISABLED", fix});
    return false;
  }
  auto id = imds.instance_id();
  if (!id) {
    print(out, {"EC2 host (chroot method)", false,
                "not on EC2 (no IMDSv2 answer from " + imds.endpoint() + ")", fix});
    return false;
  }
  auto az = imds.availability_zone();
  auto region = imds.region();
  print(out, {"EC2 host (chroot method)", true,
              "instance " + *id + (az ? " in " + *az : std::string()), ""});
  bool ok = true;
  if (region && !client_region.empty() && *region != client_region) {
    print(out, {"host region", false, "this host is in " + *region + ", builds go to " + client_region,
                "build with --region " + *region + " for the chroot method"});
    ok = false;
  }
  struct stat st {};
  bool by_id = ::stat("/dev/disk/by-id", &st) == 0 && S_ISDIR(st.st_mode);
  print(out, {"device links", true,
              by_id ? "/dev/disk/by-id present (attached volumes are found by id there)"
                    : "no /dev/disk/by-id: attached volumes are found by NVMe serial instead",
              ""});
  return ok;
}

}  // namespace

int run_doctor(const aws::ClientSettings& settings, std::ostream& out) {
  bool ok = check_aws(settings, out);
  for (const auto& c : bake::check_direct_method_host({}, bake::kDirectMinFreeBytes)) {
    print(out, c);
    ok = ok && c.ok;
  }
  std::string region;
  if (auto client = aws::make_client(settings)) region = (*client)->region();
  bool chroot_ok = check_ec2_host(region, out) && ok;
  out << (ok ? "direct method: ready\n" : "direct method: not ready (see ✗ above)\n");
  out << (chroot_ok ? "chroot method: ready\n"
                    : "chroot method: not ready on this host (see ✗ above)\n");
  return ok ? 0 : 1;
}

}  // namespace amibake::cli
