// On-disk structures of the Expert Witness Compression Format (EWF version 1:
// EWF-E01 as EnCase 1-7, FTK Imager, linen 5-7 and libewf write it; SMART's
// EWF-S01), from libyal's "Expert Witness Compression Format (EWF)" document
// and the keramics project's EWF page. Section numbers below ("EWF 3.1") are
// the document's. Every integer is little-endian; offsets are bytes from the
// start of the structure named in the heading; "sectors" are media sectors of
// the volume's bytes-per-sector.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vdisk::e01 {

// ---- EWF 2.1.1 File header (13 bytes, every segment file) -------------------
//   0  8  signature "EVF\x09\x0d\x0a\xff\x00" (EWF-E01, EWF-S01)
//   8  1  start of fields: 0x01
//   9  2  segment number, 1 for the first file (u16)
//  11  2  end of fields: 0x0000
// Foreign relatives recognised only to be refused by name:
//   "LVF\x09\x0d\x0a\xff\x00"  EWF-L01 logical evidence (files, not a disk)
//   "EVF2\x0d\x0a\x81\x00"     EWF2-Ex01 (EnCase 7+; keramics "EWF 2")
//   "LEF2\x0d\x0a\x81\x00"     EWF2-Lx01
inline constexpr size_t kFileHeaderSize = 13;
inline constexpr uint8_t kEvfSignature[8] = {'E', 'V', 'F', 0x09, 0x0d, 0x0a, 0xff, 0x00};
inline constexpr uint8_t kLvfSignature[8] = {'L', 'V', 'F', 0x09, 0x0d, 0x0a, 0xff, 0x00};
inline constexpr uint8_t kEvf2Signature[8] = {'E', 'V', 'F', '2', 0x0d, 0x0a, 0x81, 0x00};
inline constexpr uint8_t kLef2Signature[8] = {'L', 'E', 'F', '2', 0x0d, 0x0a, 0x81, 0x00};
inline constexpr size_t kFhStartOfFields = 8;
inline constexpr size_t kFhSegmentNumber = 9;
inline constexpr size_t kFhEndOfFields = 11;

// ---- EWF 3.1 Section descriptor (76 bytes, starts every section) ------------
//   0 16  type: ASCII, NUL-padded ("header", "volume", "table", ...)
//  16  8  next section offset, from the start of the segment file; "done"
//         and "next" point at themselves (SMART: past themselves)
//  24  8  section size including this descriptor (0 in EnCase's done/next,
//         unset by Expert Witness 1.35)
//  32 40  padding (zero; EnCase 2 for DOS leaves memory garbage)
//  72  4  Adler-32 of bytes 0-71
inline constexpr size_t kSectionDescriptorSize = 76;
inline constexpr size_t kSdType = 0;
inline constexpr size_t kSdTypeSize = 16;
inline constexpr size_t kSdNext = 16;
inline constexpr size_t kSdSize = 24;
inline constexpr size_t kSdChecksum = 72;

struct SectionDescriptor {
  std::string type;  // up to the first NUL
  uint64_t next = 0;
  uint64_t size = 0;
  uint32_t checksum = 0;  // as stored
  uint32_t computed = 0;  // Adler-32 of bytes 0-71
  bool valid() const { return checksum == computed; }
};
SectionDescriptor decode_section_descriptor(const uint8_t* p);
void encode_section_descriptor(const std::string& type, uint64_t next, uint64_t size, uint8_t* p);

