// The status file: what the last `datavol setup` did, for `datavol status [--json]`.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "datavol/host.h"
#include "datavol/setup.h"

namespace amibake::datavol {

// JSON text of `reports` (with the exit code and a UTC timestamp).
std::string status_json(const std::vector<VolumeReport>& reports, int exit_code,
                        const std::string& timestamp);

// Writes <run_dir>/status.json atomically (creating run_dir).
Status write_status(const HostPaths& paths, const std::vector<VolumeReport>& reports,
                    int exit_code);

// Reads the status file back and refreshes each volume's "mounted" from mountinfo.
// Returns the JSON text when `as_json`, else a human-readable table.
Result<std::string> read_status(const HostPaths& paths, bool as_json);

}  // namespace amibake::datavol
