#include "formats/vmdk/vmdk_sparse_extent.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "formats/core/deflate.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/lru_cache.h"

namespace vdisk::vmdk {

namespace {

std::atomic<uint64_t> g_inflated{0};

constexpr uint32_t kNoSlot = 0xffffffff;
// Grain map values below this are codes, not file offsets (a grain never sits
// in sector 0, which holds the header).
constexpr uint64_t kEntryUnallocated = 0;
constexpr uint64_t kEntryZero = 1;
// Bytes of decompressed grains kept per extent: sequential readers (FUSE,
// the converter reading 4 MiB at a time with unaligned edges) never inflate a
// grain twice.
constexpr size_t kGrainCacheBytes = 4 << 20;
// Compressed grains are read in windows of this size so a sequential read
// costs one pread per window, not one per grain.
constexpr size_t kCompressedWindow = 1 << 20;
// Grains or tables one status() call looks at.
constexpr int kMaxStatusSteps = 16384;
// Largest single pread when coalescing uncompressed grains.
constexpr size_t kMaxCoalesce = 8 << 20;

// Decompressed grains, least recently used evicted first.
class GrainCache : public LruCache<uint64_t, std::vector<uint8_t>> {
 public:
  explicit GrainCache(size_t capacity) : LruCache(std::max<size_t>(capacity, 4)) {}
};

class SparseExtent final : public ExtentReader {
 public:
  SparseExtent(std::shared_ptr<const File> file, uint64_t size, uint64_t grain_bytes, uint32_t gtes,
               bool compressed, Json desc)
      : file_(std::move(file)),
        size_(size),
        grain_bytes_(grain_bytes),
        gtes_(gtes),
        compressed_(compressed),
        desc_(std::move(desc)),
        cache_(std::max<size_t>(kGrainCacheBytes / grain_bytes, 4)) {
    num_grains_ = div_round_up(size_, grain_bytes_);
    num_tables_ = static_cast<size_t>(div_round_up(num_grains_, gtes_));
  }

  // Loader interface.
  size_t num_tables() const { return num_tables_; }
  uint64_t num_grains() const { return num_grains_; }
  uint64_t grain_bytes() const { return grain_bytes_; }
  // Installs table `t` (gtes entries) and returns a pointer to fill. Tables
  // come in increasing order (the loaders walk the directory).
  uint64_t* add_table(size_t t) {
    if (!tables_.empty() && t <= tables_.back())
      throw std::logic_error("vmdk: grain tables installed out of order");
    tables_.push_back(static_cast<uint64_t>(t));
    entries_.resize(entries_.size() + gtes_, kEntryUnallocated);
    return entries_.data() + (tables_.size() - 1) * gtes_;
  }
  void finish_load() {
    uint64_t allocated = 0, zero = 0;
    for (uint64_t v : entries_) {
      if (v == kEntryZero)
        ++zero;
      else if (v != kEntryUnallocated)
        ++allocated;
    }
    desc_.set("grain_size", grain_bytes_);
    desc_.set("allocated_grains", allocated);
    if (zero) desc_.set("zeroed_grains", zero);
    desc_.set("allocated_bytes", std::min(allocated * grain_bytes_, size_));
  }
  // Bytes of guest data grain `g` holds (the last grain may be short).
  uint64_t grain_len(uint64_t g) const { return std::min(grain_bytes_, size_ - g * grain_bytes_); }

  uint64_t size() const override { return size_; }
  const File* file() const override { return file_.get(); }
  Json describe() const override { return desc_; }

