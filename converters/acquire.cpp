#include "converters/acquire.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "formats/core/error.h"

namespace vdisk {

namespace {

using ddrescue::MapBlock;
using ddrescue::RescueMap;

// Thrown inside the engine to end the run early (interrupt, timeout); the
// map is saved on the way out.
struct Stop {
  AcquireEnd end;
};

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class Engine {
 public:
  Engine(const BlockDevice& src, RescueSink& dst, RescueMap& map, const AcquireOptions& o)
      : src_(src), dst_(dst), map_(map), o_(o), now_(o.now ? o.now : steady_seconds) {
    if (o_.sector_size == 0 || o_.cluster_size == 0 || o_.cluster_size % o_.sector_size != 0) {
      throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                  "cluster size " + std::to_string(o_.cluster_size) +
                      " is not a positive multiple of the sector size " +
                      std::to_string(o_.sector_size));
    }
    if (map_.size() != src_.size()) {
      throw Error(ErrorKind::kInvalidArgument, src_.label(), std::nullopt,
                  "rescue map of " + std::to_string(map_.size()) + " bytes for a source of " +
                      std::to_string(src_.size()) + " bytes");
    }
    const uint64_t cap = (o_.cluster_size + 4095) / 4096 * 4096;
    buf_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, cap)));
    if (!buf_) throw std::bad_alloc();
    skip_max_ = o_.skip_max ? o_.skip_max
                            : std::clamp<uint64_t>(src_.size() / 100, o_.skip_initial, 1ull << 30);
    skip_max_ = round_sector(std::max(skip_max_, o_.skip_initial));
    start_ = last_save_ = last_status_ = last_good_ = window_start_ = now_();
    // The stream is pass 1 from the first byte: a run that starts with
    // anything read (or failed) already cannot give it whole.
    stream_ = o_.stream;
    if (stream_ && (map_.bytes('?') != map_.size() || !o_.copy_pass[0] || o_.reverse)) {
      drop_stream();
    }
  }

  AcquireResult run() {
    AcquireResult r;
    try {
      copying();
      drop_stream();  // pass 1 did not read everything
      if (o_.trim) trimming();
      if (o_.scrape) scraping();
      retrying();
      map_.current_status = '+';
      phase_ = "finished";
    } catch (const Stop& s) {
      drop_stream();
      r.end = s.end;
      phase_ = "stopped";
    } catch (...) {
      drop_stream();
      try {
        save();
      } catch (...) {
      }
      throw;
    }
    save();
    r.status = status();
    if (o_.status) o_.status(r.status);
    return r;
  }

 private:
  uint64_t round_sector(uint64_t n) const {
    return (n + o_.sector_size - 1) / o_.sector_size * o_.sector_size;
  }

  // --- passes -------------------------------------------------------------

  void copying() {
    const bool resume = map_.current_status == '?';
    const uint64_t first = resume ? std::clamp<uint64_t>(map_.current_pass, 1, 3) : 1;
    const uint64_t mark = map_.current_pos;
    for (uint64_t pass = first; pass <= 3; ++pass) {
      if (!o_.copy_pass[pass - 1] || map_.bytes('?') == 0) continue;
      begin("copying", '?', pass);
      // Pass 2 runs against pass 1; pass 3 sweeps in pass 1's direction.
      const bool backwards = (pass == 2) != o_.reverse;
      const bool skipping = pass < 3;
      // A resumed pass 1 or 2 goes on from where it stopped; what it passed
      // over is read by the passes after it.
      const bool from_mark = resume && pass == first && pass < 3;
      if (backwards) {
        copy_backwards(skipping, from_mark && mark ? mark : map_.size());
      } else {
        copy_forwards(skipping, from_mark ? mark : 0);
      }
      save();
    }
  }

  void copy_forwards(bool skipping, uint64_t pos) {
    uint64_t skip = o_.skip_initial;
    while (auto b = map_.next(pos, "?")) {
      pos = b->pos;
      const uint64_t len = std::min(o_.cluster_size - pos % o_.cluster_size, b->size);
      const bool ok = read(pos, len, '*');
      pos += len;
      if (skipping && (!ok || slow_)) {
        pos += round_sector(skip);
        skip = std::min(skip * 2, skip_max_);
      } else if (ok) {
        skip = o_.skip_initial;
      }
    }
  }

  void copy_backwards(bool skipping, uint64_t end) {
    uint64_t skip = o_.skip_initial;
    while (auto b = map_.prev(end, "?")) {
      end = b->pos + b->size;
      const uint64_t tail = end % o_.cluster_size;
      const uint64_t len = std::min(tail ? tail : o_.cluster_size, b->size);
      const uint64_t pos = end - len;
      const bool ok = read(pos, len, '*');
      end = pos;
      if (skipping && (!ok || slow_)) {
        const uint64_t s = round_sector(skip);
        end = end > s ? end - s : 0;
        skip = std::min(skip * 2, skip_max_);
      } else if (ok) {
        skip = o_.skip_initial;
      }
    }
  }

  // One sector-aligned piece of [pos, end) starting at pos.
  uint64_t sector_at(uint64_t pos, uint64_t end) const {
    return std::min<uint64_t>(o_.sector_size - pos % o_.sector_size, end - pos);
  }
  // One sector-aligned piece of [start, end) ending at end.
  uint64_t sector_before(uint64_t end, uint64_t start) const {
    const uint64_t r = end % o_.sector_size;
    return std::min<uint64_t>(r ? r : o_.sector_size, end - start);
  }

  void trimming() {
    if (map_.bytes('*') == 0) return;
    begin("trimming", '*', 1);
    for_each_block("*", [&](uint64_t lo, uint64_t hi) {
      if (lo == 0 || map_.block_at(lo - 1).status != '-') {
        while (lo < hi) {
          const uint64_t len = sector_at(lo, hi);
          const bool ok = read(lo, len, '-');
          lo += len;
          if (!ok) break;
        }
      }
      if (hi == map_.size() || map_.block_at(hi).status != '-') {
        while (hi > lo) {
          const uint64_t len = sector_before(hi, lo);
          const bool ok = read(hi - len, len, '-');
          hi -= len;
          if (!ok) break;
        }
      }
      if (hi > lo) map_.set(lo, hi - lo, '/');
    });
    save();
  }

  void scraping() {
    if (map_.bytes('/') == 0) return;
    begin("scraping", '/', 1);
    for_each_block("/", [&](uint64_t lo, uint64_t hi) {
      for (uint64_t pos = lo; pos < hi;) {
        const uint64_t len = sector_at(pos, hi);
        read(pos, len, '-');
        pos += len;
      }
    });
    save();
  }

  void retrying() {
    const bool resume = map_.current_status == '-';
    uint64_t pass = resume ? map_.current_pass : 1;
    for (; o_.retry_passes < 0 || pass <= uint64_t(o_.retry_passes); ++pass) {
      if (map_.bytes('-') == 0) break;
      begin("retrying", '-', pass);
      // Each bad sector once per pass: the blocks as the pass starts.
      std::vector<MapBlock> bad;
      for (const MapBlock& b : map_.blocks())
        if (b.status == '-') bad.push_back(b);
      const bool backwards = (pass % 2 == 0) != o_.reverse;
      if (backwards) std::reverse(bad.begin(), bad.end());
      for (const MapBlock& b : bad) {
        const uint64_t end = b.pos + b.size;
        if (backwards) {
          for (uint64_t hi = end; hi > b.pos;) {
            const uint64_t len = sector_before(hi, b.pos);
            read(hi - len, len, '-');
            hi -= len;
          }
        } else {
          for (uint64_t pos = b.pos; pos < end;) {
            const uint64_t len = sector_at(pos, end);
            read(pos, len, '-');
            pos += len;
          }
        }
      }
      save();
    }
  }

  // Calls f(lo, hi) for each block of `status` as the phase found them, in
  // the phase's direction; f changes the block's status.
  template <typename F>
  void for_each_block(const char* status, F f) {
    if (!o_.reverse) {
      uint64_t pos = 0;
      while (auto b = map_.next(pos, status)) {
        pos = b->pos + b->size;
        f(b->pos, pos);
      }
    } else {
      uint64_t end = map_.size();
      while (auto b = map_.prev(end, status)) {
        end = b->pos;
        f(b->pos, b->pos + b->size);
      }
    }
  }

  // --- reads --------------------------------------------------------------

  // Reads [pos, pos + len) into the sink. On success the range becomes '+';
  // on a read error (Error kIo) it becomes `fail_status`. Returns success.
  bool read(uint64_t pos, uint64_t len, char fail_status) {
    if (o_.cancel && o_.cancel->load()) stop(AcquireEnd::kInterrupted);
    position_ = pos;
    const double t0 = now_();
    try {
      src_.read(pos, buf_.get(), len);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo) throw;
      ++read_errors_;
      drop_stream();
      map_.set(pos, len, fail_status);
      slow_ = false;
      tick();
      return false;
    }
    dst_.write_at(pos, buf_.get(), len);
    if (stream_) {
      // Only pass 1 feeds it; feed() drops it itself on a gap (a skip).
      if (pass_ != 1 || phase_ != "copying" || !stream_->feed(pos, buf_.get(), len)) drop_stream();
    }
    map_.set(pos, len, '+');
    const double t1 = now_();
    last_good_ = t1;
    run_bytes_ += len;
    window_bytes_ += len;
    slow_ = o_.min_read_rate > 0 && t1 > t0 && double(len) / (t1 - t0) < o_.min_read_rate;
    tick();
    return true;
  }

  void tick() {
    const double t = now_();
    if (o_.cancel && o_.cancel->load()) stop(AcquireEnd::kInterrupted);
    if (o_.timeout > 0 && t - last_good_ > o_.timeout) stop(AcquireEnd::kTimedOut);
    if (t - window_start_ >= 1.0) {
      current_rate_ = double(window_bytes_) / (t - window_start_);
      window_start_ = t;
      window_bytes_ = 0;
    }
    if (t - last_save_ >= o_.save_interval) save();
    if (o_.status && t - last_status_ >= o_.status_interval) {
      last_status_ = t;
      o_.status(status());
    }
  }

  [[noreturn]] void stop(AcquireEnd end) { throw Stop{end}; }

  // Ends the stream unless it is complete; the engine feeds it no more.
  void drop_stream() {
    if (!stream_) return;
    if (!stream_->complete()) stream_->drop();
    stream_ = nullptr;
  }

  void begin(const char* phase, char status, uint64_t pass) {
    if (phase_ != phase || pass_ != pass) map_.current_pos = o_.reverse ? map_.size() : 0;
    phase_ = phase;
    pass_ = pass;
    map_.current_status = status;
    map_.current_pass = pass;
    if (o_.status) o_.status(this->status());
  }

  void save() {
    const std::shared_ptr<void> hold = o_.save_scope ? o_.save_scope() : nullptr;
    dst_.sync();
    if (phase_ != "finished" && !phase_.empty()) map_.current_pos = position_;
    if (o_.save) o_.save(map_);
    last_save_ = now_();
  }

  AcquireStatus status() const {
    AcquireStatus s;
    s.phase = phase_.empty() ? "finished" : phase_;
    s.pass = pass_;
    s.position = position_;
    s.size = map_.size();
    s.rescued = map_.bytes('+');
    s.non_tried = map_.bytes('?');
    s.non_trimmed = map_.bytes('*');
    s.non_scraped = map_.bytes('/');
    s.bad = map_.bytes('-');
    s.bad_areas = map_.areas('-');
    s.read_errors = read_errors_;
    const double t = now_();
    s.run_time = t - start_;
    s.since_good_read = t - last_good_;
    s.average_rate = s.run_time > 0 ? double(run_bytes_) / s.run_time : 0;
    s.current_rate =
        t - window_start_ >= 1.0 ? double(window_bytes_) / (t - window_start_) : current_rate_;
    if (s.average_rate > 0) {
      s.remaining = double(s.non_tried + s.non_trimmed + s.non_scraped) / s.average_rate;
    }
    return s;
  }

  const BlockDevice& src_;
  RescueSink& dst_;
  RescueMap& map_;
  const AcquireOptions& o_;
  AcquireStream* stream_ = nullptr;  // null once dropped or not streaming
  std::function<double()> now_;
  std::unique_ptr<uint8_t, FreeDeleter> buf_;
  uint64_t skip_max_ = 0;
  std::string phase_;
  uint64_t pass_ = 0;
  uint64_t position_ = 0;
  bool slow_ = false;
  uint64_t read_errors_ = 0;
  uint64_t run_bytes_ = 0;
  uint64_t window_bytes_ = 0;
  double current_rate_ = 0;
  double start_ = 0, last_save_ = 0, last_status_ = 0, last_good_ = 0, window_start_ = 0;
};

}  // namespace

