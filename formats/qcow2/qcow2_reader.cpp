#include "formats/qcow2/qcow2_reader.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/core/parent.h"
#include "formats/qcow2/qcow2_codec.h"

namespace vdisk::qcow2 {

namespace {

std::atomic<uint64_t> g_l2_loads{0};

// Cache budgets per device. L2 tables: 16 MiB (at 64 KiB clusters, 256
// tables mapping 128 GiB of guest), never fewer than 4 tables, so a huge
// image costs the same memory as a small one. Decompressed clusters: 4 MiB,
// so a sequential reader with unaligned edges never decompresses a cluster
// twice.
constexpr uint64_t kL2CacheBytes = 16 << 20;
constexpr uint64_t kClusterCacheBytes = 4 << 20;
// Bounds on one block-status answer (callers loop). Callers such as the
// converter ask about "the rest of the disk" and use at most a chunk of the
// answer, so an answer that merged everything would make a large disk cost
// quadratic time: stop after 65536 clusters or tables looked at, a data run
// at 16 MiB, any other run at 4 GiB.
constexpr uint64_t kMaxStatusClusters = 65536;
constexpr uint64_t kMaxStatusData = 16ull << 20;
constexpr uint64_t kMaxStatusOther = 4ull << 30;
// Largest single pread when coalescing contiguous host clusters.
constexpr size_t kMaxCoalesce = 8 << 20;

std::string feature_name(const std::vector<std::pair<std::pair<uint8_t, uint8_t>, std::string>>& t,
                         uint8_t type, uint8_t bit) {
  for (auto& [k, v] : t)
    if (k.first == type && k.second == bit) return v;
  for (const FeatureName& f : known_feature_names())
    if (f.type == type && f.bit == bit) return f.name;
  return "";
}

// The backing format extension in vdisk's names, for the formats both
// know; empty (probe the file) for the others, so a foreign container is
// named by the registry's probe.
std::string our_format_name(const std::string& qemu) {
  if (qemu == "vpc") return "vhd";
  for (const char* f : {"raw", "qcow2", "vmdk", "vhdx", "vdi"})
    if (qemu == f) return qemu;
  return "";
}

}  // namespace

uint64_t Qcow2Device::l2_loads() {
  return g_l2_loads.load();
}

Qcow2Device::Qcow2Device(std::shared_ptr<const File> file, std::shared_ptr<const File> data,
                         ImageMeta meta, std::vector<uint64_t> l1, std::vector<MetaRange> metadata)
    : file_(std::move(file)),
      data_(std::move(data)),
      meta_(std::move(meta)),
      l1_(std::move(l1)),
      metadata_(std::move(metadata)),
      cluster_size_(meta_.header.cluster_size()),
      cluster_bits_(meta_.header.cluster_bits),
      l2_entries_(meta_.header.l2_entries()),
      entry_words_(meta_.header.extended_l2() ? 2 : 1),
      clusters_(div_round_up(meta_.virtual_size, cluster_size_)),
      l2_cache_(std::max<uint64_t>(4, kL2CacheBytes / cluster_size_)),
      cluster_cache_(std::max<uint64_t>(4, kClusterCacheBytes / cluster_size_)) {}

void Qcow2Device::check_not_metadata(uint64_t start, uint64_t len, uint64_t entry_at,
                                     const std::string& what) const {
  auto hit = std::upper_bound(metadata_.begin(), metadata_.end(), start,
                              [](uint64_t p, const MetaRange& m) { return p < m.end; });
  if (hit != metadata_.end() && hit->start < start + len) {
    throw Error(ErrorKind::kCorrupt, file_->path(), entry_at,
                what + " at file offset " + std::to_string(start) + " lies inside " + hit->what +
                    " (bytes " + std::to_string(hit->start) + "-" + std::to_string(hit->end) + ")");
  }
}

Qcow2Device::Table Qcow2Device::load_l2(uint64_t index) const {
  const std::string& path = file_->path();
  const uint64_t l2_off = l1_[index] & kL1OffsetMask;
  std::vector<uint8_t> raw(static_cast<size_t>(cluster_size_));
  file_->read_at(l2_off, raw.data(), raw.size());
  g_l2_loads.fetch_add(1, std::memory_order_relaxed);
  auto t = std::make_shared<std::vector<uint64_t>>(static_cast<size_t>(cluster_size_ / 8));
  const Header& h = meta_.header;
  const bool ext = entry_words_ == 2;
  const bool external = data_ != file_;
  const uint64_t fsize = file_->size();
  const uint32_t x = compressed_offset_bits(cluster_bits_);
  for (uint64_t i = 0; i < l2_entries_; ++i) {
    const uint64_t g = index * l2_entries_ + i;
    const uint64_t at = l2_off + i * 8 * entry_words_;
    uint64_t e = load_be64(raw.data() + i * 8 * entry_words_);
    uint64_t bitmap = ext ? load_be64(raw.data() + i * 16 + 8) : 0;
    (*t)[i * entry_words_] = e;
    if (ext) (*t)[i * 2 + 1] = bitmap;
    if (g >= clusters_) continue;  // past the virtual size: never read
    const std::string who = "L2 entry for guest cluster " + std::to_string(g);
    if (e & kOflagCompressed) {
      if (external) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    who + " is compressed, which an image with an external data file may not be");
      }
      const uint64_t off = e & ((uint64_t{1} << x) - 1);
      const uint64_t sectors = ((e & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
      const uint64_t len = sectors * kCompressedSector - off % kCompressedSector;
      if (off >= (uint64_t{1} << 56) || off >= fsize) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    who + ": compressed data at " + std::to_string(off) + " lies outside the " +
                        std::to_string(fsize) + "-byte file");
      }
      // The last sector may run past the end of the file (QEMU does not pad).
      check_not_metadata(off, std::min(len, fsize - off), at, who + ": compressed data");
      continue;
    }
    const uint64_t off = e & kL2OffsetMask;
    const bool zero = e & kOflagZero;
    if (zero && (h.version < 3 || ext)) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  who + " has the zero flag (bit 0), which " +
                      (ext ? "an image with extended L2 entries" : "a version 2 image") +
                      " may not use (" + hex(e) + ")");
    }
    if (off % cluster_size_) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  who + ": host offset " + std::to_string(off) + " is not aligned to the " +
                      std::to_string(cluster_size_) + "-byte cluster");
    }
    const bool allocated = off != 0 || (external && (e & kOflagCopied));
    if (ext) {
      const uint32_t alloc = static_cast<uint32_t>(bitmap), zeros = bitmap >> 32;
      if (alloc & zeros) {
        throw Error(ErrorKind::kCorrupt, path, at + 8,
                    who + ": subclusters both allocated and zero (bitmap " + hex(bitmap) + ")");
      }
      if (alloc && !allocated) {
        throw Error(
            ErrorKind::kCorrupt, path, at + 8,
            who + " has allocated subclusters but no host cluster (bitmap " + hex(bitmap) + ")");
      }
    }
    if (!allocated) continue;
    if (external) {
      // "The offset field ... must match the guest offset."
      if (off != g * cluster_size_) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    who + ": host offset " + std::to_string(off) +
                        " in the external data file is not the guest offset " +
                        std::to_string(g * cluster_size_));
      }
      continue;
    }
    if (off >= fsize) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  who + ": host cluster at " + std::to_string(off) + " lies outside the " +
                      std::to_string(fsize) + "-byte file");
    }
    check_not_metadata(off, std::min(cluster_size_, fsize - off), at, who + ": host cluster");
  }
  return t;
}