  Extent status(uint64_t offset, uint64_t len) const override {
    len = std::min(len, size_ - offset);
    uint64_t g = offset / grain_bytes_;
    ExtentType t = type_of(entry(g));
    uint64_t end = std::min(size_, (g + 1) * grain_bytes_);
    // Bounded work per call: callers such as the converter ask about "the
    // rest of the disk" once per chunk, and a shorter answer is still exact.
    for (int steps = 0; end < offset + len && steps < kMaxStatusSteps; ++steps) {
      uint64_t ng = end / grain_bytes_;
      // A whole missing table is one unallocated run.
      if (slot_of(ng / gtes_) == kNoSlot) {
        if (t != ExtentType::kUnallocated) break;
        end = std::min(size_, (ng / gtes_ + 1) * gtes_ * grain_bytes_);
        continue;
      }
      if (type_of(entry(ng)) != t) break;
      end = std::min(size_, (ng + 1) * grain_bytes_);
    }
    return Extent{std::min(end, offset + len) - offset, t};
  }

  void read(uint64_t offset, uint8_t* buf, size_t len) const override {
    while (len > 0) {
      uint64_t g = offset / grain_bytes_;
      uint64_t in = offset - g * grain_bytes_;
      uint64_t e = entry(g);
      if (e == kEntryUnallocated || e == kEntryZero) {
        // The whole run of this type in one call.
        Extent run = status(offset, len);
        size_t n = static_cast<size_t>(run.length);
        std::memset(buf, 0, n);  // zero grains, or not stored in this layer
        offset += n, buf += n, len -= n;
        continue;
      }
      if (compressed_) {
        size_t n = read_compressed(g, in, buf, len);
        offset += n, buf += n, len -= n;
        continue;
      }
      // Coalesce grains that follow each other in the file.
      uint64_t file_off = e + in;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, grain_len(g) - in));
      while (n < len && n < kMaxCoalesce) {
        uint64_t ng = (offset + n) / grain_bytes_;
        uint64_t ne = entry(ng);
        if (ne <= kEntryZero || ne != file_off + n) break;
        n += static_cast<size_t>(std::min<uint64_t>(len - n, grain_len(ng)));
      }
      file_->read_at(file_off, buf, n);
      offset += n, buf += n, len -= n;
    }
  }

 private:
  static ExtentType type_of(uint64_t e) {
    if (e == kEntryUnallocated) return ExtentType::kUnallocated;
    if (e == kEntryZero) return ExtentType::kZero;
    return ExtentType::kData;
  }
  uint64_t entry(uint64_t g) const {
    const uint32_t s = slot_of(g / gtes_);
    if (s == kNoSlot) return kEntryUnallocated;
    return entries_[static_cast<size_t>(s) * gtes_ + g % gtes_];
  }

