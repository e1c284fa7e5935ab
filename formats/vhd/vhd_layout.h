// On-disk layout of VHD images, from Microsoft's "Virtual Hard Disk Image
// Format Specification" (version 1.0, October 2006). Every multi-byte field is
// big-endian unless stated otherwise. Decoding and encoding go through the
// endian.h helpers, field by field.
//
// Fixed disk:        [guest data][footer 512]
// Dynamic disk:      [footer copy 512][dynamic header 1024][BAT][blocks...][footer 512]
// Differencing disk: like dynamic, plus parent locator data somewhere in the file.
// Each block is [sector bitmap, padded to 512][block_size bytes of guest data].
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/core/guid.h"

namespace vdisk::vhd {

inline constexpr uint32_t kSectorSize = 512;

// ---- Hard disk footer (spec "Hard Disk Footer Format"), 512 bytes ----------
// Images made before Virtual PC 2004 have a 511-byte footer (the last reserved
// byte is missing); the fields are the same.
inline constexpr size_t kFooterSize = 512;
inline constexpr size_t kOldFooterSize = 511;
inline constexpr char kFooterCookie[8] = {'c', 'o', 'n', 'e', 'c', 't', 'i', 'x'};

inline constexpr size_t kFooterCookieOff = 0;    // 8  "conectix"
inline constexpr size_t kFooterFeaturesOff = 8;  // 4  bit 0 temporary, bit 1 reserved (always 1)
inline constexpr size_t kFooterVersionOff = 12;  // 4  0x00010000 (major 1, minor 0)
inline constexpr size_t kFooterDataOffsetOff =
    16;  // 8  byte offset of the dynamic header; all ones for fixed
inline constexpr size_t kFooterTimestampOff = 24;     // 4  seconds since 2000-01-01 00:00:00 UTC
inline constexpr size_t kFooterCreatorAppOff = 28;    // 4  "vpc ", "vs  ", "win ", "qemu", ...
inline constexpr size_t kFooterCreatorVerOff = 32;    // 4  major (16 bits) . minor (16 bits)
inline constexpr size_t kFooterCreatorOsOff = 36;     // 4  "Wi2k" or "Mac "
inline constexpr size_t kFooterOriginalSizeOff = 40;  // 8  bytes, size at creation
inline constexpr size_t kFooterCurrentSizeOff = 48;   // 8  bytes, the virtual size
inline constexpr size_t kFooterGeometryOff = 56;  // 4  cylinders (2), heads (1), sectors/track (1)
inline constexpr size_t kFooterDiskTypeOff = 60;  // 4  see DiskType
inline constexpr size_t kFooterChecksumOff = 64;  // 4  one's complement of the byte sum
inline constexpr size_t kFooterUniqueIdOff = 68;  // 16 UUID
inline constexpr size_t kFooterSavedStateOff = 84;  // 1  1 when the disk is in a saved state
// 85..511 reserved (zero).

inline constexpr uint32_t kFeatureTemporary = 0x1;
inline constexpr uint32_t kFeatureReserved = 0x2;
inline constexpr uint32_t kFormatVersion = 0x00010000;
inline constexpr uint64_t kFixedDataOffset = ~uint64_t{0};

enum class DiskType : uint32_t {
  kNone = 0,
  kFixed = 2,
  kDynamic = 3,
  kDifferencing = 4,
};
const char* disk_type_name(uint32_t type);

// Host OS codes (spec "Creator Host OS").
inline constexpr uint32_t kHostWindows = 0x5769326B;  // "Wi2k"
inline constexpr uint32_t kHostMac = 0x4D616320;      // "Mac "

// ---- Dynamic disk header (spec "Dynamic Disk Header Format"), 1024 bytes ---
inline constexpr size_t kHeaderSize = 1024;
inline constexpr char kHeaderCookie[8] = {'c', 'x', 's', 'p', 'a', 'r', 's', 'e'};

inline constexpr size_t kHeaderCookieOff = 0;        // 8  "cxsparse"
inline constexpr size_t kHeaderDataOffsetOff = 8;    // 8  unused, all ones
inline constexpr size_t kHeaderTableOffsetOff = 16;  // 8  byte offset of the BAT
inline constexpr size_t kHeaderVersionOff = 24;      // 4  0x00010000
inline constexpr size_t kHeaderMaxEntriesOff = 28;   // 4  BAT entries
inline constexpr size_t kHeaderBlockSizeOff = 32;  // 4  bytes of guest data per block (power of 2)
inline constexpr size_t kHeaderChecksumOff = 36;   // 4  one's complement of the byte sum
inline constexpr size_t kHeaderParentIdOff = 40;   // 16 the parent's footer unique ID
inline constexpr size_t kHeaderParentTimeOff =
    56;  // 4  the parent's modification time (2000 epoch)
inline constexpr size_t kHeaderParentNameOff = 64;  // 512 parent file name, UTF-16 big-endian
inline constexpr size_t kHeaderParentNameSize = 512;
inline constexpr size_t kHeaderLocatorsOff = 576;  // 8 entries of 24 bytes
inline constexpr size_t kLocatorCount = 8;
inline constexpr size_t kLocatorEntrySize = 24;
// 768..1023 reserved.

inline constexpr uint32_t kDefaultBlockSize = 2u << 20;

// Parent locator entry (24 bytes), offsets inside the entry.
inline constexpr size_t kLocatorCodeOff = 0;  // 4  platform code
inline constexpr size_t kLocatorDataSpaceOff =
    4;  // 4  space reserved (spec: sectors; Hyper-V writes bytes)
inline constexpr size_t kLocatorDataLengthOff = 8;   // 4  bytes of locator data
inline constexpr size_t kLocatorDataOffsetOff = 16;  // 8  absolute byte offset of the data

// Platform codes (spec "Parent Locator Entry").
inline constexpr uint32_t kPlatNone = 0;
inline constexpr uint32_t kPlatWi2r = 0x57693272;  // deprecated: relative path, host code page
inline constexpr uint32_t kPlatWi2k = 0x5769326B;  // deprecated: absolute path, host code page
inline constexpr uint32_t kPlatW2ru = 0x57327275;  // relative path, UTF-16 little-endian
inline constexpr uint32_t kPlatW2ku = 0x57326B75;  // absolute path, UTF-16 little-endian
inline constexpr uint32_t kPlatMac = 0x4D616320;   // "Mac ": Mac OS alias record (binary)
inline constexpr uint32_t kPlatMacX = 0x4D616358;  // "MacX": file URL, UTF-8 (RFC 2396)

// ---- Block allocation table (spec "Block Allocation Table and Data Blocks") -
// One big-endian 32-bit entry per block: the block's sector offset in the file
// (its bitmap comes first), or this marker.
enum BatMarker : uint32_t {
  kBatUnused = 0xFFFFFFFF,  // no block stored: zeros, or the parent's (differencing)
};

// Sector bitmap bytes of a block, padded to a whole sector. Bit 7 of byte 0 is
// the block's first sector; a set bit means the sector holds data in this file.
inline uint64_t bitmap_bytes(uint64_t block_size) {
  uint64_t bits = block_size / kSectorSize;
  uint64_t bytes = (bits + 7) / 8;
  return (bytes + kSectorSize - 1) / kSectorSize * kSectorSize;
}

// ---- Decoded structures ------------------------------------------------------

struct Footer {
  uint32_t features = kFeatureReserved;
  uint32_t version = kFormatVersion;
  uint64_t data_offset = kFixedDataOffset;
  uint32_t timestamp = 0;
  std::array<uint8_t, 4> creator_app{};
  uint32_t creator_version = 0;
  uint32_t creator_os = 0;
  uint64_t original_size = 0;
  uint64_t current_size = 0;
  uint16_t cylinders = 0;
  uint8_t heads = 0;
  uint8_t sectors_per_track = 0;
  uint32_t disk_type = 0;
  uint32_t checksum = 0;
  Guid unique_id;  // stored big-endian (GuidByteOrder::kBigEndian)
  uint8_t saved_state = 0;
};

struct ParentLocator {
  uint32_t code = kPlatNone;
  uint32_t data_space = 0;
  uint32_t data_length = 0;
  uint64_t data_offset = 0;
};

struct DynamicHeader {
  uint64_t data_offset = kFixedDataOffset;
  uint64_t table_offset = 0;
  uint32_t version = kFormatVersion;
  uint32_t max_table_entries = 0;
  uint32_t block_size = kDefaultBlockSize;
  uint32_t checksum = 0;
  Guid parent_unique_id;  // stored big-endian
  uint32_t parent_timestamp = 0;
  std::array<uint8_t, kHeaderParentNameSize> parent_name{};  // raw UTF-16BE bytes
  std::array<ParentLocator, kLocatorCount> locators{};
};

// One's complement of the sum of every byte of `bytes` except the four at
// `checksum_off` (spec "Checksum").
uint32_t vhd_checksum(const uint8_t* bytes, size_t len, size_t checksum_off);

// `bytes` holds at least kOldFooterSize bytes. Decodes without validating.
Footer decode_footer(const uint8_t* bytes);
// Encodes into 512 bytes, computing the checksum.
std::array<uint8_t, kFooterSize> encode_footer(const Footer& f);

DynamicHeader decode_header(const uint8_t* bytes);
std::array<uint8_t, kHeaderSize> encode_header(const DynamicHeader& h);

// CHS geometry for a disk of `size` bytes (spec appendix "CHS Calculation").
struct Geometry {
  uint16_t cylinders = 0;
  uint8_t heads = 0;
  uint8_t sectors_per_track = 0;
};
Geometry chs_geometry(uint64_t size);

// Seconds between 1970-01-01 and 2000-01-01 (the VHD time stamp epoch).
inline constexpr int64_t kVhdEpoch = 946684800;
// "2024-05-01T12:00:00Z" for a VHD time stamp.
std::string format_timestamp(uint32_t vhd_seconds);
// A four-character code as text, unprintable bytes as '?'.
std::string format_code(const uint8_t* four);
std::string format_code(uint32_t code);

}  // namespace vdisk::vhd