// ---- EWF 3.5 Volume section data (the "volume", "disk" and "data" sections) -
// EWF-E01 (FTK Imager, EnCase 1-7, linen 5-7): 1052 bytes
//   0  1  media type (kMediaRemovable, ...)
//   1  3  zero
//   4  4  number of chunks in the whole image
//   8  4  sectors per chunk (64 by default)
//  12  4  bytes per sector
//  16  8  number of sectors of the media
//  24  4  C:H:S cylinders     28 4 heads     32 4 sectors (usually 0)
//  36  1  media flags (kFlag...)
//  37  3  zero
//  40  4  PALM volume start sector
//  44  4  zero
//  48  4  SMART logs start sector (from the end of the media)
//  52  1  compression level: 0 none, 1 good (fast), 2 best (EnCase 5+)
//  53  3  zero
//  56  4  error granularity, sectors (EnCase 5+)
//  60  4  zero
//  64 16  segment file set identifier (GUID; EnCase 5+, zero from others)
//  80 963 zero
// 1043 5  signature (zero)
// 1048 4  Adler-32 of bytes 0-1047
// EWF and SMART (EWF-S01; ASR Data's original specification): 94 bytes
//   0  4  reserved, 1
//   4  4  number of chunks     8 4 sectors per chunk     12 4 bytes per sector
//  16  4  number of sectors (32-bit)
//  20 65  zero
//  85  5  signature: "SMART" in SMART files, else zero
//  90  4  Adler-32 of bytes 0-89
inline constexpr size_t kVolumeE01Size = 1052;
inline constexpr size_t kVolumeS01Size = 94;
inline constexpr size_t kVolMediaType = 0;
inline constexpr size_t kVolChunkCount = 4;
inline constexpr size_t kVolSectorsPerChunk = 8;
inline constexpr size_t kVolBytesPerSector = 12;
inline constexpr size_t kVolSectorCount = 16;
inline constexpr size_t kVolCylinders = 24;
inline constexpr size_t kVolHeads = 28;
inline constexpr size_t kVolChsSectors = 32;
inline constexpr size_t kVolMediaFlags = 36;
inline constexpr size_t kVolPalmStart = 40;
inline constexpr size_t kVolSmartLogsStart = 48;
inline constexpr size_t kVolCompressionLevel = 52;
inline constexpr size_t kVolErrorGranularity = 56;
inline constexpr size_t kVolSetIdentifier = 64;
inline constexpr size_t kVolE01Checksum = 1048;
inline constexpr size_t kVolS01Signature = 85;
inline constexpr size_t kVolS01Checksum = 90;

inline constexpr uint8_t kMediaRemovable = 0x00;
inline constexpr uint8_t kMediaFixed = 0x01;
inline constexpr uint8_t kMediaOptical = 0x03;
inline constexpr uint8_t kMediaLogical = 0x0e;  // EWF-L01
inline constexpr uint8_t kMediaMemory = 0x10;
inline constexpr uint8_t kFlagImage = 0x01;     // always set by EnCase/FTK
inline constexpr uint8_t kFlagPhysical = 0x02;  // a physical device, not a volume
inline constexpr uint8_t kFlagFastbloc = 0x04;  // write blocker used
inline constexpr uint8_t kFlagTableau = 0x08;   // write blocker used (EnCase 6.13+)
inline constexpr uint8_t kCompressionNone = 0;
inline constexpr uint8_t kCompressionFast = 1;
inline constexpr uint8_t kCompressionBest = 2;

struct Volume {
  bool smart_layout = false;  // the 94-byte EWF/SMART form
  bool smart_signature = false;
  uint8_t media_type = kMediaFixed;
  uint32_t chunk_count = 0;
  uint32_t sectors_per_chunk = 64;
  uint32_t bytes_per_sector = 512;
  uint64_t sector_count = 0;
  uint32_t cylinders = 0, heads = 0, chs_sectors = 0;
  uint8_t media_flags = kFlagImage;
  uint8_t compression_level = kCompressionNone;
  uint32_t error_granularity = 0;
  std::array<uint8_t, 16> set_identifier{};
  bool checksum_ok = true;
};
// Decodes `len` bytes (kVolumeE01Size or kVolumeS01Size); nullopt for any
// other length.
std::optional<Volume> decode_volume(const uint8_t* p, size_t len);
// Encodes the EWF-E01 form into kVolumeE01Size bytes.
void encode_volume(const Volume& v, uint8_t* p);

