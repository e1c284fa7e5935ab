// On-disk layout of the partition tables vdisk reads: the classic MBR with
// extended boot records (EBR), and the GUID Partition Table (UEFI
// specification 2.10, chapter 5 "GUID Partition Table (GPT) Disk Layout").
// All fields are little-endian. LBAs are in units of the disk's logical
// sector size (512 unless the disk says otherwise).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdisk::partition {

// ---- MBR (UEFI spec 5.2.1 "Legacy MBR", table 5-1) and EBR --------------------
// The MBR occupies LBA 0; an EBR occupies the first sector of each logical
// partition's container and has the same shape (only the first two entries
// are used by convention).
inline constexpr size_t kMbrSize = 512;
inline constexpr size_t kMbrEntriesOffset = 446;  // 4 entries of 16 bytes
inline constexpr size_t kMbrEntrySize = 16;
inline constexpr size_t kMbrEntryCount = 4;
inline constexpr size_t kMbrSignatureOffset = 510;  // 2 bytes: 0x55 0xAA
inline constexpr uint8_t kMbrSignature0 = 0x55;
inline constexpr uint8_t kMbrSignature1 = 0xAA;
inline constexpr size_t kMbrDiskSignatureOffset = 440;  // 4 bytes, "unique MBR disk signature"

// One 16-byte partition record (offsets within the record).
inline constexpr size_t kMbrEntryBootIndicator = 0;  // 1 byte: 0x00 or 0x80 (active)
inline constexpr size_t kMbrEntryStartChs = 1;       // 3 bytes, ignored (LBA fields rule)
inline constexpr size_t kMbrEntryType = 4;           // 1 byte: OS type
inline constexpr size_t kMbrEntryEndChs = 5;         // 3 bytes, ignored
inline constexpr size_t kMbrEntryStartLba = 8;       // 4 bytes LE
//   MBR: absolute. EBR entry 0 (the logical partition): relative to this EBR's
//   LBA. EBR entry 1 (the next EBR): relative to the primary extended
//   partition's first LBA.
inline constexpr size_t kMbrEntrySizeLba = 12;  // 4 bytes LE: sector count

inline constexpr uint8_t kMbrTypeEmpty = 0x00;
// Container types that hold an EBR chain: DOS (0x05), Windows LBA (0x0F),
// Linux (0x85); the same three Linux treats as extended.
inline constexpr uint8_t kMbrTypeExtendedChs = 0x05;
inline constexpr uint8_t kMbrTypeExtendedLba = 0x0F;
inline constexpr uint8_t kMbrTypeExtendedLinux = 0x85;
// UEFI spec 5.2.3: the protective MBR's entry type that announces a GPT.
inline constexpr uint8_t kMbrTypeGptProtective = 0xEE;

inline bool is_extended_type(uint8_t t) {
  return t == kMbrTypeExtendedChs || t == kMbrTypeExtendedLba || t == kMbrTypeExtendedLinux;
}

// Linux gives up on an EBR chain after this many hops without a data
// partition; vdisk also stops at any EBR it has already visited (a loop).
inline constexpr size_t kMaxLogicalPartitions = 256;

// ---- GPT header (UEFI spec 5.3.2, table 5-5) -----------------------------------
// The primary header is at LBA 1, the backup at the disk's last LBA.
inline constexpr char kGptSignature[8] = {'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'};
inline constexpr size_t kGptHdrSignature = 0;        // 8 bytes "EFI PART"
inline constexpr size_t kGptHdrRevision = 8;         // 4 bytes, 0x00010000 for 1.0
inline constexpr size_t kGptHdrHeaderSize = 12;      // 4 bytes: 92 <= size <= sector size
inline constexpr size_t kGptHdrHeaderCrc = 16;       // 4 bytes: CRC-32 of HeaderSize bytes,
                                                     //   computed with this field zeroed
inline constexpr size_t kGptHdrReserved = 20;        // 4 bytes, must be zero
inline constexpr size_t kGptHdrMyLba = 24;           // 8 bytes: LBA of this header
inline constexpr size_t kGptHdrAlternateLba = 32;    // 8 bytes: LBA of the other header
inline constexpr size_t kGptHdrFirstUsableLba = 40;  // 8 bytes
inline constexpr size_t kGptHdrLastUsableLba = 48;   // 8 bytes, inclusive
inline constexpr size_t kGptHdrDiskGuid = 56;        // 16 bytes, mixed-endian GUID
inline constexpr size_t kGptHdrEntriesLba = 72;      // 8 bytes: first LBA of the entry array
inline constexpr size_t kGptHdrEntryCount = 80;      // 4 bytes
inline constexpr size_t kGptHdrEntrySize = 84;       // 4 bytes: 128 * 2^n
inline constexpr size_t kGptHdrEntriesCrc = 88;      // 4 bytes: CRC-32 of count * size bytes
inline constexpr size_t kGptHeaderMinSize = 92;

// ---- GPT partition entry (UEFI spec 5.3.3, table 5-6) --------------------------
inline constexpr size_t kGptEntryTypeGuid = 0;     // 16 bytes; all zero = unused entry
inline constexpr size_t kGptEntryUniqueGuid = 16;  // 16 bytes
inline constexpr size_t kGptEntryFirstLba = 32;    // 8 bytes
inline constexpr size_t kGptEntryLastLba = 40;     // 8 bytes, inclusive
inline constexpr size_t kGptEntryAttributes = 48;  // 8 bytes
inline constexpr size_t kGptEntryName = 56;        // 72 bytes: UTF-16LE, NUL-padded
inline constexpr size_t kGptEntryNameBytes = 72;
inline constexpr size_t kGptEntryMinSize = 128;

// An entry array larger than this is refused as corrupt (the spec's minimum is
// 16 KiB; real tables never exceed a few hundred KiB).
inline constexpr uint64_t kGptMaxEntryArrayBytes = 16ull << 20;

}  // namespace vdisk::partition
