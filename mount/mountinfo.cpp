#include "mount/mountinfo.h"

#include <fstream>
#include <sstream>

namespace vdisk::mount {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::optional<MountInfoEntry> find_mount(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountInfoEntry> found;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    std::istringstream ls(line);
    std::string id, parent, dev, root, mp, tok;
    ls >> id >> parent >> dev >> root >> mp;
    if (unescape(mp) != path) continue;
    while (ls >> tok && tok != "-") {
    }
    MountInfoEntry e;
    e.device = dev;
    e.mountpoint = unescape(mp);
    std::string source;
    ls >> e.fstype >> source >> e.super_options;
    found = std::move(e);
  }
  return found;
}

}  // namespace vdisk::mount
