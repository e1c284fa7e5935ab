#include "formats/fat/fat_tree.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/unicode.h"
#include "formats/fat/fat_layout.h"

namespace vdisk::fat {

namespace {

// The cluster a chain comes back to, when it does: the value whose second
// appearance comes first (9 -> 7 -> 4 -> 7 -> 4 loops back to 7, though 4
// repeats too); nullopt for a chain without repeats. Sorting (value, index)
// pairs keeps it to 8 bytes per cluster, whatever the volume's size.
std::optional<uint32_t> loop_target(const std::vector<uint32_t>& chain) {
  std::vector<std::pair<uint32_t, uint32_t>> v(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) v[i] = {chain[i], static_cast<uint32_t>(i)};
  std::sort(v.begin(), v.end());
  std::optional<uint32_t> best;
  uint32_t best_index = UINT32_MAX;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i].first == v[i - 1].first && v[i].second < best_index) {
      best_index = v[i].second;
      best = v[i].first;
    }
  }
  return best;
}

// Node ids: the root is kRootNode; every other node is the device byte offset
// of its 8.3 directory entry (a multiple of 32, never below one sector), so
// ids are stable without any table.
constexpr NodeId kRootNode = 1;

// The upper half of code page 437 (the OEM code page of 8.3 names written by
// DOS and by mtools' default), as Unicode code points.
constexpr std::array<uint16_t, 128> kCp437High = {
    0x00c7, 0x00fc, 0x00e9, 0x00e2, 0x00e4, 0x00e0, 0x00e5, 0x00e7, 0x00ea, 0x00eb, 0x00e8, 0x00ef,
    0x00ee, 0x00ec, 0x00c4, 0x00c5, 0x00c9, 0x00e6, 0x00c6, 0x00f4, 0x00f6, 0x00f2, 0x00fb, 0x00f9,
    0x00ff, 0x00d6, 0x00dc, 0x00a2, 0x00a3, 0x00a5, 0x20a7, 0x0192, 0x00e1, 0x00ed, 0x00f3, 0x00fa,
    0x00f1, 0x00d1, 0x00aa, 0x00ba, 0x00bf, 0x2310, 0x00ac, 0x00bd, 0x00bc, 0x00a1, 0x00ab, 0x00bb,
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556, 0x2555, 0x2563, 0x2551, 0x2557,
    0x255d, 0x255c, 0x255b, 0x2510, 0x2514, 0x2534, 0x252c, 0x251c, 0x2500, 0x253c, 0x255e, 0x255f,
    0x255a, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256c, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559,
    0x2558, 0x2552, 0x2553, 0x256b, 0x256a, 0x2518, 0x250c, 0x2588, 0x2584, 0x258c, 0x2590, 0x2580,
    0x03b1, 0x00df, 0x0393, 0x03c0, 0x03a3, 0x03c3, 0x00b5, 0x03c4, 0x03a6, 0x0398, 0x03a9, 0x03b4,
    0x221e, 0x03c6, 0x03b5, 0x2229, 0x2261, 0x00b1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00f7, 0x2248,
    0x00b0, 0x2219, 0x00b7, 0x221a, 0x207f, 0x00b2, 0x25a0, 0x00a0,
};

// UTF-16 code units to UTF-8; an unpaired surrogate becomes U+FFFD.
std::string utf16_to_utf8(const std::vector<uint16_t>& units) {
  return vdisk::utf16_to_utf8(std::u16string(units.begin(), units.end()));
}

std::string trim_right(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string oem_to_utf8(const uint8_t* p, size_t n, bool lower) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = p[i];
    if (c < 0x80) {
      if (lower && c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c - 'A' + 'a');
      out += static_cast<char>(c == '/' ? '_' : c);
    } else {
      uint32_t cp = kCp437High[c - 0x80];
      // The NT lower-case flags apply to accented capitals too (mtools
      // stores "café" as CAFÉ with the flag): fold the Latin-1 capitals.
      if (lower && cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) cp += 0x20;
      append_utf8(out, cp);
    }
  }
  return out;
}