// ---- EWF 3.8 Table and table2 sections ------------------------------------
// Header (24 bytes):
//   0  4  number of entries
//   4  4  zero
//   8  8  table base offset (EnCase 6+: entries are relative to it; older
//         writers store 0 and file offsets)
//  16  4  zero
//  20  4  Adler-32 of bytes 0-19
// Entries (4 bytes each): bit 31 set = the chunk is compressed; bits 0-30 =
// offset of the chunk's data (plus the base offset). EnCase 2+ put the chunks
// in the preceding "sectors" section and end the table with a footer: the
// Adler-32 of the entry array. EWF/SMART/EnCase 1 keep the chunks in the
// table section itself after the entries (SMART without the footer).
// FTK (and the original specification) hold at most 16375 entries per table.
inline constexpr size_t kTableHeaderSize = 24;
inline constexpr size_t kThEntryCount = 0;
inline constexpr size_t kThBaseOffset = 8;
inline constexpr size_t kThChecksum = 20;
inline constexpr size_t kTableEntrySize = 4;
inline constexpr uint32_t kEntryCompressed = 0x80000000u;
inline constexpr uint32_t kEntryOffsetMask = 0x7fffffffu;
inline constexpr uint32_t kFtkMaxTableEntries = 16375;

struct TableHeader {
  uint32_t entry_count = 0;
  uint64_t base_offset = 0;
  bool checksum_ok = true;
};
TableHeader decode_table_header(const uint8_t* p);
void encode_table_header(uint32_t entries, uint64_t base, uint8_t* p);

// ---- EWF 3.16 Hash section data (36 bytes) ----------------------------------
//   0 16  MD5 of the media data
//  16 16  unknown (zero)
//  32  4  Adler-32 of bytes 0-31
inline constexpr size_t kHashSize = 36;
// ---- EWF 3.15 Digest section data (80 bytes; EnCase 6.12+) ------------------
//   0 16  MD5 of the media data
//  16 20  SHA-1 of the media data
//  36 40  zero
//  76  4  Adler-32 of bytes 0-75
inline constexpr size_t kDigestSize = 80;

// ---- EWF 3.14 Error2 section data -------------------------------------------
// Header (520 bytes): 0 4 number of entries, 4 512 zero, 516 4 Adler-32 of
// bytes 0-515. Entries (8 bytes): 0 4 first sector, 4 4 number of sectors.
// Footer (4 bytes): Adler-32 of the entry array.
inline constexpr size_t kError2HeaderSize = 520;
inline constexpr size_t kError2HeaderChecksum = 516;
inline constexpr size_t kError2EntrySize = 8;

// ---- EWF 3.13 Session section data ------------------------------------------
// Header (36 bytes): 0 4 number of sessions, 4 28 zero, 32 4 Adler-32 of
// bytes 0-31. Entries (32 bytes): 0 4 flags (bit 0: audio track), 4 4 first
// sector, 8 24 zero. Footer: Adler-32 of the entry array.
inline constexpr size_t kSessionHeaderSize = 36;
inline constexpr size_t kSessionHeaderChecksum = 32;
inline constexpr size_t kSessionEntrySize = 32;

// ---- EWF 3.2-3.4 header, header2 (and xheader) ------------------------------
// The section data is a zlib stream (RFC 1950) of text: "header" in ASCII
// (or a Windows codepage) with CRLF or LF line ends, "header2" in UTF-16
// with a byte order mark and LF. See e01_header.h.

// ---- Chunks (EWF 3.7) --------------------------------------------------------
// A chunk holds sectors_per_chunk * bytes_per_sector bytes of media (the last
// one of the image may be shorter). Compressed: a zlib stream (its Adler-32
// checks it). Uncompressed: the bytes followed by their Adler-32 (stored
// when compression would not make the chunk smaller).

// Segment file names (EWF 2.2): the first segment's extension (".E01",
// ".e01", ".s01") names the set; segment n (1-based) has
//   n = 1..99:   <letter><two digits>                 E01 .. E99
//   n >= 100:    three letters counting from <letter>AA: EAA .. EZZ, FAA .. ZZZ
// in the first segment's case. Returns nullopt past ZZZ (or zzz).
std::optional<std::string> segment_extension(char first_letter, uint32_t n);
// The largest segment number segment_extension() can name for `first_letter`.
uint32_t max_segment_number(char first_letter);

}  // namespace vdisk::e01
