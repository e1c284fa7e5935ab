// VHDX consistency check ([MS-VHDX] v20160714): the file identifier, both
// headers' and both region tables' CRC-32C, the log empty (or named as
// needing replay), the regions 1 MiB aligned inside the file and apart, the
// required metadata items present with valid values, every BAT entry's
// state valid for its kind, and every present block inside the file with
// no two blocks, nor a block and a region, sharing bytes.
#include "formats/vhdx/vhdx_check.h"

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/vhdx/vhdx_crc32c.h"
#include "formats/vhdx/vhdx_layout.h"

namespace vdisk::vhdx {

namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// One of the two copies of a CRC-protected structure: whether it is valid,
// reported when not.
bool valid_copy(const std::vector<uint8_t>& b, const char* sig, uint64_t at,
                const std::string& name, const std::string& path, CheckReport& r) {
  if (std::memcmp(b.data(), sig, 4) != 0) {
    r.error(path, at, name, std::string("no '") + sig + "' signature");
    return false;
  }
  const uint32_t stored = load_le32(b.data() + 4);
  const uint32_t crc = crc32c_with_zero_field(b.data(), b.size(), 4);
  if (stored != crc) {
    r.error(path, at + 4, name + " checksum",
            "stored " + hex32(stored) + ", CRC-32C " + hex32(crc));
    return false;
  }
  return true;
}

struct Region {
  uint64_t offset = 0, length = 0;
};

}  // namespace

