#include "formats/ntfs/ntfs_tree.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/core/unicode.h"
#include "formats/core/writer.h"
#include "formats/ntfs/ntfs_layout.h"
#include "formats/ntfs/ntfs_lznt1.h"

namespace vdisk::ntfs {

namespace {

// Bounds that keep every allocation proportional to real structures rather
// than to numbers read from the disk.
constexpr uint64_t kMaxAttributeList = 8u << 20;    // bytes of one $ATTRIBUTE_LIST
constexpr uint64_t kMaxResidentRead = 1u << 20;     // reparse data, bitmaps read whole
constexpr uint32_t kMaxIndexDepth = 32;             // B-tree levels
constexpr uint64_t kMaxCompressionUnit = 1u << 20;  // bytes of one decoded unit
constexpr size_t kNodeCacheSize = 512;
constexpr int kStreamShift = 48;
constexpr uint64_t kMaxStreams = 255;
// FILETIME counts 100 ns from 1601-01-01; Unix time starts 11644473600 s later.
constexpr int64_t kFiletimeUnixEpoch = 116444736000000000LL;

struct Run {
  uint64_t vcn = 0;
  uint64_t length = 0;  // clusters
  int64_t lcn = -1;     // -1: sparse
};

// One attribute record, copied out of its MFT entry.
struct Attr {
  uint32_t type = 0;
  std::string name;  // UTF-8
  uint16_t flags = 0;
  uint16_t instance = 0;
  bool resident = true;
  uint64_t record = 0;  // MFT entry holding it
  uint64_t where = 0;   // device offset of the record, for messages
  std::vector<uint8_t> value;
  uint64_t lowest_vcn = 0, highest_vcn = 0;
  uint64_t allocated = 0, size = 0, valid = 0;
  uint16_t comp_unit = 0;
  std::vector<Run> runs;
};

// A file: its base entry's header and every attribute it owns (through the
// attribute list when it has one).
struct Node {
  uint64_t number = 0;
  uint64_t where = 0;
  uint16_t sequence = 0;
  uint16_t rec_flags = 0;
  std::vector<Attr> attrs;

