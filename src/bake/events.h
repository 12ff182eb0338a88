// Build progress events. stdout is reserved for results, so every event goes to
// stderr: one plain line per event when not on a terminal (or always, for now — a
// live terminal view is not built yet), or one JSON object per line with
// `--events json`. Events never carry secrets.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace amibake::bake {

enum class EventFormat { kPlain, kJson, kQuiet };

class Events {
 public:
  explicit Events(EventFormat format = EventFormat::kPlain) : format_(format) {}
  void set_format(EventFormat f) { format_ = f; }

  // A step starts / ends.
  void step(const std::string& name, const std::string& message);
  // A note inside the current step ("reusing snap-… from the journal").
  void info(const std::string& message);
  // Counted progress: "fetch 120/512 blocks (60.0 MiB, 210 MiB/s)". Rate-limited to
  // one line per `kMinPercentStep` percent in plain mode.
  void progress(const std::string& what, uint64_t done, uint64_t total, uint64_t bytes,
                double seconds);
  void warn(const std::string& message);

 private:
  void emit(const nlohmann::json& event, const std::string& plain);
  EventFormat format_;
  std::mutex mu_;
  std::string current_step_;
  int last_percent_ = -1;
};

}  // namespace amibake::bake
