// NTFS read as a file tree (see README.md for what is supported).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::ntfs {

// The geometry from a validated boot sector (libyal "The volume header").
struct Geometry {
  uint32_t bytes_per_sector = 512;
  uint32_t cluster_size = 4096;
  uint64_t total_sectors = 0;
  uint64_t total_clusters = 0;
  uint64_t mft_lcn = 0;
  uint64_t mftmirr_lcn = 0;
  uint32_t record_size = 1024;       // MFT entry
  uint32_t index_block_size = 4096;  // default INDX buffer (each index root says its own)
  uint64_t serial = 0;
  uint64_t boot_offset = 0;  // where the boot sector used was read (backup: near the end)
};

// Validates the 512-byte boot sector `bs` of a device of `dev_size` bytes.
// Throws Error(kNotThisFormat) without the NTFS signature, Error(kUnsupported)
// for a BitLocker volume (named, not decrypted), Error(kCorrupt) naming the
// field otherwise. Offsets in messages are relative to `at`.
Geometry parse_boot_sector(const uint8_t* bs, uint64_t dev_size, const std::string& label,
                           uint64_t at = 0);

// Cheap probe: 100 for an NTFS boot sector, 90 for BitLocker (so that open
// names it), 60 when only the backup boot sector at the end is intact.
int probe(const BlockDevice& dev);

// Opens the tree. A damaged primary boot sector falls back to the backup
// with a warning; a volume marked dirty is read as it is (the $LogFile is
// not replayed) with a warning. Node ids are MFT entry numbers, with a named
// stream's index in bits 48-55. Const and thread-safe (caches are guarded by
// a mutex and bounded).
std::unique_ptr<FileTree> open_ntfs_tree(BlockDevicePtr dev, const std::string& label);

}  // namespace vdisk::ntfs