AcquireStream::AcquireStream(uint64_t size, uint32_t sector_size, std::string label,
                             const std::atomic<bool>* cancel)
    : RawStream(size, sector_size, std::move(label)), cancel_(cancel) {}

// Both sides wait in slices of this: the cancel flag is set by a signal
// handler, which cannot notify a condition variable.
constexpr auto kPollSlice = std::chrono::milliseconds(50);

bool AcquireStream::feed(uint64_t offset, const void* data, size_t len) {
  std::unique_lock<std::mutex> lock(mu_);
  if (dropped_) return false;
  if (offset != fed_ || len > size_ - fed_) {
    dropped_ = true;
    cv_.notify_all();
    return false;
  }
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    while (!dropped_ && !(want_ && got_ < want_len_)) {
      if (cancelled()) {
        dropped_ = true;
        cv_.notify_all();
        return false;
      }
      cv_.wait_for(lock, kPollSlice);
    }
    if (dropped_) return false;
    const size_t n = std::min(len, want_len_ - got_);
    std::memcpy(want_ + got_, p, n);
    got_ += n;
    fed_ += n;
    p += n;
    len -= n;
    if (got_ == want_len_) cv_.notify_all();
  }
  return true;
}

void AcquireStream::drop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fed_ == size_ && !dropped_) return;  // complete: nothing to end
  dropped_ = true;
  cv_.notify_all();
}

bool AcquireStream::complete() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !dropped_ && fed_ == size_;
}

void AcquireStream::do_read(uint64_t offset, void* buf, size_t len) const {
  std::unique_lock<std::mutex> lock(mu_);
  require_in_order(offset, read_pos_);
  want_ = static_cast<uint8_t*>(buf);
  want_len_ = len;
  got_ = 0;
  cv_.notify_all();
  while (got_ < want_len_ && !dropped_ && !cancelled()) cv_.wait_for(lock, kPollSlice);
  const size_t got = got_;
  want_ = nullptr;
  want_len_ = got_ = 0;
  if (got < len) {
    throw Error(ErrorKind::kInterrupted, label_, offset + got,
                "the acquisition stream ended (a read failed or was skipped)");
  }
  read_pos_ += len;
}

AcquireResult acquire(const BlockDevice& src, RescueSink& dst, ddrescue::RescueMap& map,
                      const AcquireOptions& opts) {
  Engine e(src, dst, map, opts);
  return e.run();
}

}  // namespace vdisk
