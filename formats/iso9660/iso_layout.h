// ISO 9660 on-disk layout: every field vdisk reads or writes, with its offset,
// size, byte order and the section of the specification that defines it.
//   ECMA-119 4th edition (2019)        — volume descriptors, directory records,
//                                        path tables (sections 8, 9)
//   Joliet specification (1995)        — supplementary descriptor escapes, UCS-2
//   IEEE P1281 SUSP 1.12               — system use entries SP CE ER ST PD
//   IEEE P1282 RRIP 1.12               — PX PN SL NM CL PL RE TF
//   El Torito 1.0                      — boot record, boot catalog
// "both" = both-byte order: the little-endian copy followed by the big-endian
// copy (ECMA-119 7.2.3 / 7.3.3); readers take the little-endian half.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdisk::iso9660 {

inline constexpr uint32_t kSectorSize = 2048;       // logical block size (ECMA-119 6.1.2)
inline constexpr uint64_t kSystemAreaSectors = 16;  // LBA 0..15 (ECMA-119 6.2.1)
inline constexpr uint64_t kFirstDescriptorOffset = 16 * 2048;  // 0x8000
inline constexpr char kStandardId[] = "CD001";                 // at byte 1 of every descriptor

// ---- Volume descriptor (ECMA-119 8.1), 2048 bytes each from LBA 16 ----
namespace vd {
inline constexpr size_t kType = 0;       // 1 byte
inline constexpr size_t kStdId = 1;      // 5 bytes "CD001"
inline constexpr size_t kVersion = 6;    // 1 byte, 1
inline constexpr uint8_t kTypeBoot = 0;  // boot record (El Torito)
inline constexpr uint8_t kTypePrimary = 1;
inline constexpr uint8_t kTypeSupplementary = 2;  // Joliet lives here
inline constexpr uint8_t kTypePartition = 3;
inline constexpr uint8_t kTypeTerminator = 255;
// Primary / supplementary (ECMA-119 8.4 / 8.5)
inline constexpr size_t kFlags = 7;              // 1 byte (SVD volume flags)
inline constexpr size_t kSystemId = 8;           // 32 a-/UCS-2 characters
inline constexpr size_t kVolumeId = 40;          // 32 d-/UCS-2 characters
inline constexpr size_t kVolumeSpaceSize = 80;   // both32, logical blocks
inline constexpr size_t kEscapes = 88;           // 32 bytes (SVD: "%/@" "%/C" "%/E" = Joliet 1/2/3)
inline constexpr size_t kVolumeSetSize = 120;    // both16
inline constexpr size_t kVolumeSeqNumber = 124;  // both16
inline constexpr size_t kLogicalBlockSize = 128;   // both16, bytes
inline constexpr size_t kPathTableSize = 132;      // both32, bytes
inline constexpr size_t kLPathTable = 140;         // le32 LBA of the type L path table
inline constexpr size_t kLPathTableOpt = 144;      // le32, optional copy
inline constexpr size_t kMPathTable = 148;         // be32 LBA of the type M path table
inline constexpr size_t kMPathTableOpt = 152;      // be32, optional copy
inline constexpr size_t kRootRecord = 156;         // 34-byte directory record
inline constexpr size_t kVolumeSetId = 190;        // 128 bytes
inline constexpr size_t kPublisherId = 318;        // 128 bytes
inline constexpr size_t kPreparerId = 446;         // 128 bytes
inline constexpr size_t kApplicationId = 574;      // 128 bytes
inline constexpr size_t kCopyrightFile = 702;      // 37 bytes
inline constexpr size_t kAbstractFile = 739;       // 37 bytes
inline constexpr size_t kBibliographicFile = 776;  // 37 bytes
inline constexpr size_t kCreationDate = 813;       // 17-byte date (8.4.26.1)
inline constexpr size_t kModificationDate = 830;
inline constexpr size_t kExpirationDate = 847;
inline constexpr size_t kEffectiveDate = 864;
inline constexpr size_t kFileStructureVersion = 881;  // 1 byte, 1
// Boot record (El Torito 2.0): "EL TORITO SPECIFICATION" padded with zeros.
inline constexpr size_t kBootSystemId = 7;     // 32 bytes
inline constexpr size_t kBootCatalogLba = 71;  // le32 (0x47)
inline constexpr char kElToritoId[] = "EL TORITO SPECIFICATION";
}  // namespace vd

// 17-byte volume date (ECMA-119 8.4.26.1): "YYYYMMDDHHMMSScc" digits, then the
// offset from UTC in 15-minute units (signed byte).
inline constexpr size_t kVolumeDateSize = 17;

// ---- Directory record (ECMA-119 9.1) ----
namespace dr {
inline constexpr size_t kLength = 0;  // 1 byte, whole record (even)
inline constexpr size_t kExtAttrLength =
    1;                                     // 1 byte, blocks of extended attributes before the data
inline constexpr size_t kExtent = 2;       // both32 LBA
inline constexpr size_t kDataLength = 10;  // both32 bytes
inline constexpr size_t kDate =
    18;  // 7 bytes: years since 1900, month, day, h, m, s, UTC offset/15 min
inline constexpr size_t kFlags = 25;       // 1 byte
inline constexpr size_t kUnitSize = 26;    // 1 byte (interleaving, unsupported when != 0)
inline constexpr size_t kGapSize = 27;     // 1 byte
inline constexpr size_t kVolumeSeq = 28;   // both16
inline constexpr size_t kNameLength = 32;  // 1 byte
inline constexpr size_t kName = 33;        // name, then one pad byte when its length is even,
                                           // then the system use area (SUSP) to kLength
inline constexpr size_t kFixedSize = 33;
inline constexpr uint8_t kFlagHidden = 0x01;
inline constexpr uint8_t kFlagDirectory = 0x02;
inline constexpr uint8_t kFlagAssociated = 0x04;
inline constexpr uint8_t kFlagRecord = 0x08;
inline constexpr uint8_t kFlagProtection = 0x10;
inline constexpr uint8_t kFlagMultiExtent = 0x80;  // not the final record of the file (9.1.6)
// Largest extent a writer uses: 4 GiB - 2 KiB keeps every extent block aligned.
inline constexpr uint32_t kMaxExtentBytes = 0xFFFFF800u;
}  // namespace dr

