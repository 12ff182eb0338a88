// Fault spec parsing and drawing. One uniform draw per request picks at most one
// fault: the rates are stacked in a fixed order (throttle, 5xx, reset, hang, slow, lost),
// so with the same seed and the same request sequence the same requests fail.
#include "emulator/faults.h"

#include <cstdlib>
#include <sstream>

namespace amibake::emu {
namespace {

bool parse_number(const std::string& text, double* out) {
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return !text.empty() && end && *end == '\0' && *out >= 0;
}

}  // namespace

Result<std::map<std::string, double>> parse_latency_spec(const std::string& text) {
  std::map<std::string, double> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    double ms = 0;
    std::string op = item.substr(0, eq);
    if (eq == std::string::npos || op.empty() || op.back() == ':' ||
        !parse_number(item.substr(eq + 1), &ms)) {
      return make_error(
          "--latency: item \"" + item + "\": expected OP=MS (milliseconds, 0 or more)",
          "write e.g. --latency ebs:GetSnapshotBlock=60,CreateSnapshot=200");
    }
    if (op.find(':') == std::string::npos) op = "ec2:" + op;
    out[op] = ms;
  }
  return out;
}

Result<FaultSpec> parse_fault_spec(const std::string& text) {
  FaultSpec spec;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      return make_error("--faults: item \"" + item + "\": expected name=value",
                        "write e.g. --faults throttle=0.1,5xx=0.05,op=PutSnapshotBlock");
    }
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "op") {
      std::stringstream ops(value);
      std::string op;
      while (std::getline(ops, op, '|')) {
        if (op.find(':') != std::string::npos) op = op.substr(op.find(':') + 1);
        if (!op.empty()) spec.ops.insert(op);
      }
      continue;
    }
    double number = 0;
    if (!parse_number(value, &number)) {
      return make_error("--faults: item \"" + item + "\": value is not a non-negative number",
                        "rates are fractions such as 0.05");
    }
    double* slot = key == "throttle"           ? &spec.throttle
                   : key == "5xx"              ? &spec.server_error
                   : key == "reset"            ? &spec.reset
                   : key == "hang"             ? &spec.hang
                   : key == "slow"             ? &spec.slow
                   : key == "lost"             ? &spec.lost
                   : key == "notfound"         ? &spec.notfound
                   : key == "hang_seconds"     ? &spec.hang_seconds
                   : key == "slow_seconds"     ? &spec.slow_seconds
                   : key == "notfound_seconds" ? &spec.notfound_seconds
                                               : nullptr;
    if (!slot) {
      return make_error("--faults: unknown fault \"" + key + "\"",
                        "known: throttle 5xx reset hang slow lost notfound op hang_seconds "
                        "slow_seconds notfound_seconds");
    }
    bool is_rate = key.find("_seconds") == std::string::npos;
    if (is_rate && number > 1) {
      return make_error("--faults: item \"" + item + "\": a rate must be between 0 and 1");
    }
    *slot = number;
  }
  if (spec.per_request_total() > 1) {
    return make_error("--faults: \"" + text + "\": rates add up to more than 1",
                      "lower the rates so at most one fault per request is possible");
  }
  return spec;
}

Fault FaultInjector::draw(const std::string& op) {
  if (!applies(op)) return Fault::kNone;
  if (spec_.per_request_total() <= 0) return Fault::kNone;
  double u;
  {
    std::lock_guard<std::mutex> lock(mu_);
    u = std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  double edge = spec_.throttle;
  if (u < edge) return Fault::kThrottle;
  if (u < (edge += spec_.server_error)) return Fault::k5xx;
  if (u < (edge += spec_.reset)) return Fault::kReset;
  if (u < (edge += spec_.hang)) return Fault::kHang;
  if (u < (edge += spec_.slow)) return Fault::kSlow;
  if (u < (edge += spec_.lost)) return Fault::kLost;
  return Fault::kNone;
}

bool FaultInjector::draw_invisible(const std::string& op) {
  if (!applies(op) || spec_.notfound <= 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return std::uniform_real_distribution<double>(0, 1)(rng_) < spec_.notfound;
}

}  // namespace amibake::emu
