// Reading an ISO 9660 volume: its volume descriptors (primary, Joliet
// supplementary, El Torito boot record and catalog) and its file tree, as a
// vdisk::FileTree. Names come from Rock Ridge, else Joliet, else the ISO 9660
// identifier as Linux shows it (lower case, ";1" and a trailing '.' removed;
// TreeOptions::raw_names: as recorded), looked up in any case, with or
// without ";1".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"
#include "formats/core/json.h"

namespace vdisk::iso9660 {

struct BootEntry {
  uint8_t platform = 0;  // 0 x86, 1 PowerPC, 2 Mac, 0xEF EFI
  bool bootable = false;
  uint8_t media = 0;  // 0 no emulation, 1..3 floppy, 4 hard disk
  uint16_t load_segment = 0;
  uint8_t system_type = 0;
  uint16_t sector_count = 0;  // 512-byte virtual sectors
  uint32_t load_rba = 0;      // 2048-byte block of the boot image
};

struct VolumeDescriptors {
  uint64_t volume_blocks = 0;    // volume space size
  std::vector<uint8_t> primary;  // the 2048-byte PVD
  std::vector<uint8_t> joliet;   // the Joliet SVD (empty when none)
  int joliet_level = 0;
  std::optional<uint32_t> boot_catalog;  // LBA
};

// Reads the descriptor set from LBA 16 to the terminator. Throws
// kNotThisFormat when there is no "CD001" at 0x8001, kCorrupt when the set has
// no primary descriptor or no terminator, or the catalog is damaged.
VolumeDescriptors read_volume_descriptors(const BlockDevice& dev, const std::string& label);

// `info` details: volume/system/publisher/preparer/application ids, dates,
// block size and count, extensions (Joliet level, Rock Ridge), boot entries.
Json volume_details(const BlockDevice& dev, const std::string& label, const VolumeDescriptors& vds);

// Whether the device's first descriptor is ISO 9660 ("CD001" at 0x8001).
bool looks_like_iso(const BlockDevice& dev);

// Opens the file tree. Thread-safe; node ids are byte offsets of directory
// records (files) or of directory extents (directories). Every directory is
// named by one record (a second one is left out and reported by skipped()),
// a record naming an ancestor is a "directory loop" (kCorrupt), a listing is
// bounded in memory and continuation bytes (kCorrupt past them), and the
// cache of listings is bounded in bytes.
std::unique_ptr<FileTree> open_iso_tree(BlockDevicePtr dev, const std::string& label,
                                        const TreeOptions& opts = {});

}  // namespace vdisk::iso9660
