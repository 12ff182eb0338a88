// A manual page generated from a CLI11 command table.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace amibake::cli {

// Returns a man(7) page in roff for `program` (section 1): NAME from the app's description,
// SYNOPSIS, the top-level options, then one subsection per visible subcommand with its
// purpose, positionals and options (their help texts verbatim), and SEE ALSO pointing at
// the installed docs. Like the completion, it is the parser's own table, so it cannot drift.
std::string man_page(const CLI::App& app, const std::string& program, const std::string& version);

}  // namespace amibake::cli
