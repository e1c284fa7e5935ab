#include "converters/convert.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "formats/core/error.h"

namespace vdisk {

namespace {

// A piece of the guest stream travelling from the reader to the consumers.
// Data chunks own a pooled buffer; zero chunks carry only their length.
struct Chunk {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool zero = false;
  std::vector<uint8_t>* buf = nullptr;
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

// Writes a data chunk, leaving all-zero blocks of `gran` bytes unwritten.
// Blocks are aligned to guest offsets so the writer sees aligned ranges.
uint64_t write_skipping_zeros(ImageWriter& dst, const Chunk& c, size_t gran, uint64_t& zero_bytes) {
  const uint8_t* p = c.buf->data();
  uint64_t written = 0;
  uint64_t pos = 0;
  uint64_t run_start = 0;
  bool run_data = false;
  bool have_run = false;
  auto flush = [&](uint64_t end) {
    if (!have_run || end == run_start) return;
    if (run_data) {
      dst.write(c.offset + run_start, p + run_start, static_cast<size_t>(end - run_start));
      written += end - run_start;
    } else {
      dst.write_zeroes(c.offset + run_start, end - run_start);
      zero_bytes += end - run_start;
    }
  };
  while (pos < c.length) {
    uint64_t guest = c.offset + pos;
    uint64_t next = std::min<uint64_t>(c.length, pos + (gran - guest % gran));
    bool data = !is_zero(p + pos, static_cast<size_t>(next - pos));
    if (!have_run || data != run_data) {
      flush(pos);
      run_start = pos;
      run_data = data;
      have_run = true;
    }
    pos = next;
  }
  flush(c.length);
  return written;
}

}  // namespace

CopyResult copy_device(const BlockDevice& src, ImageWriter* dst, const CopyOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  CopyResult result;
  const uint64_t size = src.size();
  result.virtual_size = size;
  const size_t chunk_size = std::max<size_t>(opts.chunk_size, 4096);
  BufferPool pool(std::max<size_t>(opts.buffers, 2), chunk_size);
  FirstError error;

  // Consumers: one thread per hash algorithm, one for the writer.
  std::vector<std::unique_ptr<ChunkQueue>> queues;
  std::vector<std::thread> threads;
  std::vector<std::string> digests(opts.algos.size());
  uint64_t written = 0, zero_bytes = 0;

  auto deleter = [&pool](Chunk* c) {
    if (c->buf) pool.release(c->buf);
    delete c;
  };

  for (size_t i = 0; i < opts.algos.size(); ++i) {
    queues.push_back(std::make_unique<ChunkQueue>());
    ChunkQueue* q = queues.back().get();
    threads.emplace_back([&, q, i] {
      try {
        Hasher h(opts.algos[i]);
        while (ChunkPtr c = q->pop()) {
          if (error.failed()) continue;  // drain
          if (c->zero) h.update_zeros(c->length);
          else h.update(c->buf->data(), static_cast<size_t>(c->length));
        }
        digests[i] = h.finish_hex();
      } catch (...) {
        error.set(std::current_exception());
      }
    });
  }
  if (dst) {
    queues.push_back(std::make_unique<ChunkQueue>());
    ChunkQueue* q = queues.back().get();
    threads.emplace_back([&, q] {
      try {
        while (ChunkPtr c = q->pop()) {
          if (error.failed()) continue;
          if (c->zero) {
            dst->write_zeroes(c->offset, c->length);
            zero_bytes += c->length;
          } else {
            written += write_skipping_zeros(*dst, *c, opts.zero_granularity, zero_bytes);
          }
        }
      } catch (...) {
        error.set(std::current_exception());
        pool.close();
      }
    });
  }

  if (opts.progress) opts.progress->begin(opts.phase, size);
  try {
    uint64_t off = 0;
    while (off < size && !error.failed()) {
      if (opts.cancel && opts.cancel->load()) {
        throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
      }
      Extent e = src.block_status(off, size - off);
      if (e.length == 0 || e.length > size - off) e.length = size - off;
      ChunkPtr c(new Chunk, deleter);
      c->offset = off;
      if (e.type == ExtentType::kData) {
        // Fill the buffer with consecutive data extents, so fragmented status
        // answers still give large reads.
        c->buf = pool.acquire();
        if (!c->buf) break;  // a consumer failed
        uint64_t len = std::min<uint64_t>(e.length, chunk_size);
        while (len < chunk_size && off + len < size) {
          Extent more = src.block_status(off + len, std::min<uint64_t>(size - off - len, chunk_size - len));
          if (more.type != ExtentType::kData || more.length == 0) break;
          len += std::min<uint64_t>(more.length, chunk_size - len);
        }
        src.read(off, c->buf->data(), static_cast<size_t>(len));
        c->length = len;
        result.data_bytes_read += len;
      } else {
        c->zero = true;
        c->length = std::min<uint64_t>(e.length, uint64_t{1} << 30);
      }
      off += c->length;
      for (auto& q : queues) q->push(c);
      if (opts.progress) opts.progress->update(off);
    }
  } catch (...) {
    error.set(std::current_exception());
  }
  for (auto& q : queues) q->close();
  for (auto& t : threads) t.join();
  if (opts.progress) opts.progress->end();
  error.rethrow();

  result.bytes_written = written;
  result.zero_bytes = zero_bytes;
  for (size_t i = 0; i < opts.algos.size(); ++i) result.hashes.push_back({opts.algos[i], digests[i]});
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
