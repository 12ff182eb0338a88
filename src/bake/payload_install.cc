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
// Checks against the image (issue 15): a recipe can be valid on its own and still make an
// AMI that fails at boot, because it names something of the image: an owner that is not in
// its /etc/passwd, a unit it does not have, a mount point that already holds files, a
// filesystem whose mkfs it does not carry (datavol runs the image's own tools). Those are
// only knowable with the root mounted, so check_image runs right after detection and
// before the first write, looks at the image through the same in-root lookups as the
// writes (never a link out of it), and collects every problem: a user fixing a recipe
// wants the whole list at once, not one round trip per mistake. Refusals are exit code 2
// (the recipe does not fit), and since they come before any write, nothing is uploaded.
// datavol's default required_by (docker, containerd, ecs) is a guess about the image, not
// a demand of the recipe, so there a missing unit is dropped and said, not refused.
//
// SELinux: when the image has SELinux enabled (AL2023 ships it permissive), every
// new file gets the label the image's own file_contexts gives its path, written as
// the security.selinux attribute, so no relabel is needed at boot.
#include "bake/payload_install.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>

#include "base/files.h"
#include "base/subprocess.h"
#include "datavol/filesystem.h"
#include "datavol/units.h"
#include "image/in_root.h"
#include "image/partition.h"
#include "image/payload.h"
#include "image/root_mount.h"
#include "image/selinux.h"

