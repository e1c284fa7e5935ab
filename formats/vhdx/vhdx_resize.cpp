// vdisk resize of a VHDX, in place ([MS-VHDX] 2.6.2.2 Virtual Disk Size,
// 2.5 BAT, 2.3 Log). qemu-img cannot resize VHDX; Hyper-V's Resize-VHD does,
// and as it must (2.3: "the log is used to ... update metadata"), every
// change to the metadata region, the BAT and the region table goes through
// the log: one log entry carrying the changed 4 KiB sectors, the header
// naming it, the sectors written in place, the header cleared
// (write_through_log in vhdx_log.cpp). A crash leaves a file that opens,
// with the log replayed as Hyper-V, QEMU and our reader do, at the old or
// the new size.
//
// Growing: the Virtual Disk Size item changes and the BAT gains entries
// (zero: PAYLOAD_BLOCK_NOT_PRESENT, blocks are allocated on first write).
// When the BAT region has no room for them, a new, larger BAT region (its
// old entries, then zeros) is written at the end of the file and synced
// first; the region tables' BAT entry then moves to it in the same log
// entry as the size, so the switch is atomic. The old BAT region is left as
// free space. Shrinking: the size item changes and the BAT entries of blocks
// past the new end are cleared (the caller checked they read as zeros; the
// blocks' space is not reclaimed). A fixed VHDX (LeaveBlocksAllocated) does
// not grow: its new blocks would have to be allocated.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/guid.h"
#include "formats/core/resize.h"
#include "formats/vhdx/vhdx_crc32c.h"
#include "formats/vhdx/vhdx_log.h"
#include "formats/vhdx/vhdx_reader.h"

namespace vdisk::vhdx {

namespace {

// The file offset of the Virtual Disk Size item (2.6.2.2).
uint64_t size_item_offset(const UpdateFile& file, const ImageMeta& m) {
  std::vector<uint8_t> t(kMetadataTableSize);
  file.read_at(m.metadata_offset, t.data(), t.size());
  const uint16_t count = std::min<uint16_t>(load_le16(t.data() + 10), kMaxMetadataEntries);
  for (uint32_t i = 0; i < count; ++i) {
    const MetadataEntry e =
        decode_metadata_entry(t.data() + kMetadataHeaderSize + uint64_t{i} * kMetadataEntrySize);
    if (e.item_id == kVirtualDiskSizeGuid && e.length >= 8) return m.metadata_offset + e.offset;
  }
  throw Error(ErrorKind::kCorrupt, file.path(), m.metadata_offset,
              "metadata has no virtual disk size item");
}

}  // namespace

void resize_vhdx(const ResizeRequest& req) {
  UpdateFile& file = req.file;
  const uint64_t new_size = req.new_size;
  auto refuse = [&](std::optional<uint64_t> at, const std::string& why) {
    refuse_resize(req, at, why);
  };
  const ImageMeta& m = resize_layer<VhdxDevice>(req, "VHDX").meta();
  const Geometry& old_g = m.geometry;
  if (!m.log_guid.is_nil()) {
    refuse(std::nullopt,
           "its log holds entries not yet applied (not closed cleanly); open it once read-write "
           "with Hyper-V or 'qemu-img check -r all' first");
  }
  // The unit is the disk's logical sector size (2.6.2.2).
  check_resize_size(req, "VHDX", old_g.logical_sector_size, old_g.logical_sector_size,
                    kMaxVirtualSize, "64 TiB, 2.6.2.2");
  const uint64_t old_size = old_g.virtual_size;
  if (new_size > old_size && m.leave_blocks_allocated) {
    refuse(std::nullopt,
           "a fixed VHDX grows only by allocating its new blocks, which is not supported "
           "(convert it to a dynamic one first)");
  }
  const Geometry g =
      make_geometry(new_size, old_g.block_size, old_g.logical_sector_size, m.has_parent);

  SectorChanges changes(file);
  uint8_t v[8];
  store_le64(v, new_size);
  changes.put(size_item_offset(file, m), v, sizeof v);

  const uint64_t old_entries = old_g.total_bat_entries, new_entries = g.total_bat_entries;
  std::optional<std::pair<uint64_t, uint64_t>> moved_bat;  // {offset, length}
  if (new_entries > old_entries) {
    if (new_entries * 8 <= m.bat_length) {
      changes.zero(m.bat_offset + old_entries * 8, (new_entries - old_entries) * 8);
    } else {
      const uint64_t len = align_up(new_entries * 8, kRegionAlignment);
      if (len > UINT32_MAX) refuse(std::nullopt, "the BAT would exceed a region's 4 GiB");
      moved_bat = {align_up(file.size(), kRegionAlignment), len};
    }
  } else {
    changes.zero(m.bat_offset + new_entries * 8, (old_entries - new_entries) * 8);
    // A differencing disk's BAT runs to the end of the last chunk: the
    // payload entries of blocks past the new end inside it are cleared too.
    const uint64_t last = std::min(old_g.data_blocks, g.bitmap_blocks * g.chunk_ratio);
    for (uint64_t b = g.data_blocks; m.has_parent && b < last; ++b)
      changes.zero(m.bat_offset + g.payload_entry(b) * 8, 8);
  }
  if (moved_bat) {
    // 2.2.3: both region tables name the BAT's new place (only their first
    // sector changes; the CRC covers all 64 KiB).
    for (uint64_t table : {kRegionTable1Offset, kRegionTable2Offset}) {
      std::vector<uint8_t> t(kRegionTableSize);
      file.read_at(table, t.data(), t.size());
      if (std::memcmp(t.data(), kRegionSignature, 4) != 0 ||
          load_le32(t.data() + 4) != crc32c_with_zero_field(t.data(), t.size(), 4))
        refuse(table, "region table at offset " + std::to_string(table) + " is damaged");
      const uint32_t count = std::min<uint32_t>(load_le32(t.data() + 8), kMaxRegionEntries);
      bool found = false;
      for (uint32_t i = 0; i < count; ++i) {
        uint8_t* e = t.data() + kRegionHeaderSize + uint64_t{i} * kRegionEntrySize;
        RegionEntry r = decode_region_entry(e);
        if (r.guid != kBatRegionGuid) continue;
        r.file_offset = moved_bat->first;
        r.length = static_cast<uint32_t>(moved_bat->second);
        encode_region_entry(r, e);
        found = true;
      }
      if (!found) refuse(table, "region table has no BAT entry");
      store_checksum(t.data(), t.size(), 4);
      changes.put(table, t.data(), kLogSector);
    }
  }
  const SectorUpdates updates = changes.updates();
  if (log_entry_length(updates.size()) > m.log_length) {
    refuse(std::nullopt, "the change touches " + std::to_string(updates.size()) +
                             " sectors of metadata, more than the " + std::to_string(m.log_length) +
                             "-byte log holds in one entry");
  }
  if (moved_bat) {
    // The new BAT region first, in space nothing refers to yet.
    std::vector<uint8_t> bat(static_cast<size_t>(moved_bat->second), 0);
    file.read_at(m.bat_offset, bat.data(), static_cast<size_t>(old_entries * 8));
    file.write_at(moved_bat->first, bat.data(), bat.size());
    file.sync();
  }
  // A fresh log GUID and FileWriteGuid, from the caller's random source.
  Env& env = req.opts.environment();
  write_through_log(file, updates, Guid::random(env), Guid::random(env));
}

}  // namespace vdisk::vhdx