  // Inflates the grain whose marker starts at entry(g) from `window` (bytes
  // of the file starting at `win_off`), or reads it alone when it does not
  // fit the window.
  std::shared_ptr<const std::vector<uint8_t>> inflate_at(uint64_t g,
                                                         const std::vector<uint8_t>& window,
                                                         uint64_t win_off) const {
    uint64_t pos = entry(g);
    uint8_t head[kGrainMarkerHeader];
    const uint8_t* hp;
    if (pos >= win_off && pos + kGrainMarkerHeader <= win_off + window.size()) {
      hp = window.data() + (pos - win_off);
    } else {
      file_->read_at(pos, head, sizeof head);
      hp = head;
    }
    uint64_t lba = load_le64(hp);
    uint32_t csize = load_le32(hp + 8);
    if (lba != g * (grain_bytes_ / kSector)) {
      throw_corrupt(file_->path(), pos,
                    "grain marker names sector " + std::to_string(lba) + ", expected " +
                        std::to_string(g * (grain_bytes_ / kSector)));
    }
    if (csize == 0 || csize > grain_bytes_ * 2 + 4096 ||
        pos + kGrainMarkerHeader + csize > file_->size()) {
      throw_corrupt(file_->path(), pos + 8,
                    "compressed grain size " + std::to_string(csize) + " is invalid");
    }
    const uint8_t* data;
    std::vector<uint8_t> own;
    uint64_t dpos = pos + kGrainMarkerHeader;
    if (dpos >= win_off && dpos + csize <= win_off + window.size()) {
      data = window.data() + (dpos - win_off);
    } else {
      own.resize(csize);
      file_->read_at(dpos, own.data(), csize);
      data = own.data();
    }
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(grain_bytes_));
    g_inflated.fetch_add(1, std::memory_order_relaxed);
    if (!inflate_buffer(DeflateWrapper::kZlib, data, csize, out->data(), out->size())) {
      throw_corrupt(file_->path(), dpos,
                    "compressed grain " + std::to_string(g) + " does not inflate");
    }
    return out;
  }

  // Copies from compressed grain `g` (and following ones, read in one
  // window) starting `in` bytes into it; returns bytes produced.
  size_t read_compressed(uint64_t g, uint64_t in, uint8_t* buf, size_t len) const {
    std::vector<uint8_t> window;
    uint64_t win_off = 0;
    size_t done = 0;
    while (done < len) {
      uint64_t e = entry(g);
      if (e <= kEntryZero) break;  // the caller handles other types
      auto grain = cache_.get(g);
      if (!grain) {
        if (window.empty() || e < win_off || e + kGrainMarkerHeader > win_off + window.size()) {
          window.resize(
              static_cast<size_t>(std::max<uint64_t>(kCompressedWindow, grain_bytes_ + 4096)));
          win_off = e;
          window.resize(file_->read_some(win_off, window.data(), window.size()));
        }
        grain = inflate_at(g, window, win_off);
        cache_.put(g, grain);
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, grain_len(g) - in));
      std::memcpy(buf + done, grain->data() + in, n);
      done += n;
      in = 0;
      ++g;
      if (g >= num_grains_) break;
    }
    return done;
  }

  std::shared_ptr<const File> file_;
  uint64_t size_;
  uint64_t grain_bytes_;
  uint32_t gtes_;
  bool compressed_;
  Json desc_;
  uint64_t num_grains_ = 0;
  // The slot in entries_ of table t, or kNoSlot when it holds nothing.
  uint32_t slot_of(uint64_t t) const {
    auto it = std::lower_bound(tables_.begin(), tables_.end(), t);
    if (it == tables_.end() || *it != t) return kNoSlot;
    return static_cast<uint32_t>(it - tables_.begin());
  }

  size_t num_tables_ = 0;
  // The tables that hold any entry, ascending (a table that is all zeros,
  // as preallocated ones are, costs nothing: a 1 PiB disk has 2^25 tables),
  // and their entries, gtes_ per table in the same order.
  std::vector<uint64_t> tables_;
  std::vector<uint64_t> entries_;
  mutable GrainCache cache_;
};

// A byte range of an extent file holding metadata (header, embedded
// descriptor, grain directories, grain tables).
struct MetaRange {
  uint64_t start, end;
  std::string what;
  bool table;
};

// Sorted by start, overlapping ranges merged (the first one's name kept):
// what grain entries are checked against.
std::vector<MetaRange> merge_meta(std::vector<MetaRange> v) {
  std::sort(v.begin(), v.end(),
            [](const MetaRange& a, const MetaRange& b) { return a.start < b.start; });
  std::vector<MetaRange> out;
  for (MetaRange& m : v) {
    if (!out.empty() && m.start < out.back().end)
      out.back().end = std::max(out.back().end, m.end);
    else
      out.push_back(std::move(m));
  }
  return out;
}

