#include "formats/e01/e01_reader.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>

#include "formats/core/deflate.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/guid.h"
#include "formats/core/hex.h"
#include "formats/core/lru_cache.h"
#include "formats/e01/e01_chunk.h"
#include "formats/e01/e01_header.h"
#include "formats/e01/e01_layout.h"

namespace vdisk::e01 {

namespace {

std::atomic<uint64_t> g_inflated{0};

// EnCase's largest chunk: 32768 sectors of 512 bytes. Larger ones would
// make a single chunk cost more memory than the whole reader may use.
constexpr uint64_t kMaxChunkBytes = 16 << 20;
// Header sections are a few hundred bytes; these bound what a hostile one
// makes us read and inflate.
constexpr uint64_t kMaxHeaderStored = 4 << 20;
constexpr size_t kMaxHeaderText = 16 << 20;
// Decompressed chunks kept for reads that cover part of a chunk (FUSE's
// random 4 KiB reads, unaligned edges of larger requests).
constexpr size_t kChunkCacheBytes = 32 << 20;
// Loaded chunk tables: 5 bytes per entry (offset + zero state).
constexpr size_t kTableCacheBytes = 8 << 20;
// Chunks one block_status call classifies; bytes one zero probe reads.
constexpr uint64_t kMaxStatusChunks = 16384;
constexpr size_t kZeroProbeWindow = 256 << 10;
// Largest single pread of a run of chunks that follow each other in a file.
constexpr size_t kMaxRunBytes = 8 << 20;
// error2 and session sections hold a few entries; a larger count is a
// damaged section, ignored with a warning rather than allocated.
constexpr uint64_t kMaxListEntries = 1 << 20;

// What a chunk was found to hold, cached per table entry (atomic uint8_t)
// once classify() has looked: not on disk, EWF has no block types.
enum ChunkState : uint8_t { kStateUnknown = 0, kStateZero = 1, kStateData = 2 };

struct Segment {
  std::shared_ptr<const File> file;
  uint32_t number = 0;
};

// One table section: where its entries are and which area of the file its
// chunks may lie in. The entries themselves are loaded on demand.
struct TableRef {
  uint64_t first_chunk = 0;
  uint32_t count = 0;
  uint32_t segment = 0;
  uint64_t section_offset = 0;  // of the table section's descriptor
  uint64_t entries_offset = 0;
  uint64_t base = 0;
  bool header_ok = true;
  // The area the chunks lie in: the preceding sectors section's data, or
  // (EWF, SMART, EnCase 1) the rest of the table section after the entries.
  uint64_t data_start = 0, data_end = 0;
  bool sectors_layout = true;  // a footer (Adler-32 of the entries) follows the entries
  // The table2 copy right after it, if any.
  bool has_mirror = false;
  uint64_t mirror_section_offset = 0;
  uint64_t mirror_entries_offset = 0;
  uint64_t mirror_base = 0;
  uint32_t mirror_count = 0;
  bool mirror_header_ok = false;
};

// A table's entries, decoded and checked: chunk i lies at [start(i), end(i))
// of its segment file.
struct LoadedTable {
  std::vector<uint32_t> raw;
  uint64_t base = 0;
  uint64_t data_end = 0;
  // EnCase 6.7.1 wrote sectors sections past 2 GiB with the offsets using
  // all 32 bits (EWF "Table entries offset overflow"): from this entry on the
  // offsets are 32-bit and the chunks uncompressed.
  uint32_t overflow_from = 0;
  std::unique_ptr<std::atomic<uint8_t>[]> state;  // a ChunkState per entry

  uint32_t count() const { return static_cast<uint32_t>(raw.size()); }
  uint64_t start(uint32_t i) const {
    return base + (i >= overflow_from ? raw[i] : (raw[i] & kEntryOffsetMask));
  }
  bool compressed(uint32_t i) const {
    return i < overflow_from && (raw[i] & kEntryCompressed) != 0;
  }
  uint64_t end(uint32_t i) const { return i + 1 < count() ? start(i + 1) : data_end; }
};

// Where one chunk is, for the read path.
struct ChunkLoc {
  std::shared_ptr<const LoadedTable> table;
  uint32_t index = 0;
  const TableRef* ref = nullptr;
};

// Scratch buffers for reads, reused across calls and threads; a few are
// kept, the rest freed, so idle FUSE threads do not pin memory.
class ScratchPool {
 public:
  std::unique_ptr<std::vector<uint8_t>> get() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<std::vector<uint8_t>>();
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void put(std::unique_ptr<std::vector<uint8_t>> b) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < 4) free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> free_;
};

class Scratch {
 public:
  explicit Scratch(ScratchPool& pool) : pool_(pool), buf_(pool.get()) {}
  ~Scratch() { pool_.put(std::move(buf_)); }
  std::vector<uint8_t>& operator*() { return *buf_; }
  std::vector<uint8_t>* operator->() { return buf_.get(); }

 private:
  ScratchPool& pool_;
  std::unique_ptr<std::vector<uint8_t>> buf_;
};

struct ErrorRange {
  uint64_t first_sector = 0;
  uint64_t sectors = 0;
};

struct SessionEntry {
  uint32_t flags = 0;
  uint32_t first_sector = 0;
};

// Everything the walk over the segments found.
struct Parsed {
  std::vector<Segment> segments;
  std::optional<Volume> volume;
  std::string volume_section;  // "volume" or "disk"
  std::optional<CaseMetadata> header2, header;
  std::vector<TableRef> tables;
  std::optional<std::array<uint8_t, 16>> md5_hash, md5_digest;
  std::optional<std::array<uint8_t, 20>> sha1;
  std::vector<ErrorRange> errors;
  std::vector<SessionEntry> sessions;
  std::vector<std::string> unknown_sections;
  bool has_xheader = false;
  bool incomplete = false;
};

class E01Device final : public BlockDevice {
 public:
  E01Device(Parsed p, const OpenOptions& opts)
      : segs_(std::move(p.segments)),
        vol_(*p.volume),
        tables_(std::move(p.tables)),
        parsed_(std::move(p)),
        warn_(opts.warn),
        on_damage_(opts.on_damaged_data),
        chunk_bytes_(uint64_t{vol_.sectors_per_chunk} * vol_.bytes_per_sector),
        size_(vol_.sector_count * vol_.bytes_per_sector),
        chunk_count_(div_round_up(size_, chunk_bytes_)),
        chunk_cache_(std::max<size_t>(4, kChunkCacheBytes / chunk_bytes_)),
        table_cache_(std::max<size_t>(2, kTableCacheBytes / (5 * max_table_entries()))) {
    for (const ErrorRange& e : parsed_.errors) {
      const uint64_t bps = vol_.bytes_per_sector;
      uint64_t start = e.first_sector * bps;
      if (start >= size_ || e.sectors == 0) continue;
      uint64_t len = std::min(e.sectors * bps, size_ - start);
      unreadable_.push_back({start, len});
    }
    std::sort(unreadable_.begin(), unreadable_.end(),
              [](const ByteRange& a, const ByteRange& b) { return a.start < b.start; });
    std::vector<ByteRange> merged;
    for (const ByteRange& r : unreadable_) {
      if (!merged.empty() && r.start <= merged.back().start + merged.back().length) {
        merged.back().length =
            std::max(merged.back().start + merged.back().length, r.start + r.length) -
            merged.back().start;
      } else {
        merged.push_back(r);
      }
    }
    unreadable_ = std::move(merged);
  }

