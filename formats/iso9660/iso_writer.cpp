#include "formats/iso9660/iso_writer.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/guid.h"
#include "formats/iso9660/iso_layout.h"
#include "formats/iso9660/iso_names.h"
#include "formats/iso9660/iso_rockridge.h"

namespace vdisk::iso9660 {

namespace {

// ECMA-119 6.8.2.1: at most eight directory levels, the root being level 1.
constexpr int kMaxIsoLevel = 8;
constexpr uint32_t kBlocksPerExtent = dr::kMaxExtentBytes / kSectorSize;
constexpr size_t kMaxRecord = 254;      // directory records stay even and < 256
constexpr size_t kMaxJolietUnits = 64;  // Joliet 1995: identifiers up to 64 UCS-2 characters
constexpr size_t kCopyChunk = 4 << 20;
// El Torito 2.2: floppy emulation is told by the image's size.
constexpr uint64_t kFloppy12 = 1228800, kFloppy144 = 1474560, kFloppy288 = 2949120;
// Hybrid system area: 512-byte sectors, isohybrid's geometry of 64 heads x 32
// sectors (1 MiB cylinders; the image is padded to whole cylinders), and a
// GPT of 128 entries of 128 bytes (UEFI 2.x 5.3) at LBA 1-33, its backup in
// the last 33 sectors.
constexpr uint32_t kHdSector = 512;
constexpr uint32_t kCylinderSectors = 64 * 32;
constexpr uint32_t kGptEntries = 128, kGptEntrySize = 128;
constexpr uint32_t kGptArraySectors = kGptEntries * kGptEntrySize / kHdSector;  // 32
// Bytes 8-63 of a boot image with a boot information table (El Torito as
// isolinux/mkisofs extend it): PVD LBA @8, image LBA @12, image length @16,
// checksum @20 (sum of the little-endian 32-bit words from byte 64), 40
// reserved bytes.
constexpr size_t kBootInfoOffset = 8, kBootInfoEnd = 64;

struct WNode;

// One entry of an ISO 9660 directory as written.
struct IsoEntry {
  enum Kind { kNormal, kPlaceholder, kRelocated };
  WNode* node;
  Kind kind;
  std::string id;  // file identifier bytes
};

struct WNode {
  const MkisoNode* src = nullptr;  // null: the RR_MOVED directory
  NodeType type = NodeType::kRegular;
  uint32_t mode = 0;  // full st_mode
  uint32_t uid = 0, gid = 0, nlink = 1;
  int64_t mtime = 0, atime = 0, ctime = 0;
  uint64_t size = 0;
  WNode* parent = nullptr;       // real parent
  std::vector<WNode*> children;  // real children, sorted by name
  // ISO 9660 hierarchy (differs from the real one for relocated directories)
  WNode* iso_parent = nullptr;
  bool relocated = false;
  std::vector<IsoEntry> iso_entries;
  std::string iso_dir_id;  // this directory's identifier in its ISO parent
  // Joliet hierarchy
  std::vector<std::pair<std::string, WNode*>> joliet_entries;  // (UTF-16BE id, node)
  std::string joliet_id;
  // Layout
  uint32_t iso_lba = 0, iso_size = 0, jol_lba = 0, jol_size = 0, data_lba = 0;
  uint16_t iso_number = 0, jol_number = 0;
};

void put_both16(uint8_t* p, uint16_t v) {
  store_le16(p, v);
  store_be16(p + 2, v);
}
void put_both32(uint8_t* p, uint32_t v) {
  store_le32(p, v);
  store_be32(p + 4, v);
}

std::string make_record(uint32_t lba, uint32_t size, int64_t date, uint8_t flags,
                        const std::string& id, const std::string& su) {
  size_t nlen = id.size();
  size_t base = dr::kName + nlen + (nlen % 2 == 0 ? 1 : 0);
  size_t len = base + su.size();
  if (len % 2) ++len;
  std::string r(len, '\0');
  auto* p = reinterpret_cast<uint8_t*>(r.data());
  p[dr::kLength] = static_cast<uint8_t>(len);
  put_both32(p + dr::kExtent, lba);
  put_both32(p + dr::kDataLength, size);
  encode_record_date(date, p + dr::kDate);
  p[dr::kFlags] = flags;
  put_both16(p + dr::kVolumeSeq, 1);
  p[dr::kNameLength] = static_cast<uint8_t>(nlen);
  std::memcpy(p + dr::kName, id.data(), nlen);
  std::memcpy(p + base, su.data(), su.size());
  return r;
}

size_t record_base(size_t nlen) {
  return dr::kName + nlen + (nlen % 2 == 0 ? 1 : 0);
}

// Continuation areas (SUSP 5.1): packed into blocks, never crossing one.
class CeAlloc {
 public:
  explicit CeAlloc(uint32_t base_lba) : base_(base_lba) {}
  std::pair<uint32_t, uint32_t> alloc(size_t len) {
    if (off_ + len > kSectorSize) {
      ++block_;
      off_ = 0;
    }
    if (data_.size() < (block_ + 1) * kSectorSize) data_.resize((block_ + 1) * kSectorSize);
    std::pair<uint32_t, uint32_t> at{base_ + block_, static_cast<uint32_t>(off_)};
    off_ += len;
    return at;
  }
  void store(std::pair<uint32_t, uint32_t> at, const std::string& bytes) {
    std::memcpy(data_.data() + (at.first - base_) * kSectorSize + at.second, bytes.data(),
                bytes.size());
  }
  uint32_t blocks() const { return static_cast<uint32_t>(data_.size() / kSectorSize); }
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  uint32_t base_;
  uint32_t block_ = 0;
  size_t off_ = 0;
  std::vector<uint8_t> data_;
};

// Puts what fits of `entries` into the record (leaving room for a CE) and the
// rest into continuation areas chained by CE entries.
std::string pack_system_use(const std::vector<std::string>& entries, size_t base, CeAlloc& ce) {
  size_t avail = kMaxRecord - base;
  size_t total = 0;
  for (auto& e : entries) total += e.size();
  std::string in;
  if (total <= avail) {
    for (auto& e : entries) in += e;
    return in;
  }
  size_t i = 0;
  while (i < entries.size() && in.size() + entries[i].size() + susp::kCeLength <= avail)
    in += entries[i++];
  size_t rest = total - in.size();
  std::vector<std::string> groups;
  while (i < entries.size()) {
    std::string g;
    if (rest <= kSectorSize) {
      while (i < entries.size()) g += entries[i++];
    } else {
      while (i < entries.size() && g.size() + entries[i].size() + susp::kCeLength <= kSectorSize)
        g += entries[i++];
    }
    rest -= g.size();
    groups.push_back(std::move(g));
  }
  std::vector<std::pair<uint32_t, uint32_t>> at;
  for (size_t k = 0; k < groups.size(); ++k) {
    at.push_back(ce.alloc(groups[k].size() + (k + 1 < groups.size() ? susp::kCeLength : 0)));
  }
  auto len_of = [&](size_t k) {
    return static_cast<uint32_t>(groups[k].size() + (k + 1 < groups.size() ? susp::kCeLength : 0));
  };
  in += make_ce_entry(at[0].first, at[0].second, len_of(0));
  for (size_t k = 0; k < groups.size(); ++k) {
    std::string bytes = groups[k];
    if (k + 1 < groups.size())
      bytes += make_ce_entry(at[k + 1].first, at[k + 1].second, len_of(k + 1));
    ce.store(at[k], bytes);
  }
  return in;
}

char d_char(unsigned char c) {
  if (c >= 'a' && c <= 'z') return static_cast<char>(c - 'a' + 'A');
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') return static_cast<char>(c);
  return '_';
}

std::string d_chars(const std::string& s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() == max) break;
    out += d_char(c);
  }
  return out;
}

