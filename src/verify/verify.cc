// `amibake verify --boot`: from an AMI id to a booted instance's verdict.
//
// 1. Describe the AMI (through the normal client: only a loopback endpoint is accepted by
//    the command, since the snapshots must be readable through EBS direct and booted here).
// 2. Materialise its block device mapping as files: the root snapshot served lazily through
//    a FUSE file (image::LazyDisk: a block is fetched with GetSnapshotBlock the first time
//    it is read; the guest's writes stay in the local sparse cache file and are never
//    uploaded), or with --fetch full (or without FUSE) downloaded block by block into a
//    sparse file of the volume's size; each blank EBS volume a sparse file of its mapped
//    size. With a kept-disks folder that already holds them they are reused, so a second
//    run is a reboot of the same volumes: a lazily filled root keeps the list of blocks its
//    cache holds beside it ("xvda.img.lazy.json"), written "in use" before the disk serves
//    and rewritten at the end, so a boot that was killed is refused rather than rebooted
//    from a cache whose content is unknown.
// 3. Take the kernel and initramfs from the root filesystem itself (mounted read-only), so
//    what boots is exactly what the AMI carries, not a fixture's copy; the command line
//    roots at the root partition's PARTUUID.
// 4. Boot under QEMU (qemu.cc) with each volume an NVMe disk whose serial is a made-up
//    Nitro volume id; "amibake.ebs=" on the command line lets the image's udev stand-in
//    give /dev/xvdb etc. as amazon-ec2-utils does on EC2.
// 5. Read the guest's "AMIBAKE-VERDICT {json}" line from the serial console.
#include "verify/verify.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "aws/ebs.h"
#include "aws/sigv4.h"
#include "base/files.h"
#include "base/log.h"
#include "image/block_image.h"
#include "image/ebs_source.h"
#include "image/lazy_disk.h"
#include "image/loop.h"
#include "image/mount.h"
#include "image/partition.h"
#include "verify/qemu.h"