  uint64_t size() const override { return size_; }
  uint32_t sector_size() const override { return vol_.bytes_per_sector; }
  std::string label() const override { return segs_[0].file->path(); }
  ImageInfo info() const override;
  std::vector<ByteRange> unreadable_ranges() const override { return unreadable_; }
  std::vector<StoredDigest> stored_digests() const override;

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  uint32_t max_table_entries() const {
    uint32_t m = 1;
    for (const TableRef& t : tables_) m = std::max(m, t.count);
    return m;
  }
  uint64_t chunk_len(uint64_t c) const { return std::min(chunk_bytes_, size_ - c * chunk_bytes_); }
  const File& file_of(const TableRef& t) const { return *segs_[t.segment].file; }

  ChunkLoc locate(uint64_t chunk) const;
  std::shared_ptr<const LoadedTable> load_table(size_t t) const;
  // Reads and checks one copy of table `t`'s entries; empty string when
  // good, else what is wrong.
  std::string load_entries(const TableRef& t, bool mirror, LoadedTable& out) const;
  uint8_t classify(const ChunkLoc& loc, uint64_t chunk) const;
  const ZeroChunkEncodings& zero_encodings() const {
    std::call_once(zero_once_, [&] { zero_ = std::make_unique<ZeroChunkEncodings>(chunk_bytes_); });
    return *zero_;
  }
  // Bytes of the file to read for a chunk stored at [start, end).
  uint64_t stored_read_len(const LoadedTable& t, uint32_t i, uint64_t chunk) const;
  // Decodes chunk `chunk` from its stored bytes into dst (room for
  // chunk_bytes_). Reports or throws damage.
  void decode(const ChunkLoc& loc, uint64_t chunk, const uint8_t* src, size_t src_len,
              uint8_t* dst) const;
  void damaged(const ChunkLoc& loc, uint64_t chunk, const std::string& what) const;
  std::shared_ptr<const std::vector<uint8_t>> cached_chunk(const ChunkLoc& loc,
                                                           uint64_t chunk) const;
  // Reads whole chunks [chunk, chunk + n) that lie back to back in one file
  // into dst; returns how many it did (at least 1).
  uint64_t read_run(const ChunkLoc& loc, uint64_t chunk, uint64_t n, uint8_t* dst) const;

