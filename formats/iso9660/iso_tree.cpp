#include "formats/iso9660/iso_tree.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/iso9660/iso_layout.h"
#include "formats/iso9660/iso_names.h"
#include "formats/iso9660/iso_rockridge.h"

namespace vdisk::iso9660 {

namespace {

// Descriptors after the primary are few (boot, Joliet, enhanced, terminator);
// a set longer than this is damage, not a real volume.
constexpr int kMaxDescriptors = 64;
// A directory larger than this is damage (the largest real ones are a few MiB).
constexpr uint64_t kMaxDirectoryBytes = 64ull * 1024 * 1024;
// The boot catalog: at most this many sectors are parsed.
constexpr uint64_t kMaxCatalogSectors = 4;

std::vector<uint8_t> read_bytes(const BlockDevice& dev, const std::string& label, uint64_t offset,
                                uint64_t len, const std::string& what) {
  if (offset > dev.size() || len > dev.size() - offset) {
    throw Error(ErrorKind::kCorrupt, label, offset,
                what + " (" + std::to_string(len) + " bytes) runs past the end of the image (" +
                    std::to_string(dev.size()) + " bytes): truncated or damaged ISO");
  }
  std::vector<uint8_t> buf(static_cast<size_t>(len));
  dev.read(offset, buf.data(), buf.size());
  return buf;
}

const char* platform_name(uint8_t p) {
  switch (p) {
    case 0:
      return "x86";
    case 1:
      return "PowerPC";
    case 2:
      return "Mac";
    case 0xEF:
      return "EFI";
    default:
      return "unknown";
  }
}

const char* media_name(uint8_t m) {
  switch (m & 0x0F) {
    case 0:
      return "no emulation";
    case 1:
      return "1.2 MB floppy";
    case 2:
      return "1.44 MB floppy";
    case 3:
      return "2.88 MB floppy";
    case 4:
      return "hard disk";
    default:
      return "unknown";
  }
}

BootEntry decode_boot_entry(const uint8_t* e, uint8_t platform) {
  BootEntry b;
  b.platform = platform;
  b.bootable = e[0] == et::kBootable;
  b.media = e[et::kMedia] & 0x0F;
  b.load_segment = load_le16(e + et::kLoadSegment);
  b.system_type = e[et::kSystemType];
  b.sector_count = load_le16(e + et::kSectorCount);
  b.load_rba = load_le32(e + et::kLoadRba);
  return b;
}

// El Torito 2.0-2.4: validation entry, initial/default entry, then sections.
std::vector<BootEntry> read_boot_catalog(const BlockDevice& dev, const std::string& label,
                                         uint32_t lba) {
  uint64_t off = static_cast<uint64_t>(lba) * kSectorSize;
  uint64_t avail = off < dev.size() ? dev.size() - off : 0;
  uint64_t len = std::min<uint64_t>(avail, kMaxCatalogSectors * kSectorSize);
  if (len < 2 * et::kEntrySize) {
    throw Error(ErrorKind::kCorrupt, label, off, "El Torito boot catalog lies outside the image");
  }
  std::vector<uint8_t> cat = read_bytes(dev, label, off, len, "El Torito boot catalog");
  const uint8_t* v = cat.data();
  uint16_t sum = 0;
  for (size_t i = 0; i < et::kEntrySize; i += 2)
    sum = static_cast<uint16_t>(sum + load_le16(v + i));
  if (v[0] != 1 || v[30] != 0x55 || v[31] != 0xAA || sum != 0) {
    throw Error(ErrorKind::kCorrupt, label, off,
                "El Torito validation entry is invalid (header, 55 AA key or checksum)");
  }
  std::vector<BootEntry> out;
  out.push_back(decode_boot_entry(v + et::kEntrySize, v[et::kPlatform]));
  size_t pos = 2 * et::kEntrySize;
  while (pos + et::kEntrySize <= cat.size()) {
    const uint8_t* h = cat.data() + pos;
    if (h[0] != et::kHeaderMore && h[0] != et::kHeaderLast) break;
    uint8_t platform = h[et::kPlatform];
    unsigned count = load_le16(h + et::kSectionCount);
    pos += et::kEntrySize;
    for (unsigned i = 0; i < count && pos + et::kEntrySize <= cat.size(); ++i) {
      out.push_back(decode_boot_entry(cat.data() + pos, platform));
      pos += et::kEntrySize;
      while (pos + et::kEntrySize <= cat.size() && cat[pos] == et::kExtensionEntry)
        pos += et::kEntrySize;
    }
    if (h[0] == et::kHeaderLast) break;
  }
  return out;
}

// One directory record, decoded.
struct Record {
  uint64_t offset = 0;  // device offset of the record
  uint8_t flags = 0;
  uint8_t ext_attr = 0;
  uint32_t lba = 0;
  uint32_t size = 0;
  uint8_t unit_size = 0;
  std::string name;  // raw identifier bytes
  Timestamp date;
  std::vector<uint8_t> system_use;
  uint64_t system_use_offset = 0;
};

Record decode_record(const uint8_t* r, size_t len, uint64_t where) {
  Record rec;
  rec.offset = where;
  rec.ext_attr = r[dr::kExtAttrLength];
  rec.lba = load_le32(r + dr::kExtent);
  rec.size = load_le32(r + dr::kDataLength);
  rec.date = decode_record_date(r + dr::kDate);
  rec.flags = r[dr::kFlags];
  rec.unit_size = r[dr::kUnitSize];
  size_t nlen = r[dr::kNameLength];
  rec.name.assign(reinterpret_cast<const char*>(r + dr::kName), nlen);
  size_t su = dr::kName + nlen + (nlen % 2 == 0 ? 1 : 0);
  if (su < len) {
    rec.system_use.assign(r + su, r + len);
    rec.system_use_offset = where + su;
  }
  return rec;
}

// Splits a directory extent into records (ECMA-119 6.8.1.1: records never
// cross a sector; a zero length byte means "continue at the next sector").
std::vector<Record> parse_directory(const std::vector<uint8_t>& data, uint64_t base,
                                    const std::string& label) {
  std::vector<Record> out;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t sector_end = std::min<size_t>(data.size(), (pos / kSectorSize + 1) * kSectorSize);
    uint8_t len = data[pos];
    if (len == 0) {
      pos = sector_end;
      continue;
    }
    if (len < dr::kFixedSize + 1 || pos + len > sector_end ||
        dr::kFixedSize + data[pos + dr::kNameLength] > len) {
      throw Error(ErrorKind::kCorrupt, label, base + pos,
                  "directory record of length " + std::to_string(len) + " with name length " +
                      std::to_string(
                          pos + dr::kNameLength < data.size() ? data[pos + dr::kNameLength] : 0) +
                      " does not fit its sector");
    }
    out.push_back(decode_record(data.data() + pos, len, base + pos));
    pos += len;
  }
  return out;
}

struct Node {
  NodeStat st;
  NodeId parent = 0;
  // Directories: the device offset of the one record that names this
  // directory (kNoRecord for the root). ECMA-119 gives every directory one
  // parent; a second record naming the same extent makes a DAG, whose
  // walk is exponential in its depth.
  uint64_t named_by = 0;
  uint64_t dir_offset = 0;  // directories: extent
  uint64_t dir_size = 0;
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // files: (device offset, length)
  bool interleaved = false;
};

constexpr uint64_t kNoRecord = ~uint64_t{0};

// One directory's listing as cached: what is shown and what was left out.
struct Listing {
  std::vector<DirEntry> entries;
  std::vector<SkippedEntry> skipped;
  size_t bytes = 0;  // memory held, for the cache budget
};

enum class NameSource { kRockRidge, kJoliet, kIso9660 };

class IsoTree final : public FileTree {
 public:
  IsoTree(BlockDevicePtr dev, std::string label, const TreeOptions& opts)
      : dev_(std::move(dev)), label_(std::move(label)), raw_names_(opts.raw_names) {
    vds_ = read_volume_descriptors(*dev_, label_);
    // Rock Ridge is announced by SP in the root's "." record (SUSP 5.3).
    Record pvd_root = decode_record(vds_.primary.data() + vd::kRootRecord, 34,
                                    16 * kSectorSize + vd::kRootRecord);
    Record dot = read_dot(pvd_root.lba);
    RockRidgeEntries rr;
    if (!dot.system_use.empty()) {
      parse_system_use(*dev_, label_, dot.system_use.data(), dot.system_use.size(),
                       dot.system_use_offset, rr);
    }
    const std::vector<uint8_t>* root_vd = &vds_.primary;
    if (rr.has_sp) {
      source_ = NameSource::kRockRidge;
      skip_ = rr.sp_skip;
    } else if (!vds_.joliet.empty()) {
      source_ = NameSource::kJoliet;
      root_vd = &vds_.joliet;
    }
    Record root = decode_record(root_vd->data() + vd::kRootRecord, 34, 0);
    root_ = static_cast<uint64_t>(root.lba) * kSectorSize;
    nodes_[root_] = make_dir_node_from_dot(root.lba, root_, kNoRecord);
  }

