// Logging: one line per event on stderr, secrets redacted.
//
// Library code returns errors and does not log them (STYLE.md); logging is for
// progress and for decisions (datavol logs one line per decision). The logger
// redacts secrets as a second line of defence: any value registered with
// register_secret(), and anything shaped like an AWS secret key, session token,
// or SigV4 signature, is replaced by "<redacted>" before the line is written.
#pragma once

#include <string>
#include <string_view>

namespace amibake::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the lowest level written (default kInfo; AMIBAKE_LOG=debug lowers it).
void set_level(Level level);
Level level();

// Sets a prefix such as "datavol" written before every line.
void set_program(std::string_view name);

// Remembers `secret` so every later line has it replaced by "<redacted>".
// Empty strings and strings shorter than 8 characters are ignored.
void register_secret(std::string_view secret);

// Returns `text` with registered secrets and secret-shaped tokens redacted.
std::string redact(std::string_view text);

// Writes one line (redacted) to stderr, or to the sink set by set_sink.
void write(Level level, std::string_view message);

// Replaces the output sink (tests use it to capture lines). nullptr restores stderr.
using Sink = void (*)(Level, std::string_view line);
void set_sink(Sink sink);

inline void debug(std::string_view m) { write(Level::kDebug, m); }
inline void info(std::string_view m) { write(Level::kInfo, m); }
inline void warn(std::string_view m) { write(Level::kWarn, m); }
inline void error(std::string_view m) { write(Level::kError, m); }

}  // namespace amibake::log