  const Attr* find(uint32_t type, const std::string& name = "") const {
    for (const Attr& a : attrs) {
      if (a.type == type && a.name == name) return &a;
    }
    return nullptr;
  }
};

// A data stream assembled from its fragments.
struct Stream {
  bool resident = true;
  std::vector<uint8_t> value;
  std::vector<Run> runs;
  uint64_t size = 0;
  uint64_t valid = 0;
  uint16_t flags = 0;
  uint32_t unit_clusters = 0;  // compression unit, 0 when not compressed
  uint64_t where = 0;
};

struct IndexEntry {
  const uint8_t* p = nullptr;
  size_t len = 0;
  uint64_t where = 0;
};

Timestamp filetime_to_timestamp(uint64_t ft) {
  int64_t t = static_cast<int64_t>(ft) - kFiletimeUnixEpoch;
  int64_t secs = t / 10000000;
  int64_t rem = t % 10000000;
  if (rem < 0) {
    rem += 10000000;
    --secs;
  }
  Timestamp ts;
  ts.seconds = secs;
  ts.nanoseconds = static_cast<uint32_t>(rem * 100);
  return ts;
}

// "2024-01-02T03:04:05.1234567Z": the full 100 ns precision of a FILETIME.
std::string filetime_string(uint64_t ft) {
  Timestamp ts = filetime_to_timestamp(ft);
  std::time_t s = static_cast<std::time_t>(ts.seconds);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%07uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.nanoseconds / 100);
  return buf;
}

bool is_pow2(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// Record and index sizes: > 0 counts clusters, < 0 is 2^-v bytes.
uint64_t decode_size_field(uint8_t raw, uint32_t cluster) {
  int8_t v = static_cast<int8_t>(raw);
  if (v > 0) return uint64_t{static_cast<uint8_t>(v)} * cluster;
  if (v < 0 && v >= -31) return uint64_t{1} << (-v);
  return 0;
}

// Applies the update sequence of a multi-sector structure in place. Returns
// an empty string, or what is wrong.
std::string apply_fixups(uint8_t* p, size_t size) {
  uint32_t usa_off = load_le16(p + kMsUsaOffset);
  uint32_t usa_count = load_le16(p + kMsUsaCount);
  size_t strides = size / kFixupStride;
  if (usa_count == 0 || usa_count - 1 < strides || usa_off < 8 || (usa_off & 1) ||
      usa_off + 2ull * usa_count > size || usa_off + 2ull * usa_count > kFixupStride) {
    return "update sequence array (offset " + std::to_string(usa_off) + ", " +
           std::to_string(usa_count) + " entries) does not fit " + std::to_string(size) + " bytes";
  }
  uint16_t usn = load_le16(p + usa_off);
  for (size_t i = 0; i < strides; ++i) {
    uint8_t* tail = p + (i + 1) * kFixupStride - 2;
    if (load_le16(tail) != usn) {
      return "update sequence mismatch at the end of 512-byte block " + std::to_string(i) +
             " (torn write or damage)";
    }
    std::memcpy(tail, p + usa_off + 2 + 2 * i, 2);
  }
  return "";
}

class NtfsTree final : public FileTree {
 public:
  NtfsTree(BlockDevicePtr dev, std::string label, Geometry g)
      : dev_(std::move(dev)), label_(std::move(label)), g_(g) {}

  // Everything open() does after the geometry: $MFT's own runs, $MFTMirr,
  // the volume's name and state, $UpCase.
  void load() {
    load_mft();
    Node vol = load_node(kRecVolume);
    if (const Attr* n = vol.find(kAttrVolumeName)) {
      volume_name_ = utf16_to_utf8(n->value.data(), n->value.size(), ByteOrder::kLittle, false);
    }
    if (const Attr* vi = vol.find(kAttrVolumeInformation)) {
      if (vi->value.size() >= 12) {
        version_major_ = vi->value[kViMajor];
        version_minor_ = vi->value[kViMinor];
        volume_flags_ = load_le16(vi->value.data() + kViFlags);
      }
    }
    // A missing $VOLUME_INFORMATION is damage that does not stop reading;
    // a version before 3.0 (NT 4) is a layout vdisk does not implement.
    if (vol.find(kAttrVolumeInformation) && version_major_ < 3) {
      throw Error(ErrorKind::kUnsupported, label_, vol.where,
                  "NTFS version " + std::to_string(version_major_) + "." +
                      std::to_string(version_minor_) + " (before Windows 2000) is not supported");
    }
    if (volume_flags_ & kVolDirty) {
      default_warning(label_ +
                      ": the NTFS volume was not cleanly unmounted (dirty flag set); vdisk does "
                      "not replay $LogFile and reads it as it is on disk");
    }
    load_upcase();
  }

  NodeId root() const override { return kRecRoot; }

  NodeStat stat(NodeId id) const override {
    auto [rec, stream] = split(id);
    auto node = get_node(rec);
    NodeStat st = stat_of(*node);
    if (stream != 0) {
      const Attr* a = named_stream(*node, stream);
      st.id = id;
      st.type = NodeType::kRegular;
      st.mode = 0644;
      st.size = a->resident ? a->value.size() : a->size;
      st.nlink = 1;
    }
    return st;
  }

  std::vector<DirEntry> list(NodeId dir) const override { return list_impl(dir, false); }
  std::vector<DirEntry> list_system(NodeId dir) const override { return list_impl(dir, true); }

  NodeId lookup(NodeId dir, const std::string& name) const override {
    auto [rec, stream] = split(dir);
    auto node = get_node(rec);
    if (stream != 0 || !(node->rec_flags & kFrDirectory)) {
      throw Error(ErrorKind::kNotFound, label_, std::nullopt, "not a directory");
    }
    if (auto found = find_name(*node, name)) return *found;
    // "file:stream" names an alternate data stream (Windows' syntax).
    size_t colon = name.find(':');
    if (colon != std::string::npos && colon > 0) {
      if (auto file = find_name(*node, name.substr(0, colon))) {
        std::string sname = name.substr(colon + 1);
        if (sname.size() > 6 && sname.compare(sname.size() - 6, 6, ":$DATA") == 0)
          sname.resize(sname.size() - 6);
        auto fnode = get_node(split(*file).first);
        auto names = stream_names(*fnode);
        for (size_t i = 0; i < names.size(); ++i) {
          if (names[i] == sname) return *file | (NodeId{i + 1} << kStreamShift);
        }
      }
    }
    throw Error(ErrorKind::kNotFound, label_, std::nullopt, "no entry named '" + name + "'");
  }

  size_t read(NodeId id, uint64_t offset, void* buf, size_t len) const override {
    auto [rec, stream_index] = split(id);
    auto node = get_node(rec);
    std::shared_ptr<const Stream> s = data_stream(*node, stream_index, "read");
    if (offset >= s->size || len == 0) return 0;
    len = static_cast<size_t>(std::min<uint64_t>(len, s->size - offset));
    read_stream(*s, offset, static_cast<uint8_t*>(buf), len);
    return len;
  }

  std::string readlink(NodeId id) const override {
    auto node = get_node(split(id).first);
    Kind k = kind_of(*node);
    if (k.type != NodeType::kSymlink) {
      throw Error(ErrorKind::kInvalidArgument, label_, node->where,
                  "MFT entry " + std::to_string(node->number) + " is not a symbolic link");
    }
    return k.target;
  }

  Json info() const override {
    Json j = Json::object();
    j.set("filesystem", "ntfs");
    j.set("version", std::to_string(version_major_) + "." + std::to_string(version_minor_));
    j.set("volume_name", volume_name_);
    j.set("serial", hex(g_.serial, 16, HexCase::kUpper));
    j.set("bytes_per_sector", g_.bytes_per_sector);
    j.set("cluster_size", g_.cluster_size);
    j.set("clusters", g_.total_clusters);
    j.set("mft_record_size", g_.record_size);
    j.set("mft_records", mft_records_);
    j.set("index_block_size", g_.index_block_size);
    j.set("state", (volume_flags_ & kVolDirty)
                       ? "dirty: not cleanly unmounted ($LogFile not replayed)"
                       : "clean");
    if (volume_flags_ & kVolDirty) {
      j.set("warning", "not cleanly unmounted; read as it is on disk, $LogFile not replayed");
    }
    if (g_.boot_offset != 0)
      j.set("boot_sector", "backup at offset " + std::to_string(g_.boot_offset));
    return j;
  }

  std::vector<DirEntry> streams(NodeId id) const override {
    auto [rec, stream] = split(id);
    if (stream != 0) return {};
    auto node = get_node(rec);
    std::vector<DirEntry> out;
    if (node->rec_flags & kFrDirectory) {
      // Directories may carry named streams too; list them the same way.
    }
    NodeStat base = stat_of(*node);
    auto names = stream_names(*node);
    for (size_t i = 0; i < names.size(); ++i) {
      NodeId sid = id | (NodeId{i + 1} << kStreamShift);
      const Attr* a = named_stream(*node, i + 1);
      NodeStat st = base;
      st.id = sid;
      st.type = NodeType::kRegular;
      st.mode = 0644;
      st.nlink = 1;
      st.size = a->resident ? a->value.size() : a->size;
      out.push_back(DirEntry{names[i], st});
    }
    return out;
  }

  Extent file_extent(NodeId id, uint64_t offset) const override {
    auto [rec, stream_index] = split(id);
    auto node = get_node(rec);
    std::shared_ptr<const Stream> s = data_stream(*node, stream_index, "map");
    if (offset >= s->size) return Extent{0, ExtentType::kData, 0};
    uint64_t left = s->size - offset;
    if (s->resident) return Extent{left, ExtentType::kData, 0};
    if (offset >= s->valid) return Extent{left, ExtentType::kZero, 0};
    const uint64_t cs = g_.cluster_size;
    uint64_t vcn = offset / cs;
    if (s->unit_clusters) {
      // A unit with any stored cluster is data; a unit with none is a hole.
      uint64_t unit = vcn / s->unit_clusters;
      uint64_t unit_start = unit * s->unit_clusters;
      bool any = stored_clusters(*s, unit_start, s->unit_clusters) != 0;
      uint64_t end = (unit_start + s->unit_clusters) * cs;
      return Extent{std::min(left, end - offset), any ? ExtentType::kData : ExtentType::kZero, 0};
    }
    const Run* r = find_run(*s, vcn);
    if (!r) return Extent{left, ExtentType::kZero, 0};
    uint64_t end = std::min((r->vcn + r->length) * cs, s->valid);
    return Extent{std::min(left, end - offset), r->lcn < 0 ? ExtentType::kZero : ExtentType::kData,
                  0};
  }

  Json details(NodeId id) const override {
    auto [rec, stream] = split(id);
    auto node = get_node(rec);
    Json j = Json::object();
    j.set("mft_entry", node->number);
    j.set("sequence", node->sequence);
    if (stream != 0) j.set("stream", stream_names(*node)[stream - 1]);
    if (const Attr* si = node->find(kAttrStandardInformation)) {
      if (si->value.size() >= kSiSizeV1) {
        const uint8_t* v = si->value.data();
        static const char* const kTimeNames[4] = {"creation_time", "modification_time",
                                                  "mft_change_time", "access_time"};
        Json times = Json::object();
        Json raw = Json::object();
        for (int i = 0; i < 4; ++i) {
          uint64_t ft = load_le64(v + 8 * i);
          times.set(kTimeNames[i], filetime_string(ft));
          raw.set(kTimeNames[i], ft);
        }
        j.set("times", times);
        j.set("filetimes_100ns", raw);
        uint32_t fa = load_le32(v + kSiFileAttributes);
        j.set("file_attributes", hex(fa, 8, HexCase::kUpper));
        j.set("dos_attributes", attribute_names(fa));
        if (si->value.size() >= kSiSecurityId + 4) {
          uint32_t sec_id = load_le32(v + kSiSecurityId);
          j.set("security_id", sec_id);
          std::string sid = owner_sid(*node, sec_id);
          if (!sid.empty()) j.set("owner_sid", sid);
        }
      }
    }
    Json names = Json::array();
    for (const Attr& a : node->attrs) {
      if (a.type != kAttrFileName || a.value.size() < kFnName) continue;
      Json n = Json::object();
      n.set("name",
            utf16_to_utf8(a.value.data() + kFnName,
                          std::min<size_t>(a.value[kFnNameLength] * 2u, a.value.size() - kFnName),
                          ByteOrder::kLittle, false));
      n.set("namespace", namespace_name(a.value[kFnNamespace]));
      n.set("parent", load_le64(a.value.data() + kFnParent) & kRefRecordMask);
      names.push(n);
    }
    j.set("names", names);
    if (const Attr* rp = node->find(kAttrReparsePoint)) {
      if (rp->value.size() >= 4)
        j.set("reparse_tag", hex(load_le32(rp->value.data()), 8, HexCase::kUpper));
    }
    if (const Attr* d = node->find(kAttrData)) {
      if (d->flags & kAfCompressionMask) j.set("compressed", "LZNT1");
      if (d->flags & kAfSparse) j.set("sparse", true);
      if (d->flags & kAfEncrypted) j.set("encrypted", "EFS");
    }
    return j;
  }

 private:
  // What a node shows as: type, and a symlink's target or a device number.
  struct Kind {
    NodeType type = NodeType::kRegular;
    std::string target;
    uint64_t rdev = 0;
  };

  [[noreturn]] void corrupt(uint64_t where, const std::string& msg) const {
    throw Error(ErrorKind::kCorrupt, label_, where, msg);
  }

  std::pair<uint64_t, uint64_t> split(NodeId id) const {
    return {id & ((NodeId{1} << kStreamShift) - 1), (id >> kStreamShift) & 0xFF};
  }

  // --- clusters and runs -------------------------------------------------------

  uint64_t cluster_offset(int64_t lcn, uint64_t count, uint64_t where) const {
    if (lcn < 0 || static_cast<uint64_t>(lcn) + count > g_.total_clusters) {
      corrupt(where, "data run at cluster " + std::to_string(lcn) + " (+" + std::to_string(count) +
                         ") lies outside the volume's " + std::to_string(g_.total_clusters) +
                         " clusters");
    }
    uint64_t off = static_cast<uint64_t>(lcn) * g_.cluster_size;
    if (off + count * g_.cluster_size > dev_->size()) {
      corrupt(where, "data run at cluster " + std::to_string(lcn) + " (+" + std::to_string(count) +
                         ") lies past the end of the device (" + std::to_string(dev_->size()) +
                         " bytes)");
    }
    return off;
  }

  // Mapping pairs (libyal "Data runs"): a header byte with the sizes of the
  // length and the signed, relative cluster number; a zero byte ends them.
  std::vector<Run> decode_runs(const uint8_t* p, size_t n, uint64_t lowest, uint64_t highest,
                               uint64_t where) const {
    std::vector<Run> runs;
    uint64_t vcn = lowest;
    int64_t lcn = 0;
    size_t i = 0;
    while (i < n && p[i] != 0) {
      unsigned len_size = p[i] & 0x0F;
      unsigned off_size = p[i] >> 4;
      if (len_size == 0 || len_size > 8 || off_size > 8 || i + 1 + len_size + off_size > n) {
        corrupt(where, "data run header " + hex(p[i], 2, HexCase::kUpper) + " at byte " +
                           std::to_string(i) + " of the mapping pairs is invalid");
      }
      uint64_t length = 0;
      for (unsigned k = 0; k < len_size; ++k) length |= uint64_t{p[i + 1 + k]} << (8 * k);
      if (length == 0 || length > g_.total_clusters) {
        corrupt(where, "data run of " + std::to_string(length) + " clusters (volume has " +
                           std::to_string(g_.total_clusters) + ")");
      }
      Run r;
      r.vcn = vcn;
      r.length = length;
      if (off_size == 0) {
        r.lcn = -1;
      } else {
        uint64_t raw = 0;
        for (unsigned k = 0; k < off_size; ++k) raw |= uint64_t{p[i + 1 + len_size + k]} << (8 * k);
        if (off_size < 8 && (raw & (uint64_t{1} << (8 * off_size - 1)))) {
          raw |= ~uint64_t{0} << (8 * off_size);  // sign-extend: runs may go backwards
        }
        lcn += static_cast<int64_t>(raw);
        if (lcn < 0 || static_cast<uint64_t>(lcn) + length > g_.total_clusters) {
          corrupt(where, "data run at cluster " + std::to_string(lcn) + " (+" +
                             std::to_string(length) + ") points outside the volume's " +
                             std::to_string(g_.total_clusters) + " clusters");
        }
        r.lcn = lcn;
      }
      vcn += length;
      if (vcn - 1 > highest && highest != ~uint64_t{0}) {
        corrupt(where, "data runs cover VCN " + std::to_string(vcn - 1) +
                           ", past the attribute's last VCN " + std::to_string(highest));
      }
      runs.push_back(r);
      i += 1 + len_size + off_size;
    }
    return runs;
  }

  static const Run* find_run(const Stream& s, uint64_t vcn) {
    auto it = std::upper_bound(s.runs.begin(), s.runs.end(), vcn,
                               [](uint64_t v, const Run& r) { return v < r.vcn; });
    if (it == s.runs.begin()) return nullptr;
    --it;
    return vcn < it->vcn + it->length ? &*it : nullptr;
  }

  // Reads [offset, offset+len) through the runs alone (no valid-size or
  // compression handling); sparse runs read as zeros.
  void read_runs(const std::vector<Run>& runs, uint64_t offset, uint8_t* out, size_t len,
                 uint64_t where) const {
    const uint64_t cs = g_.cluster_size;
    size_t done = 0;
    auto it = runs.begin();
    while (done < len) {
      uint64_t pos = offset + done;
      uint64_t vcn = pos / cs;
      it = std::upper_bound(runs.begin(), runs.end(), vcn,
                            [](uint64_t v, const Run& r) { return v < r.vcn; });
      if (it == runs.begin() || vcn >= std::prev(it)->vcn + std::prev(it)->length) {
        corrupt(where, "no data run maps byte " + std::to_string(pos) + " (VCN " +
                           std::to_string(vcn) + ")");
      }
      const Run& r = *std::prev(it);
      uint64_t run_end = (r.vcn + r.length) * cs;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, run_end - pos));
      if (r.lcn < 0) {
        std::memset(out + done, 0, n);
      } else {
        uint64_t base = cluster_offset(r.lcn, r.length, where);
        dev_->read(base + (pos - r.vcn * cs), out + done, n);
      }
      done += n;
    }
  }