// The displayed form of an 8.3 entry name ("README.TXT", or "readme.txt"
// when the NT case flags say so).
std::string short_name(const uint8_t* e) {
  uint8_t name[11];
  std::copy(e, e + 11, name);
  if (name[0] == kNameKanjiE5) name[0] = 0xE5;
  uint8_t nt = e[kDirNtRes];
  std::string base = trim_right(oem_to_utf8(name, 8, nt & kNtLowerBase));
  std::string ext = trim_right(oem_to_utf8(name + 8, 3, nt & kNtLowerExt));
  return ext.empty() ? base : base + "." + ext;
}

bool is_power_of_two(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

const char* fat_type_name(FatType t) {
  switch (t) {
    case FatType::kFat12:
      return "FAT12";
    case FatType::kFat16:
      return "FAT16";
    case FatType::kFat32:
      return "FAT32";
  }
  return "FAT";
}

uint8_t short_name_checksum(const uint8_t* name11) {
  uint8_t sum = 0;
  for (int i = 0; i < 11; ++i) {
    sum = static_cast<uint8_t>(((sum & 1) ? 0x80 : 0) + (sum >> 1) + name11[i]);
  }
  return sum;
}

Timestamp decode_fat_time(uint16_t date, uint16_t time, uint8_t tenths) {
  unsigned day = date & 0x1F, month = (date >> 5) & 0x0F;
  int64_t year = 1980 + (date >> 9);
  if (day == 0 || month == 0 || month > 12) return {};
  unsigned sec = (time & 0x1F) * 2, min = (time >> 5) & 0x3F, hour = time >> 11;
  if (sec > 59 || min > 59 || hour > 23) sec = min = hour = 0;
  Timestamp t;
  t.seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
  if (tenths < 200) {
    t.seconds += tenths / 100;
    t.nanoseconds = static_cast<uint32_t>(tenths % 100) * 10'000'000u;
  }
  return t;
}

Geometry parse_boot_sector(const uint8_t* bs, uint64_t dev_size, const std::string& label) {
  auto not_fat = [&](const std::string& why) {
    throw Error(ErrorKind::kNotThisFormat, label, 0, "not a FAT boot sector: " + why);
  };
  if (bs[kBsSignature] != 0x55 || bs[kBsSignature + 1] != 0xAA) not_fat("no 55 AA signature");
  if (bs[kBsJmpBoot] != 0xEB && bs[kBsJmpBoot] != 0xE9) not_fat("no jump instruction");
  Geometry g;
  g.bytes_per_sector = load_le16(bs + kBpbBytsPerSec);
  g.sectors_per_cluster = bs[kBpbSecPerClus];
  g.reserved_sectors = load_le16(bs + kBpbRsvdSecCnt);
  g.num_fats = bs[kBpbNumFats];
  g.root_entries = load_le16(bs + kBpbRootEntCnt);
  uint8_t media = bs[kBpbMedia];
  if (g.bytes_per_sector < 512 || g.bytes_per_sector > 4096 || !is_power_of_two(g.bytes_per_sector))
    not_fat("bytes per sector " + std::to_string(g.bytes_per_sector));
  if (!is_power_of_two(g.sectors_per_cluster))
    not_fat("sectors per cluster " + std::to_string(g.sectors_per_cluster));
  if (g.reserved_sectors == 0) not_fat("no reserved sectors");
  if (g.num_fats == 0) not_fat("no FAT");
  if (media != 0xF0 && media < 0xF8) not_fat("media byte " + std::to_string(media));
  uint16_t tot16 = load_le16(bs + kBpbTotSec16);
  g.total_sectors = tot16 ? tot16 : load_le32(bs + kBpbTotSec32);
  uint16_t fatsz16 = load_le16(bs + kBpbFatSz16);
  g.fat_sectors = fatsz16 ? fatsz16 : load_le32(bs + kBpbFatSz32);
  if (g.total_sectors == 0) not_fat("total sectors is 0");
  if (g.fat_sectors == 0) not_fat("FAT size is 0");

  // Section 3.5: everything below is plain arithmetic on 16/32-bit fields, so
  // it fits in 64 bits; compare against the total before subtracting.
  const uint64_t bps = g.bytes_per_sector;
  g.root_dir_sectors = (uint64_t{g.root_entries} * kDirEntrySize + bps - 1) / bps;
  g.root_dir_sector = g.reserved_sectors + uint64_t{g.num_fats} * g.fat_sectors;
  g.first_data_sector = g.root_dir_sector + g.root_dir_sectors;
  if (g.first_data_sector >= g.total_sectors) {
    throw Error(ErrorKind::kCorrupt, label, kBpbTotSec16,
                "FAT total sectors " + std::to_string(g.total_sectors) +
                    " leave no room for data after " + std::to_string(g.first_data_sector) +
                    " metadata sectors");
  }
  uint64_t clusters = (g.total_sectors - g.first_data_sector) / g.sectors_per_cluster;
  if (clusters > kFat32Mask - 16) {
    throw Error(ErrorKind::kCorrupt, label, kBpbTotSec32,
                "FAT cluster count " + std::to_string(clusters) + " is too large");
  }
  g.cluster_count = static_cast<uint32_t>(clusters);
  if (g.cluster_count <= kMaxFat12Clusters) {
    g.type = FatType::kFat12;
  } else if (g.cluster_count <= kMaxFat16Clusters) {
    g.type = FatType::kFat16;
  } else {
    g.type = FatType::kFat32;
  }
  // A FAT32-shaped BPB (no 16-bit FAT size, no fixed root) is FAT32 even
  // below 65525 clusters: mkfs.fat makes such small volumes (with a warning)
  // and the common drivers read them by the BPB's shape.
  if (fatsz16 == 0 && g.root_entries == 0) g.type = FatType::kFat32;
  // The FAT must hold an entry for every cluster (plus the two reserved ones).
  uint64_t entries = uint64_t{g.cluster_count} + 2;
  uint64_t need_bytes = g.type == FatType::kFat12   ? (entries * 3 + 1) / 2
                        : g.type == FatType::kFat16 ? entries * 2
                                                    : entries * 4;
  if (g.fat_sectors * bps < need_bytes) {
    throw Error(ErrorKind::kCorrupt, label, kBpbFatSz16,
                std::string(fat_type_name(g.type)) + " of " + std::to_string(g.cluster_count) +
                    " clusters needs " + std::to_string(need_bytes) + " FAT bytes, the BPB gives " +
                    std::to_string(g.fat_sectors * bps));
  }
  // The metadata (boot sector, FATs, fixed root) must be inside the device;
  // data clusters past a truncated end are refused when they are read.
  if (g.first_data_sector * bps > dev_size) {
    throw Error(ErrorKind::kCorrupt, label, kBpbRsvdSecCnt,
                "FAT metadata ends at byte " + std::to_string(g.first_data_sector * bps) +
                    ", past the end of the device (" + std::to_string(dev_size) + " bytes)");
  }
  if (g.type == FatType::kFat32) {
    if (fatsz16 != 0 || g.root_entries != 0) {
      throw Error(ErrorKind::kCorrupt, label, kBpbRootEntCnt,
                  "FAT32 (by cluster count) with a FAT16 BPB (root entries " +
                      std::to_string(g.root_entries) + ")");
    }
    if (load_le16(bs + kBpbFsVer) != 0) {
      throw Error(ErrorKind::kUnsupported, label, kBpbFsVer,
                  "FAT32 version " + std::to_string(load_le16(bs + kBpbFsVer)) + " is not 0.0");
    }
    uint16_t ext = load_le16(bs + kBpbExtFlags);
    if (ext & kExtFlagsNoMirror) g.active_fat = ext & 0x0F;
    if (g.active_fat >= g.num_fats) {
      throw Error(
          ErrorKind::kCorrupt, label, kBpbExtFlags,
          "active FAT " + std::to_string(g.active_fat) + " of " + std::to_string(g.num_fats));
    }
    g.root_cluster = load_le32(bs + kBpbRootClus) & kFat32Mask;
    if (g.root_cluster < kFirstCluster || g.root_cluster > g.cluster_count + 1) {
      throw Error(ErrorKind::kCorrupt, label, kBpbRootClus,
                  "FAT32 root cluster " + std::to_string(g.root_cluster) + " is outside 2.." +
                      std::to_string(g.cluster_count + 1));
    }
    if (bs[kBs32BootSig] == kExtendedBootSig) {
      g.volume_id = load_le32(bs + kBs32VolId);
      g.volume_label = trim_right(std::string(reinterpret_cast<const char*>(bs + kBs32VolLab), 11));
    }
  } else {
    if (g.root_entries == 0) {
      throw Error(ErrorKind::kCorrupt, label, kBpbRootEntCnt,
                  std::string(fat_type_name(g.type)) + " with no root directory entries");
    }
    if (bs[kBs16BootSig] == kExtendedBootSig) {
      g.volume_id = load_le32(bs + kBs16VolId);
      g.volume_label = trim_right(std::string(reinterpret_cast<const char*>(bs + kBs16VolLab), 11));
    }
  }
  if (g.volume_label == "NO NAME") g.volume_label.clear();
  return g;
}

int probe(const BlockDevice& dev) {
  if (dev.size() < 512) return 0;
  uint8_t bs[512];
  dev.read(0, bs, sizeof bs);
  try {
    parse_boot_sector(bs, dev.size(), "");
  } catch (const Error&) {
    return 0;
  }
  // Below a filesystem signature: a FAT boot sector has no magic of its own.
  return 80;
}

namespace {

struct RawEntry {
  std::string name;
  uint64_t offset = 0;  // device byte offset of the 8.3 entry
  std::array<uint8_t, kDirEntrySize> bytes{};
};

class FatTree final : public FileTree {
 public:
  FatTree(BlockDevicePtr dev, std::string label, Geometry g)
      : dev_(std::move(dev)), label_(std::move(label)), g_(std::move(g)) {}

  NodeId root() const override { return kRootNode; }

  NodeStat stat(NodeId node) const override {
    if (node == kRootNode) {
      NodeStat st;
      st.id = kRootNode;
      st.type = NodeType::kDirectory;
      st.mode = 0755;
      st.nlink = 2;
      return st;
    }
    return stat_of(entry_at(node), node);
  }

  std::vector<DirEntry> list(NodeId dir) const override {
    std::vector<DirEntry> out;
    for (const RawEntry& e : read_directory(dir)) {
      out.push_back(DirEntry{e.name, stat_of(e.bytes.data(), e.offset)});
    }
    return out;
  }

  // FAT names are case-insensitive, and every file also answers to its 8.3
  // alias: an exact match wins, then an ASCII case-insensitive one on the
  // long name or the 8.3 name.
  NodeId lookup(NodeId dir, const std::string& name) const override {
    auto fold = [](std::string s) {
      for (char& c : s) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      return s;
    };
    const std::string want = fold(name);
    NodeId loose = 0;
    for (const RawEntry& e : read_directory(dir)) {
      if (e.name == name) return e.offset;
      if (loose == 0 && (fold(e.name) == want || fold(short_name(e.bytes.data())) == want))
        loose = e.offset;
    }
    if (loose != 0) return loose;
    throw Error(ErrorKind::kNotFound, label_, std::nullopt, "no entry named '" + name + "'");
  }

  size_t read(NodeId file, uint64_t offset, void* buf, size_t len) const override {
    if (file == kRootNode) throw_invalid(label_, "the FAT root is a directory");
    auto e = entry_at(file);
    if (e[kDirAttr] & kAttrDirectory) throw_invalid(label_, "not a regular file: a directory");
    uint64_t size = load_le32(e.data() + kDirFileSize);
    if (offset >= size || len == 0) return 0;
    len = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
    const uint64_t cs = g_.cluster_bytes();
    auto chain = file_chain(e.data(), file, size);
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
      uint64_t pos = offset + done;
      uint64_t idx = pos / cs;
      uint64_t in = pos % cs;
      // Coalesce physically consecutive clusters into one device read.
      uint64_t run = 1;
      while (run * cs - in < len - done && idx + run < chain->size() &&
             (*chain)[idx + run] == (*chain)[idx] + run) {
        ++run;
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(run * cs - in, len - done));
      dev_->read(cluster_offset((*chain)[idx], file) + in, out + done, n);
      done += n;
    }
    return len;
  }

  std::string readlink(NodeId) const override {
    throw_invalid(label_, "FAT has no symbolic links");
  }

  Json info() const override {
    Json j = Json::object();
    j.set("filesystem", fat_type_name(g_.type));
    j.set("bytes_per_sector", g_.bytes_per_sector);
    j.set("cluster_bytes", g_.cluster_bytes());
    j.set("clusters", g_.cluster_count);
    j.set("fats", g_.num_fats);
    char id[16];
    snprintf(id, sizeof id, "%04X-%04X", g_.volume_id >> 16, g_.volume_id & 0xFFFF);
    j.set("volume_id", std::string(id));
    std::string lab = volume_label();
    j.set("volume_label", lab);
    return j;
  }

 private:
  std::array<uint8_t, kDirEntrySize> entry_at(NodeId node) const {
    if (node % kDirEntrySize != 0 || node < g_.bytes_per_sector ||
        node + kDirEntrySize > dev_->size()) {
      throw Error(ErrorKind::kNotFound, label_, std::nullopt,
                  "no FAT node " + std::to_string(node));
    }
    std::array<uint8_t, kDirEntrySize> e{};
    dev_->read(node, e.data(), e.size());
    return e;
  }

  NodeStat stat_of(const std::array<uint8_t, kDirEntrySize>& e, NodeId id) const {
    return stat_of(e.data(), id);
  }

  NodeStat stat_of(const uint8_t* e, NodeId id) const {
    NodeStat st;
    st.id = id;
    uint8_t attr = e[kDirAttr];
    bool dir = attr & kAttrDirectory;
    st.type = dir ? NodeType::kDirectory : NodeType::kRegular;
    // FAT has no permissions: directories 0755 and files 0644, with the write
    // bits removed for the read-only attribute.
    st.mode = dir ? 0755 : 0644;
    if (attr & kAttrReadOnly) st.mode &= ~0222u;
    st.nlink = dir ? 2 : 1;
    st.size = dir ? 0 : load_le32(e + kDirFileSize);
    st.mtime = decode_fat_time(load_le16(e + kDirWrtDate), load_le16(e + kDirWrtTime), 0);
    st.atime = decode_fat_time(load_le16(e + kDirLstAccDate), 0, 0);
    // FAT keeps a creation time, not a status-change time: ctime shows it.
    st.ctime = decode_fat_time(load_le16(e + kDirCrtDate), load_le16(e + kDirCrtTime),
                               e[kDirCrtTimeTenth]);
    if (st.ctime.seconds == 0) st.ctime = st.mtime;
    if (st.atime.seconds == 0) st.atime = st.mtime;
    return st;
  }

  uint32_t first_cluster(const uint8_t* e) const {
    uint32_t c = load_le16(e + kDirFstClusLo);
    if (g_.type == FatType::kFat32) c |= static_cast<uint32_t>(load_le16(e + kDirFstClusHi)) << 16;
    return c & kFat32Mask;
  }

  uint64_t cluster_offset(uint32_t cluster, uint64_t where) const {
    uint64_t off =
        (g_.first_data_sector + uint64_t{cluster - kFirstCluster} * g_.sectors_per_cluster) *
        g_.bytes_per_sector;
    if (off + g_.cluster_bytes() > dev_->size()) {
      throw Error(ErrorKind::kCorrupt, label_, where,
                  "FAT cluster " + std::to_string(cluster) + " lies past the end of the device (" +
                      std::to_string(dev_->size()) + " bytes)");
    }
    return off;
  }

  // One byte of the active FAT, through a cache of 64 KiB pieces.
  // Requires mu_ held.
  uint8_t fat_byte(uint64_t pos) const {
    constexpr uint64_t kPiece = 64 * 1024;
    const uint64_t fat_bytes = g_.fat_sectors * g_.bytes_per_sector;
    uint64_t idx = pos / kPiece;
    auto it = fat_cache_.find(idx);
    if (it == fat_cache_.end()) {
      if (fat_cache_.size() >= 256) fat_cache_.clear();
      uint64_t start = idx * kPiece;
      uint64_t n = std::min(kPiece, fat_bytes - start);
      std::vector<uint8_t> piece(n);
      uint64_t base =
          (g_.reserved_sectors + uint64_t{g_.active_fat} * g_.fat_sectors) * g_.bytes_per_sector;
      dev_->read(base + start, piece.data(), piece.size());
      it = fat_cache_.emplace(idx, std::move(piece)).first;
    }
    return it->second[pos % kPiece];
  }

  // The FAT entry of `cluster` (valid cluster numbers only). Requires mu_ held.
  uint32_t fat_entry(uint32_t cluster) const {
    switch (g_.type) {
      case FatType::kFat12: {
        uint64_t pos = cluster + cluster / 2;
        uint32_t v = fat_byte(pos) | (static_cast<uint32_t>(fat_byte(pos + 1)) << 8);
        return (cluster & 1) ? v >> 4 : v & 0xFFF;
      }
      case FatType::kFat16: {
        uint64_t pos = uint64_t{cluster} * 2;
        return fat_byte(pos) | (static_cast<uint32_t>(fat_byte(pos + 1)) << 8);
      }
      case FatType::kFat32: {
        uint64_t pos = uint64_t{cluster} * 4;
        uint32_t v = 0;
        for (int i = 3; i >= 0; --i) v = (v << 8) | fat_byte(pos + i);
        return v & kFat32Mask;
      }
    }
    return 0;
  }

  bool is_eoc(uint32_t v) const {
    switch (g_.type) {
      case FatType::kFat12:
        return v >= kFat12Eoc;
      case FatType::kFat16:
        return v >= kFat16Eoc;
      case FatType::kFat32:
        return v >= kFat32Eoc;
    }
    return true;
  }

  bool valid_cluster(uint32_t c) const { return c >= kFirstCluster && c <= g_.cluster_count + 1; }

  // Follows the chain from `first`. A file stops after `limit` clusters (its
  // size): the entry after must then be end-of-chain. A directory (exact =
  // false) may have up to `limit` clusters. Loops, free, bad and
  // out-of-range links are kCorrupt naming `where` (the directory entry).
  std::shared_ptr<const std::vector<uint32_t>> chain(uint32_t first, uint64_t limit, bool exact,
                                                     uint64_t where,
                                                     const std::string& what) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_pair(first, limit);
    if (auto it = chain_cache_.find(key); it != chain_cache_.end()) return it->second;
    auto bad = [&](const std::string& why) {
      throw Error(ErrorKind::kCorrupt, label_, where, "cluster chain of " + what + ": " + why);
    };
    auto out = std::make_shared<std::vector<uint32_t>>();
    uint32_t c = first;
    if (!valid_cluster(c)) bad("first cluster " + std::to_string(c) + " is out of range");
    while (true) {
      out->push_back(c);
      uint32_t next = fat_entry(c);
      if (is_eoc(next)) break;
      if (!valid_cluster(next)) {
        bad("cluster " + std::to_string(c) + " links to " +
            (next == 0 ? std::string("a free cluster")
                       : "invalid cluster " + std::to_string(next)));
      }
      if (out->size() >= limit) {
        // The bounded walk ends here; tell a loop from a plain overlong chain.
        out->push_back(next);
        if (auto back = loop_target(*out)) bad("loops back to cluster " + std::to_string(*back));
        if (exact) bad("longer than the file size (" + std::to_string(limit) + " clusters)");
        bad("longer than " + std::to_string(limit) + " clusters, the most a directory may have");
      }
      c = next;
    }
    if (exact && out->size() < limit) {
      bad("ends after " + std::to_string(out->size()) + " clusters, the size needs " +
          std::to_string(limit));
    }
    if (auto back = loop_target(*out)) bad("loops back to cluster " + std::to_string(*back));
    if (chain_cache_.size() >= 4096) chain_cache_.clear();
    chain_cache_.emplace(key, out);
    return out;
  }

  std::shared_ptr<const std::vector<uint32_t>> file_chain(const uint8_t* e, uint64_t where,
                                                          uint64_t size) const {
    uint64_t need = div_round_up(size, g_.cluster_bytes());
    return chain(first_cluster(e), need, true, where,
                 "a file of " + std::to_string(size) + " bytes");
  }

  // The directory's bytes as (device offset, length) runs.
  std::vector<std::pair<uint64_t, uint64_t>> directory_runs(NodeId dir) const {
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    uint32_t first = 0;
    if (dir == kRootNode) {
      if (g_.type != FatType::kFat32) {
        runs.emplace_back(g_.root_dir_sector * g_.bytes_per_sector,
                          uint64_t{g_.root_entries} * kDirEntrySize);
        return runs;
      }
      first = g_.root_cluster;
    } else {
      auto e = entry_at(dir);
      if (!(e[kDirAttr] & kAttrDirectory)) {
        throw Error(ErrorKind::kInvalidArgument, label_, dir, "not a directory");
      }
      first = first_cluster(e.data());
      // ".." pointing at cluster 0 means the root; a directory entry with
      // cluster 0 is the root on FAT12/16 too.
      if (first == 0) return directory_runs(kRootNode);
    }
    uint64_t limit = div_round_up(kMaxDirectoryBytes, g_.cluster_bytes());
    auto c = chain(first, limit, false, dir == kRootNode ? kBpbRootClus : dir, "a directory");
    for (uint32_t cl : *c) runs.emplace_back(cluster_offset(cl, dir), g_.cluster_bytes());
    return runs;
  }

  std::vector<RawEntry> read_directory(NodeId dir) const {
    std::vector<RawEntry> out;
    // Long-name assembly state (section 7): entries come last-first, ordinal
    // counting down to 1, each carrying the checksum of the 8.3 entry after.
    std::vector<uint16_t> units;
    int expect = 0;  // next ordinal expected; 0 = no long name pending
    uint8_t sum = 0;
    bool done = false;
    for (auto [off, len] : directory_runs(dir)) {
      std::vector<uint8_t> buf(len);
      dev_->read(off, buf.data(), buf.size());
      for (uint64_t p = 0; p + kDirEntrySize <= len && !done; p += kDirEntrySize) {
        const uint8_t* e = buf.data() + p;
        if (e[0] == kNameEnd) {
          done = true;
          break;
        }
        if (e[0] == kNameFree) {
          expect = 0;
          continue;
        }
        uint8_t attr = e[kDirAttr];
        if ((attr & kAttrLongNameMask) == kAttrLongName) {
          int ord = e[kLdirOrd] & 0x3F;
          if (e[kLdirOrd] & kLastLongEntry) {
            expect = 0;
            if (ord >= 1 && ord <= static_cast<int>(kMaxLongNameEntries)) {
              units.assign(static_cast<size_t>(ord) * kLongNameUnitsPerEntry, 0xFFFF);
              sum = e[kLdirChksum];
              expect = ord;
            }
          }
          if (expect == 0 || ord != expect || e[kLdirChksum] != sum) {
            expect = 0;
            continue;
          }
          size_t base = static_cast<size_t>(ord - 1) * kLongNameUnitsPerEntry;
          size_t k = 0;
          for (int i = 0; i < 5; ++i) units[base + k++] = load_le16(e + kLdirName1 + 2 * i);
          for (int i = 0; i < 6; ++i) units[base + k++] = load_le16(e + kLdirName2 + 2 * i);
          for (int i = 0; i < 2; ++i) units[base + k++] = load_le16(e + kLdirName3 + 2 * i);
          // Ordinal 1 reached: the next entry must be the 8.3 one.
          expect = ord == 1 ? -1 : ord - 1;
          continue;
        }
        bool have_long = expect == -1 && short_name_checksum(e) == sum;
        expect = 0;
        if (attr & kAttrVolumeId) continue;  // the volume label
        if (e[0] == '.') {
          std::string s = short_name(e);
          if (s == "." || s == "..") continue;
        }
        std::string name;
        if (have_long) {
          std::vector<uint16_t> u;
          for (uint16_t x : units) {
            if (x == 0x0000 || x == 0xFFFF) break;
            u.push_back(x);
          }
          name = utf16_to_utf8(u);
          if (name.empty() || name == "." || name == ".." ||
              name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
            name.clear();
          }
        }
        if (name.empty()) name = short_name(e);
        if (name.empty() || name == "." || name == "..") continue;
        RawEntry r;
        r.name = std::move(name);
        r.offset = off + p;
        std::copy(e, e + kDirEntrySize, r.bytes.begin());
        out.push_back(std::move(r));
      }
      if (done) break;
    }
    return out;
  }

  std::string volume_label() const {
    // The root directory's volume entry wins over the boot sector copy (the
    // boot sector one is not updated by every tool).
    try {
      for (auto [off, len] : directory_runs(kRootNode)) {
        std::vector<uint8_t> buf(len);
        dev_->read(off, buf.data(), buf.size());
        for (uint64_t p = 0; p + kDirEntrySize <= len; p += kDirEntrySize) {
          const uint8_t* e = buf.data() + p;
          if (e[0] == kNameEnd) return g_.volume_label;
          if (e[0] == kNameFree) continue;
          uint8_t attr = e[kDirAttr];
          if ((attr & kAttrLongNameMask) != kAttrLongName && (attr & kAttrVolumeId))
            return trim_right(oem_to_utf8(e, 11, false));
        }
      }
    } catch (const Error&) {
    }
    return g_.volume_label;
  }

  BlockDevicePtr dev_;
  std::string label_;
  Geometry g_;
  mutable std::mutex mu_;
  mutable std::map<uint64_t, std::vector<uint8_t>> fat_cache_;
  mutable std::map<std::pair<uint32_t, uint64_t>, std::shared_ptr<const std::vector<uint32_t>>>
      chain_cache_;
};

}  // namespace

std::unique_ptr<FileTree> open_fat_tree(BlockDevicePtr dev, const std::string& label) {
  if (dev->size() < 512) {
    throw Error(ErrorKind::kNotThisFormat, label, 0, "too small for a FAT boot sector");
  }
  uint8_t bs[512];
  dev->read(0, bs, sizeof bs);
  Geometry g = parse_boot_sector(bs, dev->size(), label);
  return std::make_unique<FatTree>(std::move(dev), label, std::move(g));
}

}  // namespace vdisk::fat