namespace amibake::verify {
namespace {

namespace fs = std::filesystem;
constexpr const char* kVerdictMarker = "AMIBAKE-VERDICT ";

// The kernel's MBR PARTUUID suffix: the partition number as two hex digits ("%02x"), so
// logical partition 10 is "-0a".
std::string mbr_partition_suffix(int index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02x", index);
  return buf;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string disk_file_name(const std::string& device_name) {
  return device_name.substr(device_name.find_last_of('/') + 1) + ".img";
}

bool file_has_size(const std::string& path, uint64_t size) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size;
}

// Downloads every listed block of `snapshot` not in `present` into `path`: a new sparse
// file (written as path.part, then renamed) when `present` is null, else the existing file.
Status download_snapshot(aws::AwsClient& client, const std::string& snapshot,
                         const aws::ebs::SnapshotBlocks& blocks, const std::string& path,
                         const std::set<uint64_t>* present = nullptr) {
  std::string target = present ? path : path + ".part";
  auto img = present ? image::BlockImage::open(target)
                     : image::BlockImage::create(target, static_cast<uint64_t>(blocks.volume_size) << 30);
  if (!img) return img.error();
  size_t todo = 0;
  for (const auto& b : blocks.blocks) todo += present && present->count(static_cast<uint64_t>(b.index)) ? 0 : 1;
  log::info(snapshot + ": downloading " + std::to_string(todo) + " blocks through EBS direct");
  for (const auto& b : blocks.blocks) {
    if (present && present->count(static_cast<uint64_t>(b.index))) continue;
    AMIBAKE_ASSIGN(auto data, aws::ebs::get_snapshot_block(client, snapshot, b.index, b.token));
    AMIBAKE_TRY(img->write_block(static_cast<uint64_t>(b.index), data.data));
  }
  AMIBAKE_TRY(img->sync());
  if (present) return ok();
  std::error_code ec;
  fs::rename(target, path, ec);
  if (ec) return make_error(path + ": cannot rename the downloaded disk: " + ec.message(), "check the folder");
  return ok();
}

Status create_blank(const std::string& path, uint64_t size) {
  AMIBAKE_ASSIGN(auto img, image::BlockImage::create(path, size));
  return ok();
}

// The newest "prefix*" in `dir` (version-sorted by name is enough for Debian's names).
std::string newest(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename();
    if (n.rfind(prefix, 0) == 0 && !e.is_symlink()) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names.empty() ? "" : names.back();
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string fmt_size(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}

std::string decode_base64(const std::string& in) {
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    int d = std::isupper(c) ? c - 'A' : std::islower(c) ? c - 'a' + 26 : std::isdigit(c) ? c - '0' + 52
            : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (d < 0) continue;
    val = (val << 6) + d;
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

std::string standin_line(const nlohmann::json& v, const char* name) {
  const auto& s = v.value(name, nlohmann::json::object());
  std::string data = s.value("data", "not-started");
  std::string line = std::string("  ") + name + ".service: ";
  if (data == "not-started") return line + "did not start\n";
  std::string up = s.contains("uptime") && s["uptime"].is_number() ? " at " + fmt_seconds(s["uptime"]) : "";
  return line + "started" + up + " with /data " + (data == "mounted" ? "mounted" : "NOT mounted") + "\n";
}

// "<disk file>.lazy.json": what a lazily filled root's cache holds, so a kept folder can be
// rebooted: {"snapshot", "in_use", "present": [block indices]}.
std::string lazy_state_path(const std::string& file) { return file + ".lazy.json"; }

Status write_lazy_state(const std::string& file, const std::string& snapshot, bool in_use,
                        const std::vector<uint64_t>& present) {
  nlohmann::json j = {{"snapshot", snapshot}, {"in_use", in_use}, {"present", present}};
  return write_file_atomic(lazy_state_path(file), j.dump() + "\n", 0600);
}

// Returns the blocks a kept lazy root holds (its state file must exist).
Result<std::vector<uint64_t>> read_lazy_state(const std::string& file, const std::string& snapshot) {
  const std::string path = lazy_state_path(file);
  const std::string again = "remove " + file + " and " + path + " to fetch the root again";
  AMIBAKE_ASSIGN(std::string text, read_file(path));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j["present"].is_array() || !j["snapshot"].is_string())
    return make_error(path + ": not a lazy disk state file", again);
  if (j["snapshot"] != snapshot)
    return make_error(file + ": holds blocks of " + j["snapshot"].get<std::string>() + ", not of " + snapshot,
                      again);
  if (j.value("in_use", true))
    return make_error(file + ": a lazily fetched root whose boot was interrupted; what it holds is unknown",
                      again);
  std::vector<uint64_t> present;
  for (const auto& v : j["present"]) {
    if (!v.is_number_unsigned()) return make_error(path + ": bad block index " + v.dump(), again);
    present.push_back(v.get<uint64_t>());
  }
  return present;
}

aws::ebs::SnapshotBlocks list_blocks(aws::AwsClient& client, const std::string& snapshot,
                                     Status* error) {
  aws::ebs::ListSnapshotBlocksRequest l;
  l.snapshot_id = snapshot;
  auto r = aws::ebs::list_snapshot_blocks(client, l);
  if (!r) {
    *error = r.error();
    return {};
  }
  return *r;
}

}  // namespace

// The root snapshot as a LazyDisk whose cache is the kept disk file.
class LazyRoot {
 public:
  LazyRoot(aws::AwsClient& client, std::string snapshot, const aws::ebs::SnapshotBlocks& blocks,
           std::string file)
      : snapshot_(std::move(snapshot)), file_(std::move(file)),
        source_(client, snapshot_, tokens_of(blocks)) {}
  ~LazyRoot() {
    if (Status s = close(); !s) log::warn(s.error().message + ", ignoring");
  }

