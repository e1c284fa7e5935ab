// vdisk resize of a VHD, in place (spec "Hard Disk Footer Format", "Dynamic
// Disk Header Format"). The virtual size is the footer's current_size; the
// geometry follows it (appendix "CHS Calculation").
//
// Fixed disk: the new footer is written at the new end first and synced; on
// growth the old footer's sector, now inside the guest data, is zeroed after
// that (a crash in between opens at the new size with that sector not yet
// zero); on shrink the file is cut after the new footer is in place (a crash
// in between opens at the old size: readers take the last sector).
// Dynamic and differencing disks: new BAT entries (unused) are written into
// the room the BAT already has before the first thing after it, synced, then
// the dynamic header (max_table_entries), then the footer at the end and its
// copy at offset 0. Moving the BAT or the blocks to make room is not done.
#include <algorithm>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/resize.h"
#include "formats/vhd/vhd_reader.h"

namespace vdisk::vhd {

namespace {

bool creator_is(const Footer& f, const char* code) {
  return std::equal(f.creator_app.begin(), f.creator_app.end(), code);
}

}  // namespace

void resize_vhd(const ResizeRequest& req) {
  UpdateFile& file = req.file;
  const uint64_t new_size = req.new_size;
  resize_layer<VhdDevice>(req, "VHD");
  auto refuse = [&](std::optional<uint64_t> at, const std::string& why) {
    refuse_resize(req, at, why);
  };
  check_resize_size(req, "VHD", kSectorSize, 0, 2040ull << 30,
                    "the VHD specification's limit of 2040 GiB");
  const uint64_t fsize = file.size();
  if (fsize < kFooterSize) refuse(std::nullopt, "no footer");
  const uint64_t footer_at = fsize - kFooterSize;
  uint8_t raw[kFooterSize];
  file.read_at(footer_at, raw, kFooterSize);
  Footer f = decode_footer(raw);
  if (std::memcmp(raw, kFooterCookie, 8) != 0 ||
      f.checksum != vhd_checksum(raw, kFooterSize, kFooterChecksumOff))
    refuse(footer_at, "the footer at the end is damaged or a 511-byte footer; repair it first");

  const Geometry g = chs_geometry(new_size);
  const uint64_t chs_bytes = uint64_t{g.cylinders} * g.heads * g.sectors_per_track * kSectorSize;
  // Virtual PC and QEMU take the size of a disk made by "vpc " or "qemu" from
  // its geometry (QEMU's vpc driver notes): such a disk must stay one the
  // geometry describes exactly, or they would see fewer bytes.
  if ((creator_is(f, "qemu") || creator_is(f, "vpc ")) && chs_bytes != new_size &&
      !(g.cylinders == 65535 && g.heads == 16 && g.sectors_per_track == 255)) {
    refuse(footer_at + kFooterCreatorAppOff,
           "this VHD's creator ('" + format_code(f.creator_app.data()) +
               "') makes QEMU and Virtual PC read its size from the CHS geometry, which "
               "describes " +
               std::to_string(chs_bytes) + " bytes, not " + std::to_string(new_size));
  }
  const uint64_t old_size = f.current_size;
  f.current_size = new_size;
  f.cylinders = g.cylinders;
  f.heads = g.heads;
  f.sectors_per_track = g.sectors_per_track;
  const auto footer = encode_footer(f);

  if (f.disk_type == uint32_t(DiskType::kFixed)) {
    if (footer_at != old_size)
      refuse(footer_at, "the fixed disk's data does not end at its footer");
    file.write_at(new_size, footer.data(), footer.size());
    file.sync();
    if (new_size > old_size) {
      const std::vector<uint8_t> zeros(kFooterSize, 0);
      file.write_at(old_size, zeros.data(), zeros.size());
    } else {
      file.set_size(new_size + kFooterSize);
    }
    file.sync();
    return;
  }

  const uint64_t hoff = f.data_offset;
  uint8_t hb[kHeaderSize];
  file.read_at(hoff, hb, kHeaderSize);
  DynamicHeader h = decode_header(hb);
  const uint64_t need = (new_size + h.block_size - 1) / h.block_size;
  if (need > h.max_table_entries) {
    // The BAT's room: up to the first structure after it.
    uint64_t limit = footer_at;
    auto after = [&](uint64_t at) {
      if (at >= h.table_offset) limit = std::min(limit, at);
    };
    after(hoff);
    for (const auto& loc : h.locators)
      if (loc.code != kPlatNone && loc.data_offset > h.table_offset) after(loc.data_offset);
    // Entries past the file's end cannot be there: the count is bounded by
    // the file, never taken from the header alone.
    const uint64_t entries = std::min<uint64_t>(
        h.max_table_entries, h.table_offset < fsize ? (fsize - h.table_offset) / 4 : 0);
    std::vector<uint8_t> bat(entries * 4);
    file.read_at(h.table_offset, bat.data(), bat.size());
    for (uint64_t i = 0; i < entries; ++i) {
      const uint32_t e = load_be32(&bat[uint64_t{i} * 4]);
      if (e != kBatUnused) after(uint64_t{e} * kSectorSize);
    }
    const uint64_t room = (limit - h.table_offset) / 4;
    if (need > room) {
      refuse(hoff + kHeaderMaxEntriesOff,
             "the BAT has room for " + std::to_string(room) + " entries of " +
                 std::to_string(h.block_size) + " bytes (" + std::to_string(room * h.block_size) +
                 " bytes of disk) before the data at offset " + std::to_string(limit) + "; " +
                 std::to_string(need) +
                 " are needed and moving data to make room is not supported");
    }
    const std::vector<uint8_t> unused((need - h.max_table_entries) * 4, 0xff);
    file.write_at(h.table_offset + uint64_t{h.max_table_entries} * 4, unused.data(), unused.size());
    file.sync();
    h.max_table_entries = static_cast<uint32_t>(need);
    const auto header = encode_header(h);
    file.write_at(hoff, header.data(), header.size());
    file.sync();
  }
  file.write_at(footer_at, footer.data(), footer.size());
  file.sync();
  file.write_at(0, footer.data(), footer.size());
  file.sync();
}

}  // namespace vdisk::vhd
