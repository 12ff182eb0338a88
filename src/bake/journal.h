// The build journal: an append-only, fsynced JSON-lines file per build that
// records every AWS resource a build is about to create and has created, and
// each finished step's result (DESIGN.md "The pipeline"; modelled on .ninja_log).
//
// It is what makes `build --resume`, `cleanup` and Ctrl-C safe: a resource is
// journaled as "intent" (with its client token) before the create call, and as
// "created" (with its id) after, so a crash between the two is recoverable by the
// client token or by the build tag. Lines never hold secrets. Mode 0600.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace amibake::bake {

// An AWS resource the build made.
struct JournalResource {
  std::string kind;    // "image", "snapshot", "volume"
  std::string id;      // "ami-…", "snap-…", "vol-…"
  std::string region;
  std::string step;    // the step that created it
  bool temporary = false;  // deleted at the end of a successful build
  bool deleted = false;
};

// What replaying a journal tells: where the build got to.
struct JournalState {
  std::string build_id;
  nlohmann::json start;                                 // the "start" entry's fields
  std::map<std::string, nlohmann::json> step_results;   // step name -> its result
  std::vector<JournalResource> resources;               // in creation order
  std::map<std::string, std::string> intents;           // client token -> step, not yet created
  // Every region an intent named (a copy into another region): cleanup searches each by
  // the build's tag, since a kill before the "created" line leaves only the tag.
  std::set<std::string> intent_regions;
  bool finished = false;                                // "finished" written
  nlohmann::json finish;                                // the "finished" entry's fields
  bool cleaned = false;                                 // "cleaned" written
  bool interrupted = false;                             // "interrupted" written (Ctrl-C)
  // Pointers the build is about to move but does not own (an SSM parameter, a launch
  // template's default version, a compute environment), each with what to put back,
  // keyed by "kind region target", in the order first written; "restored" set by cleanup.
  std::map<std::string, nlohmann::json> pointers;
  std::vector<std::string> pointer_order;

  // Returns the string field `key` of the start entry, or `fallback` when the start
  // entry or the field is missing (a damaged journal must not crash a reader).
  std::string start_string(const char* key, const std::string& fallback = "") const {
    if (!start.is_object() || !start.contains(key) || !start[key].is_string()) return fallback;
    return start[key].get<std::string>();
  }

  // Returns the live (created, not deleted) resources, newest first: the order to
  // delete them in (an image before the snapshot it uses).
  std::vector<JournalResource> live_resources() const;
};

class Journal {
 public:
  // Returns $XDG_STATE_HOME/amibake/builds (default ~/.local/state/amibake/builds).
  static std::string default_dir();
  // Returns a fresh build id: "b-YYYYMMDD-HHMMSS-xxxxxx".
  static std::string new_build_id();

  // Creates a new journal (the folder is made 0700, the file 0600) and writes `start`.
  static Result<Journal> create(const std::string& dir, const std::string& build_id,
                                const nlohmann::json& start);
  // Opens an existing journal for appending and replays it.
  static Result<Journal> open(const std::string& dir, const std::string& build_id);
  // Lists the build ids with a journal in `dir`, oldest first.
  static std::vector<std::string> list(const std::string& dir);

  const std::string& path() const { return path_; }
  const JournalState& state() const { return state_; }

  // Records that `step` is about to create a `kind` with `client_token`, in `region`
  // when that is not the build region.
  Status intent(const std::string& step, const std::string& kind, const std::string& client_token,
                const std::string& region = "");
  // Records a created resource.
  Status created(const JournalResource& resource);
  // Records that resource `id` is gone.
  Status deleted(const std::string& id);
  // Records, before the change, that the build moves pointer `key` ("kind region target");
  // `before` holds what cleanup needs to put it back. The first record of a key wins, so
  // a resumed step that records again keeps the state from before the build.
  Status pointer(const std::string& key, const nlohmann::json& before);
  // Records that cleanup put pointer `key` back (or found nothing to undo).
  Status pointer_restored(const std::string& key);
  // Records a finished step and its result (ids, counts) for --resume to reuse.
  Status step_done(const std::string& step, const nlohmann::json& result);
  Status finished(const nlohmann::json& summary);
  Status cleaned();
  Status interrupted();

  // Replays journal lines into a state; a torn last line (crash mid-write) is ignored,
  // any other bad line is an error naming its number.
  static Result<JournalState> replay(const std::string& text);

 private:
  Status append(nlohmann::json entry);
  std::string path_;
  JournalState state_;
};

}  // namespace amibake::bake
