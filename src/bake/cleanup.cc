// Cleanup and gc: removing what builds left.
//
// Order matters on AWS: an image must be deregistered before its snapshots can be
// deleted, and a volume detached before it is deleted. Resources are therefore
// removed by kind: images, then volumes, then snapshots. "Already gone" answers
// (*.NotFound) count as removed, so cleanup can be rerun until it reports nothing.
// The shared base copy (tag amibake:copy-of, no build id) is never removed by a
// build's cleanup: other builds of the same base reuse it; `gc --copies` removes it.
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include "aws/ec2.h"
#include "aws/imds.h"
#include "aws/waiter.h"
#include "bake/attached_device.h"
#include "bake/build.h"
#include "bake/build_steps.h"
#include "bake/host_checks.h"
#include "bake/journal.h"
#include "base/files.h"

namespace amibake::bake {
namespace {

bool is_not_found(const Error& e) { return e.aws_code.ends_with(".NotFound"); }

struct Found {
  std::string kind, id, build_id, role, state, created;
};

// Seconds since the epoch of an EC2 timestamp ("2026-11-25T08:00:00.000Z"), or -1.
int64_t epoch_of(const std::string& iso) {
  std::tm tm{};
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  return static_cast<int64_t>(timegm(&tm));
}

// Every image, snapshot and volume in the region carrying tag `filter_key`(=`value`).
Result<std::vector<Found>> find_tagged(aws::AwsClient& c, const aws::Filter& filter) {
  std::vector<Found> out;
  aws::ec2::DescribeImagesRequest ir;
  ir.owners = {"self"};
  ir.filters = {filter};
  AMIBAKE_ASSIGN(auto images, aws::ec2::describe_images(c, ir));
  for (const auto& i : images) {
    out.push_back({"image", i.image_id, aws::ec2::find_tag(i.tags, kTagBuildId),
                   aws::ec2::find_tag(i.tags, kTagRole), i.state, i.creation_date});
  }
  aws::ec2::DescribeVolumesRequest vr;
  vr.filters = {filter};
  AMIBAKE_ASSIGN(auto volumes, aws::ec2::describe_volumes(c, vr));
  for (const auto& v : volumes) {
    out.push_back({"volume", v.volume_id, aws::ec2::find_tag(v.tags, kTagBuildId),
                   aws::ec2::find_tag(v.tags, kTagRole), v.state, v.create_time});
  }
  aws::ec2::DescribeSnapshotsRequest sr;
  sr.owner_ids = {"self"};
  sr.filters = {filter};
  AMIBAKE_ASSIGN(auto snaps, aws::ec2::describe_snapshots(c, sr));
  for (const auto& s : snaps) {
    out.push_back({"snapshot", s.snapshot_id, aws::ec2::find_tag(s.tags, kTagBuildId),
                   aws::ec2::find_tag(s.tags, kTagRole), s.state, s.start_time});
  }
  return out;
}

// A chroot build's volume may still be attached to this host with a killed install's
// mount and loop on it: those go first (the volume's device is found by its id, as the
// build found it), so the detach does not pull a disk from under a mounted filesystem.
// The Xen name is trusted only when this host is the instance the volume is attached
// to (IMDS says so); elsewhere nothing local can hold the volume.
Status release_local_holders(aws::AwsClient& c, const std::string& id,
                             const DeviceLookup& lookup, Events& events) {
  aws::ec2::DescribeVolumesRequest d;
  d.volume_ids = {id};
  auto found = aws::ec2::describe_volumes(c, d);
  if (!found || found->empty()) return ok();  // gone, or DescribeVolumes will say so later
  for (const auto& a : found->front().attachments) {
    if (a.state != "attached" && a.state != "attaching" && a.state != "busy") continue;
    auto dev = look_for_attached_device(id, a.device,
                                        static_cast<uint64_t>(found->front().size) << 30, lookup);
    if (dev && dev->how.rfind("Xen", 0) == 0) {
      auto self = aws::ImdsClient().instance_id();
      if (!self || *self != a.instance_id) dev.reset();
    }
    if (!dev) continue;
    AMIBAKE_ASSIGN(auto lines, release_loops_on(dev->path, lookup.host));
    for (const auto& line : lines) events.info(line);
    AMIBAKE_TRY(flush_block_device(dev->path));
  }
  return ok();
}

Status remove_resource(aws::AwsClient& c, const std::string& kind, const std::string& id,
                       const DeviceLookup& lookup, Events& events) {
  Status s;
  if (kind == "image") {
    s = aws::ec2::deregister_image(c, id);
  } else if (kind == "volume") {
    AMIBAKE_TRY(release_local_holders(c, id, lookup, events));
    aws::ec2::DetachVolumeRequest d;
    d.volume_id = id;
    auto detached = aws::ec2::detach_volume(c, d);
    if (detached || detached.error().aws_code == "IncorrectState") {
      aws::WaitOptions w;
      w.timeout = std::chrono::minutes(5);
      w.interval = std::chrono::milliseconds(500);
      auto avail = aws::wait_volume_available(c, id, w);
      if (!avail && !is_not_found(avail.error())) return avail.error();
    }
    s = aws::ec2::delete_volume(c, id);
  } else if (kind == "snapshot") {
    s = aws::ec2::delete_snapshot(c, id);
  } else {
    return make_error(id + ": unknown resource kind '" + kind + "'");
  }
  if (!s && is_not_found(s.error())) return ok();
  return s;
}

int kind_rank(const std::string& kind) {
  return kind == "image" ? 0 : kind == "volume" ? 1 : 2;
}

}  // namespace

Result<CleanupReport> cleanup_build(aws::AwsClient& client, const std::string& journal_dir,
                                    const std::string& build_id, Events& events,
                                    const std::atomic<int>* interrupts,
                                    const RegionClientFactory& region_client) {
  std::string dir = journal_dir.empty() ? Journal::default_dir() : journal_dir;
  auto journal = Journal::open(dir, build_id);
  DeviceLookup lookup;
  if (journal) lookup.device_dir = journal->state().start_string("device_dir", lookup.device_dir);
  // What to remove: the journal's live resources, plus anything still tagged with the
  // build id (a crash between a create and its journal line leaves only the tag).
  std::vector<std::pair<std::string, std::string>> todo;  // kind, id
  std::set<std::string> seen;
  CleanupReport report;
  // Each region's client, made once (publish reaches other regions).
  std::map<std::string, std::unique_ptr<aws::AwsClient>> others;
  auto client_in = [&](const std::string& region) -> Result<aws::AwsClient*> {
    if (region.empty() || region == client.region()) return &client;
    auto it = others.find(region);
    if (it != others.end()) return it->second.get();
    if (!region_client) return make_error("no client for that region");
    AMIBAKE_ASSIGN(auto made, region_client(region));
    aws::AwsClient* raw = made.get();
    others[region] = std::move(made);
    return raw;
  };
  if (journal) {
    // The pointers the publish steps moved go back first, while the images they name
    // still exist (unpublish.cc).
    restore_pointers(*journal, client_in, events, report.failed);
    // Other regions first (publish copies), each through its own client.
    std::map<std::string, std::vector<JournalResource>> elsewhere;
    for (const auto& r : journal->state().live_resources()) {
      if (r.region == client.region() || r.region.empty()) {
        if (seen.insert(r.id).second) todo.push_back({r.kind, r.id});
      } else {
        elsewhere[r.region].push_back(r);
      }
    }
    for (auto& [region, resources] : elsewhere) {
      auto made = client_in(region);
      aws::AwsClient* other = made ? *made : nullptr;
      std::stable_sort(resources.begin(), resources.end(), [](const auto& a, const auto& b) {
        return kind_rank(a.kind) < kind_rank(b.kind);
      });
      for (const auto& r : resources) {
        if (!other) {
          report.failed.push_back(r.id + " (" + region + "): no client for that region");
          continue;
        }
        auto s = remove_resource(*other, r.kind, r.id, lookup, events);
        if (!s) {
          report.failed.push_back(r.id + " (" + region + "): " + s.error().message);
          events.warn("could not remove " + r.kind + " " + r.id + " in " + region + ": " +
                      s.error().message);
          continue;
        }
        seen.insert(r.id);
        report.removed.push_back(r.id);
        events.info("removed " + r.kind + " " + r.id + " in " + region);
        AMIBAKE_TRY(journal->deleted(r.id));
      }
    }
    // A copy whose CopyImage was sent but whose id never reached the journal (killed in
    // between) has only its amibake:build-id tag (CopyImageTags): search each region the
    // journal names besides the build region. Such a copy's snapshots carry no tag yet
    // (the copy step tags them once the copy is available, and CopyImageTags copies only
    // the AMI's tags), so it is deregistered with its snapshots.
    std::set<std::string> regions = journal->state().intent_regions;
    for (const auto& r : journal->state().resources) regions.insert(r.region);
    regions.erase("");
    regions.erase(client.region());
    for (const auto& region : regions) {
      auto made = client_in(region);
      if (!made) {
        report.failed.push_back(region + ": no client to search it for the build's copies");
        continue;
      }
      auto found = find_tagged(**made, {"tag:" + std::string(kTagBuildId), {build_id}});
      if (!found) {
        report.failed.push_back(region + ": " + found.error().message);
        continue;
      }
      std::stable_sort(found->begin(), found->end(),
                       [](const Found& a, const Found& b) { return kind_rank(a.kind) < kind_rank(b.kind); });
      for (const auto& f : *found) {
        if (f.role == "base-copy" || !seen.insert(f.id).second) continue;
        Status s = f.kind == "image" ? aws::ec2::deregister_image(**made, f.id, true)
                                     : remove_resource(**made, f.kind, f.id, lookup, events);
        if (!s && !is_not_found(s.error())) {
          report.failed.push_back(f.id + " (" + region + "): " + s.error().message);
          events.warn("could not remove " + f.kind + " " + f.id + " in " + region + ": " + s.error().message);
          continue;
        }
        report.removed.push_back(f.id);
        events.info("removed " + f.kind + " " + f.id + " in " + region + " (found by the build's tag" +
                    (f.kind == "image" ? ", with its snapshots)" : ")"));
      }
    }
  } else {
    events.warn("no journal for " + build_id + " in " + dir + "; removing by tag only");
  }
  AMIBAKE_ASSIGN(auto tagged, find_tagged(client, {"tag:" + std::string(kTagBuildId), {build_id}}));
  for (const auto& f : tagged) {
    if (f.role == "base-copy") continue;
    if (seen.insert(f.id).second) todo.push_back({f.kind, f.id});
  }
  std::stable_sort(todo.begin(), todo.end(), [](const auto& a, const auto& b) {
    return kind_rank(a.first) < kind_rank(b.first);
  });
  for (const auto& [kind, id] : todo) {
    if (interrupts && interrupts->load() > 1) {
      report.failed.push_back(id + ": not removed (interrupted again)");
      continue;
    }
    auto s = remove_resource(client, kind, id, lookup, events);
    if (!s) {
      report.failed.push_back(id + ": " + s.error().message);
      events.warn("could not remove " + kind + " " + id + ": " + s.error().message);
      continue;
    }
    report.removed.push_back(id);
    events.info("removed " + kind + " " + id);
    if (journal) AMIBAKE_TRY(journal->deleted(id));
  }
  if (report.failed.empty()) {
    if (journal) AMIBAKE_TRY(journal->cleaned());
    std::error_code ec;
    std::string work = journal ? journal->state().start_string("work_dir", default_work_dir())
                               : default_work_dir();
    // A killed lazy install leaves its FUSE mount (and a loop device over it) in the
    // build's folder: let go of those before removing the folder.
    release_lazy_leftovers(work + "/" + build_id, events);
    std::filesystem::remove_all(work + "/" + build_id, ec);
  }
  return report;
}

Result<int64_t> parse_age(const std::string& text) {
  char* end = nullptr;
  long long n = std::strtoll(text.c_str(), &end, 10);
  std::string unit = end ? end : "";
  const std::map<std::string, int64_t> units = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400},
                                                {"w", 7 * 86400}};
  auto u = units.find(unit);
  if (end == text.c_str() || n < 0 || u == units.end()) {
    return make_error("'" + text + "' is not an age", "write a number and a unit: 90s, 30m, 12h, 1d, 2w", 2);
  }
  return static_cast<int64_t>(n) * u->second;
}

