// The pieces of the copy engine (converters/copy_plan.h, copy_pipeline.h,
// copy_consumers.h): the planner's chunks for a scripted device, the ordered
// hand-off, the memory bounds, and that failures and cancellation stop every
// stage without a hang. In-process fakes; hashes are checked against
// coreutils' sha256sum of the expected stream written to a file.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "converters/convert.h"
#include "converters/copy_consumers.h"
#include "converters/copy_pipeline.h"
#include "converters/copy_plan.h"
#include "formats/core/error.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB;

// The content of data extents: 4 KiB blocks of one non-zero byte each,
// except every fifth block, which is zeros (zero runs inside data).
uint8_t block_byte(uint64_t offset) {
  const uint64_t block = offset / 4096;
  return block % 5 == 3 ? 0 : static_cast<uint8_t>(block * 31 % 251 + 1);
}

struct ScriptRun {
  uint64_t length;
  ExtentType type;
};

// A device made of runs of data, zero and unallocated extents. Block status
// answers at most `max_answer` bytes (a format that stops after bounded
// work); reads fill data extents with block_byte() and the rest with zeros.
// Hooks let a test fail, slow down or observe reads and status queries.
class ScriptedDevice final : public BlockDevice {
 public:
  explicit ScriptedDevice(std::vector<ScriptRun> runs, uint64_t max_answer = UINT64_MAX)
      : runs_(std::move(runs)), max_answer_(max_answer) {
    for (const ScriptRun& r : runs_) size_ += r.length;
  }
  uint64_t size() const override { return size_; }
  ImageInfo info() const override {
    ImageInfo i;
    i.path = "scripted";
    i.format = "test";
    i.virtual_size = size_;
    return i;
  }

  std::function<void(uint64_t offset, size_t len)> on_read;  // may throw or block
  std::function<void(uint64_t offset)> on_status;            // may throw

  struct Read {
    uint64_t offset;
    size_t length;
    std::thread::id thread;
  };
  std::vector<Read> reads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }

  // The guest stream as it reads.
  std::vector<uint8_t> content() const {
    std::vector<uint8_t> out(size_);
    fill(0, out.data(), out.size());
    return out;
  }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reads_.push_back({offset, len, std::this_thread::get_id()});
    }
    if (on_read) on_read(offset, len);
    fill(offset, static_cast<uint8_t*>(buf), len);
  }
  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    if (on_status) on_status(offset);
    uint64_t start = 0;
    for (const ScriptRun& r : runs_) {
      if (offset < start + r.length)
        return Extent{std::min({start + r.length - offset, len, max_answer_}), r.type};
      start += r.length;
    }
    return Extent{len, ExtentType::kUnallocated};
  }

 private:
  void fill(uint64_t offset, uint8_t* p, size_t len) const {
    uint64_t start = 0;
    const uint64_t end = offset + len;
    for (const ScriptRun& r : runs_) {
      const uint64_t s = std::max(start, offset), e = std::min(start + r.length, end);
      for (uint64_t pos = s; pos < e;) {
        const uint64_t next = std::min(e, (pos / 4096 + 1) * 4096);
        const uint8_t v = r.type == ExtentType::kData ? block_byte(pos) : 0;
        std::fill(p + (pos - offset), p + (next - offset), v);
        pos = next;
      }
      start += r.length;
    }
  }

  std::vector<ScriptRun> runs_;
  uint64_t max_answer_;
  uint64_t size_ = 0;
  mutable std::mutex mu_;
  mutable std::vector<Read> reads_;
};

std::vector<PlannedChunk> plan_all(CopyPlanner& p) {
  std::vector<PlannedChunk> out;
  while (auto c = p.next()) out.push_back(*c);
  return out;
}

std::string describe(const std::vector<PlannedChunk>& plan) {
  std::string s;
  for (const PlannedChunk& c : plan) {
    s += "[" + std::to_string(c.offset / kKiB) + "K +" + std::to_string(c.length / kKiB) + "K " +
         (c.read ? "read" : "zero") + (c.unreadable ? " unreadable" : "") + "]\n";
  }
  return s;
}

// Runs `fn` on its own thread; a hang (a deadlock in the engine) aborts the
// test binary after a generous minute instead of blocking the suite.
void with_hang_guard(const std::function<void()>& fn) {
  std::packaged_task<void()> task(fn);
  std::future<void> done = task.get_future();
  std::thread t(std::move(task));
  if (done.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "test_pipeline: the copy hung (no return within 60 s)\n");
    std::abort();
  }
  t.join();
  done.get();
}

