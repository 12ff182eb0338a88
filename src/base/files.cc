#include "base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace amibake {
namespace {
Error errno_error(const std::string& what, const std::string& path) {
  return make_error(path + ": " + what + ": " + std::strerror(errno));
}
}  // namespace

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("cannot open", path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error e = errno_error("cannot read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

static Status write_all(int fd, const std::string& content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot write", path);
    off += static_cast<size_t>(n);
  }
  return ok();
}

Status write_file_atomic(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno_error("cannot create", tmp);
  ::fchmod(fd, mode);  // umask must not widen or narrow what the caller asked for
  Status s = write_all(fd, content, tmp);
  if (s && ::fsync(fd) != 0) s = errno_error("cannot fsync", tmp);
  ::close(fd);
  if (s && ::rename(tmp.c_str(), path.c_str()) != 0) s = errno_error("cannot rename into place", path);
  if (!s) ::unlink(tmp.c_str());
  return s;
}

Status append_line_synced(const std::string& path, const std::string& line, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode);
  if (fd < 0) return errno_error("cannot open for append", path);
  Status s = write_all(fd, line + "\n", path);
  if (s && ::fsync(fd) != 0) s = errno_error("cannot fsync", path);
  ::close(fd);
  return s;
}

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) return ok();
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return errno_error("cannot create folder", cur);
  }
  return ok();
}

Result<std::string> make_temp_dir(const std::string& prefix) {
  std::string base = env_or("TMPDIR", "/tmp");
  std::string templ = base + "/" + prefix + ".XXXXXX";
  if (!::mkdtemp(templ.data())) return errno_error("cannot create temporary folder", templ);
  return templ;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

}  // namespace amibake
