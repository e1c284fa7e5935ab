// Writing an ISO 9660 image (`vdisk mkiso`): ISO 9660 level 3 (level 2 names,
// multi-extent files over 4 GiB), Rock Ridge (RRIP 1.10: modes, owners,
// times, symlinks, devices, long names, deep directories relocated into
// RR_MOVED with CL/PL/RE), Joliet level 3, both path tables, and an El Torito
// no-emulation boot entry.
//
// The output is reproducible: names are sorted, no random ids or host names
// are recorded, and with `source_date_epoch` set every time stamp is clamped
// to it (volume dates equal it) and access and attribute-change times are
// recorded as the modification time, so the same tree (same names, contents,
// modes, owners and mtimes) gives the same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/file.h"
#include "formats/core/file_tree.h"
#include "formats/core/writer.h"

namespace vdisk::iso9660 {

// One entry of the tree to write. The caller (the CLI scanning a host
// directory) fills it; file contents are read through Env::open_read().
struct MkisoNode {
  std::string name;  // UTF-8, not empty, no '/'; ignored for the root
  NodeType type = NodeType::kRegular;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0, atime = 0, ctime = 0;  // Unix seconds
  uint64_t size = 0;                        // regular files
  uint64_t rdev = 0;                        // devices: major << 32 | minor
  std::string source_path;                  // regular files: where the bytes are
  std::string link_target;                  // symlinks
  std::vector<MkisoNode> children;          // directories
};

struct MkisoOptions {
  std::string volume_id = "CDROM";
  bool joliet = true;
  bool rock_ridge = true;
  // Path inside the tree ("boot/eltorito.img") of the El Torito no-emulation
  // boot image; empty for none.
  std::string boot_image;
  // Clamp for every time stamp and the volume dates (SOURCE_DATE_EPOCH).
  std::optional<int64_t> source_date_epoch;
  int64_t now = 0;  // volume dates when source_date_epoch is unset
  bool overwrite = false;
  Env* env = nullptr;
  WarningSink warn = default_warning;
};

struct MkisoResult {
  uint64_t image_bytes = 0;
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t relocated_directories = 0;
  uint64_t multi_extent_files = 0;
};

// Writes the image to `out_path` through opts.env->create_output (appears on
// success only). Holes of the source files stay holes in the output. Throws
// Error(kInvalidArgument) for a boot image that is not a regular file in the
// tree, kUnsupported past ISO 9660 limits (65535 directories in a path table,
// images over 8 TiB), kIo/kMismatch when a source file changed size.
MkisoResult write_iso(const MkisoNode& root, const MkisoOptions& opts, const std::string& out_path);

}  // namespace vdisk::iso9660
