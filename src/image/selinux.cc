// SELinux file labels from the image's own file_contexts.
//
// Matching follows libselinux's label_file backend closely enough for the handful of paths
// amibake adds (a binary, a config, units, drop-ins, links): each rule's regex is anchored
// ("^(…)$"), rules without regex metacharacters (exact paths) are moved after all others,
// and the LAST matching rule wins. A rule can be limited to one file type. "<<none>>" means
// "do not label". libselinux compiles with PCRE2; file_contexts regexes are written in the
// POSIX-compatible subset, so POSIX extended regexes (regcomp) serve here.
//
// Labels are written as the raw "security.selinux" attribute with its trailing NUL, as
// setfilecon does. The build host need not run SELinux: without an active LSM claiming the
// attribute, the filesystem stores it as given (root only).
#include "image/selinux.h"

#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "image/in_root.h"
#include "image/payload.h"

namespace amibake::image {

struct FileContexts::Rule {
  std::string pattern;
  mode_t type = 0;  // 0 = any file type
  std::string context;
  bool exact = false;  // no metacharacters: takes precedence
  regex_t regex{};
  bool compiled = false;
  ~Rule() {
    if (compiled) regfree(&regex);
  }
};

namespace {

bool has_meta_chars(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;  // an escaped character is literal
      continue;
    }
    if (std::strchr(".^$?*+|[({", s[i]) != nullptr) return true;
  }
  return false;
}

// Returns the S_IF* type of a file_contexts type token, 0 on an unknown token.
mode_t type_of_token(const std::string& t) {
  if (t == "--") return S_IFREG;
  if (t == "-d") return S_IFDIR;
  if (t == "-l") return S_IFLNK;
  if (t == "-c") return S_IFCHR;
  if (t == "-b") return S_IFBLK;
  if (t == "-p") return S_IFIFO;
  if (t == "-s") return S_IFSOCK;
  return 0;
}

constexpr const char* kXattr = "security.selinux";

std::string proc_path(int dir_fd, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
}

}  // namespace

FileContexts::FileContexts() = default;
FileContexts::~FileContexts() = default;
FileContexts::FileContexts(FileContexts&&) noexcept = default;
FileContexts& FileContexts::operator=(FileContexts&&) noexcept = default;

size_t FileContexts::size() const { return rules_.size(); }

Result<FileContexts> FileContexts::parse(const std::string& text, const std::string& source) {
  FileContexts fc;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty() || w[0][0] == '#') continue;
    const std::string where = source + ":" + std::to_string(number);
    if (w.size() != 2 && w.size() != 3)
      return make_error(where + ": expected \"REGEX [TYPE] CONTEXT\", found " +
                        std::to_string(w.size()) + " fields");
    auto rule = std::make_unique<Rule>();
    rule->pattern = w[0];
    rule->context = w.back();
    if (w.size() == 3) {
      rule->type = type_of_token(w[1]);
      if (rule->type == 0) return make_error(where + ": unknown file type \"" + w[1] + "\"");
    }
    rule->exact = !has_meta_chars(rule->pattern);
    std::string anchored = "^(" + rule->pattern + ")$";
    int rc = regcomp(&rule->regex, anchored.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char msg[256];
      regerror(rc, &rule->regex, msg, sizeof msg);
      return make_error(where + ": bad regex \"" + rule->pattern + "\": " + msg);
    }
    rule->compiled = true;
    fc.rules_.push_back(std::move(rule));
  }
  // Exact paths after all regex rules, file order kept otherwise (libselinux's sort_specs).
  std::stable_partition(fc.rules_.begin(), fc.rules_.end(),
                        [](const std::unique_ptr<Rule>& r) { return !r->exact; });
  return fc;
}

std::string FileContexts::lookup(const std::string& path, mode_t mode) const {
  const mode_t type = mode & S_IFMT;
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    const Rule& r = **it;
    if (r.type != 0 && r.type != type) continue;
    if (regexec(&r.regex, path.c_str(), 0, nullptr, 0) != 0) continue;
    return r.context == "<<none>>" ? std::string() : r.context;
  }
  return {};
}

Result<FileContexts> load_file_contexts(const std::string& root, const std::string& policy_type) {
  if (policy_type.empty() || policy_type.find('/') != std::string::npos || policy_type == "..")
    return make_error(root + ": SELinux policy type \"" + policy_type + "\" is not a plain name",
                      "check SELINUXTYPE= in the image's /etc/selinux/config");
  const std::string base = "/etc/selinux/" + policy_type + "/contexts/files/file_contexts";
  AMIBAKE_ASSIGN(std::string text, read_file_in_root(root, base, 64 << 20));
  // file_contexts.local (semanage fcontext additions) is read after the policy's own rules.
  auto local = read_file_in_root(root, base + ".local", 16 << 20);
  if (local) text += "\n" + *local;
  auto fc = FileContexts::parse(text, root + ":" + base);
  if (!fc) return fc.error();
  return fc;
}

Status set_selinux_label(const std::string& root, const std::string& path,
                         const std::string& context) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, detail::split_image_path(path));
  AMIBAKE_ASSIGN(detail::Fd root_fd, detail::open_root(root));
  AMIBAKE_ASSIGN(detail::Fd dir, detail::open_parent_dir(root_fd.get(), root, parts, 0755,
                                                         /*create=*/false));
  // Through the already-resolved folder; l*xattr labels a final symlink itself.
  std::string p = proc_path(dir.get(), parts.back());
  if (::lsetxattr(p.c_str(), kXattr, context.c_str(), context.size() + 1, 0) != 0)
    return make_error(root + ": " + path + ": cannot set SELinux label \"" + context +
                          "\": " + std::strerror(errno),
                      errno == EOPNOTSUPP
                          ? "the image's filesystem does not store extended attributes"
                          : std::string());
  return ok();
}

Result<std::string> get_selinux_label(const std::string& root, const std::string& path) {
  AMIBAKE_ASSIGN(std::vector<std::string> parts, detail::split_image_path(path));
  AMIBAKE_ASSIGN(detail::Fd root_fd, detail::open_root(root));
  AMIBAKE_ASSIGN(detail::Fd dir, detail::open_parent_dir(root_fd.get(), root, parts, 0755,
                                                         /*create=*/false));
  std::string p = proc_path(dir.get(), parts.back());
  char buf[1024];
  ssize_t n = ::lgetxattr(p.c_str(), kXattr, buf, sizeof buf);
  if (n < 0 && errno == ENODATA) return std::string();
  if (n < 0)
    return make_error(root + ": " + path + ": cannot read SELinux label: " + std::strerror(errno));
  std::string label(buf, static_cast<size_t>(n));
  while (!label.empty() && label.back() == '\0') label.pop_back();
  return label;
}

}  // namespace amibake::image
