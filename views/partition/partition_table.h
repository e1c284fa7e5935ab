// Partition tables of a virtual disk: MBR (primary, extended and logical
// partitions through the EBR chain) and GPT (with its protective MBR), as
// Linux numbers them, so "p5" here is what the kernel calls sda5.
//
// A partition is a SliceDevice over the disk (open_partition), so FAT/ext
// trees and the FUSE driver read partitions like any other block device.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/json.h"

namespace vdisk::partition {

enum class Scheme : uint8_t { kNone, kMbr, kGpt };
const char* scheme_name(Scheme s);  // "none", "mbr", "gpt"

enum class PartitionKind : uint8_t {
  kPrimary,   // an MBR primary slot holding data
  kExtended,  // an MBR primary slot holding the EBR chain (numbered, no data)
  kLogical,   // a partition found through the EBR chain
  kGpt,       // a GPT entry
};
const char* kind_name(PartitionKind k);

struct Partition {
  // Linux numbering: MBR primaries by slot 1-4 (empty slots leave gaps),
  // logicals 5, 6, … in chain order; GPT entry i is number i + 1.
  uint32_t number = 0;
  PartitionKind kind = PartitionKind::kPrimary;
  uint64_t offset = 0;  // bytes from the start of the disk
  uint64_t length = 0;  // bytes (clipped to the disk's end, see warnings)
  // MBR only.
  uint8_t mbr_type = 0;
  bool bootable = false;
  // GPT only (GUIDs in the canonical 8-4-4-4-12 text form, upper case).
  std::string type_guid;
  std::string unique_guid;
  std::string name;  // UTF-8 from the UTF-16LE entry name
  uint64_t attributes = 0;

  // Whether this partition holds data (an extended container does not).
  bool has_data() const { return kind != PartitionKind::kExtended; }
};

struct PartitionTable {
  Scheme scheme = Scheme::kNone;
  uint32_t sector_size = 512;
  std::string disk_guid;            // GPT
  uint32_t mbr_disk_signature = 0;  // MBR
  // Which GPT header was used: "primary" or "backup" (empty for MBR).
  std::string gpt_header;
  // In number order.
  std::vector<Partition> partitions;
  // Damage that did not stop reading (a looping EBR chain, a bad primary GPT
  // header, a partition running past the disk's end), each one line naming
  // the disk and the byte offset.
  std::vector<std::string> warnings;

  // What the disk holds in a partition (a file system's name, an encrypted
  // volume's), or "" when nothing is recognised; given by the caller, which
  // knows the registry.
  using ContentsOf = std::function<std::string(const Partition&)>;

  // {"scheme", "sector_size", ["disk_guid", "gpt_header"] (GPT) or
  //  ["disk_signature"] ("0x1234abcd", MBR), "partitions": [{"number",
  //  "kind", "start", "size" (bytes), "type_code" ("0x83" or the type GUID),
  //  "type_name", ["bootable"] (MBR), ["guid", "label", "attributes"] (GPT),
  //  ["contents"] (with `contents`: a string, null when nothing is
  //  recognised)}], "warnings": [...]}.
  Json to_json(const ContentsOf& contents = {}) const;
};

// Reads the partition table of `disk`; `label` names the disk in messages.
// Returns scheme kNone when there is no partition table (no 0x55AA
// signature, or boot sector code such as a FAT volume's instead of an MBR).
// A GPT is read when the MBR is protective (type 0xEE) or, with a warning,
// when the MBR is missing but a valid GPT header is at LBA 1. The backup GPT
// header and entries are used, with a warning, when the primary ones fail
// their CRC-32. Throws Error(kCorrupt) naming the offset when a GPT is
// announced but neither copy is valid. Never loops: EBR chains stop at a
// revisited sector or after kMaxLogicalPartitions.
PartitionTable read_partition_table(const BlockDevice& disk, const std::string& label);

// The partition as a device of its own (a SliceDevice labelled "LABEL pN").
BlockDevicePtr open_partition(BlockDevicePtr disk, const Partition& p, const std::string& label);

}  // namespace vdisk::partition
