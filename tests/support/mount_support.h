// Helpers for the FUSE tests: skipping when /dev/fuse is unusable, RAII
// guards that always unmount (even when a check fails), and finding the
// daemon a mount left behind.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace vdisk::test {

// Prints "SKIPPED: <reason>" and returns from the test when FUSE mounts
// cannot be tried (CTest's SKIP_REGULAR_EXPRESSION marks the test skipped).
#define VDISK_REQUIRE_FUSE_OR_SKIP()                                       \
  do {                                                                     \
    std::string vdisk_fuse_why = ::vdisk::test::fuse_unavailable_reason(); \
    if (!vdisk_fuse_why.empty()) {                                         \
      std::printf("SKIPPED: %s\n", vdisk_fuse_why.c_str());                \
      return;                                                              \
    }                                                                      \
  } while (0)

// Whether something is mounted at `path` (an absolute path), per /proc/self/mountinfo.
bool is_mounted(const std::string& path);
// The fstype mounted at `path`, "" when none.
std::string mounted_fstype(const std::string& path);

// Pids of processes whose command line has the word "mount" and `mountpoint`
// as one argument (a `vdisk mount … MOUNTPOINT` daemon).
std::vector<pid_t> mount_daemons(const std::string& mountpoint);
// Waits up to `seconds` for all of `pids` to exit; returns those still alive.
std::vector<pid_t> wait_exited(const std::vector<pid_t>& pids, double seconds);
// Waits up to `seconds` until `path` is (or is no longer) a mount point.
bool wait_mounted(const std::string& path, bool mounted, double seconds);

// Unmounts at destruction whatever is still mounted at the path (with
// `vdisk unmount`, then a lazy umount as a last resort), and waits for the
// daemon to exit.
class MountGuard {
 public:
  explicit MountGuard(std::string mountpoint) : mountpoint_(std::move(mountpoint)) {}
  ~MountGuard();
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;
  const std::string& path() const { return mountpoint_; }

 private:
  std::string mountpoint_;
};

}  // namespace vdisk::test