  std::vector<Segment> segs_;
  Volume vol_;
  std::vector<TableRef> tables_;
  Parsed parsed_;
  WarningSink warn_;
  std::function<void(const DamagedData&)> on_damage_;
  uint64_t chunk_bytes_;
  uint64_t size_;
  uint64_t chunk_count_;
  std::vector<ByteRange> unreadable_;
  mutable LruCache<uint64_t, std::vector<uint8_t>> chunk_cache_;
  mutable LruCache<size_t, LoadedTable> table_cache_;
  mutable std::once_flag zero_once_;
  mutable std::unique_ptr<ZeroChunkEncodings> zero_;
  mutable ScratchPool scratch_;
  mutable std::mutex warned_mu_;
  mutable std::vector<size_t> warned_tables_;
};

ChunkLoc E01Device::locate(uint64_t chunk) const {
  auto it = std::upper_bound(tables_.begin(), tables_.end(), chunk,
                             [](uint64_t c, const TableRef& t) { return c < t.first_chunk; });
  // The walk checked that the tables cover every chunk in order.
  const size_t t = static_cast<size_t>(it - tables_.begin()) - 1;
  ChunkLoc loc;
  loc.table = load_table(t);
  loc.ref = &tables_[t];
  loc.index = static_cast<uint32_t>(chunk - tables_[t].first_chunk);
  return loc;
}

std::string E01Device::load_entries(const TableRef& t, bool mirror, LoadedTable& out) const {
  const File& f = file_of(t);
  const uint64_t entries_off = mirror ? t.mirror_entries_offset : t.entries_offset;
  const uint32_t n = t.count;
  const bool footer = t.sectors_layout;
  std::vector<uint8_t> raw(size_t{n} * kTableEntrySize + (footer ? 4 : 0));
  f.read_at(entries_off, raw.data(), raw.size());
  if (footer) {
    const uint32_t stored = load_le32(raw.data() + size_t{n} * kTableEntrySize);
    const uint32_t computed = adler32(raw.data(), size_t{n} * kTableEntrySize);
    if (stored != computed) {
      return "entry array checksum " + hex(stored, 8) + " does not match " + hex(computed, 8);
    }
  }
  out.raw.resize(n);
  for (uint32_t i = 0; i < n; ++i) out.raw[i] = load_le32(raw.data() + size_t{i} * 4);
  out.base = mirror ? t.mirror_base : t.base;
  out.data_end = t.data_end;
  out.overflow_from = n;
  for (uint32_t i = 1; i < n; ++i) {
    const uint64_t prev = out.base + (out.raw[i - 1] & kEntryOffsetMask);
    const uint64_t cur31 = out.base + (out.raw[i] & kEntryOffsetMask);
    const uint64_t cur32 = out.base + out.raw[i];
    if (cur31 <= prev && cur32 > prev && prev - out.base >= (uint64_t{1} << 30)) {
      out.overflow_from = i;
      break;
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t s = out.start(i), e = out.end(i);
    if (s < t.data_start || s >= t.data_end) {
      return "entry " + std::to_string(i) + " (chunk " + std::to_string(t.first_chunk + i) +
             ") points at offset " + std::to_string(s) + ", outside the chunk data [" +
             std::to_string(t.data_start) + ", " + std::to_string(t.data_end) + ")";
    }
    if (e <= s) {
      return "entry " + std::to_string(i + 1) + " (chunk " + std::to_string(t.first_chunk + i + 1) +
             ") does not come after entry " + std::to_string(i);
    }
  }
  out.state = std::make_unique<std::atomic<uint8_t>[]>(n);
  for (uint32_t i = 0; i < n; ++i) out.state[i].store(kStateUnknown, std::memory_order_relaxed);
  return "";
}

std::shared_ptr<const LoadedTable> E01Device::load_table(size_t t) const {
  if (auto hit = table_cache_.get(t)) return hit;
  const TableRef& ref = tables_[t];
  auto table = std::make_shared<LoadedTable>();
  std::string problem;
  if (ref.header_ok)
    problem = load_entries(ref, false, *table);
  else
    problem = "table header checksum does not match";
  if (!problem.empty()) {
    if (!ref.has_mirror || !ref.mirror_header_ok || ref.mirror_count != ref.count) {
      throw_corrupt(file_of(ref).path(), ref.section_offset, "table section: " + problem);
    }
    std::string mirror_problem = load_entries(ref, true, *table);
    if (!mirror_problem.empty()) {
      throw_corrupt(file_of(ref).path(), ref.section_offset,
                    "table section: " + problem + "; its table2 copy at offset " +
                        std::to_string(ref.mirror_section_offset) + " too: " + mirror_problem);
    }
    std::lock_guard<std::mutex> lock(warned_mu_);
    if (std::find(warned_tables_.begin(), warned_tables_.end(), t) == warned_tables_.end()) {
      warned_tables_.push_back(t);
      warn_(file_of(ref).path() + ": at offset " + std::to_string(ref.section_offset) +
            ": table section damaged (" + problem + "); using its table2 copy at offset " +
            std::to_string(ref.mirror_section_offset));
    }
  }
  return table_cache_.put(t, std::move(table));
}

uint64_t E01Device::stored_read_len(const LoadedTable& t, uint32_t i, uint64_t chunk) const {
  const uint64_t avail = t.end(i) - t.start(i);
  const uint64_t len = chunk_len(chunk);
  // A compressed stream ends by itself; bytes past the next entry (the last
  // entry of a table runs to the end of its area) are not ours to read.
  uint64_t want = t.compressed(i) ? chunk_bytes_ + chunk_bytes_ / 16 + 1024 : len + 4;
  // libewf stores the partial sector at the end of a media that is not a
  // whole number of sectors in the last chunk: allow it to be that long.
  if (!t.compressed(i) && chunk + 1 == chunk_count_) want += vol_.bytes_per_sector;
  return std::min(avail, want);
}

void E01Device::damaged(const ChunkLoc& loc, uint64_t chunk, const std::string& what) const {
  const std::string& path = file_of(*loc.ref).path();
  const uint64_t at = loc.table->start(loc.index);
  const std::string msg = "chunk " + std::to_string(chunk) + " (media offset " +
                          std::to_string(chunk * chunk_bytes_) + "): " + what;
  if (!on_damage_) throw_corrupt(path, at, msg);
  on_damage_(DamagedData{chunk * chunk_bytes_, chunk_len(chunk), format_error(path, at, msg)});
}

void E01Device::decode(const ChunkLoc& loc, uint64_t chunk, const uint8_t* src, size_t src_len,
                       uint8_t* dst) const {
  const uint64_t len = chunk_len(chunk);
  if (loc.table->compressed(loc.index)) {
    g_inflated.fetch_add(1, std::memory_order_relaxed);
    std::optional<size_t> got = inflate_zlib(src, src_len, dst, static_cast<size_t>(chunk_bytes_));
    if (got && *got >= len) return;
    std::memset(dst, 0, static_cast<size_t>(len));
    damaged(loc, chunk,
            got ? "compressed data inflates to " + std::to_string(*got) + " bytes, not " +
                      std::to_string(len)
                : std::string("compressed data is damaged (zlib stream or its Adler-32)"));
    return;
  }
  if (src_len < len + 4) {
    std::memset(dst, 0, static_cast<size_t>(len));
    damaged(loc, chunk,
            "stored chunk is " + std::to_string(src_len) + " bytes, needs " +
                std::to_string(len + 4) + " (data and Adler-32)");
    return;
  }
  std::memcpy(dst, src, static_cast<size_t>(len));
  const uint32_t computed = adler32(src, static_cast<size_t>(len));
  const uint32_t stored = load_le32(src + len);
  if (computed == stored) return;
  if (chunk + 1 == chunk_count_ && src_len > len + 4 &&
      adler32(src, src_len - 4) == load_le32(src + src_len - 4)) {
    return;  // the last chunk with libewf's partial sector
  }
  damaged(loc, chunk,
          "stored Adler-32 " + hex(stored, 8) + " does not match the data's " + hex(computed, 8));
}

std::shared_ptr<const std::vector<uint8_t>> E01Device::cached_chunk(const ChunkLoc& loc,
                                                                    uint64_t chunk) const {
  if (auto hit = chunk_cache_.get(chunk)) return hit;
  const LoadedTable& t = *loc.table;
  const uint64_t n = stored_read_len(t, loc.index, chunk);
  Scratch src(scratch_);
  src->resize(static_cast<size_t>(n));
  file_of(*loc.ref).read_at(t.start(loc.index), src->data(), src->size());
  auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(chunk_bytes_));
  decode(loc, chunk, src->data(), src->size(), out->data());
  return chunk_cache_.put(chunk, std::move(out));
}

uint64_t E01Device::read_run(const ChunkLoc& loc, uint64_t chunk, uint64_t n, uint8_t* dst) const {
  const LoadedTable& t = *loc.table;
  // Chunks of the same table that follow each other in the file, none known
  // to be zero (those are filled without reading).
  uint64_t k = 1;
  while (k < n && loc.index + k < t.count() &&
         t.state[loc.index + k].load(std::memory_order_relaxed) != kStateZero &&
         t.start(static_cast<uint32_t>(loc.index + k)) ==
             t.end(static_cast<uint32_t>(loc.index + k - 1)) &&
         t.end(static_cast<uint32_t>(loc.index + k)) - t.start(loc.index) <= kMaxRunBytes) {
    ++k;
  }
  const uint32_t last = static_cast<uint32_t>(loc.index + k - 1);
  const uint64_t from = t.start(loc.index);
  const uint64_t to = t.start(last) + stored_read_len(t, last, chunk + k - 1);
  Scratch src(scratch_);
  src->resize(static_cast<size_t>(to - from));
  file_of(*loc.ref).read_at(from, src->data(), src->size());
  for (uint64_t j = 0; j < k; ++j) {
    const uint32_t i = static_cast<uint32_t>(loc.index + j);
    ChunkLoc one{loc.table, i, loc.ref};
    const uint64_t s = t.start(i) - from;
    const uint64_t len = (j + 1 < k ? t.end(i) : to) - t.start(i);
    decode(one, chunk + j, src->data() + s, static_cast<size_t>(len), dst + j * chunk_bytes_);
  }
  return k;
}

void E01Device::do_read(uint64_t offset, void* out, size_t len) const {
  auto* buf = static_cast<uint8_t*>(out);
  while (len > 0) {
    const uint64_t chunk = offset / chunk_bytes_;
    const uint64_t in = offset - chunk * chunk_bytes_;
    const uint64_t clen = chunk_len(chunk);
    ChunkLoc loc = locate(chunk);
    if (loc.table->state[loc.index].load(std::memory_order_relaxed) == kStateZero) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len, clen - in));
      std::memset(buf, 0, n);
      offset += n, buf += n, len -= n;
      continue;
    }
    if (in == 0 && clen == chunk_bytes_ && len >= chunk_bytes_) {
      const uint64_t whole = len / chunk_bytes_;
      const uint64_t done = read_run(loc, chunk, whole, buf);
      const size_t n = static_cast<size_t>(done * chunk_bytes_);
      offset += n, buf += n, len -= n;
      continue;
    }
    auto data = cached_chunk(loc, chunk);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, clen - in));
    std::memcpy(buf, data->data() + in, n);
    offset += n, buf += n, len -= n;
  }
}