Qcow2Device::Table Qcow2Device::l2_table(uint64_t index) const {
  if (index >= l1_.size() || (l1_[index] & kL1OffsetMask) == 0) return nullptr;
  if (Table t = l2_cache_.get(index)) return t;
  Table t = load_l2(index);
  l2_cache_.put(index, t);
  return t;
}

Extent Qcow2Device::cluster_status(const Table& t, uint64_t offset, uint64_t len) const {
  if (!t) return Extent{len, ExtentType::kUnallocated};
  const uint64_t g = offset >> cluster_bits_;
  const uint64_t i = (g % l2_entries_) * entry_words_;
  const uint64_t e = (*t)[i];
  if (e & kOflagCompressed) return Extent{len, ExtentType::kData};
  const uint64_t off = e & kL2OffsetMask;
  const bool external = data_ != file_;
  const bool allocated = off != 0 || (external && (e & kOflagCopied));
  if (entry_words_ == 2) {
    // Subclusters: the run of subclusters of one state from `offset`.
    const uint64_t bitmap = (*t)[i + 1];
    const uint64_t sub = cluster_size_ / kSubclusters;
    const uint64_t in = offset & (cluster_size_ - 1);
    auto state = [&](uint64_t s) {
      if (bitmap >> s & 1) return ExtentType::kData;
      if (bitmap >> (32 + s) & 1) return ExtentType::kZero;
      return ExtentType::kUnallocated;
    };
    uint64_t s = in / sub;
    const ExtentType type = state(s);
    uint64_t end = (s + 1) * sub;
    while (end < in + len && state(end / sub) == type) end += sub;
    return Extent{std::min(end - in, len), type};
  }
  if (e & kOflagZero) return Extent{len, ExtentType::kZero};
  // An allocated cluster is data even where the host file has a hole
  // (preallocation=metadata), as qemu-img map says: asking the host about
  // every cluster cost two lseeks each, and the converter finds the zeros.
  return Extent{len, allocated ? ExtentType::kData : ExtentType::kUnallocated};
}

