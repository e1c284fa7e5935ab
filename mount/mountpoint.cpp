// Mount point checks and `vdisk unmount`.
#include <dirent.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/error.h"
#include "mount/mount.h"
#include "mount/mountinfo.h"

extern char** environ;

namespace vdisk::mount {

namespace {

std::optional<std::string> mounted_fstype(const std::string& path) {
  auto m = find_mount(path);
  if (!m) return std::nullopt;
  return m->fstype;
}

[[noreturn]] void fail(ErrorKind kind, const std::string& mp, const std::string& msg) {
  throw Error(kind, mp, std::nullopt, msg);
}

}  // namespace

std::string check_mountpoint(const std::string& mountpoint) {
  struct stat st;
  if (::stat(mountpoint.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) fail(ErrorKind::kNotFound, mountpoint, "mount point does not exist");
    if (err == ENOTCONN) {
      fail(ErrorKind::kInvalidArgument, mountpoint,
           "mount point is a stale FUSE mount (transport endpoint is not connected): run "
           "'vdisk unmount " +
               mountpoint + "' first");
    }
    throw_errno(mountpoint, std::nullopt, "cannot use the mount point", err);
  }
  if (!S_ISDIR(st.st_mode))
    fail(ErrorKind::kInvalidArgument, mountpoint, "mount point is not a directory");
  char buf[PATH_MAX];
  if (!::realpath(mountpoint.c_str(), buf))
    throw_errno(mountpoint, std::nullopt, "realpath", errno);
  std::string abs = buf;
  // Busy: something is already mounted here (a different device than the
  // parent directory's, or listed in mountinfo, which also catches bind mounts).
  struct stat parent;
  std::string up = abs == "/" ? "/" : abs + "/..";
  bool busy = abs == "/" || mounted_fstype(abs).has_value();
  if (!busy && ::stat(up.c_str(), &parent) == 0 && parent.st_dev != st.st_dev) busy = true;
  if (busy) {
    auto fstype = mounted_fstype(abs);
    fail(ErrorKind::kInvalidArgument, mountpoint,
         "mount point is busy: a " + fstype.value_or(std::string("file system")) +
             " is already mounted there");
  }
  DIR* d = ::opendir(abs.c_str());
  if (!d) throw_errno(mountpoint, std::nullopt, "cannot list the mount point", errno);
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  if (!empty) {
    fail(ErrorKind::kInvalidArgument, mountpoint,
         "mount point is not empty (mounting would hide its files)");
  }
  return abs;
}

namespace {

void unmount_kernel(const std::string& mountpoint, const std::string& abs) {
  if (::geteuid() == 0) {
    if (::umount2(abs.c_str(), 0) != 0) {
      int err = errno;
      if (err == EBUSY) {
        fail(ErrorKind::kInvalidArgument, mountpoint,
             "mount point is busy (a process has a file open or its cwd there)");
      }
      throw_errno(mountpoint, std::nullopt, "umount2", err);
    }
    return;
  }
  const char* argv[] = {"fusermount3", "-u", "--", abs.c_str(), nullptr};
  pid_t pid;
  int rc = ::posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char* const*>(argv),
                          environ);
  if (rc != 0) throw_errno(mountpoint, std::nullopt, "cannot run fusermount3", rc);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail(ErrorKind::kIo, mountpoint, "fusermount3 -u failed (see its message above)");
  }
}

// "/dev/loop0 is attached to /mnt/x/p2" for every loop device whose backing
// file lies under `abs` (/sys/block/loopN/loop/backing_file, present while
// the device is attached). A loop device holds its file open from the
// kernel, so umount answers EBUSY while fuser finds no process: the user
// needs its name, not "a process has a file open".
std::vector<std::string> loop_devices_under(const std::string& abs) {
  std::vector<std::string> found;
  DIR* d = ::opendir("/sys/block");
  if (!d) return found;
  const std::string prefix = abs == "/" ? abs : abs + "/";
  while (struct dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "loop", 4) != 0) continue;
    const std::string attr = std::string("/sys/block/") + e->d_name + "/loop/backing_file";
    FILE* f = std::fopen(attr.c_str(), "r");
    if (!f) continue;
    char buf[PATH_MAX + 16] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string backing(buf, n);
    while (!backing.empty() && backing.back() == '\n') backing.pop_back();
    if (backing.compare(0, prefix.size(), prefix) == 0)
      found.push_back(std::string("/dev/") + e->d_name + " is attached to " + backing);
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

void unmount(const std::string& mountpoint) {
  char buf[PATH_MAX];
  std::string abs = mountpoint;
  // realpath fails on a stale FUSE mount (ENOTCONN); the name then stays as given.
  if (::realpath(mountpoint.c_str(), buf)) {
    abs = buf;
  } else if (errno == ENOENT) {
    fail(ErrorKind::kNotFound, mountpoint, "no such mount point");
  } else if (!mountpoint.empty() && mountpoint[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd)) abs = std::string(cwd) + "/" + mountpoint;
  }
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  auto entry = find_mount(abs);
  if (!entry) fail(ErrorKind::kInvalidArgument, mountpoint, "not a mount point");
  if (entry->fstype != "fuse.vdisk") {
    fail(ErrorKind::kInvalidArgument, mountpoint,
         "is mounted as " + entry->fstype + ", not by vdisk: refusing to unmount it");
  }
  const std::vector<std::string> loops = loop_devices_under(abs);
  if (!loops.empty()) {
    std::string msg = "mount point is busy: ";
    for (size_t i = 0; i < loops.size(); ++i) msg += (i ? "; " : "") + loops[i];
    fail(ErrorKind::kInvalidArgument, mountpoint,
         msg + (loops.size() == 1 ? ": losetup -d it first" : ": losetup -d them first"));
  }
  unmount_kernel(mountpoint, abs);
  // Return only once the daemon has let go of the image and exited.
  if (!wait_daemon_gone(entry->device, 10.0)) {
    fail(ErrorKind::kIo, mountpoint, "unmounted, but the vdisk daemon did not exit within 10 s");
  }
}
}  // namespace vdisk::mount