uint8_t E01Device::classify(const ChunkLoc& loc, uint64_t chunk) const {
  const LoadedTable& t = *loc.table;
  const uint8_t st = t.state[loc.index].load(std::memory_order_relaxed);
  if (st != kStateUnknown) return st;
  if (!t.compressed(loc.index)) {
    t.state[loc.index].store(kStateData, std::memory_order_relaxed);
    return kStateData;
  }
  // A compressed chunk of zeros is tiny; anything larger holds data.
  const uint64_t small = std::max<uint64_t>(chunk_bytes_ / 64, 512);
  auto is_candidate = [&](uint32_t i) {
    return t.compressed(i) && t.end(i) - t.start(i) <= small &&
           t.state[i].load(std::memory_order_relaxed) == kStateUnknown;
  };
  if (!is_candidate(loc.index)) {
    t.state[loc.index].store(kStateData, std::memory_order_relaxed);
    return kStateData;
  }
  // Read the small chunks that follow in one window and classify them all:
  // a sparse disk is long runs of them.
  const uint64_t from = t.start(loc.index);
  uint32_t last = loc.index;
  while (last + 1 < t.count() && is_candidate(last + 1) && t.start(last + 1) == t.end(last) &&
         t.end(last + 1) - from <= kZeroProbeWindow) {
    ++last;
  }
  Scratch win(scratch_);
  win->resize(static_cast<size_t>(t.end(last) - from));
  file_of(*loc.ref).read_at(from, win->data(), win->size());
  const ZeroChunkEncodings& zero = zero_encodings();
  std::vector<uint8_t> inflated;
  for (uint32_t i = loc.index; i <= last; ++i) {
    const uint8_t* p = win->data() + (t.start(i) - from);
    const size_t n = static_cast<size_t>(t.end(i) - t.start(i));
    const uint64_t c = chunk + (i - loc.index);
    const uint64_t clen = chunk_len(c);
    bool is_zero_chunk = false;
    if (clen == chunk_bytes_ && zero.matches(p, n)) {
      is_zero_chunk = true;
    } else {
      // Another writer's zeros, or small data: inflate once and remember.
      inflated.resize(static_cast<size_t>(chunk_bytes_));
      g_inflated.fetch_add(1, std::memory_order_relaxed);
      std::optional<size_t> got = inflate_zlib(p, n, inflated.data(), inflated.size());
      is_zero_chunk = got && *got >= clen && is_zero(inflated.data(), static_cast<size_t>(clen));
    }
    t.state[i].store(is_zero_chunk ? kStateZero : kStateData, std::memory_order_relaxed);
  }
  return t.state[loc.index].load(std::memory_order_relaxed);
}

Extent E01Device::do_block_status(uint64_t offset, uint64_t len) const {
  uint64_t chunk = offset / chunk_bytes_;
  ChunkLoc loc = locate(chunk);
  const uint8_t type = classify(loc, chunk);
  uint64_t end = std::min(size_, (chunk + 1) * chunk_bytes_);
  for (uint64_t steps = 0; end < offset + len && steps < kMaxStatusChunks; ++steps) {
    const uint64_t next = end / chunk_bytes_;
    if (loc.index + 1 < loc.table->count()) {
      ++loc.index;
    } else {
      loc = locate(next);
    }
    if (classify(loc, next) != type) break;
    end = std::min(size_, (next + 1) * chunk_bytes_);
  }
  return Extent{std::min(end, offset + len) - offset,
                type == kStateZero ? ExtentType::kZero : ExtentType::kData};
}

std::vector<StoredDigest> E01Device::stored_digests() const {
  std::vector<StoredDigest> out;
  const auto& p = parsed_;
  if (p.md5_digest) {
    out.push_back({"md5", hex_bytes(p.md5_digest->data(), 16), "digest section"});
  } else if (p.md5_hash) {
    out.push_back({"md5", hex_bytes(p.md5_hash->data(), 16), "hash section"});
  }
  if (p.sha1) out.push_back({"sha1", hex_bytes(p.sha1->data(), 20), "digest section"});
  return out;
}

const char* media_type_name(uint8_t t) {
  switch (t) {
    case kMediaRemovable:
      return "removable";
    case kMediaFixed:
      return "fixed";
    case kMediaOptical:
      return "optical";
    case kMediaLogical:
      return "logical";
    case kMediaMemory:
      return "memory";
  }
  return "unknown";
}

// Which program most likely wrote the set, from the sections it has
// (EWF document, "Section types" and the per-writer notes).
std::string writer_guess(const Parsed& p, const Volume& v) {
  if (v.smart_layout) return v.smart_signature ? "SMART" : "EWF (ASR Data)";
  if (p.has_xheader) return "libewf EWF-X";
  if (p.header2) {
    const CaseMetadata& m = *p.header2;
    if (m.categories <= 1) return "EnCase 4";
    if (!m.get("md")) return "EnCase 5";
    if (p.sha1 || p.md5_digest) return "EnCase 6.12+ or 7";
    return "EnCase 6";
  }
  if (p.header) {
    if (p.header->categories >= 3) return p.header->get("md") ? "linen 6-7" : "linen 5";
    if (p.header->get("r")) return "FTK Imager or EnCase 2-3";
    return "EnCase 1-3";
  }
  return "unknown";
}

