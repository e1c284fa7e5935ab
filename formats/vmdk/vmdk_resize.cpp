// vdisk resize of a monolithicSparse VMDK, in place (VDF "Hosted Sparse
// Extent Header", "Grain Directories and Grain Tables", "The Descriptor
// File"). qemu-img cannot resize VMDK at all; VMware's vmware-vdiskmanager
// -x does, and this follows what it leaves behind: the header's capacity,
// the embedded descriptor's extent line and ddb.geometry.cylinders changed,
// the grain directory long enough for the new capacity.
//
// The grain directory has no size field: its length follows from the
// capacity. It grows in place into the zero padding of its last sector;
// when that is not enough, a new directory and a new redundant directory
// (the old entries, then new ones) are written at the end of the file. New
// entries name new, zero grain tables at the end of the file (VMware
// preallocates every table; QEMU cannot write through a zero entry). All of
// it is synced before the header that points at it. Growing: tables, sync, header (sector 0), sync,
// descriptor, sync. A crash between the header and the descriptor leaves a file QEMU opens at the
// new size (it reads the header) and we at the old one (an extent line shorter than its extent is
// legal). Shrinking: descriptor, header, then the grain table entries and directory entries past
// the new end are cleared (the caller checked that they read as zeros; their grains are not
// reclaimed). Every write before the last leaves a file that opens at the
// old or the new size.
//
// Not done, refused by name: descriptor files with separate extents
// (monolithicFlat, twoGbMaxExtent*: extents are other files, not reachable
// through the one file a resize gets), streamOptimized (written once as a
// stream; convert it), bare extents and seSparse.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_reader.h"

namespace vdisk::vmdk {

namespace {

// Header field offsets (vmdk_layout.h).
constexpr uint64_t kCapacityOff = 12;
constexpr uint64_t kRgdOffsetOff = 48;
constexpr uint64_t kGdOffsetOff = 56;

uint64_t round_up(uint64_t v, uint64_t unit) {
  return (v + unit - 1) / unit * unit;
}

// The descriptor `text` with the sector count of its only extent line set
// to `sectors` and ddb.geometry.cylinders recomputed from its heads and
// sectors per track (VDF "The Disk Database"; 16383 at most for IDE's 16
// heads, as VMware caps it). Every other line, comment and line end is kept
// byte for byte.
std::string edit_descriptor(const std::string& text, uint64_t sectors, const std::string& path,
                            uint64_t base_offset) {
  const Descriptor d = parse_descriptor(text, path, base_offset);
  std::optional<std::string> cyl_text;
  {
    auto h = d.ddb_value("ddb.geometry.heads"), s = d.ddb_value("ddb.geometry.sectors");
    uint64_t heads = 0, spt = 0;
    if (h && s) {
      try {
        heads = std::stoull(*h), spt = std::stoull(*s);
      } catch (const std::exception&) {
        heads = spt = 0;
      }
    }
    if (heads > 0 && spt > 0 && heads <= 255 && spt <= 63) {
      const uint64_t cap = heads == 16 ? 16383 : 65535;
      cyl_text = std::to_string(std::min<uint64_t>(sectors / (heads * spt), cap));
    }
  }
  std::string out;
  bool extent_done = false;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    end = end == std::string::npos ? text.size() : end + 1;
    std::string line = text.substr(at, end - at);
    at = end;
    const size_t first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] != '#') {
      const std::string body = line.substr(first);
      const bool is_extent = body.rfind("RW ", 0) == 0 || body.rfind("RDONLY ", 0) == 0 ||
                             body.rfind("NOACCESS ", 0) == 0;
      if (is_extent && !extent_done) {
        // "RW 131072 SPARSE "name"": the second field is the sector count.
        const size_t sp = line.find(' ', first);
        const size_t num = line.find_first_not_of(' ', sp);
        const size_t num_end = line.find_first_not_of("0123456789", num);
        line = line.substr(0, num) + std::to_string(sectors) + line.substr(num_end);
        extent_done = true;
      } else if (cyl_text && body.rfind("ddb.geometry.cylinders", 0) == 0) {
        const size_t q1 = line.find('"'),
                     q2 = q1 == std::string::npos ? q1 : line.find('"', q1 + 1);
        if (q2 != std::string::npos) line = line.substr(0, q1 + 1) + *cyl_text + line.substr(q2);
      }
    }
    out += line;
  }
  // The edit must describe what we meant: parse it back.
  const Descriptor back = parse_descriptor(out, path, base_offset);
  if (!extent_done || back.extents.size() != 1 || back.extents[0].sectors != sectors) {
    throw Error(ErrorKind::kUnsupported, path, base_offset,
                "cannot resize: the embedded descriptor's extent line could not be rewritten");
  }
  return out;
}