  Status open(const aws::ebs::SnapshotBlocks& blocks, const std::vector<uint64_t>* present,
              const std::string& mount_dir) {
    image::LazyDiskOptions o;
    o.cache_file = file_;
    o.size_bytes = static_cast<uint64_t>(blocks.volume_size) << 30;
    for (const auto& b : blocks.blocks) o.listed.push_back(static_cast<uint64_t>(b.index));
    if (present) {
      o.reuse_cache = true;
      o.present = *present;
    }
    o.mount_dir = mount_dir;
    AMIBAKE_TRY(write_lazy_state(file_, snapshot_, /*in_use=*/true, present ? *present : std::vector<uint64_t>{}));
    auto disk = image::LazyDisk::open(o, source_);
    if (!disk) {
      // Nothing served: the cache is what it was (or absent), and so is its state.
      std::error_code ec;
      if (present) (void)write_lazy_state(file_, snapshot_, false, *present);
      else fs::remove(lazy_state_path(file_), ec);
      return disk.error();
    }
    disk_ = std::move(*disk);
    if (std::string w = disk_->io_flusher_warning(); !w.empty()) log::info(w + ", ignoring");
    return ok();
  }

  const std::string& fuse_file() const { return disk_->file(); }
  image::LazyDisk::Stats stats() const { return disk_->stats(); }

  // Stops serving (QEMU has exited) and records what the cache holds. Idempotent.
  Status close() {
    if (!disk_) return ok();
    Status closed = disk_->close();
    if (!closed) return closed;
    auto present = disk_->present_blocks();
    bool io_error = disk_->saw_io_error();
    disk_.reset();
    // After an I/O error the guest saw a broken disk: the state stays "in use" (refused).
    if (io_error) return ok();
    return write_lazy_state(file_, snapshot_, /*in_use=*/false, present);
  }

