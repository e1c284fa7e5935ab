// VHD consistency check, against Microsoft's "Virtual Hard Disk Image Format
// Specification" (qemu-img cannot check a VHD): the footer's checksum and
// fields, the footer copy at offset 0 of a dynamic disk equal to the footer,
// the dynamic header's checksum and fields, the BAT inside the file, every
// block (bitmap + data) inside the file before the footer, no two blocks or
// metadata structures sharing bytes, parent locators inside the file.
#include "formats/vhd/vhd_check.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/vhd/vhd_layout.h"

namespace vdisk::vhd {

namespace {

bool has_cookie(const uint8_t* p, const char (&cookie)[8]) {
  return std::memcmp(p, cookie, 8) == 0;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

void check_vhd(std::shared_ptr<const File> file, const OpenOptions&, CheckReport& r) {
  const std::string& path = file->path();
  const uint64_t fsize = file->size();
  if (fsize < kOldFooterSize) throw Error(ErrorKind::kCorrupt, path, 0, "too short for a VHD");

  // The footer: the last 512 bytes, or 511 (before Virtual PC 2004).
  uint8_t tail[kFooterSize] = {};
  uint64_t footer_at = fsize - kOldFooterSize;
  size_t footer_len = kOldFooterSize;
  if (fsize >= kFooterSize) {
    file->read_at(fsize - kFooterSize, tail, kFooterSize);
    if (has_cookie(tail, kFooterCookie)) {
      footer_at = fsize - kFooterSize;
      footer_len = kFooterSize;
    } else {
      file->read_at(footer_at, tail, kOldFooterSize);
      tail[kOldFooterSize] = 0;
    }
  } else {
    file->read_at(footer_at, tail, kOldFooterSize);
  }
  uint8_t copy[kFooterSize] = {};
  if (fsize >= kFooterSize) file->read_at(0, copy, kFooterSize);
  const bool footer_ok = has_cookie(tail, kFooterCookie);
  const bool copy_ok = has_cookie(copy, kFooterCookie);
  if (!footer_ok && !copy_ok)
    throw Error(ErrorKind::kCorrupt, path, footer_at, "no 'conectix' footer at the end or start");
  if (!footer_ok) {
    r.error(path, footer_at, "footer",
            "no 'conectix' cookie at the end of the file (the copy at offset 0 is there)");
  }
  const uint8_t* fb = footer_ok ? tail : copy;
  const Footer f = decode_footer(fb);
  const uint64_t f_at = footer_ok ? footer_at : 0;
  const uint32_t sum = vhd_checksum(fb, footer_ok ? footer_len : kFooterSize, kFooterChecksumOff);
  if (sum != f.checksum) {
    r.error(path, f_at + kFooterChecksumOff, "footer checksum",
            "stored " + hex32(f.checksum) + ", computed " + hex32(sum));
  }
  if (!(f.features & kFeatureReserved)) {
    r.error(path, f_at + kFooterFeaturesOff, "footer features",
            "reserved bit 1 (always set) is clear");
  }
  if (f.version != kFormatVersion) {
    r.error(path, f_at + kFooterVersionOff, "footer version",
            hex32(f.version) + " is not 0x00010000");
  }
  if (f.current_size % kSectorSize) {
    r.error(path, f_at + kFooterCurrentSizeOff, "footer current size",
            std::to_string(f.current_size) + " is not whole sectors");
  }
  const auto type = static_cast<DiskType>(f.disk_type);
  if (type == DiskType::kFixed) {
    if (f.data_offset != kFixedDataOffset) {
      r.error(path, f_at + kFooterDataOffsetOff, "footer data offset",
              "a fixed disk's is all ones, not " + std::to_string(f.data_offset));
    }
    if (footer_ok && f.current_size != footer_at) {
      r.error(path, f_at + kFooterCurrentSizeOff, "footer current size",
              std::to_string(f.current_size) + " bytes, but the data before the footer is " +
                  std::to_string(footer_at));
    }
    r.note("fixed disk: footer checked");
    return;
  }
  if (type != DiskType::kDynamic && type != DiskType::kDifferencing) {
    throw Error(ErrorKind::kCorrupt, path, f_at + kFooterDiskTypeOff,
                "disk type " + std::to_string(f.disk_type) +
                    " is not fixed (2), dynamic (3) or "
                    "differencing (4)");
  }

  // A dynamic disk keeps a copy of the footer at offset 0 ("Dynamic Disk
  // Header Format": "a copy of the hard disk footer"), equal byte for byte.
  if (!copy_ok) {
    r.error(path, 0, "footer copy", "no 'conectix' cookie at offset 0");
  } else if (footer_ok && std::memcmp(copy, tail, footer_len) != 0) {
    size_t at = 0;
    while (at < footer_len && copy[at] == tail[at]) ++at;
    r.error(path, at, "footer copy",
            "differs from the footer at the end from byte " + std::to_string(at));
  }

  // The dynamic header.
  std::vector<UsedRange> used;
  used.push_back({0, kFooterSize, 0, "the footer copy"});
  if (f.data_offset % kSectorSize || f.data_offset > fsize || kHeaderSize > fsize - f.data_offset)
    throw Error(ErrorKind::kCorrupt, path, f_at + kFooterDataOffsetOff,
                "dynamic header at " + std::to_string(f.data_offset) + " is not inside the file");
  uint8_t hb[kHeaderSize];
  file->read_at(f.data_offset, hb, kHeaderSize);
  if (!has_cookie(hb, kHeaderCookie))
    throw Error(ErrorKind::kCorrupt, path, f.data_offset, "no 'cxsparse' dynamic header cookie");
  const DynamicHeader h = decode_header(hb);
  used.push_back({f.data_offset, f.data_offset + kHeaderSize, f_at + kFooterDataOffsetOff,
                  "the dynamic header"});
  const uint32_t hsum = vhd_checksum(hb, kHeaderSize, kHeaderChecksumOff);
  if (hsum != h.checksum) {
    r.error(path, f.data_offset + kHeaderChecksumOff, "dynamic header checksum",
            "stored " + hex32(h.checksum) + ", computed " + hex32(hsum));
  }
  if (h.version != kFormatVersion) {
    r.error(path, f.data_offset + kHeaderVersionOff, "dynamic header version",
            hex32(h.version) + " is not 0x00010000");
  }
  if (h.block_size < kSectorSize || (h.block_size & (h.block_size - 1))) {
    throw Error(ErrorKind::kCorrupt, path, f.data_offset + kHeaderBlockSizeOff,
                "block size " + std::to_string(h.block_size) + " is not a power of two >= 512");
  }
  const uint64_t need = (f.current_size + h.block_size - 1) / h.block_size;
  if (h.max_table_entries < need) {
    r.error(path, f.data_offset + kHeaderMaxEntriesOff, "dynamic header max table entries",
            std::to_string(h.max_table_entries) + " blocks of " + std::to_string(h.block_size) +
                " bytes do not cover the " + std::to_string(f.current_size) + "-byte disk");
  }
  const uint64_t bat_bytes = uint64_t{h.max_table_entries} * 4;
  if (h.table_offset % kSectorSize || h.table_offset > fsize || bat_bytes > fsize - h.table_offset)
    throw Error(ErrorKind::kCorrupt, path, f.data_offset + kHeaderTableOffsetOff,
                "BAT of " + std::to_string(h.max_table_entries) + " entries at " +
                    std::to_string(h.table_offset) + " is not inside the file");
  used.push_back({h.table_offset, h.table_offset + bat_bytes, f.data_offset + kHeaderTableOffsetOff,
                  "the BAT"});

  // Parent locators: differencing disks name their parent here.
  bool any_locator = false;
  for (size_t i = 0; i < kLocatorCount; ++i) {
    const ParentLocator& l = h.locators[i];
    const uint64_t at = f.data_offset + kHeaderLocatorsOff + i * kLocatorEntrySize;
    if (l.code == kPlatNone) continue;
    any_locator = true;
    if (l.data_offset > fsize || l.data_length > fsize - l.data_offset) {
      r.error(path, at, "parent locator " + std::to_string(i),
              std::to_string(l.data_length) + " bytes at " + std::to_string(l.data_offset) +
                  " are not inside the file");
      continue;
    }
    // The reserved space is in sectors by the spec, in bytes as Hyper-V
    // writes it: the larger reading that stays in the file is the one used.
    uint64_t space = uint64_t{l.data_space} * kSectorSize;
    if (space > fsize - l.data_offset || space < l.data_length) space = l.data_space;
    if (space < l.data_length) space = l.data_length;
    if (space) {
      used.push_back({l.data_offset, l.data_offset + space, at,
                      "parent locator " + std::to_string(i) + "'s data"});
    }
  }
  if (type == DiskType::kDifferencing) {
    if (h.parent_unique_id == Guid{})
      r.error(path, f.data_offset + kHeaderParentIdOff, "parent unique id",
              "a differencing disk names no parent (all zeros)");
    if (!any_locator)
      r.error(path, f.data_offset + kHeaderLocatorsOff, "parent locators",
              "a differencing disk has no parent locator");
  }

  // The blocks: bitmap then data, inside the file before the footer.
  std::vector<uint8_t> bat(static_cast<size_t>(bat_bytes));
  file->read_at(h.table_offset, bat.data(), bat.size());
  const uint64_t block_bytes = bitmap_bytes(h.block_size) + h.block_size;
  const uint64_t data_end = footer_ok ? footer_at : fsize;
  uint64_t allocated = 0;
  for (uint64_t i = 0; i < h.max_table_entries; ++i) {
    const uint32_t e = load_be32(bat.data() + 4 * i);
    if (e == kBatUnused) continue;
    const uint64_t at = h.table_offset + 4 * i;
    const uint64_t off = uint64_t{e} * kSectorSize;
    if (i >= need) {
      r.error(path, at, "BAT entry " + std::to_string(i),
              "allocated beyond the disk's " + std::to_string(need) + " blocks");
    }
    if (off > data_end || block_bytes > data_end - off) {
      r.error(path, at, "BAT entry " + std::to_string(i),
              "block at " + std::to_string(off) + " (" + std::to_string(block_bytes) +
                  " bytes) runs past the footer at " + std::to_string(data_end));
      continue;
    }
    ++allocated;
    used.push_back({off, off + block_bytes, at, "block " + std::to_string(i)});
  }
  report_overlaps(used, path, r);
  r.note(std::string(type == DiskType::kDifferencing ? "differencing" : "dynamic") +
         " disk: " + std::to_string(allocated) + " of " + std::to_string(h.max_table_entries) +
         " blocks allocated");
}

}  // namespace vdisk::vhd
