// A bash completion script generated from a CLI11 command table.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace amibake::cli {

// Returns a bash script that defines `_<program>` and registers it with `complete` for
// `program`. It completes the subcommands of `app`, then each subcommand's flags and
// options together with the top-level ones (amibake falls through to them), the values of
// options whose validator names a set ({a,b}), and files for other values and
// positionals. Everything comes from `app`, so the script cannot drift from the parser.
std::string bash_completion(const CLI::App& app, const std::string& program);

}  // namespace amibake::cli
