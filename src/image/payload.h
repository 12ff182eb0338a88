// What a mounted root filesystem is (init system, architecture, SELinux, OS), and writing
// files into it without ever leaving it.
//
// Only detection and safe file placement live here for now; the datavol unit/script
// generation comes from helper "datavol"'s units library and will be wired in later.
// SELinux labels for placed files: selinux.h (load_file_contexts + set_selinux_label).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace amibake::image {

enum class InitSystem { kUnknown, kSystemd, kSysV };
enum class Arch { kUnknown, kX86_64, kArm64 };

// "systemd", "sysv", "unknown" / "x86_64", "arm64", "unknown" (the EC2 architecture names).
const char* init_system_name(InitSystem init);
const char* arch_name(Arch arch);

struct SelinuxInfo {
  bool config_present = false;     // /etc/selinux/config exists
  std::string mode;                // SELINUX=: "enforcing", "permissive", "disabled" (lower case)
  std::string policy_type;         // SELINUXTYPE=: "targeted", "mls"…
  std::string file_contexts_path;  // path inside the image, e.g.
                                   // /etc/selinux/targeted/contexts/files/file_contexts
  bool file_contexts_present = false;
  // True when new files need labels: a config that is not "disabled".
  bool labels_needed() const { return config_present && !mode.empty() && mode != "disabled"; }
};

struct ImageInfo {
  InitSystem init = InitSystem::kUnknown;
  std::string init_reason;  // why init was decided (or why it could not be), for messages
  Arch arch = Arch::kUnknown;
  std::string arch_source;  // the file whose ELF header decided, e.g. "/usr/bin/bash"
  int elf_machine = 0;      // e_machine read there (62 x86-64, 183 aarch64…), 0 if none
  SelinuxInfo selinux;
  std::string os_id;           // os-release ID ("amzn", "debian"); empty if unknown
  std::string os_version_id;   // os-release VERSION_ID ("2023", "2")
  std::string os_pretty_name;  // PRETTY_NAME, or /etc/system-release's line on old images
};

// Inspects the root filesystem mounted at `root`. Paths are resolved inside `root` as if it
// were "/" (absolute symlinks stay inside). Unknown init or architecture is not an error
// here (the fields say kUnknown, with init_reason); an unreadable root is.
Result<ImageInfo> detect_image(const std::string& root);

// Returns the content of `path` (absolute, inside the image) resolved inside `root`;
// at most `max_bytes` are read.
Result<std::string> read_file_in_root(const std::string& root, const std::string& path,
                                      size_t max_bytes = 1 << 20);

// Writes `content` to `path` (absolute, inside the image) with permission bits `mode`, owner
// root:root (when running as root; otherwise the caller's), creating missing parent folders (0755).
// Symlinks along the way are followed only as they would be inside the image (RESOLVE_IN_ROOT),
// never out of it and never across a mount; ".." components are refused. The file is written to a
// temporary name and renamed over `path`, so an existing symlink at `path` is replaced, not
// followed.
Status install_file(const std::string& root, const std::string& path, const std::string& content,
                    mode_t mode);

// Creates (or replaces) a symlink at `path` (inside the image) pointing to `target`
// (stored as given; it is resolved by the image at boot). Same path rules as install_file.
Status install_symlink(const std::string& root, const std::string& path, const std::string& target);

// True when something (file, folder, link; links not followed) is at `path` inside the image.
bool exists_in_root(const std::string& root, const std::string& path);

// Removes the file or link at `path` inside the image (resolved like install_file);
// absent is fine.
Status remove_in_root(const std::string& root, const std::string& path);

// Creates folder `path` and its parents inside the image (mode 0755 for new ones).
Status make_dirs_in_root(const std::string& root, const std::string& path, mode_t mode = 0755);

}  // namespace amibake::image