  // --- MFT entries -----------------------------------------------------------

  // Reads MFT entry `n` with its fixups applied. A damaged entry among the
  // first ones is read from $MFTMirr instead, with a warning.
  std::vector<uint8_t> read_record(uint64_t n, uint64_t& where) const {
    if (n >= mft_records_) {
      throw Error(ErrorKind::kCorrupt, label_, std::nullopt,
                  "MFT entry " + std::to_string(n) + " is past the MFT's " +
                      std::to_string(mft_records_) + " entries");
    }
    std::vector<uint8_t> rec(g_.record_size);
    uint64_t off = n * g_.record_size;
    read_runs(mft_runs_, off, rec.data(), rec.size(), g_.mft_lcn * g_.cluster_size);
    where = device_offset(mft_runs_, off);
    std::string bad = check_record(rec, n);
    if (bad.empty()) return rec;
    if (n < mirror_records_) {
      std::vector<uint8_t> mirror(g_.record_size);
      uint64_t moff = g_.mftmirr_lcn * g_.cluster_size + n * g_.record_size;
      if (moff + mirror.size() <= dev_->size()) {
        dev_->read(moff, mirror.data(), mirror.size());
        if (check_record(mirror, n).empty()) {
          std::lock_guard<std::mutex> lock(mu_);
          if (mirror_warned_.insert(n).second) {
            default_warning(format_error(
                label_, where,
                "MFT entry " + std::to_string(n) + ": " + bad + "; using the copy in $MFTMirr"));
          }
          where = moff;
          return mirror;
        }
      }
    }
    corrupt(where, "MFT entry " + std::to_string(n) + ": " + bad);
  }

  uint64_t device_offset(const std::vector<Run>& runs, uint64_t off) const {
    uint64_t vcn = off / g_.cluster_size;
    for (const Run& r : runs) {
      if (vcn >= r.vcn && vcn < r.vcn + r.length && r.lcn >= 0) {
        return static_cast<uint64_t>(r.lcn) * g_.cluster_size + (off - r.vcn * g_.cluster_size);
      }
    }
    return 0;
  }

  // Empty when `rec` is a sound FILE record (fixups applied), else why not.
  std::string check_record(std::vector<uint8_t>& rec, uint64_t n) const {
    if (std::memcmp(rec.data(), "FILE", 4) != 0) {
      if (std::memcmp(rec.data(), "BAAD", 4) == 0) return "marked BAAD by chkdsk";
      return "no FILE signature";
    }
    std::string bad = apply_fixups(rec.data(), rec.size());
    if (!bad.empty()) return bad;
    uint32_t first = load_le16(rec.data() + kFrAttrsOffset);
    uint32_t used = load_le32(rec.data() + kFrBytesInUse);
    if (used > rec.size() || first < kFrHeaderSize || first + 8 > used || (first & 7)) {
      return "header (first attribute at " + std::to_string(first) + ", " + std::to_string(used) +
             " bytes in use) does not fit the " + std::to_string(rec.size()) + "-byte record";
    }
    (void)n;
    return "";
  }

  // Parses the attributes of one record (fixups applied).
  void parse_attrs(const std::vector<uint8_t>& rec, uint64_t number, uint64_t where,
                   std::vector<Attr>& out) const {
    const uint8_t* p = rec.data();
    uint32_t used = load_le32(p + kFrBytesInUse);
    uint32_t pos = load_le16(p + kFrAttrsOffset);
    while (pos + 8 <= used) {
      const uint8_t* a = p + pos;
      uint32_t type = load_le32(a + kAtType);
      if (type == kAttrEnd) break;
      uint32_t len = load_le32(a + kAtLength);
      if (len < kAtResidentHeaderSize || (len & 7) || pos + uint64_t{len} > used) {
        corrupt(where + pos, "MFT entry " + std::to_string(number) + ": attribute " +
                                 hex(type, 0, HexCase::kUpper) + " of " + std::to_string(len) +
                                 " bytes does not fit the record");
      }
      Attr at;
      at.type = type;
      at.record = number;
      at.where = where;
      at.flags = load_le16(a + kAtFlags);
      at.instance = load_le16(a + kAtInstance);
      uint32_t name_len = a[kAtNameLength];
      uint32_t name_off = load_le16(a + kAtNameOffset);
      if (name_len) {
        if (name_off + 2ull * name_len > len) {
          corrupt(where + pos, "MFT entry " + std::to_string(number) + ": attribute " +
                                   hex(type, 0, HexCase::kUpper) + " name runs past the attribute");
        }
        at.name = utf16_to_utf8(a + name_off, 2u * name_len, ByteOrder::kLittle, false);
      }
      at.resident = a[kAtNonResident] == 0;
      if (at.resident) {
        uint32_t vlen = load_le32(a + kAtValueLength);
        uint32_t voff = load_le16(a + kAtValueOffset);
        if (voff + uint64_t{vlen} > len) {
          corrupt(where + pos, "MFT entry " + std::to_string(number) + ": resident attribute " +
                                   hex(type, 0, HexCase::kUpper) + " value of " +
                                   std::to_string(vlen) + " bytes runs past the attribute");
        }
        at.value.assign(a + voff, a + voff + vlen);
      } else {
        if (len < kAtNonResidentHeaderSize) {
          corrupt(where + pos, "MFT entry " + std::to_string(number) +
                                   ": non-resident attribute header cut short");
        }
        at.lowest_vcn = load_le64(a + kAtLowestVcn);
        at.highest_vcn = load_le64(a + kAtHighestVcn);
        at.comp_unit = load_le16(a + kAtCompUnit);
        at.allocated = load_le64(a + kAtAllocatedSize);
        at.size = load_le64(a + kAtDataSize);
        at.valid = load_le64(a + kAtValidSize);
        uint32_t runs_off = load_le16(a + kAtRunsOffset);
        if (runs_off > len) {
          corrupt(where + pos, "MFT entry " + std::to_string(number) +
                                   ": mapping pairs start past the attribute");
        }
        at.runs =
            decode_runs(a + runs_off, len - runs_off, at.lowest_vcn, at.highest_vcn, where + pos);
      }
      out.push_back(std::move(at));
      pos += len;
    }
  }

  // Loads a file: its base entry and, through $ATTRIBUTE_LIST, the
  // attributes its extension entries hold.
  Node load_node(uint64_t number) const {
    Node node;
    node.number = number;
    std::vector<uint8_t> rec = read_record(number, node.where);
    const uint8_t* p = rec.data();
    node.rec_flags = load_le16(p + kFrFlags);
    node.sequence = load_le16(p + kFrSequence);
    if (!(node.rec_flags & kFrInUse)) {
      throw Error(ErrorKind::kNotFound, label_, node.where,
                  "MFT entry " + std::to_string(number) + " is not in use");
    }
    if ((load_le64(p + kFrBaseRecord) & kRefRecordMask) != 0) {
      corrupt(node.where,
              "MFT entry " + std::to_string(number) + " is an extension entry, not a file");
    }
    parse_attrs(rec, number, node.where, node.attrs);
    const Attr* list = nullptr;
    for (const Attr& a : node.attrs) {
      if (a.type == kAttrAttributeList) list = &a;
    }
    if (!list) return node;
    std::vector<uint8_t> bytes = attr_bytes(*list, kMaxAttributeList, "attribute list");
    // The entries each name the record that holds an attribute. Entries of
    // the base record itself are already parsed; an entry for the list
    // itself, or a record that claims another base, is damage.
    std::map<uint64_t, std::set<std::pair<uint32_t, uint16_t>>> wanted;
    size_t pos = 0;
    while (pos + kAlHeaderSize <= bytes.size()) {
      const uint8_t* e = bytes.data() + pos;
      uint32_t len = load_le16(e + kAlLength);
      if (len < kAlHeaderSize || pos + len > bytes.size()) {
        corrupt(node.where, "MFT entry " + std::to_string(number) + ": attribute list entry at " +
                                std::to_string(pos) + " of " + std::to_string(len) +
                                " bytes does not fit the list");
      }
      uint32_t type = load_le32(e + kAlType);
      uint64_t ref = load_le64(e + kAlReference) & kRefRecordMask;
      if (type == kAttrAttributeList) {
        corrupt(node.where,
                "MFT entry " + std::to_string(number) + ": the attribute list lists itself");
      }
      if (ref != number) wanted[ref].insert({type, load_le16(e + kAlInstance)});
      pos += len;
    }
    for (const auto& [ref, attrs] : wanted) {
      uint64_t where = 0;
      std::vector<uint8_t> ext = read_record(ref, where);
      uint64_t base = load_le64(ext.data() + kFrBaseRecord) & kRefRecordMask;
      if (base != number || !(load_le16(ext.data() + kFrFlags) & kFrInUse)) {
        corrupt(where, "MFT entry " + std::to_string(ref) + ", listed by the attribute list of " +
                           std::to_string(number) + ", belongs to entry " + std::to_string(base));
      }
      std::vector<Attr> found;
      parse_attrs(ext, ref, where, found);
      for (Attr& a : found) {
        if (a.type == kAttrAttributeList) continue;
        if (attrs.count({a.type, a.instance})) node.attrs.push_back(std::move(a));
      }
    }
    return node;
  }