ImageInfo E01Device::info() const {
  ImageInfo info;
  info.path = segs_[0].file->path();
  info.format = "e01";
  info.subformat = vol_.smart_layout && vol_.smart_signature ? "EWF-S01" : "EWF-E01";
  info.virtual_size = size_;
  for (const Segment& s : segs_) info.actual_size += s.file->allocated_on_host();
  Json& d = info.details;
  d.set("written_by", writer_guess(parsed_, vol_));
  if (parsed_.header2 || parsed_.header) {
    // header2 is Unicode and the richer one; header fills what it lacks.
    Json c = parsed_.header2 ? case_metadata_json(*parsed_.header2) : Json::object();
    if (parsed_.header) {
      Json h = case_metadata_json(*parsed_.header);
      for (const auto& [k, v] : h.as_object()) {
        if (!c.find(k)) c.set(k, v);
      }
      if (parsed_.header2) c.set("source", "header2, header");
    }
    d.set("case", std::move(c));
  }
  if (!vol_.smart_layout) {
    d.set("media_type", media_type_name(vol_.media_type));
    Json flags = Json::array();
    if (vol_.media_flags & kFlagImage) flags.push("image");
    if (vol_.media_flags & kFlagPhysical) flags.push("physical");
    if (vol_.media_flags & kFlagFastbloc) flags.push("fastbloc");
    if (vol_.media_flags & kFlagTableau) flags.push("tableau");
    d.set("media_flags", std::move(flags));
  }
  d.set("bytes_per_sector", vol_.bytes_per_sector);
  d.set("sector_count", vol_.sector_count);
  d.set("sectors_per_chunk", vol_.sectors_per_chunk);
  d.set("chunk_size", chunk_bytes_);
  d.set("chunk_count", chunk_count_);
  if (!vol_.smart_layout) {
    d.set("compression", vol_.compression_level == kCompressionNone   ? "none"
                         : vol_.compression_level == kCompressionFast ? "fast"
                         : vol_.compression_level == kCompressionBest ? "best"
                                                                      : "unknown");
    if (vol_.error_granularity) d.set("error_granularity", vol_.error_granularity);
    Guid g = Guid::decode(vol_.set_identifier.data(), GuidByteOrder::kMixedEndian);
    if (!g.is_nil()) d.set("set_identifier", g.to_string());
    if (vol_.cylinders || vol_.heads || vol_.chs_sectors) {
      d.set("geometry", std::to_string(vol_.cylinders) + "/" + std::to_string(vol_.heads) + "/" +
                            std::to_string(vol_.chs_sectors));
    }
  }
  Json hashes = Json::object();
  for (const StoredDigest& h : stored_digests()) hashes.set(h.algo, h.hex);
  if (parsed_.md5_hash && parsed_.md5_digest && *parsed_.md5_hash != *parsed_.md5_digest) {
    hashes.set("md5_hash_section", hex_bytes(parsed_.md5_hash->data(), 16));
  }
  d.set("stored_hashes", std::move(hashes));
  if (!parsed_.errors.empty()) {
    Json e = Json::object();
    uint64_t bytes = 0;
    Json list = Json::array();
    for (const ByteRange& r : unreadable_) {
      bytes += r.length;
      Json j = Json::object();
      j.set("start", r.start);
      j.set("length", r.length);
      j.set("first_sector", r.start / vol_.bytes_per_sector);
      j.set("sectors", div_round_up(r.length, vol_.bytes_per_sector));
      list.push(std::move(j));
    }
    e.set("count", static_cast<uint64_t>(unreadable_.size()));
    e.set("bytes", bytes);
    e.set("ranges", std::move(list));
    d.set("acquisition_errors", std::move(e));
  }
  if (!parsed_.sessions.empty()) {
    Json s = Json::array();
    for (const SessionEntry& e : parsed_.sessions) {
      Json j = Json::object();
      j.set("first_sector", e.first_sector);
      j.set("type", (e.flags & 1) ? "audio" : "data");
      s.push(std::move(j));
    }
    d.set("sessions", std::move(s));
  }
  if (parsed_.incomplete) d.set("incomplete", true);
  d.set("tables", static_cast<uint64_t>(tables_.size()));
  Json segs = Json::array();
  for (const Segment& s : segs_) {
    Json j = Json::object();
    j.set("number", s.number);
    j.set("path", s.file->path());
    j.set("size", s.file->size());
    segs.push(std::move(j));
  }
  d.set("segments", std::move(segs));
  if (!parsed_.unknown_sections.empty()) {
    Json u = Json::array();
    for (const auto& s : parsed_.unknown_sections) u.push(s);
    d.set("unknown_sections", std::move(u));
  }
  return info;
}

// ---- Opening -------------------------------------------------------------

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

// Walks the sections of one segment file (EWF 3), appending what it finds
// to `p`. Returns true when the segment ends with "next" (another follows),
// false for "done".
class SegmentWalker {
 public:
  SegmentWalker(Parsed& p, const OpenOptions& opts) : p_(p), opts_(opts) {}

