// /proc/self/mountinfo lookups shared by the mount point checks, unmount and
// the read-ahead tuning.
#pragma once

#include <optional>
#include <string>

namespace vdisk::mount {

struct MountInfoEntry {
  std::string device;      // "major:minor"
  std::string mountpoint;  // unescaped
  std::string fstype;      // "fuse.vdisk", "ext4", …
  std::string super_options;
};

// The last (topmost) mount at `path` (an absolute, canonical path), if any.
std::optional<MountInfoEntry> find_mount(const std::string& path);

// A daemon marks itself alive by holding an abstract unix socket named after
// its mount's device ("vdisk-mount:0:45"), so `vdisk unmount` can wait for
// the daemon to exit, not just for the kernel mount to go. Returns the fd to
// keep open (close it when done), or -1 when it cannot be made.
int hold_daemon_marker(const std::string& device);
// Waits up to `seconds` until no process holds the marker of `device`.
// Returns false on timeout.
bool wait_daemon_gone(const std::string& device, double seconds);

}  // namespace vdisk::mount