Extent Qcow2Device::do_block_status(uint64_t offset, uint64_t len) const {
  const uint64_t table_span = l2_entries_ << cluster_bits_;
  Extent first{0, ExtentType::kData};
  uint64_t pos = offset;
  const uint64_t end = offset + len;
  uint64_t steps = 0;
  auto enough = [&] {
    return first.length >= (first.type == ExtentType::kData ? kMaxStatusData : kMaxStatusOther);
  };
  while (pos < end && steps < kMaxStatusClusters && !enough()) {
    const uint64_t index = pos / table_span;
    Table t = l2_table(index);
    if (!t) {
      // A whole missing L2 table is one unallocated run.
      const uint64_t n = std::min(end, (index + 1) * table_span) - pos;
      if (first.length && first.type != ExtentType::kUnallocated) break;
      first.type = ExtentType::kUnallocated;
      first.length += n;
      pos += n;
      ++steps;
      continue;
    }
    const uint64_t table_end = std::min(end, (index + 1) * table_span);
    while (pos < table_end && steps < kMaxStatusClusters && !enough()) {
      const uint64_t cend = std::min(table_end, ((pos >> cluster_bits_) + 1) << cluster_bits_);
      Extent e = cluster_status(t, pos, cend - pos);
      if (first.length && e.type != first.type) return first;
      first.type = e.type;
      first.length += e.length;
      pos += e.length;
      ++steps;
      if (e.length < cend - (pos - e.length)) return first;  // the type changes inside
    }
  }
  return first;
}

std::shared_ptr<const std::vector<uint8_t>> Qcow2Device::compressed_cluster(uint64_t g,
                                                                            uint64_t e) const {
  if (auto c = cluster_cache_.get(g)) return c;
  const uint32_t x = compressed_offset_bits(cluster_bits_);
  const uint64_t off = e & ((uint64_t{1} << x) - 1);
  const uint64_t sectors = ((e & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
  const uint64_t len = sectors * kCompressedSector - off % kCompressedSector;
  std::vector<uint8_t> in(static_cast<size_t>(len));
  in.resize(file_->read_some(off, in.data(), in.size()));
  auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(cluster_size_));
  if (!decompress_cluster(meta_.header.compression_type, in.data(), in.size(), out->data(),
                          out->size())) {
    throw Error(ErrorKind::kCorrupt, file_->path(), off,
                "compressed guest cluster " + std::to_string(g) + " (" +
                    (meta_.header.compression_type == kCompressionZstd ? "zstd" : "deflate") +
                    ", " + std::to_string(len) + " bytes) does not decompress");
  }
  cluster_cache_.put(g, out);
  return out;
}

void Qcow2Device::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  const uint64_t table_span = l2_entries_ << cluster_bits_;
  const bool external = data_ != file_;
  while (len > 0) {
    const uint64_t index = offset / table_span;
    Table t = l2_table(index);
    const uint64_t table_left = (index + 1) * table_span - offset;
    if (!t) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, table_left));
      std::memset(out, 0, n);
      out += n, offset += n, len -= n;
      continue;
    }
    size_t in_table = static_cast<size_t>(std::min<uint64_t>(len, table_left));
    while (in_table > 0) {
      const uint64_t g = offset >> cluster_bits_;
      const uint64_t in = offset & (cluster_size_ - 1);
      const uint64_t i = (g % l2_entries_) * entry_words_;
      const uint64_t e = (*t)[i];
      size_t n = static_cast<size_t>(std::min<uint64_t>(in_table, cluster_size_ - in));
      if (e & kOflagCompressed) {
        auto c = compressed_cluster(g, e);
        std::memcpy(out, c->data() + in, n);
      } else {
        const uint64_t off = e & kL2OffsetMask;
        const bool allocated = off != 0 || (external && (e & kOflagCopied));
        if (entry_words_ == 2) {
          // Per subcluster: allocated ones from the host cluster, others zero.
          const uint64_t bitmap = (*t)[i + 1];
          const uint64_t sub = cluster_size_ / kSubclusters;
          size_t done = 0;
          while (done < n) {
            const uint64_t s = (in + done) / sub;
            size_t m = static_cast<size_t>(std::min<uint64_t>(n - done, (s + 1) * sub - in - done));
            if (bitmap >> s & 1) {
              size_t got = data_->read_some(off + in + done, out + done, m);
              if (got < m) std::memset(out + done + got, 0, m - got);
            } else {
              std::memset(out + done, 0, m);
            }
            done += m;
          }
        } else if (!allocated || (e & kOflagZero)) {
          // The run of clusters that read as zeros in this layer.
          while (n < in_table) {
            const uint64_t ne = (*t)[((offset + n) >> cluster_bits_) % l2_entries_ * entry_words_];
            const bool nalloc = (ne & kL2OffsetMask) != 0 || (external && (ne & kOflagCopied));
            if ((ne & kOflagCompressed) || (nalloc && !(ne & kOflagZero))) break;
            n += static_cast<size_t>(std::min<uint64_t>(in_table - n, cluster_size_));
          }
          std::memset(out, 0, n);
        } else {
          // Contiguous host clusters in one pread.
          const uint64_t host = off + in;
          while (n < in_table && n < kMaxCoalesce) {
            const uint64_t ne = (*t)[((offset + n) >> cluster_bits_) % l2_entries_ * entry_words_];
            if ((ne & (kOflagCompressed | kOflagZero)) || (ne & kL2OffsetMask) != host + n) break;
            n += static_cast<size_t>(std::min<uint64_t>(in_table - n, cluster_size_));
          }
          // A cluster that starts inside the file may end past it (checked
          // at load): the missing bytes read as zeros.
          size_t got = data_->read_some(host, out, n);
          if (got < n) std::memset(out + got, 0, n - got);
        }
      }
      out += n, offset += n, len -= n, in_table -= n;
    }
  }
}