Result<std::vector<Leftover>> gc(aws::AwsClient& client, bool remove, bool include_copies,
                                 int64_t older_than_seconds, Events& events) {
  AMIBAKE_ASSIGN(auto tagged, find_tagged(client, {"tag-key", {kTagBuildId}}));
  // A build is finished when its image exists and is available: that needs no journal.
  std::set<std::string> finished;
  for (const auto& f : tagged) {
    if (f.kind == "image" && f.role == "image" && f.state == "available") finished.insert(f.build_id);
  }
  if (include_copies) {
    AMIBAKE_ASSIGN(auto copies, find_tagged(client, {"tag-key", {kTagCopyOf}}));
    tagged.insert(tagged.end(), copies.begin(), copies.end());
  }
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<Leftover> out;
  std::set<std::string> seen;
  for (const auto& f : tagged) {
    bool copy = f.role == "base-copy";
    if ((copy && !include_copies) || (!copy && finished.count(f.build_id))) continue;
    int64_t t = epoch_of(f.created);
    if (older_than_seconds > 0 && t >= 0 && now - t < older_than_seconds) continue;
    if (seen.insert(f.id).second) out.push_back({f.kind, f.id, f.build_id, f.role, f.state, f.created});
  }
  if (remove) {
    std::stable_sort(out.begin(), out.end(), [](const Leftover& a, const Leftover& b) {
      return kind_rank(a.kind) < kind_rank(b.kind);
    });
    for (const auto& l : out) {
      auto s = remove_resource(client, l.kind, l.id, DeviceLookup{}, events);
      if (!s) {
        events.warn("could not remove " + l.kind + " " + l.id + ": " + s.error().message);
      } else {
        events.info("removed " + l.kind + " " + l.id + (l.build_id.empty() ? "" : " (build " + l.build_id + ")"));
      }
    }
  }
  return out;
}

std::vector<BuildSummary> list_builds(const std::string& journal_dir) {
  std::string dir = journal_dir.empty() ? Journal::default_dir() : journal_dir;
  std::vector<BuildSummary> out;
  for (const auto& id : Journal::list(dir)) {
    BuildSummary b;
    b.build_id = id;
    auto j = Journal::open(dir, id);
    if (!j) {
      b.state = "unreadable";
      out.push_back(b);
      continue;
    }
    const auto& s = j->state();
    // An unfinished build has no "finished" entry (null): json::value() throws on null.
    auto field = [](const nlohmann::json& entry, const char* key) {
      return entry.is_object() ? entry.value(key, "") : std::string();
    };
    b.started = s.start_string("time");
    b.recipe = s.start_string("recipe");
    b.region = s.start_string("region");
    b.ami = field(s.finish, "ami");
    if (s.cleaned) {
      b.state = s.interrupted ? "interrupted" : "cleaned";
    } else if (s.finished) {
      b.state = s.finish.is_object() && s.finish.value("reused", false) ? "reused" : "finished";
    } else {
      b.state = "unfinished";
    }
    out.push_back(b);
  }
  return out;
}

}  // namespace amibake::bake
