// On-disk layouts of the compressed raw images this folder reads and writes.
// Every multi-byte field is decoded with formats/core/endian.h.
//
// gzip (RFC 1952, "GZIP file format specification version 4.3"), one or more
// members laid end to end (2.2):
//   off  size  field
//   0    1     ID1 = 0x1f
//   1    1     ID2 = 0x8b
//   2    1     CM  = 8 (deflate, RFC 1951)
//   3    1     FLG: bit0 FTEXT, bit1 FHCRC, bit2 FEXTRA, bit3 FNAME, bit4 FCOMMENT,
//              bits 5-7 reserved (must be 0)
//   4    4     MTIME, little-endian, Unix seconds
//   8    1     XFL
//   9    1     OS
//   then [FEXTRA: XLEN (2, LE) + XLEN bytes] [FNAME: zero-terminated]
//        [FCOMMENT: zero-terminated] [FHCRC: 2 bytes], the deflate data, and
//   the trailer: CRC32 (4, LE) of the member's data, ISIZE (4, LE) = its
//   length mod 2^32 (so never the disk size by itself for data >= 4 GiB).
//
// xz ("The .xz File Format" 1.1.0/1.2.0): streams, each followed by optional
// stream padding (a multiple of 4 zero bytes) (2.1, 2.2).
//   Stream header (2.1.1), 12 bytes:
//     0  6  magic FD 37 7A 58 5A 00
//     6  2  stream flags: byte 0 = 0, byte 1 low nibble = check type
//           (0 none, 1 CRC32, 4 CRC64, 10 SHA-256; the size of check ID i
//           is 0, 4, 8, 16, 32, 64 for i in 0, 1-3, 4-6, 7-9, 10-12, 13-15)
//     8  4  CRC32 of the stream flags, LE
//   Blocks (3.1): block header size byte b (real size (b + 1) * 4; 0 is the
//     index indicator), the header, compressed data, padding to 4, the check.
//   Index (4): indicator 0x00, number of records (VLI), records of
//     (unpadded size VLI, uncompressed size VLI), zero padding to 4, CRC32.
//     Unpadded size = header + compressed data + check (block padding not
//     counted); a block occupies round_up(unpadded, 4) bytes.
//   Stream footer (2.1.2), 12 bytes:
//     0  4  CRC32 of bytes 4..9, LE
//     4  4  backward size: index size / 4 - 1, LE
//     8  2  stream flags (equal to the header's)
//     10 2  magic 59 5A ("YZ")
//   VLI (1.2): 1 to 9 bytes, 7 bits each, least significant first, high bit
//   set on every byte but the last; no trailing zero byte.
//
// zstd (RFC 8878, 3.1): frames and skippable frames laid end to end.
//   Frame: magic 0xFD2FB528 (4, LE), frame header, blocks, [checksum (4)].
//   Frame header (3.1.1.1): descriptor byte:
//     bits 7-6 FCS flag, bit 5 single segment, bit 4 unused, bit 3 reserved
//     (0), bit 2 content checksum, bits 1-0 dictionary ID flag;
//     [window descriptor (1) unless single segment]
//     [dictionary ID: 0, 1, 2 or 4 bytes for flag 0..3, LE]
//     [frame content size: FCS flag 0 -> 1 byte if single segment else absent,
//      1 -> 2 bytes (+256), 2 -> 4 bytes, 3 -> 8 bytes, LE]
//   Block header (3.1.1.2), 3 bytes LE: bit 0 last block, bits 1-2 type
//     (0 raw, 1 RLE, 2 compressed, 3 reserved), bits 3-23 block size; the
//     block content is `size` bytes (RLE: 1 byte); size <= 128 KiB.
//   Skippable frame (3.1.2): magic 0x184D2A50..0x184D2A5F, frame size (4, LE),
//     then that many bytes.
// zstd seekable format (contrib/seekable_format/zstd_seekable_compression_format.md
// in the zstd sources, v0.1.0): the last frame is a skippable frame with magic
// 0x184D2A5E whose content is the seek table:
//     entries: compressed size (4, LE), decompressed size (4, LE),
//              [checksum (4, LE): low 32 bits of XXH64 of the frame's data]
//     integrity field (9): number of frames (4, LE), descriptor (1: bit 7
//       checksum flag, bits 2-6 reserved = 0), seekable magic 0x8F92EAB1 (4, LE)
//
// bzip2 (the format as bzip2 1.0.x writes it; described in Joe Tsai's
// "bzip2 format specification"): stream = "BZh" + level '1'..'9', blocks,
// end of stream. Everything after the 4-byte stream header is a big-endian
// bit stream, blocks are not byte-aligned:
//   block: magic 0x314159265359 (48 bits), block CRC (32), randomised (1),
//          origPtr (24), the Huffman-coded data
//   end of stream: magic 0x177245385090 (48), combined CRC (32), then zero
//          bits to the next byte boundary; another stream may follow.
//   combined CRC = for each block in order: c = (c << 1 | c >> 31) ^ block CRC.
// A block restores at most 900000 * 255 / 5 bytes (RLE1 runs), about 46 MB.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdisk::compressed {

// gzip
inline constexpr uint8_t kGzipId1 = 0x1f;
inline constexpr uint8_t kGzipId2 = 0x8b;
inline constexpr uint8_t kGzipDeflate = 8;
inline constexpr size_t kGzipTrailer = 8;
inline constexpr size_t kDeflateWindow = 32 * 1024;
// A stored window never exceeds this (32 KiB compressed, with overhead).
inline constexpr size_t kDeflateWindowBound = 33 * 1024;

// xz
inline constexpr uint8_t kXzMagic[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
inline constexpr uint8_t kXzFooterMagic[2] = {'Y', 'Z'};
inline constexpr size_t kXzStreamHeader = 12;
inline constexpr size_t kXzStreamFooter = 12;
inline constexpr size_t kXzFooterBackwardSize = 4;
inline constexpr size_t kXzFooterFlags = 8;
inline constexpr size_t kXzFooterMagicOffset = 10;
inline constexpr size_t kXzHeaderFlags = 6;
inline constexpr size_t kXzHeaderCrc = 8;
// Size in bytes of check type `id` (0..15).
inline constexpr uint32_t xz_check_size(uint32_t id) {
  return id == 0 ? 0 : 4u << ((id - 1) / 3);
}

// zstd
inline constexpr uint32_t kZstdMagic = 0xFD2FB528;
inline constexpr uint32_t kZstdSkippableMask = 0xFFFFFFF0;
inline constexpr uint32_t kZstdSkippableMagic = 0x184D2A50;
inline constexpr uint32_t kZstdSeekTableMagic = 0x184D2A5E;
inline constexpr uint32_t kZstdSeekableFooterMagic = 0x8F92EAB1;
inline constexpr size_t kZstdSeekFooter = 9;
inline constexpr uint32_t kZstdMaxBlock = 128 * 1024;

// bzip2
inline constexpr uint64_t kBz2BlockMagic = 0x314159265359ull;
inline constexpr uint64_t kBz2EosMagic = 0x177245385090ull;
inline constexpr uint64_t kBz2MaxBlockOutput = 900000ull * 255 / 5 + 1024;

}  // namespace vdisk::compressed