// Records what it is fed and checks the hand-off: one thread, chunks
// contiguous and in order, read bytes equal to the device's content.
class RecordingConsumer final : public ChunkConsumer {
 public:
  // `content`: the guest stream, to check read chunks against (optional).
  explicit RecordingConsumer(const std::vector<uint8_t>* content = nullptr) : content_(content) {}
  void consume(const Chunk& c) override {
    if (chunks == 0) thread = std::this_thread::get_id();
    if (std::this_thread::get_id() != thread) wrong_thread = true;
    if (c.offset != end) out_of_order = true;
    end = c.offset + c.length;
    ++chunks;
    if (c.read) buffers.insert(c.bytes);
    if (content_ && c.read &&
        !std::equal(c.bytes, c.bytes + c.length, content_->begin() + c.offset))
      wrong_bytes = true;
    if (hook) hook(c);
  }
  std::function<void(const Chunk&)> hook;
  std::thread::id thread;
  uint64_t end = 0, chunks = 0;
  bool wrong_thread = false, out_of_order = false, wrong_bytes = false;
  std::set<const uint8_t*> buffers;

 private:
  const std::vector<uint8_t>* content_;
};

ChunkReader::Options plain_read(size_t zero_granularity = 0) {
  ChunkReader::Options o;
  o.zero_granularity = zero_granularity;
  return o;
}

}  // namespace

TEST_CASE("planner: data gathered into large reads, zeros capped, unreadable edges kept",
          "[pipeline]") {
  // 96 KiB of data, 32 KiB zero, 2 MiB unallocated, 224 KiB data; block
  // status answers 16 KiB at a time.
  ScriptedDevice dev({{96 * kKiB, ExtentType::kData},
                      {32 * kKiB, ExtentType::kZero},
                      {2 * kMiB, ExtentType::kUnallocated},
                      {224 * kKiB, ExtentType::kData}},
                     16 * kKiB);
  // One unreadable range inside zeros, one inside data.
  const std::vector<ByteRange> bad = {{100 * kKiB, 10 * kKiB}, {2240 * kKiB, 16 * kKiB}};
  CHECK(check_unreadable_ranges(bad, dev.size()) == 26 * kKiB);
  PlanOptions o;
  o.chunk_size = 64 * kKiB;
  o.max_zero_chunk = 1 * kMiB;
  o.unreadable = bad;
  o.read_unreadable = true;
  CopyPlanner p(dev, o);
  const std::vector<PlannedChunk> plan = plan_all(p);
  CHECK(describe(plan) ==
        "[0K +64K read]\n"  // four 16 KiB answers gathered
        "[64K +32K read]\n"
        "[96K +4K zero]\n"
        "[100K +10K zero unreadable]\n"
        "[110K +1024K zero]\n"  // zero and unallocated gathered, cut at max_zero_chunk
        "[1134K +1024K zero]\n"
        "[2158K +18K zero]\n"
        "[2176K +64K read]\n"
        "[2240K +16K read unreadable]\n"
        "[2256K +64K read]\n"
        "[2320K +64K read]\n"
        "[2384K +16K read]\n");
  CHECK(p.position() == dev.size());
  CHECK_FALSE(p.next());

  // Without a hash the stored bytes of unreadable ranges are not wanted.
  o.read_unreadable = false;
  CopyPlanner q(dev, o);
  const std::vector<PlannedChunk> plan2 = plan_all(q);
  REQUIRE(plan2.size() == plan.size());
  CHECK(describe({plan2[8]}) == "[2240K +16K zero unreadable]\n");
}

