// Payload install into a disk image.
//
// The image's content is untrusted (it came from a snapshot), so nothing here runs
// a program from it and nothing is written through a path the image controls: all
// writes go through image::install_file / install_symlink, which resolve paths as
// if the mount were "/" (an absolute symlink in the image cannot point the write at
// the host). The datavol unit text, drop-ins, SysV script and the list of links come
// from datavol's units library (the same code as `datavol install`), handed a tree
// writer that uses those safe calls.
//
// SELinux: when the image has SELinux enabled (AL2023 ships it permissive), every
// new file gets the label the image's own file_contexts gives its path, written as
// the security.selinux attribute, so no relabel is needed at boot.
#include "bake/payload_install.h"

#include <sys/stat.h>

#include <sstream>

#include "base/files.h"
#include "datavol/units.h"
#include "image/partition.h"
#include "image/payload.h"
#include "image/root_mount.h"
#include "image/selinux.h"

extern "C" {
// The static datavol binary for x86_64, linked in by src/bake/CMakeLists.txt.
extern const char amibake_datavol_x86_64_start[];
extern const char amibake_datavol_x86_64_end[];
}

namespace amibake::bake {
namespace {

// Writes into a mounted image with the image layer's safe calls.
class ImageTreeWriter : public datavol::TreeWriter {
 public:
  explicit ImageTreeWriter(std::string root) : root_(std::move(root)) {}
  Status write_file(const std::string& path, const std::string& content, mode_t mode) override {
    return image::install_file(root_, path, content, mode);
  }
  Status symlink(const std::string& path, const std::string& target) override {
    return image::install_symlink(root_, path, target);
  }
  Status make_dirs(const std::string& path) override {
    return image::make_dirs_in_root(root_, path);
  }
  bool exists(const std::string& path) override { return image::exists_in_root(root_, path); }
  Status remove(const std::string& path) override { return image::remove_in_root(root_, path); }
  std::optional<std::string> read_file(const std::string& path) override {
    auto r = image::read_file_in_root(root_, path, 1 << 20);
    if (!r) return std::nullopt;
    return *r;
  }

 private:
  std::string root_;
};

std::string gib(uint64_t bytes) {
  std::ostringstream o;
  o.precision(3);
  o << static_cast<double>(bytes) / (1ull << 30) << " GiB";
  return o.str();
}

}  // namespace

nlohmann::json PayloadReport::to_json() const {
  return {{"root_partition", root_partition}, {"init", init}, {"arch", arch},
          {"os", os},                         {"files", files}};
}

Result<std::string> embedded_datavol(const std::string& arch) {
  if (arch == "x86_64") {
    return std::string(amibake_datavol_x86_64_start,
                       static_cast<size_t>(amibake_datavol_x86_64_end - amibake_datavol_x86_64_start));
  }
  return make_error("no datavol binary for architecture '" + arch + "' in this amibake",
                    "this build of amibake carries datavol for x86_64 only", 2);
}

// Labels every path written with the context the image's own policy gives it.
Status label_files(const std::string& root, const image::SelinuxInfo& se,
                   const std::vector<std::string>& paths, std::vector<std::string>* log) {
  AMIBAKE_ASSIGN(auto contexts, image::load_file_contexts(root, se.policy_type));
  int labelled = 0;
  for (const auto& p : paths) {
    struct stat st {};
    if (::lstat((root + p).c_str(), &st) != 0) continue;
    std::string ctx = contexts.lookup(p, st.st_mode & S_IFMT);
    if (ctx.empty()) continue;
    AMIBAKE_TRY(image::set_selinux_label(root, p, ctx));
    ++labelled;
  }
  log->push_back("SELinux " + se.mode + " (" + se.policy_type + "): labelled " +
                 std::to_string(labelled) + " of " + std::to_string(paths.size()) +
                 " new files from the image's file_contexts");
  return ok();
}

Result<PayloadReport> install_payload(const std::string& disk_image, const PayloadSpec& spec) {
  PayloadReport report;
  AMIBAKE_ASSIGN(auto root, image::mount_root(disk_image));
  const auto& part = root.partition();
  report.root_partition = std::string(image::table_kind_name(root.table().kind)) + " partition " +
                          std::to_string(part.index) + " at byte " + std::to_string(part.start) +
                          " (" + gib(part.size) + "), " + root.fstype();
  report.log.push_back("root filesystem: " + report.root_partition);

  AMIBAKE_ASSIGN(auto info, image::detect_image(root.path()));
  report.init = image::init_system_name(info.init);
  report.arch = image::arch_name(info.arch);
  report.os = info.os_pretty_name;
  report.log.push_back("image: " + (report.os.empty() ? std::string("unknown OS") : report.os) +
                       ", " + report.arch + " (" + info.arch_source + "), init " + report.init +
                       " (" + info.init_reason + ")");
  if (info.init == image::InitSystem::kUnknown) {
    return make_error("image: cannot tell its init system: " + info.init_reason,
                      "amibake supports systemd and SysV images");
  }
  std::string binary;
  if (spec.datavol_binary.empty()) {
    AMIBAKE_ASSIGN(binary, embedded_datavol(report.arch));
  } else {
    AMIBAKE_ASSIGN(binary, read_file(spec.datavol_binary));
  }

  datavol::Config config;
  config.volumes = spec.volumes;
  datavol::UnitSpec unit;
  for (const auto& v : spec.volumes) unit.mounts.push_back(v.mount);
  unit.required_units = datavol::required_units(config);
  ImageTreeWriter tree(root.path());
  AMIBAKE_TRY(tree.make_dirs("/usr/local/sbin"));
  AMIBAKE_TRY(tree.write_file(datavol::kDefaultBinaryPath, binary, 0755));
  report.files.push_back(datavol::kDefaultBinaryPath);
  auto init = info.init == image::InitSystem::kSystemd ? datavol::InitSystem::kSystemd
                                                       : datavol::InitSystem::kSysv;
  AMIBAKE_ASSIGN(auto written,
                 datavol::install_into(tree, init, unit, datavol::render_config(config)));
  report.files.insert(report.files.end(), written.begin(), written.end());
  report.log.push_back("wrote " + std::to_string(report.files.size()) + " files and links");
  if (info.selinux.labels_needed()) {
    AMIBAKE_TRY(label_files(root.path(), info.selinux, report.files, &report.log));
  }
  AMIBAKE_TRY(root.release());
  return report;
}

}  // namespace amibake::bake