// Reads and validates a hosted grain directory at `gd_sector` with its
// tables into `ext`. Throws kCorrupt with the first problem found, including
// a grain table or a grain that lies in the extent's own metadata (issue 10:
// "grain tables pointing into metadata"): such an entry would hand out header
// or table bytes as guest data, and a table inside another would alias it.
void load_hosted_tables(const File& file, const SparseHeader& h, uint64_t gd_sector,
                        SparseExtent& ext, std::vector<uint32_t>* gd_out) {
  const std::string& path = file.path();
  const uint64_t fsize = file.size();
  const size_t ntables = ext.num_tables();
  const uint64_t gd_bytes = checked_mul(ntables, 4, path, 56, "grain directory size");
  const uint64_t gd_pos = checked_mul(gd_sector, kSector, path, 56, "grain directory offset");
  if (gd_pos < kSector || gd_pos > fsize || gd_bytes > fsize - gd_pos) {
    throw_corrupt(path, 56,
                  "grain directory at sector " + std::to_string(gd_sector) + " (" +
                      std::to_string(gd_bytes) + " bytes) lies outside the " +
                      std::to_string(fsize) + "-byte file");
  }
  // Read in 4 MiB windows: a 1 PiB disk's directory is 128 MiB, held once.
  std::vector<uint32_t> gd(ntables);
  {
    std::vector<uint8_t> window;
    for (size_t first = 0; first < ntables;) {
      const size_t n = std::min<size_t>(ntables - first, 1u << 20);
      window.resize(4 * n);
      file.read_at(gd_pos + 4 * uint64_t{first}, window.data(), window.size());
      for (size_t i = 0; i < n; ++i) gd[first + i] = load_le32(window.data() + 4 * i);
      first += n;
    }
  }

  const uint64_t gt_bytes = uint64_t{h.num_gtes_per_gt} * 4;
  uint64_t used = 0;
  for (size_t i = 0; i < ntables; ++i) {
    if (gd[i] == 0) continue;
    uint64_t pos = uint64_t{gd[i]} * kSector;
    if (pos < kSector || pos > fsize || gt_bytes > fsize - pos) {
      throw_corrupt(path, gd_pos + 4 * i,
                    "grain directory entry " + std::to_string(i) + " points to sector " +
                        std::to_string(gd[i]) + ", outside the file");
    }
    used += gt_bytes;
  }
  // Every table occupies its own bytes of the file: a directory claiming more
  // is damaged (and must not make us allocate more than the file holds).
  if (used > fsize)
    throw_corrupt(path, gd_pos, "grain directory claims more tables than the file holds");

  // The metadata of this file (VDF "Hosted Sparse Extent Header": the header
  // sector, the embedded descriptor, the grain directory and its redundant
  // copy, the grain tables). Grain tables may not overlap any of it nor each
  // other; the header-declared regions among themselves are left alone (odd
  // but readable files exist, and nothing of ours reads the descriptor from
  // the tables).
  std::vector<MetaRange> meta;
  meta.push_back({0, kSector, "the header", false});
  if (h.descriptor_offset != 0 && h.descriptor_size != 0 && h.descriptor_offset < fsize / kSector) {
    const uint64_t s = h.descriptor_offset * kSector;
    const uint64_t n = std::min(h.descriptor_size, (fsize - s) / kSector) * kSector;
    if (n) meta.push_back({s, s + n, "the embedded descriptor", false});
  }
  meta.push_back({gd_pos, gd_pos + gd_bytes,
                  "the grain directory at sector " + std::to_string(gd_sector), false});
  for (uint64_t other : {h.gd_offset, h.rgd_offset}) {
    if (other == gd_sector || other == 0 || other == kGdAtEnd || other >= fsize / kSector) continue;
    const uint64_t s = other * kSector;
    meta.push_back({s, s + std::min(gd_bytes, fsize - s),
                    "the grain directory at sector " + std::to_string(other), false});
  }
  // Tables that follow each other in the file (as every writer lays them
  // out) are one range: a 1 PiB disk has 2^25 tables, and a range each
  // would cost gigabytes of memory for a check that cannot fail inside a run.
  for (size_t i = 0; i < ntables;) {
    if (gd[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < ntables && gd[j] != 0 &&
           uint64_t{gd[j]} * kSector == uint64_t{gd[j - 1]} * kSector + gt_bytes)
      ++j;
    const uint64_t s = uint64_t{gd[i]} * kSector;
    meta.push_back({s, s + (j - i) * gt_bytes,
                    j == i + 1 ? "grain table " + std::to_string(i)
                               : "grain tables " + std::to_string(i) + "-" + std::to_string(j - 1),
                    true});
    i = j;
  }
  {
    std::vector<const MetaRange*> order;
    for (const MetaRange& m : meta) order.push_back(&m);
    std::sort(order.begin(), order.end(),
              [](const MetaRange* a, const MetaRange* b) { return a->start < b->start; });
    const MetaRange* reach = nullptr;  // the range ending furthest so far
    for (const MetaRange* m : order) {
      if (reach && m->start < reach->end && (m->table || reach->table)) {
        throw_corrupt(path, gd_pos,
                      (m->table ? m->what : reach->what) + " (bytes " + std::to_string(m->start) +
                          "-" + std::to_string(m->end) + ") overlaps " +
                          (m->table ? reach->what : m->what) + " (bytes " +
                          std::to_string(reach->start) + "-" + std::to_string(reach->end) + ")");
      }
      if (!reach || m->end > reach->end) reach = m;
    }
  }
  const std::vector<MetaRange> merged = merge_meta(std::move(meta));

  const bool compressed = h.flags & kFlagCompressed;
  std::vector<uint8_t> buf;
  size_t i = 0;
  while (i < ntables) {
    if (gd[i] == 0) {
      ++i;
      continue;
    }
    // One read for a run of tables that follow each other in the file.
    size_t j = i + 1;
    while (j < ntables && gd[j] != 0 &&
           uint64_t{gd[j]} * kSector == uint64_t{gd[j - 1]} * kSector + gt_bytes &&
           (j - i) * gt_bytes < (4u << 20)) {
      ++j;
    }
    buf.resize(static_cast<size_t>((j - i) * gt_bytes));
    file.read_at(uint64_t{gd[i]} * kSector, buf.data(), buf.size());
    for (size_t t = i; t < j; ++t) {
      const uint8_t* src = buf.data() + (t - i) * gt_bytes;
      // Preallocated tables that hold nothing cost no memory.
      if (is_zero(src, static_cast<size_t>(gt_bytes))) continue;
      uint64_t* out = ext.add_table(t);
      for (uint32_t k = 0; k < h.num_gtes_per_gt; ++k) {
        uint64_t g = uint64_t{t} * h.num_gtes_per_gt + k;
        uint32_t v = load_le32(src + 4 * k);
        if (g >= ext.num_grains()) {
          out[k] = kEntryUnallocated;  // entries past the capacity are padding
          continue;
        }
        if (v == kGteUnallocated || v == kGteZeroed) {
          out[k] = v;
          continue;
        }
        uint64_t pos = uint64_t{v} * kSector;
        uint64_t need = compressed ? kGrainMarkerHeader : ext.grain_len(g);
        if (pos > fsize || need > fsize - pos) {
          throw_corrupt(path, uint64_t{gd[t]} * kSector + 4 * k,
                        "grain table entry for grain " + std::to_string(g) + " points to sector " +
                            std::to_string(v) + ", past the end of the file");
        }
        auto hit = std::upper_bound(merged.begin(), merged.end(), pos,
                                    [](uint64_t p, const MetaRange& m) { return p < m.end; });
        if (hit != merged.end() && hit->start < pos + need) {
          throw_corrupt(path, uint64_t{gd[t]} * kSector + 4 * k,
                        "grain table entry for grain " + std::to_string(g) + " points to sector " +
                            std::to_string(v) + ", inside " + hit->what + " (bytes " +
                            std::to_string(hit->start) + "-" + std::to_string(hit->end) + ")");
        }
        out[k] = pos;
      }
    }
    i = j;
  }
  if (gd_out) *gd_out = std::move(gd);
}

}  // namespace

