// On-disk structures of VMDK, from VMware's "Virtual Disk Format 5.0"
// technical note (VDF) and, for seSparse, from public descriptions of ESXi
// 6.5+ snapshot files. Every field is little-endian. Sizes and offsets named
// "sectors" are in 512-byte units.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vdisk::vmdk {

inline constexpr uint64_t kSector = 512;

// ---- Hosted sparse extent header (VDF "Hosted Sparse Extent Header") ----
// One 512-byte sector at offset 0 of a sparse extent; streamOptimized extents
// repeat it as a footer near the end of the file.
//   off size field
//     0  4   magicNumber         'KDMV' (0x564d444b)
//     4  4   version             1, 2 (zeroed-grain GTEs), 3 (streamOptimized)
//     8  4   flags               see kFlag*
//    12  8   capacity            sectors of guest data in this extent
//    20  8   grainSize           sectors per grain (power of two, >= 8)
//    28  8   descriptorOffset    sector of the embedded descriptor (0: none)
//    36  8   descriptorSize      sectors reserved for it
//    44  4   numGTEsPerGT        grain table entries per table (512)
//    48  8   rgdOffset           sector of the redundant grain directory
//    56  8   gdOffset            sector of the grain directory (kGdAtEnd: see footer)
//    64  8   overHead            sectors before the first grain
//    72  1   uncleanShutdown
//    73  1   singleEndLineChar   '\n'
//    74  1   nonEndLineChar      ' '
//    75  1   doubleEndLineChar1  '\r'
//    76  1   doubleEndLineChar2  '\n'
//    77  2   compressAlgorithm   0 none, 1 deflate (RFC 1950 zlib streams)
//    79 433  pad (zero)
inline constexpr uint32_t kSparseMagic = 0x564d444b;  // "KDMV" read little-endian
inline constexpr uint32_t kFlagNewlineTest = 1u << 0;
inline constexpr uint32_t kFlagRedundantGd = 1u << 1;
inline constexpr uint32_t kFlagZeroedGrain = 1u << 2;
inline constexpr uint32_t kFlagCompressed = 1u << 16;
inline constexpr uint32_t kFlagMarkers = 1u << 17;
inline constexpr uint64_t kGdAtEnd = ~uint64_t{0};
inline constexpr uint16_t kCompressDeflate = 1;
// Grain table entries (VDF "Grain Tables"): 0 = unallocated (ask the parent),
// 1 = zeroed grain (version 2 extents; reads as zeros), else the grain's sector.
inline constexpr uint32_t kGteUnallocated = 0;
inline constexpr uint32_t kGteZeroed = 1;
inline constexpr uint32_t kDefaultGtes = 512;

struct SparseHeader {
  uint32_t version = 1;
  uint32_t flags = 0;
  uint64_t capacity = 0;
  uint64_t grain_size = 128;
  uint64_t descriptor_offset = 0;
  uint64_t descriptor_size = 0;
  uint32_t num_gtes_per_gt = kDefaultGtes;
  uint64_t rgd_offset = 0;
  uint64_t gd_offset = 0;
  uint64_t overhead = 0;
  uint8_t unclean_shutdown = 0;
  uint16_t compress_algorithm = 0;
  // The four newline-detection bytes are written as the spec gives them.
};

// Decodes 512 bytes; nothing when the magic is not KDMV.
std::optional<SparseHeader> decode_sparse_header(const uint8_t* p);
// Encodes into 512 bytes (pad zeroed).
void encode_sparse_header(const SparseHeader& h, uint8_t* p);

// ---- streamOptimized markers (VDF "Stream-Optimized Compressed Sparse Extents") ----
// Every marker starts on a sector boundary.
//   Grain marker:    0 u64 lba (guest sector of the grain), 8 u32 size (> 0:
//                    bytes of compressed data that follow at offset 12), data
//                    padded with zeros to a sector boundary.
//   Metadata marker: 0 u64 numSectors of metadata that follow the marker
//                    sector, 8 u32 size = 0, 12 u32 type, 16..511 zero.
inline constexpr uint32_t kMarkerEos = 0;
inline constexpr uint32_t kMarkerGrainTable = 1;
inline constexpr uint32_t kMarkerGrainDirectory = 2;
inline constexpr uint32_t kMarkerFooter = 3;
inline constexpr size_t kGrainMarkerHeader = 12;

// ---- seSparse (ESXi 6.5+ snapshots; VMware publishes no spec) ----
// Constant header at sector 0, 64-bit little-endian fields:
//     0 magic 0xcafebabe      8 version 0x0000000200000001
//    16 capacity (sectors)   24 grain size (sectors, 8)
//    32 grain table size (sectors, 64)   40 flags
//    48..80 reserved[4]
//    80 volatile header offset/size      96 journal header offset/size
//   112 journal offset/size              128 grain directory offset/size
//   144 grain tables offset/size         160 free bitmap offset/size
//   176 backmap offset/size              192 grains offset/size
// Offsets and sizes are in sectors. Grain directory entries: 0 = no table,
// else top nibble 1 and the table's index in the low 60 bits (the table sits
// at grain-tables offset + index * grain-table size). Grain table entries:
// top nibble 0 unallocated (parent), 1 unmapped (zero), 2 zero, 3 allocated
// with a 60-bit grain index stored as bits 48..59 = index bits 0..11 and
// bits 0..47 = index bits 12..59; the grain sits at grains offset + index *
// grain size.
inline constexpr uint64_t kSeSparseMagic = 0xcafebabeull;
inline constexpr uint64_t kSeSparseVersion = 0x0000000200000001ull;

struct SeSparseHeader {
  uint64_t version = 0;
  uint64_t capacity = 0;
  uint64_t grain_size = 0;
  uint64_t grain_table_size = 0;
  uint64_t flags = 0;
  uint64_t grain_dir_offset = 0, grain_dir_size = 0;
  uint64_t grain_tables_offset = 0, grain_tables_size = 0;
  uint64_t grains_offset = 0, grains_size = 0;
};
// Decodes 512 bytes; nothing when the magic is not 0xcafebabe.
std::optional<SeSparseHeader> decode_sesparse_header(const uint8_t* p);
// Field offsets used by the encoder in tests and the decoder.
inline constexpr size_t kSeGrainDirOffset = 128;
inline constexpr size_t kSeGrainTablesOffset = 144;
inline constexpr size_t kSeGrainsOffset = 192;

}  // namespace vdisk::vmdk
