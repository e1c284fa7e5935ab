#include "formats/vmdk/vmdk_stream_writer.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/vmdk/vmdk_deflate.h"
#include "formats/vmdk/vmdk_grain_feed.h"
#include "formats/vmdk/vmdk_layout.h"

namespace vdisk::vmdk {

namespace {

constexpr size_t kOutputBuffer = 1 << 20;

struct Job {
  uint64_t grain = 0;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  bool done = false;
  std::exception_ptr error;
};

}  // namespace

struct StreamExtentWriter::Impl {
  OutputFile& out;
  uint64_t capacity;
  uint64_t grain_bytes;
  uint32_t gtes = kDefaultGtes;
  SparseHeader header;
  GrainFeed feed;
  uint64_t pos = 0;  // bytes produced so far (written or buffered)
  std::vector<uint8_t> obuf;

  // Grain tables are built as grains are written, in order.
  uint64_t cur_table = ~uint64_t{0};
  std::vector<uint32_t> gt;
  bool gt_any = false;
  // The grain directory, as (table, sector) of the tables written, in table
  // order: a dense directory is 4 bytes per 32 MiB of guest whether or not
  // anything is stored there (128 MiB for 1 PiB).
  uint64_t ntables = 0;
  std::vector<std::pair<uint64_t, uint32_t>> gd;

  // Compression: workers take jobs from `work`; the writing thread writes
  // them out from the front of `pending`, so the output order is the input
  // order whatever the thread timing.
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::deque<Job*> work;
  std::deque<std::unique_ptr<Job>> pending;
  std::vector<std::unique_ptr<Job>> spare;
  std::vector<std::thread> threads;
  bool stop = false;
  size_t max_inflight = 8;

  Impl(OutputFile& o, uint64_t cap, uint64_t gb, const std::string& desc, unsigned nthreads)
      : out(o), capacity(cap), grain_bytes(gb), feed(gb) {
    uint64_t ngrains = div_round_up(capacity * kSector, grain_bytes);
    ntables = div_round_up(ngrains, gtes);
    gt.assign(gtes, 0);
    uint64_t desc_sectors = std::max<uint64_t>(1, div_round_up(desc.size(), kSector));
    header.version = 3;
    header.flags = kFlagNewlineTest | kFlagCompressed | kFlagMarkers;
    header.capacity = capacity;
    header.grain_size = grain_bytes / kSector;
    header.descriptor_offset = 1;
    header.descriptor_size = desc_sectors;
    header.num_gtes_per_gt = gtes;
    header.rgd_offset = 0;
    header.gd_offset = kGdAtEnd;
    header.overhead = 1 + desc_sectors;
    header.compress_algorithm = kCompressDeflate;
    std::vector<uint8_t> head(static_cast<size_t>((1 + desc_sectors) * kSector), 0);
    encode_sparse_header(header, head.data());
    std::memcpy(head.data() + kSector, desc.data(), desc.size());
    append(head.data(), head.size());

    if (nthreads == 0) nthreads = std::max(1u, std::thread::hardware_concurrency());
    max_inflight = nthreads * 4;
    for (unsigned i = 0; i < nthreads; ++i) threads.emplace_back([this] { worker(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : threads) t.join();
  }

  void worker() {
    GrainCompressor comp;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(lock, [&] { return stop || !work.empty(); });
        if (stop) return;
        job = work.front();
        work.pop_front();
      }
      try {
        comp.compress(job->in.data(), job->in.size(), job->out);
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        job->done = true;
      }
      cv_done.notify_all();
    }
  }

  void append(const void* p, size_t len) {
    const auto* b = static_cast<const uint8_t*>(p);
    obuf.insert(obuf.end(), b, b + len);
    pos += len;
    if (obuf.size() >= kOutputBuffer) flush_output();
  }
  void pad_to_sector() {
    static const uint8_t zeros[kSector] = {};
    if (pos % kSector) append(zeros, static_cast<size_t>(kSector - pos % kSector));
  }
  void flush_output() {
    if (obuf.empty()) return;
    out.write_at(pos - obuf.size(), obuf.data(), obuf.size());
    obuf.clear();
  }
  void metadata_marker(uint64_t sectors, uint32_t type) {
    uint8_t m[kSector] = {};
    store_le64(m, sectors);
    store_le32(m + 8, 0);
    store_le32(m + 12, type);
    append(m, sizeof m);
  }

  // Directory and table entries are 32-bit sector numbers.
  uint32_t sector32(uint64_t byte_pos) const {
    if (byte_pos / kSector > 0xffffffffull) {
      throw Error(ErrorKind::kUnsupported, out.path(), byte_pos,
                  "streamOptimized output exceeds the 2 TiB a 32-bit sector number can address");
    }
    return static_cast<uint32_t>(byte_pos / kSector);
  }