 private:
  static std::map<uint64_t, std::string> tokens_of(const aws::ebs::SnapshotBlocks& blocks) {
    std::map<uint64_t, std::string> out;
    for (const auto& b : blocks.blocks) out[static_cast<uint64_t>(b.index)] = b.token;
    return out;
  }
  std::string snapshot_, file_;
  image::EbsBlockSource source_;
  std::unique_ptr<image::LazyDisk> disk_;
};

namespace {
std::string root_fetch_line(const RootFetch& f) {
  if (f.mode == "reused") return "root disk: reused as it is\n";
  std::ostringstream out;
  if (f.mode == "lazy") {
    out << "root disk: lazy" << (f.reused ? " (kept cache rebooted)" : "") << ", " << f.blocks_fetched << " of "
        << f.blocks_listed << " written blocks fetched (" << f.fetched_for_kernel
        << " to take the kernel out), " << f.blocks_written << " written locally, never uploaded";
  } else {
    out << "root disk: downloaded, " << f.blocks_fetched << " of " << f.blocks_listed << " written blocks";
    if (!f.note.empty()) out << " (" << f.note << ")";
  }
  out << "; ready to boot after " << fmt_seconds(f.seconds) << "\n";
  return out.str();
}

}  // namespace

bool is_loopback_url(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  std::string host = url.substr(start, url.find_first_of("/?#", start) - start);
  if (size_t at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (size_t colon = host.find(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  host = lower(host);
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8 as a dotted quad only: "127.0.0.1.example.com" is a remote name.
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3 && host.rfind("127.", 0) == 0;
}

std::string volume_serial(const std::string& ami_id, const std::string& device_name) {
  return "vol" + aws::sha256_hex("amibake-verify:" + ami_id + ":" + device_name).substr(0, 17);
}

Result<Disks> materialise_disks(aws::AwsClient& client, const aws::ec2::Image& image,
                                const std::string& dir, const std::vector<std::string>& without,
                                const std::string& fetch) {
  if (fetch != "auto" && fetch != "lazy" && fetch != "full")
    return make_error("verify: --fetch " + fetch + " is not one of auto, lazy, full");
  Disks out;
  for (const auto& m : image.block_device_mappings) {
    if (!m.ebs || m.no_device) continue;  // instance store and suppressed mappings: not EBS
    if (std::find(without.begin(), without.end(), m.device_name) != without.end()) {
      log::info(m.device_name + ": left unattached (--without)");
      continue;
    }
    Disk d;
    d.device_name = m.device_name;
    d.serial = volume_serial(image.image_id, m.device_name);
    d.file = dir + "/" + disk_file_name(m.device_name);
    d.size_bytes = static_cast<uint64_t>(m.ebs->volume_size.value_or(8)) << 30;
    d.root = m.device_name == image.root_device_name;
    const std::string& snap = m.ebs->snapshot_id;
    std::error_code ec;
    const bool kept_lazy = fs::exists(lazy_state_path(d.file), ec);
    if (kept_lazy && snap.empty()) {
      return make_error(lazy_state_path(d.file) + ": a lazy disk state for a volume without a snapshot",
                        "remove it");
    }
    if (!kept_lazy && file_has_size(d.file, d.size_bytes)) {
      d.reused = true;
      if (d.root) out.root.mode = "reused";
      log::info(m.device_name + ": reusing " + d.file + " as it is");
    } else if (!snap.empty()) {
      Status listed = ok();
      auto blocks = list_blocks(client, snap, &listed);
      if (!listed) return listed.error();
      if (static_cast<uint64_t>(blocks.volume_size) << 30 < d.size_bytes) {
        // The mapping may ask for a bigger volume than the snapshot: the disk is the mapping's.
        blocks.volume_size = static_cast<int64_t>(d.size_bytes >> 30);
      }
      std::optional<std::vector<uint64_t>> present;
      if (kept_lazy) {
        AMIBAKE_ASSIGN(present, read_lazy_state(d.file, snap));
        d.reused = true;
      }
      RootFetch rf;
      rf.blocks_listed = blocks.blocks.size();
      std::string why_not_lazy;
      if (d.root && fetch != "full") {
        auto lazy = std::make_shared<LazyRoot>(client, snap, blocks, d.file);
        Status opened = lazy->open(blocks, present ? &*present : nullptr,
                                   dir + "/.lazy-" + disk_file_name(m.device_name));
        if (opened) {
          log::info(m.device_name + ": " + snap + " served lazily (" + std::to_string(blocks.blocks.size()) +
                    " written blocks, each fetched when first read)" + (present ? ", reusing " + d.file : ""));
          out.lazy_root = lazy;
          d.file = lazy->fuse_file();
          rf.mode = "lazy";
          rf.reused = d.reused;
        } else if (fetch == "lazy") {
          return opened.error().wrap("verify --fetch lazy");
        } else {
          why_not_lazy = opened.error().message;
        }
      }
      if (rf.mode.empty()) {
        std::set<uint64_t> held;
        if (present) held.insert(present->begin(), present->end());
        if (!why_not_lazy.empty()) {
          rf.note = "lazy fetch unavailable (" + why_not_lazy + ")";
          log::info(m.device_name + ": " + rf.note + ": downloading the whole snapshot instead");
        }
        AMIBAKE_TRY(download_snapshot(client, snap, blocks, d.file, present ? &held : nullptr));
        if (present) fs::remove(lazy_state_path(d.file), ec);  // complete now: a plain disk file
        rf.mode = "full";
        for (const auto& b : blocks.blocks) rf.blocks_fetched += held.count(static_cast<uint64_t>(b.index)) ? 0 : 1;
        rf.bytes_fetched = rf.blocks_fetched * static_cast<uint64_t>(aws::ebs::kBlockSize);
      }
      if (d.root) out.root = rf;
    } else {
      AMIBAKE_TRY(create_blank(d.file, d.size_bytes));
    }
    out.disks.push_back(d);
  }
  if (std::none_of(out.disks.begin(), out.disks.end(), [](const Disk& d) { return d.root; })) {
    return make_error(image.image_id + ": no EBS root volume (" + image.root_device_name + ") to boot",
                      "only EBS-backed AMIs can be booted");
  }
  std::stable_partition(out.disks.begin(), out.disks.end(), [](const Disk& d) { return d.root; });
  return out;
}

Result<BootFiles> extract_boot_files(const std::string& root_disk, const std::string& dir,
                                     bool lazy_disk) {
  AMIBAKE_ASSIGN(auto table, image::read_partition_table(root_disk));
  AMIBAKE_ASSIGN(auto part, image::find_root_partition(table));
  image::LoopOptions lo;
  lo.offset = part.start;
  lo.size_limit = part.size;
  lo.read_only = true;
  lo.direct_io = lazy_disk;
  AMIBAKE_ASSIGN(auto loop, image::LoopDevice::attach(root_disk, lo));
  image::MountOptions mo;
  mo.read_only = true;
  AMIBAKE_ASSIGN(auto mount, image::Mount::mount_device(loop.path(), mo));
  std::string boot = mount.path() + "/boot";
  std::string kernel = newest(boot, "vmlinuz-");
  if (kernel.empty()) {
    return make_error(root_disk + ": no /boot/vmlinuz-* in the root filesystem",
                      "verify --boot needs an image that carries its kernel in /boot");
  }
  std::string initrd = "initrd.img-" + kernel.substr(std::string("vmlinuz-").size());
  BootFiles files;
  files.kernel = dir + "/vmlinuz";
  files.initrd = dir + "/initrd";
  AMIBAKE_ASSIGN(std::string k, read_file(boot + "/" + kernel));
  AMIBAKE_TRY(write_file_atomic(files.kernel, k, 0600));
  AMIBAKE_ASSIGN(std::string i, read_file(boot + "/" + initrd));
  AMIBAKE_TRY(write_file_atomic(files.initrd, i, 0600));
  std::string root = table.kind == image::TableKind::kGpt
                         ? "PARTUUID=" + lower(part.uuid)
                         : "PARTUUID=" + lower(table.disk_guid) + "-" + mbr_partition_suffix(part.index);
  files.cmdline = "root=" + root + " rw panic=-1";  // console= is the machine's (qemu.cc)
  log::info("booting /boot/" + kernel + " with " + files.cmdline);
  return files;
}

Result<nlohmann::json> find_verdict(const std::string& console) {
  size_t at = console.find(kVerdictMarker);
  if (at == std::string::npos) {
    return make_error("guest: no " + std::string(kVerdictMarker) + "line on the serial console",
                      "the image must carry the verdict unit of tests/fixtures/make-boot-image");
  }
  size_t start = at + std::string(kVerdictMarker).size();
  std::string line = console.substr(start, console.find('\n', start) - start);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error("guest: the verdict line is not a JSON object: " + line.substr(0, 200),
                      "check the serial console log");
  }
  return j;
}

bool verdict_passes(const nlohmann::json& v) {
  auto data = v.value("data", nlohmann::json::object());
  auto saw = [&](const char* unit) {
    return v.value(unit, nlohmann::json::object()).value("data", "") == std::string("mounted");
  };
  return data.value("mounted", false) && saw("docker") && saw("ecs");
}

Result<BootResult> boot_ami(aws::AwsClient& client, const BootOptions& options) {
  auto started = std::chrono::steady_clock::now();
  AMIBAKE_ASSIGN(auto image, aws::ec2::describe_image(client, options.ami_id));
  AMIBAKE_TRY(machine_for(image.architecture));  // refused before any download
  std::string dir = options.keep_disks_dir;
  bool temporary = dir.empty();
  if (temporary) {
    AMIBAKE_ASSIGN(dir, make_temp_dir("amibake-verify"));
  } else {
    AMIBAKE_TRY(make_dirs(dir, 0700));
    // A killed earlier run may have left a lazy root's FUSE mount (or a kernel-extraction
    // loop device) in the folder.
    for (const auto& line : image::release_lazy_disks_under(dir)) log::info(line);
  }
  // A temporary folder is removed after a boot that gave a verdict; after a failure it is
  // kept (and named) so the console log and disks can be looked at.
  struct Cleanup {
    std::string dir;
    bool done = false;
    ~Cleanup() {
      std::error_code ec;
      if (dir.empty()) return;
      if (done) fs::remove_all(dir, ec);
      else log::warn("verify: kept the disks and console log of the failed boot in " + dir);
    }
  } cleanup{temporary ? dir : ""};

  BootResult result;
  result.ami_id = options.ami_id;
  AMIBAKE_ASSIGN(auto disks, materialise_disks(client, image, dir, options.without_devices, options.fetch));
  result.disks = disks.disks;
  result.root = disks.root;
  const bool lazy = disks.lazy_root != nullptr;
  AMIBAKE_ASSIGN(auto files, extract_boot_files(result.disks.front().file, dir, lazy));
  files.architecture = image.architecture;
  if (lazy) result.root.fetched_for_kernel = disks.lazy_root->stats().fetched;
  result.root.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.console_path = dir + "/console.log";
  auto run = boot_qemu(result.disks, files, result.console_path, options.accel, options.timeout_seconds);
  if (lazy) {
    // QEMU has exited (or was killed): nothing holds the FUSE file any more.
    auto st = disks.lazy_root->stats();
    result.root.blocks_fetched = st.fetched;
    result.root.bytes_fetched = st.bytes_fetched;
    result.root.blocks_written = st.dirty;
    AMIBAKE_TRY(disks.lazy_root->close());
    result.disks.front().file = dir + "/" + disk_file_name(result.disks.front().device_name);
    log::info("root disk: " + std::to_string(st.fetched) + " of " + std::to_string(result.root.blocks_listed) +
              " written blocks fetched lazily" + (st.io_errors ? ", with I/O errors" : ""));
  }
  if (!run) return run.error();
  result.accel = run->accel;
  result.wall_seconds = run->seconds;
  AMIBAKE_ASSIGN(result.verdict, find_verdict(run->console));
  if (temporary) result.console_path.clear();
  cleanup.done = true;
  return result;
}

std::string format_report(const BootResult& r) {
  const auto& v = r.verdict;
  std::ostringstream out;
  out << r.ami_id << ": booted under QEMU (" << r.accel << "), verdict after " << fmt_seconds(r.wall_seconds)
      << "\n";
  auto data = v.value("data", nlohmann::json::object());
  std::string source = data.value("source", "");
  out << root_fetch_line(r.root);
  out << "volumes:\n";
  for (const auto& d : r.disks) {
    std::string kname, ksize = fmt_size(static_cast<double>(d.size_bytes));
    for (const auto& k : v.value("disks", nlohmann::json::array())) {
      if (k.value("serial", "") == d.serial) kname = k.value("name", "");
    }
    out << "  " << d.device_name << "  " << d.serial << "  " << (kname.empty() ? "(not seen by the guest)" : "/dev/" + kname)
        << "  " << ksize << (d.root ? "  root" : "") << (d.reused ? "  (reused)" : "");
    if (!d.root && !kname.empty() && data.value("mounted", false) && source == "/dev/" + kname) {
      out << "  " << data.value("fstype", "") << " mounted at /data ("
          << fmt_size(data.value("size", 0.0)) << ")";
    } else if (!d.root) {
      out << "  not mounted at /data";
    }
    out << "\n";
  }
  if (data.value("mounted", false)) {
    out << "/data: " << data.value("fstype", "") << ", " << fmt_size(data.value("size", 0.0)) << ", from "
        << source;
    if (data.contains("ready_us") && data["ready_us"].is_number()) {
      out << ", ready " << fmt_seconds(data["ready_us"].get<double>() / 1e6) << " after kernel start";
    }
    out << "\n";
  } else {
    out << "/data: NOT mounted\n";
  }
  for (const char* unit : {"containerd", "docker", "ecs"}) out << standin_line(v, unit);
  out << "datavol.service: " << v.value("datavol", "unknown") << "\n";
  std::string log_text = decode_base64(v.value("datavol_log_b64", ""));
  if (!log_text.empty()) {
    out << "datavol log:\n";
    std::istringstream lines(log_text);
    for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
  }
  out << (verdict_passes(v) ? "PASS: /data was mounted before docker and ecs started\n"
                            : "FAIL: /data was not mounted before docker and ecs started\n");
  return out.str();
}

}  // namespace amibake::verify
