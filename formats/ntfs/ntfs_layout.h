// On-disk layout of NTFS (version 3.x), from libyal's "New Technologies File
// System (NTFS)" document (sections named below as "libyal §…"), the Linux
// kernel's Documentation/filesystems/ntfs3.rst, and Microsoft's published
// structures (FILE_RECORD_SEGMENT_HEADER, ATTRIBUTE_RECORD_HEADER,
// REPARSE_DATA_BUFFER, [MS-XCA] for LZNT1, [MS-FSCC] for reparse tags and
// file attributes). Every field is little-endian; offsets are bytes from the
// start of the structure named in each block.
#pragma once

#include <cstdint>

namespace vdisk::ntfs {

// --- Volume header / boot sector (libyal "The volume header") --------------
inline constexpr uint32_t kBsOemId = 3;               // 8 bytes: "NTFS    "
inline constexpr uint32_t kBsBytesPerSector = 11;     // u16: 256..4096, power of two
inline constexpr uint32_t kBsSectorsPerCluster = 13;  // u8: 1..128, or 244..255 = 2^(256-n)
inline constexpr uint32_t kBsTotalSectors = 40;       // u64: sectors in the volume (the backup
                                                      // boot sector lies after them)
inline constexpr uint32_t kBsMftLcn = 48;             // u64: cluster of $MFT's VCN 0
inline constexpr uint32_t kBsMftMirrLcn = 56;         // u64: cluster of $MFTMirr's VCN 0
inline constexpr uint32_t kBsClustersPerRecord = 64;  // s8: >0 clusters, <0 2^-n bytes
inline constexpr uint32_t kBsClustersPerIndex = 68;   // s8: same encoding, index buffers
inline constexpr uint32_t kBsSerial = 72;             // u64: volume serial number
inline constexpr uint32_t kBsSignature = 510;         // 0x55 0xAA
inline constexpr uint32_t kBootSectorSize = 512;
inline constexpr char kNtfsOemId[] = "NTFS    ";
// BitLocker replaces the OEM id with "-FVE-FS-" (libyal "BitLocker Drive
// Encryption"): recognised and named, never decrypted.
inline constexpr char kBitLockerOemId[] = "-FVE-FS-";

// --- Multi-sector header and update sequence (libyal "The fix-up values") --
// FILE records and INDX buffers share it. The last u16 of every 512-byte
// stride on disk holds the update sequence number; the array holds the
// original values. The stride is 512 bytes whatever the sector size.
inline constexpr uint32_t kMsMagic = 0;      // 4 bytes: "FILE", "INDX" ("BAAD" = damaged)
inline constexpr uint32_t kMsUsaOffset = 4;  // u16: offset of the update sequence array
inline constexpr uint32_t kMsUsaCount = 6;   // u16: 1 + number of strides
inline constexpr uint32_t kFixupStride = 512;

// --- MFT entry header, FILE_RECORD_SEGMENT_HEADER (libyal "MFT entry header")
inline constexpr uint32_t kFrSequence = 16;        // u16: reuse count
inline constexpr uint32_t kFrLinkCount = 18;       // u16: names (DOS names included)
inline constexpr uint32_t kFrAttrsOffset = 20;     // u16: first attribute
inline constexpr uint32_t kFrFlags = 22;           // u16: kFrInUse | kFrDirectory
inline constexpr uint32_t kFrBytesInUse = 24;      // u32: used size of the record
inline constexpr uint32_t kFrBytesAllocated = 28;  // u32: record size
inline constexpr uint32_t kFrBaseRecord = 32;      // u64 file reference: 0 in a base record
inline constexpr uint32_t kFrHeaderSize = 42;      // minimum before the update sequence
inline constexpr uint16_t kFrInUse = 0x0001;
inline constexpr uint16_t kFrDirectory = 0x0002;  // FILE_NAME_INDEX_PRESENT
// A file reference: MFT entry number in the low 48 bits, sequence above.
inline constexpr uint64_t kRefRecordMask = 0x0000FFFFFFFFFFFFull;

// Fixed MFT entries (libyal "The metadata files").
inline constexpr uint64_t kRecMft = 0;
inline constexpr uint64_t kRecMftMirr = 1;
inline constexpr uint64_t kRecLogFile = 2;
inline constexpr uint64_t kRecVolume = 3;
inline constexpr uint64_t kRecRoot = 5;
inline constexpr uint64_t kRecSecure = 9;
inline constexpr uint64_t kRecExtend = 11;
inline constexpr uint64_t kFirstUserRecord = 16;  // entries 0-15 are reserved for the system

// --- Attribute header, ATTRIBUTE_RECORD_HEADER (libyal "MFT attribute header")
inline constexpr uint32_t kAtType = 0;         // u32: attribute type; 0xFFFFFFFF ends the list
inline constexpr uint32_t kAtLength = 4;       // u32: record length, 8-aligned
inline constexpr uint32_t kAtNonResident = 8;  // u8: 0 resident, 1 non-resident
inline constexpr uint32_t kAtNameLength = 9;   // u8: UTF-16 units
inline constexpr uint32_t kAtNameOffset = 10;  // u16: from the attribute start
inline constexpr uint32_t kAtFlags = 12;       // u16: kAfCompressionMask | kAfEncrypted | kAfSparse
inline constexpr uint32_t kAtInstance = 14;    // u16: attribute identifier
// Resident form (libyal "Resident MFT attribute"), from the attribute start.
inline constexpr uint32_t kAtValueLength = 16;  // u32
inline constexpr uint32_t kAtValueOffset = 20;  // u16
inline constexpr uint32_t kAtResidentHeaderSize = 24;
// Non-resident form (libyal "Non-resident MFT attribute"), from the attribute start.
inline constexpr uint32_t kAtLowestVcn = 16;      // u64
inline constexpr uint32_t kAtHighestVcn = 24;     // u64 (-1 when empty)
inline constexpr uint32_t kAtRunsOffset = 32;     // u16: mapping pairs
inline constexpr uint32_t kAtCompUnit = 34;       // u16: log2 clusters per compression unit
inline constexpr uint32_t kAtAllocatedSize = 40;  // u64 bytes (first fragment only)
inline constexpr uint32_t kAtDataSize = 48;       // u64 bytes (first fragment only)
inline constexpr uint32_t kAtValidSize = 56;      // u64 bytes: past it the data reads as zeros
inline constexpr uint32_t kAtNonResidentHeaderSize = 64;
inline constexpr uint16_t kAfCompressionMask = 0x00FF;  // 1 = LZNT1
inline constexpr uint16_t kAfEncrypted = 0x4000;
inline constexpr uint16_t kAfSparse = 0x8000;

// Attribute types (libyal "The attribute types").
inline constexpr uint32_t kAttrStandardInformation = 0x10;
inline constexpr uint32_t kAttrAttributeList = 0x20;
inline constexpr uint32_t kAttrFileName = 0x30;
inline constexpr uint32_t kAttrSecurityDescriptor = 0x50;
inline constexpr uint32_t kAttrVolumeName = 0x60;
inline constexpr uint32_t kAttrVolumeInformation = 0x70;
inline constexpr uint32_t kAttrData = 0x80;
inline constexpr uint32_t kAttrIndexRoot = 0x90;
inline constexpr uint32_t kAttrIndexAllocation = 0xA0;
inline constexpr uint32_t kAttrBitmap = 0xB0;
inline constexpr uint32_t kAttrReparsePoint = 0xC0;
inline constexpr uint32_t kAttrLoggedUtilityStream = 0x100;  // "$EFS" marks an encrypted file
inline constexpr uint32_t kAttrEnd = 0xFFFFFFFF;

// --- $STANDARD_INFORMATION (libyal "The standard information attribute") ---
inline constexpr uint32_t kSiCreationTime = 0;     // FILETIME (100 ns since 1601, UTC)
inline constexpr uint32_t kSiModifiedTime = 8;     // FILETIME: data last written
inline constexpr uint32_t kSiMftChangeTime = 16;   // FILETIME: MFT entry last changed
inline constexpr uint32_t kSiAccessTime = 24;      // FILETIME
inline constexpr uint32_t kSiFileAttributes = 32;  // u32: kFa* flags
inline constexpr uint32_t kSiSizeV1 = 48;
inline constexpr uint32_t kSiOwnerId = 48;     // u32 (v3.0+)
inline constexpr uint32_t kSiSecurityId = 52;  // u32 (v3.0+): key into $Secure:$SII
inline constexpr uint32_t kSiSizeV3 = 72;

// File attribute flags ([MS-FSCC] 2.6, libyal "File attribute flags").
inline constexpr uint32_t kFaReadOnly = 0x0001;
inline constexpr uint32_t kFaHidden = 0x0002;
inline constexpr uint32_t kFaSystem = 0x0004;
inline constexpr uint32_t kFaArchive = 0x0020;
inline constexpr uint32_t kFaTemporary = 0x0100;
inline constexpr uint32_t kFaSparse = 0x0200;
inline constexpr uint32_t kFaReparsePoint = 0x0400;
inline constexpr uint32_t kFaCompressed = 0x0800;
inline constexpr uint32_t kFaOffline = 0x1000;
inline constexpr uint32_t kFaNotContentIndexed = 0x2000;
inline constexpr uint32_t kFaEncrypted = 0x4000;

// --- $ATTRIBUTE_LIST entry (libyal "The attribute list entry header") ------
inline constexpr uint32_t kAlType = 0;        // u32
inline constexpr uint32_t kAlLength = 4;      // u16: entry length, 8-aligned
inline constexpr uint32_t kAlNameLength = 6;  // u8: UTF-16 units
inline constexpr uint32_t kAlNameOffset = 7;  // u8: from the entry start
inline constexpr uint32_t kAlLowestVcn = 8;   // u64
inline constexpr uint32_t kAlReference = 16;  // u64 file reference of the holding record
inline constexpr uint32_t kAlInstance = 24;   // u16
inline constexpr uint32_t kAlHeaderSize = 26;

// --- $FILE_NAME (libyal "The file name attribute") --------------------------
inline constexpr uint32_t kFnParent = 0;           // u64 file reference
inline constexpr uint32_t kFnCreationTime = 8;     // FILETIME (updated only on rename)
inline constexpr uint32_t kFnDataSize = 48;        // u64 (not always current)
inline constexpr uint32_t kFnFileAttributes = 56;  // u32
inline constexpr uint32_t kFnReparseTag = 60;      // u32 when kFaReparsePoint
inline constexpr uint32_t kFnNameLength = 64;      // u8: UTF-16 units
inline constexpr uint32_t kFnNamespace = 65;       // u8: kNs*
inline constexpr uint32_t kFnName = 66;            // UTF-16LE
inline constexpr uint8_t kNsPosix = 0;
inline constexpr uint8_t kNsWin32 = 1;
inline constexpr uint8_t kNsDos = 2;  // the 8.3 alias: never shown
inline constexpr uint8_t kNsWin32AndDos = 3;

// --- $VOLUME_INFORMATION (libyal "The volume information attribute") -------
inline constexpr uint32_t kViMajor = 8;   // u8
inline constexpr uint32_t kViMinor = 9;   // u8
inline constexpr uint32_t kViFlags = 10;  // u16: kVolDirty …
inline constexpr uint16_t kVolDirty = 0x0001;

// --- Index (libyal "The index") ---------------------------------------------
// $INDEX_ROOT value: the index root header, then an index node header.
inline constexpr uint32_t kIrIndexedType = 0;        // u32: 0x30 for $I30
inline constexpr uint32_t kIrCollation = 4;          // u32
inline constexpr uint32_t kIrBlockSize = 8;          // u32: index buffer bytes
inline constexpr uint32_t kIrClustersPerBlock = 12;  // u8 (u32 slot)
inline constexpr uint32_t kIrNodeHeader = 16;
// INDX buffer: multi-sector header, then the index node header at 24.
inline constexpr uint32_t kIxVcn = 16;  // u64: this buffer's VCN
inline constexpr uint32_t kIxNodeHeader = 24;
// Index node header, from its own start.
inline constexpr uint32_t kInEntriesOffset = 0;    // u32: first entry
inline constexpr uint32_t kInIndexLength = 4;      // u32: used bytes, from the node header
inline constexpr uint32_t kInAllocatedLength = 8;  // u32
inline constexpr uint32_t kInFlags = 12;           // u32: 1 = has children
inline constexpr uint32_t kInNodeHeaderSize = 16;
// Index entry (libyal "The index value").
inline constexpr uint32_t kIeReference = 0;   // u64 file reference ($I30)
inline constexpr uint32_t kIeLength = 8;      // u16: entry length, 8-aligned
inline constexpr uint32_t kIeKeyLength = 10;  // u16
inline constexpr uint32_t kIeFlags = 12;      // u32: kIeHasChild | kIeLast
inline constexpr uint32_t kIeKey = 16;        // key ($FILE_NAME for $I30)
inline constexpr uint32_t kIeHeaderSize = 16;
inline constexpr uint32_t kIeHasChild = 1;  // the child VCN is the entry's last 8 bytes
inline constexpr uint32_t kIeLast = 2;      // no key: ends the node
// $Secure:$SII value (libyal "The security descriptor identifier index value"):
// after the 16-byte entry header and the 4-byte key.
inline constexpr uint32_t kSiiSdsOffset = 12;  // u64, from the value start (entry + 20)
inline constexpr uint32_t kSiiSdsSize = 20;    // u32
// $SDS entry: a 20-byte header then the self-relative security descriptor.
inline constexpr uint32_t kSdsHeaderSize = 20;
// Self-relative SECURITY_DESCRIPTOR ([MS-DTYP] 2.4.6).
inline constexpr uint32_t kSdOwnerOffset = 4;  // u32: from the descriptor start; 0 = none

// --- Reparse points (libyal "The reparse point", [MS-FSCC] 2.1.2) ---------
inline constexpr uint32_t kRpTag = 0;         // u32
inline constexpr uint32_t kRpDataLength = 4;  // u16
inline constexpr uint32_t kRpData = 8;
inline constexpr uint32_t kTagMountPoint = 0xA0000003;  // junction or volume mount point
inline constexpr uint32_t kTagSymlink = 0xA000000C;
inline constexpr uint32_t kTagWof = 0x80000017;  // Windows Overlay Filter (system compression)
inline constexpr uint32_t kTagDedup = 0x80000013;
// Mount point / symlink buffers, from kRpData: substitute name offset/length,
// print name offset/length (u16 each, bytes, relative to the path buffer);
// symlinks add u32 flags before the path buffer.
inline constexpr uint32_t kRpSubstOffset = 0;
inline constexpr uint32_t kRpSubstLength = 2;
inline constexpr uint32_t kRpPrintOffset = 4;
inline constexpr uint32_t kRpPrintLength = 6;
inline constexpr uint32_t kRpSymlinkFlags = 8;
inline constexpr uint32_t kRpMountPathBuffer = 8;
inline constexpr uint32_t kRpSymlinkPathBuffer = 12;
inline constexpr uint32_t kSymlinkRelative = 1;
// WOF reparse data, from kRpData: WOF_EXTERNAL_INFO {u32 version, u32
// provider (2 = file)}, then FILE_PROVIDER_EXTERNAL_INFO_V1 {u32 version,
// u32 algorithm}. The compressed bytes live in the "WofCompressedData" stream.
inline constexpr uint32_t kWofProvider = 4;
inline constexpr uint32_t kWofAlgorithm = 12;
inline constexpr uint32_t kWofProviderFile = 2;

// Interix special files as ntfs-3g writes them (ntfs-3g's documentation:
// "Interix-style" symlinks and devices): a file with the system attribute
// whose data begins with one of these 8-byte magics.
inline constexpr char kIntxSymlink[] = "IntxLNK\1";  // then the target, UTF-16LE
inline constexpr char kIntxChar[] = "IntxCHR";       // 8th byte 0, then u64 major, u64 minor
inline constexpr char kIntxBlock[] = "IntxBLK";

// --- LZNT1 ([MS-XCA] 2.5, libyal "LZNT1 compression method") ----------------
// A compression unit (2^kAtCompUnit clusters, normally 16) is stored in fewer
// clusters than it spans when it compresses; the rest of its VCNs are sparse.
// The data is a series of chunks of up to 4096 uncompressed bytes, each with
// a u16 header: bits 0-11 = stored size - 3, bit 15 = compressed.
inline constexpr uint32_t kLznt1ChunkSize = 4096;
inline constexpr uint16_t kLznt1Compressed = 0x8000;
inline constexpr uint16_t kLznt1SizeMask = 0x0FFF;

}  // namespace vdisk::ntfs
