// Fault injection: which requests awsemu answers badly, from a spec and a seed.
//
// Spec (comma-separated, see emulator/README.md):
//   throttle=R 5xx=R reset=R hang=R slow=R lost=R notfound=R   rates in [0,1]
//   op=Name[|Name...]      only these operations get faults (default: all)
//   hang_seconds=S (default 30)  slow_seconds=S (default 2)  notfound_seconds=S (default 3)
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>

#include "base/result.h"

namespace amibake::emu {

// kLost: the request is carried out, then the connection is reset instead of the answer.
enum class Fault { kNone, kThrottle, k5xx, kReset, kHang, kSlow, kLost };

struct FaultSpec {
  double throttle = 0, server_error = 0, reset = 0, hang = 0, slow = 0, lost = 0, notfound = 0;
  double hang_seconds = 30, slow_seconds = 2, notfound_seconds = 3;
  std::set<std::string> ops;  // empty = every operation

  // Returns true when no fault can ever fire.
  bool empty() const {
    return per_request_total() + notfound == 0;
  }
  // The rates of the faults one draw per request picks from (at most one of them).
  double per_request_total() const { return throttle + server_error + reset + hang + slow + lost; }
};

// Parses a --faults spec; errors name the bad item.
Result<FaultSpec> parse_fault_spec(const std::string& text);

// Parses a --latency spec "OP=MS[,OP=MS...]" into "service:Action" -> milliseconds added
// to each answer of that operation; a bare name is an EC2 operation ("CreateVolume" =
// "ec2:CreateVolume"). Errors name the bad item.
Result<std::map<std::string, double>> parse_latency_spec(const std::string& text);

// Draws faults with a seeded generator; thread-safe.
class FaultInjector {
 public:
  FaultInjector(FaultSpec spec, uint64_t seed) : spec_(std::move(spec)), rng_(seed) {}

  // Returns the fault (at most one) for one request of operation `op`.
  Fault draw(const std::string& op);
  // Returns true when a resource just created by `op` should stay invisible for
  // spec().notfound_seconds (eventual consistency).
  bool draw_invisible(const std::string& op);
  const FaultSpec& spec() const { return spec_; }

 private:
  bool applies(const std::string& op) const { return spec_.ops.empty() || spec_.ops.count(op); }
  FaultSpec spec_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace amibake::emu
