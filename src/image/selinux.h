// SELinux labels for files amibake adds to an image, looked up in the image's own policy.
//
// An image with SELinux enforcing (or permissive, and later switched) needs every new file
// to carry the label its policy's file_contexts gives that path; otherwise the services that
// read it are denied, or a relabel at boot is needed. No SELinux library or policy of the
// build host is involved: the image's text file_contexts is read and matched here, and the
// label is written as the raw "security.selinux" extended attribute.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace amibake::image {

// The file_contexts rules of one policy, matched the way libselinux does: rules without
// regex metacharacters take precedence over ones with them, otherwise the last matching line
// in the file wins; a rule may be limited to one file type ("--" regular, "-d" folder,
// "-l" symlink, …).
class FileContexts {
 public:
  FileContexts();
  ~FileContexts();
  FileContexts(FileContexts&&) noexcept;
  FileContexts& operator=(FileContexts&&) noexcept;

  // Parses file_contexts text (one "REGEX [TYPE] CONTEXT" per line, '#' comments).
  // `source` names the text in errors. Invalid regexes are errors naming the line.
  static Result<FileContexts> parse(const std::string& text, const std::string& source);

  // Returns the context for `path` (absolute, inside the image) of file type `mode`
  // (S_IFREG, S_IFDIR, S_IFLNK…), "" when no rule matches or the rule says <<none>>.
  std::string lookup(const std::string& path, mode_t mode) const;

  size_t size() const;

 private:
  struct Rule;
  std::vector<std::unique_ptr<Rule>> rules_;  // in precedence order, lowest first
};

// Loads `policy_type`'s file_contexts (and file_contexts.local when present) from the image
// mounted at `root`, e.g. /etc/selinux/targeted/contexts/files/file_contexts.
Result<FileContexts> load_file_contexts(const std::string& root, const std::string& policy_type);

// Sets the "security.selinux" attribute of `path` (inside the image, resolved like
// install_file; a symlink itself is labelled, not its target) to `context`.
Status set_selinux_label(const std::string& root, const std::string& path,
                         const std::string& context);

// Returns the "security.selinux" attribute of `path` inside the image ("" when unset).
Result<std::string> get_selinux_label(const std::string& root, const std::string& path);

}  // namespace amibake::image