  NodeId root() const override { return root_; }

  NodeStat stat(NodeId id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return find(id).st;
  }

  std::vector<DirEntry> list(NodeId dir) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return listing(dir).entries;
  }

  std::vector<SkippedEntry> skipped(NodeId dir) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return listing(dir).skipped;
  }

  NodeId lookup(NodeId dir, const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    const Listing& l = listing(dir);
    for (const DirEntry& e : l.entries) {
      if (e.name == name) return e.stat.id;
    }
    // Plain ISO 9660 names match as Linux matches them by default
    // (check=relaxed, map=normal): any case, with or without ";1".
    if (source_ == NameSource::kIso9660) {
      std::string want = relaxed_name(name);
      for (const DirEntry& e : l.entries) {
        if (relaxed_name(e.name) == want) return e.stat.id;
      }
    }
    throw Error(ErrorKind::kNotFound, "", std::nullopt, "no entry named '" + name + "'");
  }

  size_t read(NodeId file, uint64_t offset, void* buf, size_t len) const override {
    std::vector<std::pair<uint64_t, uint64_t>> extents;
    uint64_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Node& n = find(file);
      if (n.st.type != NodeType::kRegular) {
        throw Error(ErrorKind::kInvalidArgument, label_, std::nullopt, "not a regular file");
      }
      if (n.interleaved)
        throw_unsupported(label_, "interleaved files (ECMA-119 file unit size) are not supported");
      extents = n.extents;
      size = n.st.size;
    }
    if (offset >= size) return 0;
    len = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    uint64_t ext_start = 0;
    for (auto& [dev_off, ext_len] : extents) {
      if (done == len) break;
      uint64_t pos = offset + done;
      if (pos < ext_start + ext_len) {
        uint64_t in = pos - ext_start;
        size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, ext_len - in));
        if (dev_off + in + n > dev_->size()) {
          throw Error(ErrorKind::kCorrupt, label_, dev_off,
                      "file extent of " + std::to_string(ext_len) +
                          " bytes runs past the end of the image (" + std::to_string(dev_->size()) +
                          " bytes): truncated ISO");
        }
        dev_->read(dev_off + in, out + done, n);
        done += n;
      }
      ext_start += ext_len;
    }
    return done;
  }

  std::string readlink(NodeId link) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (find(link).st.type != NodeType::kSymlink)
        throw Error(ErrorKind::kInvalidArgument, label_, std::nullopt, "not a symlink");
    }
    // The target is decoded again from the record (a symlink's id is its
    // record's offset) rather than kept: many records can share one CE area,
    // and 4 KiB per symlink held for the life of a mount adds up.
    uint8_t len = 0;
    dev_->read(link, &len, 1);
    if (len < dr::kFixedSize + 1 || link % kSectorSize + len > kSectorSize)
      throw Error(ErrorKind::kCorrupt, label_, link, "symlink record changed or damaged");
    std::vector<uint8_t> rec = read_bytes(*dev_, label_, link, len, "directory record");
    return rock_ridge(decode_record(rec.data(), len, link)).link_target;
  }

  Json info() const override {
    Json j = volume_details(*dev_, label_, vds_);
    j.set("names_from", source_ == NameSource::kRockRidge ? "Rock Ridge"
                        : source_ == NameSource::kJoliet  ? "Joliet"
                                                          : "ISO 9660");
    return j;
  }

 private:
  // A directory listing is bounded in the memory it takes (names, entries)
  // and in the Rock Ridge continuation bytes it reads, however its records
  // are crafted; the cache of listings (a mount keeps using it) is bounded
  // in bytes and forgets the oldest listings first.
  static constexpr size_t kMaxListingBytes = 64u << 20;
  static constexpr uint64_t kMaxListingContinuationBytes = 16u << 20;  // + 32 x the directory
  static constexpr size_t kCacheBytes = 64u << 20;

  const Node& find(NodeId id) const {
    auto it = nodes_.find(id);
    if (it == nodes_.end())
      throw Error(ErrorKind::kNotFound, label_, std::nullopt,
                  "unknown node id " + std::to_string(id));
    return it->second;
  }

  // The listing of `dir`, from the cache or read now. Caller holds mu_.
  const Listing& listing(NodeId dir) const {
    auto cached = listings_.find(dir);
    if (cached != listings_.end()) return cached->second;
    const Node& d = find(dir);
    if (d.st.type != NodeType::kDirectory) {
      throw Error(ErrorKind::kInvalidArgument, label_, std::nullopt, "not a directory");
    }
    std::vector<uint8_t> data =
        read_bytes(*dev_, label_, d.dir_offset, d.dir_size, "directory extent");
    std::vector<Record> recs = parse_directory(data, d.dir_offset, label_);
    data = {};
    Listing l;
    uint64_t ce_bytes = 0;
    // A record that continues into a CE area is at least 62 bytes; real ones
    // continue into a few hundred bytes. Shared areas read again and again
    // are what this stops.
    const uint64_t ce_budget = kMaxListingContinuationBytes + 32 * d.dir_size;
    for (size_t i = 0; i < recs.size(); ++i) {
      size_t j = i;
      // ECMA-119 9.1.6: a file's extents are consecutive records with the same
      // identifier, each but the last flagged multi-extent.
      while ((recs[j].flags & dr::kFlagMultiExtent) && j + 1 < recs.size() &&
             recs[j + 1].name == recs[i].name)
        ++j;
      size_t skipped_before = l.skipped.size();
      make_entry(dir, recs, i, j, l, ce_bytes);
      for (size_t k = skipped_before; k < l.skipped.size(); ++k)
        l.bytes += sizeof(SkippedEntry) + l.skipped[k].name.size() + l.skipped[k].reason.size();
      i = j;
      if (l.bytes > kMaxListingBytes || ce_bytes > ce_budget) {
        throw Error(ErrorKind::kCorrupt, label_, d.dir_offset,
                    "directory of " + std::to_string(d.dir_size) + " bytes decodes to more than " +
                        std::to_string(l.bytes > kMaxListingBytes ? kMaxListingBytes >> 20
                                                                  : ce_budget >> 20) +
                        (l.bytes > kMaxListingBytes ? " MiB of entries"
                                                    : " MiB of Rock Ridge continuation areas") +
                        " (crafted to exhaust memory?)");
      }
    }
    // Forget the oldest listings until this one fits the cache.
    while (!cache_order_.empty() && cache_bytes_ + l.bytes > kCacheBytes) {
      auto old = listings_.find(cache_order_.front());
      cache_bytes_ -= old->second.bytes;
      listings_.erase(old);
      cache_order_.pop_front();
    }
    cache_bytes_ += l.bytes;
    cache_order_.push_back(dir);
    return listings_.emplace(dir, std::move(l)).first->second;
  }

  Record read_dot(uint32_t lba) const {
    uint64_t off = static_cast<uint64_t>(lba) * kSectorSize;
    std::vector<uint8_t> sec =
        read_bytes(*dev_, label_, off, kSectorSize, "directory at block " + std::to_string(lba));
    uint8_t len = sec[0];
    if (len < 34 || sec[dr::kNameLength] != 1 || sec[dr::kName] != 0 ||
        !(sec[dr::kFlags] & dr::kFlagDirectory)) {
      throw Error(ErrorKind::kCorrupt, label_, off, "directory does not start with a '.' record");
    }
    return decode_record(sec.data(), len, off);
  }

  RockRidgeEntries rock_ridge(const Record& r) const {
    RockRidgeEntries rr;
    if (source_ != NameSource::kRockRidge || r.system_use.size() <= skip_) return rr;
    parse_system_use(*dev_, label_, r.system_use.data() + skip_, r.system_use.size() - skip_,
                     r.system_use_offset + skip_, rr);
    return rr;
  }

  void fill_stat(Node& n, const Record& r, const RockRidgeEntries& rr, bool is_dir) const {
    NodeStat& st = n.st;
    st.type = is_dir ? NodeType::kDirectory : NodeType::kRegular;
    if (rr.has_px) {
      NodeType t = node_type_from_mode(rr.mode);
      if (!is_dir && t != NodeType::kDirectory) st.type = t;
      st.mode = rr.mode & 07777;
      st.nlink = rr.nlink;
      st.uid = rr.uid;
      st.gid = rr.gid;
    } else {
      // Without Rock Ridge there are no permissions; r-x for everything is
      // what xorriso and the Linux kernel present.
      st.mode = 0555;
      st.nlink = is_dir ? 2 : 1;
    }
    if (rr.has_sl && !is_dir && !rr.has_px) st.type = NodeType::kSymlink;
    st.mtime = rr.mtime.value_or(r.date);
    st.atime = rr.atime.value_or(st.mtime);
    st.ctime = rr.ctime.value_or(st.mtime);
    if (rr.has_pn) st.rdev = rr.rdev;
  }

  Node make_dir_node_from_dot(uint32_t lba, NodeId parent, uint64_t named_by) const {
    Record dot = read_dot(lba);
    Node n;
    fill_stat(n, dot, rock_ridge(dot), true);
    n.st.id = static_cast<uint64_t>(lba) * kSectorSize;
    n.st.size = dot.size;
    n.dir_offset = n.st.id;
    n.dir_size = dot.size;
    n.parent = parent;
    n.named_by = named_by;
    check_dir_size(n);
    return n;
  }

  void check_dir_size(const Node& n) const {
    if (n.dir_size > kMaxDirectoryBytes) {
      throw Error(ErrorKind::kCorrupt, label_, n.dir_offset,
                  "directory of " + std::to_string(n.dir_size) +
                      " bytes is larger than any real one (64 MiB)");
    }
  }

  // Throws when `child` is `dir` or one of its ancestors: a directory loop.
  void check_loop(NodeId dir, NodeId child, uint64_t where) const {
    NodeId cur = dir;
    for (int depth = 0; depth < 100000; ++depth) {
      if (cur == child) {
        throw Error(ErrorKind::kCorrupt, label_, where,
                    "directory loop: a directory record points to an ancestor");
      }
      if (cur == root_) return;
      cur = find(cur).parent;
    }
  }

  // A directory named by a second record: the entry is left out (reported),
  // so that neither a listing nor a walk ever meets one directory twice.
  bool named_elsewhere(NodeId id, uint64_t record, const std::string& name, Listing& l) const {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || it->second.named_by == record) return false;
    l.skipped.push_back(
        {name,
         "names the directory at byte " + std::to_string(id) +
             ", which another record already names (one directory reached from two places: "
             "corrupt ISO 9660)",
         record});
    return true;
  }

  void make_entry(NodeId dir, const std::vector<Record>& recs, size_t first, size_t last,
                  Listing& l, uint64_t& ce_bytes) const {
    const Record& r = recs[first];
    if (r.name.size() == 1 && (r.name[0] == '\0' || r.name[0] == '\1')) return;  // "." and ".."
    if (r.flags & dr::kFlagAssociated) return;
    std::string recorded = display_name(reinterpret_cast<const uint8_t*>(r.name.data()),
                                        r.name.size(), source_ == NameSource::kJoliet, true);
    RockRidgeEntries rr;
    try {
      rr = rock_ridge(r);
    } catch (const Error& e) {
      // One record's damaged Rock Ridge costs that entry, not the directory.
      l.skipped.push_back({recorded, e.message(), r.offset});
      return;
    }
    ce_bytes += rr.continuation_bytes;
    if (rr.relocated) return;  // shown where its CL placeholder is
    if (rr.name_too_long || rr.link_too_long) {
      l.skipped.push_back({rr.has_nm ? rr.name : recorded,
                           rr.name_too_long ? "Rock Ridge name longer than " +
                                                  std::to_string(kMaxNameBytes) + " bytes"
                                            : "Rock Ridge symlink target longer than " +
                                                  std::to_string(kMaxLinkBytes) + " bytes",
                           r.offset});
      return;
    }
    std::string name =
        rr.has_nm ? rr.name
                  : display_name(reinterpret_cast<const uint8_t*>(r.name.data()), r.name.size(),
                                 source_ == NameSource::kJoliet, raw_names_);
    // DirEntry contract: never ".", ".." or containing '/' or NUL; such names
    // are damage or an attack on extract, so the entry is left out.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos || name.size() > kMaxNameBytes) {
      l.skipped.push_back({name.substr(0, kMaxNameBytes),
                           name.size() > kMaxNameBytes
                               ? "name longer than " + std::to_string(kMaxNameBytes) + " bytes"
                               : "unusable name (empty, '.', '..', or holding '/' or NUL)",
                           r.offset});
      return;
    }
    Node n;
    auto add = [&](const NodeStat& st) {
      l.bytes += sizeof(DirEntry) + name.size();
      l.entries.push_back(DirEntry{std::move(name), st});
    };
    if (rr.child_link) {
      // RRIP 4.1.5.1: a deep directory moved elsewhere; this placeholder keeps
      // its name, the moved directory's "." keeps its attributes.
      NodeId id = static_cast<uint64_t>(*rr.child_link) * kSectorSize;
      check_loop(dir, id, r.offset);
      if (named_elsewhere(id, r.offset, name, l)) return;
      auto it = nodes_.find(id);
      if (it == nodes_.end())
        it = nodes_.emplace(id, make_dir_node_from_dot(*rr.child_link, dir, r.offset)).first;
      add(it->second.st);
      return;
    }
    bool is_dir = r.flags & dr::kFlagDirectory;
    if (is_dir) {
      NodeId id = (static_cast<uint64_t>(r.lba) + r.ext_attr) * kSectorSize;
      check_loop(dir, id, r.offset);
      if (named_elsewhere(id, r.offset, name, l)) return;
      auto it = nodes_.find(id);
      if (it == nodes_.end()) {
        fill_stat(n, r, rr, true);
        n.st.id = id;
        n.st.size = r.size;
        n.dir_offset = id;
        n.dir_size = r.size;
        n.parent = dir;
        n.named_by = r.offset;
        check_dir_size(n);
        it = nodes_.emplace(id, std::move(n)).first;
      }
      add(it->second.st);
      return;
    }
    fill_stat(n, r, rr, false);
    n.st.id = r.offset;
    n.parent = dir;
    uint64_t total = 0;
    for (size_t k = first; k <= last; ++k) {
      const Record& x = recs[k];
      uint64_t off = (static_cast<uint64_t>(x.lba) + x.ext_attr) * kSectorSize;
      n.extents.emplace_back(off, x.size);
      total += x.size;
      if (x.unit_size != 0) n.interleaved = true;
    }
    if (n.st.type == NodeType::kSymlink) {
      n.st.size = rr.link_target.size();
      n.extents.clear();
    } else if (n.st.type == NodeType::kRegular) {
      n.st.size = total;
    } else {
      n.extents.clear();
      n.st.size = 0;
    }
    NodeStat st = n.st;
    nodes_.emplace(st.id, std::move(n));
    add(st);
  }

  BlockDevicePtr dev_;
  std::string label_;
  bool raw_names_ = false;
  VolumeDescriptors vds_;
  NameSource source_ = NameSource::kIso9660;
  uint8_t skip_ = 0;
  NodeId root_ = 0;
  mutable std::mutex mu_;
  mutable std::unordered_map<NodeId, Node> nodes_;
  mutable std::unordered_map<NodeId, Listing> listings_;
  mutable std::deque<NodeId> cache_order_;  // oldest listing first
  mutable size_t cache_bytes_ = 0;
};

}  // namespace

