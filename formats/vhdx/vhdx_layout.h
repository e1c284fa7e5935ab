// On-disk layout of VHDX, from Microsoft's [MS-VHDX] open specification
// ("Virtual Hard Disk v2 (VHDX) File Format"). Every integer is little-endian;
// every GUID is stored in Microsoft's mixed-endian order (Data1 LE32, Data2
// LE16, Data3 LE16, Data4 as 8 bytes). Offsets below are byte offsets inside
// the structure named in the section heading.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "formats/core/guid.h"

namespace vdisk::vhdx {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * 1024;

// ---- 2.1 File layout: the header section is the first 1 MiB ----------------
inline constexpr uint64_t kFileIdOffset = 0;           // 64 KiB structure
inline constexpr uint64_t kHeader1Offset = 64 * kKiB;  // 4 KiB used of 64 KiB
inline constexpr uint64_t kHeader2Offset = 128 * kKiB;
inline constexpr uint64_t kRegionTable1Offset = 192 * kKiB;  // 64 KiB each
inline constexpr uint64_t kRegionTable2Offset = 256 * kKiB;
inline constexpr uint64_t kHeaderSectionSize = 1 * kMiB;
// Regions, the log and payload blocks all sit on 1 MiB boundaries (2.2.3.1,
// 2.5.1: FileOffsetMB is in units of 1 MiB).
inline constexpr uint64_t kRegionAlignment = 1 * kMiB;

// ---- 2.2.1 File Type Identifier (64 KiB) ------------------------------------
//   0   8  Signature "vhdxfile"
//   8 512  Creator: UTF-16LE, NUL-padded (informational)
inline constexpr char kFileSignature[] = "vhdxfile";
inline constexpr size_t kCreatorOffset = 8;
inline constexpr size_t kCreatorSize = 512;

// ---- 2.2.2 Header (4 KiB; the CRC covers all 4 KiB) -------------------------
//   0  4  Signature "head"
//   4  4  Checksum: CRC-32C of the 4 KiB with this field zero
//   8  8  SequenceNumber: the valid header with the larger one is current
//  16 16  FileWriteGuid
//  32 16  DataWriteGuid (a differencing child's parent_linkage names it)
//  48 16  LogGuid: all zero = the log is empty
//  64  2  LogVersion: 0
//  66  2  Version: 1
//  68  4  LogLength: bytes, multiple of 1 MiB
//  72  8  LogOffset: bytes, multiple of 1 MiB, >= 1 MiB
inline constexpr size_t kHeaderSize = 4 * kKiB;
inline constexpr char kHeaderSignature[] = "head";
inline constexpr size_t kHdrChecksum = 4;
inline constexpr size_t kHdrSequence = 8;
inline constexpr size_t kHdrFileWriteGuid = 16;
inline constexpr size_t kHdrDataWriteGuid = 32;
inline constexpr size_t kHdrLogGuid = 48;
inline constexpr size_t kHdrLogVersion = 64;
inline constexpr size_t kHdrVersion = 66;
inline constexpr size_t kHdrLogLength = 68;
inline constexpr size_t kHdrLogOffset = 72;

struct Header {
  uint64_t sequence = 0;
  Guid file_write_guid{}, data_write_guid{}, log_guid{};
  uint16_t log_version = 0, version = 0;
  uint32_t log_length = 0;
  uint64_t log_offset = 0;
};
// The fields of the kHeaderSize bytes at `p`; the signature and checksum are
// the caller's to check.
Header decode_header(const uint8_t* p);
// Writes the signature and fields into the kHeaderSize zeroed bytes at `p`;
// the checksum is left to store_checksum (vhdx_crc32c.h).
void encode_header(const Header& h, uint8_t* p);

// ---- 2.2.3 Region table (64 KiB; the CRC covers all 64 KiB) ----------------
//   0  4  Signature "regi"
//   4  4  Checksum (CRC-32C, field zero)
//   8  4  EntryCount <= 2047
//  12  4  Reserved
//  16 ..  entries, 32 bytes each:
//           0 16 Guid   16 8 FileOffset (bytes, 1 MiB multiple)
//          24  4 Length (bytes, 1 MiB multiple)   28 4 bit 0: Required
inline constexpr size_t kRegionTableSize = 64 * kKiB;
inline constexpr char kRegionSignature[] = "regi";
inline constexpr size_t kRegionHeaderSize = 16;
inline constexpr size_t kRegionEntrySize = 32;
inline constexpr uint32_t kMaxRegionEntries = 2047;

struct RegionEntry {
  Guid guid{};
  uint64_t file_offset = 0;
  uint32_t length = 0;
  bool required = false;
};
// One kRegionEntrySize entry at `p`.
RegionEntry decode_region_entry(const uint8_t* p);
void encode_region_entry(const RegionEntry& e, uint8_t* p);

// ---- 2.2.4 Log entry (EntryLength bytes, a multiple of 4 KiB) ---------------
// Header (64 bytes):
//   0 4 "loge"   4 4 Checksum (CRC-32C over EntryLength bytes, field zero)
//   8 4 EntryLength   12 4 Tail (offset in the log of the sequence's first entry)
//  16 8 SequenceNumber   24 4 DescriptorCount   28 4 Reserved
//  32 16 LogGuid   48 8 FlushedFileOffset   56 8 LastFileOffset
// Descriptors follow (32 bytes each), in as many 4 KiB sectors as they need:
//   zero: 0 4 "zero" 4 4 Reserved 8 8 ZeroLength 16 8 FileOffset 24 8 SequenceNumber
//   data: 0 4 "desc" 4 4 TrailingBytes 8 8 LeadingBytes 16 8 FileOffset
//         24 8 SequenceNumber
// Then one 4 KiB data sector per data descriptor, in descriptor order:
//   0 4 "data"  4 4 SequenceHigh  8 4084 Data  4092 4 SequenceLow
// The 4 KiB written at FileOffset is LeadingBytes (8) + Data (4084) +
// TrailingBytes (4).
inline constexpr size_t kLogSector = 4 * kKiB;
inline constexpr size_t kLogEntryHeaderSize = 64;
inline constexpr size_t kLogDescriptorSize = 32;
inline constexpr char kLogEntrySignature[] = "loge";
inline constexpr char kZeroDescSignature[] = "zero";
inline constexpr char kDataDescSignature[] = "desc";
inline constexpr char kDataSectorSignature[] = "data";
inline constexpr size_t kLogeChecksum = 4;
inline constexpr size_t kLogeEntryLength = 8;
inline constexpr size_t kLogeTail = 12;
inline constexpr size_t kLogeSequence = 16;
inline constexpr size_t kLogeDescriptorCount = 24;
inline constexpr size_t kLogeLogGuid = 32;
inline constexpr size_t kLogeFlushedFileOffset = 48;
inline constexpr size_t kLogeLastFileOffset = 56;

// ---- 2.5 BAT: 64-bit entries -------------------------------------------------
//   bits 0-2 State, 3-19 reserved, 20-63 FileOffsetMB
inline constexpr uint64_t kBatStateMask = 7;
inline constexpr int kBatOffsetShift = 20;
// 2.5.1.1 payload block states (4 and 5 are reserved).
enum class PayloadState : uint8_t {
  kNotPresent = 0,  // PAYLOAD_BLOCK_NOT_PRESENT: the parent's (differencing) or zeros
  kUndefined = 1,
  kZero = 2,
  kUnmapped = 3,
  kFullyPresent = 6,
  kPartiallyPresent = 7,  // differencing only: the sector bitmap says which sectors
};
// 2.5.1.2 sector bitmap block states.
enum class SectorBitmapState : uint8_t {
  kNotPresent = 0,
  kPresent = 6,
};
// The fields of a BAT entry, and an entry made of them (`file_offset` a
// multiple of 1 MiB).
inline PayloadState payload_state(uint64_t entry) {
  return static_cast<PayloadState>(entry & kBatStateMask);
}
inline SectorBitmapState bitmap_state(uint64_t entry) {
  return static_cast<SectorBitmapState>(entry & kBatStateMask);
}
inline uint64_t bat_file_offset(uint64_t entry) {
  return (entry >> kBatOffsetShift) * kMiB;
}
inline uint64_t bat_entry(PayloadState state, uint64_t file_offset) {
  return static_cast<uint8_t>(state) | ((file_offset / kMiB) << kBatOffsetShift);
}
// 2.5: a sector bitmap block is 1 MiB and covers 2^23 logical sectors (bit 0
// of byte 0 = first sector; 1 = this file, 0 = the parent).
inline constexpr uint64_t kSectorBitmapBlockSize = 1 * kMiB;
inline constexpr uint64_t kSectorsPerBitmapBlock = uint64_t{1} << 23;

// ---- 2.6.1 Metadata table (at the start of the metadata region, 64 KiB) ----
//   0 8 "metadata"  8 2 Reserved  10 2 EntryCount <= 2047  12 20 Reserved
//  32 ..  entries, 32 bytes each:
//     0 16 ItemId  16 4 Offset (from the region start, >= 64 KiB)  20 4 Length
//    24  4 bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired   28 4 Reserved
inline constexpr size_t kMetadataTableSize = 64 * kKiB;
inline constexpr char kMetadataSignature[] = "metadata";
inline constexpr size_t kMetadataHeaderSize = 32;
inline constexpr size_t kMetadataEntrySize = 32;
inline constexpr uint32_t kMaxMetadataEntries = 2047;
inline constexpr uint32_t kMetaIsUser = 1;
inline constexpr uint32_t kMetaIsVirtualDisk = 2;
inline constexpr uint32_t kMetaIsRequired = 4;

struct MetadataEntry {
  Guid item_id{};
  uint32_t offset = 0;  // from the start of the metadata region
  uint32_t length = 0;
  uint32_t flags = 0;  // kMetaIs*
};
// One kMetadataEntrySize entry at `p`.
MetadataEntry decode_metadata_entry(const uint8_t* p);
void encode_metadata_entry(const MetadataEntry& e, uint8_t* p);

// 2.6.2.1 File Parameters (8 bytes): 0 4 BlockSize; 4 4 bit 0
// LeaveBlocksAllocated (fixed disks), bit 1 HasParent.
inline constexpr uint32_t kLeaveBlocksAllocated = 1;
inline constexpr uint32_t kHasParent = 2;
inline constexpr uint64_t kMinBlockSize = 1 * kMiB;
inline constexpr uint64_t kMaxBlockSize = 256 * kMiB;
// 2.6.2.2 Virtual Disk Size (8 bytes): at most 64 TiB.
inline constexpr uint64_t kMaxVirtualSize = uint64_t{64} << 40;
// 2.6.2.3 Virtual Disk ID / page 83 data (16 bytes, a GUID).
// 2.6.2.4 Logical Sector Size, 2.6.2.5 Physical Sector Size (4 bytes each):
// 512 or 4096.
// 2.6.2.6 Parent Locator: header 0 16 LocatorType, 16 2 Reserved, 18 2
// KeyValueCount; then entries of 12 bytes: 0 4 KeyOffset, 4 4 ValueOffset,
// 8 2 KeyLength, 10 2 ValueLength (offsets from the item start, lengths in
// bytes, strings UTF-16LE without terminator).
inline constexpr size_t kLocatorHeaderSize = 20;
inline constexpr size_t kLocatorEntrySize = 12;

struct LocatorEntry {
  uint32_t key_offset = 0, value_offset = 0;  // from the start of the item
  uint16_t key_length = 0, value_length = 0;  // bytes
};
// One kLocatorEntrySize entry at `p`.
LocatorEntry decode_locator_entry(const uint8_t* p);

// GUIDs are stored as the Windows GUID structure (first three fields
// little-endian): GuidByteOrder::kMixedEndian.
inline Guid load_guid(const void* p) {
  return Guid::decode(p, GuidByteOrder::kMixedEndian);
}
inline void store_guid(void* p, const Guid& g) {
  g.encode(p, GuidByteOrder::kMixedEndian);
}
// "{xxxxxxxx-…}" in lower case, as parent_linkage stores it.
inline std::string guid_to_string(const Guid& g) {
  return g.to_string({.braces = true});
}

// 2.2.3.1 known regions, 2.6.2 known metadata items, 2.6.2.6.3 locator type.
inline constexpr Guid kBatRegionGuid = Guid::parse("2DC27766-F623-4200-9D64-115E9BFD4A08").value();
inline constexpr Guid kMetadataRegionGuid =
    Guid::parse("8B7CA206-4790-4B9A-B8FE-575F050F886E").value();
inline constexpr Guid kFileParametersGuid =
    Guid::parse("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").value();
inline constexpr Guid kVirtualDiskSizeGuid =
    Guid::parse("2FA54224-CD1B-4876-B211-5DBED83BF4B8").value();
inline constexpr Guid kVirtualDiskIdGuid =
    Guid::parse("BECA12AB-B2E6-4523-93EF-C309E000C746").value();
inline constexpr Guid kLogicalSectorSizeGuid =
    Guid::parse("8141BF1D-A96F-4709-BA47-F233A8FAAB5F").value();
inline constexpr Guid kPhysicalSectorSizeGuid =
    Guid::parse("CDA348C7-445D-4471-9CC9-E9885251C556").value();
inline constexpr Guid kParentLocatorGuid =
    Guid::parse("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").value();
inline constexpr Guid kVhdxLocatorTypeGuid =
    Guid::parse("B04AEFB7-D19E-4A81-B789-25B8E9445913").value();

// Geometry derived from the metadata (2.6.2.1, 2.5).
struct Geometry {
  uint64_t virtual_size = 0;
  uint64_t block_size = 0;
  uint32_t logical_sector_size = 512;
  uint64_t chunk_ratio = 0;    // (2^23 * logical sector size) / block size
  uint64_t data_blocks = 0;    // ceil(virtual size / block size)
  uint64_t bitmap_blocks = 0;  // ceil(data blocks / chunk ratio)
  uint64_t total_bat_entries = 0;
  // Index in the BAT of payload block `b` and of chunk `c`'s sector bitmap.
  uint64_t payload_entry(uint64_t b) const { return b + b / chunk_ratio; }
  uint64_t bitmap_entry(uint64_t c) const { return c * (chunk_ratio + 1) + chunk_ratio; }
};
// Requires block_size a power of two in [1 MiB, 256 MiB] and a logical sector
// size of 512 or 4096 (the caller validates them).
Geometry make_geometry(uint64_t virtual_size, uint64_t block_size, uint32_t logical_sector_size,
                       bool has_parent);

// UTF-16LE <-> UTF-8 for creator strings and parent locator values.
std::string utf16le_to_utf8(const uint8_t* p, size_t bytes);
std::string utf8_to_utf16le(const std::string& s);

}  // namespace vdisk::vhdx
