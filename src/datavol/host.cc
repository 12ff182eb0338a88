// sysfs and mountinfo readers. Kept dumb: they report what the files say and decide
// nothing, so the safety logic in probe.cc can be read without the parsing noise.
#include "datavol/host.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "base/files.h"

namespace amibake::datavol {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
std::string unescape_octal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = opendir(path.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

bool parse_dev_numbers(const std::string& text, unsigned* major, unsigned* minor) {
  return std::sscanf(text.c_str(), "%u:%u", major, minor) == 2;
}

std::vector<MountEntry> parse_mountinfo(const std::string& text) {
  // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
  std::vector<MountEntry> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mount_point, word;
    if (!(f >> id >> parent >> devno >> root >> mount_point)) continue;
    MountEntry e;
    if (!parse_dev_numbers(devno, &e.major, &e.minor)) continue;
    while (f >> word && word != "-") {
    }
    if (word != "-") continue;
    f >> e.fstype >> e.source;
    e.mount_point = unescape_octal(mount_point);
    e.source = unescape_octal(e.source);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<MountEntry> read_mountinfo(const std::string& path) {
  auto text = read_file(path);
  return text ? parse_mountinfo(*text) : std::vector<MountEntry>{};
}

std::vector<std::string> parse_swaps(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // "Filename Type Size Used Priority"
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string name;
    if (f >> name) out.push_back(unescape_octal(name));
  }
  return out;
}

std::string read_attribute(const std::string& path) {
  auto text = read_file(path);
  if (!text) return "";
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::vector<std::string> list_block_devices(const std::string& sys) {
  return list_directory(sys + "/block");
}

Result<BlockInfo> read_block_info(const std::string& sys, const std::string& name) {
  std::string dir = sys + "/block/" + name;
  BlockInfo info;
  info.name = name;
  if (!parse_dev_numbers(read_attribute(dir + "/dev"), &info.major, &info.minor)) {
    return make_error(dir + ": no block device of that name",
                      "check the device name; `datavol resolve NAME` lists what is seen");
  }
  std::string size = read_attribute(dir + "/size");
  info.size_bytes = std::strtoull(size.c_str(), nullptr, 10) * 512;  // always 512-byte units
  for (const auto& h : list_directory(dir + "/holders")) info.holders.push_back(h);
  for (const auto& entry : list_directory(dir)) {
    if (!exists(dir + "/" + entry + "/partition")) continue;
    BlockInfo::Partition p;
    p.name = entry;
    parse_dev_numbers(read_attribute(dir + "/" + entry + "/dev"), &p.major, &p.minor);
    for (const auto& h : list_directory(dir + "/" + entry + "/holders")) info.holders.push_back(h);
    info.partitions.push_back(std::move(p));
  }
  return info;
}

}  // namespace amibake::datavol
