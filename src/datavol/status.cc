// Status: setup writes <run_dir>/status.json (run_dir is on tmpfs, so it describes this
// boot); `datavol status` reads it back and re-checks "mounted" against mountinfo, since
// someone may have unmounted a volume since boot.
#include "datavol/status.h"

#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/files.h"

namespace amibake::datavol {

std::string status_json(const std::vector<VolumeReport>& reports, int exit_code,
                        const std::string& timestamp) {
  nlohmann::json doc;
  doc["time"] = timestamp;
  doc["exit_code"] = exit_code;
  doc["volumes"] = nlohmann::json::array();
  for (const auto& r : reports) {
    doc["volumes"].push_back({{"volume", r.volume},
                              {"mount", r.mount},
                              {"device", r.device},
                              {"found_by", r.how},
                              {"filesystem", r.filesystem},
                              {"uuid", r.uuid},
                              {"size_bytes", r.size_bytes},
                              {"mounted", r.mounted},
                              {"action", r.action},
                              {"reason", r.reason}});
  }
  return doc.dump(2) + "\n";
}

Status write_status(const HostPaths& paths, const std::vector<VolumeReport>& reports,
                    int exit_code) {
  char ts[32];
  std::time_t now = std::time(nullptr);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  AMIBAKE_TRY(make_dirs(paths.run_dir, 0755));
  return write_file_atomic(paths.run_dir + "/status.json", status_json(reports, exit_code, ts),
                           0644);
}

Result<std::string> read_status(const HostPaths& paths, bool as_json) {
  auto text = read_file(paths.run_dir + "/status.json");
  if (!text) {
    Error e = text.error();
    e.hint = "datavol setup has not run since boot (systemctl status datavol)";
    return e;
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("volumes")) {
    return make_error(paths.run_dir + "/status.json: not a datavol status file");
  }
  auto mounts = read_mountinfo(paths.mountinfo);
  for (auto& v : doc["volumes"]) {
    bool mounted = false;
    for (const auto& m : mounts) mounted = mounted || m.mount_point == v.value("mount", "");
    v["mounted"] = mounted && v.value("device", "") != "";
  }
  if (as_json) return doc.dump(2) + "\n";
  std::ostringstream o;
  o << "last setup " << doc.value("time", "?") << ", exit code " << doc.value("exit_code", -1)
    << "\n";
  for (const auto& v : doc["volumes"]) {
    o << v.value("volume", "") << ": " << v.value("device", "-") << " -> " << v.value("mount", "")
      << " " << v.value("filesystem", "") << " " << (v.value("size_bytes", 0ull) >> 30) << " GiB "
      << (v.value("mounted", false) ? "mounted" : "NOT mounted") << "; " << v.value("action", "");
    if (!v.value("reason", "").empty()) o << ": " << v.value("reason", "");
    o << "\n    found by " << v.value("found_by", "-") << "\n";
  }
  return o.str();
}

}  // namespace amibake::datavol