TEST_CASE("planner: a failing block status stops, or is planned as data to rescue", "[pipeline]") {
  ScriptedDevice dev({{1 * kMiB, ExtentType::kUnallocated}});
  dev.on_status = [](uint64_t off) {
    if (off >= 256 * kKiB && off < 320 * kKiB) throw_errno("scripted", off, "read", EIO);
  };
  PlanOptions o;
  o.chunk_size = 128 * kKiB;
  o.max_zero_chunk = 256 * kKiB;
  {
    CopyPlanner p(dev, o);
    REQUIRE(p.next());
    CHECK_THROWS_AS(p.next(), Error);
  }
  o.status_errors_as_data = true;
  CopyPlanner p(dev, o);
  CHECK(describe(plan_all(p)) ==
        "[0K +256K zero]\n"
        "[256K +128K read]\n"  // the failing query: data, one chunk long
        "[384K +256K zero]\n"
        "[640K +256K zero]\n"
        "[896K +128K zero]\n");
  // Only Error(kIo) is rescued: corrupt metadata stops.
  dev.on_status = [](uint64_t off) {
    if (off >= 256 * kKiB) throw Error(ErrorKind::kCorrupt, "scripted", off, "bad table");
  };
  CopyPlanner c(dev, o);
  REQUIRE(c.next());
  CHECK_THROWS_AS(c.next(), Error);
}

TEST_CASE("planner: unreadable ranges must be sorted, disjoint and inside", "[pipeline]") {
  using V = std::vector<ByteRange>;
  CHECK_THROWS_AS(check_unreadable_ranges(V{{0, 0}}, 100), Error);
  CHECK_THROWS_AS(check_unreadable_ranges(V{{90, 20}}, 100), Error);
  CHECK_THROWS_AS(check_unreadable_ranges(V{{10, 20}, {25, 5}}, 100), Error);
  CHECK_THROWS_AS(check_unreadable_ranges(V{{50, 5}, {10, 5}}, 100), Error);
  CHECK(check_unreadable_ranges(V{{10, 20}, {30, 70}}, 100) == 90);
  CHECK(check_unreadable_ranges(V{}, 0) == 0);
}

TEST_CASE("pipeline: chunks read out of order reach every consumer in order", "[pipeline]") {
  ScriptedDevice dev({{3 * kMiB, ExtentType::kData},
                      {1 * kMiB, ExtentType::kUnallocated},
                      {2 * kMiB + 512, ExtentType::kData}});
  // Reads finish out of order: some take a few milliseconds longer.
  dev.on_read = [](uint64_t off, size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(off / (64 * kKiB) % 3 * 2));
  };
  const std::vector<uint8_t> content = dev.content();
  for (size_t readers : {1, 2, 4}) {
    INFO("readers " << readers);
    PlanOptions po;
    po.chunk_size = 64 * kKiB;
    po.max_zero_chunk = 256 * kKiB;
    CopyPlanner planner(dev, po);
    ChunkReader reader(dev, plain_read());
    RecordingConsumer a(&content), b;
    std::vector<ChunkConsumer*> consumers = {&a, &b};
    PipelineOptions o;
    o.readers = readers;
    o.buffers = 3;
    o.chunk_size = 64 * kKiB;
    PipelineStats st;
    with_hang_guard([&] { st = run_copy_pipeline(planner, reader, consumers, o); });
    CHECK(st.bytes_read == 5 * kMiB + 512);
    for (RecordingConsumer* c : {&a, &b}) {
      CHECK(c->end == dev.size());
      CHECK_FALSE(c->out_of_order);
      CHECK_FALSE(c->wrong_thread);
      // Memory: never more buffers than asked for (raised to readers + 1).
      CHECK(c->buffers.size() <= std::max<size_t>(3, readers + 1));
    }
    CHECK_FALSE(a.wrong_bytes);
    CHECK(a.thread != b.thread);
    if (readers > 1) {
      std::set<std::thread::id> threads;
      for (const auto& r : dev.reads()) threads.insert(r.thread);
      CHECK(threads.size() > 1);
    }
  }
}

TEST_CASE("pipeline: one reader reads strictly in order (standard input)", "[pipeline]") {
  ScriptedDevice dev({{4 * kMiB + 100, ExtentType::kData}});
  PlanOptions po;
  po.chunk_size = 64 * kKiB;
  CopyPlanner planner(dev, po);
  ChunkReader reader(dev, plain_read(4096));
  RecordingConsumer a;
  std::vector<ChunkConsumer*> consumers = {&a};
  PipelineOptions o;
  o.readers = 1;
  o.chunk_size = po.chunk_size;
  with_hang_guard([&] { run_copy_pipeline(planner, reader, consumers, o); });
  const auto reads = dev.reads();
  REQUIRE(reads.size() == 65);
  uint64_t pos = 0;
  for (const auto& r : reads) {
    CHECK(r.offset == pos);
    CHECK(r.thread == reads[0].thread);
    pos = r.offset + r.length;
  }
  CHECK(pos == dev.size());
}

