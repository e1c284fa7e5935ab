// Apple UDIF (.dmg) on-disk layout, big-endian throughout. Sources: the
// keramics project's "Universal Disk Image Format (UDIF)" format pages and
// libyal libmodi's "Mac OS disk image types" documentation.
//
// The file: data fork (the chunks' bytes), an XML property list, and a
// 512-byte trailer ("koly" block) at the very end.
//
// koly trailer (offset from the trailer start, size, field):
//   0    4    signature "koly"
//   4    4    version (4)
//   8    4    header size (512)
//   12   4    flags
//   16   8    running data fork offset
//   24   8    data fork offset (bytes, from the file start)
//   32   8    data fork length
//   40   8    resource fork offset
//   48   8    resource fork length
//   56   4    segment number
//   60   4    segment count
//   64   16   segment identifier (UUID)
//   80   4    data fork checksum type
//   84   4    data fork checksum size (bits)
//   88   128  data fork checksum
//   216  8    XML plist offset
//   224  8    XML plist length
//   232  120  reserved
//   352  4    master checksum type
//   356  4    master checksum size
//   360  128  master checksum
//   488  4    image variant
//   492  8    sector count (512-byte sectors of the disk)
//   500  12   reserved
//
// The plist's resource-fork > blkx array holds one dictionary per partition
// (Name, ID, Attributes, Data); Data (base64) is a "mish" block table:
//   0    4    signature "mish"
//   4    4    version (1)
//   8    8    first sector of the partition on the disk
//   16   8    sector count
//   24   8    data offset (added to every chunk's compressed offset)
//   32   4    buffers needed
//   36   4    block descriptors
//   40   24   reserved
//   64   4    checksum type
//   68   4    checksum size
//   72   128  checksum
//   200  4    number of chunks
//   204  40 * n chunks:
//        0   4  type (kChunk*)
//        4   4  comment
//        8   8  first sector, relative to the partition's first sector
//        16  8  sector count
//        24  8  compressed offset (from the data fork start + data offset)
//        32  8  compressed length
//
// Other Apple images recognised by their magic:
//   "encrcdsa" at 0 (encrypted, version 2), "cdsaencr" at the end (v1);
//   "sprs" at 0 (.sparseimage).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdisk::dmg {

inline constexpr size_t kKolySize = 512;
inline constexpr size_t kKolyDataForkOffset = 24;
inline constexpr size_t kKolyDataForkLength = 32;
inline constexpr size_t kKolyXmlOffset = 216;
inline constexpr size_t kKolyXmlLength = 224;
inline constexpr size_t kKolyImageVariant = 488;
inline constexpr size_t kKolySectorCount = 492;
inline constexpr size_t kKolyVersion = 4;
inline constexpr size_t kKolyHeaderSize = 8;

inline constexpr size_t kMishHeader = 204;
inline constexpr size_t kMishFirstSector = 8;
inline constexpr size_t kMishSectorCount = 16;
inline constexpr size_t kMishDataOffset = 24;
inline constexpr size_t kMishChunkCount = 200;
inline constexpr size_t kChunkSize = 40;

inline constexpr uint32_t kChunkZero = 0x00000000;
inline constexpr uint32_t kChunkRaw = 0x00000001;
inline constexpr uint32_t kChunkIgnore = 0x00000002;
inline constexpr uint32_t kChunkAdc = 0x80000004;
inline constexpr uint32_t kChunkZlib = 0x80000005;
inline constexpr uint32_t kChunkBzip2 = 0x80000006;
inline constexpr uint32_t kChunkLzfse = 0x80000007;
inline constexpr uint32_t kChunkLzma = 0x80000008;
inline constexpr uint32_t kChunkComment = 0x7ffffffe;
inline constexpr uint32_t kChunkTerminator = 0xffffffff;

inline constexpr uint64_t kSector = 512;
// Limits for hostile input: a plist larger than this is refused, and no
// compressed chunk may decode to more than kMaxChunkBytes (hdiutil writes
// chunks of 2048 sectors, 1 MiB).
inline constexpr uint64_t kMaxPlistBytes = 64 << 20;
inline constexpr uint64_t kMaxChunkBytes = 64 << 20;

}  // namespace vdisk::dmg
