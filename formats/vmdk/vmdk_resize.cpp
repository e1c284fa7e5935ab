// vdisk resize of a VMDK, in place (VDF "Hosted Sparse Extent Header",
// "Grain Directories and Grain Tables", "The Descriptor File"). qemu-img
// cannot resize VMDK at all; VMware's vmware-vdiskmanager -x does, and this
// follows what it leaves behind: extent lines, header capacities and
// ddb.geometry.cylinders changed, grain directories long enough for the
// new capacities.
//
// A hosted sparse extent (monolithicSparse, a piece of twoGbMaxExtentSparse)
// changes capacity in place. The grain directory has no size field: its
// length follows from the capacity. It grows in place into the zero padding
// of its last sector; when that is not enough, a new directory and a new
// redundant directory (the old entries, then new ones) are written at the
// end of the file. New entries name new, zero grain tables at the end of the
// file (VMware preallocates every table; QEMU cannot write through a zero
// entry). All of it is synced before the header that points at it.
//
// monolithicSparse: growing: tables, sync, header (sector 0), sync,
// embedded descriptor, sync. A crash between the header and the descriptor
// leaves a file QEMU opens at the new size (it reads the header) and we at
// the old one (an extent line shorter than its extent is legal). Shrinking:
// descriptor, header, then the grain table and directory entries past the
// new end are cleared (the caller checked that they read as zeros; their
// grains are not reclaimed).
//
// Descriptor files (monolithicFlat, twoGbMaxExtentFlat,
// twoGbMaxExtentSparse): growing first makes the new pieces (each a new file
// created exclusively, written and synced under its final name), then
// grows the last extent (a flat file extended with a hole; a sparse piece as
// above) up to the set's piece size, and only then replaces the descriptor
// (a new file in the same folder, synced, renamed over the old one), so
// the descriptor never names a missing or short extent. Shrinking replaces
// the descriptor first, then shortens the new last extent and removes the
// pieces past the end. A crash leaves a descriptor at the old or the new
// size over extents at least that long; at worst new pieces nothing names
// yet, which the next resize refuses to overwrite (naming them).
//
// Refused by name: streamOptimized (written once as a stream; convert it),
// bare extents and seSparse, vmfs* and device-backed descriptors, custom
// descriptors mixing extent types or sharing a file.
#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/resize.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_reader.h"
#include "formats/vmdk/vmdk_writer.h"

