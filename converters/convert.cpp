#include "converters/convert.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <thread>

#include "formats/core/error.h"

namespace vdisk {

namespace {

// A run of a data chunk: `length` bytes from `start` (relative to the
// chunk), all data or all zero blocks.
struct Run {
  uint64_t start = 0;
  uint64_t length = 0;
  bool data = false;
};

// A piece of the guest stream travelling from the readers to the consumers.
// Data chunks own a pooled buffer; zero chunks carry only their length.
// `bad` chunks lie inside CopyOptions::unreadable. `errors` are the ranges of
// a data chunk that failed to read (OnReadError::kContinue), zero-filled in
// the buffer.
struct Chunk {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool zero = false;
  bool bad = false;
  std::vector<uint8_t>* buf = nullptr;
  std::vector<ByteRange> errors;
  bool token = false;  // holds a Limiter slot
  // Data chunks: alternating runs of data and all-zero blocks, found by the
  // reader thread that read the chunk (see find_runs).
  std::vector<Run> runs;
};

// Bounds the chunks in flight (zero chunks own no buffer, so the pool alone
// would let the reader race through a sparse disk far ahead of the hashers,
// and progress would say 100% long before the end).
class Limiter {
 public:
  explicit Limiter(size_t max) : max_(max) {}
  bool acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ < max_ || closed_; });
    if (closed_) return false;
    ++used_;
    return true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    --used_;
    cv_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  size_t max_;
  size_t used_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
};

// Fixed set of buffers: bounds memory whatever the image size, and makes the
// reader wait when the consumers fall behind.
class BufferPool {
 public:
  BufferPool(size_t count, size_t size) : storage_(count, std::vector<uint8_t>(size)) {
    for (auto& b : storage_) free_.push_back(&b);
  }
  std::vector<uint8_t>* acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || closed_; });
    if (free_.empty()) return nullptr;
    auto* b = free_.back();
    free_.pop_back();
    return b;
  }
  void release(std::vector<uint8_t>* b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
    cv_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::vector<std::vector<uint8_t>> storage_;
  std::vector<std::vector<uint8_t>*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
};

using ChunkPtr = std::shared_ptr<Chunk>;

class ChunkQueue {
 public:
  void push(ChunkPtr c) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(c));
    cv_.notify_one();
  }
  // Returns null when closed and drained.
  ChunkPtr pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return nullptr;
    ChunkPtr c = std::move(q_.front());
    q_.pop_front();
    return c;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::deque<ChunkPtr> q_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
};

