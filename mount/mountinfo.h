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

}  // namespace vdisk::mount