TEST_CASE("pipeline: zero chunks are bounded in flight too", "[pipeline]") {
  // 1 TiB of nothing: without the in-flight bound the readers would hand on
  // all of it while a slow consumer is still at the first chunk.
  ScriptedDevice dev({{uint64_t{1} << 40, ExtentType::kUnallocated}});
  PlanOptions po;
  po.max_zero_chunk = 64 * kMiB;
  CopyPlanner planner(dev, po);
  ChunkReader reader(dev, plain_read());
  RecordingConsumer slow, fast;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t fast_seen = 0;
  uint64_t seen_while_blocked = 0;
  fast.hook = [&](const Chunk&) {
    std::lock_guard<std::mutex> lock(mu);
    ++fast_seen;
    cv.notify_all();
  };
  slow.hook = [&](const Chunk& c) {
    if (c.offset != 0) return;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return fast_seen >= 16; });
    // Give unbounded readers time to run far ahead; then look.
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    lock.lock();
    seen_while_blocked = fast_seen;
  };
  std::atomic<bool> cancel{false};
  RecordingConsumer stopper;
  stopper.hook = [&](const Chunk& c) {
    if (c.offset >= 100 * po.max_zero_chunk) cancel = true;  // enough
  };
  std::vector<ChunkConsumer*> consumers = {&slow, &fast, &stopper};
  PipelineOptions o;
  o.max_in_flight = 16;
  o.cancel = &cancel;
  with_hang_guard(
      [&] { CHECK_THROWS_AS(run_copy_pipeline(planner, reader, consumers, o), Error); });
  CHECK(seen_while_blocked == 16);
  CHECK(dev.reads().empty());
}

TEST_CASE("pipeline: a failing consumer stops readers waiting for buffers", "[pipeline]") {
  // 64 GiB of data in 64 KiB chunks and the fewest buffers: the readers
  // wait for buffers most of the time.
  ScriptedDevice dev({{uint64_t{64} << 30, ExtentType::kData}});
  for (size_t readers : {1, 3}) {
    INFO("readers " << readers);
    PlanOptions po;
    po.chunk_size = 64 * kKiB;
    CopyPlanner planner(dev, po);
    ChunkReader reader(dev, plain_read(4096));
    RecordingConsumer ok, failing;
    failing.hook = [](const Chunk& c) {
      if (c.offset == 40 * 64 * kKiB) throw Error(ErrorKind::kIo, "out.img", c.offset, "disk full");
    };
    std::vector<ChunkConsumer*> consumers = {&ok, &failing};
    PipelineOptions o;
    o.readers = readers;
    o.buffers = 1;
    o.chunk_size = po.chunk_size;
    with_hang_guard([&] {
      try {
        run_copy_pipeline(planner, reader, consumers, o);
        FAIL("the consumer's error was lost");
      } catch (const Error& e) {
        CHECK(e.message() == "disk full");
        CHECK(e.offset() == 40 * 64 * kKiB);
      }
    });
    // The readers stopped soon after: at most the buffers and slots in
    // flight past the failing chunk.
    CHECK(planner.position() <= (41 + 64 + readers) * 64 * kKiB);
  }
}

TEST_CASE("pipeline: a failing reader stops consumers waiting for chunks", "[pipeline]") {
  ScriptedDevice dev({{64 * kMiB, ExtentType::kData}});
  const uint64_t bad = 20 * kMiB + 4096;
  // A slow read before the failing one, so the consumers sit idle.
  dev.on_read = [&](uint64_t off, size_t len) {
    if (off + len > bad && off <= bad) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      throw Error(ErrorKind::kCorrupt, "scripted", bad, "bad grain");
    }
  };
  for (OnReadError mode : {OnReadError::kStop, OnReadError::kContinue}) {
    INFO("continue " << (mode == OnReadError::kContinue));
    PlanOptions po;
    po.chunk_size = 1 * kMiB;
    CopyPlanner planner(dev, po);
    ChunkReader::Options ro;
    ro.on_read_error = mode;  // corrupt data is never skipped
    ChunkReader reader(dev, ro);
    RecordingConsumer a, b;
    std::vector<ChunkConsumer*> consumers = {&a, &b};
    PipelineOptions o;
    o.readers = 3;
    o.chunk_size = po.chunk_size;
    with_hang_guard([&] {
      try {
        run_copy_pipeline(planner, reader, consumers, o);
        FAIL("the read error was lost");
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::kCorrupt);
        CHECK(e.offset() == bad);
      }
    });
    // Nothing at or past the failing chunk was handed on.
    CHECK(a.end <= 20 * kMiB);
  }
}