// First error of any stage; the others stop when it is set.
class FirstError {
 public:
  void set(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!err_) err_ = e;
    failed_ = true;
  }
  bool failed() const { return failed_.load(); }
  void rethrow() {
    if (err_) std::rethrow_exception(err_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr err_;
  std::atomic<bool> failed_{false};
};

// Splits a data chunk into runs of data and of all-zero blocks of `gran`
// bytes, aligned to guest offsets so the writer sees aligned ranges. Its read
// errors (OnReadError::kContinue) are in no run: never written, they stay
// unallocated. It runs on the reader threads: scanning for zeros on the
// single writer thread made it a tenth slower, and the writer is the stage
// that bounds a conversion without hashes.
void find_runs(Chunk& c, size_t gran) {
  const uint8_t* p = c.buf->data();
  c.runs.clear();
  uint64_t pos = 0;
  size_t err = 0;
  while (pos < c.length) {
    if (err < c.errors.size() && c.errors[err].start - c.offset <= pos) {
      pos = c.errors[err].start + c.errors[err].length - c.offset;
      ++err;
      continue;
    }
    const uint64_t stop = err < c.errors.size() ? c.errors[err].start - c.offset : c.length;
    uint64_t guest = c.offset + pos;
    uint64_t next = std::min<uint64_t>(stop, pos + (gran - guest % gran));
    bool data = !is_zero(p + pos, static_cast<size_t>(next - pos));
    if (c.runs.empty() || c.runs.back().data != data ||
        c.runs.back().start + c.runs.back().length != pos)  // not across an error
      c.runs.push_back({pos, next - pos, data});
    else
      c.runs.back().length += next - pos;
    pos = next;
  }
}

// Writes a data chunk's runs: data as data, zero runs as zero ranges, and
// the ranges that failed to read (between the runs) as unreadable.
uint64_t write_runs(ImageWriter& dst, const Chunk& c, uint64_t& zero_bytes) {
  uint64_t written = 0;
  size_t err = 0;
  for (const Run& r : c.runs) {
    for (; err < c.errors.size() && c.errors[err].start < c.offset + r.start; ++err) {
      dst.mark_unreadable(c.errors[err].start, c.errors[err].length);
    }
    if (r.data) {
      dst.write(c.offset + r.start, c.buf->data() + r.start, static_cast<size_t>(r.length));
      written += r.length;
    } else {
      dst.write_zeroes(c.offset + r.start, r.length);
      zero_bytes += r.length;
    }
  }
  for (; err < c.errors.size(); ++err)
    dst.mark_unreadable(c.errors[err].start, c.errors[err].length);
  return written;
}

// Reads data chunks under OnReadError::kContinue. A chunk is first read
// whole (the fast path, one request). When that fails with Error(kIo), it is
// read again in 64 KiB pieces, and each piece that fails in 4 KiB pieces;
// a 4 KiB piece that fails is a bad range. 4 KiB is the floor because the
// Linux page cache reads a regular file a page (4 KiB) at a time, so a
// smaller read of a failing page fails too, and it is the physical sector of
// Advanced Format disks; 64 KiB first keeps a clean stretch of a damaged
// chunk to a few requests. Pieces are aligned to guest offsets.
//
// The bound: a dying disk can take seconds per failed read, and isolating
// every 4 KiB of a dead multi-GiB source would take days. So:
//  - after kSplitStreak failed reads in a row within a chunk, failed 64 KiB
//    pieces are marked bad whole instead of being split, until a read
//    succeeds again (a long bad stretch costs one read per 64 KiB);
//  - after kDeadStreak failed reads in a row overall (across chunks and
//    reader threads) the source is presumed dead: a chunk whose whole read
//    fails is then probed at its first and last 64 KiB only, and marked bad
//    whole when both fail too. Any successful read ends the presumption.
// A fully dead source then costs three reads per 4 MiB chunk. The price: a
// bad stretch may hide readable bytes (up to 60 KiB at its ends, or a
// readable middle of a chunk whose ends fail while the source looks dead);
// GNU ddrescue, fed our --error-map, trims and scrapes those finer.
class ReadRescuer {
 public:
  static constexpr uint32_t kSplitStreak = 32;
  static constexpr uint32_t kDeadStreak = 64;

  ReadRescuer(const BlockDevice& src, std::atomic<uint32_t>& streak,
              const std::atomic<bool>* cancel)
      : src_(src), streak_(streak), cancel_(cancel) {}

  // Reads [off, off + len) into p; ranges that cannot be read are zero-filled
  // and appended to `bad` (absolute, sorted, adjacent ones merged).
  void read(uint64_t off, uint8_t* p, uint64_t len, std::vector<ByteRange>& bad) {
    bad_ = &bad;
    local_streak_ = 0;
    const bool presumed_dead = streak_.load() >= kDeadStreak;
    if (try_read(off, p, len)) return;
    size_t level = 0;
    while (level + 1 < std::size(kPieces) && kPieces[level] >= len) ++level;
    if (kPieces[level] >= len) {
      mark(off, p, len);
      return;
    }
    if (presumed_dead) {
      const uint64_t end = off + len, piece = kPieces[0];
      const uint64_t head_end = std::min(end, (off / piece + 1) * piece);
      const uint64_t tail = std::max(off, (end - 1) / piece * piece);
      bool alive = try_read(off, p, head_end - off);
      if (!alive && tail >= head_end) alive = try_read(tail, p + (tail - off), end - tail);
      if (!alive) {
        mark(off, p, len);
        return;
      }
    }
    split(off, p, len, level);
  }

 private:
  static constexpr uint64_t kPieces[] = {64 << 10, 4 << 10};

  bool try_read(uint64_t off, uint8_t* p, uint64_t len) {
    if (cancel_ && cancel_->load()) throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
    try {
      src_.read(off, p, static_cast<size_t>(len));
      streak_ = 0;
      local_streak_ = 0;
      return true;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo) throw;
    }
    ++streak_;
    ++local_streak_;
    return false;
  }

  void split(uint64_t off, uint8_t* p, uint64_t len, size_t level) {
    const uint64_t piece = kPieces[level];
    const uint64_t end = off + len;
    for (uint64_t pos = off; pos < end;) {
      if (level > 0 && local_streak_ >= kSplitStreak) {
        mark(pos, p + (pos - off), end - pos);  // the rest of a failed piece
        return;
      }
      const uint64_t next = std::min(end, (pos / piece + 1) * piece);
      uint8_t* q = p + (pos - off);
      if (!try_read(pos, q, next - pos)) {
        if (level + 1 < std::size(kPieces) && local_streak_ < kSplitStreak)
          split(pos, q, next - pos, level + 1);
        else
          mark(pos, q, next - pos);
      }
      pos = next;
    }
  }

  void mark(uint64_t off, uint8_t* p, uint64_t len) {
    std::memset(p, 0, static_cast<size_t>(len));
    if (!bad_->empty() && bad_->back().start + bad_->back().length == off)
      bad_->back().length += len;
    else
      bad_->push_back({off, len});
  }

  const BlockDevice& src_;
  std::atomic<uint32_t>& streak_;  // failed reads in a row, all chunks
  const std::atomic<bool>* cancel_;
  std::vector<ByteRange>* bad_ = nullptr;
  uint32_t local_streak_ = 0;  // failed reads in a row, this chunk
};
}  // namespace

