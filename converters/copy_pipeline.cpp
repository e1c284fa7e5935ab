#include "converters/copy_pipeline.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "formats/core/error.h"

namespace vdisk {

namespace {

// A counted resource that threads wait for: the read buffers and the
// in-flight slots. close() wakes every waiter for good (the pipeline stops).
class Gate {
 public:
  explicit Gate(size_t count) : free_(count) {}
  // Takes one unit; false once closed.
  bool acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0 || closed_; });
    if (closed_) return false;
    --free_;
    return true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    ++free_;
    cv_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  size_t free_;
  bool closed_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
};

// The read buffers: a fixed set, so memory is bounded whatever the image
// size, and readers wait when the consumers fall behind.
class BufferPool {
 public:
  BufferPool(size_t count, size_t size) : storage_(count * size), gate_(count) {
    for (size_t i = 0; i < count; ++i) free_.push_back(storage_.data() + i * size);
  }
  // A buffer, or null once closed.
  uint8_t* acquire() {
    if (!gate_.acquire()) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }
  void release(uint8_t* b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(b);
    }
    gate_.release();
  }
  void close() { gate_.close(); }

 private:
  std::vector<uint8_t> storage_;
  std::vector<uint8_t*> free_;
  std::mutex mu_;
  Gate gate_;
};

using ChunkPtr = std::shared_ptr<const Chunk>;

// One consumer's inbox. Unbounded by itself: the in-flight slots bound it.
class ChunkQueue {
 public:
  void push(ChunkPtr c) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(c));
    cv_.notify_one();
  }
  // The next chunk; null once closed and drained.
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
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    q_.clear();
  }

 private:
  std::deque<ChunkPtr> q_;
  bool closed_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
};

Error interrupted(uint64_t offset) {
  return Error(ErrorKind::kInterrupted, "", offset, "interrupted");
}

// One run of the pipeline. Members are declared so that the buffer pool and
// the slots outlive every chunk (queues, reorder buffer), whose release
// returns its buffer and slot.
class Pipeline {
 public:
  Pipeline(CopyPlanner& planner, const ChunkReader& reader,
           std::span<ChunkConsumer* const> consumers, const PipelineOptions& opts)
      : planner_(planner),
        reader_(reader),
        consumers_(consumers.begin(), consumers.end()),
        cancel_(opts.cancel),
        readers_(std::max<size_t>(opts.readers, 1)),
        pool_(std::max(opts.buffers, readers_ + 1), opts.chunk_size),
        slots_(std::max<size_t>(opts.max_in_flight, 1)),
        chunk_size_(opts.chunk_size) {
    for (size_t i = 0; i < consumers_.size(); ++i)
      queues_.push_back(std::make_unique<ChunkQueue>());
  }

  PipelineStats run() {
    std::vector<std::thread> consumer_threads, reader_threads;
    try {
      for (size_t i = 0; i < consumers_.size(); ++i)
        consumer_threads.emplace_back([this, i] { consume_loop(*consumers_[i], *queues_[i]); });
      for (size_t i = 1; i < readers_; ++i) reader_threads.emplace_back([this] { read_loop(); });
    } catch (...) {
      fail(std::current_exception());  // a thread could not start
    }
    read_loop();
    for (auto& t : reader_threads) t.join();
    // Every chunk has been handed on (or dropped after a failure): the
    // consumers drain their queues and return.
    for (auto& q : queues_) q->close();
    for (auto& t : consumer_threads) t.join();
    for (auto& q : queues_) q->clear();
    waiting_.clear();
    if (error_) std::rethrow_exception(error_);
    return PipelineStats{bytes_read_.load()};
  }

 private:
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  bool cancelled() const { return cancel_ && cancel_->load(); }

