// VMDK consistency check (VMware "Virtual Disk Format 5.0", "Hosted Sparse
// Extent Header", "Grain Directories and Grain Tables"): for each hosted
// sparse extent (the file itself, or each SPARSE extent its descriptor
// lists) the grain directory and grain tables inside the file, the
// redundant grain directory's tables equal to the primary's, every grain
// inside the file, and no two grain table entries, nor a grain and a
// metadata structure, sharing bytes. Flat extents: present and long enough.
#include "formats/vmdk/vmdk_check.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/vmdk/vmdk_descriptor.h"
#include "formats/vmdk/vmdk_layout.h"

namespace vdisk::vmdk {

namespace {

constexpr uint64_t kMaxDescriptorBytes = 1 << 20;

// Reads the grain directory of `gd_sector` with `entries` entries, or
// reports why not.
bool read_gd(const File& f, uint64_t gd_sector, uint64_t entries, uint64_t field, const char* name,
             std::vector<uint32_t>& out, CheckReport& r) {
  const uint64_t fsize = f.size();
  const uint64_t off = gd_sector * kSector;
  if (gd_sector > fsize / kSector || entries * 4 > fsize - off) {
    r.error(f.path(), field, name,
            std::to_string(entries) + " entries at sector " + std::to_string(gd_sector) +
                " are not inside the file");
    return false;
  }
  std::vector<uint8_t> raw(static_cast<size_t>(entries * 4));
  f.read_at(off, raw.data(), raw.size());
  out.resize(static_cast<size_t>(entries));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_le32(raw.data() + 4 * i);
  return true;
}

void check_sparse(const File& f, CheckReport& r) {
  const std::string& path = f.path();
  const uint64_t fsize = f.size();
  uint8_t head[kSector];
  if (fsize < kSector) throw Error(ErrorKind::kCorrupt, path, 0, "too short for a sparse header");
  f.read_at(0, head, kSector);
  std::optional<SparseHeader> decoded = decode_sparse_header(head);
  if (!decoded) throw Error(ErrorKind::kCorrupt, path, 0, "no KDMV sparse extent header");
  SparseHeader h = *decoded;
  const bool compressed = (h.flags & kFlagCompressed) != 0;
  if (h.gd_offset == kGdAtEnd) {
    // streamOptimized: the header is repeated as a footer, second-to-last
    // sector before the end-of-stream marker (VDF "The Footer").
    if (fsize < 3 * kSector) throw Error(ErrorKind::kCorrupt, path, 56, "no footer");
    uint8_t foot[kSector];
    f.read_at(fsize - 2 * kSector, foot, kSector);
    std::optional<SparseHeader> fh = decode_sparse_header(foot);
    if (!fh || fh->gd_offset == kGdAtEnd) {
      throw Error(ErrorKind::kCorrupt, path, fsize - 2 * kSector,
                  "grain directory at the end, but no footer header with its offset");
    }
    h.gd_offset = fh->gd_offset;
  }
  if (h.grain_size < 8 || (h.grain_size & (h.grain_size - 1)) || h.grain_size > (1 << 20))
    throw Error(
        ErrorKind::kCorrupt, path, 20,
        "grain size " + std::to_string(h.grain_size) + " sectors is not a power of two >= 8");
  if (h.num_gtes_per_gt == 0 || h.num_gtes_per_gt > (1 << 16))
    throw Error(ErrorKind::kCorrupt, path, 44,
                "numGTEsPerGT " + std::to_string(h.num_gtes_per_gt) + " is out of range");
  const uint64_t grain_bytes = h.grain_size * kSector;
  const uint64_t gt_span = h.grain_size * h.num_gtes_per_gt;  // sectors one GT maps
  const uint64_t gd_entries = (h.capacity + gt_span - 1) / gt_span;
  if (gd_entries > fsize / 4 + 1)
    throw Error(ErrorKind::kCorrupt, path, 12,
                "capacity " + std::to_string(h.capacity) + " needs more grain tables than fit");
  const uint64_t gt_bytes = uint64_t{h.num_gtes_per_gt} * 4;

  std::vector<UsedRange> used;
  used.push_back({0, kSector, 0, "the header"});
  if (h.descriptor_offset && h.descriptor_size) {
    used.push_back({h.descriptor_offset * kSector,
                    (h.descriptor_offset + h.descriptor_size) * kSector, 28,
                    "the embedded descriptor"});
  }
  std::vector<uint32_t> gd, rgd;
  if (!read_gd(f, h.gd_offset, gd_entries, 56, "grain directory", gd, r)) return;
  used.push_back(
      {h.gd_offset * kSector, h.gd_offset * kSector + gd_entries * 4, 56, "the grain directory"});
  const bool redundant = (h.flags & kFlagRedundantGd) && h.rgd_offset != 0;
  if (redundant && read_gd(f, h.rgd_offset, gd_entries, 48, "redundant grain directory", rgd, r)) {
    used.push_back({h.rgd_offset * kSector, h.rgd_offset * kSector + gd_entries * 4, 48,
                    "the redundant grain directory"});
  }

  std::vector<uint8_t> gt(static_cast<size_t>(gt_bytes)), rgt(static_cast<size_t>(gt_bytes));
  // Distinct grain tables of a consistent extent fit in the file; a
  // directory naming one table many times (hostile input) is bounded here.
  uint64_t budget = 2 * (fsize / 4 + h.num_gtes_per_gt);
  uint64_t grains = 0;
  for (uint64_t i = 0; i < gd_entries; ++i) {
    const uint64_t gd_at = h.gd_offset * kSector + 4 * i;
    const uint64_t gt_off = uint64_t{gd[i]} * kSector;
    const std::string gname = "grain table " + std::to_string(i);
    bool have_gt = false;
    if (gd[i] != 0) {
      if (gt_off > fsize || gt_bytes > fsize - gt_off) {
        r.error(path, gd_at, "grain directory entry " + std::to_string(i),
                gname + " at sector " + std::to_string(gd[i]) + " is not inside the file");
      } else {
        f.read_at(gt_off, gt.data(), gt.size());
        used.push_back({gt_off, gt_off + gt_bytes, gd_at, "the " + gname});
        have_gt = true;
      }
    }
    if (!rgd.empty()) {
      const uint64_t rgd_at = h.rgd_offset * kSector + 4 * i;
      const uint64_t rgt_off = uint64_t{rgd[i]} * kSector;
      if ((rgd[i] == 0) != (gd[i] == 0)) {
        r.error(path, rgd_at, "redundant grain directory entry " + std::to_string(i),
                gd[i] == 0 ? "names a table the primary directory does not"
                           : "names no table where the primary directory does");
      } else if (rgd[i] != 0) {
        if (rgt_off > fsize || gt_bytes > fsize - rgt_off) {
          r.error(path, rgd_at, "redundant grain directory entry " + std::to_string(i),
                  "table at sector " + std::to_string(rgd[i]) + " is not inside the file");
        } else {
          f.read_at(rgt_off, rgt.data(), rgt.size());
          used.push_back({rgt_off, rgt_off + gt_bytes, rgd_at, "the redundant " + gname});
          if (have_gt && std::memcmp(gt.data(), rgt.data(), gt.size()) != 0) {
            size_t k = 0;
            while (load_le32(gt.data() + 4 * k) == load_le32(rgt.data() + 4 * k)) ++k;
            r.error(path, rgt_off + 4 * k, "redundant " + gname,
                    "entry " + std::to_string(k) + " is " +
                        std::to_string(load_le32(rgt.data() + 4 * k)) + ", the primary's " +
                        std::to_string(load_le32(gt.data() + 4 * k)));
          }
        }
      }
    }
    if (!have_gt) continue;
    if (budget < h.num_gtes_per_gt) {
      throw Error(ErrorKind::kCorrupt, path, gd_at,
                  "grain tables are named more often than the file can hold: not checked further");
    }
    budget -= h.num_gtes_per_gt;
    for (uint64_t k = 0; k < h.num_gtes_per_gt; ++k) {
      const uint32_t e = load_le32(gt.data() + 4 * k);
      if (e == kGteUnallocated) continue;
      const uint64_t at = gt_off + 4 * k;
      const std::string what = gname + " entry " + std::to_string(k);
      if (e == kGteZeroed && h.version >= 2) continue;
      if ((i * h.num_gtes_per_gt + k) * h.grain_size >= h.capacity) {
        r.error(path, at, what, "maps a grain beyond the extent's capacity");
        continue;
      }
      const uint64_t off = uint64_t{e} * kSector;
      // A compressed grain is a marker (lba, size) and its data, padded to
      // a sector; a plain grain is grain_size sectors.
      uint64_t len = grain_bytes;
      if (compressed) {
        uint8_t marker[12];
        if (off + sizeof marker > fsize) {
          len = sizeof marker;
        } else {
          f.read_at(off, marker, sizeof marker);
          len = (12 + uint64_t{load_le32(marker + 8)} + kSector - 1) / kSector * kSector;
        }
      }
      if (off > fsize || len > fsize - off) {
        r.error(path, at, what,
                "grain at sector " + std::to_string(e) + " runs past the end of the " +
                    std::to_string(fsize) + "-byte file");
        continue;
      }
      ++grains;
      used.push_back({off, off + len, at, "the grain of " + what});
    }
  }
  report_overlaps(used, path, r);
  r.note(path + ": " + std::to_string(grains) + " grains in " + std::to_string(gd_entries) +
         " grain tables");
}

}  // namespace

void check_vmdk(std::shared_ptr<const File> file, const OpenOptions& opts, CheckReport& r) {
  const std::string& path = file->path();
  uint8_t head[kSector] = {};
  const size_t got = file->read_some(0, head, sizeof head);
  if (got >= 4 && load_le32(head) == kSparseMagic) {
    check_sparse(*file, r);
    return;
  }
  if (got >= 8 && load_le64(head) == kSeSparseMagic) {
    r.note("seSparse extents: no table check (the content is read instead)");
    return;
  }
  if (!looks_like_descriptor(head, got) || file->size() > kMaxDescriptorBytes)
    throw Error(ErrorKind::kNotThisFormat, path, 0, "no KDMV header and no text descriptor");
  std::string text(static_cast<size_t>(file->size()), '\0');
  text.resize(file->read_some(0, text.data(), text.size()));
  const Descriptor d = parse_descriptor(text, path, 0);
  for (size_t i = 0; i < d.extents.size(); ++i) {
    const ExtentLine& e = d.extents[i];
    const uint64_t line_at = i < d.extent_lines.size() ? d.extent_lines[i].first : 0;
    if (e.kind == ExtentKind::kZero) continue;
    std::string epath;
    std::shared_ptr<const File> ef;
    try {
      epath = resolve_sibling(opts, path, e.file, "extent");
      ef = opts.environment().open_read(epath);
    } catch (const Error& err) {
      r.error(path, line_at, "extent " + std::to_string(i), err.message());
      continue;
    }
    if (e.kind == ExtentKind::kSparse) {
      check_sparse(*ef, r);
    } else if (e.kind == ExtentKind::kFlat || e.kind == ExtentKind::kVmfs) {
      const uint64_t need = (e.offset + e.sectors) * kSector;
      if (ef->size() < need) {
        r.error(path, line_at, "extent " + std::to_string(i),
                epath + " is " + std::to_string(ef->size()) + " bytes, the extent needs " +
                    std::to_string(need));
      }
    } else {
      r.note(std::string("extent ") + std::to_string(i) + " (" + extent_kind_name(e.kind) +
             "): not checked");
    }
  }
}

}  // namespace vdisk::vmdk