CopyResult copy_device(const BlockDevice& src, ImageWriter* dst, const CopyOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  CopyResult result;
  const uint64_t size = src.size();
  result.virtual_size = size;
  const size_t chunk_size = std::max<size_t>(opts.chunk_size, 4096);
  const size_t readers = std::max<size_t>(opts.readers, 1);
  BufferPool pool(std::max<size_t>(opts.buffers, readers + 1), chunk_size);
  FirstError error;

  const std::vector<ByteRange>& bad = opts.unreadable;
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i].length == 0 || bad[i].start > size || bad[i].length > size - bad[i].start ||
        (i > 0 && bad[i].start < bad[i - 1].start + bad[i - 1].length)) {
      throw Error(ErrorKind::kInvalidArgument, "", bad[i].start,
                  "unreadable ranges must be sorted, non-overlapping and inside the source");
    }
    result.unreadable_bytes += bad[i].length;
  }
  // The bytes stored in unreadable ranges are read only when a hash of the
  // source as stored needs them.
  const bool read_bad = !opts.algos.empty();
  const bool rescue = opts.on_read_error == OnReadError::kContinue;
  std::atomic<uint32_t> failure_streak{0};
  std::vector<ByteRange> read_errors;  // in offset order (appended at dispatch)

  // Consumers: one thread per hash (per algorithm, twice with unreadable
  // ranges: as stored and zero-filled), one for the writer.
  struct HashJob {
    HashAlgo algo;
    bool zero_fill;
    std::unique_ptr<Hasher> hasher;
  };
  std::vector<HashJob> jobs;
  for (HashAlgo a : opts.algos) jobs.push_back({a, false, nullptr});
  if (!bad.empty()) {
    for (HashAlgo a : opts.algos) jobs.push_back({a, true, nullptr});
  }
  std::vector<std::unique_ptr<ChunkQueue>> queues;
  std::vector<std::thread> consumers;
  uint64_t written = 0, zero_bytes = 0;

  // Zero chunks are cut at 64 MiB when hashing (hashing zeros costs time:
  // keeps progress honest), at 1 GiB otherwise (a 2 TiB sparse disk is then
  // 2048 writer calls).
  const uint64_t max_zero_chunk = opts.algos.empty() ? uint64_t{1} << 30 : uint64_t{64} << 20;
  Limiter in_flight(64);
  auto stop_all = [&] {
    pool.close();
    in_flight.close();
  };
  auto deleter = [&pool, &in_flight](Chunk* c) {
    if (c->token) in_flight.release();
    if (c->buf) pool.release(c->buf);
    delete c;
  };

  for (HashJob& job : jobs) {
    queues.push_back(std::make_unique<ChunkQueue>());
    ChunkQueue* q = queues.back().get();
    consumers.emplace_back([&, q, job = &job] {
      try {
        auto h = std::make_unique<Hasher>(job->algo);
        while (ChunkPtr c = q->pop()) {
          if (error.failed()) continue;  // drain
          if (c->zero || (c->bad && job->zero_fill))
            h->update_zeros(c->length);
          else
            h->update(c->buf->data(), static_cast<size_t>(c->length));
        }
        job->hasher = std::move(h);
      } catch (...) {
        error.set(std::current_exception());
        stop_all();
      }
    });
  }
  if (dst) {
    queues.push_back(std::make_unique<ChunkQueue>());
    ChunkQueue* q = queues.back().get();
    consumers.emplace_back([&, q] {
      try {
        while (ChunkPtr c = q->pop()) {
          if (error.failed()) continue;
          if (c->bad) {  // never written (reads as zeros); a format may record it
            dst->mark_unreadable(c->offset, c->length);
            continue;
          }
          if (c->zero) {
            dst->write_zeroes(c->offset, c->length);
            zero_bytes += c->length;
          } else {
            written += write_runs(*dst, *c, zero_bytes);
          }
        }
      } catch (...) {
        error.set(std::current_exception());
        stop_all();
      }
    });
  }

  // Readers. Planning (block status, chunk boundaries, buffer) is serialised
  // and numbers the chunks; the reads run concurrently; chunks are handed to
  // the consumers strictly in plan order.
  std::mutex plan_mu;
  uint64_t plan_off = 0;
  size_t bad_idx = 0;
  uint64_t next_seq = 0;
  std::mutex dispatch_mu;
  std::condition_variable dispatch_cv;
  uint64_t dispatch_seq = 0;
  std::atomic<uint64_t> data_read{0};

  // Block status. Sparse formats read metadata to answer it; when that read
  // fails and the user asked to continue, the range is planned as data, so
  // the data read fails in turn and the rescuer maps the bad ranges.
  auto status = [&](uint64_t off, uint64_t len) -> Extent {
    if (!rescue) return src.block_status(off, len);
    try {
      return src.block_status(off, len);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo) throw;
      return Extent{std::min<uint64_t>(len, chunk_size), ExtentType::kData};
    }
  };

  // Plans the next chunk at plan_off; false at the end.
  auto plan = [&](Chunk& c) -> bool {
    if (plan_off >= size) return false;
    if (opts.cancel && opts.cancel->load()) {
      throw Error(ErrorKind::kInterrupted, "", plan_off, "interrupted");
    }
    const uint64_t off = plan_off;
    while (bad_idx < bad.size() && bad[bad_idx].start + bad[bad_idx].length <= off) ++bad_idx;
    const bool in_bad = bad_idx < bad.size() && bad[bad_idx].start <= off;
    const uint64_t boundary = in_bad                 ? bad[bad_idx].start + bad[bad_idx].length
                              : bad_idx < bad.size() ? bad[bad_idx].start
                                                     : size;
    const uint64_t room = boundary - off;
    Extent e = status(off, room);
    if (e.length == 0 || e.length > room)
      e.length = std::min<uint64_t>(room, e.length ? e.length : 1);
    c.offset = off;
    c.bad = in_bad;
    if (e.type == ExtentType::kData && (!in_bad || read_bad)) {
      // Gather consecutive data extents, so fragmented status answers still
      // give large reads.
      uint64_t len = std::min<uint64_t>(e.length, chunk_size);
      while (len < chunk_size && len < room) {
        Extent more = status(off + len, std::min<uint64_t>(room - len, chunk_size - len));
        if (more.type != ExtentType::kData || more.length == 0) break;
        len += std::min<uint64_t>(more.length, chunk_size - len);
      }
      c.length = len;
      c.zero = false;
    } else {
      c.zero = true;
      c.length = std::min<uint64_t>(e.length, max_zero_chunk);
    }
    plan_off += c.length;
    return true;
  };

  auto reader = [&] {
    try {
      while (!error.failed()) {
        ChunkPtr c(new Chunk, deleter);
        uint64_t seq;
        {
          std::lock_guard<std::mutex> lock(plan_mu);
          if (!plan(*c)) break;
          if (!in_flight.acquire()) break;  // a consumer failed
          c->token = true;
          if (!c->zero) {
            c->buf = pool.acquire();
            if (!c->buf) break;  // a consumer failed
          }
          seq = next_seq++;
        }
        if (!c->zero) {
          if (rescue) {
            ReadRescuer(src, failure_streak, opts.cancel)
                .read(c->offset, c->buf->data(), c->length, c->errors);
          } else {
            try {
              src.read(c->offset, c->buf->data(), static_cast<size_t>(c->length));
            } catch (const Error& e) {
              if (e.kind() != ErrorKind::kIo || opts.read_error_hint.empty()) throw;
              throw Error(e.kind(), e.file(), e.offset(), e.message() + opts.read_error_hint);
            }
          }
          data_read += c->length;
          if (dst && !c->bad) find_runs(*c, std::max<size_t>(opts.zero_granularity, 1));
        }
        std::unique_lock<std::mutex> lock(dispatch_mu);
        while (dispatch_seq != seq && !error.failed()) {
          dispatch_cv.wait_for(lock, std::chrono::milliseconds(50));
        }
        if (error.failed()) break;
        for (const ByteRange& b : c->errors) {
          if (!read_errors.empty() &&
              read_errors.back().start + read_errors.back().length == b.start) {
            read_errors.back().length += b.length;
          } else {
            read_errors.push_back(b);
          }
        }
        for (auto& q : queues) q->push(c);
        ++dispatch_seq;
        if (opts.progress) opts.progress->update(c->offset + c->length);
        dispatch_cv.notify_all();
      }
    } catch (...) {
      error.set(std::current_exception());
      stop_all();
    }
    std::lock_guard<std::mutex> lock(dispatch_mu);
    dispatch_cv.notify_all();
  };

  if (opts.progress) opts.progress->begin(opts.phase, size);
  {
    std::vector<std::thread> reader_threads;
    for (size_t i = 1; i < readers; ++i) reader_threads.emplace_back(reader);
    reader();
    for (auto& t : reader_threads) t.join();
  }
  for (auto& q : queues) q->close();
  for (auto& t : consumers) t.join();
  if (opts.progress) opts.progress->end();
  error.rethrow();

  result.data_bytes_read = data_read.load();
  result.bytes_written = written;
  result.zero_bytes = zero_bytes;
  result.read_errors = std::move(read_errors);
  for (const ByteRange& b : result.read_errors) result.read_error_bytes += b.length;
  // The hashers fed the rescuer's zeros for read errors: the "as stored"
  // jobs then hold the source with those ranges as zeros (its stored bytes
  // are unknown), which is a zero-filled hash when there are no unreadable
  // ranges to zero-fill besides.
  const bool lost = !result.read_errors.empty();
  // The output's content: zero-filled where unreadable, then the zeros of a
  // size rounded up by the writer.
  const uint64_t pad = dst && dst->virtual_size() > size ? dst->virtual_size() - size : 0;
  const size_t n = opts.algos.size();
  for (size_t i = 0; i < n; ++i) {
    Hasher& as_stored = *jobs[i].hasher;
    Hasher* zero_filled = bad.empty() ? nullptr : jobs[n + i].hasher.get();
    if (dst) {
      std::unique_ptr<Hasher> out = (zero_filled ? *zero_filled : as_stored).clone();
      out->update_zeros(pad);
      result.output_hashes.push_back({opts.algos[i], out->finish_hex()});
    }
    if (!lost) result.hashes.push_back({opts.algos[i], as_stored.finish_hex()});
    if (zero_filled)
      result.hashes_zero_filled.push_back({opts.algos[i], zero_filled->finish_hex()});
    else if (lost)
      result.hashes_zero_filled.push_back({opts.algos[i], as_stored.finish_hex()});
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

CompareResult compare_devices(const BlockDevice& a, const BlockDevice& b, ProgressSink* progress,
                              const std::atomic<bool>* cancel) {
  CompareResult r;
  r.size_a = a.size();
  r.size_b = b.size();
  r.size_differs = r.size_a != r.size_b;
  const uint64_t common = std::min(r.size_a, r.size_b);
  const size_t chunk = 4 << 20;
  std::vector<uint8_t> ba(chunk), bb(chunk);
  if (progress) progress->begin("comparing", common);
  uint64_t off = 0;
  while (off < common) {
    if (cancel && cancel->load()) throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
    Extent ea = a.block_status(off, common - off);
    Extent eb = b.block_status(off, common - off);
    uint64_t len = std::min({ea.length ? ea.length : 1, eb.length ? eb.length : 1, common - off});
    if (ea.type != ExtentType::kData && eb.type != ExtentType::kData) {
      off += len;
      if (progress) progress->update(off);
      continue;
    }
    len = std::min<uint64_t>(len, chunk);
    a.read(off, ba.data(), static_cast<size_t>(len));
    b.read(off, bb.data(), static_cast<size_t>(len));
    if (std::memcmp(ba.data(), bb.data(), static_cast<size_t>(len)) != 0) {
      for (uint64_t i = 0; i < len; ++i) {
        if (ba[i] != bb[i]) {
          r.first_difference = off + i;
          break;
        }
      }
      if (progress) progress->end();
      return r;
    }
    off += len;
    if (progress) progress->update(off);
  }
  if (progress) progress->end();
  r.identical = !r.size_differs;
  return r;
}

}  // namespace vdisk