namespace vdisk::vmdk {

namespace {

// Header field offsets (vmdk_layout.h).
constexpr uint64_t kCapacityOff = 12;
constexpr uint64_t kRgdOffsetOff = 48;
constexpr uint64_t kGdOffsetOff = 56;

// Largest descriptor file we rewrite (the reader's bound).
constexpr uint64_t kMaxDescriptorBytes = 1 << 20;

// ddb.geometry.cylinders for a disk of `sectors`, from the descriptor's heads
// and sectors per track (VDF "The Disk Database"; 16383 at most for IDE's 16
// heads, as VMware caps it); nullopt when the descriptor has no usable
// geometry.
std::optional<std::string> cylinders_for(const Descriptor& d, uint64_t sectors) {
  auto h = d.ddb_value("ddb.geometry.heads"), s = d.ddb_value("ddb.geometry.sectors");
  uint64_t heads = 0, spt = 0;
  if (!h || !s) return std::nullopt;
  try {
    heads = std::stoull(*h), spt = std::stoull(*s);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (heads == 0 || spt == 0 || heads > 255 || spt > 63) return std::nullopt;
  const uint64_t cap = heads == 16 ? 16383 : 65535;
  return std::to_string(std::min<uint64_t>(sectors / (heads * spt), cap));
}

// `line` (one extent line, without its line end) with its sector count set
// to `sectors` and, when `file` is given, its file name set to it (quoted as
// the original was).
std::string edit_extent_line(const std::string& line, uint64_t sectors, const std::string* file) {
  // "RW 131072 SPARSE "name"": access, sectors, kind, name.
  const size_t first = line.find_first_not_of(" \t");
  const size_t sp = line.find_first_of(" \t", first);
  const size_t num = line.find_first_not_of(" \t", sp);
  const size_t num_end = line.find_first_not_of("0123456789", num);
  std::string out = line.substr(0, num) + std::to_string(sectors);
  std::string rest = line.substr(num_end);
  if (file) {
    const size_t kind = rest.find_first_not_of(" \t");
    const size_t kind_end = rest.find_first_of(" \t", kind);
    const size_t name = rest.find_first_not_of(" \t", kind_end);
    size_t name_end;
    bool quoted = rest[name] == '"';
    if (quoted)
      name_end = rest.find('"', name + 1) + 1;
    else
      name_end = std::min(rest.find_first_of(" \t", name), rest.size());
    rest = rest.substr(0, name) + (quoted ? "\"" + *file + "\"" : *file) + rest.substr(name_end);
  }
  return out + rest;
}

// The descriptor `text` describing the extents `want` instead of its own:
// the extent lines kept have their sector counts changed, lines past
// want.size() are dropped, and extents past the old count get lines made
// after the last old one (same access, type, quoting, offset) with their
// own count and name. ddb.geometry.cylinders follows the new total. Every
// other line, comment and line end is kept byte for byte; the result is
// parsed back and must describe `want`.
std::string edit_descriptor(const std::string& text, const std::vector<ExtentLine>& want,
                            const std::string& path, uint64_t base_offset) {
  const Descriptor d = parse_descriptor(text, path, base_offset);
  const size_t old_count = d.extents.size();
  uint64_t total = 0;
  for (const ExtentLine& e : want) total += e.sectors;
  const std::optional<std::string> cyl_text = cylinders_for(d, total);
  std::string out;
  size_t index = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    end = end == std::string::npos ? text.size() : end + 1;
    std::string line = text.substr(at, end - at);
    at = end;
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') {
      out += line;
      continue;
    }
    const std::string body = line.substr(first);
    const bool is_extent = body.rfind("RW ", 0) == 0 || body.rfind("RDONLY ", 0) == 0 ||
                           body.rfind("NOACCESS ", 0) == 0 || body.rfind("RW\t", 0) == 0;
    if (is_extent) {
      const size_t i = index++;
      if (i >= want.size()) continue;  // dropped
      // The line without its end ("\n" or "\r\n"; none at the end of text).
      size_t body_end = line.size();
      if (body_end && line[body_end - 1] == '\n') --body_end;
      if (body_end && line[body_end - 1] == '\r') --body_end;
      const std::string bare = line.substr(0, body_end);
      const std::string term = body_end < line.size() ? line.substr(body_end) : "\n";
      out += edit_extent_line(bare, want[i].sectors, nullptr);
      if (i + 1 == old_count && want.size() > old_count) {
        out += term;
        for (size_t j = old_count; j < want.size(); ++j)
          out += edit_extent_line(bare, want[j].sectors, &want[j].file) + term;
        if (body_end == line.size()) out.resize(out.size() - term.size());
      } else {
        out += line.substr(body_end);
      }
    } else if (cyl_text && body.rfind("ddb.geometry.cylinders", 0) == 0) {
      const size_t q1 = line.find('"'), q2 = q1 == std::string::npos ? q1 : line.find('"', q1 + 1);
      if (q2 != std::string::npos) line = line.substr(0, q1 + 1) + *cyl_text + line.substr(q2);
      out += line;
    } else {
      out += line;
    }
  }
  // The edit must describe what we meant: parse it back.
  const Descriptor back = parse_descriptor(out, path, base_offset);
  bool same = index == old_count && back.extents.size() == want.size();
  for (size_t i = 0; same && i < want.size(); ++i)
    same = back.extents[i].sectors == want[i].sectors && back.extents[i].file == want[i].file &&
           back.extents[i].kind == want[i].kind;
  if (!same) {
    throw Error(ErrorKind::kUnsupported, path, base_offset,
                "cannot resize: the descriptor's extent lines could not be rewritten");
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

// The capacity change of one hosted sparse extent (header at sector 0 of
// `file`), planned and checked when constructed, written by grow() or
// shrink(). Refusals name `file`.
class SparseExtentResize {
 public:
  SparseExtentResize(UpdateFile& file, const std::string& create_type, uint64_t new_sectors)
      : file_(file) {
    uint8_t hb[kSector] = {};
    if (file.read_some(0, hb, sizeof hb) < sizeof hb || load_le32(hb) != kSparseMagic)
      refuse(0, "no hosted sparse extent header (KDMV) at its start");
    std::memcpy(header_, hb, kSector);
    // The reader validated this header when it opened the layer; a file
    // changed since then is refused, not trusted.
    const std::optional<SparseHeader> h = decode_sparse_header(hb);
    if (!h) refuse(0, "its hosted sparse extent header is not valid");
    h_ = *h;
    if (create_type == "streamOptimized" || (h_.flags & (kFlagMarkers | kFlagCompressed))) {
      refuse(8,
             "a streamOptimized VMDK is written once, as a stream, with compressed grains; it is "
             "not resized in place (convert it to monolithicSparse, resize, convert back)");
    }
    grain_ = h_.grain_size * kSector;
    gtes_ = h_.num_gtes_per_gt;
    old_grains_ = div_round_up(h_.capacity * kSector, grain_);
    new_grains_ = div_round_up(new_sectors * kSector, grain_);
    old_tables_ = div_round_up(old_grains_, gtes_);
    new_tables_ = div_round_up(new_grains_, gtes_);
    // GD entries are 32-bit sector numbers; QEMU refuses directories above
    // 512 Mi entries.
    if (new_tables_ > (uint64_t{1} << 29))
      refuse(std::nullopt, "the grain directory would need " + std::to_string(new_tables_) +
                               " entries (more than any reader accepts)");
    const bool have_rgd = (h_.flags & kFlagRedundantGd) && h_.rgd_offset != 0;
    dirs_.push_back(read_directory(file, h_.gd_offset, old_tables_));
    if (have_rgd) dirs_.push_back(read_directory(file, h_.rgd_offset, old_tables_));
    store_le64(header_ + kCapacityOff, new_sectors);
    if (new_tables_ > old_tables_) plan_tables();
  }

  const SparseHeader& header() const { return h_; }

  // Growing: new directory entries and tables, sync, header, sync.
  void grow() {
    // Entries past the old end (in the old last table) must read as
    // unallocated once they are inside the disk.
    for (const Directory& d : dirs_) clear_table_tail(file_, d, old_grains_, gtes_);
    if (!plans_.empty()) {
      file_.set_size(file_end_);
      for (const Plan& p : plans_) {
        if (p.gd_at) {
          file_.write_at(p.gd_at, p.entries.data(), p.entries.size());
          store_le64(header_ + (p.dir == 0 ? kGdOffsetOff : kRgdOffsetOff), p.gd_at / kSector);
        } else {
          file_.write_at(dirs_[p.dir].sector * kSector + old_tables_ * 4,
                         &p.entries[old_tables_ * 4], (new_tables_ - old_tables_) * 4);
        }
      }
    }
    file_.sync();
    file_.write_at(0, header_, kSector);
    file_.sync();
  }

  // Shrinking: header, sync, then what lies past the new end (table
  // entries, then directory entries), sync.
  void shrink() {
    file_.write_at(0, header_, kSector);
    file_.sync();
    for (const Directory& d : dirs_) clear_table_tail(file_, d, new_grains_, gtes_);
    if (old_tables_ > new_tables_) {
      const std::vector<uint8_t> zeros((old_tables_ - new_tables_) * 4, 0);
      for (const Directory& d : dirs_)
        file_.write_at(d.sector * kSector + new_tables_ * 4, zeros.data(), zeros.size());
    }
    file_.sync();
  }

 private:
  struct Plan {
    size_t dir;
    uint64_t gd_at;  // 0: grows in place
    std::vector<uint8_t> entries;
  };

  [[noreturn]] void refuse(std::optional<uint64_t> at, const std::string& why) const {
    throw Error(ErrorKind::kUnsupported, file_.path(), at, "cannot resize: " + why);
  }

  // Every directory entry inside the disk names a table: QEMU does not make
  // tables on demand (a zero entry inside the capacity makes its writes fail
  // or land at sector 0), and VMware preallocates them. The new tables go at
  // the end of the file, zeros (a hole the file is extended over), after a
  // new directory when the old one's last sector has no room: per directory
  // (the redundant one first, as VMware lays out a fresh file)
  // [directory][tables].
  void plan_tables() {
    const uint64_t room = align_up(old_tables_ * 4, kSector) / 4;
    const bool gd_fits = new_tables_ <= room;
    const uint64_t gd_bytes = align_up(new_tables_ * 4, kSector);
    const uint64_t gt_bytes = align_up(uint64_t{gtes_} * 4, kSector);
    uint64_t at = align_up(file_.size(), kSector);
    for (size_t k = dirs_.size(); k-- > 0;) {
      Plan p{k, 0, std::vector<uint8_t>(gd_bytes, 0)};
      for (uint64_t i = 0; i < old_tables_; ++i) store_le32(&p.entries[i * 4], dirs_[k].entry[i]);
      if (!gd_fits) p.gd_at = at, at += gd_bytes;
      for (uint64_t i = old_tables_; i < new_tables_; ++i, at += gt_bytes) {
        if (at / kSector > UINT32_MAX)
          refuse(std::nullopt,
                 "the grain tables would lie past the 2 TiB a directory entry can address");
        store_le32(&p.entries[i * 4], static_cast<uint32_t>(at / kSector));
      }
      plans_.push_back(std::move(p));
    }
    // Grains QEMU or VMware add later start on a grain boundary.
    file_end_ = align_up(at, grain_);
  }

  UpdateFile& file_;
  uint8_t header_[kSector];
  SparseHeader h_;
  uint64_t grain_ = 0;
  uint32_t gtes_ = 0;
  uint64_t old_grains_ = 0, new_grains_ = 0, old_tables_ = 0, new_tables_ = 0;
  std::vector<Directory> dirs_;
  std::vector<Plan> plans_;
  uint64_t file_end_ = 0;
};

// monolithicSparse: one hosted sparse extent with its descriptor embedded.
void resize_monolithic_sparse(const ResizeRequest& req, const VmdkDevice& dev) {
  UpdateFile& file = req.file;
  const std::string& path = file.path();
  const uint64_t new_sectors = req.new_size / kSector;
  SparseExtentResize sparse(file, dev.descriptor().create_type, new_sectors);
  const SparseHeader& h = sparse.header();
  if (h.descriptor_offset == 0 || h.descriptor_size == 0) {
    refuse_resize(req, 28,
                  "this is a bare sparse extent (one piece of a twoGbMaxExtentSparse set?); "
                  "resize the set through its descriptor file");
  }
  // The new descriptor must fit in the room the header reserves for it.
  const uint64_t doff = h.descriptor_offset * kSector;
  const uint64_t dlen = h.descriptor_size * kSector;
  std::string text(static_cast<size_t>(dlen), '\0');
  file.read_at(doff, text.data(), text.size());
  text.resize(std::min(text.size(), text.find('\0')));
  std::vector<ExtentLine> want = parse_descriptor(text, path, doff).extents;
  if (want.size() != 1) refuse_resize(req, doff, "the embedded descriptor has no single extent");
  want[0].sectors = new_sectors;
  const std::string new_text = edit_descriptor(text, want, path, doff);
  if (new_text.size() > dlen) {
    refuse_resize(req, 36,
                  "the new embedded descriptor needs " + std::to_string(new_text.size()) +
                      " bytes but the header reserves " + std::to_string(dlen) + " (" +
                      std::to_string(h.descriptor_size) + " sectors) for it");
  }
  std::vector<uint8_t> desc_area(std::max(text.size(), new_text.size()), 0);
  std::memcpy(desc_area.data(), new_text.data(), new_text.size());

  if (new_sectors > h.capacity) {
    sparse.grow();
    file.write_at(doff, desc_area.data(), desc_area.size());
    file.sync();
  } else {
    file.write_at(doff, desc_area.data(), desc_area.size());
    file.sync();
    sparse.shrink();
  }
}

// A descriptor file whose extents are other files in its folder.
void resize_descriptor_file(const ResizeRequest& req, const VmdkDevice& dev) {
  const std::string& path = req.file.path();
  const Descriptor& d = dev.descriptor();
  const std::string& type = d.create_type;
  Env& env = req.opts.environment();
  auto refuse = [&](std::optional<uint64_t> at, const std::string& why) {
    refuse_resize(req, at, why);
  };
  if (type == "fullDevice" || type == "partitionedDevice") {
    refuse(std::nullopt, "a " + type +
                             " VMDK maps a host disk (device-backed extents); its size is the "
                             "device's, not the image's");
  }
  if (type != "monolithicFlat" && type != "twoGbMaxExtentFlat" && type != "twoGbMaxExtentSparse") {
    refuse(std::nullopt,
           "resizing a VMDK of createType \"" + type +
               "\" is not supported (vmfs*, seSparse and custom layouts are not); "
               "monolithicSparse, monolithicFlat, twoGbMaxExtentFlat and twoGbMaxExtentSparse are");
  }
  const bool sparse = type == "twoGbMaxExtentSparse";
  const bool split = type != "monolithicFlat";
  const ExtentKind kind = sparse ? ExtentKind::kSparse : ExtentKind::kFlat;
  if (!split && d.extents.size() != 1)
    refuse(std::nullopt, "a monolithicFlat descriptor with " + std::to_string(d.extents.size()) +
                             " extent lines (one is expected)");
  // Every extent a file of its own in the folder, of the createType's kind:
  // what the set's writers make, and what a piece can be changed as.
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (size_t i = 0; i < d.extents.size(); ++i) {
    const ExtentLine& e = d.extents[i];
    const std::optional<uint64_t> at =
        i < d.extent_lines.size() ? std::optional<uint64_t>(d.extent_lines[i].first) : std::nullopt;
    const std::string line = i < d.extent_lines.size() ? " '" + d.extent_lines[i].second + "'" : "";
    if (e.kind != kind || e.access != "RW" || e.offset != 0) {
      refuse(at, "extent line" + line + " is not an RW " + extent_kind_name(kind) +
                     " extent at offset 0, as a " + type + " disk's are (a custom descriptor)");
    }
    files.push_back(resolve_sibling(req.opts, path, e.file, "extent"));
    if (!seen.insert(env.real_path(files.back())).second)
      refuse(at, "extent line" + line + " names a file another line names too");
  }

  const uint64_t old_sectors = d.total_sectors();
  const uint64_t new_sectors = req.new_size / kSector;
  std::vector<ExtentLine> want = d.extents;
  std::vector<std::string> dropped;  // files of extents past a new, smaller end
  if (new_sectors > old_sectors) {
    // The set's piece size: what its first piece holds when there are more
    // (qemu-img makes 2 GiB pieces, VMware and our writer 2047 MiB), else
    // the larger of VMware's and the only piece's.
    const uint64_t limit = !split                 ? UINT64_MAX
                           : d.extents.size() > 1 ? d.extents[0].sectors
                                                  : std::max(kTwoGbExtentSectors, want[0].sectors);
    uint64_t more = new_sectors - old_sectors;
    const uint64_t room = limit > want.back().sectors ? limit - want.back().sectors : 0;
    // QEMU takes a sparse piece's size from its header's capacity, not from
    // the extent line: a sparse piece that grew while the descriptor still
    // names the old set would show QEMU a size that is neither. So a sparse
    // last piece grows only when it takes the whole change (its header is
    // then QEMU's switch, the descriptor ours); else it keeps its size and
    // the new pieces (unnamed until the descriptor names them all at once)
    // take it all. Flat pieces are sized by their lines for every reader.
    const uint64_t add = sparse && more > room ? 0 : std::min(more, room);
    want.back().sectors += add;
    more -= add;
    if (more > 0) {
      // New pieces are named after the last one: "<base>-s<NNN>.vmdk".
      const std::string& last = want.back().file;
      const std::string tag = sparse ? "-s" : "-f";
      const size_t dash = last.rfind(tag);
      uint64_t number = 0;
      const bool named = last.find('/') == std::string::npos && dash != std::string::npos &&
                         last.size() == dash + 2 + 3 + 5 && last.substr(dash + 5) == ".vmdk" &&
                         last.find_first_not_of("0123456789", dash + 2) == dash + 5;
      if (!named)
        refuse(std::nullopt, "the last extent '" + last + "' is not named <base>" + tag +
                                 "NNN.vmdk, so new pieces cannot be named after it");
      number = std::stoull(last.substr(dash + 2, 3));
      const std::string base = last.substr(0, dash);
      while (more > 0) {
        const uint64_t n = std::min(more, limit);
        if (want.size() >= kMaxExtents || number >= kMaxExtents)
          refuse(std::nullopt, "a " + type + " disk of " + std::to_string(req.new_size) +
                                   " bytes would need more than " + std::to_string(kMaxExtents) +
                                   " pieces");
        want.push_back({"RW", n, kind, piece_name(base, sparse, ++number), 0});
        more -= n;
      }
    }
  } else {
    uint64_t start = 0;
    size_t keep = 0;
    while (start + want[keep].sectors < new_sectors) start += want[keep++].sectors;
    want[keep].sectors = new_sectors - start;
    for (size_t i = keep + 1; i < want.size(); ++i) dropped.push_back(files[i]);
    want.resize(keep + 1);
  }

  // The new descriptor.
  if (req.file.size() > kMaxDescriptorBytes) refuse(0, "the descriptor is larger than 1 MiB");
  std::string text(static_cast<size_t>(req.file.size()), '\0');
  req.file.read_at(0, text.data(), text.size());
  const std::string new_text = edit_descriptor(text, want, path, 0);

  // The new pieces, created exclusively (a file already under such a name is
  // never replaced), before anything is written.
  struct NewPiece {
    std::unique_ptr<OutputFile> out;
    uint64_t sectors;
  };
  std::vector<NewPiece> pieces;
  for (size_t i = d.extents.size(); i < want.size(); ++i) {
    const std::string p = resolve_sibling(req.opts, path, want[i].file, "extent");
    if (env.exists(p)) {
      refuse(std::nullopt, "a file named like the new piece '" + want[i].file +
                               "' exists and the descriptor does not name it (left by an "
                               "interrupted resize?); move it away first");
    }
    pieces.push_back({env.create_output(p, false), want[i].sectors});
  }
  // The extent whose length changes: the last one kept.
  const size_t changed = std::min(d.extents.size(), want.size()) - 1;
  std::unique_ptr<UpdateFile> last;
  std::optional<SparseExtentResize> last_sparse;
  uint64_t grain = 0;
  if (want[changed].sectors != d.extents[changed].sectors || sparse) {
    last = env.open_update(files[changed]);
    if (sparse) {
      last_sparse.emplace(*last, type, want[changed].sectors);
      grain = last_sparse->header().grain_size * kSector;
      if (!pieces.empty() && (grain < 4096 || grain > (1u << 20) || (grain & (grain - 1))))
        refuse(std::nullopt, "the last piece's grain of " + std::to_string(grain) +
                                 " bytes is not one new pieces are made with (4K..1M)");
    } else if (last->size() != d.extents[changed].sectors * kSector) {
      // Bytes past the extent would appear in the guest as the grown part.
      refuse(std::nullopt, "the flat extent file " + files[changed] + " is " +
                               std::to_string(last->size()) + " bytes, not the " +
                               std::to_string(d.extents[changed].sectors * kSector) +
                               " its extent line gives it");
    }
  }
  const bool last_changes = want[changed].sectors != d.extents[changed].sectors;

  auto replace_descriptor = [&] {
    std::unique_ptr<OutputFile> out = env.create_output(path, true);
    out->write_at(0, new_text.data(), new_text.size());
    out->commit();
  };
  if (new_sectors > old_sectors) {
    for (NewPiece& p : pieces) {
      if (sparse) {
        write_empty_sparse_extent(*p.out, p.sectors, grain);
      } else {
        p.out->reserve(p.sectors * kSector);  // a hole: never zeros written
        p.out->set_size(p.sectors * kSector);
      }
      p.out->commit();
    }
    if (last_changes && sparse) {
      last_sparse->grow();
    } else if (last_changes) {
      last->set_size(want[changed].sectors * kSector);
      last->sync();
    }
    replace_descriptor();
    return;
  }
  replace_descriptor();
  if (last_changes && sparse) {
    last_sparse->shrink();
  } else if (last_changes) {
    last->set_size(want[changed].sectors * kSector);
    last->sync();
  }
  for (const std::string& f : dropped) env.remove_file(f);
}

}  // namespace

void resize_vmdk(const ResizeRequest& req) {
  const VmdkDevice& dev = resize_layer<VmdkDevice>(req, "VMDK");
  check_resize_size(req, "VMDK", kSector, kSector);
  uint8_t magic[4] = {};
  if (req.file.read_some(0, magic, sizeof magic) == sizeof magic &&
      load_le32(magic) == kSparseMagic)
    resize_monolithic_sparse(req, dev);
  else if (dev.descriptor().extent_lines.empty())
    refuse_resize(req, 0, "a bare extent (seSparse) is resized through its descriptor");
  else
    resize_descriptor_file(req, dev);
}

}  // namespace vdisk::vmdk
