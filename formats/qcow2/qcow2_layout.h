// The qcow2 on-disk layout, from QEMU's docs/interop/qcow2.rst (the format
// specification; section names are quoted below). Every number is
// BIG-endian. Offsets are bytes from the start of the structure.
//
// File: host clusters of 1 << cluster_bits bytes. Cluster 0 holds the
// header, its extensions and the backing file name; everything else (L1 table,
// L2 tables, refcount table and blocks, snapshot table, data) lives in
// clusters found through the header's offsets ("Host cluster management",
// "Cluster mapping").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vdisk::qcow2 {

// ---- "Header" ------------------------------------------------------------------
inline constexpr uint8_t kMagic[4] = {'Q', 'F', 'I', 0xfb};
inline constexpr uint32_t kHdrMagic = 0;              // 4
inline constexpr uint32_t kHdrVersion = 4;            // 4: 2 or 3
inline constexpr uint32_t kHdrBackingOffset = 8;      // 8: file offset of the name, 0 = none
inline constexpr uint32_t kHdrBackingSize = 16;       // 4: name length, <= 1023
inline constexpr uint32_t kHdrClusterBits = 20;       // 4: >= 9 (QEMU: <= 21)
inline constexpr uint32_t kHdrSize = 24;              // 8: virtual size in bytes
inline constexpr uint32_t kHdrCryptMethod = 32;       // 4: 0 none, 1 AES, 2 LUKS
inline constexpr uint32_t kHdrL1Size = 36;            // 4: entries of the active L1
inline constexpr uint32_t kHdrL1Offset = 40;          // 8: cluster-aligned
inline constexpr uint32_t kHdrRefcountOffset = 48;    // 8: cluster-aligned
inline constexpr uint32_t kHdrRefcountClusters = 56;  // 4: clusters of the refcount table
inline constexpr uint32_t kHdrNbSnapshots = 60;       // 4
inline constexpr uint32_t kHdrSnapshotsOffset = 64;   // 8: cluster-aligned
inline constexpr uint32_t kHeaderV2Length = 72;       // version 2 ends here
inline constexpr uint32_t kHdrIncompatible = 72;      // 8: v3
inline constexpr uint32_t kHdrCompatible = 80;        // 8: v3
inline constexpr uint32_t kHdrAutoclear = 88;         // 8: v3
inline constexpr uint32_t kHdrRefcountOrder = 96;     // 4: v3; refcount_bits = 1 << order, <= 6
inline constexpr uint32_t kHdrHeaderLength = 100;     // 4: v3; >= 104, multiple of 8
inline constexpr uint32_t kHdrCompressionType = 104;  // 1: "Additional fields"; 0 deflate, 1 zstd
inline constexpr uint32_t kHeaderV3MinLength = 104;
inline constexpr uint32_t kHeaderV3Length = 112;  // what QEMU 7.2 writes (104 + 1 + 7 padding)

inline constexpr uint32_t kCryptNone = 0;
inline constexpr uint32_t kCryptAes = 1;
inline constexpr uint32_t kCryptLuks = 2;

inline constexpr uint32_t kMinClusterBits = 9;             // 512 B
inline constexpr uint32_t kMaxClusterBits = 21;            // 2 MiB, QEMU's implementation limit
inline constexpr uint32_t kMinExtendedL2ClusterBits = 14;  // "Extended L2 Entries"
inline constexpr uint32_t kMaxBackingNameSize = 1023;
// QEMU's implementation limits ("size" and "Host cluster management" notes):
// images beyond them do not open in QEMU, so the writer refuses to make them.
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;
inline constexpr uint32_t kMaxSnapshots = 65536;

// incompatible_features
inline constexpr uint64_t kIncompatDirty = 1ull << 0;
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kIncompatDataFile = 1ull << 2;
inline constexpr uint64_t kIncompatCompression = 1ull << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
inline constexpr uint64_t kIncompatKnown = (1ull << 5) - 1;
// compatible_features
inline constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;
// autoclear_features
inline constexpr uint64_t kAutoclearBitmaps = 1ull << 0;
inline constexpr uint64_t kAutoclearDataFileRaw = 1ull << 1;

inline constexpr uint8_t kCompressionDeflate = 0;
inline constexpr uint8_t kCompressionZstd = 1;

