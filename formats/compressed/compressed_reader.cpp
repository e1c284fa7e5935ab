#include "formats/compressed/compressed_reader.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "formats/compressed/compressed_layout.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk::compressed {

namespace {

// A span longer than this is decoded in kSubUnit pieces from one running
// decoder; shorter spans are one unit (our writers' 1-4 MiB members, blocks
// and frames; gzip access points about 1 MiB apart).
constexpr uint64_t kMaxUnit = 8 << 20;
constexpr uint64_t kSubUnit = 1 << 20;
// Decoded units kept; with the gzip windows (at most 96 MiB) a mount stays
// well under 256 MiB.
constexpr uint64_t kCacheBytes = 48 << 20;
// Idle decoders kept at the start of the next piece of a long span.
constexpr size_t kMaxCursors = 4;

using Buffer = std::shared_ptr<const std::vector<uint8_t>>;

struct Unit {
  uint64_t start = 0, len = 0;
  size_t point = 0;
  uint64_t end() const { return start + len; }
};

class CompressedDevice final : public BlockDevice {
 public:
  CompressedDevice(std::shared_ptr<const File> file, std::unique_ptr<Codec> codec, StreamIndex idx,
                   std::string index_file)
      : file_(std::move(file)),
        codec_(std::move(codec)),
        idx_(std::move(idx)),
        index_file_(std::move(index_file)) {
    for (auto& r : idx_.zeros) zeros_.emplace(r.first, r.second);
    all_scanned_ = idx_.scanned;
    idx_.zeros.clear();
    idx_.zeros.shrink_to_fit();
  }

  ~CompressedDevice() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  uint64_t size() const override { return idx_.size; }
  std::string label() const override { return file_->path(); }