void check_vhdx(std::shared_ptr<const File> file, const OpenOptions&, CheckReport& r) {
  const std::string& path = file->path();
  const uint64_t fsize = file->size();
  char sig[8] = {};
  if (fsize < kHeaderSectionSize)
    throw Error(ErrorKind::kCorrupt, path, 0, "shorter than the 1 MiB VHDX header section");
  file->read_at(0, sig, 8);
  if (std::memcmp(sig, kFileSignature, 8) != 0)
    throw Error(ErrorKind::kNotThisFormat, path, 0, "no 'vhdxfile' identifier");

  // 2.2.2: two headers; the valid one with the larger sequence number rules.
  std::vector<uint8_t> h1(kHeaderSize), h2(kHeaderSize);
  file->read_at(kHeader1Offset, h1.data(), kHeaderSize);
  file->read_at(kHeader2Offset, h2.data(), kHeaderSize);
  const bool v1 = valid_copy(h1, kHeaderSignature, kHeader1Offset, "header 1", path, r);
  const bool v2 = valid_copy(h2, kHeaderSignature, kHeader2Offset, "header 2", path, r);
  if (!v1 && !v2) throw Error(ErrorKind::kCorrupt, path, kHeader1Offset, "no valid header");
  const bool use1 =
      v1 && (!v2 || load_le64(h1.data() + kHdrSequence) >= load_le64(h2.data() + kHdrSequence));
  const std::vector<uint8_t>& h = use1 ? h1 : h2;
  const uint64_t h_at = use1 ? kHeader1Offset : kHeader2Offset;
  if (load_le16(h.data() + kHdrVersion) != 1)
    r.error(path, h_at + kHdrVersion, "header version", "is not 1");
  const Guid log_guid = load_guid(h.data() + kHdrLogGuid);
  if (log_guid != Guid{}) {
    r.error(path, h_at + kHdrLogGuid, "header log GUID",
            "the log holds entries not yet replayed (the image was not closed cleanly)");
  }
  std::vector<UsedRange> used;
  used.push_back({0, kHeaderSectionSize, 0, "the header section"});
  const uint64_t log_off = load_le64(h.data() + kHdrLogOffset);
  const uint64_t log_len = load_le32(h.data() + kHdrLogLength);
  if (log_len) {
    if (log_off % kMiB || log_len % kMiB || log_off > fsize || log_len > fsize - log_off) {
      r.error(path, h_at + kHdrLogOffset, "log",
              std::to_string(log_len) + " bytes at " + std::to_string(log_off) +
                  " are not 1 MiB aligned inside the file");
    } else {
      used.push_back({log_off, log_off + log_len, h_at + kHdrLogOffset, "the log"});
    }
  }

  // 2.2.3: two region tables.
  std::vector<uint8_t> t1(kRegionTableSize), t2(kRegionTableSize);
  file->read_at(kRegionTable1Offset, t1.data(), kRegionTableSize);
  file->read_at(kRegionTable2Offset, t2.data(), kRegionTableSize);
  const bool rv1 = valid_copy(t1, kRegionSignature, kRegionTable1Offset, "region table 1", path, r);
  const bool rv2 = valid_copy(t2, kRegionSignature, kRegionTable2Offset, "region table 2", path, r);
  if (!rv1 && !rv2)
    throw Error(ErrorKind::kCorrupt, path, kRegionTable1Offset, "no valid region table");
  const std::vector<uint8_t>& t = rv1 ? t1 : t2;
  const uint64_t t_at = rv1 ? kRegionTable1Offset : kRegionTable2Offset;
  if (rv1 && rv2 && t1 != t2)
    r.error(path, kRegionTable2Offset, "region table 2", "differs from region table 1");
  const uint32_t count = load_le32(t.data() + 8);
  if (count > kMaxRegionEntries)
    throw Error(ErrorKind::kCorrupt, path, t_at + 8, std::to_string(count) + " region entries");
  std::optional<Region> bat_region, meta_region;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = t.data() + kRegionHeaderSize + i * kRegionEntrySize;
    const uint64_t at = t_at + kRegionHeaderSize + i * kRegionEntrySize;
    const Guid id = load_guid(e);
    const Region reg{load_le64(e + 16), load_le32(e + 24)};
    const bool is_bat = id == kBatRegionGuid, is_meta = id == kMetadataRegionGuid;
    const std::string name = is_bat    ? "the BAT region"
                             : is_meta ? "the metadata region"
                                       : "region " + std::to_string(i);
    if (reg.offset % kMiB || reg.length % kMiB || reg.offset < kHeaderSectionSize ||
        reg.offset > fsize || reg.length > fsize - reg.offset) {
      r.error(path, at + 16, name,
              std::to_string(reg.length) + " bytes at " + std::to_string(reg.offset) +
                  " are not 1 MiB aligned inside the file after the header section");
      continue;
    }
    used.push_back({reg.offset, reg.offset + reg.length, at + 16, name});
    if (is_bat) bat_region = reg;
    if (is_meta) meta_region = reg;
    if (!is_bat && !is_meta && (load_le32(e + 28) & 1))
      r.error(path, at + 28, name, "an unknown region marked required");
  }
  if (!bat_region || !meta_region)
    throw Error(ErrorKind::kCorrupt, path, t_at, "no usable BAT or metadata region");

  // 2.6: the metadata items.
  std::vector<uint8_t> mt(kMetadataTableSize);
  file->read_at(meta_region->offset, mt.data(), mt.size());
  if (std::memcmp(mt.data(), kMetadataSignature, 8) != 0)
    throw Error(ErrorKind::kCorrupt, path, meta_region->offset, "no 'metadata' table signature");
  const uint16_t items = load_le16(mt.data() + 10);
  if (items > kMaxMetadataEntries)
    throw Error(ErrorKind::kCorrupt, path, meta_region->offset + 10,
                std::to_string(items) + " metadata entries");
  auto item = [&](const Guid& id, uint32_t want_len) -> std::optional<std::vector<uint8_t>> {
    for (uint16_t i = 0; i < items; ++i) {
      const uint8_t* e = mt.data() + kMetadataHeaderSize + i * kMetadataEntrySize;
      if (load_guid(e) != id) continue;
      const uint64_t at = meta_region->offset + kMetadataHeaderSize + i * kMetadataEntrySize;
      const uint32_t off = load_le32(e + 16), len = load_le32(e + 20);
      if (off < kMetadataTableSize || off > meta_region->length ||
          len > meta_region->length - off || (want_len && len != want_len)) {
        r.error(path, at + 16, "metadata item " + guid_to_string(id),
                std::to_string(len) + " bytes at " + std::to_string(off) +
                    " of the region: not a valid item inside it");
        return std::nullopt;
      }
      std::vector<uint8_t> v(len);
      file->read_at(meta_region->offset + off, v.data(), len);
      return v;
    }
    return std::nullopt;
  };
  const auto params = item(kFileParametersGuid, 8);
  const auto vsize = item(kVirtualDiskSizeGuid, 8);
  const auto lss = item(kLogicalSectorSizeGuid, 4);
  const auto pss = item(kPhysicalSectorSizeGuid, 4);
  const auto disk_id = item(kVirtualDiskIdGuid, 16);
  if (!params || !vsize || !lss || !pss || !disk_id) {
    throw Error(ErrorKind::kCorrupt, path, meta_region->offset,
                "a required metadata item (file parameters, virtual disk size, sector sizes, "
                "disk id) is missing");
  }
  const uint32_t block = load_le32(params->data());
  const bool has_parent = load_le32(params->data() + 4) & kHasParent;
  const uint64_t size = load_le64(vsize->data());
  const uint32_t logical = load_le32(lss->data());
  const uint32_t physical = load_le32(pss->data());
  if (block < kMinBlockSize || block > kMaxBlockSize || (block & (block - 1)))
    throw Error(ErrorKind::kCorrupt, path, meta_region->offset,
                "block size " + std::to_string(block) + " is not a power of two of 1-256 MiB");
  if (logical != 512 && logical != 4096)
    throw Error(ErrorKind::kCorrupt, path, meta_region->offset,
                "logical sector size " + std::to_string(logical) + " is not 512 or 4096");
  if (physical != 512 && physical != 4096)
    r.error(path, meta_region->offset, "physical sector size metadata",
            std::to_string(physical) + " is not 512 or 4096");
  if (size > kMaxVirtualSize || size % logical)
    r.error(path, meta_region->offset, "virtual disk size metadata",
            std::to_string(size) + " is not whole logical sectors up to 64 TiB");
  if (has_parent && !item(kParentLocatorGuid, 0)) {
    r.error(path, meta_region->offset, "parent locator metadata",
            "a differencing disk has no parent locator");
  }

  // 2.5: the BAT.
  const Geometry g = make_geometry(size, block, logical, has_parent);
  if (g.total_bat_entries * 8 > bat_region->length) {
    r.error(path, bat_region->offset, "the BAT region",
            std::to_string(bat_region->length) + " bytes hold fewer than the " +
                std::to_string(g.total_bat_entries) + " entries the disk needs");
    return;
  }
  std::vector<uint8_t> bat(static_cast<size_t>(g.total_bat_entries * 8));
  file->read_at(bat_region->offset, bat.data(), bat.size());
  uint64_t present = 0;
  for (uint64_t i = 0; i < g.total_bat_entries; ++i) {
    const uint64_t at = bat_region->offset + 8 * i;
    const uint64_t e = load_le64(bat.data() + 8 * i);
    const uint8_t state = e & kBatStateMask;
    const uint64_t off = (e >> kBatOffsetShift) * kMiB;
    const bool is_bitmap = (i + 1) % (g.chunk_ratio + 1) == 0;
    const std::string what = (is_bitmap ? "BAT entry " + std::to_string(i) + " (sector bitmap)"
                                        : "BAT entry " + std::to_string(i) + " (block " +
                                              std::to_string(i - i / (g.chunk_ratio + 1)) + ")");
    if (e & 0xFFFF8) r.error(path, at, what, "reserved bits 3-19 set");
    uint64_t len = 0;
    if (is_bitmap) {
      if (state == static_cast<uint8_t>(SectorBitmapState::kPresent)) {
        if (!has_parent) r.error(path, at, what, "a sector bitmap in a disk without a parent");
        len = kSectorBitmapBlockSize;
      } else if (state != static_cast<uint8_t>(SectorBitmapState::kNotPresent)) {
        r.error(path, at, what, "state " + std::to_string(state) + " is not 0 or 6");
      }
    } else if (state == static_cast<uint8_t>(PayloadState::kFullyPresent) ||
               state == static_cast<uint8_t>(PayloadState::kPartiallyPresent)) {
      if (state == static_cast<uint8_t>(PayloadState::kPartiallyPresent) && !has_parent)
        r.error(path, at, what, "partially present in a disk without a parent");
      len = block;
    } else if (state != static_cast<uint8_t>(PayloadState::kNotPresent) &&
               state != static_cast<uint8_t>(PayloadState::kUndefined) &&
               state != static_cast<uint8_t>(PayloadState::kZero) &&
               state != static_cast<uint8_t>(PayloadState::kUnmapped)) {
      r.error(path, at, what, "state " + std::to_string(state) + " is not a payload state");
    }
    if (len == 0) continue;
    if (off < kHeaderSectionSize || off > fsize || len > fsize - off) {
      r.error(path, at, what,
              std::to_string(len) + " bytes at " + std::to_string(off) +
                  " are not inside the file after the header section");
      continue;
    }
    ++present;
    used.push_back({off, off + len, at, what});
  }
  report_overlaps(used, path, r);
  r.note(std::to_string(present) + " of " + std::to_string(g.total_bat_entries) +
         " BAT entries point into the file");
}

}  // namespace vdisk::vhdx
