// `amibake base`: resolve and describe the base AMI.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>

#include "aws/config.h"
#include "bake/base_image.h"

namespace amibake::cli {

struct BaseFlags {
  bake::BaseSelector selector;
  bool json = false;
};

// Adds --variant/--ami/--ssm-parameter/--name-filter/--json to `cmd`.
void add_base_flags(CLI::App& cmd, BaseFlags& flags);

// Resolves and prints the base (text or JSON) to `out`; errors go to stderr.
// Returns the exit code.
int run_base(const aws::ClientSettings& settings, const BaseFlags& flags, std::ostream& out);

// Prints `e` to stderr as "amibake: <message>" plus its hint; returns its exit code.
int report_error(const Error& e);

}  // namespace amibake::cli
