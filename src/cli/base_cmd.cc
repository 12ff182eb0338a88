#include "cli/base_cmd.h"

#include <iostream>

#include "aws/client.h"
#include "bake/variants.h"

namespace amibake::cli {

int report_error(const Error& e) {
  std::cerr << "amibake: " << e.describe() << "\n";
  return e.code == 0 ? 1 : e.code;
}

void add_base_flags(CLI::App& cmd, BaseFlags& f) {
  auto* variant = cmd.add_option("--variant", f.selector.variant,
                                 "ECS-optimized family: " + bake::variant_names() + " (default " +
                                     std::string(bake::kDefaultVariant) + ")");
  auto* ami = cmd.add_option("--ami", f.selector.ami_id, "an AMI id");
  auto* ssm = cmd.add_option("--ssm-parameter", f.selector.ssm_parameter,
                             "an SSM parameter holding an AMI id");
  auto* name = cmd.add_option("--name-filter", f.selector.name_filter,
                              "newest image whose name matches (wildcards * ?)");
  cmd.add_option("--owner", f.selector.owner, "owner for --name-filter (default amazon)");
  variant->excludes(ami)->excludes(ssm)->excludes(name);
  ami->excludes(ssm)->excludes(name);
  ssm->excludes(name);
  cmd.add_flag("--json", f.json, "print JSON instead of text");
}

int run_base(const aws::ClientSettings& settings, const BaseFlags& flags, std::ostream& out) {
  // Validate before building a client: a typo should not wait on IMDS or the network.
  if (auto v = bake::validate(flags.selector); !v) return report_error(v.error());
  auto client = aws::make_client(settings);
  if (!client) return report_error(client.error());
  auto base = bake::resolve_base(**client, flags.selector);
  if (!base) return report_error(base.error());
  if (flags.json) {
    out << bake::describe_json(*base).dump(2) << "\n";
  } else {
    out << bake::describe_text(*base);
  }
  return 0;
}

}  // namespace amibake::cli