// ECMA-119 9.3: identifiers ordered by name, then extension, each compared as
// if padded with spaces, then by version (all ours are 1).
bool iso_id_less(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    size_t semi = s.find(';');
    std::string body = s.substr(0, semi);
    size_t dot = body.find('.');
    return std::make_pair(body.substr(0, dot),
                          dot == std::string::npos ? std::string() : body.substr(dot + 1));
  };
  auto padded_cmp = [](const std::string& x, const std::string& y) {
    size_t n = std::max(x.size(), y.size());
    for (size_t i = 0; i < n; ++i) {
      unsigned char cx = i < x.size() ? static_cast<unsigned char>(x[i]) : ' ';
      unsigned char cy = i < y.size() ? static_cast<unsigned char>(y[i]) : ' ';
      if (cx != cy) return cx < cy ? -1 : 1;
    }
    return 0;
  };
  auto [an, ae] = split(a);
  auto [bn, be] = split(b);
  int c = padded_cmp(an, bn);
  if (c != 0) return c < 0;
  return padded_cmp(ae, be) < 0;
}

// Level 2 identifiers: files NAME.EXT;1 with NAME.EXT at most 30 characters,
// directories at most 31; d-characters only; made unique within `used`.
std::string iso_identifier(const std::string& name, bool is_dir, std::set<std::string>& used) {
  std::string base, ext;
  if (is_dir) {
    base = d_chars(name, 31);
  } else {
    size_t dot = name.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      base = name;
    } else {
      base = name.substr(0, dot);
      ext = name.substr(dot + 1);
    }
    ext = d_chars(ext, 8);
    base = d_chars(base, 30 - 1 - ext.size());
  }
  if (base.empty()) base = "_";
  size_t max_base = is_dir ? 31 : 30 - 1 - ext.size();
  auto make = [&](const std::string& b) { return is_dir ? b : b + "." + ext + ";1"; };
  std::string id = make(base);
  for (unsigned n = 1; used.count(id); ++n) {
    std::string suffix = std::to_string(n);
    std::string b = base.substr(0, std::min(base.size(), max_base - suffix.size())) + suffix;
    id = make(b);
  }
  used.insert(id);
  return id;
}

// Joliet identifiers: UCS-2 (UTF-16 here) big-endian, at most 64 units, the
// characters Joliet forbids (* / : ; ? \ and controls) replaced by '_'; files
// get ";1". Made unique within `used`.
std::string joliet_identifier(const std::string& name, bool is_dir, std::set<std::string>& used) {
  std::u16string u = utf8_to_utf16(name);
  for (auto& c : u) {
    if (c < 0x20 || c == '*' || c == '/' || c == ':' || c == ';' || c == '?' || c == '\\') c = u'_';
  }
  auto cut = [](std::u16string s, size_t n) {
    if (s.size() <= n) return s;
    s.resize(n);
    if (!s.empty() && s.back() >= 0xD800 && s.back() < 0xDC00)
      s.pop_back();  // half a surrogate pair
    return s;
  };
  // Too long: keep the extension (up to 16 units) and cut the stem.
  size_t dot = u.rfind(u'.');
  std::u16string stem = dot == std::u16string::npos || dot == 0 || is_dir ? u : u.substr(0, dot);
  std::u16string ext = stem.size() == u.size() ? u"" : cut(u.substr(dot), 16);
  std::u16string base =
      u.size() <= kMaxJolietUnits ? u : cut(stem, kMaxJolietUnits - ext.size()) + ext;
  auto make = [&](const std::u16string& b) { return utf16_to_be_bytes(is_dir ? b : b + u";1"); };
  std::string id = make(base);
  for (unsigned n = 1; used.count(id); ++n) {
    // Keep the extension: put the number before it.
    std::u16string suffix = utf8_to_utf16("~" + std::to_string(n));
    id = make(cut(stem, kMaxJolietUnits - ext.size() - suffix.size()) + suffix + ext);
  }
  used.insert(id);
  return id;
}

class IsoBuilder {
 public:
  IsoBuilder(const MkisoNode& root, const MkisoOptions& opts) : opts_(opts) {
    vol_time_ = opts.source_date_epoch ? *opts.source_date_epoch : opts.now;
    check_volume_label();
    root_ = build(root, nullptr, "");
    root_->iso_parent = root_;
    if (!opts.boot_image.empty()) boot_ = find_image(opts.boot_image, "--boot");
    if (!opts.efi_image.empty()) efi_ = find_image(opts.efi_image, "--efi-boot");
    if (boot_ && opts.boot_info_table && boot_->size < kBootInfoEnd) {
      throw Error(ErrorKind::kInvalidArgument, opts.boot_image, std::nullopt,
                  "a boot information table needs a boot image of at least 64 bytes (it has " +
                      std::to_string(boot_->size) + ")");
    }
    if (opts.boot_info_table && !boot_) throw_invalid("", "--boot-info-table needs --boot");
    if (!opts.hybrid_mbr.empty() && !boot_)
      throw_invalid("", "an isohybrid MBR boots the --boot image: give one");
    place_iso(root_, 1);
    for (WNode* n : all_) {
      if (n->type == NodeType::kDirectory) name_iso(n);
    }
    if (opts_.joliet) name_joliet(root_);
    order_dirs();
  }