  std::shared_ptr<const Node> get_node(uint64_t number) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = node_cache_.find(number);
      if (it != node_cache_.end()) return it->second;
    }
    auto node = std::make_shared<const Node>(load_node(number));
    std::lock_guard<std::mutex> lock(mu_);
    if (node_cache_.size() >= kNodeCacheSize) node_cache_.clear();
    node_cache_.emplace(number, node);
    return node;
  }

  // The whole value of a small attribute (resident or not), at most `cap`.
  std::vector<uint8_t> attr_bytes(const Attr& a, uint64_t cap, const char* what) const {
    if (a.resident) return a.value;
    if (a.size > cap) {
      throw Error(ErrorKind::kUnsupported, label_, a.where,
                  std::string(what) + " of MFT entry " + std::to_string(a.record) + " holds " +
                      std::to_string(a.size) + " bytes, over vdisk's limit of " +
                      std::to_string(cap));
    }
    if (a.lowest_vcn != 0) corrupt(a.where, std::string(what) + " does not start at VCN 0");
    std::vector<uint8_t> out(static_cast<size_t>(a.size));
    uint64_t valid = std::min(a.valid, a.size);
    read_runs(a.runs, 0, out.data(), static_cast<size_t>(valid), a.where);
    return out;
  }

  // Gathers the fragments of attribute (type, name) into one stream.
  std::optional<Stream> assemble(const Node& node, uint32_t type, const std::string& name) const {
    std::vector<const Attr*> parts;
    for (const Attr& a : node.attrs) {
      if (a.type == type && a.name == name) parts.push_back(&a);
    }
    if (parts.empty()) return std::nullopt;
    Stream s;
    s.where = node.where;
    if (parts.size() == 1 && parts[0]->resident) {
      s.resident = true;
      s.value = parts[0]->value;
      s.size = s.valid = s.value.size();
      s.flags = parts[0]->flags;
      return s;
    }
    std::sort(parts.begin(), parts.end(),
              [](const Attr* a, const Attr* b) { return a->lowest_vcn < b->lowest_vcn; });
    const Attr& first = *parts[0];
    if (first.resident || first.lowest_vcn != 0) {
      corrupt(node.where, "MFT entry " + std::to_string(node.number) + ": stream " +
                              hex(type, 0, HexCase::kUpper) + (name.empty() ? "" : ":" + name) +
                              " has no first fragment at VCN 0");
    }
    s.resident = false;
    s.size = first.size;
    s.valid = std::min(first.valid, first.size);
    s.flags = first.flags;
    if (s.flags & kAfCompressionMask) {
      uint32_t cu = first.comp_unit ? first.comp_unit : 4;
      uint64_t unit = (uint64_t{1} << std::min<uint32_t>(cu, 31)) * g_.cluster_size;
      if (cu > 16 || unit > kMaxCompressionUnit) {
        throw Error(ErrorKind::kUnsupported, label_, node.where,
                    "MFT entry " + std::to_string(node.number) + ": compression unit of 2^" +
                        std::to_string(cu) + " clusters is not supported");
      }
      s.unit_clusters = 1u << cu;
    }
    uint64_t next = 0;
    for (const Attr* a : parts) {
      if (a->resident || a->lowest_vcn != next) {
        corrupt(a->where, "MFT entry " + std::to_string(a->record) + ": stream fragment at VCN " +
                              std::to_string(a->lowest_vcn) + " where VCN " + std::to_string(next) +
                              " was expected");
      }
      for (const Run& r : a->runs) s.runs.push_back(r);
      if (!a->runs.empty()) next = a->runs.back().vcn + a->runs.back().length;
      if (a->highest_vcn != ~uint64_t{0} && a->highest_vcn + 1 > next) next = a->highest_vcn + 1;
    }
    return s;
  }

  // The named $DATA streams of a node, sorted by name.
  std::vector<std::string> stream_names(const Node& node) const {
    std::vector<std::string> names;
    for (const Attr& a : node.attrs) {
      if (a.type == kAttrData && !a.name.empty() &&
          std::find(names.begin(), names.end(), a.name) == names.end()) {
        names.push_back(a.name);
      }
    }
    std::sort(names.begin(), names.end());
    if (names.size() > kMaxStreams) names.resize(kMaxStreams);
    return names;
  }

  const Attr* named_stream(const Node& node, uint64_t index) const {
    auto names = stream_names(node);
    if (index == 0 || index > names.size()) {
      throw Error(
          ErrorKind::kNotFound, label_, std::nullopt,
          "MFT entry " + std::to_string(node.number) + " has no stream " + std::to_string(index));
    }
    for (const Attr& a : node.attrs) {
      if (a.type == kAttrData && a.name == names[index - 1] && a.lowest_vcn == 0) return &a;
    }
    corrupt(node.where, "stream " + names[index - 1] + " has no first fragment");
  }

  // The stream a read addresses, refusing what vdisk cannot decode.
  std::shared_ptr<const Stream> data_stream(const Node& node, uint64_t index,
                                            const char* why) const {
    std::string name;
    if (index != 0) {
      name = named_stream(node, index)->name;
    } else {
      if (node.rec_flags & kFrDirectory) {
        throw Error(ErrorKind::kInvalidArgument, label_, node.where,
                    "MFT entry " + std::to_string(node.number) + " is a directory");
      }
      Kind k = kind_of(node);
      if (k.type != NodeType::kRegular) {
        throw Error(ErrorKind::kInvalidArgument, label_, node.where,
                    "MFT entry " + std::to_string(node.number) + " is not a regular file");
      }
      if (uint32_t tag = reparse_tag(node); tag == kTagWof) {
        throw Error(ErrorKind::kUnsupported, label_, node.where,
                    "MFT entry " + std::to_string(node.number) + " (" + first_name(node) +
                        "): compressed with " + wof_algorithm(node) +
                        " (Windows system compression, WOF), not supported");
      }
    }
    (void)why;
    uint64_t key = node.number | (index << kStreamShift);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = stream_cache_.find(key);
      if (it != stream_cache_.end() && it->second.first == node.sequence) return it->second.second;
    }
    std::optional<Stream> s = assemble(node, kAttrData, name);
    if (!s) {
      // A file without an unnamed $DATA reads as empty.
      s = Stream{};
      s->where = node.where;
    }
    bool efs = false;
    for (const Attr& a : node.attrs) {
      if (a.type == kAttrLoggedUtilityStream && a.name == "$EFS") efs = true;
    }
    if ((s->flags & kAfEncrypted) || efs) {
      throw Error(ErrorKind::kUnsupported, label_, node.where,
                  "MFT entry " + std::to_string(node.number) + " (" + first_name(node) +
                      "): encrypted with EFS, not supported (vdisk does not decrypt)");
    }
    if ((s->flags & kAfCompressionMask) > 1 && !s->resident) {
      throw Error(ErrorKind::kUnsupported, label_, node.where,
                  "MFT entry " + std::to_string(node.number) + ": compression method " +
                      std::to_string(s->flags & kAfCompressionMask) + " is not supported");
    }
    auto ptr = std::make_shared<const Stream>(std::move(*s));
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_cache_.size() >= 64) stream_cache_.clear();
    stream_cache_[key] = {node.sequence, ptr};
    return ptr;
  }

  void read_stream(const Stream& s, uint64_t offset, uint8_t* out, size_t len) const {
    if (s.resident) {
      std::memcpy(out, s.value.data() + offset, len);
      return;
    }
    // Past the valid data length the stream reads as zeros (libyal notes).
    size_t data_len =
        offset >= s.valid ? 0 : static_cast<size_t>(std::min<uint64_t>(len, s.valid - offset));
    if (data_len < len) std::memset(out + data_len, 0, len - data_len);
    if (data_len == 0) return;
    if (!s.unit_clusters) {
      read_runs(s.runs, offset, out, data_len, s.where);
      return;
    }
    const uint64_t unit_bytes = uint64_t{s.unit_clusters} * g_.cluster_size;
    std::vector<uint8_t> unit(static_cast<size_t>(unit_bytes));
    size_t done = 0;
    while (done < data_len) {
      uint64_t pos = offset + done;
      uint64_t u = pos / unit_bytes;
      decode_unit(s, u, unit);
      uint64_t in_unit = pos - u * unit_bytes;
      size_t n = static_cast<size_t>(std::min<uint64_t>(data_len - done, unit_bytes - in_unit));
      std::memcpy(out + done, unit.data() + in_unit, n);
      done += n;
    }
  }

  // Clusters of [vcn, vcn+count) that have storage.
  uint64_t stored_clusters(const Stream& s, uint64_t vcn, uint64_t count) const {
    uint64_t n = 0;
    for (const Run& r : s.runs) {
      uint64_t a = std::max(r.vcn, vcn), b = std::min(r.vcn + r.length, vcn + count);
      if (a < b && r.lcn >= 0) n += b - a;
    }
    return n;
  }

  // One compression unit (libyal "Compression"): all sparse = zeros; fully
  // stored = plain data; partly stored = LZNT1 in the stored clusters.
  void decode_unit(const Stream& s, uint64_t u, std::vector<uint8_t>& unit) const {
    const uint64_t cs = g_.cluster_size;
    const uint64_t first = u * s.unit_clusters;
    std::fill(unit.begin(), unit.end(), 0);
    uint64_t stored = stored_clusters(s, first, s.unit_clusters);
    if (stored == 0) return;
    if (stored == s.unit_clusters) {
      read_runs(s.runs, first * cs, unit.data(), unit.size(), s.where);
      return;
    }
    std::vector<uint8_t> packed(static_cast<size_t>(stored * cs));
    read_runs(s.runs, first * cs, packed.data(), packed.size(), s.where);
    Lznt1Result r = lznt1_decompress(packed.data(), packed.size(), unit.data(), unit.size());
    if (!r.ok) {
      uint64_t at = device_offset(s.runs, first * cs + r.bad_at);
      corrupt(at ? at : s.where, "compression unit " + std::to_string(u) + ": " + r.what);
    }
  }

  // --- names, types, times -----------------------------------------------------

  static uint32_t file_attributes(const Node& node) {
    const Attr* si = node.find(kAttrStandardInformation);
    if (!si || si->value.size() < kSiFileAttributes + 4) return 0;
    return load_le32(si->value.data() + kSiFileAttributes);
  }

  static uint32_t reparse_tag(const Node& node) {
    const Attr* rp = node.find(kAttrReparsePoint);
    if (!rp || rp->value.size() < 8) return 0;
    return load_le32(rp->value.data() + kRpTag);
  }

  std::string wof_algorithm(const Node& node) const {
    const Attr* rp = node.find(kAttrReparsePoint);
    if (!rp || rp->value.size() < kRpData + 16) return "an unknown WOF method";
    const uint8_t* d = rp->value.data() + kRpData;
    if (load_le32(d + kWofProvider) != kWofProviderFile) return "a WOF provider other than files";
    switch (load_le32(d + kWofAlgorithm)) {
      case 0:
        return "XPRESS4K";
      case 1:
        return "LZX";
      case 2:
        return "XPRESS8K";
      case 3:
        return "XPRESS16K";
      default:
        return "an unknown WOF algorithm";
    }
  }

  static std::string first_name(const Node& node) {
    std::string best;
    for (const Attr& a : node.attrs) {
      if (a.type != kAttrFileName || a.value.size() < kFnName) continue;
      if (a.value[kFnNamespace] == kNsDos && !best.empty()) continue;
      size_t bytes = std::min<size_t>(a.value[kFnNameLength] * 2u, a.value.size() - kFnName);
      best = utf16_to_utf8(a.value.data() + kFnName, bytes, ByteOrder::kLittle, false);
      if (a.value[kFnNamespace] != kNsDos) break;
    }
    return best.empty() ? "?" : best;
  }

  static const char* namespace_name(uint8_t ns) {
    switch (ns) {
      case kNsPosix:
        return "POSIX";
      case kNsWin32:
        return "Win32";
      case kNsDos:
        return "DOS";
      case kNsWin32AndDos:
        return "Win32&DOS";
      default:
        return "unknown";
    }
  }

  static Json attribute_names(uint32_t fa) {
    static const std::pair<uint32_t, const char*> kNames[] = {
        {kFaReadOnly, "read-only"},
        {kFaHidden, "hidden"},
        {kFaSystem, "system"},
        {kFaArchive, "archive"},
        {kFaTemporary, "temporary"},
        {kFaSparse, "sparse"},
        {kFaReparsePoint, "reparse-point"},
        {kFaCompressed, "compressed"},
        {kFaOffline, "offline"},
        {kFaNotContentIndexed, "not-content-indexed"},
        {kFaEncrypted, "encrypted"},
    };
    Json a = Json::array();
    for (const auto& [bit, name] : kNames) {
      if (fa & bit) a.push(name);
    }
    return a;
  }

  // A reparse point's path as a symlink target inside this tree: relative
  // targets keep their shape with '/'; an NT path (backslash, two question
  // marks, backslash, "C:\a\b") becomes "/a/b" (the volume's own root); other absolute forms
  // (volumes, UNC) are shown as stored, which resolves to nothing inside the tree.
  static std::string windows_target(std::string t, bool relative) {
    std::replace(t.begin(), t.end(), '\\', '/');
    if (relative) return t;
    std::string s = t;
    if (s.rfind("/?"
                "?/",
                0) == 0)
      s = s.substr(4);
    if (s.size() >= 2 && s[1] == ':' &&
        ((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))) {
      s = s.substr(2);
      if (s.empty()) s = "/";
      return s;
    }
    return t;
  }

  Kind kind_of(const Node& node) const {
    Kind k;
    if (node.rec_flags & kFrDirectory) k.type = NodeType::kDirectory;
    const uint32_t fa = file_attributes(node);
    if (const Attr* rp = node.find(kAttrReparsePoint)) {
      std::vector<uint8_t> v = attr_bytes(*rp, kMaxResidentRead, "reparse point");
      if (v.size() >= kRpData) {
        uint32_t tag = load_le32(v.data() + kRpTag);
        uint32_t dlen = load_le16(v.data() + kRpDataLength);
        if (kRpData + uint64_t{dlen} > v.size()) {
          corrupt(node.where, "MFT entry " + std::to_string(node.number) + ": reparse data of " +
                                  std::to_string(dlen) + " bytes runs past the attribute");
        }
        const uint8_t* d = v.data() + kRpData;
        if (tag == kTagSymlink || tag == kTagMountPoint) {
          uint32_t buf_at = tag == kTagSymlink ? kRpSymlinkPathBuffer : kRpMountPathBuffer;
          if (dlen < buf_at) corrupt(node.where, "reparse point too short for its tag");
          uint32_t po = load_le16(d + kRpPrintOffset), pl = load_le16(d + kRpPrintLength);
          uint32_t so = load_le16(d + kRpSubstOffset), sl = load_le16(d + kRpSubstLength);
          bool relative = tag == kTagSymlink && (load_le32(d + kRpSymlinkFlags) & kSymlinkRelative);
          auto name_at = [&](uint32_t off, uint32_t len) -> std::string {
            if (buf_at + uint64_t{off} + len > dlen) {
              corrupt(node.where, "MFT entry " + std::to_string(node.number) +
                                      ": reparse point name runs past its data");
            }
            return utf16_to_utf8(d + buf_at + off, len, ByteOrder::kLittle, false);
          };
          std::string target = pl ? name_at(po, pl) : name_at(so, sl);
          if (!relative && pl == 0) target = name_at(so, sl);
          k.type = NodeType::kSymlink;
          k.target = windows_target(target, relative);
          if (!relative && (target.rfind("\\?"
                                         "?\\",
                                         0) == 0 ||
                            target.find(':') == 1)) {
            k.target = windows_target(name_at(so, sl), false);
          }
          return k;
        }
      }
      return k;
    }
    // Interix special files (ntfs-3g): the system attribute and a magic.
    if (k.type == NodeType::kRegular && (fa & kFaSystem) && node.number >= kFirstUserRecord) {
      std::optional<Stream> s = assemble(node, kAttrData, "");
      uint64_t size = s ? s->size : 0;
      if (size == 0) {
        k.type = NodeType::kFifo;
      } else if (size == 1) {
        k.type = NodeType::kSocket;
      } else if (size >= 8 && size <= 8 + 2 * 4096 &&
                 !(s->flags & (kAfCompressionMask | kAfEncrypted))) {
        std::vector<uint8_t> d(static_cast<size_t>(size));
        read_stream(*s, 0, d.data(), d.size());
        if (std::memcmp(d.data(), kIntxSymlink, 8) == 0) {
          k.type = NodeType::kSymlink;
          k.target = utf16_to_utf8(d.data() + 8, d.size() - 8, ByteOrder::kLittle, true);
        } else if (size >= 24 && (std::memcmp(d.data(), kIntxChar, 8) == 0 ||
                                  std::memcmp(d.data(), kIntxBlock, 8) == 0)) {
          k.type = d[4] == 'C' ? NodeType::kCharDevice : NodeType::kBlockDevice;
          uint64_t major = load_le64(d.data() + 8), minor = load_le64(d.data() + 16);
          k.rdev =
              (std::min<uint64_t>(major, 0xFFFFFFFF) << 32) | std::min<uint64_t>(minor, 0xFFFFFFFF);
        }
      }
    }
    return k;
  }

  NodeStat stat_of(const Node& node) const {
    NodeStat st;
    st.id = node.number;
    Kind k = kind_of(node);
    st.type = k.type;
    st.rdev = k.rdev;
    const uint32_t fa = file_attributes(node);
    switch (k.type) {
      case NodeType::kDirectory:
        st.mode = 0755;
        break;
      case NodeType::kSymlink:
        st.mode = 0777;
        break;
      default:
        st.mode = 0644;
        break;
    }
    if ((fa & kFaReadOnly) && k.type != NodeType::kSymlink) st.mode &= ~0222u;
    uint32_t names = 0;
    for (const Attr& a : node.attrs) {
      if (a.type == kAttrFileName && a.value.size() > kFnNamespace &&
          a.value[kFnNamespace] != kNsDos)
        ++names;
    }
    st.nlink = std::max<uint32_t>(names, 1);
    if (k.type == NodeType::kRegular) {
      for (const Attr& a : node.attrs) {
        if (a.type == kAttrData && a.name.empty() && (a.resident || a.lowest_vcn == 0)) {
          st.size = a.resident ? a.value.size() : a.size;
        }
      }
    } else if (k.type == NodeType::kSymlink) {
      st.size = k.target.size();
    }
    if (const Attr* si = node.find(kAttrStandardInformation)) {
      if (si->value.size() >= kSiSizeV1) {
        const uint8_t* v = si->value.data();
        st.mtime = filetime_to_timestamp(load_le64(v + kSiModifiedTime));
        st.ctime = filetime_to_timestamp(load_le64(v + kSiMftChangeTime));
        st.atime = filetime_to_timestamp(load_le64(v + kSiAccessTime));
      }
    }
    return st;
  }

  // --- indexes -------------------------------------------------------------------

  // Calls `fn` for every entry with a key of index `name` of `node`, in
  // B-tree order. Each INDX buffer is visited at most once (a cycle is
  // damage) and must be marked in use in the index's $BITMAP.
  void walk_index(const Node& node, const std::string& name,
                  const std::function<void(const IndexEntry&)>& fn) const {
    const Attr* root = node.find(kAttrIndexRoot, name);
    if (!root) {
      corrupt(node.where,
              "MFT entry " + std::to_string(node.number) + " has no $INDEX_ROOT " + name);
    }
    const std::vector<uint8_t>& rv = root->value;
    if (rv.size() < kIrNodeHeader + kInNodeHeaderSize) {
      corrupt(node.where, "MFT entry " + std::to_string(node.number) + ": $INDEX_ROOT too short");
    }
    uint32_t block = load_le32(rv.data() + kIrBlockSize);
    std::optional<Stream> alloc = assemble(node, kAttrIndexAllocation, name);
    std::vector<uint8_t> bitmap;
    if (alloc) {
      if (!is_pow2(block) || block < kFixupStride || block > 65536) {
        corrupt(node.where, "MFT entry " + std::to_string(node.number) + ": index block size " +
                                std::to_string(block));
      }
      if (const Attr* bm = node.find(kAttrBitmap, name)) {
        bitmap = attr_bytes(*bm, kMaxResidentRead, "index bitmap");
      }
    }
    const uint64_t vcn_unit = block >= g_.cluster_size ? g_.cluster_size : kFixupStride;
    std::set<uint64_t> seen;
    std::function<void(const uint8_t*, size_t, uint64_t, uint32_t)> walk_node;
    walk_node = [&](const uint8_t* nh, size_t avail, uint64_t where, uint32_t depth) {
      if (depth > kMaxIndexDepth) corrupt(where, "index B-tree deeper than 32 levels");
      uint32_t first = load_le32(nh + kInEntriesOffset);
      uint32_t used = load_le32(nh + kInIndexLength);
      if (used > avail || first < kInNodeHeaderSize || first > used) {
        corrupt(where, "index node (entries at " + std::to_string(first) + ", " +
                           std::to_string(used) + " bytes used) does not fit " +
                           std::to_string(avail) + " bytes");
      }
      size_t pos = first;
      while (true) {
        if (pos + kIeHeaderSize > used)
          corrupt(where + pos, "index entries end without a last entry");
        const uint8_t* e = nh + pos;
        uint32_t len = load_le16(e + kIeLength);
        uint32_t key_len = load_le16(e + kIeKeyLength);
        uint32_t flags = load_le32(e + kIeFlags);
        if (len < kIeHeaderSize || (len & 7) || pos + len > used ||
            kIeHeaderSize + uint64_t{key_len} > len ||
            ((flags & kIeHasChild) && len < kIeHeaderSize + 8)) {
          corrupt(where + pos, "index entry of " + std::to_string(len) + " bytes (key " +
                                   std::to_string(key_len) + ") does not fit its node");
        }
        if (flags & kIeHasChild) {
          if (!alloc)
            corrupt(where + pos, "index entry has a child but there is no $INDEX_ALLOCATION");
          uint64_t vcn = load_le64(e + len - 8);
          uint64_t index = vcn * vcn_unit / block;
          if (!seen.insert(vcn).second) {
            corrupt(where + pos, "index B-tree cycle: buffer at VCN " + std::to_string(vcn) +
                                     " is reached twice");
          }
          if (!bitmap.empty() &&
              (index / 8 >= bitmap.size() || !(bitmap[index / 8] & (1u << (index % 8))))) {
            corrupt(where + pos, "index entry points at buffer VCN " + std::to_string(vcn) +
                                     ", which $BITMAP marks unused");
          }
          uint64_t off = vcn * vcn_unit;
          if (off + block > alloc->size || off / vcn_unit != vcn) {
            corrupt(where + pos, "index entry points at buffer VCN " + std::to_string(vcn) +
                                     ", past the $INDEX_ALLOCATION's " +
                                     std::to_string(alloc->size) + " bytes");
          }
          std::vector<uint8_t> buf(block);
          read_stream(*alloc, off, buf.data(), buf.size());
          uint64_t bwhere = device_offset(alloc->runs, off);
          if (std::memcmp(buf.data(), "INDX", 4) != 0) {
            corrupt(bwhere,
                    "index buffer at VCN " + std::to_string(vcn) + " has no INDX signature");
          }
          std::string bad = apply_fixups(buf.data(), buf.size());
          if (!bad.empty())
            corrupt(bwhere, "index buffer at VCN " + std::to_string(vcn) + ": " + bad);
          if (load_le64(buf.data() + kIxVcn) != vcn) {
            corrupt(bwhere, "index buffer says VCN " +
                                std::to_string(load_le64(buf.data() + kIxVcn)) +
                                " but was reached as VCN " + std::to_string(vcn));
          }
          walk_node(buf.data() + kIxNodeHeader, block - kIxNodeHeader, bwhere + kIxNodeHeader,
                    depth + 1);
        }
        if (flags & kIeLast) break;
        fn(IndexEntry{e, len, where + pos});
        pos += len;
      }
    };
    walk_node(rv.data() + kIrNodeHeader, rv.size() - kIrNodeHeader, node.where, 0);
  }

  struct NameEntry {
    std::string name;
    uint64_t ref = 0;
    uint8_t ns = 0;
    const uint8_t* key = nullptr;
  };

  // A $I30 entry's name; false for DOS aliases and entries without a name.
  static bool entry_name(const IndexEntry& e, NameEntry& out) {
    uint32_t key_len = load_le16(e.p + kIeKeyLength);
    if (key_len < kFnName) return false;
    const uint8_t* k = e.p + kIeKey;
    uint32_t n = k[kFnNameLength];
    if (kFnName + 2ull * n > key_len) return false;
    out.ns = k[kFnNamespace];
    if (out.ns == kNsDos) return false;  // the 8.3 alias: the long name is listed too
    out.ref = load_le64(e.p + kIeReference) & kRefRecordMask;
    out.name = utf16_to_utf8(k + kFnName, 2u * n, ByteOrder::kLittle, false);
    out.key = k;
    return true;
  }

  std::vector<DirEntry> list_impl(NodeId dir, bool system) const {
    // Not a structured binding: the lambda below captures `rec` (clang 14,
    // the fuzz build's compiler, refuses to capture bindings).
    const auto parts = split(dir);
    const auto rec = parts.first;
    const auto stream = parts.second;
    auto node = get_node(rec);
    if (stream != 0 || !(node->rec_flags & kFrDirectory)) {
      throw Error(ErrorKind::kInvalidArgument, label_, node->where,
                  "MFT entry " + std::to_string(rec) + " is not a directory");
    }
    std::vector<DirEntry> out;
    walk_index(*node, "$I30", [&](const IndexEntry& e) {
      NameEntry ne;
      if (!entry_name(e, ne)) return;
      if (ne.ref == rec) return;  // the root lists itself as "."
      bool is_system = rec == kRecRoot && ne.ref < kFirstUserRecord;
      if (is_system != system) return;
      if (ne.name.empty() || ne.name == "." || ne.name == ".." ||
          ne.name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
        default_warning(
            format_error(label_, e.where, "directory entry with an unusable name skipped"));
        return;
      }
      DirEntry d;
      d.name = ne.name;
      try {
        d.stat = stat_of(*get_node(ne.ref));
      } catch (const Error&) {
        // A damaged entry stays listed (from the index key's copy of its
        // $FILE_NAME) so the rest of the directory is usable; reading it
        // reports the damage.
        d.stat = NodeStat{};
        d.stat.id = ne.ref;
        d.stat.mode = 0644;
        uint32_t fa = load_le32(ne.key + kFnFileAttributes);
        d.stat.type = (fa & 0x10000000) ? NodeType::kDirectory : NodeType::kRegular;
        d.stat.size = d.stat.type == NodeType::kRegular ? load_le64(ne.key + kFnDataSize) : 0;
      }
      out.push_back(std::move(d));
    });
    return out;
  }

  // NTFS orders $I30 by the volume's $UpCase of each UTF-16 unit.
  int compare_upcase(const std::u16string& a, const uint8_t* b, size_t bn) const {
    size_t n = std::min(a.size(), bn);
    for (size_t i = 0; i < n; ++i) {
      uint16_t x = upcase(a[i]), y = upcase(load_le16(b + 2 * i));
      if (x != y) return x < y ? -1 : 1;
    }
    return a.size() == bn ? 0 : (a.size() < bn ? -1 : 1);
  }

  uint16_t upcase(uint16_t c) const { return c < upcase_.size() ? upcase_[c] : c; }

  // Finds `name` in directory `node`: a B-tree descent by $UpCase order, and
  // when that misses (a damaged or oddly ordered index), a full walk.
  std::optional<NodeId> find_name(const Node& node, const std::string& name) const {
    std::optional<NodeId> found;
    if (!upcase_.empty()) {
      found = descend(node, name);
      if (found) return found;
    }
    walk_index(node, "$I30", [&](const IndexEntry& e) {
      NameEntry ne;
      if (found || !entry_name(e, ne) || ne.ref == node.number) return;
      if (ne.name == name) found = ne.ref;
    });
    return found;
  }

  std::optional<NodeId> descend(const Node& node, const std::string& name) const {
    std::u16string want = utf8_to_utf16(name);
    const Attr* root = node.find(kAttrIndexRoot, "$I30");
    if (!root || root->value.size() < kIrNodeHeader + kInNodeHeaderSize) return std::nullopt;
    uint32_t block = load_le32(root->value.data() + kIrBlockSize);
    std::optional<Stream> alloc;
    bool alloc_loaded = false;
    const uint64_t vcn_unit = block >= g_.cluster_size ? g_.cluster_size : kFixupStride;
    std::vector<uint8_t> buf(root->value.begin() + kIrNodeHeader, root->value.end());
    for (uint32_t depth = 0; depth <= kMaxIndexDepth; ++depth) {
      const uint8_t* nh = buf.data();
      uint32_t first = load_le32(nh + kInEntriesOffset);
      uint32_t used = load_le32(nh + kInIndexLength);
      if (used > buf.size() || first < kInNodeHeaderSize || first > used) return std::nullopt;
      size_t pos = first;
      std::optional<uint64_t> child;
      while (pos + kIeHeaderSize <= used) {
        const uint8_t* e = nh + pos;
        uint32_t len = load_le16(e + kIeLength);
        uint32_t key_len = load_le16(e + kIeKeyLength);
        uint32_t flags = load_le32(e + kIeFlags);
        if (len < kIeHeaderSize || (len & 7) || pos + len > used ||
            kIeHeaderSize + uint64_t{key_len} > len)
          return std::nullopt;
        int cmp = -1;
        if (!(flags & kIeLast) && key_len >= kFnName) {
          const uint8_t* k = e + kIeKey;
          uint32_t n = k[kFnNameLength];
          if (kFnName + 2ull * n > key_len) return std::nullopt;
          cmp = compare_upcase(want, k + kFnName, n);
          if (cmp == 0) {
            IndexEntry ie{e, len, 0};
            NameEntry ne;
            if (entry_name(ie, ne) && ne.name == name && ne.ref != node.number) return ne.ref;
            // Same letters in another case, or the DOS alias: the exact
            // name may be a neighbour; let the full walk decide.
            return std::nullopt;
          }
        }
        if (cmp < 0) {
          if ((flags & kIeHasChild) && len >= kIeHeaderSize + 8) child = load_le64(e + len - 8);
          break;
        }
        pos += len;
      }
      if (!child) return std::nullopt;
      if (!alloc_loaded) {
        alloc = assemble(node, kAttrIndexAllocation, "$I30");
        alloc_loaded = true;
      }
      if (!alloc || !is_pow2(block) || block < kFixupStride || block > 65536) return std::nullopt;
      uint64_t off = *child * vcn_unit;
      if (off + block > alloc->size || off / vcn_unit != *child) return std::nullopt;
      std::vector<uint8_t> ib(block);
      read_stream(*alloc, off, ib.data(), ib.size());
      if (std::memcmp(ib.data(), "INDX", 4) != 0 || !apply_fixups(ib.data(), ib.size()).empty())
        return std::nullopt;
      buf.assign(ib.begin() + kIxNodeHeader, ib.end());
    }
    return std::nullopt;
  }

  // --- security --------------------------------------------------------------------

  std::string owner_sid(const Node& node, uint32_t security_id) const {
    try {
      std::vector<uint8_t> sd;
      if (const Attr* a = node.find(kAttrSecurityDescriptor)) {
        sd = attr_bytes(*a, kMaxResidentRead, "security descriptor");
      } else if (security_id != 0) {
        sd = secure_descriptor(security_id);
      }
      if (sd.size() < 20) return "";
      uint32_t owner = load_le32(sd.data() + kSdOwnerOffset);
      if (owner == 0 || owner + 8ull > sd.size()) return "";
      const uint8_t* s = sd.data() + owner;
      uint32_t count = s[1];
      if (owner + 8ull + 4ull * count > sd.size()) return "";
      uint64_t authority = 0;
      for (int i = 2; i < 8; ++i) authority = (authority << 8) | s[i];
      std::string out = "S-" + std::to_string(s[0]) + "-" + std::to_string(authority);
      for (uint32_t i = 0; i < count; ++i) out += "-" + std::to_string(load_le32(s + 8 + 4 * i));
      return out;
    } catch (const Error&) {
      return "";
    }
  }

  // The descriptor with `id`, from $Secure:$SII (loaded once) and $Secure:$SDS.
  std::vector<uint8_t> secure_descriptor(uint32_t id) const {
    std::call_once(sii_once_, [&] {
      try {
        auto secure = get_node(kRecSecure);
        walk_index(*secure, "$SII", [&](const IndexEntry& e) {
          if (e.len < kIeHeaderSize + 4 + 24 || sii_.size() > 1000000) return;
          uint32_t key = load_le32(e.p + kIeKey);
          const uint8_t* v = e.p + kIeKey;
          sii_[key] = {load_le64(v + kSiiSdsOffset), load_le32(v + kSiiSdsSize)};
        });
      } catch (const Error&) {
      }
    });
    auto it = sii_.find(id);
    if (it == sii_.end()) return {};
    auto [off, size] = it->second;
    if (size < kSdsHeaderSize || size > 65536) return {};
    auto secure = get_node(kRecSecure);
    std::optional<Stream> sds = assemble(*secure, kAttrData, "$SDS");
    if (!sds || off + size > sds->size) return {};
    std::vector<uint8_t> out(size);
    read_stream(*sds, off, out.data(), out.size());
    out.erase(out.begin(), out.begin() + kSdsHeaderSize);
    return out;
  }

  // --- open ----------------------------------------------------------------------------

  void load_mft() {
    // $MFT's first entry is where the boot sector says; its $DATA (maybe
    // spread over extension entries listed in its attribute list) maps the
    // rest of the MFT.
    const uint64_t cs = g_.cluster_size;
    uint64_t mft_off = g_.mft_lcn * cs;
    uint64_t mirr_off = g_.mftmirr_lcn * cs;
    std::vector<uint8_t> rec(g_.record_size);
    dev_->read(mft_off, rec.data(), rec.size());
    uint64_t where = mft_off;
    std::string bad = check_record(rec, 0);
    if (!bad.empty()) {
      std::vector<uint8_t> mirror(g_.record_size);
      if (mirr_off + mirror.size() > dev_->size() ||
          (dev_->read(mirr_off, mirror.data(), mirror.size()), !check_record(mirror, 0).empty())) {
        corrupt(mft_off, "MFT entry 0 ($MFT): " + bad + ", and $MFTMirr has no sound copy");
      }
      default_warning(format_error(label_, mft_off,
                                   "MFT entry 0 ($MFT): " + bad + "; using the copy in $MFTMirr"));
      rec = std::move(mirror);
      where = mirr_off;
    }
    std::vector<Attr> attrs;
    parse_attrs(rec, 0, where, attrs);
    std::vector<const Attr*> data;
    const Attr* list = nullptr;
    for (const Attr& a : attrs) {
      if (a.type == kAttrData && a.name.empty()) data.push_back(&a);
      if (a.type == kAttrAttributeList) list = &a;
    }
    if (data.empty() || data[0]->resident) corrupt(where, "$MFT has no non-resident $DATA");
    std::sort(data.begin(), data.end(),
              [](const Attr* a, const Attr* b) { return a->lowest_vcn < b->lowest_vcn; });
    if (data[0]->lowest_vcn != 0) corrupt(where, "$MFT's $DATA does not start at VCN 0");
    const uint64_t size = data[0]->size;
    for (const Attr* a : data) {
      mft_runs_.insert(mft_runs_.end(), a->runs.begin(), a->runs.end());
    }
    mft_records_ = size / g_.record_size;
    if (mft_records_ <= kRecRoot || size > g_.total_clusters * cs) {
      corrupt(where, "$MFT's $DATA size " + std::to_string(size) + " is implausible");
    }
    if (list) {
      // Extension entries of $MFT are reached through the runs known so far
      // (Windows keeps them in the MFT's first extent).
      Node self;
      self.number = 0;
      self.where = where;
      self.attrs = attrs;
      std::vector<uint8_t> bytes = attr_bytes(*list, kMaxAttributeList, "$MFT attribute list");
      std::vector<std::pair<uint64_t, uint64_t>> parts;  // lowest VCN, record
      size_t pos = 0;
      while (pos + kAlHeaderSize <= bytes.size()) {
        const uint8_t* e = bytes.data() + pos;
        uint32_t len = load_le16(e + kAlLength);
        if (len < kAlHeaderSize || pos + len > bytes.size()) {
          corrupt(where, "$MFT attribute list entry at " + std::to_string(pos) + " is invalid");
        }
        uint64_t ref = load_le64(e + kAlReference) & kRefRecordMask;
        if (load_le32(e + kAlType) == kAttrData && e[kAlNameLength] == 0 && ref != 0) {
          parts.push_back({load_le64(e + kAlLowestVcn), ref});
        }
        pos += len;
      }
      std::sort(parts.begin(), parts.end());
      for (auto [vcn, ref] : parts) {
        uint64_t mapped = mft_runs_.empty() ? 0 : mft_runs_.back().vcn + mft_runs_.back().length;
        if (vcn < mapped) continue;
        if (vcn != mapped)
          corrupt(where, "$MFT's $DATA fragments leave a gap at VCN " + std::to_string(mapped));
        // Records up to the mapped clusters are readable now.
        mft_records_ = std::min(size, mapped * cs) / g_.record_size;
        uint64_t ew = 0;
        std::vector<uint8_t> ext = read_record(ref, ew);
        std::vector<Attr> more;
        parse_attrs(ext, ref, ew, more);
        bool added = false;
        for (const Attr& a : more) {
          if (a.type == kAttrData && a.name.empty() && a.lowest_vcn == vcn && !a.resident) {
            mft_runs_.insert(mft_runs_.end(), a.runs.begin(), a.runs.end());
            added = true;
          }
        }
        if (!added)
          corrupt(ew, "$MFT extension entry " + std::to_string(ref) + " lacks its $DATA fragment");
      }
      mft_records_ = size / g_.record_size;
    }
    uint64_t mapped = mft_runs_.empty() ? 0 : mft_runs_.back().vcn + mft_runs_.back().length;
    if (mapped * cs < size) {
      corrupt(where, "$MFT's data runs map " + std::to_string(mapped * cs) + " of its " +
                         std::to_string(size) + " bytes");
    }
    // $MFTMirr holds at least the first four entries (one cluster at least).
    mirror_records_ = std::max<uint64_t>(4, cs / g_.record_size);
  }

  void load_upcase() {
    try {
      auto node = get_node(10);  // $UpCase
      std::optional<Stream> s = assemble(*node, kAttrData, "");
      if (!s || s->size != 131072) return;
      std::vector<uint8_t> raw(131072);
      read_stream(*s, 0, raw.data(), raw.size());
      upcase_.resize(65536);
      for (size_t i = 0; i < 65536; ++i) upcase_[i] = load_le16(raw.data() + 2 * i);
    } catch (const Error&) {
      upcase_.clear();  // lookups fall back to the full walk
    }
  }

  BlockDevicePtr dev_;
  std::string label_;
  Geometry g_;
  std::vector<Run> mft_runs_;
  uint64_t mft_records_ = 0;
  uint64_t mirror_records_ = 4;
  std::string volume_name_;
  uint32_t version_major_ = 3, version_minor_ = 1;
  uint16_t volume_flags_ = 0;
  std::vector<uint16_t> upcase_;

  mutable std::mutex mu_;
  mutable std::unordered_map<uint64_t, std::shared_ptr<const Node>> node_cache_;
  mutable std::unordered_map<uint64_t, std::pair<uint16_t, std::shared_ptr<const Stream>>>
      stream_cache_;
  mutable std::set<uint64_t> mirror_warned_;
  mutable std::once_flag sii_once_;
  mutable std::map<uint32_t, std::pair<uint64_t, uint32_t>> sii_;
};

}  // namespace

