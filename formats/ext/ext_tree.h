// ext2/ext3/ext4 read as a file tree (see README.md for what is supported).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::ext {

// What open needs from the super block, validated.
struct Superblock {
  uint32_t block_size = 1024;
  uint64_t blocks_count = 0;
  uint32_t inodes_count = 0;
  uint32_t first_data_block = 0;
  uint32_t blocks_per_group = 0;
  uint32_t inodes_per_group = 0;
  uint32_t group_count = 0;
  uint32_t inode_size = 128;
  uint32_t desc_size = 32;
  uint32_t first_meta_bg = 0;
  uint32_t rev_level = 0;
  uint32_t compat = 0, incompat = 0, ro_compat = 0;
  uint32_t backup_bgs[2] = {0, 0};
  uint16_t state = 0;
  std::string volume_name;
  std::string uuid;  // 8-4-4-4-12 hex
};

// Validates the 1024-byte super block `sb` of a device of `dev_size` bytes.
// Throws Error(kNotThisFormat) without the magic, Error(kUnsupported) naming
// every incompatible feature vdisk cannot read, Error(kCorrupt) naming the
// field otherwise.
Superblock parse_superblock(const uint8_t* sb, uint64_t dev_size, const std::string& label);

// "FILETYPE|EXTENTS|0x80000000" for a set of incompat feature bits.
std::string incompat_feature_names(uint32_t bits);

// Cheap probe: kProbeSignature when the super block magic is there.
int probe(const BlockDevice& dev);

// Opens the tree. When the journal needs recovery (RECOVER) the tree is read
// as last checkpointed and a warning goes to default_warning. Node ids are
// inode numbers. Const and thread-safe (no mutable state).
std::unique_ptr<FileTree> open_ext_tree(BlockDevicePtr dev, const std::string& label);

}  // namespace vdisk::ext
