// `amibake doctor`: one line per check, ✓ or ✗, and a fix for every ✗.
#pragma once

#include <iosfwd>

#include "aws/config.h"

namespace amibake::cli {

// Runs every check and prints them to `out`. Returns 0 when the direct method can
// run from here (credentials, identity, region, host), 1 otherwise. Whether this
// host is on EC2 (for the chroot method) is reported but does not fail the doctor.
int run_doctor(const aws::ClientSettings& settings, std::ostream& out);

}  // namespace amibake::cli