Geometry parse_boot_sector(const uint8_t* bs, uint64_t dev_size, const std::string& label,
                           uint64_t at) {
  if (std::memcmp(bs + kBsOemId, kBitLockerOemId, 8) == 0) {
    throw Error(ErrorKind::kUnsupported, label, at + kBsOemId,
                "BitLocker-encrypted volume (signature -FVE-FS-): vdisk does not decrypt "
                "BitLocker");
  }
  if (std::memcmp(bs + kBsOemId, kNtfsOemId, 8) != 0) {
    throw Error(ErrorKind::kNotThisFormat, label, at + kBsOemId, "no NTFS signature");
  }
  auto bad = [&](uint32_t field, const std::string& msg) {
    throw Error(ErrorKind::kCorrupt, label, at + field, "NTFS boot sector: " + msg);
  };
  Geometry g;
  g.boot_offset = at;
  g.bytes_per_sector = load_le16(bs + kBsBytesPerSector);
  if (!is_pow2(g.bytes_per_sector) || g.bytes_per_sector < 256 || g.bytes_per_sector > 4096)
    bad(kBsBytesPerSector, "bytes per sector " + std::to_string(g.bytes_per_sector));
  uint8_t spc = bs[kBsSectorsPerCluster];
  uint64_t sectors = spc <= 128 ? spc : (spc >= 244 ? uint64_t{1} << (256 - spc) : 0);
  if (!is_pow2(sectors))
    bad(kBsSectorsPerCluster, "sectors per cluster byte " + std::to_string(spc));
  uint64_t cluster = sectors * g.bytes_per_sector;
  if (cluster > (2u << 20))
    bad(kBsSectorsPerCluster, "cluster size " + std::to_string(cluster) + " is over 2 MiB");
  g.cluster_size = static_cast<uint32_t>(cluster);
  g.total_sectors = load_le64(bs + kBsTotalSectors);
  if (g.total_sectors == 0 || g.total_sectors > (uint64_t{1} << 48))
    bad(kBsTotalSectors, "total sectors " + std::to_string(g.total_sectors));
  g.total_clusters = g.total_sectors * g.bytes_per_sector / g.cluster_size;
  g.mft_lcn = load_le64(bs + kBsMftLcn);
  g.mftmirr_lcn = load_le64(bs + kBsMftMirrLcn);
  if (g.mft_lcn >= g.total_clusters)
    bad(kBsMftLcn, "$MFT cluster " + std::to_string(g.mft_lcn) + " is past the volume's " +
                       std::to_string(g.total_clusters) + " clusters");
  if (g.mftmirr_lcn >= g.total_clusters)
    bad(kBsMftMirrLcn, "$MFTMirr cluster " + std::to_string(g.mftmirr_lcn) + " is past the end");
  uint64_t rs = decode_size_field(bs[kBsClustersPerRecord], g.cluster_size);
  if (!is_pow2(rs) || rs < 512 || rs > 65536)
    bad(kBsClustersPerRecord, "MFT entry size " + std::to_string(rs));
  g.record_size = static_cast<uint32_t>(rs);
  uint64_t is = decode_size_field(bs[kBsClustersPerIndex], g.cluster_size);
  if (!is_pow2(is) || is < 512 || is > 65536)
    bad(kBsClustersPerIndex, "index block size " + std::to_string(is));
  g.index_block_size = static_cast<uint32_t>(is);
  g.serial = load_le64(bs + kBsSerial);
  if (g.mft_lcn * g.cluster_size + g.record_size > dev_size)
    bad(kBsMftLcn, "$MFT at byte " + std::to_string(g.mft_lcn * g.cluster_size) +
                       " lies past the end of the device (" + std::to_string(dev_size) + " bytes)");
  return g;
}