uint64_t grains_inflated() {
  return g_inflated.load();
}

std::unique_ptr<ExtentReader> open_hosted_sparse(std::shared_ptr<const File> file,
                                                 const SparseHeader& header,
                                                 const OpenOptions& opts) {
  const std::string& path = file->path();
  SparseHeader h = header;
  Json desc = Json::object();
  desc.set("format", "hosted sparse (KDMV) version " + std::to_string(h.version));
  if (h.version < 1 || h.version > 3) {
    throw Error(ErrorKind::kUnsupported, path, 4,
                "sparse extent version " + std::to_string(h.version) + " is not 1, 2 or 3");
  }
  if ((h.flags & kFlagMarkers) && h.gd_offset == kGdAtEnd) {
    // streamOptimized: the footer (second-to-last sector, VDF "Stream-Optimized
    // Compressed Sparse Extents") carries the real grain directory offset.
    if (file->size() < 3 * kSector)
      throw_corrupt(path, 0, "streamOptimized file too short to hold a footer");
    uint64_t foot = file->size() - 2 * kSector;
    uint8_t fb[kSector];
    file->read_at(foot, fb, sizeof fb);
    std::optional<SparseHeader> f = decode_sparse_header(fb);
    if (!f || f->gd_offset == kGdAtEnd) {
      throw_corrupt(
          path, foot,
          "streamOptimized header says the grain directory is at the end, but there is no footer "
          "(truncated stream?)");
    }
    h = *f;
    desc.set("footer", true);
  }
  if (h.grain_size == 0 || (h.grain_size & (h.grain_size - 1)) || h.grain_size > (1u << 16)) {
    throw_corrupt(path, 20,
                  "grain size of " + std::to_string(h.grain_size) +
                      " sectors is not a power of two up to 32 MiB");
  }
  if (h.num_gtes_per_gt == 0 || h.num_gtes_per_gt > 65536) {
    throw_corrupt(path, 44,
                  "numGTEsPerGT " + std::to_string(h.num_gtes_per_gt) + " is out of range");
  }
  const bool compressed = h.flags & kFlagCompressed;
  if (compressed && h.compress_algorithm != kCompressDeflate) {
    throw Error(ErrorKind::kUnsupported, path, 77,
                "compression algorithm " + std::to_string(h.compress_algorithm) +
                    " (only 1, deflate, is known)");
  }
  const uint64_t size = checked_mul(h.capacity, kSector, path, 12, "capacity");
  const uint64_t grain_bytes = h.grain_size * kSector;
  // The directory must fit in the file: this bounds every allocation below.
  uint64_t ntables = div_round_up(div_round_up(size, grain_bytes), h.num_gtes_per_gt);
  if (checked_mul(ntables, 4, path, 12, "grain directory size") > file->size()) {
    throw_corrupt(path, 12,
                  "capacity of " + std::to_string(h.capacity) +
                      " sectors needs a grain directory larger than the " +
                      std::to_string(file->size()) + "-byte file");
  }
  desc.set("compressed", compressed);
  auto make = [&] {
    return std::make_unique<SparseExtent>(file, size, grain_bytes, h.num_gtes_per_gt, compressed,
                                          desc);
  };

  auto ext = make();
  const bool have_rgd =
      (h.flags & kFlagRedundantGd) && h.rgd_offset != 0 && h.rgd_offset != kGdAtEnd;
  std::string problem;
  std::vector<uint32_t> primary_gd;
  try {
    load_hosted_tables(*file, h, h.gd_offset, *ext, &primary_gd);
  } catch (const Error& e) {
    if (!have_rgd || e.kind() != ErrorKind::kCorrupt) throw;
    problem = e.what();
  }
  if (problem.empty() && have_rgd) {
    // A zeroed-out primary directory looks valid: compare it with the
    // redundant directory (its entries only; its tables are read only when
    // they are needed).
    uint64_t rgd_pos = h.rgd_offset * kSector;
    uint64_t gd_bytes = uint64_t{primary_gd.size()} * 4;
    if (h.rgd_offset < file->size() / kSector && gd_bytes <= file->size() - rgd_pos) {
      // In windows: a 1 PiB disk's directory is 128 MiB.
      std::vector<uint8_t> raw;
      size_t window_first = 0;
      for (size_t i = 0; i < primary_gd.size(); ++i) {
        if (i == window_first + raw.size() / 4 || raw.empty()) {
          window_first = i;
          raw.resize(static_cast<size_t>(
              std::min<uint64_t>(4u << 20, 4 * uint64_t{primary_gd.size() - i})));
          file->read_at(rgd_pos + 4 * uint64_t{i}, raw.data(), raw.size());
        }
        uint32_t r = load_le32(raw.data() + 4 * (i - window_first));
        if (primary_gd[i] == 0 && r != 0) {  // the primary lost a table
          problem = path + ": grain directory entry " + std::to_string(i) +
                    " is 0 but the redundant copy has " + std::to_string(r);
          break;
        }
      }
    }
  }
  primary_gd = {};
  primary_gd.shrink_to_fit();
  if (!problem.empty()) {
    auto alt = make();
    load_hosted_tables(*file, h, h.rgd_offset, *alt, nullptr);
    ext = std::move(alt);
    opts.warn(problem +
              "; the primary grain directory is damaged, reading through the redundant one at "
              "sector " +
              std::to_string(h.rgd_offset));
  }
  ext->finish_load();
  return ext;
}