// ---- "Header extensions": type (4), length (4), data, padding to 8 ----------------
inline constexpr uint32_t kExtEnd = 0x00000000;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;  // string
inline constexpr uint32_t kExtFeatureNames = 0x6803f857;   // 48-byte entries
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtCryptoHeader = 0x0537be77;
inline constexpr uint32_t kExtDataFile = 0x44415441;  // string
inline constexpr uint32_t kFeatureNameEntry = 48;     // type (1), bit (1), name (46)
inline constexpr uint32_t kFeatureNameLength = 46;

// ---- "Cluster mapping" ------------------------------------------------------------
// L1 entry: bits 9-55 L2 table offset, bit 63 COPIED (refcount exactly 1).
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kOflagCopied = 1ull << 63;
// L2 entry: bit 62 compressed, bit 63 COPIED; standard descriptor: bit 0 reads
// as zeros (v3, not with extended L2), bits 9-55 host cluster offset.
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull << 0;
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
// Compressed descriptor (x = 62 - (cluster_bits - 8)): bits 0..x-1 host
// byte offset, bits x..61 additional 512-byte sectors.
inline constexpr uint64_t kCompressedSector = 512;
inline uint32_t compressed_offset_bits(uint32_t cluster_bits) {
  return 62 - (cluster_bits - 8);
}
// "Extended L2 Entries": 128-bit entries; the second word's bits 0-31 say
// "subcluster allocated", bits 32-63 "subcluster reads as zeros".
inline constexpr uint32_t kSubclusters = 32;

// ---- refcount table entry: bits 9-63 offset of a refcount block ---------------------
inline constexpr uint64_t kRefcountTableOffsetMask = 0xfffffffffffffe00ull;

// ---- "Snapshots": table entry (variable length, 8-aligned) --------------------------
inline constexpr uint32_t kSnL1Offset = 0;      // 8
inline constexpr uint32_t kSnL1Size = 8;        // 4
inline constexpr uint32_t kSnIdLength = 12;     // 2
inline constexpr uint32_t kSnNameLength = 14;   // 2
inline constexpr uint32_t kSnDateSec = 16;      // 4
inline constexpr uint32_t kSnDateNsec = 20;     // 4
inline constexpr uint32_t kSnVmClockNsec = 24;  // 8
inline constexpr uint32_t kSnVmStateSize = 32;  // 4
inline constexpr uint32_t kSnExtraSize = 36;    // 4
inline constexpr uint32_t kSnFixedSize = 40;
// Extra data (relative to the entry): 8-byte VM state size at 40, 8-byte
// virtual disk size at 48, 8-byte icount at 56.
inline constexpr uint32_t kSnExtraVmStateSize64 = 0;
inline constexpr uint32_t kSnExtraDiskSize = 8;
inline constexpr uint32_t kSnExtraIcount = 16;

// The fixed header, decoded.
struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible = 0;
  uint64_t compatible = 0;
  uint64_t autoclear = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kHeaderV2Length;
  uint8_t compression_type = kCompressionDeflate;

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  bool extended_l2() const { return incompatible & kIncompatExtendedL2; }
  // Bytes of one L2 entry (8, or 16 with extended L2 entries).
  uint32_t l2_entry_bytes() const { return extended_l2() ? 16 : 8; }
  uint64_t l2_entries() const { return cluster_size() / l2_entry_bytes(); }
};

// Decodes the first `len` bytes of the file (at least 72). Version-2 images
// get the implied v3 fields (refcount order 4, header length 72). Does not
// validate beyond what decoding needs.
Header decode_header(const uint8_t* p, size_t len);
// Encodes `h` into `p` (h.header_length bytes, zero-filled first).
void encode_header(const Header& h, uint8_t* p);

// One header extension as stored (the bytes after type and length).
struct Extension {
  uint32_t type = 0;
  uint64_t offset = 0;  // of the type field, in the file
  std::vector<uint8_t> data;
};
// Appends an extension (type, length, data, zero padding to 8) to `out`.
void append_extension(std::vector<uint8_t>& out, uint32_t type, const void* data, size_t len);

// The names QEMU gives the feature bits it defines, for messages and the
// feature name table this writer stores: {type (0 incompatible, 1
// compatible, 2 autoclear), bit, name}.
struct FeatureName {
  uint8_t type;
  uint8_t bit;
  const char* name;
};
const std::vector<FeatureName>& known_feature_names();

// Refcount block entry `index` of `block` for refcount_bits = 1 << order
// (sub-byte widths: bit 0 is the least significant; others big-endian).
uint64_t load_refcount(const uint8_t* block, uint64_t index, uint32_t order);
void store_refcount(uint8_t* block, uint64_t index, uint32_t order, uint64_t value);

}  // namespace vdisk::qcow2