bool looks_like_iso(const BlockDevice& dev) {
  if (dev.size() < kFirstDescriptorOffset + kSectorSize) return false;
  uint8_t b[8];
  dev.read(kFirstDescriptorOffset, b, sizeof b);
  return std::memcmp(b + vd::kStdId, kStandardId, 5) == 0;
}

VolumeDescriptors read_volume_descriptors(const BlockDevice& dev, const std::string& label) {
  if (!looks_like_iso(dev)) {
    throw Error(ErrorKind::kNotThisFormat, label, kFirstDescriptorOffset + 1,
                "no ISO 9660 volume descriptor (\"CD001\") at byte 32769");
  }
  VolumeDescriptors v;
  bool terminated = false;
  for (int i = 0; i < kMaxDescriptors && !terminated; ++i) {
    uint64_t off = kFirstDescriptorOffset + static_cast<uint64_t>(i) * kSectorSize;
    std::vector<uint8_t> d =
        read_bytes(dev, label, off, kSectorSize, "volume descriptor " + std::to_string(i));
    if (std::memcmp(d.data() + vd::kStdId, kStandardId, 5) != 0) {
      throw Error(ErrorKind::kCorrupt, label, off + 1,
                  "volume descriptor set ends without a terminator (no \"CD001\" here)");
    }
    switch (d[vd::kType]) {
      case vd::kTypePrimary:
        if (v.primary.empty()) v.primary = d;
        break;
      case vd::kTypeSupplementary: {
        // Joliet: escape sequence %/@, %/C or %/E (levels 1, 2, 3).
        const uint8_t* esc = d.data() + vd::kEscapes;
        if (v.joliet.empty() && esc[0] == '%' && esc[1] == '/' &&
            (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')) {
          v.joliet = d;
          v.joliet_level = esc[2] == '@' ? 1 : esc[2] == 'C' ? 2 : 3;
        }
        break;
      }
      case vd::kTypeBoot:
        if (std::memcmp(d.data() + vd::kBootSystemId, vd::kElToritoId,
                        sizeof vd::kElToritoId - 1) == 0) {
          v.boot_catalog = load_le32(d.data() + vd::kBootCatalogLba);
        }
        break;
      case vd::kTypeTerminator:
        terminated = true;
        break;
      default:
        break;
    }
  }
  if (v.primary.empty()) {
    throw Error(ErrorKind::kCorrupt, label, kFirstDescriptorOffset, "no primary volume descriptor");
  }
  if (!terminated) {
    throw Error(ErrorKind::kCorrupt, label, kFirstDescriptorOffset,
                "volume descriptor set has no terminator in its first 64 descriptors");
  }
  uint16_t block = load_le16(v.primary.data() + vd::kLogicalBlockSize);
  if (block != kSectorSize) {
    throw Error(ErrorKind::kUnsupported, label, kFirstDescriptorOffset + vd::kLogicalBlockSize,
                "logical block size " + std::to_string(block) + " is not 2048");
  }
  v.volume_blocks = load_le32(v.primary.data() + vd::kVolumeSpaceSize);
  if (v.primary[vd::kRootRecord] < 34) {
    throw Error(ErrorKind::kCorrupt, label, kFirstDescriptorOffset + vd::kRootRecord,
                "root directory record is shorter than 34 bytes");
  }
  if (!v.joliet.empty() && v.joliet[vd::kRootRecord] < 34) v.joliet.clear();
  return v;
}

Json volume_details(const BlockDevice& dev, const std::string& label, const VolumeDescriptors& v) {
  const uint8_t* p = v.primary.data();
  Json j = Json::object();
  j.set("volume_id", field_string(p + vd::kVolumeId, 32, false));
  j.set("system_id", field_string(p + vd::kSystemId, 32, false));
  j.set("volume_set_id", field_string(p + vd::kVolumeSetId, 128, false));
  j.set("publisher", field_string(p + vd::kPublisherId, 128, false));
  j.set("preparer", field_string(p + vd::kPreparerId, 128, false));
  j.set("application", field_string(p + vd::kApplicationId, 128, false));
  auto date = [&](size_t off) -> Json {
    auto t = decode_volume_date(p + off);
    return t ? Json(format_iso8601(*t)) : Json();
  };
  j.set("created", date(vd::kCreationDate));
  j.set("modified", date(vd::kModificationDate));
  j.set("expires", date(vd::kExpirationDate));
  j.set("effective", date(vd::kEffectiveDate));
  j.set("block_size", kSectorSize);
  j.set("volume_blocks", v.volume_blocks);
  if (v.volume_blocks * kSectorSize > dev.size()) {
    j.set("truncated", "the volume is " + std::to_string(v.volume_blocks * kSectorSize) +
                           " bytes, the image " + std::to_string(dev.size()));
  }
  // Hybrid images carry an MBR (and maybe GPT) in the system area.
  uint8_t sys[1024];
  dev.read(0, sys, sizeof sys);
  if (std::memcmp(sys + 512, "EFI PART", 8) == 0)
    j.set("hybrid", "GPT");
  else if (sys[510] == 0x55 && sys[511] == 0xAA)
    j.set("hybrid", "MBR");

  Json ext = Json::array();
  if (!v.joliet.empty()) {
    j.set("joliet_level", v.joliet_level);
    j.set("joliet_volume_id", field_string(v.joliet.data() + vd::kVolumeId, 32, true));
    ext.push("Joliet level " + std::to_string(v.joliet_level));
  }
  try {
    uint32_t root_lba = load_le32(p + vd::kRootRecord + dr::kExtent);
    uint64_t off = static_cast<uint64_t>(root_lba) * kSectorSize;
    std::vector<uint8_t> sec = read_bytes(dev, label, off, kSectorSize, "root directory");
    uint8_t len = sec[0];
    if (len >= 34 && sec[dr::kNameLength] == 1) {
      Record dot = decode_record(sec.data(), len, off);
      RockRidgeEntries rr;
      if (!dot.system_use.empty()) {
        parse_system_use(dev, label, dot.system_use.data(), dot.system_use.size(),
                         dot.system_use_offset, rr);
      }
      if (rr.has_sp) {
        std::string ids;
        for (auto& e : rr.extensions) ids += (ids.empty() ? "" : ", ") + e;
        j.set("rock_ridge", ids.empty() ? std::string("yes") : ids);
        ext.push(ids.empty() ? std::string("Rock Ridge") : "Rock Ridge (" + ids + ")");
      }
    }
  } catch (const Error& e) {
    j.set("rock_ridge_error", e.message());
  }
  j.set("extensions", std::move(ext));
  if (v.boot_catalog) {
    j.set("boot_catalog_block", *v.boot_catalog);
    try {
      Json boots = Json::array();
      for (const BootEntry& b : read_boot_catalog(dev, label, *v.boot_catalog)) {
        Json e = Json::object();
        e.set("platform", platform_name(b.platform));
        e.set("bootable", b.bootable);
        e.set("emulation", media_name(b.media));
        e.set("load_segment", hex(b.load_segment, 4));
        e.set("system_type", b.system_type);
        e.set("sector_count", b.sector_count);
        e.set("load_rba", b.load_rba);
        // Where to read the boot image from (dd skip=, vdisk map).
        e.set("image_offset", static_cast<uint64_t>(b.load_rba) * kSectorSize);
        boots.push(std::move(e));
      }
      j.set("boot_entries", std::move(boots));
    } catch (const Error& e) {
      j.set("boot_catalog_error", e.message());
    }
  }
  return j;
}

std::unique_ptr<FileTree> open_iso_tree(BlockDevicePtr dev, const std::string& label,
                                        const TreeOptions& opts) {
  return std::make_unique<IsoTree>(std::move(dev), label, opts);
}

}  // namespace vdisk::iso9660