// One grain directory (primary or redundant) of a hosted sparse extent.
struct Directory {
  uint64_t sector = 0;          // where it is
  std::vector<uint32_t> entry;  // its entries for the old capacity
};

Directory read_directory(const UpdateFile& file, uint64_t sector, uint64_t tables) {
  Directory d;
  d.sector = sector;
  std::vector<uint8_t> raw(tables * 4);
  file.read_at(sector * kSector, raw.data(), raw.size());
  d.entry.resize(tables);
  for (uint64_t i = 0; i < tables; ++i) d.entry[i] = load_le32(&raw[i * 4]);
  return d;
}

// Clears, in the tables `dir` names, the grain table entries of grains
// `grains` and up of the table holding grain `grains` (the rest of the disk
// beyond a new or old end), writing only what is not zero already.
void clear_table_tail(UpdateFile& file, const Directory& dir, uint64_t grains, uint32_t gtes) {
  const uint64_t t = grains / gtes, first = grains % gtes;
  if (first == 0 || t >= dir.entry.size() || dir.entry[t] == 0) return;
  const uint64_t at = uint64_t{dir.entry[t]} * kSector + first * 4;
  std::vector<uint8_t> raw((gtes - first) * 4);
  file.read_at(at, raw.data(), raw.size());
  if (std::all_of(raw.begin(), raw.end(), [](uint8_t b) { return b == 0; })) return;
  std::fill(raw.begin(), raw.end(), 0);
  file.write_at(at, raw.data(), raw.size());
}

}  // namespace

