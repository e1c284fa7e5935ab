#include "views/partition/partition_table.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/guid.h"
#include "formats/core/hex.h"
#include "formats/core/unicode.h"
#include "views/partition/partition_layout.h"
#include "views/partition/partition_types.h"

namespace vdisk::partition {

const char* scheme_name(Scheme s) {
  switch (s) {
    case Scheme::kNone:
      return "none";
    case Scheme::kMbr:
      return "mbr";
    case Scheme::kGpt:
      return "gpt";
  }
  return "?";
}

const char* kind_name(PartitionKind k) {
  switch (k) {
    case PartitionKind::kPrimary:
      return "primary";
    case PartitionKind::kExtended:
      return "extended";
    case PartitionKind::kLogical:
      return "logical";
    case PartitionKind::kGpt:
      return "gpt";
  }
  return "?";
}

namespace {

// GPT GUIDs are stored mixed-endian (UEFI specification appendix A) and shown
// in upper case, as the UEFI spec and sgdisk write them.
Guid load_gpt_guid(const uint8_t* p) {
  return Guid::decode(p, GuidByteOrder::kMixedEndian);
}
std::string gpt_guid_text(const uint8_t* p) {
  return load_gpt_guid(p).to_string({.upper_case = true});
}

}  // namespace

Json PartitionTable::to_json(const ContentsOf& contents) const {
  Json j = Json::object();
  j.set("scheme", scheme_name(scheme));
  j.set("sector_size", sector_size);
  if (scheme == Scheme::kGpt) {
    j.set("disk_guid", disk_guid);
    j.set("gpt_header", gpt_header);
  } else if (scheme == Scheme::kMbr) {
    char sig[16];
    std::snprintf(sig, sizeof sig, "0x%08x", mbr_disk_signature);
    j.set("disk_signature", std::string(sig));
  }
  Json parts = Json::array();
  for (const Partition& p : partitions) {
    Json pj = Json::object();
    pj.set("number", p.number);
    pj.set("kind", kind_name(p.kind));
    pj.set("start", p.offset);
    pj.set("size", p.length);
    if (p.kind == PartitionKind::kGpt) {
      pj.set("type_code", p.type_guid);
      pj.set("type_name", gpt_type_name(p.type_guid));
      pj.set("guid", p.unique_guid);
      pj.set("label", p.name);
      pj.set("attributes", p.attributes);
    } else {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", p.mbr_type);
      pj.set("type_code", std::string(code));
      pj.set("type_name", mbr_type_name(p.mbr_type));
      pj.set("bootable", p.bootable);
    }
    if (contents) {
      const std::string c = p.has_data() ? contents(p) : "";
      pj.set("contents", c.empty() ? Json() : Json(c));
    }
    parts.push(std::move(pj));
  }
  j.set("partitions", std::move(parts));
  Json w = Json::array();
  for (const std::string& s : warnings) w.push(s);
  j.set("warnings", std::move(w));
  return j;
}

BlockDevicePtr open_partition(BlockDevicePtr disk, const Partition& p, const std::string& label) {
  return std::make_shared<SliceDevice>(std::move(disk), p.offset, p.length,
                                       label + " p" + std::to_string(p.number));
}

namespace {

struct MbrEntry {
  uint8_t boot = 0;
  uint8_t type = 0;
  uint32_t start = 0;  // LBA (relative for EBR entries)
  uint32_t count = 0;
};

MbrEntry decode_mbr_entry(const uint8_t* sector, size_t index) {
  const uint8_t* e = sector + kMbrEntriesOffset + index * kMbrEntrySize;
  MbrEntry m;
  m.boot = e[kMbrEntryBootIndicator];
  m.type = e[kMbrEntryType];
  m.start = load_le32(e + kMbrEntryStartLba);
  m.count = load_le32(e + kMbrEntrySizeLba);
  return m;
}

bool has_boot_signature(const uint8_t* sector) {
  return sector[kMbrSignatureOffset] == kMbrSignature0 &&
         sector[kMbrSignatureOffset + 1] == kMbrSignature1;
}

std::string utf16le_to_utf8(const uint8_t* p, size_t bytes) {
  return utf16_to_utf8(p, bytes, ByteOrder::kLittle);
}

class TableReader final {
 public:
  TableReader(const BlockDevice& disk, const std::string& label)
      : disk_(disk), label_(label), size_(disk.size()) {}

