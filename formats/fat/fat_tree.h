// FAT12/16/32 read as a file tree (see README.md for what is supported).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::fat {

enum class FatType : uint8_t { kFat12, kFat16, kFat32 };
const char* fat_type_name(FatType t);

// The geometry derived from a validated boot sector (fatgen103 section 3).
struct Geometry {
  FatType type = FatType::kFat12;
  uint32_t bytes_per_sector = 512;
  uint32_t sectors_per_cluster = 1;
  uint32_t reserved_sectors = 1;
  uint32_t num_fats = 2;
  uint32_t root_entries = 0;  // FAT12/16 fixed root directory entries
  uint64_t total_sectors = 0;
  uint64_t fat_sectors = 0;       // per FAT
  uint32_t active_fat = 0;        // FAT32 with mirroring off: the one in use
  uint64_t root_dir_sector = 0;   // FAT12/16: first sector of the fixed root
  uint64_t root_dir_sectors = 0;  // FAT12/16: its length in sectors
  uint64_t first_data_sector = 0;
  uint32_t cluster_count = 0;  // data clusters: valid numbers are 2 .. cluster_count + 1
  uint32_t root_cluster = 0;   // FAT32 only
  uint32_t volume_id = 0;
  std::string volume_label;  // from the boot sector, trailing spaces removed
  uint32_t cluster_bytes() const { return bytes_per_sector * sectors_per_cluster; }
};

// Validates the boot sector `bs` (at least 512 bytes) of a device of
// `dev_size` bytes. Throws Error(kNotThisFormat) when it is no FAT boot
// sector, Error(kCorrupt) naming `label` and the field when it is an
// inconsistent one.
Geometry parse_boot_sector(const uint8_t* bs, uint64_t dev_size, const std::string& label);

// Cheap probe: a score > 0 when sector 0 holds a plausible FAT boot sector.
int probe(const BlockDevice& dev);

// Opens the tree; throws Error naming `label` on a bad boot sector.
// The tree is const and thread-safe (caches are guarded by a mutex).
std::unique_ptr<FileTree> open_fat_tree(BlockDevicePtr dev, const std::string& label);

// Section 7 checksum of an 11-byte 8.3 name, as stored in long-name entries.
uint8_t short_name_checksum(const uint8_t* name11);

// A FAT date and time (local time of the writer, read as UTC) as Unix seconds;
// 0 when the date is unset or invalid. `tenths` is the creation 10 ms count.
Timestamp decode_fat_time(uint16_t date, uint16_t time, uint8_t tenths);

}  // namespace vdisk::fat
