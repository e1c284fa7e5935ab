// On-disk layout of ext2/ext3/ext4, from the kernel.org "Ext4 Disk Layout"
// documentation (Documentation/filesystems/ext4: "Super Block", "Block Group
// Descriptors", "Index Nodes", "The Contents of inode.i_block", "Directory
// Entries", "Inline Data", "Extended Attributes"). Every field is
// little-endian. Offsets are bytes from the start of the structure.
#pragma once

#include <cstdint>

namespace vdisk::ext {

// --- Super block: 1024 bytes at byte 1024 of the filesystem -----------------
inline constexpr uint64_t kSuperblockOffset = 1024;
inline constexpr uint32_t kSuperblockSize = 1024;
inline constexpr uint32_t kSbInodesCount = 0x00;      // u32
inline constexpr uint32_t kSbBlocksCountLo = 0x04;    // u32
inline constexpr uint32_t kSbFirstDataBlock = 0x14;   // u32: 1 for 1 KiB blocks, else 0
inline constexpr uint32_t kSbLogBlockSize = 0x18;     // u32: block size = 1024 << this
inline constexpr uint32_t kSbBlocksPerGroup = 0x20;   // u32
inline constexpr uint32_t kSbInodesPerGroup = 0x28;   // u32
inline constexpr uint32_t kSbMtime = 0x2C;            // u32: last mount, Unix seconds
inline constexpr uint32_t kSbWtime = 0x30;            // u32: last write
inline constexpr uint32_t kSbMagic = 0x38;            // u16: kExtMagic
inline constexpr uint32_t kSbState = 0x3A;            // u16: 1 clean, 2 errors, 4 orphans
inline constexpr uint32_t kSbCreatorOs = 0x48;        // u32
inline constexpr uint32_t kSbRevLevel = 0x4C;         // u32: 0 original, 1 dynamic
inline constexpr uint32_t kSbFirstIno = 0x54;         // u32: first non-reserved inode (rev 1)
inline constexpr uint32_t kSbInodeSize = 0x58;        // u16: bytes per inode (rev 1; 128 in rev 0)
inline constexpr uint32_t kSbFeatureCompat = 0x5C;    // u32
inline constexpr uint32_t kSbFeatureIncompat = 0x60;  // u32
inline constexpr uint32_t kSbFeatureRoCompat = 0x64;  // u32
inline constexpr uint32_t kSbUuid = 0x68;             // 16 bytes
inline constexpr uint32_t kSbVolumeName = 0x78;       // 16 bytes, NUL padded
inline constexpr uint32_t kSbLastMounted = 0x88;      // 64 bytes
inline constexpr uint32_t kSbDescSize = 0xFE;         // u16: group descriptor size (64BIT)
inline constexpr uint32_t kSbFirstMetaBg = 0x104;     // u32: first meta block group (META_BG)
inline constexpr uint32_t kSbMkfsTime = 0x108;        // u32
inline constexpr uint32_t kSbBlocksCountHi = 0x150;   // u32 (64BIT)
inline constexpr uint32_t kSbBackupBgs = 0x24C;       // 2 x u32 (COMPAT_SPARSE_SUPER2)

inline constexpr uint16_t kExtMagic = 0xEF53;
inline constexpr uint32_t kGoodOldInodeSize = 128;
inline constexpr uint32_t kGoodOldFirstIno = 11;
inline constexpr uint32_t kRootIno = 2;
inline constexpr uint32_t kJournalIno = 8;

// s_feature_compat
inline constexpr uint32_t kCompatHasJournal = 0x0004;
inline constexpr uint32_t kCompatSparseSuper2 = 0x0200;
// s_feature_ro_compat (unknown ones are harmless to a reader)
inline constexpr uint32_t kRoCompatSparseSuper = 0x0001;
inline constexpr uint32_t kRoCompatHugeFile = 0x0008;
inline constexpr uint32_t kRoCompatMetadataCsum = 0x0400;
// s_feature_incompat
inline constexpr uint32_t kIncompatCompression = 0x00001;
inline constexpr uint32_t kIncompatFiletype = 0x00002;
inline constexpr uint32_t kIncompatRecover = 0x00004;
inline constexpr uint32_t kIncompatJournalDev = 0x00008;
inline constexpr uint32_t kIncompatMetaBg = 0x00010;
inline constexpr uint32_t kIncompatExtents = 0x00040;
inline constexpr uint32_t kIncompat64Bit = 0x00080;
inline constexpr uint32_t kIncompatMmp = 0x00100;
inline constexpr uint32_t kIncompatFlexBg = 0x00200;
inline constexpr uint32_t kIncompatEaInode = 0x00400;
inline constexpr uint32_t kIncompatDirData = 0x01000;
inline constexpr uint32_t kIncompatCsumSeed = 0x02000;
inline constexpr uint32_t kIncompatLargeDir = 0x04000;
inline constexpr uint32_t kIncompatInlineData = 0x08000;
inline constexpr uint32_t kIncompatEncrypt = 0x10000;
inline constexpr uint32_t kIncompatCasefold = 0x20000;

// --- Block group descriptor: 32 bytes, or s_desc_size (>= 64) with 64BIT ----
inline constexpr uint32_t kGdInodeTableLo = 0x08;  // u32: first block of the inode table
inline constexpr uint32_t kGdFlags = 0x12;         // u16
inline constexpr uint32_t kGdInodeTableHi = 0x28;  // u32 (64-bit descriptors)
inline constexpr uint32_t kGdSize32 = 32;
inline constexpr uint32_t kGdSize64Min = 64;

// --- Inode: s_inode_size bytes (128 in rev 0) --------------------------------
inline constexpr uint32_t kInMode = 0x00;        // u16: type (high 4 bits) and permissions
inline constexpr uint32_t kInUid = 0x02;         // u16: low 16 bits of the owner
inline constexpr uint32_t kInSizeLo = 0x04;      // u32
inline constexpr uint32_t kInAtime = 0x08;       // s32 seconds
inline constexpr uint32_t kInCtime = 0x0C;       // s32 (inode change time)
inline constexpr uint32_t kInMtime = 0x10;       // s32
inline constexpr uint32_t kInGid = 0x18;         // u16: low 16 bits of the group
inline constexpr uint32_t kInLinksCount = 0x1A;  // u16
inline constexpr uint32_t kInBlocksLo = 0x1C;  // u32: 512-byte units (or blocks with HUGE_FILE_FL)
inline constexpr uint32_t kInFlags = 0x20;     // u32: kFl*
inline constexpr uint32_t kInBlock =
    0x28;  // 60 bytes: block map, extent tree, inline data or symlink
inline constexpr uint32_t kInBlockSize = 60;
inline constexpr uint32_t kInSizeHigh = 0x6C;    // u32
inline constexpr uint32_t kInUidHigh = 0x78;     // u16 (Linux osd2)
inline constexpr uint32_t kInGidHigh = 0x7A;     // u16 (Linux osd2)
inline constexpr uint32_t kInExtraIsize = 0x80;  // u16: bytes used beyond 128
inline constexpr uint32_t kInCtimeExtra = 0x84;  // u32: bits 0-1 epoch, 2-31 nanoseconds
inline constexpr uint32_t kInMtimeExtra = 0x88;  // u32
inline constexpr uint32_t kInAtimeExtra = 0x8C;  // u32

// i_mode type bits
inline constexpr uint16_t kSIfMt = 0xF000;
inline constexpr uint16_t kSIfSock = 0xC000, kSIfLnk = 0xA000, kSIfReg = 0x8000, kSIfBlk = 0x6000,
                          kSIfDir = 0x4000, kSIfChr = 0x2000, kSIfIfo = 0x1000;

// i_flags
inline constexpr uint32_t kFlIndex = 0x00001000;       // htree directory
inline constexpr uint32_t kFlExtents = 0x00080000;     // i_block holds an extent tree
inline constexpr uint32_t kFlInlineData = 0x10000000;  // data in i_block and system.data

// Block map (i_block as 15 u32): 12 direct, then single, double, triple indirect.
inline constexpr uint32_t kDirectBlocks = 12;
inline constexpr uint32_t kIndBlock = 12, kDindBlock = 13, kTindBlock = 14;

// --- Extent tree ("The Contents of inode.i_block", Extent Tree) --------------
// Header (12 bytes), then 12-byte entries: indexes inside, leaves at depth 0.
inline constexpr uint32_t kEhMagic = 0x00;    // u16: kExtentMagic
inline constexpr uint32_t kEhEntries = 0x02;  // u16
inline constexpr uint32_t kEhMax = 0x04;      // u16
inline constexpr uint32_t kEhDepth = 0x06;    // u16: 0 = entries are leaves
inline constexpr uint32_t kExtentHeaderSize = 12;
inline constexpr uint32_t kExtentEntrySize = 12;
inline constexpr uint16_t kExtentMagic = 0xF30A;
inline constexpr uint32_t kMaxExtentDepth = 5;  // the documented maximum
inline constexpr uint32_t kEiBlock = 0x00;      // u32: first logical block covered
inline constexpr uint32_t kEiLeafLo = 0x04;     // u32: child node block
inline constexpr uint32_t kEiLeafHi = 0x08;     // u16
inline constexpr uint32_t kEeBlock = 0x00;      // u32: first logical block
inline constexpr uint32_t kEeLen = 0x04;        // u16: > 32768 means uninitialised (len - 32768)
inline constexpr uint32_t kEeStartHi = 0x06;    // u16
inline constexpr uint32_t kEeStartLo = 0x08;    // u32
inline constexpr uint32_t kEeMaxInitLen = 32768;

// --- Directory entries ("Linear (Classic) Directories") ----------------------
inline constexpr uint32_t kDeInode = 0x00;     // u32: 0 = unused
inline constexpr uint32_t kDeRecLen = 0x04;    // u16: length of this record
inline constexpr uint32_t kDeNameLen = 0x06;   // u8 (u16 without FILETYPE)
inline constexpr uint32_t kDeFileType = 0x07;  // u8 (FILETYPE): kFt*
inline constexpr uint32_t kDeName = 0x08;
inline constexpr uint32_t kDeMinSize = 12;
// Hash tree directories ("Hash Tree Directories"): block 0 starts with "."
// and a ".." whose rec_len spans the rest of the block (dx_root hidden
// behind it), and interior dx_node blocks start with a fake entry of inode 0
// and rec_len = block size. Leaves are plain entry blocks, so a linear read
// of every block finds every name exactly once.

// --- Extended attributes in the inode body ("Extended Attributes") -----------
// At 128 + i_extra_isize: u32 magic, then entries; value offsets count from
// the first entry.
inline constexpr uint32_t kXattrMagic = 0xEA020000;
inline constexpr uint32_t kXeNameLen = 0x00;    // u8
inline constexpr uint32_t kXeNameIndex = 0x01;  // u8: 7 = "system."
inline constexpr uint32_t kXeValueOffs = 0x02;  // u16
inline constexpr uint32_t kXeValueInum = 0x04;  // u32: value in an inode (EA_INODE)
inline constexpr uint32_t kXeValueSize = 0x08;  // u32
inline constexpr uint32_t kXeName = 0x10;
inline constexpr uint8_t kXattrIndexSystem = 7;
// Inline directories: i_block starts with the parent's inode number (u32).
inline constexpr uint32_t kInlineDirParentSize = 4;

}  // namespace vdisk::ext
