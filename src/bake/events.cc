#include "bake/events.h"

#include <chrono>
#include <unistd.h>

#include <cstdio>

#include "base/log.h"

namespace amibake::bake {
namespace {
constexpr int kMinPercentStep = 10;
}

std::string render_bar(const std::string& what, uint64_t done, uint64_t total, uint64_t bytes,
                       double seconds, int width) {
  int filled = total ? static_cast<int>(done * static_cast<uint64_t>(width) / total) : width;
  double mib = static_cast<double>(bytes) / (1 << 20);
  double rate = seconds > 0 ? mib / seconds : 0;
  double eta = (done && done < total) ? seconds * static_cast<double>(total - done) / done : 0;
  char tail[96];
  if (bytes == 0) {
    // A count with no bytes behind it (a snapshot's percent): no MiB or rate to show.
    std::snprintf(tail, sizeof tail, " %llu/%llu  ETA %.0f s",
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), eta);
  } else {
    std::snprintf(tail, sizeof tail, " %llu/%llu  %.1f MiB  %.0f MiB/s  ETA %.0f s",
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                  mib, rate, eta);
  }
  return what + " [" + std::string(filled, '#') + std::string(width - filled, '-') + "]" + tail;
}

EventFormat Events::plain_or_live() {
  return ::isatty(2) ? EventFormat::kLive : EventFormat::kPlain;
}

void Events::emit(const nlohmann::json& event, const std::string& plain) {
  if (format_ == EventFormat::kQuiet) return;
  if (format_ == EventFormat::kLive && bar_open_) {
    std::fputs("\n", stderr);  // keep the finished bar, start the next line below it
    bar_open_ = false;
  }
  if (format_ == EventFormat::kJson) {
    nlohmann::json e = event;
    e["time"] = std::chrono::duration<double>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
    std::string line = log::redact(e.dump()) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  log::info(plain);
}

void Events::step(const std::string& name, const std::string& message) {
  std::lock_guard lock(mu_);
  current_step_ = name;
  last_percent_ = -1;
  last_what_.clear();
  last_done_ = 0;
  emit({{"event", "step"}, {"step", name}, {"message", message}}, "[" + name + "] " + message);
}

void Events::info(const std::string& message) {
  std::lock_guard lock(mu_);
  emit({{"event", "info"}, {"step", current_step_}, {"message", message}},
       "[" + current_step_ + "] " + message);
}

void Events::warn(const std::string& message) {
  std::lock_guard lock(mu_);
  emit({{"event", "warning"}, {"step", current_step_}, {"message", message}},
       "[" + current_step_ + "] warning: " + message);
}

void Events::progress(const std::string& what, uint64_t done, uint64_t total, uint64_t bytes,
                      double seconds) {
  std::lock_guard lock(mu_);
  if (what == last_what_ && done <= last_done_) return;
  last_what_ = what;
  last_done_ = done;
  if (format_ == EventFormat::kLive) {
    // Rewrite one line in place: carriage return, the bar, clear to the end of line.
    std::string line = "\r[" + current_step_ + "] " +
                       log::redact(render_bar(what, done, total, bytes, seconds)) + "\x1b[K";
    std::fputs(line.c_str(), stderr);
    bar_open_ = true;
    if (done == total) {
      std::fputs("\n", stderr);
      bar_open_ = false;
    }
    return;
  }
  int percent = total ? static_cast<int>(done * 100 / total) : 100;
  // Workers report out of order: only ever move forward, one line per step of
  // kMinPercentStep percent, and exactly one line at 100%.
  if (format_ == EventFormat::kPlain &&
      (percent / kMinPercentStep <= last_percent_ / kMinPercentStep || last_percent_ == 100) &&
      !(percent == 100 && last_percent_ != 100)) {
    return;
  }
  last_percent_ = percent;
  double mib = static_cast<double>(bytes) / (1 << 20);
  double rate = seconds > 0 ? mib / seconds : 0;
  double eta = (done && done < total) ? seconds * static_cast<double>(total - done) / done : 0;
  char plain[160];
  if (bytes == 0) {  // a count with no bytes behind it (a snapshot's percent)
    std::snprintf(plain, sizeof plain, "%s %llu/%llu (%d%%, ETA %.0f s)", what.c_str(),
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                  percent, eta);
  } else {
    std::snprintf(plain, sizeof plain, "%s %llu/%llu (%d%%, %.1f MiB, %.0f MiB/s, ETA %.0f s)",
                  what.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total), percent, mib, rate, eta);
  }
  emit({{"event", "progress"}, {"step", current_step_}, {"what", what}, {"done", done},
        {"total", total}, {"bytes", bytes}, {"seconds", seconds}},
       "[" + current_step_ + "] " + plain);
}

}  // namespace amibake::bake