  void close_table() {
    if (cur_table == ~uint64_t{0} || !gt_any) return;
    uint64_t gt_bytes = uint64_t{gtes} * 4;
    metadata_marker(div_round_up(gt_bytes, kSector), kMarkerGrainTable);
    gd.emplace_back(cur_table, sector32(pos));
    std::vector<uint8_t> raw(static_cast<size_t>(gt_bytes));
    for (uint32_t i = 0; i < gtes; ++i) store_le32(raw.data() + 4 * i, gt[i]);
    append(raw.data(), raw.size());
    pad_to_sector();
  }

  void write_job(Job& job) {
    if (job.error) std::rethrow_exception(job.error);
    uint64_t table = job.grain / gtes;
    if (table != cur_table) {
      close_table();
      cur_table = table;
      std::fill(gt.begin(), gt.end(), 0);
      gt_any = false;
    }
    gt[job.grain % gtes] = sector32(pos);
    gt_any = true;
    uint8_t m[kGrainMarkerHeader];
    store_le64(m, job.grain * (grain_bytes / kSector));
    store_le32(m + 8, static_cast<uint32_t>(job.out.size()));
    append(m, sizeof m);
    append(job.out.data(), job.out.size());
    pad_to_sector();
  }

  // Writes every finished job at the front; with `all`, waits for the rest.
  void drain(bool all) {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (pending.empty()) return;
        bool must_wait = all || pending.size() >= max_inflight;
        if (!pending.front()->done) {
          if (!must_wait) return;
          cv_done.wait(lock, [&] { return pending.front()->done; });
        }
        job = std::move(pending.front());
        pending.pop_front();
      }
      write_job(*job);
      job->done = false;
      job->error = nullptr;
      spare.push_back(std::move(job));
    }
  }

  void submit(uint64_t grain, const uint8_t* data) {
    if (is_zero(data, static_cast<size_t>(grain_bytes))) return;  // stays unallocated
    std::unique_ptr<Job> job;
    if (!spare.empty()) {
      job = std::move(spare.back());
      spare.pop_back();
    } else {
      job = std::make_unique<Job>();
    }
    job->grain = grain;
    job->in.assign(data, data + grain_bytes);
    {
      std::lock_guard<std::mutex> lock(mu);
      work.push_back(job.get());
      pending.push_back(std::move(job));
    }
    cv_work.notify_one();
    drain(false);
  }

  void write(uint64_t offset, const uint8_t* buf, size_t len) {
    feed.write(offset, buf, len, [&](uint64_t g, const uint8_t* p, size_t count) {
      for (size_t i = 0; i < count; ++i) submit(g + i, p + i * grain_bytes);
    });
  }

  void finish() {
    feed.flush([&](uint64_t g, const uint8_t* p, size_t) { submit(g, p); });
    drain(true);
    close_table();
    // Grain directory, footer, end-of-stream (VDF: the footer and the EOS
    // marker occupy the last two sectors... after the footer's marker).
    uint64_t gd_bytes = ntables * 4;
    metadata_marker(div_round_up(gd_bytes, kSector), kMarkerGrainDirectory);
    SparseHeader footer = header;
    footer.gd_offset = pos / kSector;
    // Written a window at a time from the sparse list.
    constexpr uint64_t kWindow = 256 * 1024;  // entries
    std::vector<uint8_t> raw;
    size_t next = 0;
    for (uint64_t first = 0; first < ntables; first += kWindow) {
      const uint64_t n = std::min(kWindow, ntables - first);
      raw.assign(static_cast<size_t>(n * 4), 0);
      for (; next < gd.size() && gd[next].first < first + n; ++next)
        store_le32(raw.data() + 4 * (gd[next].first - first), gd[next].second);
      append(raw.data(), raw.size());
    }
    pad_to_sector();
    metadata_marker(1, kMarkerFooter);
    uint8_t f[kSector];
    encode_sparse_header(footer, f);
    append(f, sizeof f);
    metadata_marker(0, kMarkerEos);
    flush_output();
  }
};

StreamExtentWriter::StreamExtentWriter(OutputFile& out, uint64_t capacity_sectors,
                                       uint64_t grain_bytes, const std::string& descriptor,
                                       unsigned threads)
    : impl_(std::make_unique<Impl>(out, capacity_sectors, grain_bytes, descriptor, threads)) {}
StreamExtentWriter::~StreamExtentWriter() = default;
void StreamExtentWriter::write(uint64_t offset, const uint8_t* buf, size_t len) {
  impl_->write(offset, buf, len);
}
void StreamExtentWriter::finish() {
  impl_->finish();
}

}  // namespace vdisk::vmdk