  PartitionTable read() {
    table_.sector_size = disk_.sector_size();
    if (table_.sector_size < 512 || table_.sector_size > 65536) table_.sector_size = 512;
    ss_ = table_.sector_size;
    if (size_ < kMbrSize) return table_;
    std::vector<uint8_t> mbr(kMbrSize);
    disk_.read(0, mbr.data(), mbr.size());

    if (!has_boot_signature(mbr.data())) {
      // No MBR at all. A GPT whose protective MBR was wiped is still worth
      // showing, but say that Linux would not see it.
      if (gpt_signature_at(1)) {
        table_.warnings.push_back(format_error(
            label_, 0, "no MBR signature (0x55AA) but a GPT header at LBA 1: using the GPT"));
        read_gpt();
      }
      return table_;
    }
    // A boot indicator other than 0x00/0x80 means the sector is boot code (a
    // FAT or NTFS boot sector), not a partition table: Linux decides the same.
    for (size_t i = 0; i < kMbrEntryCount; ++i) {
      uint8_t b = decode_mbr_entry(mbr.data(), i).boot;
      if (b != 0x00 && b != 0x80) return table_;
    }
    for (size_t i = 0; i < kMbrEntryCount; ++i) {
      if (decode_mbr_entry(mbr.data(), i).type == kMbrTypeGptProtective) {
        read_gpt();
        return table_;
      }
    }
    read_mbr(mbr.data());
    return table_;
  }

 private:
  uint64_t sector_count() const { return size_ / ss_; }

  bool gpt_signature_at(uint64_t lba) {
    if ((lba + 1) * ss_ > size_) return false;
    uint8_t sig[8];
    disk_.read(lba * ss_, sig, sizeof sig);
    return std::memcmp(sig, kGptSignature, sizeof sig) == 0;
  }

  // Adds a partition, clipping it to the disk's end as Linux does ("extends
  // beyond EOD, truncated") and dropping it when it starts past the end.
  void add(Partition p, uint64_t first_lba, uint64_t sectors, uint64_t table_offset) {
    if (first_lba >= sector_count() || sectors == 0) {
      table_.warnings.push_back(
          format_error(label_, table_offset,
                       "partition " + std::to_string(p.number) + " starts at sector " +
                           std::to_string(first_lba) + ", past the disk's end (" +
                           std::to_string(sector_count()) + " sectors): ignored"));
      return;
    }
    uint64_t avail = sector_count() - first_lba;
    if (sectors > avail) {
      table_.warnings.push_back(format_error(
          label_, table_offset,
          "partition " + std::to_string(p.number) + " of " + std::to_string(sectors) +
              " sectors runs past the disk's end: truncated to " + std::to_string(avail)));
      sectors = avail;
    }
    p.offset = first_lba * ss_;
    p.length = sectors * ss_;
    table_.partitions.push_back(std::move(p));
  }

  void read_mbr(const uint8_t* mbr) {
    table_.scheme = Scheme::kMbr;
    table_.mbr_disk_signature = load_le32(mbr + kMbrDiskSignatureOffset);
    std::vector<MbrEntry> extended;
    for (size_t i = 0; i < kMbrEntryCount; ++i) {
      MbrEntry e = decode_mbr_entry(mbr, i);
      if (e.count == 0) continue;  // Linux keys on the size, not the type
      Partition p;
      p.number = static_cast<uint32_t>(i + 1);
      p.kind = is_extended_type(e.type) ? PartitionKind::kExtended : PartitionKind::kPrimary;
      p.mbr_type = e.type;
      p.bootable = e.boot == 0x80;
      add(std::move(p), e.start, e.count, kMbrEntriesOffset + i * kMbrEntrySize);
      if (is_extended_type(e.type)) extended.push_back(e);
    }
    uint32_t next_number = 5;
    for (const MbrEntry& ext : extended) read_ebr_chain(ext.start, ext.count, next_number);
  }