namespace {

std::string iso_date(uint32_t sec) {
  std::time_t t = sec;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

}  // namespace

ImageInfo Qcow2Device::info() const {
  const Header& h = meta_.header;
  ImageInfo info;
  info.path = file_->path();
  info.format = "qcow2";
  info.subformat = h.version >= 3 ? "v3" : "v2";
  info.virtual_size = meta_.virtual_size;
  info.actual_size = file_->allocated_on_host() + (data_ != file_ ? data_->allocated_on_host() : 0);
  Json& d = info.details;
  d.set("version", static_cast<uint64_t>(h.version));
  d.set("compat", h.version >= 3 ? "1.1" : "0.10");
  d.set("cluster_size", cluster_size_);
  d.set("refcount_bits", uint64_t{1} << h.refcount_order);
  d.set("compression_type", h.compression_type == kCompressionZstd ? "zstd" : "zlib");
  d.set("extended_l2", h.extended_l2());
  d.set("lazy_refcounts", (h.compatible & kCompatLazyRefcounts) != 0);
  if (h.incompatible & kIncompatDirty) {
    d.set("dirty",
          "yes: not closed cleanly (its refcounts may be stale; the mapping vdisk reads "
          "is consistent; qemu-img check -r all repairs it)");
  } else {
    d.set("dirty", "no");
  }
  d.set("l1_table_offset", meta_.l1_table_offset);
  d.set("l1_size", static_cast<uint64_t>(meta_.l1_size));
  d.set("refcount_table_offset", h.refcount_table_offset);
  if (!meta_.backing_file.empty()) {
    d.set("backing_file", meta_.backing_file);
    if (!meta_.backing_format.empty()) d.set("backing_format", meta_.backing_format);
  }
  if (!meta_.data_file.empty()) {
    d.set("data_file", meta_.data_file);
    d.set("data_file_raw", (h.autoclear & kAutoclearDataFileRaw) != 0);
  }
  if (meta_.bitmaps) d.set("bitmaps", std::to_string(meta_.bitmaps) + " (not read)");
  Json snaps = Json::array();
  for (const Snapshot& s : meta_.snapshots) {
    Json j = Json::object();
    j.set("id", s.id);
    j.set("name", s.name);
    j.set("disk_size", s.disk_size);
    j.set("vm_state_size", s.vm_state_size);
    j.set("date", iso_date(s.date_sec));
    j.set("vm_clock_ns", s.vm_clock_nsec);
    snaps.push(std::move(j));
  }
  d.set("snapshots", std::move(snaps));
  if (meta_.snapshot >= 0) {
    const Snapshot& s = meta_.snapshots[static_cast<size_t>(meta_.snapshot)];
    d.set("reading_snapshot", s.id + " (" + s.name + ")");
  }
  return info;
}

std::shared_ptr<const ParentSpec> Qcow2Device::parent_spec() const {
  if (meta_.backing_file.empty()) return nullptr;
  auto spec = std::make_shared<ParentSpec>();
  const std::string& name = meta_.backing_file;
  spec->child = "qcow2 image (backing file '" + name + "')";
  spec->offset = meta_.header.backing_file_offset;
  ParentCandidate c{"backing file name '" + name + "'", name, ""};
  // QEMU also accepts protocols ("nbd://…") and "json:{…}" descriptions.
  if (name.rfind("json:", 0) == 0 || name.find("://") != std::string::npos) {
    c.name.clear();
    c.refusal = "is a QEMU protocol or JSON description, not a file name";
  }
  spec->candidates.push_back(std::move(c));
  spec->format = our_format_name(meta_.backing_format);
  // qcow2 records no identity of its backing file: no check.
  return spec;
}

// ---- open ------------------------------------------------------------------------

// Versions 2 and later: open names a future version it does not read
// instead of letting the bytes be read as raw. Version 1 (the original qcow)
// is left to the registry's list of foreign containers, which names it.
int probe_qcow2(const ProbeInput& in) {
  if (in.head.size() < 8 || std::memcmp(in.head.data(), kMagic, 4) != 0) return 0;
  return load_be32(in.head.data() + kHdrVersion) >= 2 ? kProbeSignature : 0;
}

namespace {

struct Opened {
  ImageMeta meta;
  uint64_t snapshots_end = 0;  // end of the snapshot table
  std::vector<std::pair<std::pair<uint8_t, uint8_t>, std::string>> feature_table;
};

void read_extensions(const File& f, const std::vector<uint8_t>& c0, uint64_t start, uint64_t end,
                     Opened& o) {
  const std::string& path = f.path();
  bool seen_backing_fmt = false, seen_data_file = false;
  uint64_t pos = start;
  while (pos + 8 <= end) {
    const uint32_t type = load_be32(c0.data() + pos);
    const uint32_t len = load_be32(c0.data() + pos + 4);
    if (type == kExtEnd) return;
    const uint64_t padded = (uint64_t{len} + 7) / 8 * 8;
    if (padded > end - pos - 8) {
      throw Error(ErrorKind::kCorrupt, path, pos,
                  "header extension " + hex(type) + " of " + std::to_string(len) +
                      " bytes runs past the end of the header area at " + std::to_string(end));
    }
    const uint8_t* d = c0.data() + pos + 8;
    switch (type) {
      case kExtBackingFormat:
      case kExtDataFile: {
        bool& seen = type == kExtBackingFormat ? seen_backing_fmt : seen_data_file;
        if (seen) {
          throw Error(ErrorKind::kCorrupt, path, pos,
                      "header extension " + hex(type) + " appears twice");
        }
        seen = true;
        std::string v(reinterpret_cast<const char*>(d), len);
        (type == kExtBackingFormat ? o.meta.backing_format : o.meta.data_file) = v;
        break;
      }
      case kExtFeatureNames:
        for (uint32_t i = 0; i + kFeatureNameEntry <= len; i += kFeatureNameEntry) {
          const char* n = reinterpret_cast<const char*>(d + i + 2);
          o.feature_table.push_back(
              {{d[i], d[i + 1]}, std::string(n, strnlen(n, kFeatureNameLength))});
        }
        break;
      case kExtBitmaps:
        if (len >= 4) o.meta.bitmaps = load_be32(d);
        break;
      default:
        break;  // crypto header (refused earlier) and unknown ones: ignored
    }
    pos += 8 + padded;
  }
}

// Reads the snapshot table ("Snapshots").
void read_snapshots(const File& f, const Header& h, Opened& o) {
  const std::string& path = f.path();
  const uint64_t fsize = f.size();
  const uint64_t cs = h.cluster_size();
  if (h.nb_snapshots > kMaxSnapshots) {
    throw Error(ErrorKind::kCorrupt, path, kHdrNbSnapshots,
                std::to_string(h.nb_snapshots) + " snapshots (QEMU allows at most 65536)");
  }
  if (h.nb_snapshots == 0) return;
  if (h.snapshots_offset % cs || h.snapshots_offset == 0 || h.snapshots_offset >= fsize) {
    throw Error(ErrorKind::kCorrupt, path, kHdrSnapshotsOffset,
                "snapshot table offset " + std::to_string(h.snapshots_offset) +
                    " is not a cluster-aligned offset inside the " + std::to_string(fsize) +
                    "-byte file");
  }
  uint64_t pos = h.snapshots_offset;
  for (uint32_t i = 0; i < h.nb_snapshots; ++i) {
    uint8_t e[kSnFixedSize];
    if (pos > fsize || kSnFixedSize > fsize - pos) {
      throw Error(ErrorKind::kCorrupt, path, pos,
                  "snapshot table entry " + std::to_string(i) + " runs past the end of the file");
    }
    f.read_at(pos, e, sizeof e);
    Snapshot s;
    s.entry_offset = pos;
    s.l1_table_offset = load_be64(e + kSnL1Offset);
    s.l1_size = load_be32(e + kSnL1Size);
    const uint32_t id_len = load_be16(e + kSnIdLength), name_len = load_be16(e + kSnNameLength);
    s.date_sec = load_be32(e + kSnDateSec);
    s.date_nsec = load_be32(e + kSnDateNsec);
    s.vm_clock_nsec = load_be64(e + kSnVmClockNsec);
    s.vm_state_size = load_be32(e + kSnVmStateSize);
    const uint32_t extra = load_be32(e + kSnExtraSize);
    const uint64_t total = kSnFixedSize + uint64_t{extra} + id_len + name_len;
    if (total > fsize - pos) {
      throw Error(ErrorKind::kCorrupt, path, pos + kSnExtraSize,
                  "snapshot table entry " + std::to_string(i) + " (" + std::to_string(total) +
                      " bytes) runs past the end of the file");
    }
    std::vector<uint8_t> rest(static_cast<size_t>(total - kSnFixedSize));
    f.read_at(pos + kSnFixedSize, rest.data(), rest.size());
    s.disk_size = h.size;
    if (extra >= kSnExtraVmStateSize64 + 8) s.vm_state_size = load_be64(rest.data());
    if (extra >= kSnExtraDiskSize + 8) s.disk_size = load_be64(rest.data() + kSnExtraDiskSize);
    s.id.assign(reinterpret_cast<const char*>(rest.data() + extra), id_len);
    s.name.assign(reinterpret_cast<const char*>(rest.data() + extra + id_len), name_len);
    o.meta.snapshots.push_back(std::move(s));
    pos += (total + 7) / 8 * 8;
  }
  o.snapshots_end = std::min(pos, fsize);
}

}  // namespace

BlockDevicePtr open_qcow2(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string path = file->path();
  const uint64_t fsize = file->size();
  uint8_t head[kHeaderV3Length] = {};
  const size_t got = file->read_some(0, head, sizeof head);
  if (got < 4 || std::memcmp(head, kMagic, 4) != 0)
    throw Error(ErrorKind::kNotThisFormat, path, 0, "no 'QFI\\xfb' magic: not a qcow2 image");
  if (got < kHeaderV2Length) {
    throw Error(ErrorKind::kCorrupt, path, 0,
                "file is " + std::to_string(fsize) + " bytes, shorter than a qcow2 header");
  }
  Opened o;
  Header h = decode_header(head, got);
  if (h.version != 2 && h.version != 3) {
    throw Error(ErrorKind::kUnsupported, path, kHdrVersion,
                "qcow version " + std::to_string(h.version) +
                    (h.version == 1 ? " (the original qcow format)" : "") +
                    " is not read by vdisk (qcow2 versions 2 and 3 are)");
  }
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > 63) {
    throw Error(ErrorKind::kCorrupt, path, kHdrClusterBits,
                "cluster_bits " + std::to_string(h.cluster_bits) + " is below 9 (512 bytes)");
  }
  if (h.cluster_bits > kMaxClusterBits) {
    throw Error(ErrorKind::kUnsupported, path, kHdrClusterBits,
                "cluster size 2^" + std::to_string(h.cluster_bits) +
                    " is beyond QEMU's 2 MiB limit (cluster_bits 21)");
  }
  const uint64_t cs = h.cluster_size();
  if (h.version >= 3) {
    if (got < kHeaderV3MinLength) {
      throw Error(ErrorKind::kCorrupt, path, 0,
                  "file is " + std::to_string(fsize) + " bytes, shorter than a version 3 header");
    }
    if (h.header_length < kHeaderV3MinLength || h.header_length % 8 || h.header_length > cs) {
      throw Error(ErrorKind::kCorrupt, path, kHdrHeaderLength,
                  "header_length " + std::to_string(h.header_length) +
                      " is not a multiple of 8 between 104 and the cluster size");
    }
    if (h.refcount_order > 6) {
      throw Error(ErrorKind::kCorrupt, path, kHdrRefcountOrder,
                  "refcount_order " + std::to_string(h.refcount_order) + " is above 6 (64 bits)");
    }
  }
  if (h.header_length > fsize) {
    throw Error(ErrorKind::kCorrupt, path, kHdrHeaderLength,
                "header of " + std::to_string(h.header_length) + " bytes is longer than the " +
                    std::to_string(fsize) + "-byte file");
  }
  // Cluster 0: header, extensions, backing file name.
  std::vector<uint8_t> c0(static_cast<size_t>(std::min(cs, fsize)));
  file->read_at(0, c0.data(), c0.size());
  uint64_t ext_end = c0.size();
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size > kMaxBackingNameSize || h.backing_file_size == 0 ||
        h.backing_file_offset < h.header_length || h.backing_file_offset > fsize ||
        h.backing_file_size > fsize - h.backing_file_offset) {
      throw Error(ErrorKind::kCorrupt, path, kHdrBackingOffset,
                  "backing file name at " + std::to_string(h.backing_file_offset) + " of " +
                      std::to_string(h.backing_file_size) +
                      " bytes is not a 1-1023 byte string after the header inside the file");
    }
    std::string name(h.backing_file_size, '\0');
    file->read_at(h.backing_file_offset, name.data(), name.size());
    o.meta.backing_file = name;
    ext_end = std::min<uint64_t>(ext_end, h.backing_file_offset);
  }
  read_extensions(*file, c0, h.header_length, ext_end, o);

  // Features, encryption, the corrupt mark: refuse what cannot be read right.
  if (h.incompatible & ~kIncompatKnown) {
    std::string names;
    for (uint8_t b = 0; b < 64; ++b) {
      if (!(h.incompatible >> b & 1) || (kIncompatKnown >> b & 1)) continue;
      std::string n = feature_name(o.feature_table, 0, b);
      names += (names.empty() ? "" : ", ") + std::string("bit ") + std::to_string(b) +
               (n.empty() ? "" : " (" + n + ")");
    }
    throw Error(ErrorKind::kUnsupported, path, kHdrIncompatible,
                "unknown incompatible feature " + names + ": vdisk cannot read this image safely");
  }
  if (h.incompatible & kIncompatCorrupt) {
    throw Error(ErrorKind::kCorrupt, path, kHdrIncompatible,
                "QEMU marked this image corrupt (incompatible feature bit 1); repair it with "
                "'qemu-img check -r all' first");
  }
  if (h.crypt_method != kCryptNone) {
    throw Error(ErrorKind::kUnsupported, path, kHdrCryptMethod,
                std::string("this qcow2 image is encrypted (") +
                    (h.crypt_method == kCryptLuks  ? "LUKS"
                     : h.crypt_method == kCryptAes ? "legacy AES"
                                                   : "method " + std::to_string(h.crypt_method)) +
                    "); vdisk does not decrypt: convert it with qemu-img and the key first");
  }
  if (h.incompatible & kIncompatCompression) {
    if (h.compression_type != kCompressionZstd) {
      throw Error(ErrorKind::kUnsupported, path, kHdrCompressionType,
                  "compression type " + std::to_string(h.compression_type) +
                      " (0 deflate and 1 zstd are known)");
    }
  } else if (h.compression_type != kCompressionDeflate) {
    throw Error(ErrorKind::kCorrupt, path, kHdrCompressionType,
                "compression type " + std::to_string(h.compression_type) +
                    " without the compression type feature bit");
  }
  if (h.extended_l2() && h.cluster_bits < kMinExtendedL2ClusterBits) {
    throw Error(ErrorKind::kCorrupt, path, kHdrClusterBits,
                "extended L2 entries need clusters of at least 16 KiB, not " + std::to_string(cs));
  }

  // The tables the header names, inside the file.
  auto table_in_file = [&](uint64_t off, uint64_t bytes, uint64_t field, const std::string& what) {
    if (off % cs || off > fsize || bytes > fsize - off) {
      throw Error(ErrorKind::kCorrupt, path, field,
                  what + " at " + std::to_string(off) + " (" + std::to_string(bytes) +
                      " bytes) is not cluster-aligned inside the " + std::to_string(fsize) +
                      "-byte file");
    }
  };
  const uint64_t rt_bytes = uint64_t{h.refcount_table_clusters} << h.cluster_bits;
  if (h.refcount_table_clusters > fsize / cs + 1) {
    throw Error(ErrorKind::kCorrupt, path, kHdrRefcountClusters,
                std::to_string(h.refcount_table_clusters) +
                    " refcount table clusters do not fit in the file");
  }
  table_in_file(h.refcount_table_offset, rt_bytes, kHdrRefcountOffset, "refcount table");
  if (h.refcount_table_offset == 0) {
    throw Error(ErrorKind::kCorrupt, path, kHdrRefcountOffset,
                "refcount table at offset 0 (the header)");
  }
  read_snapshots(*file, h, o);

  // External data file.
  std::shared_ptr<const File> data = file;
  if (h.incompatible & kIncompatDataFile) {
    if (o.meta.data_file.empty()) {
      throw Error(ErrorKind::kUnsupported, path, kHdrIncompatible,
                  "the image keeps its data in an external file but does not name it");
    }
    if (!o.meta.backing_file.empty() && (h.autoclear & kAutoclearDataFileRaw)) {
      throw Error(ErrorKind::kCorrupt, path, kHdrAutoclear,
                  "a raw external data file cannot be combined with a backing file");
    }
    std::string dpath = resolve_sibling(opts, path, o.meta.data_file, "external data file");
    if (!opts.environment().exists(dpath)) {
      throw Error(ErrorKind::kNotFound, path, std::nullopt,
                  "external data file '" + o.meta.data_file + "' (" + dpath + ") not found");
    }
    data = opts.environment().open_read(dpath);
    o.meta.data_file_path = dpath;
  } else {
    o.meta.data_file.clear();  // an extension without the feature bit means nothing
  }

  // The L1 table in use: the active one, or a snapshot's.
  o.meta.header = h;
  o.meta.virtual_size = h.size;
  o.meta.l1_table_offset = h.l1_table_offset;
  o.meta.l1_size = h.l1_size;
  uint64_t l1_field = kHdrL1Offset;
  if (!opts.snapshot.empty()) {
    const auto& sn = o.meta.snapshots;
    auto it = std::find_if(sn.begin(), sn.end(),
                           [&](const Snapshot& s) { return s.id == opts.snapshot; });
    if (it == sn.end()) {
      it = std::find_if(sn.begin(), sn.end(),
                        [&](const Snapshot& s) { return s.name == opts.snapshot; });
    }
    if (it == sn.end()) {
      std::string list;
      for (const Snapshot& s : sn) list += (list.empty() ? "" : ", ") + s.id + " '" + s.name + "'";
      throw Error(ErrorKind::kNotFound, path, std::nullopt,
                  "no internal snapshot with ID or name '" + opts.snapshot + "' (" +
                      (list.empty() ? "the image has none" : "it has: " + list) + ")");
    }
    o.meta.snapshot = static_cast<int>(it - sn.begin());
    o.meta.virtual_size = it->disk_size;
    o.meta.l1_table_offset = it->l1_table_offset;
    o.meta.l1_size = it->l1_size;
    l1_field = it->entry_offset + kSnL1Offset;
  }
  const uint64_t l2_span = h.l2_entries() * cs;  // guest bytes one L2 table maps
  const uint64_t need = div_round_up(o.meta.virtual_size, l2_span);
  if (o.meta.l1_size < need) {
    throw Error(ErrorKind::kCorrupt, path, l1_field == kHdrL1Offset ? kHdrL1Size : l1_field + 8,
                "L1 table of " + std::to_string(o.meta.l1_size) + " entries is too small for " +
                    std::to_string(o.meta.virtual_size) + " bytes (needs " + std::to_string(need) +
                    ")");
  }
  const uint64_t l1_bytes = uint64_t{o.meta.l1_size} * 8;
  if (o.meta.l1_size) table_in_file(o.meta.l1_table_offset, l1_bytes, l1_field, "L1 table");

  // Metadata ranges: nothing may overlap, data clusters may not point into
  // them (checked as L2 tables load).
  std::vector<MetaRange> meta;
  meta.push_back({0, cs, "the header cluster"});
  if (l1_bytes) {
    meta.push_back({o.meta.l1_table_offset, o.meta.l1_table_offset + l1_bytes, "the L1 table"});
  }
  meta.push_back(
      {h.refcount_table_offset, h.refcount_table_offset + rt_bytes, "the refcount table"});
  std::vector<uint8_t> rt(static_cast<size_t>(rt_bytes));
  file->read_at(h.refcount_table_offset, rt.data(), rt.size());
  for (uint64_t i = 0; i < rt_bytes / 8; ++i) {
    const uint64_t e = load_be64(rt.data() + 8 * i);
    const uint64_t off = e & kRefcountTableOffsetMask;
    if (off == 0) continue;
    const uint64_t at = h.refcount_table_offset + 8 * i;
    if (off % cs || off >= fsize || cs > fsize - off) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  "refcount block " + std::to_string(i) + " at " + std::to_string(off) +
                      " is not a cluster-aligned cluster inside the " + std::to_string(fsize) +
                      "-byte file");
    }
    meta.push_back({off, off + cs, "refcount block " + std::to_string(i)});
  }
  rt = {};
  if (h.nb_snapshots) meta.push_back({h.snapshots_offset, o.snapshots_end, "the snapshot table"});
  for (size_t i = 0; i < o.meta.snapshots.size(); ++i) {
    const Snapshot& s = o.meta.snapshots[i];
    const uint64_t bytes = uint64_t{s.l1_size} * 8;
    if (static_cast<int>(i) == o.meta.snapshot || bytes == 0 || s.l1_table_offset % cs ||
        s.l1_table_offset > fsize || bytes > fsize - s.l1_table_offset)
      continue;  // the one in use is "the L1 table"; a broken one matters only when read
    meta.push_back(
        {s.l1_table_offset, s.l1_table_offset + bytes, "the L1 table of snapshot " + s.id});
  }
  std::vector<uint64_t> l1(o.meta.l1_size);
  {
    std::vector<uint8_t> raw(static_cast<size_t>(l1_bytes));
    if (l1_bytes) file->read_at(o.meta.l1_table_offset, raw.data(), raw.size());
    for (size_t i = 0; i < l1.size(); ++i) {
      const uint64_t e = load_be64(raw.data() + 8 * i);
      const uint64_t at = o.meta.l1_table_offset + 8 * i;
      const uint64_t off = e & kL1OffsetMask;
      if (i >= need) {
        l1[i] = 0;  // maps nothing inside the virtual size
        continue;
      }
      if (e & ~(kL1OffsetMask | kOflagCopied)) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    "L1 entry " + std::to_string(i) + " " + hex(e) + " has reserved bits set");
      }
      l1[i] = e;
      if (off == 0) continue;
      if (off % cs || off >= fsize || cs > fsize - off) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    "L1 entry " + std::to_string(i) + ": L2 table at " + std::to_string(off) +
                        " is not a cluster-aligned cluster inside the " + std::to_string(fsize) +
                        "-byte file");
      }
      meta.push_back({off, off + cs, "the L2 table of L1 entry " + std::to_string(i)});
    }
  }
  std::sort(meta.begin(), meta.end(),
            [](const MetaRange& a, const MetaRange& b) { return a.start < b.start; });
  for (size_t i = 1; i < meta.size(); ++i) {
    if (meta[i].start < meta[i - 1].end) {
      throw Error(ErrorKind::kCorrupt, path, meta[i].start,
                  meta[i].what + " (bytes " + std::to_string(meta[i].start) + "-" +
                      std::to_string(meta[i].end) + ") overlaps " + meta[i - 1].what + " (bytes " +
                      std::to_string(meta[i - 1].start) + "-" + std::to_string(meta[i - 1].end) +
                      ")");
    }
  }
  return std::make_shared<Qcow2Device>(file, data, std::move(o.meta), std::move(l1),
                                       std::move(meta));
}

}  // namespace vdisk::qcow2