  ImageInfo info() const override {
    ImageInfo info;
    info.path = file_->path();
    info.format = codec_->name();
    info.virtual_size = idx_.size;
    info.actual_size = file_->allocated_on_host();
    info.details.set("compressed_size", file_->size());
    for (auto& [k, v] : idx_.facts) info.details.set(k, v);
    info.details.set("access_points", static_cast<uint64_t>(idx_.points.size()));
    info.details.set("random_access", random_access_note());
    if (!index_file_.empty()) info.details.set("index_file", index_file_);
    if (!idx_.damage.empty()) {
      info.details.set("damage", idx_.damage);
      info.details.set("readable_up_to", idx_.damaged_at);
    }
    return info;
  }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* out = static_cast<uint8_t*>(buf);
    if (offset + len > idx_.damaged_at) {
      throw Error(ErrorKind::kIo, file_->path(), std::nullopt,
                  "cannot read disk offset " + std::to_string(std::max(offset, idx_.damaged_at)) +
                      ": " + idx_.damage);
    }
    while (len > 0) {
      Unit u = unit_at(offset);
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, u.end() - offset));
      if (known_zero(offset, n)) {
        std::memset(out, 0, n);
      } else {
        Buffer b = get_unit(u, true);
        std::memcpy(out, b->data() + (offset - u.start), n);
      }
      out += n;
      offset += n;
      len -= n;
    }
  }

  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    if (offset >= idx_.damaged_at) return Extent{len, ExtentType::kData};
    len = std::min(len, idx_.damaged_at - offset);
    Unit u = unit_at(offset);
    bool scanned;
    {
      std::lock_guard<std::mutex> lock(mu_);
      scanned = all_scanned_ || scanned_.count(u.start);
    }
    if (!scanned) {
      try {
        (void)get_unit(u, true);
      } catch (const Error&) {
        // The read reports it; status only says "data".
        return Extent{std::min(len, u.end() - offset), ExtentType::kData};
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t end = offset + len;
    if (!all_scanned_) end = std::min(end, u.end());
    auto it = zeros_.upper_bound(offset);
    if (it != zeros_.begin()) {
      auto [as, ae] = aligned(*std::prev(it));
      if (as <= offset && offset < ae) return Extent{std::min(ae, end) - offset, ExtentType::kZero};
      if (as > offset && as < ae) end = std::min(end, as);
    }
    for (; it != zeros_.end() && it->first < end; ++it) {
      auto [as, ae] = aligned(*it);
      if (as < ae) {
        end = std::min(end, as);
        break;
      }
    }
    return Extent{end - offset, ExtentType::kData};
  }

 private:
  std::string random_access_note() const {
    uint64_t longest = 0;
    for (size_t i = 0; i < idx_.points.size(); ++i) {
      uint64_t e = i + 1 < idx_.points.size() ? idx_.points[i + 1].out : idx_.size;
      longest = std::max(longest, e - idx_.points[i].out);
    }
    if (longest > kMaxUnit) {
      return "sequential: a span of " + std::to_string(longest) +
             " bytes decodes only from its start (random reads in it are slow)";
    }
    return "yes";
  }

  // The run shrunk to whole granules (the disk's end counts as aligned).
  std::pair<uint64_t, uint64_t> aligned(const std::pair<const uint64_t, uint64_t>& r) const {
    uint64_t s = div_round_up(r.first, kZeroGranule) * kZeroGranule;
    uint64_t e = r.second == idx_.size ? r.second : align_down(r.second, kZeroGranule);
    return {s, std::max(s, e)};
  }

  bool known_zero(uint64_t offset, uint64_t n) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = zeros_.upper_bound(offset);
    if (it == zeros_.begin()) return false;
    --it;
    return it->first <= offset && it->second >= offset + n;
  }

  uint64_t span_end(size_t point) const {
    return point + 1 < idx_.points.size() ? idx_.points[point + 1].out : idx_.size;
  }

  Unit unit_at(uint64_t off) const {
    auto it = std::upper_bound(idx_.points.begin(), idx_.points.end(), off,
                               [](uint64_t v, const AccessPoint& p) { return v < p.out; });
    size_t i = static_cast<size_t>(it - idx_.points.begin()) - 1;
    uint64_t s = idx_.points[i].out, e = span_end(i);
    if (e - s <= kMaxUnit) return Unit{s, e - s, i};
    uint64_t us = s + (off - s) / kSubUnit * kSubUnit;
    return Unit{us, std::min(kSubUnit, e - us), i};
  }

  // The decoded bytes of `u`, from the cache or decoded now. `foreground`:
  // called for a reader (drives read-ahead), not by a read-ahead worker.
  Buffer get_unit(const Unit& u, bool foreground) const {
    Buffer b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (auto it = cache_.find(u.start); it != cache_.end()) {
          it->second.lru = ++tick_;
          b = it->second.data;
          break;
        }
        // A piece of a long span waits for the piece before it when that is
        // being decoded: its decoder will be left at our start.
        bool prev_busy = u.start > idx_.points[u.point].out && busy_.count(u.start - kSubUnit);
        if (!busy_.count(u.start) && !prev_busy) break;
        cv_.wait(lock);
      }
      if (!b) busy_.insert(u.start);
    }
    if (!b) {
      try {
        b = decode(u);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        busy_.erase(u.start);
        cv_.notify_all();
        throw;
      }
      std::lock_guard<std::mutex> lock(mu_);
      busy_.erase(u.start);
      cv_.notify_all();
    }
    if (foreground) read_ahead(u);
    return b;
  }

  // Decodes `u` (and the pieces before it in its span when no decoder waits
  // at its start), caches what it decoded, records the zero runs.
  Buffer decode(const Unit& u) const {
    std::unique_ptr<Decoder> d;
    uint64_t pos = idx_.points[u.point].out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = cursors_.find(u.start); it != cursors_.end()) {
        d = std::move(it->second);
        cursors_.erase(it);
        pos = u.start;
      }
    }
    if (!d) d = codec_->start(idx_, u.point);
    Buffer result;
    while (pos <= u.start) {
      Unit k = unit_at(pos);
      auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(k.len));
      size_t got = 0;
      while (got < buf->size()) {
        size_t n = d->read(buf->data() + got, buf->size() - got);
        if (n == 0) {
          throw Error(ErrorKind::kIo, file_->path(), std::nullopt,
                      std::string(codec_->name()) + " data ends at disk offset " +
                          std::to_string(k.start + got) + ", before the " +
                          std::to_string(span_end(k.point)) + " bytes its index promises");
        }
        got += n;
      }
      ZeroTracker zt(k.start);
      zt.feed(buf->data(), buf->size());
      Runs runs = zt.finish();
      std::lock_guard<std::mutex> lock(mu_);
      if (!all_scanned_ && !scanned_.count(k.start)) {
        scanned_.insert(k.start);
        for (auto& r : runs) add_zero_run(r.first, r.second);
      }
      insert_cache(k.start, buf);
      if (k.start == u.start) result = buf;
      pos = k.end();
    }
    if (u.end() < span_end(u.point)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cursors_.size() >= kMaxCursors) cursors_.erase(cursors_.begin());
      cursors_.emplace(u.end(), std::move(d));
    }
    return result;
  }

  // Joins [s, e) with the runs it touches (called under mu_).
  void add_zero_run(uint64_t s, uint64_t e) const {
    auto it = zeros_.upper_bound(s);
    if (it != zeros_.begin()) {
      auto p = std::prev(it);
      if (p->second >= s) {
        s = p->first;
        e = std::max(e, p->second);
        zeros_.erase(p);
      }
    }
    while (it != zeros_.end() && it->first <= e) {
      e = std::max(e, it->second);
      it = zeros_.erase(it);
    }
    zeros_.emplace(s, e);
  }

  void insert_cache(uint64_t start, Buffer b) const {
    auto [it, fresh] = cache_.try_emplace(start);
    if (!fresh) return;
    cache_bytes_ += b->size();
    it->second = CacheEntry{std::move(b), ++tick_};
    while (cache_bytes_ > kCacheBytes && cache_.size() > 1) {
      auto victim = cache_.end();
      for (auto c = cache_.begin(); c != cache_.end(); ++c)
        if (c->first != start && (victim == cache_.end() || c->second.lru < victim->second.lru))
          victim = c;
      if (victim == cache_.end()) break;
      cache_bytes_ -= victim->second.data->size();
      cache_.erase(victim);
    }
  }

  // Sequential readers get the next units decoded ahead, on every core:
  // units of separate spans in parallel, pieces of one long span one after
  // the other.
  void read_ahead(const Unit& u) const {
    std::lock_guard<std::mutex> lock(mu_);
    bool sequential = u.start == last_end_ || u.start == last_start_;
    if (u.start != last_start_) {
      last_start_ = u.start;
      last_end_ = u.end();
    }
    if (!sequential) return;
    if (workers_.empty()) {
      unsigned n = std::max(1u, std::thread::hardware_concurrency());
      for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { worker(); });
    }
    uint64_t ahead = 0, pos = u.end();
    size_t depth = workers_.size() * 2;
    for (size_t i = 0; i < depth && pos < idx_.damaged_at && pos < idx_.size; ++i) {
      Unit k = unit_at(pos);
      bool long_span = span_end(k.point) - idx_.points[k.point].out > kMaxUnit;
      if (!cache_.count(k.start) && !busy_.count(k.start) &&
          std::find_if(queue_.begin(), queue_.end(),
                       [&](const Unit& q) { return q.start == k.start; }) == queue_.end() &&
          !known_zero_locked(k.start, k.len)) {
        queue_.push_back(k);
      }
      ahead += k.len;
      pos = k.end();
      if (long_span || ahead > kCacheBytes / 3) break;
    }
    cv_.notify_all();
  }

  bool known_zero_locked(uint64_t offset, uint64_t n) const {
    auto it = zeros_.upper_bound(offset);
    if (it == zeros_.begin()) return false;
    --it;
    return it->first <= offset && it->second >= offset + n;
  }

  void worker() const {
    for (;;) {
      Unit u;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        u = queue_.front();
        queue_.pop_front();
        if (cache_.count(u.start) || busy_.count(u.start)) continue;
      }
      try {
        (void)get_unit(u, false);
      } catch (const Error&) {
        // The reader meets the same error when it gets there.
      }
    }
  }

  struct CacheEntry {
    Buffer data;
    uint64_t lru = 0;
  };

  std::shared_ptr<const File> file_;
  std::unique_ptr<Codec> codec_;
  StreamIndex idx_;
  std::string index_file_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::map<uint64_t, uint64_t> zeros_;
  mutable std::unordered_set<uint64_t> scanned_;
  bool all_scanned_ = false;
  mutable std::unordered_map<uint64_t, CacheEntry> cache_;
  mutable uint64_t cache_bytes_ = 0, tick_ = 0;
  mutable std::unordered_set<uint64_t> busy_;
  mutable std::multimap<uint64_t, std::unique_ptr<Decoder>> cursors_;
  mutable std::deque<Unit> queue_;
  mutable std::vector<std::thread> workers_;
  mutable uint64_t last_start_ = UINT64_MAX, last_end_ = UINT64_MAX;
  bool stop_ = false;
};

}  // namespace