  bool walk(size_t seg_index) {
    const File& f = *p_.segments[seg_index].file;
    const std::string& path = f.path();
    const uint64_t fsize = f.size();
    uint64_t off = kFileHeaderSize;
    uint64_t sectors_start = 0, sectors_end = 0;  // last sectors section's data
    bool have_sectors = false;
    std::string prev_type;
    for (;;) {
      if (off + kSectionDescriptorSize > fsize) {
        throw_corrupt(path, off,
                      off == fsize ? "segment ends without a done or next section (truncated?)"
                                   : "section descriptor runs past the end of the file "
                                     "(truncated segment?)");
      }
      uint8_t raw[kSectionDescriptorSize];
      f.read_at(off, raw, sizeof raw);
      const SectionDescriptor sd = decode_section_descriptor(raw);
      if (!sd.valid()) {
        throw_corrupt(path, off + kSdChecksum,
                      "section descriptor checksum " + hex(sd.checksum, 8) +
                          " does not match its bytes' Adler-32 " + hex(sd.computed, 8) +
                          " (type '" + printable(sd.type) + "')");
      }
      const std::string& type = sd.type;
      if (type == "done" || type == "next") {
        if (type == "done") return false;
        return true;
      }
      if (sd.next <= off || sd.next > fsize) {
        throw_corrupt(path, off + kSdNext,
                      "section '" + printable(type) + "' names the next section at " +
                          std::to_string(sd.next) + ", not after it and inside the file (" +
                          std::to_string(fsize) + " bytes)");
      }
      // EWF "Dual image": the size and the next offset must agree, else two
      // readers could see two different images in one file. Expert Witness
      // 1.35 leaves the size 0.
      if (sd.size != 0 && sd.size != sd.next - off) {
        throw_corrupt(path, off + kSdSize,
                      "section '" + printable(type) + "' size " + std::to_string(sd.size) +
                          " disagrees with its next section offset " + std::to_string(sd.next) +
                          " (" + std::to_string(sd.next - off) + " bytes on)");
      }
      const uint64_t data = off + kSectionDescriptorSize;
      const uint64_t end = sd.next;
      if (end < data) {
        throw_corrupt(path, off + kSdNext,
                      "section '" + printable(type) + "' is shorter than its descriptor");
      }
      const uint64_t dlen = end - data;
      if (type == "header" || type == "header2") {
        read_header(f, type, data, dlen);
      } else if (type == "xheader" || type == "xhash") {
        p_.has_xheader = true;
      } else if (type == "volume" || type == "disk") {
        read_volume(f, seg_index, type, data, dlen);
      } else if (type == "data") {
        check_data(f, seg_index, data, dlen);
      } else if (type == "sectors") {
        have_sectors = true;
        sectors_start = data;
        sectors_end = end;
      } else if (type == "table") {
        read_table(f, seg_index, off, data, dlen, end, have_sectors, sectors_start, sectors_end);
      } else if (type == "table2") {
        read_table2(f, seg_index, off, data, dlen, prev_type);
      } else if (type == "hash") {
        read_hash(f, data, dlen);
      } else if (type == "digest") {
        read_digest(f, data, dlen);
      } else if (type == "error2") {
        read_error2(f, data, dlen);
      } else if (type == "session") {
        read_session(f, data, dlen);
      } else if (type == "incomplete") {
        p_.incomplete = true;
        opts_.warn(path + ": at offset " + std::to_string(off) +
                   ": an 'incomplete' section: the acquisition may not have finished");
      } else if (type == "ltree" || type == "ltypes" || type == "map") {
        throw Error(ErrorKind::kUnsupported, path, off,
                    "an EWF-L01 logical evidence section ('" + type +
                        "'): files, not a disk image; vdisk reads disk images only");
      } else if (std::find(p_.unknown_sections.begin(), p_.unknown_sections.end(),
                           printable(type)) == p_.unknown_sections.end()) {
        p_.unknown_sections.push_back(printable(type));
      }
      prev_type = type;
      off = end;
    }
  }

