// On-disk layout of FAT12/16/32, from Microsoft's "FAT32 File System
// Specification" (fatgen103, 2000). Every field is little-endian. Offsets are
// bytes from the start of the structure; section names are the spec's.
#pragma once

#include <cstdint>

namespace vdisk::fat {

// --- Boot sector and BPB (section 3.1 "Boot Sector and BPB") ---------------
inline constexpr uint32_t kBsJmpBoot = 0;       // 3 bytes: EB xx 90 or E9 xx xx
inline constexpr uint32_t kBpbBytsPerSec = 11;  // u16: 512, 1024, 2048 or 4096
inline constexpr uint32_t kBpbSecPerClus = 13;  // u8: power of two, 1..128
inline constexpr uint32_t kBpbRsvdSecCnt = 14;  // u16: sectors before the first FAT, > 0
inline constexpr uint32_t kBpbNumFats = 16;     // u8: usually 2
inline constexpr uint32_t kBpbRootEntCnt = 17;  // u16: 32-byte root entries (0 on FAT32)
inline constexpr uint32_t kBpbTotSec16 = 19;    // u16: total sectors (0: see TotSec32)
inline constexpr uint32_t kBpbMedia = 21;       // u8: 0xF0 or 0xF8..0xFF
inline constexpr uint32_t kBpbFatSz16 = 22;     // u16: sectors per FAT (0 on FAT32)
inline constexpr uint32_t kBpbTotSec32 = 32;    // u32: total sectors when TotSec16 is 0
// Section 3.2, FAT12/FAT16 from offset 36.
inline constexpr uint32_t kBs16BootSig = 38;     // u8: 0x29 when the next 3 fields exist
inline constexpr uint32_t kBs16VolId = 39;       // u32
inline constexpr uint32_t kBs16VolLab = 43;      // 11 bytes, space padded
inline constexpr uint32_t kBs16FilSysType = 54;  // 8 bytes, informational only
// Section 3.3, FAT32 from offset 36.
inline constexpr uint32_t kBpbFatSz32 = 36;      // u32: sectors per FAT
inline constexpr uint32_t kBpbExtFlags = 40;     // u16: bit 7 = mirroring off; bits 0-3 active FAT
inline constexpr uint32_t kBpbFsVer = 42;        // u16: must be 0:0
inline constexpr uint32_t kBpbRootClus = 44;     // u32: first cluster of the root directory
inline constexpr uint32_t kBs32BootSig = 66;     // u8: 0x29
inline constexpr uint32_t kBs32VolId = 67;       // u32
inline constexpr uint32_t kBs32VolLab = 71;      // 11 bytes
inline constexpr uint32_t kBs32FilSysType = 82;  // 8 bytes
inline constexpr uint32_t kBsSignature = 510;    // 0x55 0xAA
inline constexpr uint32_t kExtFlagsNoMirror = 0x80;
inline constexpr uint8_t kExtendedBootSig = 0x29;

// Section 3.5 "FAT Type Determination": the type is decided by the count of
// data clusters alone, never by FilSysType.
inline constexpr uint32_t kMaxFat12Clusters = 4084;   // < 4085
inline constexpr uint32_t kMaxFat16Clusters = 65524;  // < 65525
inline constexpr uint32_t kFirstCluster = 2;          // clusters 0 and 1 are reserved

// Section 4 "FAT": entry values. FAT32 entries use only the low 28 bits.
inline constexpr uint32_t kFat32Mask = 0x0FFFFFFF;
inline constexpr uint32_t kFat12Bad = 0xFF7, kFat12Eoc = 0xFF8;
inline constexpr uint32_t kFat16Bad = 0xFFF7, kFat16Eoc = 0xFFF8;
inline constexpr uint32_t kFat32Bad = 0x0FFFFFF7, kFat32Eoc = 0x0FFFFFF8;

// --- Directory entry (section 6 "Directory Structure"), 32 bytes -----------
inline constexpr uint32_t kDirEntrySize = 32;
inline constexpr uint32_t kDirName = 0;           // 11 bytes: 8.3 name, space padded
inline constexpr uint32_t kDirAttr = 11;          // u8: kAttr*
inline constexpr uint32_t kDirNtRes = 12;         // u8: Windows NT case flags (below)
inline constexpr uint32_t kDirCrtTimeTenth = 13;  // u8: 0..199, units of 10 ms
inline constexpr uint32_t kDirCrtTime = 14;       // u16: creation time
inline constexpr uint32_t kDirCrtDate = 16;       // u16: creation date
inline constexpr uint32_t kDirLstAccDate = 18;    // u16: last access date
inline constexpr uint32_t kDirFstClusHi = 20;     // u16: high word of the first cluster (FAT32)
inline constexpr uint32_t kDirWrtTime = 22;       // u16: last write time
inline constexpr uint32_t kDirWrtDate = 24;       // u16: last write date
inline constexpr uint32_t kDirFstClusLo = 26;     // u16: low word of the first cluster
inline constexpr uint32_t kDirFileSize = 28;      // u32: bytes (0 for directories)

inline constexpr uint8_t kAttrReadOnly = 0x01;
inline constexpr uint8_t kAttrHidden = 0x02;
inline constexpr uint8_t kAttrSystem = 0x04;
inline constexpr uint8_t kAttrVolumeId = 0x08;
inline constexpr uint8_t kAttrDirectory = 0x10;
inline constexpr uint8_t kAttrArchive = 0x20;
inline constexpr uint8_t kAttrLongName = 0x0F;  // RO|HIDDEN|SYSTEM|VOLUME_ID
inline constexpr uint8_t kAttrLongNameMask = 0x3F;

// Name[0] markers.
inline constexpr uint8_t kNameFree = 0xE5;     // deleted entry
inline constexpr uint8_t kNameEnd = 0x00;      // this and every later entry are free
inline constexpr uint8_t kNameKanjiE5 = 0x05;  // the real first byte is 0xE5

// NTRes case flags (Windows NT and later; not in fatgen103, documented by
// Microsoft's FAT implementation notes): the 8.3 base name / extension are
// displayed in lower case.
inline constexpr uint8_t kNtLowerBase = 0x08;
inline constexpr uint8_t kNtLowerExt = 0x10;

// Date: bits 0-4 day (1-31), 5-8 month (1-12), 9-15 years since 1980.
// Time: bits 0-4 seconds/2, 5-10 minutes, 11-15 hours. Local time of the
// writer; the zone is not recorded.

// --- Long name entry (section 7 "FAT Long Directory Entries"), 32 bytes ----
inline constexpr uint32_t kLdirOrd = 0;    // u8: sequence 1..20, | 0x40 on the last (first stored)
inline constexpr uint32_t kLdirName1 = 1;  // 5 UTF-16LE units
inline constexpr uint32_t kLdirAttr = 11;  // u8: kAttrLongName
inline constexpr uint32_t kLdirType = 12;  // u8: 0
inline constexpr uint32_t kLdirChksum = 13;     // u8: checksum of the 8.3 name that follows
inline constexpr uint32_t kLdirName2 = 14;      // 6 UTF-16LE units
inline constexpr uint32_t kLdirFstClusLo = 26;  // u16: 0
inline constexpr uint32_t kLdirName3 = 28;      // 2 UTF-16LE units
inline constexpr uint8_t kLastLongEntry = 0x40;
inline constexpr uint32_t kLongNameUnitsPerEntry = 13;
inline constexpr uint32_t kMaxLongNameEntries = 20;  // 255 characters

// Section 6: a directory holds at most 65536 entries (2 MiB).
inline constexpr uint64_t kMaxDirectoryBytes = 65536ull * kDirEntrySize;

}  // namespace vdisk::fat