int probe(const BlockDevice& dev) {
  if (dev.size() < kBootSectorSize) return 0;
  uint8_t bs[kBootSectorSize];
  dev.read(0, bs, sizeof bs);
  if (std::memcmp(bs + kBsOemId, kBitLockerOemId, 8) == 0) return 90;
  if (std::memcmp(bs + kBsOemId, kNtfsOemId, 8) == 0) return 100;
  // The backup boot sector: the last sector of the device.
  for (uint64_t sector : {512u, 4096u}) {
    if (dev.size() < 2 * sector) continue;
    dev.read(dev.size() - sector, bs, sizeof bs);
    if (std::memcmp(bs + kBsOemId, kNtfsOemId, 8) == 0) return 60;
  }
  return 0;
}

std::unique_ptr<FileTree> open_ntfs_tree(BlockDevicePtr dev, const std::string& label) {
  if (dev->size() < kBootSectorSize) {
    throw Error(ErrorKind::kNotThisFormat, label, 0, "too small for an NTFS boot sector");
  }
  uint8_t bs[kBootSectorSize];
  dev->read(0, bs, sizeof bs);
  Geometry g;
  try {
    g = parse_boot_sector(bs, dev->size(), label, 0);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUnsupported) throw;
    // The backup lies in the device's last sector (mkntfs and Windows put
    // it just after the volume's sectors).
    bool found = false;
    for (uint64_t sector : {512u, 4096u}) {
      if (dev->size() < 2 * sector) continue;
      uint8_t backup[kBootSectorSize];
      uint64_t at = dev->size() - sector;
      dev->read(at, backup, sizeof backup);
      try {
        g = parse_boot_sector(backup, dev->size(), label, at);
      } catch (const Error&) {
        continue;
      }
      default_warning(std::string(e.what()) + "; using the backup boot sector at offset " +
                      std::to_string(at));
      found = true;
      break;
    }
    if (!found) throw;
  }
  auto tree = std::make_unique<NtfsTree>(std::move(dev), label, g);
  tree->load();
  return tree;
}

}  // namespace vdisk::ntfs
