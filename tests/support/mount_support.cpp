#include "tests/support/mount_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "mount/mountinfo.h"
#include "tests/support/test_support.h"

namespace vdisk::test {

namespace {

// The bytes of a /proc file, or what could be read: a process may exit
// between opening its file and reading it (read fails with ESRCH), which a
// std::ifstream turns into an exception out of istreambuf_iterator.
std::string read_proc(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

std::string mounted_fstype(const std::string& path) {
  auto m = mount::find_mount(path);
  return m ? m->fstype : std::string();
}

bool is_mounted(const std::string& path) {
  return !mounted_fstype(path).empty();
}

std::vector<pid_t> mount_daemons(const std::string& mountpoint) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
    const std::string all = read_proc(std::string("/proc/") + e->d_name + "/cmdline");
    std::vector<std::string> argv;
    std::string cur;
    for (char c : all) {
      if (c == '\0') {
        argv.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    bool has_mount = false, has_mp = false;
    for (auto& a : argv) {
      if (a == "mount") has_mount = true;
      if (a == mountpoint) has_mp = true;
    }
    if (has_mount && has_mp) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

std::vector<pid_t> wait_exited(const std::vector<pid_t>& pids, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    std::vector<pid_t> alive;
    for (pid_t p : pids) {
      // A zombie has no cmdline: count it as gone (its parent reaps it).
      const std::string s = read_proc("/proc/" + std::to_string(p) + "/cmdline");
      if (::kill(p, 0) == 0 && !s.empty()) alive.push_back(p);
    }
    if (alive.empty() || std::chrono::steady_clock::now() > deadline) return alive;
    sleep_ms(20);
  }
}

bool wait_mounted(const std::string& path, bool mounted, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (is_mounted(path) != mounted) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    sleep_ms(20);
  }
  return true;
}

MountGuard::~MountGuard() {
  std::vector<pid_t> daemons = mount_daemons(mountpoint_);
  if (is_mounted(mountpoint_)) {
    run(std::string(VDISK_BIN) + " unmount " + sh_quote(mountpoint_));
    if (is_mounted(mountpoint_)) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  }
  for (pid_t p : wait_exited(daemons, 5.0)) ::kill(p, SIGKILL);
}

}  // namespace vdisk::test