BlockDevicePtr open_compressed(std::shared_ptr<const File> file, const OpenOptions& opts,
                               std::unique_ptr<Codec> codec) {
  StreamIndex idx;
  bool loaded = false;
  Env& env = opts.environment();
  if (!opts.index_path.empty())
    loaded = load_index(env, opts.index_path, codec->name(), *file, idx);
  if (!loaded) {
    ZeroTracker zt(0);
    idx.decode_limit = opts.decode_limit;
    codec->build_index(idx, [&](const uint8_t* d, size_t n) { zt.feed(d, n); });
    // Codecs that pass the data through the sink get their zero runs here;
    // bzip2 decodes blocks apart and joins their runs itself.
    if (idx.scanned && zt.position() > 0) idx.zeros = zt.finish();
    // Nothing decodes at all: the headers are damaged, not the data.
    if (idx.damaged_at == 0)
      throw Error(ErrorKind::kCorrupt, file->path(), std::nullopt, idx.damage);
    if (!idx.damage.empty() && idx.damaged_at != UINT64_MAX && idx.size <= idx.damaged_at) {
      // The pass stopped at the damage: the disk is shown one sector longer
      // than what could be decoded, so the rest reads as a read error
      // (--on-read-error continue) instead of silently ending early.
      idx.size = (idx.damaged_at / 512 + 1) * 512;
    }
    if (!opts.index_path.empty()) save_index(env, opts.index_path, codec->name(), *file, idx);
  }
  for (auto& p : idx.points) {
    if (p.out >= idx.size && !(p.out == 0 && idx.size == 0))
      throw_corrupt(file->path(), p.in, "access point beyond the disk size");
  }
  if (!idx.damage.empty()) {
    opts.warn(idx.damage +
              (idx.damaged_at != UINT64_MAX
                   ? "; reads from disk offset " + std::to_string(idx.damaged_at) + " on fail"
                   : ""));
  }
  return std::make_shared<CompressedDevice>(std::move(file), std::move(codec), std::move(idx),
                                            opts.index_path);
}

}  // namespace vdisk::compressed