// ---- Path table record (ECMA-119 9.4) ----
namespace pt {
inline constexpr size_t kNameLength = 0;     // 1 byte
inline constexpr size_t kExtAttrLength = 1;  // 1 byte
inline constexpr size_t kExtent = 2;         // 4 bytes, LE in the L table, BE in the M table
inline constexpr size_t kParent = 6;         // 2 bytes, 1-based directory number, same order
inline constexpr size_t kName = 8;           // name, one pad byte when its length is odd
}  // namespace pt

// ---- SUSP (IEEE P1281 1.12, section 4/5) ----
// An entry: signature (2 bytes), length (1, whole entry), version (1), data.
namespace susp {
inline constexpr size_t kHeader = 4;
// SP (5.3): check bytes 0xBE 0xEF at 4, LEN_SKP at 6; only in the "." record of the root.
inline constexpr size_t kSpLength = 7;
// CE (5.1): block both32 at 4, offset both32 at 12, length both32 at 20.
inline constexpr size_t kCeLength = 28;
// ER (5.5): LEN_ID 4, LEN_DES 5, LEN_SRC 6, EXT_VER 7, then id, descriptor, source.
inline constexpr size_t kErFixed = 8;
}  // namespace susp

// ---- RRIP (IEEE P1282 1.12, section 4.1) ----
namespace rr {
// PX: mode both32 @4, links @12, uid @20, gid @28, (1.12) serial @36; length 36 or 44.
inline constexpr size_t kPxLength110 = 36;
inline constexpr size_t kPxLength112 = 44;
// PN: device high both32 @4, low @12; length 20.
inline constexpr size_t kPnLength = 20;
// SL: flags @4 (bit 0 CONTINUE), component records @5: flags, length, content.
//     component flags: 0x01 CONTINUE, 0x02 CURRENT, 0x04 PARENT, 0x08 ROOT.
inline constexpr uint8_t kSlContinue = 0x01;
inline constexpr uint8_t kSlCurrent = 0x02;
inline constexpr uint8_t kSlParent = 0x04;
inline constexpr uint8_t kSlRoot = 0x08;
// NM: flags @4 (0x01 CONTINUE, 0x02 CURRENT, 0x04 PARENT), name @5.
inline constexpr uint8_t kNmContinue = 0x01;
inline constexpr uint8_t kNmCurrent = 0x02;
inline constexpr uint8_t kNmParent = 0x04;
// CL / PL: LBA both32 @4, length 12. RE: length 4.
inline constexpr size_t kClLength = 12;
// TF: flags @4, then 7-byte (or 17-byte with LONG_FORM) stamps in this order.
inline constexpr uint8_t kTfCreation = 0x01;
inline constexpr uint8_t kTfModify = 0x02;
inline constexpr uint8_t kTfAccess = 0x04;
inline constexpr uint8_t kTfAttributes = 0x08;
inline constexpr uint8_t kTfBackup = 0x10;
inline constexpr uint8_t kTfExpiration = 0x20;
inline constexpr uint8_t kTfEffective = 0x40;
inline constexpr uint8_t kTfLongForm = 0x80;
// POSIX file type bits carried in PX mode.
inline constexpr uint32_t kIfMt = 0170000, kIfSock = 0140000, kIfLnk = 0120000, kIfReg = 0100000,
                          kIfBlk = 0060000, kIfDir = 0040000, kIfChr = 0020000, kIfIfo = 0010000;
}  // namespace rr

// ---- El Torito boot catalog (El Torito 1.0, section 2) — 32-byte entries ----
namespace et {
inline constexpr size_t kEntrySize = 32;
// Validation entry: header id 1 @0, platform @1, id string @4 (24), checksum le16 @28
// (all 16 le16 words sum to 0), 0x55 @30, 0xAA @31.
inline constexpr size_t kPlatform = 1;
inline constexpr size_t kIdString = 4;
inline constexpr size_t kChecksum = 28;
// Initial/default and section entries: indicator @0 (0x88 bootable, 0x00 not),
// media @1 (0 no emulation, 1/2/3 1.2/1.44/2.88 MB floppy, 4 hard disk),
// load segment le16 @2, system type @4, sector count le16 @6 (512-byte
// virtual sectors), load RBA le32 @8.
inline constexpr size_t kMedia = 1;
inline constexpr size_t kLoadSegment = 2;
inline constexpr size_t kSystemType = 4;
inline constexpr size_t kSectorCount = 6;
inline constexpr size_t kLoadRba = 8;
// Section header: 0x90 (more follow) / 0x91 (last) @0, platform @1, entry count le16 @2.
inline constexpr size_t kSectionCount = 2;
inline constexpr uint8_t kBootable = 0x88;
inline constexpr uint8_t kHeaderMore = 0x90;
inline constexpr uint8_t kHeaderLast = 0x91;
inline constexpr uint8_t kExtensionEntry = 0x44;
}  // namespace et

}  // namespace vdisk::iso9660