extern "C" {
// The static datavol binaries, linked in by src/bake/CMakeLists.txt, which defines
// AMIBAKE_DATAVOL_<ARCH> for each one it assembled.
#ifdef AMIBAKE_DATAVOL_X86_64
extern const char amibake_datavol_x86_64_start[];
extern const char amibake_datavol_x86_64_end[];
#endif
#ifdef AMIBAKE_DATAVOL_ARM64
extern const char amibake_datavol_arm64_start[];
extern const char amibake_datavol_arm64_end[];
#endif
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

// ---- checks against the image ----

// Read-only lookups inside the image for the checks. They use image/in_root.h's openat2
// rules (the ones every write uses); payload.h has no stat or folder listing to offer.
class RootView {
 public:
  explicit RootView(std::string root) : root_(std::move(root)) {
    auto fd = image::detail::open_root(root_);
    if (fd) root_fd_ = std::move(*fd);
  }
  const std::string& path() const { return root_; }
  // stat of image path `path`, following links inside the image; 0 or an errno value.
  int stat(const std::string& path, struct stat* st) const {
    auto rel = relative(path);
    if (!rel) return EINVAL;
    image::detail::Fd fd(image::detail::open_in_root(root_fd_.get(), *rel, O_PATH));
    if (!fd.valid()) return errno;
    return ::fstat(fd.get(), st) == 0 ? 0 : errno;
  }
  // Up to `limit` entry names of folder `path` (no "." or ".."), or an errno value.
  int list(const std::string& path, size_t limit, std::vector<std::string>* names) const {
    auto rel = relative(path);
    if (!rel) return EINVAL;
    int fd = image::detail::open_in_root(root_fd_.get(), *rel, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
      int e = errno;
      ::close(fd);
      return e;
    }
    while (names->size() < limit) {
      const dirent* e = ::readdir(dir);
      if (!e) break;
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(n);
    }
    ::closedir(dir);
    return 0;
  }
  bool exists(const std::string& path) const { return image::exists_in_root(root_, path); }

 private:
  static std::optional<std::string> relative(const std::string& path) {
    auto parts = image::detail::split_image_path(path);
    if (!parts) return std::nullopt;
    return image::detail::join(*parts, parts->size());
  }
  std::string root_;
  image::detail::Fd root_fd_;
};

// Collects problems and their hints (each hint once).
class Problems {
 public:
  explicit Problems(ImageCheck* out) : out_(out) {}
  void add(const std::string& problem, const std::string& hint) {
    out_->problems.push_back(problem);
    if (!hint.empty() && seen_.insert(hint).second) out_->hints.push_back(hint);
  }

 private:
  ImageCheck* out_;
  std::set<std::string> seen_;
};

bool is_number(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// The image's /etc/passwd and /etc/group, read once and only when a name needs them.
class AccountFiles {
 public:
  explicit AccountFiles(const RootView& root) : root_(root) {}
  const std::optional<std::string>& passwd() { return load("/etc/passwd", &passwd_); }
  const std::optional<std::string>& group() { return load("/etc/group", &group_); }

 private:
  const std::optional<std::string>& load(const char* path,
                                         std::optional<std::optional<std::string>>* slot) {
    if (!*slot) {
      auto text = image::read_file_in_root(root_.path(), path, 16 << 20);
      *slot = text ? std::optional<std::string>(*text) : std::nullopt;
    }
    return **slot;
  }
  const RootView& root_;
  std::optional<std::optional<std::string>> passwd_, group_;
};

void check_owner(AccountFiles& accounts, const std::string& subject, const datavol::VolumeConfig& v,
                 Problems& problems) {
  if (v.owner.empty()) return;
  const std::string what = subject + ": owner '" + v.owner + "': ";
  size_t colon = v.owner.find(':');
  bool needs_passwd = !is_number(v.owner.substr(0, colon));
  bool needs_group = colon != std::string::npos && !is_number(v.owner.substr(colon + 1));
  const char* fix = "create it in the base image, or give numeric ids (owner = \"1000:1000\")";
  if (needs_passwd && !accounts.passwd()) {
    problems.add(what + "the image has no readable /etc/passwd", fix);
    return;
  }
  if (needs_group && !accounts.group()) {
    problems.add(what + "the image has no readable /etc/group", fix);
    return;
  }
  auto ids = datavol::resolve_owner_text(v.owner, accounts.passwd().value_or(""),
                                         needs_group ? *accounts.group() : std::string(),
                                         "the image's /etc/passwd", "the image's /etc/group");
  if (!ids) {
    problems.add(what + ids.error().message,
                 "use a user and group the base image has, or numeric ids (owner = "
                 "\"1000:1000\")");
  }
}

// True when the image has `unit` ("docker", "docker.service", "getty@tty1.service").
bool has_unit(const RootView& root, image::InitSystem init, const std::string& unit) {
  if (init == image::InitSystem::kSystemd) {
    std::string name = unit.find('.') == std::string::npos ? unit + ".service" : unit;
    std::vector<std::string> names = {name};
    size_t at = name.find('@'), dot = name.rfind('.');
    if (at != std::string::npos && dot > at + 1) {
      names.push_back(name.substr(0, at + 1) + name.substr(dot));  // the template
    }
    for (const char* dir :
         {"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}) {
      for (const auto& n : names) {
        if (root.exists(std::string(dir) + "/" + n)) return true;
      }
    }
    return false;
  }
  std::string name = unit;
  if (name.size() > 8 && name.ends_with(".service")) name.resize(name.size() - 8);
  return root.exists("/etc/init.d/" + name) || root.exists("/etc/rc.d/init.d/" + name) ||
         root.exists("/etc/init/" + name + ".conf");
}

std::string where_units_live(image::InitSystem init) {
  return init == image::InitSystem::kSystemd
             ? "/etc/systemd/system, /usr/lib/systemd/system or /lib/systemd/system"
             : "/etc/init.d, /etc/rc.d/init.d or /etc/init (upstart)";
}

// Checks required_by; cuts a default list to what the image has (into `kept`).
void check_units(const RootView& root, image::InitSystem init, const std::string& subject,
                 const PayloadVolume& v, std::vector<std::string>* kept,
                 std::vector<std::string>* dropped, Problems& problems) {
  kept->clear();
  for (const auto& unit : v.config.required_by) {
    if (has_unit(root, init, unit)) {
      kept->push_back(unit);
    } else if (!v.required_by_set) {
      dropped->push_back(unit);
    } else {
      problems.add(subject + ": required_by '" + unit + "': no such unit in the image (looked in " +
                       where_units_live(init) + ")",
                   "remove it from required_by, or bake from a base image that has it");
    }
  }
}

void check_mount_point(const RootView& root, const std::string& subject, const PayloadVolume& v,
                       Problems& problems) {
  const std::string what = subject + ": mount point '" + v.config.mount + "': ";
  struct stat st {};
  int err = root.stat(v.config.mount, &st);
  if (err == ENOENT) return;  // datavol creates it at boot
  if (err != 0) {
    problems.add(what + (err == ENOTDIR ? std::string("a part of the path is not a folder")
                                        : std::string("cannot look it up: ") + std::strerror(err)),
                 "choose a mount point that is a new or empty folder in the image");
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    problems.add(what + "exists in the image and is not a folder",
                 "choose a mount point that is a new or empty folder in the image");
    return;
  }
  if (v.hide_existing) return;
  std::vector<std::string> names;
  err = root.list(v.config.mount, 4, &names);
  if (err != 0) {
    problems.add(what + "cannot list it: " + std::strerror(err),
                 "choose a mount point that is a new or empty folder in the image");
    return;
  }
  if (names.empty()) return;
  std::sort(names.begin(), names.end());
  std::string listed;
  for (size_t i = 0; i < names.size() && i < 3; ++i) listed += (i ? ", " : "") + names[i];
  if (names.size() > 3) listed += ", ...";
  problems.add(what + "is a folder in the image with files in it (" + listed +
                   "); the mount would hide them",
               "choose another mount point, or set hide_existing = true in the volume to "
               "mount over them");
}

void check_mkfs(const RootView& root, const std::string& subject, const datavol::VolumeConfig& v,
                Problems& problems) {
  const std::string tool = "mkfs." + v.filesystem;
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    struct stat st {};
    if (root.stat(std::string(dir) + "/" + tool, &st) == 0 && S_ISREG(st.st_mode) &&
        (st.st_mode & 0111) != 0)
      return;
  }
  problems.add(subject + ": filesystem '" + v.filesystem + "': the image has no " + tool +
                   " in /usr/sbin, /sbin, /usr/bin or /bin (datavol runs the image's own)",
               "choose a filesystem the base image can make, or a base image with " +
                   std::string(v.filesystem == "xfs" ? "xfsprogs" : "e2fsprogs") + " installed");
}

std::string joined(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

}  // namespace

nlohmann::json PayloadReport::to_json() const {
  return {{"root_partition", root_partition},
          {"init", init},
          {"arch", arch},
          {"os", os},
          {"files", files}};
}

namespace {

struct EmbeddedDatavol {
  const char* arch;  // EC2's architecture name
  const char* start;
  const char* end;
};

constexpr EmbeddedDatavol kEmbeddedDatavols[] = {
#ifdef AMIBAKE_DATAVOL_X86_64
    {"x86_64", amibake_datavol_x86_64_start, amibake_datavol_x86_64_end},
#endif
#ifdef AMIBAKE_DATAVOL_ARM64
    {"arm64", amibake_datavol_arm64_start, amibake_datavol_arm64_end},
#endif
};

}  // namespace

std::vector<std::string> embedded_datavol_architectures() {
  std::vector<std::string> out;
  for (const auto& d : kEmbeddedDatavols) out.push_back(d.arch);
  return out;
}

Status check_datavol_architecture(const std::string& arch) {
  for (const auto& d : kEmbeddedDatavols) {
    if (arch == d.arch) return ok();
  }
  const std::string carried = joined(embedded_datavol_architectures(), ", ");
  if (arch == "x86_64" || arch == "arm64") {
    return make_error(
        "architecture '" + arch + "': this build of amibake carries datavol for " + carried +
            " only (it was built without the " + (arch == "arm64" ? "aarch64" : arch) +
            " cross toolchain)",
        "install the toolchain with scripts/deps (as root) and rebuild amibake "
        "(cmake -DAMIBAKE_DATAVOL_ARM64=ON makes a missing toolchain a configure error); "
        "`amibake --version` lists the architectures carried",
        2);
  }
  std::string why = arch.size() > 4 && arch.compare(arch.size() - 4, 4, "_mac") == 0
                        ? " (a macOS AMI for EC2 Mac instances, not a Linux image)"
                        : "";
  return make_error("architecture '" + arch + "' is not supported" + why +
                        ": amibake bakes x86_64 and arm64 Linux AMIs",
                    "choose an x86_64 or arm64 base, e.g. --variant al2023 or al2023-arm64", 2);
}

Result<std::string> embedded_datavol(const std::string& arch) {
  for (const auto& d : kEmbeddedDatavols) {
    if (arch == d.arch) return std::string(d.start, static_cast<size_t>(d.end - d.start));
  }
  return check_datavol_architecture(arch).error();
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

ImageCheck check_image(const std::string& root_path, image::InitSystem init,
                       const PayloadSpec& spec) {
  ImageCheck out;
  Problems problems(&out);
  RootView root(root_path);
  AccountFiles accounts(root);
  std::vector<std::string> dropped, dropped_from;
  for (size_t i = 0; i < spec.volumes.size(); ++i) {
    const PayloadVolume& v = spec.volumes[i];
    const std::string subject = "volume[" + std::to_string(i) + "] (" + v.config.mount + ")";
    datavol::VolumeConfig config = v.config;
    std::vector<std::string> volume_dropped;
    check_owner(accounts, subject, v.config, problems);
    check_units(root, init, subject, v, &config.required_by, &volume_dropped, problems);
    check_mount_point(root, subject, v, problems);
    check_mkfs(root, subject, v.config, problems);
    if (!volume_dropped.empty()) {
      for (const auto& u : volume_dropped) {
        if (std::find(dropped.begin(), dropped.end(), u) == dropped.end()) dropped.push_back(u);
      }
      dropped_from.push_back(subject);
    }
    out.volumes.push_back(std::move(config));
  }
  if (!dropped.empty()) {
    out.log.push_back("required_by: the image has no " + joined(dropped, ", ") +
                      ": left out of datavol's default units for " + joined(dropped_from, ", "));
  }
  return out;
}

Status refuse_problems(const ImageCheck& check, const std::string& image) {
  if (check.problems.empty()) return ok();
  std::string message = image + ": ";
  if (check.problems.size() == 1) {
    message += check.problems.front();
  } else {
    message += std::to_string(check.problems.size()) + " recipe values would fail at boot:";
    for (const auto& p : check.problems) message += "\n  " + p;
  }
  return make_error(message, joined(check.hints, "; "), 2);
}

Result<PayloadReport> install_payload(const std::string& disk_image, const PayloadSpec& spec) {
  PayloadReport report;
  image::RootMountOptions mount_options;
  mount_options.lazy_image = spec.lazy_disk;
  AMIBAKE_ASSIGN(auto root, image::mount_root(disk_image, mount_options));
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
  // Everything the recipe names of the image, before the first write.
  ImageCheck check = check_image(root.path(), info.init, spec);
  AMIBAKE_TRY(
      refuse_problems(check, "image " + (spec.image_name.empty() ? disk_image : spec.image_name)));
  report.log.insert(report.log.end(), check.log.begin(), check.log.end());
  std::string binary;
  if (spec.datavol_binary.empty()) {
    AMIBAKE_ASSIGN(binary, embedded_datavol(report.arch));
  } else {
    AMIBAKE_ASSIGN(binary, read_file(spec.datavol_binary));
  }

  datavol::Config config;
  config.volumes = check.volumes;
  datavol::UnitSpec unit;
  for (const auto& v : config.volumes) unit.mounts.push_back(v.mount);
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

namespace {

nlohmann::json spec_to_json(const PayloadSpec& spec) {
  nlohmann::json volumes = nlohmann::json::array();
  for (const auto& v : spec.volumes) {
    // The datavol settings travel as datavol's own config text (one volume each).
    datavol::Config one;
    one.volumes = {v.config};
    volumes.push_back({{"config", datavol::render_config(one)},
                       {"required_by_set", v.required_by_set},
                       {"hide_existing", v.hide_existing}});
  }
  return {{"volumes", volumes},
          {"datavol_binary", spec.datavol_binary},
          {"image_name", spec.image_name},
          {"lazy_disk", spec.lazy_disk}};
}

Result<PayloadSpec> spec_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("install child: bad spec on stdin");
  PayloadSpec spec;
  for (const auto& v : j.value("volumes", nlohmann::json::array())) {
    AMIBAKE_ASSIGN(auto config, datavol::parse_config(v.value("config", ""), "install spec"));
    if (config.volumes.size() != 1) return make_error("install child: one volume per entry");
    spec.volumes.push_back({config.volumes.front(), v.value("required_by_set", true),
                            v.value("hide_existing", false)});
  }
  spec.datavol_binary = j.value("datavol_binary", "");
  spec.image_name = j.value("image_name", "");
  spec.lazy_disk = j.value("lazy_disk", false);
  return spec;
}

}  // namespace

Result<PayloadReport> install_payload_in_child(const std::string& disk_image,
                                               const PayloadSpec& spec) {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return make_error("cannot find this program's path (/proc/self/exe)");
  self[n] = 0;
  RunOptions run;
  run.stdin_data = spec_to_json(spec).dump();
  AMIBAKE_ASSIGN(auto child, run_process({self, "__install-payload", disk_image}, run));
  auto answer = nlohmann::json::parse(child.out, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    return make_error("install: the install process ended with exit code " +
                      std::to_string(child.exit_code) + " and no answer" +
                      (child.err.empty() ? "" : ": " + child.err));
  }
  if (answer.contains("error")) {
    const auto& e = answer["error"];
    return make_error(e.value("message", "install failed"), e.value("hint", ""),
                      e.value("code", 1));
  }
  const auto& r = answer["report"];
  PayloadReport report;
  report.root_partition = r.value("root_partition", "");
  report.init = r.value("init", "");
  report.arch = r.value("arch", "");
  report.os = r.value("os", "");
  report.files = r.value("files", std::vector<std::string>{});
  report.log = r.value("log", std::vector<std::string>{});
  return report;
}

int run_install_payload_child(const std::string& disk_image) {
  // Killed with the bake: a stuck I/O then fails once the FUSE server's connection closes.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto spec = spec_from_json(text);
  Result<PayloadReport> report =
      spec ? install_payload(disk_image, *spec) : Result<PayloadReport>(spec.error());
  nlohmann::json out;
  if (report) {
    out["report"] = report->to_json();
    out["report"]["log"] = report->log;
  } else {
    out["error"] = {{"message", report.error().message},
                    {"hint", report.error().hint},
                    {"code", report.error().code}};
  }
  std::cout << out.dump() << std::endl;
  return report ? 0 : 1;
}

}  // namespace amibake::bake