  // Walks the EBR chain of the extended partition at [ext_start, +ext_count).
  void read_ebr_chain(uint64_t ext_start, uint64_t ext_count, uint32_t& next_number) {
    std::set<uint64_t> visited;
    uint64_t ebr_lba = ext_start;
    std::vector<uint8_t> sector(ss_);
    for (size_t hops = 0;; ++hops) {
      const uint64_t ebr_off = ebr_lba * ss_;
      if (hops >= kMaxLogicalPartitions) {
        table_.warnings.push_back(format_error(
            label_, ebr_off,
            "EBR chain longer than " + std::to_string(kMaxLogicalPartitions) + " links: stopped"));
        return;
      }
      if (!visited.insert(ebr_lba).second) {
        table_.warnings.push_back(format_error(
            label_, ebr_off,
            "EBR chain loops back to sector " + std::to_string(ebr_lba) + ": stopped"));
        return;
      }
      if (ebr_lba >= sector_count()) {
        table_.warnings.push_back(format_error(label_, ebr_off,
                                               "EBR at sector " + std::to_string(ebr_lba) +
                                                   " lies past the disk's end: chain stopped"));
        return;
      }
      disk_.read(ebr_off, sector.data(), ss_);
      if (!has_boot_signature(sector.data())) {
        // An empty extended partition (no EBR written yet) is normal only for
        // the first link; later links always carry the signature.
        if (hops > 0) {
          table_.warnings.push_back(format_error(label_, ebr_off + kMbrSignatureOffset,
                                                 "EBR has no 0x55AA signature: chain stopped"));
        }
        return;
      }
      // Data partitions first: by convention entry 0, but DR-DOS and OS/2
      // have used the others; entries 2 and 3 often hold garbage, so they
      // count only when they fit inside the extended partition.
      for (size_t i = 0; i < kMbrEntryCount; ++i) {
        MbrEntry e = decode_mbr_entry(sector.data(), i);
        if (e.count == 0 || is_extended_type(e.type)) continue;
        uint64_t first = ebr_lba + e.start;
        if (i >= 2 && (first < ext_start || first + e.count > ext_start + ext_count)) {
          continue;
        }
        Partition p;
        p.number = next_number++;
        p.kind = PartitionKind::kLogical;
        p.mbr_type = e.type;
        p.bootable = e.boot == 0x80;
        add(std::move(p), first, e.count, ebr_off + kMbrEntriesOffset + i * kMbrEntrySize);
      }
      // Then the link: the first extended entry, relative to the extended
      // partition's start.
      std::optional<MbrEntry> link;
      for (size_t i = 0; i < kMbrEntryCount && !link; ++i) {
        MbrEntry e = decode_mbr_entry(sector.data(), i);
        if (e.count != 0 && is_extended_type(e.type)) link = e;
      }
      if (!link) return;
      ebr_lba = ext_start + link->start;
    }
  }

  struct GptHeader {
    uint64_t lba = 0;
    uint64_t alternate_lba = 0;
    uint64_t first_usable = 0;
    uint64_t last_usable = 0;
    uint64_t entries_lba = 0;
    uint32_t entry_count = 0;
    uint32_t entry_size = 0;
    uint32_t entries_crc = 0;
    std::string disk_guid;
    std::vector<uint8_t> entries;
  };

  // Reads and validates the header at `lba` and its entry array. Returns the
  // reason when it is not valid.
  std::optional<GptHeader> read_gpt_header(uint64_t lba, std::string& why, bool& header_ok) {
    header_ok = false;
    const uint64_t off = lba * ss_;
    if (lba >= sector_count()) {
      why = "header sector " + std::to_string(lba) + " is past the disk's end";
      return std::nullopt;
    }
    std::vector<uint8_t> h(ss_);
    disk_.read(off, h.data(), ss_);
    if (std::memcmp(h.data() + kGptHdrSignature, kGptSignature, 8) != 0) {
      why = "no \"EFI PART\" signature";
      return std::nullopt;
    }
    uint32_t hsize = load_le32(h.data() + kGptHdrHeaderSize);
    if (hsize < kGptHeaderMinSize || hsize > ss_) {
      why =
          "header size " + std::to_string(hsize) + " is not between 92 and " + std::to_string(ss_);
      return std::nullopt;
    }
    uint32_t stored = load_le32(h.data() + kGptHdrHeaderCrc);
    store_le32(h.data() + kGptHdrHeaderCrc, 0);
    uint32_t computed = static_cast<uint32_t>(crc32(0L, h.data(), hsize));
    if (stored != computed) {
      why = "header CRC-32 " + hex(stored, 8) + " does not match the computed " + hex(computed, 8);
      return std::nullopt;
    }
    GptHeader g;
    g.lba = load_le64(h.data() + kGptHdrMyLba);
    if (g.lba != lba) {
      why = "header says it is at LBA " + std::to_string(g.lba) + ", not " + std::to_string(lba);
      return std::nullopt;
    }
    g.alternate_lba = load_le64(h.data() + kGptHdrAlternateLba);
    g.first_usable = load_le64(h.data() + kGptHdrFirstUsableLba);
    g.last_usable = load_le64(h.data() + kGptHdrLastUsableLba);
    g.disk_guid = gpt_guid_text(h.data() + kGptHdrDiskGuid);
    g.entries_lba = load_le64(h.data() + kGptHdrEntriesLba);
    g.entry_count = load_le32(h.data() + kGptHdrEntryCount);
    g.entry_size = load_le32(h.data() + kGptHdrEntrySize);
    g.entries_crc = load_le32(h.data() + kGptHdrEntriesCrc);
    header_ok = true;
    if (g.entry_size < kGptEntryMinSize || g.entry_size % kGptEntryMinSize != 0 ||
        (g.entry_size & (g.entry_size - 1)) != 0) {
      why = "partition entry size " + std::to_string(g.entry_size) + " is not 128 * 2^n";
      return std::nullopt;
    }
    uint64_t array_bytes = checked_mul(g.entry_count, g.entry_size, label_, off + kGptHdrEntryCount,
                                       "GPT entry array");
    uint64_t array_off =
        checked_mul(g.entries_lba, ss_, label_, off + kGptHdrEntriesLba, "GPT entry array offset");
    if (array_bytes > kGptMaxEntryArrayBytes) {
      why = "entry array of " + std::to_string(array_bytes) + " bytes is implausibly large";
      return std::nullopt;
    }
    if (array_off > size_ || array_bytes > size_ - array_off) {
      why = "entry array at sector " + std::to_string(g.entries_lba) + " runs past the disk's end";
      return std::nullopt;
    }
    g.entries.resize(array_bytes);
    disk_.read(array_off, g.entries.data(), g.entries.size());
    uint32_t ecrc =
        static_cast<uint32_t>(crc32(0L, g.entries.data(), static_cast<uInt>(array_bytes)));
    if (ecrc != g.entries_crc) {
      why = "entry array CRC-32 " + hex(g.entries_crc, 8) + " does not match the computed " +
            hex(ecrc, 8);
      return std::nullopt;
    }
    return g;
  }

