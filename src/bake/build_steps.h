// Internal to the bake: the context every step sees, and the steps that live in
// other files (direct.cc). Not part of the public interface (build.h).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "aws/client.h"
#include "aws/query.h"
#include "aws/waiter.h"
#include "bake/build.h"
#include "bake/events.h"
#include "bake/journal.h"

namespace amibake::bake {

struct StepContext {
  aws::AwsClient& client;
  const BuildOptions& options;
  Events& events;
  const std::atomic<int>& interrupts;
  Journal& journal;
  std::string build_id;
  std::string work;  // this build's local folder: <work_dir>/<build_id>
  // Results of finished steps, by step name (also in the journal).
  std::map<std::string, nlohmann::json> results;

  // Returns an error with exit code 130 once Ctrl-C was pressed.
  Status check_interrupt() const;
  // Tags for a resource this build makes.
  std::vector<aws::Tag> tags(const std::string& role, bool temporary) const;
  // Options for an AWS waiter in a step: AMIBAKE_POLL_MS interval, NotFound just after
  // create tolerated, progress as events, and a sleep that ends at once on Ctrl-C.
  aws::WaitOptions wait_options(const std::string& what, std::chrono::minutes timeout);
  // Journals a created resource of this build.
  Status record(const std::string& step, const std::string& kind, const std::string& id,
                bool temporary);
};

// The direct method's data steps (direct.cc). Each returns its journaled result.
Result<nlohmann::json> step_fetch(StepContext& ctx);
Result<nlohmann::json> step_install(StepContext& ctx);
Result<nlohmann::json> step_upload(StepContext& ctx);

}  // namespace amibake::bake
