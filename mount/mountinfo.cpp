#include "mount/mountinfo.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

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

// Binds the abstract socket name of `device`; the fd, or -1 (errno set).
int bind_marker(const std::string& device) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::string name = "vdisk-mount:" + device;
  if (name.size() + 1 > sizeof addr.sun_path) name.resize(sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

}  // namespace

int hold_daemon_marker(const std::string& device) {
  return bind_marker(device);
}

bool wait_daemon_gone(const std::string& device, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int fd = bind_marker(device);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    if (errno != EADDRINUSE) return true;  // cannot tell: do not wait
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

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