  void read_gpt() {
    table_.scheme = Scheme::kGpt;
    // A disk image of a 4Kn drive stored as a plain file reports 512-byte
    // sectors; its GPT header then sits at byte 4096.
    if (ss_ == 512 && !gpt_signature_at(1) && size_ >= 2 * 4096) {
      uint32_t saved = ss_;
      ss_ = 4096;
      if (gpt_signature_at(1)) {
        table_.sector_size = 4096;
      } else {
        ss_ = saved;
      }
    }
    std::string why_primary, why_backup;
    bool primary_header_ok = false, backup_header_ok = false;
    std::optional<GptHeader> primary = read_gpt_header(1, why_primary, primary_header_ok);
    std::optional<GptHeader> used;
    if (primary) {
      used = std::move(primary);
      table_.gpt_header = "primary";
      // The backup is only checked, never needed: a damaged one is worth a
      // warning because the next repair tool would trust it.
      std::string why;
      bool ok = false;
      if (!read_gpt_header(used->alternate_lba, why, ok)) {
        table_.warnings.push_back(format_error(label_, ss_ + kGptHdrAlternateLba,
                                               "backup GPT header at sector " +
                                                   std::to_string(used->alternate_lba) +
                                                   " is not valid: " + why));
      }
    } else {
      uint64_t backup_lba = sector_count() - 1;
      std::optional<GptHeader> backup = read_gpt_header(backup_lba, why_backup, backup_header_ok);
      if (!backup) {
        throw Error(ErrorKind::kCorrupt, label_, ss_,
                    "GPT: primary header not valid (" + why_primary +
                        ") and backup header at byte " + std::to_string(backup_lba * ss_) +
                        " not valid (" + why_backup + ")");
      }
      table_.warnings.push_back(format_error(
          label_, ss_, "primary GPT not valid (" + why_primary + "): using the backup header"));
      used = std::move(backup);
      table_.gpt_header = "backup";
    }
    table_.disk_guid = used->disk_guid;
    const uint64_t array_off = used->entries_lba * ss_;
    for (uint32_t i = 0; i < used->entry_count; ++i) {
      const uint8_t* e = used->entries.data() + static_cast<size_t>(i) * used->entry_size;
      if (load_gpt_guid(e + kGptEntryTypeGuid).is_nil()) continue;
      const uint64_t entry_off = array_off + static_cast<uint64_t>(i) * used->entry_size;
      uint64_t first = load_le64(e + kGptEntryFirstLba);
      uint64_t last = load_le64(e + kGptEntryLastLba);
      Partition p;
      p.number = i + 1;
      p.kind = PartitionKind::kGpt;
      p.type_guid = gpt_guid_text(e + kGptEntryTypeGuid);
      p.unique_guid = gpt_guid_text(e + kGptEntryUniqueGuid);
      p.attributes = load_le64(e + kGptEntryAttributes);
      p.name = utf16le_to_utf8(e + kGptEntryName, kGptEntryNameBytes);
      if (last < first) {
        table_.warnings.push_back(format_error(
            label_, entry_off,
            "GPT entry " + std::to_string(i + 1) + " ends (LBA " + std::to_string(last) +
                ") before it starts (LBA " + std::to_string(first) + "): ignored"));
        continue;
      }
      uint64_t sectors = last - first;
      if (sectors != UINT64_MAX) ++sectors;
      add(std::move(p), first, sectors, entry_off);
    }
  }

  const BlockDevice& disk_;
  const std::string& label_;
  const uint64_t size_;
  uint32_t ss_ = 512;
  PartitionTable table_;
};

}  // namespace

PartitionTable read_partition_table(const BlockDevice& disk, const std::string& label) {
  return TableReader(disk, label).read();
}

}  // namespace vdisk::partition