 private:
  void read_header(const File& f, const std::string& type, uint64_t data, uint64_t dlen) {
    auto& slot = type == "header2" ? p_.header2 : p_.header;
    if (slot) return;  // the first good copy counts (EnCase writes two)
    if (dlen == 0 || dlen > kMaxHeaderStored) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + type + " section of " +
                 std::to_string(dlen) + " bytes ignored");
      return;
    }
    std::vector<uint8_t> raw(static_cast<size_t>(dlen));
    f.read_at(data, raw.data(), raw.size());
    auto text = inflate_zlib_bounded(raw.data(), raw.size(), kMaxHeaderText);
    if (!text) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + type +
                 " section does not inflate; its case metadata is not shown");
      return;
    }
    const std::string utf8 =
        type == "header2" ? header2_text_to_utf8(*text) : header_text_to_utf8(*text);
    slot = parse_case_metadata(utf8, type);
  }

  void read_volume(const File& f, size_t seg, const std::string& type, uint64_t data,
                   uint64_t dlen) {
    if (p_.volume) return;  // a disk section besides a volume section: the first counts
    const size_t n = dlen >= kVolumeE01Size ? kVolumeE01Size : kVolumeS01Size;
    if (dlen < kVolumeS01Size) {
      throw_corrupt(f.path(), data,
                    type + " section holds " + std::to_string(dlen) + " bytes, fewer than " +
                        std::to_string(kVolumeS01Size));
    }
    if (seg != 0) {
      throw_corrupt(f.path(), data - kSectionDescriptorSize,
                    "a " + type + " section outside the first segment");
    }
    uint8_t raw[kVolumeE01Size];
    f.read_at(data, raw, n);
    std::optional<Volume> v = decode_volume(raw, n);
    if (!v->checksum_ok) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + type +
                 " section checksum does not match (its values are checked one by one)");
    }
    p_.volume = v;
    p_.volume_section = type;
  }

  // EWF "data section": a copy of the volume section in every segment but
  // the first. It must describe the same image: else the segment belongs to
  // another set.
  void check_data(const File& f, size_t seg, uint64_t data, uint64_t dlen) {
    if (!p_.volume || dlen < kVolumeE01Size || p_.volume->smart_layout) return;
    uint8_t raw[kVolumeE01Size];
    f.read_at(data, raw, sizeof raw);
    Volume v = *decode_volume(raw, sizeof raw);
    const Volume& want = *p_.volume;
    std::string what;
    if (v.set_identifier != want.set_identifier) {
      what = "set identifier " +
             Guid::decode(v.set_identifier.data(), GuidByteOrder::kMixedEndian).to_string() +
             ", not " +
             Guid::decode(want.set_identifier.data(), GuidByteOrder::kMixedEndian).to_string();
    } else if (v.sector_count != want.sector_count) {
      what = std::to_string(v.sector_count) + " sectors, not " + std::to_string(want.sector_count);
    } else if (v.chunk_count != want.chunk_count || v.sectors_per_chunk != want.sectors_per_chunk ||
               v.bytes_per_sector != want.bytes_per_sector) {
      what = "a different chunk layout";
    }
    if (what.empty()) return;
    if (seg == 0) {
      throw_corrupt(f.path(), data,
                    "the data section (the volume section's copy) disagrees with the volume "
                    "section: " +
                        what);
    }
    throw_corrupt(f.path(), data,
                  "segment " + std::to_string(p_.segments[seg].number) +
                      " belongs to another image: its data section says " + what);
  }

  void read_table(const File& f, size_t seg, uint64_t off, uint64_t data, uint64_t dlen,
                  uint64_t end, bool have_sectors, uint64_t sec_start, uint64_t sec_end) {
    if (dlen < kTableHeaderSize) {
      throw_corrupt(f.path(), data, "table section too short for its header");
    }
    uint8_t raw[kTableHeaderSize];
    f.read_at(data, raw, sizeof raw);
    TableHeader h = decode_table_header(raw);
    TableRef t;
    t.segment = static_cast<uint32_t>(seg);
    t.section_offset = off;
    t.entries_offset = data + kTableHeaderSize;
    t.header_ok = h.checksum_ok;
    t.count = h.entry_count;
    t.base = h.base_offset;
    t.sectors_layout = have_sectors;
    const uint64_t entries_room = dlen - kTableHeaderSize - (have_sectors ? 4 : 0);
    if (t.header_ok && (have_sectors ? dlen < kTableHeaderSize + 4 : false)) t.header_ok = false;
    if (t.header_ok && uint64_t{t.count} * kTableEntrySize > entries_room) {
      throw_corrupt(f.path(), data + kThEntryCount,
                    "table holds " + std::to_string(t.count) + " entries, room for " +
                        std::to_string(entries_room / kTableEntrySize));
    }
    if (have_sectors) {
      t.data_start = sec_start;
      t.data_end = sec_end;
    } else {
      t.data_start = t.entries_offset + uint64_t{t.count} * kTableEntrySize;
      t.data_end = end;
    }
    if (!t.header_ok) t.count = 0;  // count and base come from the table2 copy, if one follows
    p_.tables.push_back(t);
  }

  void read_table2(const File& f, size_t seg, uint64_t off, uint64_t data, uint64_t dlen,
                   const std::string& prev_type) {
    if (prev_type != "table" || p_.tables.empty() || dlen < kTableHeaderSize) return;
    TableRef& t = p_.tables.back();
    if (t.segment != seg) return;
    uint8_t raw[kTableHeaderSize];
    f.read_at(data, raw, sizeof raw);
    TableHeader h = decode_table_header(raw);
    t.has_mirror = true;
    t.mirror_section_offset = off;
    t.mirror_entries_offset = data + kTableHeaderSize;
    t.mirror_base = h.base_offset;
    t.mirror_count = h.entry_count;
    t.mirror_header_ok = h.checksum_ok && uint64_t{h.entry_count} * kTableEntrySize +
                                                  kTableHeaderSize + (t.sectors_layout ? 4 : 0) <=
                                              dlen;
    if (!t.header_ok && t.mirror_header_ok) {
      opts_.warn(f.path() + ": at offset " + std::to_string(t.section_offset) +
                 ": table header checksum does not match; using its table2 copy at offset " +
                 std::to_string(off));
      t.count = h.entry_count;
      t.base = h.base_offset;
      if (!t.sectors_layout) t.data_start = t.entries_offset + uint64_t{t.count} * kTableEntrySize;
    }
  }

  template <size_t N>
  bool read_checked(const File& f, const std::string& what, uint64_t data, uint64_t dlen,
                    size_t need, size_t checksum_at, std::array<uint8_t, N>& raw) {
    if (dlen < need) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + what +
                 " section too short; ignored");
      return false;
    }
    f.read_at(data, raw.data(), need);
    if (load_le32(raw.data() + checksum_at) != adler32(raw.data(), checksum_at)) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + what +
                 " section checksum does not match; its hash is ignored");
      return false;
    }
    return true;
  }

  void read_hash(const File& f, uint64_t data, uint64_t dlen) {
    std::array<uint8_t, kHashSize> raw{};
    if (!read_checked(f, "hash", data, dlen, kHashSize, 32, raw)) return;
    std::array<uint8_t, 16> md5;
    std::memcpy(md5.data(), raw.data(), 16);
    p_.md5_hash = md5;
  }

  void read_digest(const File& f, uint64_t data, uint64_t dlen) {
    std::array<uint8_t, kDigestSize> raw{};
    if (!read_checked(f, "digest", data, dlen, kDigestSize, 76, raw)) return;
    std::array<uint8_t, 16> md5;
    std::array<uint8_t, 20> sha1;
    std::memcpy(md5.data(), raw.data(), 16);
    std::memcpy(sha1.data(), raw.data() + 16, 20);
    // A zero digest means "not computed" (libewf writes the section with
    // only the MD5 when SHA-1 was not asked for).
    if (!is_zero(md5.data(), 16)) p_.md5_digest = md5;
    if (!is_zero(sha1.data(), 20)) p_.sha1 = sha1;
  }

  // A counted list with a checksummed header and footer (error2, session).
  bool read_list(const File& f, const std::string& what, uint64_t data, uint64_t dlen,
                 size_t header_size, size_t header_checksum, size_t entry_size,
                 std::vector<uint8_t>& entries) {
    if (dlen < header_size) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + what +
                 " section too short; ignored");
      return false;
    }
    std::vector<uint8_t> head(header_size);
    f.read_at(data, head.data(), head.size());
    if (load_le32(head.data() + header_checksum) != adler32(head.data(), header_checksum)) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + what +
                 " header checksum does not match; ignored");
      return false;
    }
    const uint64_t n = load_le32(head.data());
    if (n > kMaxListEntries || header_size + n * entry_size + 4 > dlen) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data) + ": " + what + " section of " +
                 std::to_string(dlen) + " bytes cannot hold " + std::to_string(n) +
                 " entries; ignored");
      return false;
    }
    entries.resize(static_cast<size_t>(n * entry_size + 4));
    f.read_at(data + header_size, entries.data(), entries.size());
    const size_t body = static_cast<size_t>(n * entry_size);
    if (load_le32(entries.data() + body) != adler32(entries.data(), body)) {
      opts_.warn(f.path() + ": at offset " + std::to_string(data + header_size) + ": " + what +
                 " entries checksum does not match; ignored");
      return false;
    }
    entries.resize(body);
    return true;
  }

  void read_error2(const File& f, uint64_t data, uint64_t dlen) {
    std::vector<uint8_t> e;
    if (!read_list(f, "error2", data, dlen, kError2HeaderSize, kError2HeaderChecksum,
                   kError2EntrySize, e)) {
      return;
    }
    for (size_t i = 0; i < e.size(); i += kError2EntrySize) {
      p_.errors.push_back({load_le32(e.data() + i), load_le32(e.data() + i + 4)});
    }
  }

  void read_session(const File& f, uint64_t data, uint64_t dlen) {
    std::vector<uint8_t> e;
    if (!read_list(f, "session", data, dlen, kSessionHeaderSize, kSessionHeaderChecksum,
                   kSessionEntrySize, e)) {
      return;
    }
    for (size_t i = 0; i < e.size(); i += kSessionEntrySize) {
      p_.sessions.push_back({load_le32(e.data() + i), load_le32(e.data() + i + 4)});
    }
  }

  Parsed& p_;
  const OpenOptions& opts_;
};

