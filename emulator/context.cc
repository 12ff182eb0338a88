// awsemu's shared state: ids, the clock scaled by --speed, lazy state transitions,
// and persistence of the world to <data>/state.json.
//
// Transitions are lazy: nothing ticks in the background. Each resource records when
// its next state is due (ready_at); advance() runs before every request and moves
// whatever is due. This keeps the world consistent under restarts (times are wall
// clock) and makes --speed 0 exactly "instant" with no polling thread.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "base/files.h"
#include "base/log.h"
#include "emulator/blockstore.h"
#include "emulator/loopdev.h"
#include "emulator/service.h"

namespace amibake::emu {

Context::Context(Options options)
    : options_(std::move(options)), faults_(options_.faults, options_.seed), rng_(options_.seed) {}

namespace {
thread_local std::string t_region = kRegion;
}  // namespace

const std::string& Context::current_region() { return t_region; }

Context::RegionScope::RegionScope(const std::string& region) : previous_(t_region) {
  t_region = region;
}

Context::RegionScope::~RegionScope() { t_region = previous_; }

World& Context::world(const std::string& region) {
  auto it = universe_.regions.find(region);
  if (it != universe_.regions.end()) return it->second;
  World& w = universe_.regions[region];
  add_catalog_to_region(*this, region, w);
  return w;
}

double Context::now() const {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

double Context::after(double aws_seconds) const { return now() + aws_seconds * options_.speed; }

std::string Context::new_id(const std::string& prefix) {
  static const char* kHex = "0123456789abcdef";
  for (;;) {
    std::string id = prefix + "-0";
    for (int i = 0; i < 16; ++i) id += kHex[draw() & 15];
    bool used = universe_.layers.count(id) > 0;
    for (const auto& [name, w] : universe_.regions) {
      used = used || w.images.count(id) || w.snapshots.count(id) || w.volumes.count(id) ||
             w.launch_templates.count(id) || w.instances.count(id);
    }
    if (!used) return id;
  }
}

std::string Context::new_request_id() {
  // Unique per process and readable: a counter mixed into a UUID-shaped string.
  uint64_t n = ++request_counter_;
  char buf[64];
  std::snprintf(buf, sizeof buf, "a0e5e3a1-%04x-4%03x-8%03x-%012llx",
                static_cast<unsigned>((options_.seed >> 16) & 0xffff),
                static_cast<unsigned>(getpid() & 0xfff), static_cast<unsigned>(n >> 48 & 0xfff),
                static_cast<unsigned long long>(n & 0xffffffffffffULL));
  return buf;
}

std::string Context::random_bytes(size_t n) {
  std::string out;
  while (out.size() < n) out += static_cast<char>(draw() & 0xff);
  return out;
}

std::string Context::layer_path(const Layer& layer) const {
  if (!layer.file.empty() && layer.file[0] == '/') return layer.file;  // catalog image, read only
  return options_.data_dir + "/snapshots/" + layer.file;
}

std::string Context::volume_path(const Volume& v) const {
  return options_.data_dir + "/volumes/" + v.file;
}

std::string Context::device_dir() const {
  return options_.device_dir.empty() ? options_.data_dir + "/dev/disk/by-id" : options_.device_dir;
}

void Context::count_call(const std::string& op) {
  std::lock_guard<std::mutex> lock(counts_mu_);
  ++call_counts_[op];
}

std::map<std::string, uint64_t> Context::call_counts() {
  std::lock_guard<std::mutex> lock(counts_mu_);
  return call_counts_;
}

void Context::maybe_hide(const std::string& op, const std::string& id) {
  if (faults_.draw_invisible(op)) {
    universe_.invisible_until[id] = now() + faults_.spec().notfound_seconds;
  }
}

bool Context::hidden(const std::string& id) {
  auto it = universe_.invisible_until.find(id);
  if (it == universe_.invisible_until.end()) return false;
  if (it->second > now()) return true;
  universe_.invisible_until.erase(it);
  return false;
}

void Context::advance() {
  double t = now();
  bool moved = false;
  for (auto& [region, w] : universe_.regions) moved = advance_region(w, t) || moved;
  for (auto it = universe_.keys.begin(); it != universe_.keys.end();) {
    if (it->second.expires > 0 && it->second.expires < t - 3600) {
      it = universe_.keys.erase(it);
      moved = true;
    } else {
      ++it;
    }
  }
  if (moved) dirty_ = true;
}

bool Context::advance_region(World& w, double t) {
  bool moved = false;
  for (auto& [id, v] : w.volumes) {
    if (v.state == "creating" && v.ready_at <= t) { v.state = "available"; moved = true; }
    if (v.attachment && v.attachment->ready_at <= t) {
      if (v.attachment->state == "attaching") { v.attachment->state = "attached"; moved = true; }
      if (v.attachment->state == "detaching") {
        v.attachment.reset();
        v.state = "available";
        moved = true;
      }
    }
  }
  for (auto& [id, s] : w.snapshots) {
    if (s.state != "pending") continue;
    bool writable = s.direct && !s.sealed;
    if (writable && s.timeout_at > 0 && t >= s.timeout_at) {
      s.state = "error";
      s.state_message = "The snapshot was not completed before its Timeout";
      moved = true;
    } else if (!writable && s.ready_at <= t) {
      s.state = "completed";
      moved = true;
    }
  }
  for (auto& [id, img] : w.images) {
    if (img.state != "pending" || img.ready_at > t) continue;
    bool all_done = true, failed = false;
    for (const auto& m : img.mappings) {
      if (m.snapshot_id.empty()) continue;
      auto it = w.snapshots.find(m.snapshot_id);
      if (it == w.snapshots.end() || it->second.state == "error") failed = true;
      else if (it->second.state != "completed") all_done = false;
    }
    if (failed) { img.state = "failed"; moved = true; }
    else if (all_done) { img.state = "available"; moved = true; }
  }
  for (auto& [name, p] : w.parameters) {
    for (auto it = p.pending.begin(); it != p.pending.end();) {
      if (it->ready_at > t) { ++it; continue; }
      // aws:ec2:image validation: the value must be an AMI of this region the account
      // can use; a version that fails it never becomes the value.
      auto img = w.images.find(it->value);
      bool usable = img != w.images.end() && img->second.state != "failed" &&
                    (img->second.owner_id == kAccountId || img->second.is_public ||
                     std::count(img->second.launch_user_ids.begin(),
                                img->second.launch_user_ids.end(), kAccountId) > 0);
      if (usable) {
        p.value = it->value;
        p.type = it->type;
        p.data_type = it->data_type;
        p.description = it->description;
        p.version = it->version;
        p.last_modified = it->last_modified;
        p.history.push_back(*it);
      } else {
        log::info("awsemu: ssm: " + name + " version " + std::to_string(it->version) + ": " +
                  it->value + " is not an AMI of this region; the version failed validation");
      }
      it = p.pending.erase(it);
      moved = true;
    }
  }
  for (auto it = w.compute_environments.begin(); it != w.compute_environments.end();) {
    ComputeEnvironment& ce = it->second;
    if (!ce.next_status.empty() && ce.ready_at <= t) {
      moved = true;
      if (ce.next_status == "DELETED") {
        it = w.compute_environments.erase(it);
        continue;
      }
      ce.status = ce.next_status;
      ce.next_status.clear();
      if (ce.status == "VALID") ce.status_reason = "ComputeEnvironment Healthy";
      if (ce.status == "VALID" && ce.type == "MANAGED") {
        std::string problem = batch_image_problem(w, ce);
        if (!problem.empty()) {
          ce.status = "INVALID";
          ce.status_reason = problem;
        }
      }
    }
    ++it;
  }
  for (auto& [id, inst] : w.instances) {
    if (inst.ready_at > t) continue;
    if (inst.state == "pending") { inst.state = "running"; moved = true; }
    else if (inst.state == "shutting-down") { inst.state = "terminated"; moved = true; }
  }
  return moved;
}

void Context::write_state(const std::string& text, uint64_t generation) {
  std::lock_guard<std::mutex> lock(save_mu_);
  if (generation <= saved_generation_) return;  // a newer state is already on disk
  Status st = write_file_atomic(options_.data_dir + "/state.json", text, 0600);
  if (!st) {
    log::error("awsemu: save state: " + st.error().message + ", ignoring");
    dirty_ = true;
    return;
  }
  saved_generation_ = generation;
}

void Context::commit() {
  dirty_ = false;
  write_state(to_json(universe_).dump(1), ++generation_);
}

void Context::flush() {
  if (!dirty_) return;
  std::string text;
  uint64_t generation;
  {
    // Serialise under the lock, write (and fsync) without it: block puts go on.
    std::lock_guard<std::mutex> lock(mu_);
    dirty_ = false;
    text = to_json(universe_).dump(1);
    generation = ++generation_;
  }
  write_state(text, generation);
}

Status Context::load() {
  AMIBAKE_TRY(make_dirs(options_.data_dir + "/snapshots", 0700));
  AMIBAKE_TRY(make_dirs(options_.data_dir + "/volumes", 0700));
  AMIBAKE_TRY(make_dirs(device_dir(), 0755));
  std::string path = options_.data_dir + "/state.json";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ok();
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return make_error(path + ": load state: not valid JSON",
                      "move the file away to start with an empty world");
  }
  try {
    universe_ = universe_from_json(j);
    rng_.discard(universe_.rng_draws);
  } catch (const std::exception& e) {
    return make_error(path + ": load state: " + e.what(),
                      "move the file away to start with an empty world");
  }
  return ok();
}

}  // namespace amibake::emu
