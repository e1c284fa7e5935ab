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
  // At most 32 bytes (kUnsupported past it); printable ASCII is recorded as
  // given (as xorriso and genisoimage do), other bytes as '_' with a warning.
  // The Joliet copy holds 16 UTF-16 units (cut with a warning).
  std::string volume_id = "CDROM";
  bool joliet = true;
  bool rock_ridge = true;
  // ---- El Torito (El Torito 1.0) ----
  // Path inside the tree ("isolinux/isolinux.bin") of the BIOS (platform 0)
  // boot image; empty for none. Emulation: none, except that an image of
  // exactly 1.2, 1.44 or 2.88 MB is a floppy unless `boot_no_emulation`.
  std::string boot_image;
  bool boot_no_emulation = false;
  // 512-byte sectors the BIOS loads (no emulation); default: the whole image
  // (at most 65535).
  std::optional<uint16_t> boot_load_size;
  // Patch bytes 8-63 of the boot image in the output (isolinux, GRUB): LBA of
  // the primary volume descriptor, LBA and length of the image, 32-bit sum of
  // its 32-bit little-endian words from byte 64, 40 zero bytes.
  bool boot_info_table = false;
  // Path inside the tree of an EFI System Partition image: a second catalog
  // section, platform 0xEF, no emulation (the default entry when there is no
  // BIOS image).
  std::string efi_image;
  // ---- Hybrid (USB stick) system area ----
  // An MBR (partition 1: the whole image from sector 0, bootable; partition 2
  // type 0xEF: the EFI image) and a valid GPT (the ISO ranges as Basic Data,
  // the EFI image as EFI System Partition; backup at the end), the image
  // padded to whole 1 MiB cylinders (64 heads, 32 sectors), as isohybrid does.
  bool hybrid = false;
  // MBR boot code (bytes 0-431; e.g. Syslinux's isohdpfx.bin), patched as
  // isohybrid MBRs expect: the boot image's 512-byte LBA at byte 432. Empty:
  // no code (the BIOS cannot boot the stick; EFI can).
  std::string hybrid_mbr;
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
// tree, a boot-info-table on an image under 64 bytes or hybrid options
// without their images, kUnsupported past ISO 9660 limits (a volume label
// over 32 bytes, 65535 directories in a path table, images over 8 TiB),
// kIo/kMismatch when a source file changed size.
MkisoResult write_iso(const MkisoNode& root, const MkisoOptions& opts, const std::string& out_path);

}  // namespace vdisk::iso9660