void resize_vmdk(UpdateFile& file, const BlockDevice& layer, uint64_t new_size) {
  const auto* dev = dynamic_cast<const VmdkDevice*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not a VMDK");
  const std::string& path = file.path();
  auto refuse = [&](std::optional<uint64_t> at, const std::string& why) {
    throw Error(ErrorKind::kUnsupported, path, at, "cannot resize: " + why);
  };
  const std::string& type = dev->descriptor().create_type;
  uint8_t hb[kSector] = {};
  if (file.read_some(0, hb, sizeof hb) < sizeof hb || load_le32(hb) != kSparseMagic) {
    refuse(std::nullopt, "resizing a VMDK whose extents are separate files (createType \"" + type +
                             "\") is not supported; only monolithicSparse is (convert to it, "
                             "resize, convert back)");
  }
  const SparseHeader h = *decode_sparse_header(hb);
  if (type == "streamOptimized" || (h.flags & (kFlagMarkers | kFlagCompressed))) {
    refuse(8,
           "a streamOptimized VMDK is written once, as a stream, with compressed grains; it is "
           "not resized in place (convert it to monolithicSparse, resize, convert back)");
  }
  if (h.descriptor_offset == 0 || h.descriptor_size == 0) {
    refuse(28,
           "this is a bare sparse extent (one piece of a twoGbMaxExtentSparse set?); resizing "
           "such sets is not supported");
  }
  if (new_size % kSector) refuse(std::nullopt, "VMDK capacities are whole 512-byte sectors");
  if (new_size == 0) refuse(std::nullopt, "a VMDK holds at least one sector");

  const uint64_t grain = h.grain_size * kSector;
  const uint32_t gtes = h.num_gtes_per_gt;
  const uint64_t old_size = h.capacity * kSector;
  const uint64_t old_grains = div_round_up(old_size, grain);
  const uint64_t new_grains = div_round_up(new_size, grain);
  const uint64_t old_tables = div_round_up(old_grains, gtes);
  const uint64_t new_tables = div_round_up(new_grains, gtes);
  // GD entries are 32-bit sector numbers; QEMU refuses directories above
  // 512 Mi entries.
  if (new_tables > (uint64_t{1} << 29))
    refuse(std::nullopt, "the grain directory would need " + std::to_string(new_tables) +
                             " entries (more than any reader accepts)");

  // The new descriptor must fit in the room the header reserves for it.
  const uint64_t doff = h.descriptor_offset * kSector;
  const uint64_t dlen = h.descriptor_size * kSector;
  std::string text(static_cast<size_t>(dlen), '\0');
  file.read_at(doff, text.data(), text.size());
  text.resize(std::min(text.size(), text.find('\0')));
  const std::string new_text = edit_descriptor(text, new_size / kSector, path, doff);
  if (new_text.size() > dlen) {
    refuse(36, "the new embedded descriptor needs " + std::to_string(new_text.size()) +
                   " bytes but the header reserves " + std::to_string(dlen) + " (" +
                   std::to_string(h.descriptor_size) + " sectors) for it");
  }
  std::vector<uint8_t> desc_area(std::max(text.size(), new_text.size()), 0);
  std::memcpy(desc_area.data(), new_text.data(), new_text.size());

  const bool have_rgd = (h.flags & kFlagRedundantGd) && h.rgd_offset != 0;
  std::vector<Directory> dirs;
  dirs.push_back(read_directory(file, h.gd_offset, old_tables));
  if (have_rgd) dirs.push_back(read_directory(file, h.rgd_offset, old_tables));

  uint8_t header[kSector];
  std::memcpy(header, hb, kSector);
  store_le64(header + kCapacityOff, new_size / kSector);

  if (new_size > old_size) {
    // Entries past the old end (in the old last table) must read as
    // unallocated once they are inside the disk.
    for (const Directory& d : dirs) clear_table_tail(file, d, old_grains, gtes);
    if (new_tables > old_tables) {
      // Every directory entry inside the disk names a table: QEMU does not
      // make tables on demand (a zero entry inside the capacity makes its
      // writes fail or land at sector 0), and VMware preallocates them. The
      // new tables go at the end of the file, zeros (a hole the file is
      // extended over), after a new directory when the old one's last
      // sector has no room: per directory (the redundant one first, as
      // VMware lays out a fresh file) [directory][tables].
      const uint64_t room = round_up(old_tables * 4, kSector) / 4;
      const bool gd_fits = new_tables <= room;
      const uint64_t gd_bytes = round_up(new_tables * 4, kSector);
      const uint64_t gt_bytes = round_up(uint64_t{gtes} * 4, kSector);
      uint64_t at = round_up(file.size(), kSector);
      struct Plan {
        size_t dir;
        uint64_t gd_at;  // 0: grows in place
        std::vector<uint8_t> entries;
      };
      std::vector<Plan> plans;
      for (size_t k = dirs.size(); k-- > 0;) {
        Plan p{k, 0, std::vector<uint8_t>(gd_bytes, 0)};
        for (uint64_t i = 0; i < old_tables; ++i) store_le32(&p.entries[i * 4], dirs[k].entry[i]);
        if (!gd_fits) p.gd_at = at, at += gd_bytes;
        for (uint64_t i = old_tables; i < new_tables; ++i, at += gt_bytes) {
          if (at / kSector > UINT32_MAX)
            refuse(std::nullopt,
                   "the grain tables would lie past the 2 TiB a directory entry "
                   "can address");
          store_le32(&p.entries[i * 4], static_cast<uint32_t>(at / kSector));
        }
        plans.push_back(std::move(p));
      }
      // Grains QEMU or VMware add later start on a grain boundary.
      file.set_size(round_up(at, grain));
      for (const Plan& p : plans) {
        if (p.gd_at) {
          file.write_at(p.gd_at, p.entries.data(), p.entries.size());
          store_le64(header + (p.dir == 0 ? kGdOffsetOff : kRgdOffsetOff), p.gd_at / kSector);
        } else {
          file.write_at(dirs[p.dir].sector * kSector + old_tables * 4, &p.entries[old_tables * 4],
                        (new_tables - old_tables) * 4);
        }
      }
    }
    file.sync();
    file.write_at(0, header, kSector);
    file.sync();
    file.write_at(doff, desc_area.data(), desc_area.size());
    file.sync();
    return;
  }

  file.write_at(doff, desc_area.data(), desc_area.size());
  file.sync();
  file.write_at(0, header, kSector);
  file.sync();
  // Drop what lies past the new end: table entries, then directory entries.
  for (const Directory& d : dirs) clear_table_tail(file, d, new_grains, gtes);
  if (old_tables > new_tables) {
    const std::vector<uint8_t> zeros((old_tables - new_tables) * 4, 0);
    for (const Directory& d : dirs)
      file.write_at(d.sector * kSector + new_tables * 4, zeros.data(), zeros.size());
  }
  file.sync();
}

}  // namespace vdisk::vmdk