namespace {

// A writer whose writes take a while (a slow disk): with the readers waiting
// for buffers behind it, cancellation must still stop the copy at once.
// Checks the ImageWriter contract on the way.
class SlowWriter final : public ImageWriter {
 public:
  explicit SlowWriter(uint64_t size) : size_(size) {}
  uint64_t virtual_size() const override { return size_; }
  void write(uint64_t off, const void*, size_t len) override { call(off, len); }
  void write_zeroes(uint64_t off, uint64_t len) override { call(off, len); }
  void finish() override { finished = true; }
  void abort() override { aborted = true; }
  std::vector<std::string> output_files() const override { return {}; }

  std::function<void(uint64_t)> on_write;
  uint64_t calls = 0;
  bool contract_broken = false, finished = false, aborted = false;

 private:
  void call(uint64_t off, uint64_t len) {
    if (calls == 0) thread_ = std::this_thread::get_id();
    if (off < end_ || std::this_thread::get_id() != thread_ || off + len > size_)
      contract_broken = true;
    end_ = off + len;
    ++calls;
    if (on_write) on_write(off);
  }
  uint64_t size_;
  uint64_t end_ = 0;
  std::thread::id thread_;
};

}  // namespace

TEST_CASE("copy_device: cancel stops a copy stuck behind a slow writer within a chunk",
          "[pipeline]") {
  for (size_t readers : {1, 2}) {
    INFO("readers " << readers);
    ScriptedDevice dev({{uint64_t{1} << 40, ExtentType::kData}});
    SlowWriter w(dev.size());
    std::atomic<bool> cancel{false};
    uint64_t calls_at_cancel = 0;
    w.on_write = [&](uint64_t off) {
      if (off % kMiB == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (off >= 8 * kMiB && !cancel) {
        calls_at_cancel = w.calls;
        cancel = true;  // as the SIGINT handler does
      }
    };
    // The source is slow too once the signal came: a reader that was
    // waiting for a buffer notices the signal only after its next read; the
    // consumers must not go on meanwhile.
    dev.on_read = [&](uint64_t, size_t) {
      if (cancel) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    };
    CopyOptions o;
    o.algos = {HashAlgo::kSha256};
    o.cancel = &cancel;
    o.chunk_size = 1 * kMiB;
    o.buffers = 3;
    o.readers = readers;
    with_hang_guard([&] {
      try {
        copy_device(dev, &w, o);
        FAIL("the cancellation was ignored");
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::kInterrupted);
      }
    });
    // The writer finished the chunk it was in and took no further one (a
    // 1 MiB chunk of 4 KiB blocks, every fifth zero, is about 103 calls).
    CHECK(w.calls - calls_at_cancel <= 110);
    CHECK_FALSE(w.contract_broken);
    CHECK_FALSE(w.finished);
    CHECK_FALSE(w.aborted);
    // Reads: the chunks written, plus at most one per buffer.
    CHECK(dev.reads().size() <= 9 + 3 + 1);
  }
}

namespace {

struct RecordingProgress final : ProgressSink {
  void begin(const std::string& p, uint64_t t) override {
    phase = p;
    total = t;
    caller = std::this_thread::get_id();
  }
  void update(uint64_t done) override {
    if (!updates.empty() && (done < updates.back() || std::this_thread::get_id() != updater))
      broken = true;
    updater = std::this_thread::get_id();
    updates.push_back(done);
  }
  void end() override {
    ended = true;
    if (std::this_thread::get_id() != caller) broken = true;
  }
  std::string phase;
  uint64_t total = 0;
  std::vector<uint64_t> updates;
  std::thread::id caller, updater;
  bool ended = false, broken = false;
};

}  // namespace