std::unique_ptr<ExtentReader> open_sesparse(std::shared_ptr<const File> file,
                                            const OpenOptions& opts) {
  const std::string& path = file->path();
  uint8_t hb[kSector];
  if (file->size() < kSector) throw_corrupt(path, 0, "file too short for an seSparse header");
  file->read_at(0, hb, sizeof hb);
  std::optional<SeSparseHeader> decoded = decode_sesparse_header(hb);
  if (!decoded) throw Error(ErrorKind::kNotThisFormat, path, 0, "no seSparse magic");
  const SeSparseHeader& h = *decoded;
  if (h.version != kSeSparseVersion) {
    throw Error(ErrorKind::kUnsupported, path, 8,
                "seSparse version " + std::to_string(h.version) + " is not supported");
  }
  // ESXi always uses 4 KiB grains and 32 KiB tables; anything else is not a
  // file we understand.
  if (h.grain_size != 8)
    throw_corrupt(path, 24,
                  "seSparse grain size " + std::to_string(h.grain_size) + " is not 8 sectors");
  if (h.grain_table_size != 64) {
    throw_corrupt(
        path, 32,
        "seSparse grain table size " + std::to_string(h.grain_table_size) + " is not 64 sectors");
  }
  const uint64_t fsize = file->size();
  auto in_file = [&](uint64_t off_sectors, uint64_t size_sectors, uint64_t field,
                     const char* what) {
    uint64_t off = checked_mul(off_sectors, kSector, path, field, what);
    uint64_t len = checked_mul(size_sectors, kSector, path, field + 8, what);
    if (off > fsize || len > fsize - off)
      throw_corrupt(path, field, std::string(what) + " lies outside the file");
    return off;
  };
  const uint64_t size = checked_mul(h.capacity, kSector, path, 16, "capacity");
  const uint64_t grain_bytes = h.grain_size * kSector;
  const uint32_t gtes = static_cast<uint32_t>(h.grain_table_size * kSector / 8);
  uint64_t gd_pos =
      in_file(h.grain_dir_offset, h.grain_dir_size, kSeGrainDirOffset, "grain directory");
  // The table and grain areas are reservations: ESXi grows an seSparse file
  // as it allocates, so a 23 MiB file may reserve 512 MiB of grains past its
  // end. Only what the directory and tables reference must lie in the file
  // (checked below, naming the table or grain).
  const uint64_t gts_pos =
      checked_mul(h.grain_tables_offset, kSector, path, kSeGrainTablesOffset, "grain tables");
  checked_mul(h.grain_tables_size, kSector, path, kSeGrainTablesOffset + 8, "grain tables");
  checked_mul(h.grains_offset, kSector, path, kSeGrainsOffset, "grain area");
  checked_mul(h.grains_size, kSector, path, kSeGrainsOffset + 8, "grain area");
  Json desc = Json::object();
  desc.set("format", "seSparse");
  // Checked before anything is sized by the capacity (in_file bounded the
  // directory by the file size).
  const uint64_t ntables64 = div_round_up(div_round_up(size, grain_bytes), gtes);
  if (ntables64 > h.grain_dir_size * kSector / 8) {
    throw_corrupt(path, kSeGrainDirOffset,
                  "seSparse grain directory is too small for the capacity");
  }
  auto ext = std::make_unique<SparseExtent>(file, size, grain_bytes, gtes, false, desc);
  const size_t ntables = ext->num_tables();
  std::vector<uint8_t> gd(ntables * 8);
  file->read_at(gd_pos, gd.data(), gd.size());
  const uint64_t max_tables = h.grain_tables_size / h.grain_table_size;
  const uint64_t max_grains = h.grains_size / h.grain_size;
  std::vector<uint8_t> gt(static_cast<size_t>(h.grain_table_size * kSector));
  uint64_t tables_used = 0;
  for (size_t t = 0; t < ntables; ++t) {
    if (load_le64(gd.data() + 8 * t) != 0) ++tables_used;
  }
  if (tables_used > max_tables) {
    throw_corrupt(path, gd_pos,
                  "seSparse grain directory names more tables than the table area holds");
  }
  for (size_t t = 0; t < ntables; ++t) {
    uint64_t e = load_le64(gd.data() + 8 * t);
    if (e == 0) continue;
    if ((e >> 60) != 1)
      throw_corrupt(path, gd_pos + 8 * t, "seSparse grain directory entry has an unknown type");
    uint64_t idx = e & 0x0fffffffffffffffull;
    if (idx >= max_tables)
      throw_corrupt(path, gd_pos + 8 * t, "seSparse grain table index out of range");
    const uint64_t gt_pos = gts_pos + idx * gt.size();
    if (gt_pos < gts_pos || gt_pos > fsize || gt.size() > fsize - gt_pos) {
      throw_corrupt(path, gd_pos + 8 * t,
                    "seSparse grain directory entry " + std::to_string(t) + " names table " +
                        std::to_string(idx) + " at offset " + std::to_string(gt_pos) +
                        ", past the end of the " + std::to_string(fsize) + "-byte file");
    }
    file->read_at(gt_pos, gt.data(), gt.size());
    uint64_t* out = ext->add_table(t);
    for (uint32_t k = 0; k < gtes; ++k) {
      uint64_t v = load_le64(gt.data() + 8 * k);
      switch (v >> 60) {
        case 0:
          out[k] = kEntryUnallocated;
          break;
        case 1:  // unmapped: trimmed by the guest, reads as zeros
        case 2:
          out[k] = kEntryZero;
          break;
        case 3: {
          uint64_t grain =
              ((v & 0x0fff000000000000ull) >> 48) | ((v & 0x0000ffffffffffffull) << 12);
          if (grain >= max_grains)
            throw_corrupt(path, gt_pos + 8 * k, "seSparse grain index out of range");
          const uint64_t at = (h.grains_offset + grain * h.grain_size) * kSector;
          if (at > fsize || grain_bytes > fsize - at) {
            throw_corrupt(path, gt_pos + 8 * k,
                          "seSparse grain " + std::to_string(uint64_t{t} * gtes + k) +
                              " is stored as grain " + std::to_string(grain) + " at offset " +
                              std::to_string(at) + ", past the end of the " +
                              std::to_string(fsize) + "-byte file");
          }
          out[k] = at;
          break;
        }
        default:
          throw_corrupt(path, gt_pos + 8 * k, "seSparse grain table entry has an unknown type");
      }
    }
  }
  ext->finish_load();
  (void)opts;
  return ext;
}

}  // namespace vdisk::vmdk
