// Small file helpers used everywhere: whole-file read, atomic write with a mode,
// and an fsynced append (the journal's write path).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace amibake {

// Returns the whole content of `path`, or an error naming the path and errno.
Result<std::string> read_file(const std::string& path);

// Writes `content` to `path` atomically (temp file in the same folder, fsync,
// rename) with permission bits `mode`. Creates no parent folders.
Status write_file_atomic(const std::string& path, const std::string& content, mode_t mode = 0644);

// Appends `line` (a newline is added) to `path`, creating it with `mode`, and fsyncs.
Status append_line_synced(const std::string& path, const std::string& line, mode_t mode = 0600);

// Creates `path` and its parents with `mode` (like mkdir -p); existing folders are fine.
Status make_dirs(const std::string& path, mode_t mode = 0755);

// Returns a fresh folder under $TMPDIR (or /tmp) named prefix.XXXXXX.
Result<std::string> make_temp_dir(const std::string& prefix);

// Returns the value of environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, const std::string& fallback = {});

}  // namespace amibake
