// Journal implementation. Every append is one write(2) of one line followed by
// fsync, so after a crash the file holds whole lines plus at most one torn last
// line, which replay ignores. Replay applies the entries in order to a state;
// nothing else reads the file, so the format can grow by adding entry kinds.
#include "bake/journal.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>
#include <sstream>

#include "base/files.h"

namespace amibake::bake {
namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void apply_entry(JournalState& s, const nlohmann::json& e) {
  const std::string ev = e.value("event", "");
  if (ev == "start") {
    s.build_id = e.value("build_id", "");
    s.start = e;
  } else if (ev == "intent") {
    s.intents[e.value("client_token", "")] = e.value("step", "");
    if (!e.value("region", "").empty()) s.intent_regions.insert(e.value("region", ""));
  } else if (ev == "created") {
    JournalResource r;
    r.kind = e.value("kind", "");
    r.id = e.value("id", "");
    r.region = e.value("region", "");
    r.step = e.value("step", "");
    r.temporary = e.value("temporary", false);
    s.resources.push_back(r);
    if (e.contains("client_token")) s.intents.erase(e.value("client_token", ""));
  } else if (ev == "deleted") {
    for (auto& r : s.resources) {
      if (r.id == e.value("id", "")) r.deleted = true;
    }
  } else if (ev == "step") {
    s.step_results[e.value("step", "")] = e.value("result", nlohmann::json::object());
  } else if (ev == "finished") {
    s.finished = true;
    s.finish = e;
  } else if (ev == "cleaned") {
    s.cleaned = true;
  } else if (ev == "interrupted") {
    s.interrupted = true;
  } else if (ev == "pointer") {
    std::string key = e.value("key", "");
    if (!s.pointers.count(key)) {
      s.pointers[key] = e.value("before", nlohmann::json::object());
      s.pointer_order.push_back(key);
    }
  } else if (ev == "pointer-restored") {
    auto it = s.pointers.find(e.value("key", ""));
    if (it != s.pointers.end()) it->second["restored"] = true;
  }
}

}  // namespace

std::vector<JournalResource> JournalState::live_resources() const {
  std::vector<JournalResource> out;
  for (auto it = resources.rbegin(); it != resources.rend(); ++it) {
    if (!it->deleted) out.push_back(*it);
  }
  return out;
}

std::string Journal::default_dir() {
  std::string state = env_or("XDG_STATE_HOME");
  if (state.empty()) state = env_or("HOME", "/root") + "/.local/state";
  return state + "/amibake/builds";
}

std::string Journal::new_build_id() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffff);
  return std::string("b-") + stamp + "-" + suffix;
}

Result<Journal> Journal::create(const std::string& dir, const std::string& build_id,
                                const nlohmann::json& start) {
  AMIBAKE_TRY(make_dirs(dir, 0700));
  Journal j;
  j.path_ = dir + "/" + build_id + ".jsonl";
  struct stat st {};
  if (::stat(j.path_.c_str(), &st) == 0) {
    return make_error(j.path_ + ": a journal for build " + build_id + " already exists");
  }
  nlohmann::json e = start;
  e["event"] = "start";
  e["build_id"] = build_id;
  AMIBAKE_TRY(j.append(e));
  return j;
}

Result<Journal> Journal::open(const std::string& dir, const std::string& build_id) {
  Journal j;
  j.path_ = dir + "/" + build_id + ".jsonl";
  auto text = read_file(j.path_);
  if (!text) {
    return make_error("build " + build_id + ": no journal at " + j.path_,
                      "list builds with `amibake builds`, or find leftovers with `amibake gc`");
  }
  auto state = replay(*text);
  if (!state) return state.error().wrap(j.path_);
  j.state_ = std::move(*state);
  return j;
}

std::vector<std::string> Journal::list(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 6 && n.ends_with(".jsonl")) out.push_back(n.substr(0, n.size() - 6));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<JournalState> Journal::replay(const std::string& text) {
  JournalState s;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    auto e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded() || !e.is_object()) {
      if (in.peek() == EOF) break;  // torn by a crash mid-append: it never happened
      return make_error("line " + std::to_string(n) + ": not a journal entry",
                        "the journal was edited or damaged; use `amibake gc` to find resources by tag");
    }
    apply_entry(s, e);
  }
  return s;
}

Status Journal::append(nlohmann::json entry) {
  entry["time"] = utc_now();
  apply_entry(state_, entry);
  return append_line_synced(path_, entry.dump(), 0600);
}

Status Journal::intent(const std::string& step, const std::string& kind,
                       const std::string& client_token, const std::string& region) {
  auto entry = nlohmann::json::object({{"event", "intent"}, {"step", step}, {"kind", kind}, {"client_token", client_token}});
  if (!region.empty()) entry["region"] = region;
  return append(entry);
}

Status Journal::created(const JournalResource& r) {
  return append(nlohmann::json::object({{"event", "created"},
                 {"step", r.step},
                 {"kind", r.kind},
                 {"id", r.id},
                 {"region", r.region},
                 {"temporary", r.temporary}}));
}

Status Journal::deleted(const std::string& id) { return append(nlohmann::json::object({{"event", "deleted"}, {"id", id}})); }

Status Journal::step_done(const std::string& step, const nlohmann::json& result) {
  return append(nlohmann::json::object({{"event", "step"}, {"step", step}, {"result", result}}));
}

Status Journal::finished(const nlohmann::json& summary) {
  nlohmann::json e = summary;
  e["event"] = "finished";
  return append(e);
}

Status Journal::interrupted() {
  return append(nlohmann::json::object({{"event", "interrupted"}}));
}

Status Journal::pointer(const std::string& key, const nlohmann::json& before) {
  if (state_.pointers.count(key)) return ok();
  return append(nlohmann::json::object({{"event", "pointer"}, {"key", key}, {"before", before}}));
}

Status Journal::pointer_restored(const std::string& key) {
  return append(nlohmann::json::object({{"event", "pointer-restored"}, {"key", key}}));
}

Status Journal::cleaned() { return append(nlohmann::json::object({{"event", "cleaned"}})); }

}  // namespace amibake::bake