TEST_CASE("copy_device: a scripted device with holes, zero runs and unreadable ranges",
          "[pipeline]") {
  ScriptedDevice dev({{1 * kMiB + 8 * kKiB, ExtentType::kData},
                      {3 * kMiB, ExtentType::kUnallocated},
                      {512 * kKiB, ExtentType::kZero},
                      {2 * kMiB + 512, ExtentType::kData}},
                     64 * kKiB);
  const std::vector<ByteRange> bad = {{512 * kKiB, 128 * kKiB}, {5 * kMiB, 4 * kKiB}};
  std::vector<uint8_t> stored = dev.content();
  std::vector<uint8_t> zero_filled = stored;
  for (const ByteRange& b : bad)
    std::fill(zero_filled.begin() + b.start, zero_filled.begin() + b.start + b.length, 0);
  TempDir dir;
  write_file(dir / "stored", stored);
  write_file(dir / "zero-filled", zero_filled);
  // The output rounded up to the next MiB.
  std::vector<uint8_t> padded = zero_filled;
  padded.resize((padded.size() + kMiB - 1) / kMiB * kMiB);
  write_file(dir / "output", padded);

  for (size_t readers : {1, 2, 3}) {
    INFO("readers " << readers);
    SlowWriter w(padded.size());
    RecordingProgress progress;
    CopyOptions o;
    o.algos = {HashAlgo::kSha256};
    o.unreadable = bad;
    o.readers = readers;
    o.chunk_size = 256 * kKiB;
    o.progress = &progress;
    o.phase = "testing";
    CopyResult r;
    with_hang_guard([&] { r = copy_device(dev, &w, o); });
    REQUIRE(r.hashes.size() == 1);
    CHECK(r.hashes[0].hex == coreutils_digest("sha256sum", dir / "stored"));
    CHECK(r.hashes_zero_filled.at(0).hex == coreutils_digest("sha256sum", dir / "zero-filled"));
    CHECK(r.output_hashes.at(0).hex == coreutils_digest("sha256sum", dir / "output"));
    CHECK(r.unreadable_bytes == 132 * kKiB);
    // Read: the data extents, the unreadable one included (the as-stored
    // hash needs it); never the 3.5 MiB of holes.
    CHECK(r.data_bytes_read == 3 * kMiB + 8 * kKiB + 512);
    // Written: the data blocks outside the unreadable ranges, every fifth
    // 4 KiB block being zeros.
    uint64_t data_blocks = 0;
    for (uint64_t off = 0; off < zero_filled.size(); off += 4096) {
      const uint64_t n = std::min<uint64_t>(4096, zero_filled.size() - off);
      if (!is_zero(zero_filled.data() + off, n)) data_blocks += n;
    }
    CHECK(r.bytes_written == data_blocks);
    CHECK(r.bytes_written + r.zero_bytes + r.unreadable_bytes == dev.size());
    CHECK_FALSE(w.contract_broken);
    CHECK_FALSE(w.finished);
    CHECK_FALSE(w.aborted);
    CHECK(progress.phase == "testing");
    CHECK(progress.total == dev.size());
    CHECK(progress.ended);
    CHECK_FALSE(progress.broken);
    REQUIRE_FALSE(progress.updates.empty());
    CHECK(progress.updates.back() == dev.size());
    CHECK(progress.updater != progress.caller);
  }
}

TEST_CASE("copy_device: read errors of neighbouring chunks merge across the chunk edge",
          "[pipeline]") {
  ScriptedDevice dev({{2 * kMiB, ExtentType::kData}});
  // A bad stretch across the edge of two 256 KiB chunks.
  const uint64_t s = 256 * kKiB - 8 * kKiB, e = 256 * kKiB + 12 * kKiB;
  dev.on_read = [&](uint64_t off, size_t len) {
    if (off < e && s < off + len) throw_errno("scripted", std::max(off, s), "read", EIO);
  };
  for (size_t readers : {1, 2}) {
    INFO("readers " << readers);
    CopyOptions o;
    o.algos = {HashAlgo::kMd5};
    o.on_read_error = OnReadError::kContinue;
    o.chunk_size = 256 * kKiB;
    o.readers = readers;
    CopyResult r;
    with_hang_guard([&] { r = copy_device(dev, nullptr, o); });
    REQUIRE(r.read_errors.size() == 1);
    CHECK(r.read_errors[0].start == s);
    CHECK(r.read_errors[0].length == e - s);
    CHECK(r.read_error_bytes == e - s);
    CHECK(r.hashes.empty());
    CHECK(r.hashes_zero_filled.size() == 1);
  }
}
