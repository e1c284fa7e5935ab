// On-disk layout of VirtualBox Disk Images (VDI), header version 1.1, as
// VirtualBox's VDICore.h describes it. Every field is little-endian. Offsets
// are from the start of the file.
//
//   [pre-header 72 B][header cbHeader B] ... [block map cBlocks x u32] ... [data]
//
// The block map is an array of u32 indexed by virtual block number; an
// allocated entry is the number of a data block, stored at
//   offData + entry * (cbBlock + cbBlockExtra) + cbBlockExtra
// (the "extra" service bytes precede each block's data).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "formats/core/guid.h"

namespace vdisk::vdi {

// --- Pre-header (VDIPREHEADER), 72 bytes at offset 0 ---
// char[64] szFileInfo: text for human eyes, NUL padded. VirtualBox writes
// kOracleText; older releases wrote "Sun xVM"/"innotek" variants and qemu
// writes "<<< QEMU VM Virtual Disk Image >>>\n", so readers must not rely on it.
inline constexpr uint32_t kOffFileInfo = 0x00;
inline constexpr uint32_t kFileInfoSize = 64;
inline constexpr const char* kOracleText = "<<< Oracle VM VirtualBox Disk Image >>>\n";
inline constexpr uint32_t kOffSignature = 0x40;  // u32 kSignature
inline constexpr uint32_t kSignature = 0xbeda107f;
inline constexpr uint32_t kOffVersion = 0x44;  // u32 major << 16 | minor
inline constexpr uint32_t kVersion1_1 = 0x00010001;
inline constexpr uint32_t kPreHeaderSize = 0x48;

// --- Header version 1.1 (VDIHEADER1 / VDIHEADER1PLUS), from 0x48 ---
inline constexpr uint32_t kOffHeaderSize = 0x48;  // u32 cbHeader: bytes of the header from 0x48
inline constexpr uint32_t kOffImageType = 0x4c;   // u32, VdiType
inline constexpr uint32_t kOffImageFlags = 0x50;  // u32 fFlags (VD image flags >> 8)
inline constexpr uint32_t kOffComment = 0x54;     // char[256] szComment, UTF-8, NUL padded
inline constexpr uint32_t kCommentSize = 256;
inline constexpr uint32_t kOffBlocksOffset = 0x154;  // u32 offBlocks: file offset of the block map
inline constexpr uint32_t kOffDataOffset = 0x158;    // u32 offData: file offset of data block 0
// Legacy geometry (VDIDISKGEOMETRY, older code stored physical CHS here):
inline constexpr uint32_t kOffLegacyCylinders = 0x15c;   // u32
inline constexpr uint32_t kOffLegacyHeads = 0x160;       // u32
inline constexpr uint32_t kOffLegacySectors = 0x164;     // u32
inline constexpr uint32_t kOffLegacySectorSize = 0x168;  // u32 bytes per sector (512)
inline constexpr uint32_t kOffDummy = 0x16c;             // u32, was BIOS translation mode, unused
inline constexpr uint32_t kOffDiskSize = 0x170;          // u64 cbDisk: virtual size in bytes
inline constexpr uint32_t kOffBlockSize = 0x178;        // u32 cbBlock: bytes per block (power of 2)
inline constexpr uint32_t kOffBlockExtra = 0x17c;       // u32 cbBlockExtra: bytes before each block
inline constexpr uint32_t kOffBlocks = 0x180;           // u32 cBlocks: entries of the block map
inline constexpr uint32_t kOffBlocksAllocated = 0x184;  // u32 cBlocksAllocated
inline constexpr uint32_t kOffUuidCreate = 0x188;       // RTUUID: this image
inline constexpr uint32_t kOffUuidModify = 0x198;       // RTUUID: changes on every modification
inline constexpr uint32_t kOffUuidLinkage = 0x1a8;      // RTUUID: parent's uuidCreate (diff images)
inline constexpr uint32_t kOffUuidParentModify = 0x1b8;  // RTUUID: parent's uuidModify at link time
// VDIHEADER1PLUS only (cbHeader >= kHeaderSize1Plus): LCHS geometry.
inline constexpr uint32_t kOffLchsCylinders = 0x1c8;   // u32
inline constexpr uint32_t kOffLchsHeads = 0x1cc;       // u32
inline constexpr uint32_t kOffLchsSectors = 0x1d0;     // u32
inline constexpr uint32_t kOffLchsSectorSize = 0x1d4;  // u32

inline constexpr uint32_t kHeaderSize1 = 0x180;  // sizeof(VDIHEADER1): what qemu writes
inline constexpr uint32_t kHeaderSize1Plus =
    0x190;  // sizeof(VDIHEADER1PLUS): what VirtualBox writes
// Bytes a reader needs: the pre-header plus the largest header it decodes.
inline constexpr uint32_t kHeaderReadSize = kPreHeaderSize + kHeaderSize1Plus;
inline constexpr uint32_t kUuidSize = 16;

// u32 image type.
enum class VdiType : uint32_t {
  kNormal = 1,  // dynamically growing base image
  kFixed = 2,   // preallocated base image
  kUndo = 3,    // dynamically growing image for undo/commit (a child of its linkage)
  kDiff = 4,    // dynamically growing differencing image (a child of its linkage)
};

// Block map entries (VDIIMAGEBLOCKPOINTER): the number of a data block, or
// one of these markers.
enum BlockMarker : uint32_t {
  kBlockFree = 0xffffffff,  // never written: contents undefined, we read zeros
                            // or the parent's bytes
  kBlockZero = 0xfffffffe,  // reads as zeros, no data stored
};
// What a block map entry says about its block.
enum class BlockKind { kData, kZero, kFree };
inline BlockKind block_kind(uint32_t entry) {
  if (entry < kBlockZero) return BlockKind::kData;
  return entry == kBlockZero ? BlockKind::kZero : BlockKind::kFree;
}

// What VirtualBox writes for new images: 1 MiB blocks, no extra data, the
// block map and the data area each aligned to 1 MiB (VDI_DATA_ALIGN).
inline constexpr uint32_t kDefaultBlockSize = 1u << 20;
inline constexpr uint32_t kDataAlign = 1u << 20;
inline constexpr uint32_t kSectorSize = 512;

// An RTUUID as stored: 16 bytes; the first three fields are little-endian
// (Windows GUID order, the x86 host order VirtualBox writes them in). They are
// Guid values; Guid::to_string() spells them as VBoxManage shows them.
inline constexpr GuidByteOrder kUuidByteOrder = GuidByteOrder::kMixedEndian;

struct Geometry {
  uint32_t cylinders = 0;
  uint32_t heads = 0;
  uint32_t sectors = 0;
  uint32_t sector_size = kSectorSize;
};

// The decoded pre-header and header. Field names follow VDICore.h.
struct Header {
  std::string file_info;  // pre-header text, trailing NULs removed
  uint32_t version = kVersion1_1;
  uint32_t header_size = kHeaderSize1Plus;
  uint32_t image_type = static_cast<uint32_t>(VdiType::kNormal);
  uint32_t flags = 0;
  std::string comment;
  uint32_t blocks_offset = 0;
  uint32_t data_offset = 0;
  Geometry legacy_geometry;
  Geometry lchs_geometry;  // meaningful only when header_size >= kHeaderSize1Plus
  uint64_t disk_size = 0;
  uint32_t block_size = kDefaultBlockSize;
  uint32_t block_extra = 0;
  uint32_t blocks = 0;
  uint32_t blocks_allocated = 0;
  Guid uuid_create{};
  Guid uuid_modify{};
  Guid uuid_linkage{};
  Guid uuid_parent_modify{};

  bool has_lchs() const { return header_size >= kHeaderSize1Plus; }
  bool is_child() const {
    return image_type == static_cast<uint32_t>(VdiType::kDiff) ||
           image_type == static_cast<uint32_t>(VdiType::kUndo);
  }
};

// Whether `head` carries the VDI signature at 0x40 (the probe; the pre-header
// text varies between writers and is not checked).
bool has_vdi_signature(std::span<const uint8_t> head);

// Decodes the pre-header and header from the first bytes of a file. Checks
// only what decoding needs (size, signature, version); throws
// Error(kNotThisFormat) without the signature, kUnsupported for other
// versions, kCorrupt for a header too short. Naming `path` in errors.
Header decode_header(const std::string& path, std::span<const uint8_t> bytes);

// Encodes `h` into `out` (at least kHeaderReadSize bytes, zeroed by the caller
// beyond what it wants kept): pre-header and header as VirtualBox lays them out.
void encode_header(const Header& h, std::span<uint8_t> out);

}  // namespace vdisk::vdi
