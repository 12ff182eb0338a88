// Build progress events. stdout is reserved for results, so every event goes to
// stderr: on a terminal a live view (step lines, and one progress bar line with
// rate and ETA rewritten in place), otherwise one plain line per event, or one JSON
// object per line with `--events json`. Events never carry secrets.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace amibake::bake {

enum class EventFormat { kPlain, kJson, kQuiet, kLive };

// Returns the live view's bar line for `what`, e.g.
// "blocks fetched [##########----------] 120/240  60.0 MiB  210 MiB/s  ETA 1 s".
std::string render_bar(const std::string& what, uint64_t done, uint64_t total, uint64_t bytes,
                       double seconds, int width = 20);

class Events {
 public:
  explicit Events(EventFormat format = EventFormat::kPlain) : format_(format) {}
  // Plain on a terminal becomes the live view.
  static EventFormat plain_or_live();
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
  bool bar_open_ = false;  // live view: a bar line without its newline yet
  std::string last_what_;  // the counter last shown, and how far it got: workers report
  uint64_t last_done_ = 0; // out of order, and a late smaller count must not be shown
};

}  // namespace amibake::bake