  // Keeps the first error and stops every stage: readers waiting for a
  // buffer or a slot wake up and return; consumers return at their next
  // chunk; chunks not yet handed on are dropped.
  void fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = e;
    }
    failed_.store(true, std::memory_order_release);
    pool_.close();
    slots_.close();
  }

  // A chunk being read, and its place in the plan.
  struct Claim {
    uint64_t seq = 0;
    std::shared_ptr<Chunk> chunk;
  };

  // A reader thread: plan a chunk, read it, hand it on; until the plan ends
  // or the pipeline fails.
  void read_loop() {
    try {
      while (std::optional<Claim> claim = claim_next()) {
        Chunk& c = *claim->chunk;
        if (c.read) {
          reader_.read(c);
          bytes_read_ += c.length;
        }
        hand_on(std::move(*claim));
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // Plans the next chunk and takes its slot and buffer, in plan order (so
  // the oldest chunk in flight always holds what it needs and no reader can
  // starve it). Nothing at the end of the plan or after a failure.
  std::optional<Claim> claim_next() {
    std::lock_guard<std::mutex> lock(plan_mu_);
    if (failed()) return std::nullopt;
    if (cancelled()) throw interrupted(planner_.position());
    std::optional<PlannedChunk> p = planner_.next();
    if (!p) return std::nullopt;
    if (!slots_.acquire()) return std::nullopt;
    std::shared_ptr<Chunk> c(new Chunk, [this](Chunk* done) {
      if (done->bytes) pool_.release(done->bytes);
      slots_.release();
      delete done;
    });
    static_cast<PlannedChunk&>(*c) = *p;
    if (c->read) {
      if (c->length > chunk_size_) {
        throw Error(ErrorKind::kInvalidArgument, "", c->offset,
                    "a planned chunk is larger than the read buffers");
      }
      c->bytes = pool_.acquire();
      if (!c->bytes) return std::nullopt;
    }
    return Claim{next_planned_++, std::move(c)};
  }

  // Not formats/core/ordered_pool.h, though both hand results on in order:
  // OrderedPool has one thread that submits jobs and consumes them itself,
  // while here the readers plan their own chunks (the planner is shared,
  // claims take a buffer and a slot in plan order), the calling thread is a
  // reader too, each chunk fans out to several consumer threads, and a
  // failure or cancel must wake every waiter. Forcing one onto the other
  // would add a submitting thread and a second hand-off per chunk.
  //
  // Hands a finished chunk to every consumer once all chunks planned before
  // it have been handed on; a chunk that finishes early waits in `waiting_`
  // and its reader goes on with the next one. Whichever reader completes the
  // oldest chunk hands on everything that has become contiguous.
  void hand_on(Claim claim) {
    std::lock_guard<std::mutex> lock(order_mu_);
    if (failed()) return;
    waiting_.emplace(claim.seq, std::move(claim.chunk));
    for (auto it = waiting_.begin(); it != waiting_.end() && it->first == next_out_;) {
      for (auto& q : queues_) q->push(it->second);
      it = waiting_.erase(it);
      ++next_out_;
    }
  }

  // A consumer thread.
  void consume_loop(ChunkConsumer& consumer, ChunkQueue& queue) {
    try {
      while (ChunkPtr c = queue.pop()) {
        if (failed()) return;  // the queue is cleared once every thread is joined
        if (cancelled()) throw interrupted(c->offset);
        consumer.consume(*c);
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  CopyPlanner& planner_;
  const ChunkReader& reader_;
  std::vector<ChunkConsumer*> consumers_;
  const std::atomic<bool>* cancel_;
  const size_t readers_;

  BufferPool pool_;
  Gate slots_;  // chunks in flight
  const size_t chunk_size_;

  std::mutex error_mu_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> bytes_read_{0};

  std::mutex plan_mu_;  // the planner and the claim order
  uint64_t next_planned_ = 0;

  std::mutex order_mu_;  // hand-on order, waiting_, pushes to the queues
  uint64_t next_out_ = 0;
  std::map<uint64_t, ChunkPtr> waiting_;
  std::vector<std::unique_ptr<ChunkQueue>> queues_;
};

}  // namespace

PipelineStats run_copy_pipeline(CopyPlanner& planner, const ChunkReader& reader,
                                std::span<ChunkConsumer* const> consumers,
                                const PipelineOptions& opts) {
  return Pipeline(planner, reader, consumers, opts).run();
}

}  // namespace vdisk