  MkisoResult write(const std::string& out_path) {
    layout();
    Env& env = opts_.env ? *opts_.env : Env::posix();
    std::unique_ptr<OutputFile> out = env.create_output(out_path, opts_.overwrite);
    try {
      out->write_at(kFirstDescriptorOffset, metadata_.data(), metadata_.size());
      if (opts_.hybrid) {
        std::string head, tail;
        hybrid_areas(head, tail);
        out->write_at(0, head.data(), head.size());
        out->write_at(static_cast<uint64_t>(total_blocks_) * kSectorSize - tail.size(), tail.data(),
                      tail.size());
      }
      copy_file_data(env, *out);
      out->set_size(static_cast<uint64_t>(total_blocks_) * kSectorSize);
      out->commit();
    } catch (...) {
      out->discard();
      throw;
    }
    MkisoResult r;
    r.image_bytes = static_cast<uint64_t>(total_blocks_) * kSectorSize;
    for (WNode* n : all_) {
      if (!n->src) continue;
      if (n->type == NodeType::kDirectory)
        ++r.directories;
      else
        ++r.files;
      if (n->relocated) ++r.relocated_directories;
      if (n->type == NodeType::kRegular && n->size > dr::kMaxExtentBytes) ++r.multi_extent_files;
    }
    return r;
  }

 private:
  WNode* new_node() {
    nodes_.emplace_back();
    all_.push_back(&nodes_.back());
    return &nodes_.back();
  }

  int64_t clamp(int64_t t) const {
    return opts_.source_date_epoch && t > *opts_.source_date_epoch ? *opts_.source_date_epoch : t;
  }