// Checks a segment's file header; returns its segment number.
uint32_t segment_number(const File& f) {
  uint8_t h[kFileHeaderSize];
  if (f.size() < kFileHeaderSize) {
    throw Error(ErrorKind::kNotThisFormat, f.path(), 0, "file too short for an EWF file header");
  }
  f.read_at(0, h, sizeof h);
  if (std::memcmp(h, kEvf2Signature, 8) == 0 || std::memcmp(h, kLef2Signature, 8) == 0) {
    throw Error(ErrorKind::kUnsupported, f.path(), 0,
                "an EWF2 (Ex01/Lx01, EnCase 7+) file: vdisk reads EWF version 1 (.E01, .s01) "
                "only; convert it with EnCase or libewf's ewfexport");
  }
  if (std::memcmp(h, kLvfSignature, 8) == 0) {
    throw Error(ErrorKind::kUnsupported, f.path(), 0,
                "an EWF-L01 logical evidence file (files, not a disk image): vdisk reads disk "
                "images only");
  }
  if (std::memcmp(h, kEvfSignature, 8) != 0) {
    throw Error(ErrorKind::kNotThisFormat, f.path(), 0, "no EVF signature");
  }
  if (h[kFhStartOfFields] != 0x01 || load_le16(h + kFhEndOfFields) != 0) {
    throw_corrupt(f.path(), kFhStartOfFields,
                  "file header fields are not framed by 0x01 .. 0x0000");
  }
  const uint32_t n = load_le16(h + kFhSegmentNumber);
  if (n == 0) throw_corrupt(f.path(), kFhSegmentNumber, "segment number 0");
  return n;
}

// Checks the volume against what the tables and the file sizes allow.
void check_volume(const Parsed& p, const std::string& path) {
  if (!p.volume) {
    throw_corrupt(path, kFileHeaderSize, "no volume section in the first segment");
  }
  const Volume& v = *p.volume;
  if (v.bytes_per_sector == 0 || v.bytes_per_sector > 65536 ||
      (v.bytes_per_sector & (v.bytes_per_sector - 1)) != 0 || v.bytes_per_sector < 512) {
    throw_corrupt(path, kFileHeaderSize,
                  "volume: bytes per sector " + std::to_string(v.bytes_per_sector) +
                      " is not a power of two from 512 to 65536");
  }
  if (v.sectors_per_chunk == 0) throw_corrupt(path, kFileHeaderSize, "volume: 0 sectors per chunk");
  const uint64_t chunk = uint64_t{v.sectors_per_chunk} * v.bytes_per_sector;
  if (chunk > kMaxChunkBytes) {
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "chunks of " + std::to_string(chunk) + " bytes (" +
                    std::to_string(v.sectors_per_chunk) + " sectors of " +
                    std::to_string(v.bytes_per_sector) + "): vdisk reads chunks up to 16 MiB");
  }
  const uint64_t size =
      checked_mul(v.sector_count, v.bytes_per_sector, path, kFileHeaderSize, "volume sector count");
  const uint64_t need = div_round_up(size, chunk);
  uint64_t have = 0;
  for (const TableRef& t : p.tables) have += t.count;
  if (have != need) {
    throw_corrupt(path, kFileHeaderSize,
                  "the tables list " + std::to_string(have) + " chunks, the volume's " +
                      std::to_string(v.sector_count) + " sectors need " + std::to_string(need));
  }
}

}  // namespace

uint64_t chunks_inflated() {
  return g_inflated.load();
}

int probe_e01(const ProbeInput& in) {
  if (in.head.size() < 8) return 0;
  const uint8_t* h = in.head.data();
  // EWF2 and EWF-L01 are left to the registry's list of foreign containers,
  // which names them; open_e01 refuses them too when forced with -f e01.
  return std::memcmp(h, kEvfSignature, 8) == 0 ? kProbeSignature : 0;
}

BlockDevicePtr open_e01(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string first_path = file->path();
  const uint32_t first_number = segment_number(*file);
  if (first_number != 1) {
    throw Error(ErrorKind::kInvalidArgument, first_path, std::nullopt,
                "this is segment " + std::to_string(first_number) +
                    " of an EWF set; open its first segment (.E01 or .s01)");
  }
  Parsed p;
  p.segments.push_back({std::move(file), 1});
  SegmentWalker walker(p, opts);
  // The extension of the first segment names the others (EWF 2.2).
  const std::string base = path_basename(first_path);
  const size_t dot = base.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : base.substr(dot + 1);
  bool more = walker.walk(0);
  while (more) {
    const uint32_t n = static_cast<uint32_t>(p.segments.size()) + 1;
    const bool named = ext.size() == 3 && ext.substr(1) == "01" &&
                       std::isalpha(static_cast<unsigned char>(ext[0]));
    std::optional<std::string> next_ext = named ? segment_extension(ext[0], n) : std::nullopt;
    if (!next_ext) {
      throw Error(ErrorKind::kNotFound, first_path, std::nullopt,
                  named ? "segment " + std::to_string(n) + " follows, past the last name (." +
                              std::string(1, ext[0]) + "ZZ) segment files can have"
                        : "segment " + std::to_string(n - 1) +
                              " ends with a 'next' section, but the first segment's name does "
                              "not end in .E01 or .s01, so the others cannot be named");
    }
    const std::string name = base.substr(0, dot + 1) + *next_ext;
    const std::string path =
        resolve_sibling(opts, first_path, name, "EWF segment " + std::to_string(n));
    std::shared_ptr<const File> seg;
    try {
      seg = opts.environment().open_read(path);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kNotFound) throw;
      throw Error(ErrorKind::kNotFound, path, std::nullopt,
                  "segment " + std::to_string(n) + " of " + first_path + " is missing (segment " +
                      std::to_string(n - 1) + " ends with a 'next' section)");
    }
    uint32_t got = segment_number(*seg);
    if (got != n) {
      throw_corrupt(path, kFhSegmentNumber,
                    "segment number " + std::to_string(got) + ", expected " + std::to_string(n) +
                        " (a segment of another image, or renamed?)");
    }
    p.segments.push_back({std::move(seg), n});
    more = walker.walk(p.segments.size() - 1);
  }
  // Tables whose header and table2 copy were both damaged have count 0.
  for (const TableRef& t : p.tables) {
    if (!t.header_ok && !(t.has_mirror && t.mirror_header_ok)) {
      throw_corrupt(p.segments[t.segment].file->path(), t.section_offset + kSectionDescriptorSize,
                    "table header checksum does not match and no good table2 copy follows");
    }
  }
  check_volume(p, first_path);
  uint64_t first = 0;
  for (TableRef& t : p.tables) {
    t.first_chunk = first;
    first += t.count;
  }
  // Tables with no entries answer for nothing; drop them so lookups land on
  // a table that holds the chunk.
  p.tables.erase(std::remove_if(p.tables.begin(), p.tables.end(),
                                [](const TableRef& t) { return t.count == 0; }),
                 p.tables.end());
  if (p.volume->chunk_count != first && !p.volume->smart_layout) {
    opts.warn(first_path + ": volume section counts " + std::to_string(p.volume->chunk_count) +
              " chunks, the tables " + std::to_string(first));
  }
  return std::make_shared<E01Device>(std::move(p), opts);
}

}  // namespace vdisk::e01