  WNode* build(const MkisoNode& m, WNode* parent, const std::string& path) {
    WNode* n = new_node();
    n->src = &m;
    n->type = m.type;
    n->mode = mode_type_bits(m.type) | (m.mode & 07777);
    n->uid = m.uid;
    n->gid = m.gid;
    n->mtime = clamp(m.mtime);
    // Reading the tree changes atimes and copying it changes ctimes, so a
    // reproducible image records the modification time for all three.
    n->atime = opts_.source_date_epoch ? n->mtime : m.atime;
    n->ctime = opts_.source_date_epoch ? n->mtime : m.ctime;
    n->size = m.type == NodeType::kRegular ? m.size : 0;
    n->parent = parent;
    if (m.type == NodeType::kDirectory) {
      std::vector<const MkisoNode*> kids;
      for (const MkisoNode& c : m.children) kids.push_back(&c);
      std::sort(kids.begin(), kids.end(),
                [](const MkisoNode* a, const MkisoNode* b) { return a->name < b->name; });
      for (size_t i = 0; i < kids.size(); ++i) {
        const std::string& name = kids[i]->name;
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
            name.size() > 255) {
          throw Error(ErrorKind::kInvalidArgument, path + "/" + name, std::nullopt,
                      "cannot record this name (empty, '.', '..', a '/', or over 255 bytes)");
        }
        if (i > 0 && kids[i - 1]->name == name) {
          throw Error(ErrorKind::kInvalidArgument, path + "/" + name, std::nullopt,
                      "name appears twice");
        }
        n->children.push_back(build(*kids[i], n, path + "/" + name));
      }
      n->nlink = 2;
      for (WNode* c : n->children) n->nlink += c->type == NodeType::kDirectory;
    }
    return n;
  }

  // The regular file at `path` inside the tree (a boot image).
  WNode* find_image(const std::string& path, const char* option) const {
    WNode* cur = root_;
    size_t start = 0;
    while (start < path.size()) {
      size_t s = path.find('/', start);
      std::string comp = path.substr(start, s == std::string::npos ? std::string::npos : s - start);
      start = s == std::string::npos ? path.size() : s + 1;
      if (comp.empty() || comp == ".") continue;
      WNode* next = nullptr;
      for (WNode* c : cur->children) {
        if (c->src->name == comp) next = c;
      }
      if (!next)
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    std::string("boot image is not a file inside the source directory (") + option +
                        " takes a path inside DIR)");
      cur = next;
    }
    if (cur->type != NodeType::kRegular || cur->size == 0) {
      throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                  "boot image must be a non-empty regular file");
    }
    return cur;
  }

  // ECMA-119 8.4.5: the volume identifier is 32 d-characters. xorriso and
  // genisoimage refuse a longer one and record any byte as given; so do we
  // for printable ASCII, and say what else changes.
  void check_volume_label() const {
    const std::string& v = opts_.volume_id;
    if (v.size() > 32) {
      throw Error(
          ErrorKind::kUnsupported, "", std::nullopt,
          "volume label '" + v + "' is " + std::to_string(v.size()) +
              " bytes; ISO 9660 records at most 32 (xorriso and genisoimage refuse it too)");
    }
    std::string recorded = volume_label(false);
    if (recorded != v) {
      opts_.warn("volume label recorded as '" + recorded +
                 "' in the ISO 9660 descriptor: it holds only ASCII" +
                 (opts_.joliet ? " (the Joliet descriptor keeps '" + volume_label(true) + "')"
                               : std::string()));
    } else {
      bool d_chars = true;
      for (unsigned char c : v) d_chars = d_chars && d_char(c) == static_cast<char>(c);
      if (!d_chars) {
        opts_.warn("volume label '" + v +
                   "' has characters outside ISO 9660's d-characters (A-Z 0-9 _): recorded as "
                   "given, as xorriso and genisoimage do; Linux, Windows and macOS show it so");
      }
    }
    if (opts_.joliet && utf8_to_utf16(v).size() > 16) {
      opts_.warn("volume label cut to '" + volume_label(true) +
                 "' in the Joliet descriptor (16 characters; Windows shows that one)");
    }
  }

  // Builds the ISO 9660 hierarchy: a directory that would sit below level 8
  // moves into RR_MOVED (RRIP 4.1.5); its old parent keeps a CL placeholder.
  void place_iso(WNode* dir, int level) {
    for (WNode* c : dir->children) {
      if (c->type != NodeType::kDirectory) {
        dir->iso_entries.push_back({c, IsoEntry::kNormal, ""});
        continue;
      }
      if (level + 1 > kMaxIsoLevel) {
        WNode* moved = rr_moved();
        if (opts_.rock_ridge) dir->iso_entries.push_back({c, IsoEntry::kPlaceholder, ""});
        moved->iso_entries.push_back({c, IsoEntry::kRelocated, ""});
        c->iso_parent = moved;
        c->relocated = true;
        place_iso(c, 3);
      } else {
        dir->iso_entries.push_back({c, IsoEntry::kNormal, ""});
        c->iso_parent = dir;
        place_iso(c, level + 1);
      }
    }
  }

  WNode* rr_moved() {
    if (rr_moved_) return rr_moved_;
    WNode* m = new_node();
    m->type = NodeType::kDirectory;
    m->mode = rr::kIfDir | 0555;
    m->nlink = 2;
    m->mtime = m->atime = m->ctime = vol_time_;
    m->parent = root_;
    m->iso_parent = root_;
    root_->iso_entries.push_back({m, IsoEntry::kNormal, ""});
    rr_moved_ = m;
    return m;
  }

  void name_iso(WNode* dir) {
    std::set<std::string> used;
    // Names are chosen in real-name order, so the result does not depend on
    // anything but the tree.
    for (IsoEntry& e : dir->iso_entries) {
      if (!e.node->src) {
        e.id = "RR_MOVED";
        used.insert(e.id);
      }
    }
    for (IsoEntry& e : dir->iso_entries) {
      if (!e.node->src) continue;
      e.id = iso_identifier(
          e.node->src->name,
          e.node->type == NodeType::kDirectory && e.kind != IsoEntry::kPlaceholder, used);
    }
    std::stable_sort(dir->iso_entries.begin(), dir->iso_entries.end(),
                     [](const IsoEntry& a, const IsoEntry& b) { return iso_id_less(a.id, b.id); });
    for (IsoEntry& e : dir->iso_entries) {
      if (e.kind != IsoEntry::kPlaceholder && e.node->type == NodeType::kDirectory)
        e.node->iso_dir_id = e.id;
    }
  }

  // Joliet keeps the real hierarchy (no depth limit in practice) but holds
  // only directories and regular files.
  void name_joliet(WNode* dir) {
    std::set<std::string> used;
    for (WNode* c : dir->children) {
      if (c->type != NodeType::kDirectory && c->type != NodeType::kRegular) continue;
      c->joliet_id = joliet_identifier(c->src->name, c->type == NodeType::kDirectory, used);
      dir->joliet_entries.emplace_back(c->joliet_id, c);
    }
    std::sort(dir->joliet_entries.begin(), dir->joliet_entries.end());
    for (WNode* c : dir->children) {
      if (c->type == NodeType::kDirectory) name_joliet(c);
    }
  }

  // Path table order (ECMA-119 9.4.3): by level, then parent number, then
  // identifier — a breadth-first walk over sorted directories.
  void order_dirs() {
    iso_dirs_.push_back(root_);
    for (size_t i = 0; i < iso_dirs_.size(); ++i) {
      iso_dirs_[i]->iso_number = static_cast<uint16_t>(i + 1);
      for (IsoEntry& e : iso_dirs_[i]->iso_entries) {
        if (e.kind != IsoEntry::kPlaceholder && e.node->type == NodeType::kDirectory)
          iso_dirs_.push_back(e.node);
      }
    }
    if (opts_.joliet) {
      jol_dirs_.push_back(root_);
      for (size_t i = 0; i < jol_dirs_.size(); ++i) {
        jol_dirs_[i]->jol_number = static_cast<uint16_t>(i + 1);
        for (auto& [id, c] : jol_dirs_[i]->joliet_entries) {
          if (c->type == NodeType::kDirectory) jol_dirs_.push_back(c);
        }
      }
    }
    if (iso_dirs_.size() > 65535 || jol_dirs_.size() > 65535) {
      throw Error(ErrorKind::kUnsupported, "", std::nullopt,
                  "more than 65535 directories: ISO 9660 path tables cannot number them");
    }
  }

  // ---- Rock Ridge entries ----
  std::vector<std::string> rr_attrs(const WNode* n) const {
    return {make_px_entry(n->mode, n->nlink, n->uid, n->gid),
            make_tf_entry(n->mtime, n->atime, n->ctime)};
  }
  static void append(std::vector<std::string>& v, std::vector<std::string> more) {
    for (auto& m : more) v.push_back(std::move(m));
  }
  std::vector<std::string> rr_entry(const WNode* n, IsoEntry::Kind kind) const {
    std::vector<std::string> v = rr_attrs(n);
    if (kind == IsoEntry::kPlaceholder) v.push_back(make_cl_entry(n->iso_lba));
    // RE marks the relocated directory, and RR_MOVED itself as a relocation
    // artefact, so Rock Ridge readers show neither where they are.
    if (kind == IsoEntry::kRelocated || !n->src) v.push_back(make_re_entry());
    if (n->type == NodeType::kCharDevice || n->type == NodeType::kBlockDevice)
      v.push_back(make_pn_entry(n->src->rdev));
    append(v, make_nm_entries(n->src ? n->src->name : "rr_moved"));
    if (n->type == NodeType::kSymlink) append(v, make_sl_entries(n->src->link_target));
    return v;
  }

  // ---- Directory extents ----
  static void add_record(std::string& ext, const std::string& rec) {
    size_t in_sector = ext.size() % kSectorSize;
    if (in_sector + rec.size() > kSectorSize) ext.append(kSectorSize - in_sector, '\0');
    ext += rec;
  }
  static void finish_extent(std::string& ext) {
    if (ext.size() % kSectorSize) ext.append(kSectorSize - ext.size() % kSectorSize, '\0');
  }

  void file_records(std::string& ext, const WNode* n, const std::string& id,
                    const std::string& su) const {
    if (n->type != NodeType::kRegular || n->size <= dr::kMaxExtentBytes) {
      uint32_t lba = n->type == NodeType::kRegular && n->size ? n->data_lba : 0;
      add_record(ext, make_record(lba, static_cast<uint32_t>(n->size), n->mtime, 0, id, su));
      return;
    }
    // ECMA-119 9.1.6 / level 3: one record per extent, all but the last
    // flagged multi-extent, extents contiguous.
    uint64_t left = n->size;
    uint32_t lba = n->data_lba;
    while (left > 0) {
      uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(left, dr::kMaxExtentBytes));
      left -= len;
      add_record(ext, make_record(lba, len, n->mtime, left ? dr::kFlagMultiExtent : 0, id, su));
      lba += kBlocksPerExtent;
    }
  }

  std::string iso_dir_extent(WNode* d, CeAlloc& ce) const {
    std::string ext;
    bool rr = opts_.rock_ridge;
    // "." — the root's carries SP first (SUSP 5.3) and the ER (SUSP 5.5).
    std::vector<std::string> dot;
    if (rr) {
      if (d == root_) dot.push_back(make_sp_entry());
      append(dot, rr_attrs(d));
      if (d == root_) dot.push_back(make_er_entry());
    }
    std::string id0(1, '\0'), id1(1, '\1');
    add_record(ext, make_record(d->iso_lba, d->iso_size, d->mtime, dr::kFlagDirectory, id0,
                                rr ? pack_system_use(dot, record_base(1), ce) : ""));
    // ".." — for a relocated directory, PL names the real parent.
    const WNode* p = d->iso_parent;
    std::vector<std::string> dotdot;
    if (rr) {
      const WNode* real = d->relocated ? d->parent : p;
      dotdot = rr_attrs(real);
      if (d->relocated) dotdot.push_back(make_pl_entry(d->parent->iso_lba));
    }
    add_record(ext, make_record(p->iso_lba, p->iso_size, p->mtime, dr::kFlagDirectory, id1,
                                rr ? pack_system_use(dotdot, record_base(1), ce) : ""));
    for (const IsoEntry& e : d->iso_entries) {
      const WNode* n = e.node;
      std::string su = rr ? pack_system_use(rr_entry(n, e.kind), record_base(e.id.size()), ce) : "";
      if (e.kind == IsoEntry::kPlaceholder) {
        add_record(ext, make_record(0, 0, n->mtime, 0, e.id, su));
      } else if (n->type == NodeType::kDirectory) {
        add_record(ext,
                   make_record(n->iso_lba, n->iso_size, n->mtime, dr::kFlagDirectory, e.id, su));
      } else {
        file_records(ext, n, e.id, su);
      }
    }
    finish_extent(ext);
    return ext;
  }

  std::string joliet_dir_extent(WNode* d) const {
    std::string ext;
    WNode* p = d->parent ? d->parent : d;
    add_record(ext, make_record(d->jol_lba, d->jol_size, d->mtime, dr::kFlagDirectory,
                                std::string(1, '\0'), ""));
    add_record(ext, make_record(p->jol_lba, p->jol_size, p->mtime, dr::kFlagDirectory,
                                std::string(1, '\1'), ""));
    for (auto& [id, n] : d->joliet_entries) {
      if (n->type == NodeType::kDirectory) {
        add_record(ext, make_record(n->jol_lba, n->jol_size, n->mtime, dr::kFlagDirectory, id, ""));
      } else {
        file_records(ext, n, id, "");
      }
    }
    finish_extent(ext);
    return ext;
  }

  // ---- Path tables (ECMA-119 9.4) ----
  static std::string path_table(const std::vector<WNode*>& dirs, bool joliet, bool big_endian) {
    std::string t;
    for (WNode* d : dirs) {
      bool is_root = d->parent == nullptr;
      std::string id = is_root ? std::string(1, '\0') : joliet ? d->joliet_id : d->iso_dir_id;
      uint8_t h[8] = {};
      h[pt::kNameLength] = static_cast<uint8_t>(id.size());
      uint32_t lba = joliet ? d->jol_lba : d->iso_lba;
      uint16_t parent = is_root ? 1 : joliet ? d->parent->jol_number : d->iso_parent->iso_number;
      if (big_endian) {
        store_be32(h + pt::kExtent, lba);
        store_be16(h + pt::kParent, parent);
      } else {
        store_le32(h + pt::kExtent, lba);
        store_le16(h + pt::kParent, parent);
      }
      t.append(reinterpret_cast<const char*>(h), 8);
      t += id;
      if (id.size() % 2) t += '\0';
    }
    return t;
  }

  // ---- Volume descriptors ----
  static void fill_text(uint8_t* p, size_t len, const std::string& s, bool ucs2) {
    if (ucs2) {
      std::string b = utf16_to_be_bytes(utf8_to_utf16(s));
      for (size_t i = 0; i + 1 < len; i += 2) {
        p[i] = i < b.size() ? static_cast<uint8_t>(b[i]) : 0;
        p[i + 1] = i + 1 < b.size() ? static_cast<uint8_t>(b[i + 1]) : ' ';
      }
      if (len % 2) p[len - 1] = 0;
    } else {
      for (size_t i = 0; i < len; ++i) p[i] = i < s.size() ? static_cast<uint8_t>(s[i]) : ' ';
    }
  }

  std::string volume_label(bool joliet) const {
    std::string s;
    if (joliet) {
      std::u16string u = utf8_to_utf16(opts_.volume_id);
      if (u.size() > 16) u.resize(16);  // 32 bytes of UCS-2
      std::string be = utf16_to_be_bytes(u);
      return utf16be_to_utf8(reinterpret_cast<const uint8_t*>(be.data()), be.size());
    }
    // UTF-8 sequences become one '_' each.
    for (unsigned char c : opts_.volume_id) {
      if (s.size() == 32) break;
      if ((c & 0xC0) == 0x80) continue;
      s += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '_';
    }
    return s;
  }

  std::string volume_descriptor(bool joliet, uint32_t pt_size, uint32_t l_lba, uint32_t m_lba,
                                const WNode* root) const {
    std::string vdesc(kSectorSize, '\0');
    auto* p = reinterpret_cast<uint8_t*>(vdesc.data());
    p[vd::kType] = joliet ? vd::kTypeSupplementary : vd::kTypePrimary;
    std::memcpy(p + vd::kStdId, kStandardId, 5);
    p[vd::kVersion] = 1;
    fill_text(p + vd::kSystemId, 32, "", joliet);
    fill_text(p + vd::kVolumeId, 32, volume_label(joliet), joliet);
    put_both32(p + vd::kVolumeSpaceSize, total_blocks_);
    if (joliet) std::memcpy(p + vd::kEscapes, "%/E", 3);
    put_both16(p + vd::kVolumeSetSize, 1);
    put_both16(p + vd::kVolumeSeqNumber, 1);
    put_both16(p + vd::kLogicalBlockSize, kSectorSize);
    put_both32(p + vd::kPathTableSize, pt_size);
    store_le32(p + vd::kLPathTable, l_lba);
    store_be32(p + vd::kMPathTable, m_lba);
    uint32_t lba = joliet ? root->jol_lba : root->iso_lba;
    uint32_t size = joliet ? root->jol_size : root->iso_size;
    std::string rec =
        make_record(lba, size, root->mtime, dr::kFlagDirectory, std::string(1, '\0'), "");
    std::memcpy(p + vd::kRootRecord, rec.data(), rec.size());
    fill_text(p + vd::kVolumeSetId, 128, "", joliet);
    fill_text(p + vd::kPublisherId, 128, "", joliet);
    fill_text(p + vd::kPreparerId, 128, "", joliet);
    fill_text(p + vd::kApplicationId, 128, "VDISK MKISO", joliet);
    fill_text(p + vd::kCopyrightFile, 37, "", joliet);
    fill_text(p + vd::kAbstractFile, 37, "", joliet);
    fill_text(p + vd::kBibliographicFile, 37, "", joliet);
    encode_volume_date(vol_time_, p + vd::kCreationDate);
    encode_volume_date(vol_time_, p + vd::kModificationDate);
    std::memset(p + vd::kExpirationDate, '0', 16);
    std::memset(p + vd::kEffectiveDate, '0', 16);
    p[vd::kFileStructureVersion] = 1;
    return vdesc;
  }

  std::string boot_record(uint32_t catalog_lba) const {
    std::string b(kSectorSize, '\0');
    auto* p = reinterpret_cast<uint8_t*>(b.data());
    p[vd::kType] = vd::kTypeBoot;
    std::memcpy(p + vd::kStdId, kStandardId, 5);
    p[vd::kVersion] = 1;
    std::memcpy(p + vd::kBootSystemId, vd::kElToritoId, sizeof vd::kElToritoId - 1);
    store_le32(p + vd::kBootCatalogLba, catalog_lba);
    return b;
  }

  // El Torito 2.1 media type of the BIOS image: floppy emulation for the three
  // floppy sizes (what genisoimage does by default), else no emulation.
  uint8_t boot_media() const {
    if (opts_.boot_no_emulation) return 0;
    switch (boot_->size) {
      case kFloppy12:
        return 1;
      case kFloppy144:
        return 2;
      case kFloppy288:
        return 3;
      default:
        return 0;
    }
  }

  // The EFI entry's sector count: the 2048-byte blocks the image occupies, in
  // 512-byte sectors (what xorrisofs records for -e).
  uint64_t efi_sectors() const { return div_round_up(efi_->size, kSectorSize) * 4; }

  // One initial/default or section entry (El Torito 2.2 / 2.4).
  static void boot_entry(uint8_t* e, uint8_t media, uint64_t sectors, uint32_t rba) {
    e[0] = et::kBootable;
    e[et::kMedia] = media;
    store_le16(e + et::kLoadSegment, 0);  // 0 = the traditional 0x7C0
    store_le16(e + et::kSectorCount, static_cast<uint16_t>(std::min<uint64_t>(sectors, 0xFFFF)));
    store_le32(e + et::kLoadRba, rba);
  }

  // The validation entry names the platform of the default entry: the BIOS
  // image, else the EFI image; the EFI image after a BIOS one is a section of
  // its own (header 0x91: the last section), as xorriso writes them.
  std::string boot_catalog() const {
    std::string c(kSectorSize, '\0');
    auto* p = reinterpret_cast<uint8_t*>(c.data());
    p[0] = 1;  // validation entry
    p[et::kPlatform] = boot_ ? 0 : 0xEF;
    p[30] = 0x55;
    p[31] = 0xAA;
    uint16_t sum = 0;
    for (size_t i = 0; i < et::kEntrySize; i += 2)
      sum = static_cast<uint16_t>(sum + load_le16(p + i));
    store_le16(p + et::kChecksum, static_cast<uint16_t>(0x10000 - sum));
    uint8_t* e = p + et::kEntrySize;
    if (boot_) {
      uint8_t media = boot_media();
      // Emulated floppies are loaded whole by the BIOS: one virtual sector
      // here, as mkisofs records it.
      uint64_t sectors = media != 0             ? 1
                         : opts_.boot_load_size ? *opts_.boot_load_size
                                                : div_round_up(boot_->size, 512);
      boot_entry(e, media, sectors, boot_->data_lba);
      if (efi_) {
        uint8_t* h = e + et::kEntrySize;
        h[0] = et::kHeaderLast;
        h[et::kPlatform] = 0xEF;
        store_le16(h + et::kSectionCount, 1);
        boot_entry(h + et::kEntrySize, 0, efi_sectors(), efi_->data_lba);
      }
    } else {
      boot_entry(e, 0, efi_sectors(), efi_->data_lba);
    }
    return c;
  }

  // ---- Hybrid system area (MBR + GPT) ----
  // Reproducible identifiers: a hash of what the image is made of (no
  // randomness, no clock beyond the volume time).
  uint64_t identity(uint64_t salt) const {
    uint64_t h = 1469598103934665603ull ^ salt;  // FNV-1a
    auto mix = [&](uint64_t v) {
      for (int i = 0; i < 8; ++i) {
        h ^= (v >> (8 * i)) & 0xFF;
        h *= 1099511628211ull;
      }
    };
    mix(static_cast<uint64_t>(vol_time_));
    mix(total_blocks_);
    for (unsigned char c : opts_.volume_id) mix(c);
    return h;
  }

  Guid identity_guid(uint64_t salt) const {
    Guid::Bytes b{};
    uint64_t a = identity(salt), c = identity(salt + 1000);
    for (int i = 0; i < 8; ++i) {
      b[i] = static_cast<uint8_t>(a >> (8 * i));
      b[8 + i] = static_cast<uint8_t>(c >> (8 * i));
    }
    b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40);  // RFC 4122 version 4 form
    b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);
    return Guid(b);
  }

  // A classic MBR partition entry; CHS in isohybrid's 64 x 32 geometry, or
  // the "beyond CHS" marker FE FF FF.
  static void mbr_entry(uint8_t* e, bool boot, uint8_t type, uint32_t start, uint32_t count) {
    auto chs = [](uint8_t* c, uint32_t lba) {
      uint32_t cyl = lba / kCylinderSectors, head = lba / 32 % 64, sec = lba % 32 + 1;
      if (cyl > 1023) {
        c[0] = 0xFE;
        c[1] = 0xFF;
        c[2] = 0xFF;
        return;
      }
      c[0] = static_cast<uint8_t>(head);
      c[1] = static_cast<uint8_t>(sec | ((cyl >> 2) & 0xC0));
      c[2] = static_cast<uint8_t>(cyl);
    };
    e[0] = boot ? 0x80 : 0x00;
    chs(e + 1, start);
    e[4] = type;
    chs(e + 5, start + count - 1);
    store_le32(e + 8, start);
    store_le32(e + 12, count);
  }

  struct GptPart {
    Guid type;
    uint64_t first, last;  // 512-byte LBAs, inclusive
    std::u16string name;
  };

  // The GPT partitions: the ISO 9660 ranges as Basic Data, the EFI image as
  // EFI System Partition, never overlapping (UEFI 2.x 5.3.3), so sgdisk -v
  // and firmware accept them; xorriso's -isohybrid-gpt-basdat instead nests
  // the boot image inside a partition that starts at LBA 0, which no GPT
  // checker accepts.
  std::vector<GptPart> gpt_parts(uint64_t first_usable, uint64_t last_usable) const {
    constexpr Guid kBasicData = *Guid::parse("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    constexpr Guid kEsp = *Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    std::vector<GptPart> v;
    uint64_t iso_last = static_cast<uint64_t>(content_blocks_) * 4 - 1;
    if (efi_) {
      uint64_t a = static_cast<uint64_t>(efi_->data_lba) * 4;
      uint64_t b = a + div_round_up(efi_->size, kHdSector) - 1;
      if (a > first_usable) v.push_back({kBasicData, first_usable, a - 1, u"ISO9660"});
      v.push_back({kEsp, a, b, u"EFI boot image"});
      if (b < iso_last) v.push_back({kBasicData, b + 1, iso_last, u"ISO9660"});
    } else {
      v.push_back({kBasicData, first_usable, iso_last, u"ISO9660"});
    }
    (void)last_usable;
    return v;
  }

  // One GPT header (UEFI 2.x 5.3.2) with its CRCs.
  std::string gpt_header(uint64_t my_lba, uint64_t alt_lba, uint64_t array_lba, uint64_t first,
                         uint64_t last, const Guid& disk, uint32_t array_crc) const {
    std::string h(kHdSector, '\0');
    auto* p = reinterpret_cast<uint8_t*>(h.data());
    std::memcpy(p, "EFI PART", 8);
    store_le32(p + 8, 0x00010000);  // revision 1.0
    store_le32(p + 12, 92);         // header size
    store_le64(p + 24, my_lba);
    store_le64(p + 32, alt_lba);
    store_le64(p + 40, first);
    store_le64(p + 48, last);
    disk.encode(p + 56, GuidByteOrder::kMixedEndian);
    store_le64(p + 72, array_lba);
    store_le32(p + 80, kGptEntries);
    store_le32(p + 84, kGptEntrySize);
    store_le32(p + 88, array_crc);
    store_le32(p + 16, static_cast<uint32_t>(crc32(0L, p, 92)));
    return h;
  }

  // The first 32 KiB (MBR, primary GPT) and the last 33 sectors (backup GPT
  // array and header) of a hybrid image.
  void hybrid_areas(std::string& head, std::string& tail) const {
    uint64_t sectors = static_cast<uint64_t>(total_blocks_) * 4;
    head.assign(kFirstDescriptorOffset, '\0');
    auto* mbr = reinterpret_cast<uint8_t*>(head.data());
    if (!opts_.hybrid_mbr.empty()) {
      std::memcpy(mbr, opts_.hybrid_mbr.data(), std::min<size_t>(opts_.hybrid_mbr.size(), 432));
      // isohybrid MBRs read the boot image from this 512-byte LBA (as
      // xorriso's -isohybrid-mbr patches it).
      store_le32(mbr + 432, boot_->data_lba * 4);
    }
    store_le32(mbr + 440, static_cast<uint32_t>(identity(1)));  // disk signature
    uint32_t total32 = static_cast<uint32_t>(std::min<uint64_t>(sectors, 0xFFFFFFFFull));
    // Partition 1 covers the image from sector 0, so the stick's first
    // partition mounts as the ISO; type 0 and bootable as with
    // -isohybrid-gpt-basdat (0x17 would hide it from EFI firmware's choice).
    mbr_entry(mbr + 446, true, 0x00, 0, total32);
    if (efi_) {
      mbr_entry(mbr + 462, false, 0xEF, efi_->data_lba * 4,
                static_cast<uint32_t>(div_round_up(efi_->size, kHdSector)));
    }
    mbr[510] = 0x55;
    mbr[511] = 0xAA;

    uint64_t first_usable = kSystemAreaSectors * 4;  // LBA 64: the descriptors
    uint64_t last_usable = sectors - 1 - 1 - kGptArraySectors;
    std::string array(kGptArraySectors * kHdSector, '\0');
    std::vector<GptPart> parts = gpt_parts(first_usable, last_usable);
    for (size_t i = 0; i < parts.size(); ++i) {
      auto* e = reinterpret_cast<uint8_t*>(array.data()) + i * kGptEntrySize;
      parts[i].type.encode(e, GuidByteOrder::kMixedEndian);
      identity_guid(10 + i).encode(e + 16, GuidByteOrder::kMixedEndian);
      store_le64(e + 32, parts[i].first);
      store_le64(e + 40, parts[i].last);
      for (size_t k = 0; k < parts[i].name.size() && k < 36; ++k)
        store_le16(e + 56 + 2 * k, parts[i].name[k]);
    }
    uint32_t array_crc = static_cast<uint32_t>(
        crc32(0L, reinterpret_cast<const uint8_t*>(array.data()), static_cast<uInt>(array.size())));
    Guid disk = identity_guid(2);
    uint64_t backup_array = sectors - 1 - kGptArraySectors;
    std::string primary = gpt_header(1, sectors - 1, 2, first_usable, last_usable, disk, array_crc);
    std::string backup =
        gpt_header(sectors - 1, 1, backup_array, first_usable, last_usable, disk, array_crc);
    std::memcpy(head.data() + kHdSector, primary.data(), kHdSector);
    std::memcpy(head.data() + 2 * kHdSector, array.data(), array.size());
    tail = array + backup;
  }

  // ---- Layout: metadata from LBA 16, then file data ----
  void layout() {
    uint32_t lba = 16;
    uint32_t pvd_lba = lba++;
    bool el_torito = boot_ || efi_;
    uint32_t boot_lba = el_torito ? lba++ : 0;
    uint32_t svd_lba = opts_.joliet ? lba++ : 0;
    uint32_t term_lba = lba++;
    uint32_t catalog_lba = el_torito ? lba++ : 0;
    std::string iso_pt = path_table(iso_dirs_, false, false);  // sizes only yet
    auto pt_blocks = [](size_t bytes) {
      return static_cast<uint32_t>(div_round_up(bytes, kSectorSize));
    };
    uint32_t iso_l = lba;
    lba += pt_blocks(iso_pt.size());
    uint32_t iso_m = lba;
    lba += pt_blocks(iso_pt.size());
    std::string jol_pt = opts_.joliet ? path_table(jol_dirs_, true, false) : "";
    uint32_t jol_l = lba;
    lba += opts_.joliet ? pt_blocks(jol_pt.size()) : 0;
    uint32_t jol_m = lba;
    lba += opts_.joliet ? pt_blocks(jol_pt.size()) : 0;
    // Measure the directories (record lengths never depend on addresses).
    CeAlloc measure(0);
    for (WNode* d : iso_dirs_)
      d->iso_size = static_cast<uint32_t>(iso_dir_extent(d, measure).size());
    for (WNode* d : jol_dirs_) d->jol_size = static_cast<uint32_t>(joliet_dir_extent(d).size());
    for (WNode* d : iso_dirs_) {
      d->iso_lba = lba;
      lba += d->iso_size / kSectorSize;
    }
    for (WNode* d : jol_dirs_) {
      d->jol_lba = lba;
      lba += d->jol_size / kSectorSize;
    }
    uint32_t ce_lba = lba;
    lba += measure.blocks();
    uint64_t next = lba;
    for (WNode* n : all_) {
      if (n->type != NodeType::kRegular || n->size == 0) continue;
      files_.push_back(n);
    }
    // Data in the order of the real tree (depth first, sorted names).
    for (WNode* n : files_) {
      n->data_lba = static_cast<uint32_t>(next);
      next += div_round_up(n->size, kSectorSize);
      if (next > 0xFFFFFFFFull) {
        throw Error(ErrorKind::kUnsupported, "", std::nullopt,
                    "the image would exceed 8 TiB (2^32 blocks)");
      }
    }
    content_blocks_ = static_cast<uint32_t>(next);
    if (opts_.hybrid) {
      // Room for the backup GPT, then whole cylinders (isohybrid pads so;
      // fdisk is happier).
      uint64_t sectors = next * 4 + 1 + kGptArraySectors;
      sectors = div_round_up(sectors, kCylinderSectors) * kCylinderSectors;
      next = sectors / 4;
      if (next > 0xFFFFFFFFull) {
        throw Error(ErrorKind::kUnsupported, "", std::nullopt,
                    "the image would exceed 8 TiB (2^32 blocks)");
      }
    }
    total_blocks_ = static_cast<uint32_t>(next);
    pvd_lba_ = pvd_lba;

    CeAlloc ce(ce_lba);
    std::vector<std::string> iso_exts, jol_exts;
    for (WNode* d : iso_dirs_) iso_exts.push_back(iso_dir_extent(d, ce));
    for (WNode* d : jol_dirs_) jol_exts.push_back(joliet_dir_extent(d));

    metadata_.assign(static_cast<size_t>(lba - 16) * kSectorSize, 0);
    auto put = [&](uint32_t at, const std::string& bytes) {
      std::memcpy(metadata_.data() + static_cast<size_t>(at - 16) * kSectorSize, bytes.data(),
                  bytes.size());
    };
    put(pvd_lba,
        volume_descriptor(false, static_cast<uint32_t>(iso_pt.size()), iso_l, iso_m, root_));
    if (el_torito) {
      put(boot_lba, boot_record(catalog_lba));
      put(catalog_lba, boot_catalog());
    }
    if (opts_.joliet)
      put(svd_lba,
          volume_descriptor(true, static_cast<uint32_t>(jol_pt.size()), jol_l, jol_m, root_));
    std::string term(kSectorSize, '\0');
    term[vd::kType] = static_cast<char>(vd::kTypeTerminator);
    std::memcpy(term.data() + vd::kStdId, kStandardId, 5);
    term[vd::kVersion] = 1;
    put(term_lba, term);
    put(iso_l, path_table(iso_dirs_, false, false));
    put(iso_m, path_table(iso_dirs_, false, true));
    if (opts_.joliet) {
      put(jol_l, path_table(jol_dirs_, true, false));
      put(jol_m, path_table(jol_dirs_, true, true));
    }
    for (size_t i = 0; i < iso_dirs_.size(); ++i) put(iso_dirs_[i]->iso_lba, iso_exts[i]);
    for (size_t i = 0; i < jol_dirs_.size(); ++i) put(jol_dirs_[i]->jol_lba, jol_exts[i]);
    if (ce.blocks()) {
      std::memcpy(metadata_.data() + static_cast<size_t>(ce_lba - 16) * kSectorSize,
                  ce.data().data(), ce.data().size());
    }
  }

  void copy_file_data(Env& env, OutputFile& out) {
    std::vector<uint8_t> buf(kCopyChunk);
    for (WNode* n : files_) {
      const std::string& path = n->src->source_path;
      std::unique_ptr<File> in = env.open_read(path);
      if (in->size() != n->size) {
        throw Error(ErrorKind::kMismatch, path, std::nullopt,
                    "file changed size while the image was written (" + std::to_string(n->size) +
                        " -> " + std::to_string(in->size()) + " bytes)");
      }
      uint64_t base = static_cast<uint64_t>(n->data_lba) * kSectorSize;
      uint64_t pos = 0;
      bool info_table = n == boot_ && opts_.boot_info_table;
      uint32_t checksum = 0;  // of the boot image from byte 64, for the info table
      while (pos < n->size) {
        FileRange r = in->range_status(pos, n->size - pos);
        uint64_t run = r.length == 0 || r.length > n->size - pos ? n->size - pos : r.length;
        if (r.hole) {  // stays a hole in the output (and adds 0 to the checksum)
          pos += run;
          continue;
        }
        while (run > 0) {
          size_t len = static_cast<size_t>(std::min<uint64_t>(run, buf.size()));
          in->read_at(pos, buf.data(), len);
          if (info_table) checksum += boot_checksum(buf.data(), len, pos);
          if (!is_zero(buf.data(), len)) out.write_at(base + pos, buf.data(), len);
          pos += len;
          run -= len;
        }
      }
      if (info_table) {
        uint8_t t[kBootInfoEnd - kBootInfoOffset] = {};
        store_le32(t, pvd_lba_);
        store_le32(t + 4, n->data_lba);
        store_le32(t + 8, static_cast<uint32_t>(n->size));
        store_le32(t + 12, checksum);
        out.write_at(base + kBootInfoOffset, t, sizeof t);
      }
    }
  }

  // The part of the boot-info-table checksum that bytes [pos, pos + len) of
  // the image add: the sum of its little-endian 32-bit words from byte 64, a
  // last partial word padded with zeros.
  static uint32_t boot_checksum(const uint8_t* p, size_t len, uint64_t pos) {
    uint32_t sum = 0;
    for (size_t i = 0; i < len; ++i) {
      uint64_t at = pos + i;
      if (at < kBootInfoEnd) continue;
      sum += static_cast<uint32_t>(p[i]) << (8 * (at % 4));
    }
    return sum;
  }

  const MkisoOptions& opts_;
  int64_t vol_time_ = 0;
  std::deque<WNode> nodes_;
  std::vector<WNode*> all_;  // depth-first, sorted names (RR_MOVED last)
  WNode* root_ = nullptr;
  WNode* rr_moved_ = nullptr;
  WNode* boot_ = nullptr;
  WNode* efi_ = nullptr;
  std::vector<WNode*> iso_dirs_, jol_dirs_, files_;
  std::vector<uint8_t> metadata_;
  uint32_t content_blocks_ = 0;  // the ISO 9660 volume's own blocks
  uint32_t total_blocks_ = 0;    // with the hybrid padding and backup GPT
  uint32_t pvd_lba_ = 16;
};

}  // namespace

MkisoResult write_iso(const MkisoNode& root, const MkisoOptions& opts,
                      const std::string& out_path) {
  if (root.type != NodeType::kDirectory)
    throw_invalid(out_path, "the root of an ISO must be a directory");
  IsoBuilder b(root, opts);
  return b.write(out_path);
}

}  // namespace vdisk::iso9660
