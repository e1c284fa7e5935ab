#include "formats/e01/e01_writer.h"

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "formats/core/block_device.h"
#include "formats/core/deflate.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/guid.h"
#include "formats/core/ordered_pool.h"
#include "formats/core/single_file_writer.h"
#include "formats/e01/e01_chunk.h"
#include "formats/e01/e01_header.h"
#include "formats/e01/e01_layout.h"

namespace vdisk::e01 {

namespace {

// ewfacquire's default and EnCase's usual one: 1.4 GiB.
constexpr uint64_t kDefaultSegmentSize = 1503238553;
constexpr uint64_t kMinSegmentSize = 1 << 20;
// Table entries hold 31-bit offsets from the table base (the sectors
// section), so a sectors section stays below 2 GiB.
constexpr uint64_t kMaxSectorsSection = 0x7fffffffull;
constexpr size_t kOutputBuffer = 4 << 20;
// Chunk buffers in flight, in bytes: compression jobs plus what the hash
// threads have not reached yet.
constexpr uint64_t kInFlightBytes = 48 << 20;

}  // namespace

std::vector<OptionSpec> create_options() {
  return {
      {"compression",
       OptionType::kEnum,
       "fast",
       "chunk compression (deflate): none (all-zero chunks are still stored compressed), fast, "
       "best",
       {"none", "fast", "best"}},
      {"segment_size",
       OptionType::kSize,
       "",
       "largest segment file (.E01, .E02, ...), 1M or more (default 1.4 GiB)",
       {}},
      {"sectors_per_chunk",
       OptionType::kInt,
       "64",
       "sectors per chunk: 16, 32, 64, ... 32768 (EnCase 7 reads up to 1024)",
       {}},
      {"media_type",
       OptionType::kEnum,
       "fixed",
       "media type recorded in the volume section",
       {"fixed", "removable", "optical", "memory"}},
      {"case_number", OptionType::kString, "", "case number (at most 2999 characters)", {}},
      {"evidence_number", OptionType::kString, "", "evidence number (at most 2999 characters)", {}},
      {"examiner", OptionType::kString, "", "examiner name (at most 2999 characters)", {}},
      {"description",
       OptionType::kString,
       "",
       "description (at most 2999 characters; default: the source's file name)",
       {}},
      {"notes", OptionType::kString, "", "notes (at most 2999 characters)", {}},
  };
}

namespace {

// A chunk's bytes on their way to the compressors and the hash threads;
// returned to the pool when all of them are done with it.
struct ChunkBuf {
  std::vector<uint8_t> data;
  std::atomic<int> refs{0};
};

class BufPool {
 public:
  BufPool(size_t count, size_t bytes) {
    for (size_t i = 0; i < count; ++i) {
      all_.push_back(std::make_unique<ChunkBuf>());
      all_.back()->data.resize(bytes);
      free_.push_back(all_.back().get());
    }
  }
  ChunkBuf* acquire(int refs) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    ChunkBuf* b = free_.back();
    free_.pop_back();
    b->refs.store(refs);
    return b;
  }
  void release(ChunkBuf* b) {
    if (b->refs.fetch_sub(1) != 1) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<ChunkBuf>> all_;
  std::vector<ChunkBuf*> free_;
};

// One digest of the media on a thread of its own, fed in guest order: chunk
// buffers (released when hashed) and runs of zeros (merged).
class StreamHasher {
 public:
  StreamHasher(const EVP_MD* md, BufPool& pool) : pool_(pool) {
    ctx_ = EVP_MD_CTX_new();
    if (!ctx_ || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) throw std::bad_alloc();
    thread_ = std::thread([this] { run(); });
  }
  ~StreamHasher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    // Buffers still queued after a failure go back to the pool.
    for (Item& i : q_) {
      if (i.buf) pool_.release(i.buf);
    }
    EVP_MD_CTX_free(ctx_);
  }
  void data(ChunkBuf* b, size_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back({b, len});
    cv_.notify_one();
  }
  void zeros(uint64_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!q_.empty() && !q_.back().buf) {
      q_.back().len += len;
    } else {
      q_.push_back({nullptr, len});
    }
    cv_.notify_one();
  }
  // Waits for everything queued and returns the digest.
  std::vector<uint8_t> finish() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return (q_.empty() && !busy_) || error_; });
    if (error_) std::rethrow_exception(error_);
    std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx_, out.data(), &n);
    out.resize(n);
    return out;
  }

 private:
  struct Item {
    ChunkBuf* buf;
    uint64_t len;
  };
  void run() {
    static const std::vector<uint8_t> zero(1 << 20, 0);
    for (;;) {
      Item it;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
        if (stop_) return;
        it = q_.front();
        q_.pop_front();
        busy_ = true;
      }
      try {
        if (it.buf) {
          EVP_DigestUpdate(ctx_, it.buf->data.data(), static_cast<size_t>(it.len));
          pool_.release(it.buf);
        } else {
          for (uint64_t left = it.len; left > 0;) {
            const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zero.size()));
            EVP_DigestUpdate(ctx_, zero.data(), n);
            left -= n;
          }
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      done_cv_.notify_all();
    }
  }

  BufPool& pool_;
  EVP_MD_CTX* ctx_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Item> q_;
  bool busy_ = false;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// A chunk on its way through the compressors.
struct Job {
  uint64_t chunk = 0;
  ChunkBuf* in = nullptr;
  bool zero = false;  // an all-zero chunk: no input, stored as zero_stream_
  size_t len = 0;
  std::vector<uint8_t> out;
  bool compressed = false;
};

// One segment file being written: buffered appends, and patches of what was
// written before (section descriptors whose size is known only later).
class SegmentOut {
 public:
  SegmentOut(std::unique_ptr<OutputFile> out, uint32_t number)
      : out_(std::move(out)), number_(number) {}
  uint64_t pos() const { return pos_; }
  uint32_t number() const { return number_; }
  OutputFile& file() { return *out_; }
  void append(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    pos_ += n;
    if (buf_.size() >= kOutputBuffer) flush();
  }
  void patch(uint64_t at, const void* p, size_t n) {
    const uint64_t buffered_from = pos_ - buf_.size();
    if (at >= buffered_from) {
      std::memcpy(buf_.data() + (at - buffered_from), p, n);
    } else {
      flush();
      out_->write_at(at, p, n);
    }
  }
  void flush() {
    if (buf_.empty()) return;
    out_->write_at(pos_ - buf_.size(), buf_.data(), buf_.size());
    buf_.clear();
  }
  // A section: its descriptor (next = end of the data) and its data.
  void section(const std::string& type, const uint8_t* data, size_t n) {
    uint8_t d[kSectionDescriptorSize];
    encode_section_descriptor(type, pos_ + kSectionDescriptorSize + n, kSectionDescriptorSize + n,
                              d);
    append(d, sizeof d);
    if (n) append(data, n);
  }
  // "next" or "done": EnCase writes size 0 and a next offset pointing at
  // the section itself (EWF "Next section", "Done section").
  void last_section(const std::string& type) {
    uint8_t d[kSectionDescriptorSize];
    encode_section_descriptor(type, pos_, 0, d);
    append(d, sizeof d);
  }

 private:
  std::unique_ptr<OutputFile> out_;
  uint32_t number_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> buf_;
};

int compression_level(const std::string& c) {
  if (c == "none") return -1;
  // libdeflate's levels (zlib's in a build without it), measured against
  // ewfacquire -c fast (zlib level 1) and -c best (zlib level 9).
  if (c == "fast") return 1;
  // On bench/'s mixed disk libdeflate level 6 stores 2 % less than zlib's
  // level 9 (what ewfacquire -c best uses) for half the CPU of libdeflate's
  // level 9, which saves only 0.7 % more.
  return 6;
}

class E01Writer final : public ImageWriter {
 public:
  explicit E01Writer(const CreateRequest& req) : env_(req.env ? *req.env : Env::posix()) {
    const Options& o = req.options;
    path_ = req.path;
    if (path_ == "-") {
      throw_invalid("-",
                    "E01 cannot be written to standard output (its sections are patched "
                    "once their sizes are known)");
    }
    const std::string base = path_basename(path_);
    const size_t dot = base.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : base.substr(dot + 1);
    if (ext != "E01" && ext != "e01") {
      throw_invalid(path_,
                    "an E01 image must be named *.E01 (its further segments are named "
                    "from it: .E02 ... .E99, .EAA ...)");
    }
    stem_ = path_.substr(0, path_.size() - 3);
    letter_ = ext[0];
    compression_ = o.get_string("compression");
    level_ = compression_level(compression_);
    segment_size_ = o.is_set("segment_size") ? o.get_size("segment_size") : kDefaultSegmentSize;
    const int64_t spc = o.get_int("sectors_per_chunk");
    if (spc < 16 || spc > 32768 || (spc & (spc - 1)) != 0) {
      throw_invalid(path_, "option sectors_per_chunk: " + std::to_string(spc) +
                               " is not a power of two from 16 to 32768");
    }
    bps_ = req.sector_size ? req.sector_size : 512;
    if (bps_ < 512 || bps_ > 4096 || (bps_ & (bps_ - 1)) != 0) bps_ = 512;
    chunk_bytes_ = static_cast<uint64_t>(spc) * bps_;
    if (chunk_bytes_ > (16u << 20)) {
      throw_invalid(path_, "chunks of " + std::to_string(chunk_bytes_) +
                               " bytes: at most 16 MiB (lower sectors_per_chunk)");
    }
    size_ =
        round_up_virtual_size(req.virtual_size, bps_, req.allow_resize, path_,
                              "E01 holds whole " + std::to_string(bps_) + "-byte sectors", notes_);
    chunk_count_ = div_round_up(size_, chunk_bytes_);
    if (chunk_count_ > 0xffffffffull) {
      throw Error(ErrorKind::kUnsupported, path_, std::nullopt,
                  "the volume section counts chunks in 32 bits (at most 4294967295 chunks): " +
                      human_size(size_) + " needs " + std::to_string(chunk_count_) +
                      " chunks (raise sectors_per_chunk)");
    }
    // A segment must hold its headers, a chunk stored uncompressed and its
    // tables; the upper bound is the 64-bit table base of EnCase 6.7+.
    const uint64_t min_segment = std::max<uint64_t>(kMinSegmentSize, 2 * chunk_bytes_ + 65536);
    if (segment_size_ < min_segment || segment_size_ > (uint64_t{1} << 63)) {
      throw_invalid(path_, "option segment_size: " + std::to_string(segment_size_) +
                               " bytes; a segment of " + std::to_string(chunk_bytes_) +
                               "-byte chunks needs " + std::to_string(min_segment) +
                               " to 2^63 bytes");
    }
    CaseFields& f = case_;
    f.case_number = o.get_string("case_number");
    f.evidence_number = o.get_string("evidence_number");
    f.examiner = o.get_string("examiner");
    f.notes = o.get_string("notes");
    f.description = o.is_set("description") ? o.get_string("description")
                    : req.source_info && !req.source_info->path.empty()
                        ? path_basename(req.source_info->path)
                        : std::string();
    if (f.description.size() > kMaxCaseFieldChars) f.description.resize(kMaxCaseFieldChars);
    check_case_field("case_number", f.case_number, kMaxCaseFieldChars);
    check_case_field("evidence_number", f.evidence_number, kMaxCaseFieldChars);
    check_case_field("examiner", f.examiner, kMaxCaseFieldChars);
    check_case_field("notes", f.notes, kMaxCaseFieldChars);
    check_case_field("description", f.description, kMaxCaseFieldChars);
    f.software_version = std::string("vdisk ") + VDISK_VERSION;
    if (f.software_version.size() > kMaxVersionChars) f.software_version = VDISK_VERSION;
    f.software_version = f.software_version.substr(0, kMaxVersionChars);
    f.os = "Linux";
    f.acquired = env_.now_unix();

    const std::string mt = o.get_string("media_type");
    vol_.media_type = mt == "removable" ? kMediaRemovable
                      : mt == "optical" ? kMediaOptical
                      : mt == "memory"  ? kMediaMemory
                                        : kMediaFixed;
    vol_.chunk_count = static_cast<uint32_t>(chunk_count_);
    vol_.sectors_per_chunk = static_cast<uint32_t>(spc);
    vol_.bytes_per_sector = bps_;
    vol_.sector_count = size_ / bps_;
    vol_.media_flags = kFlagImage | kFlagPhysical;
    vol_.compression_level = compression_ == "none"   ? kCompressionNone
                             : compression_ == "fast" ? kCompressionFast
                                                      : kCompressionBest;
    vol_.error_granularity = static_cast<uint32_t>(spc);
    Guid::random(env_).encode(vol_.set_identifier.data(), GuidByteOrder::kMixedEndian);

    zero_stream_ = zero_chunk_stream(static_cast<size_t>(chunk_bytes_));
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    const size_t bufs =
        std::max<size_t>(threads * 4 + 4, static_cast<size_t>(kInFlightBytes / chunk_bytes_));
    bufs_ = std::make_unique<BufPool>(bufs, static_cast<size_t>(chunk_bytes_));
    md5_ = std::make_unique<StreamHasher>(EVP_md5(), *bufs_);
    sha1_ = std::make_unique<StreamHasher>(EVP_sha1(), *bufs_);
    const int level = level_;
    pool_ = std::make_unique<OrderedPool<Job>>(
        threads, std::max<size_t>(threads * 4, 4), [level, pool = bufs_.get()] {
          auto comp = level >= 0 ? std::make_shared<DeflateCompressor>(DeflateWrapper::kZlib, level) : nullptr;
          return [comp, pool](Job& job) { compress_job(job, comp.get(), *pool); };
        });
    // Every check passed: the first segment may exist now.
    overwrite_ = req.overwrite;
    open_segment(overwrite_);
  }

  ~E01Writer() override { abort(); }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    check_order(offset, len);
    zeros_until(offset);
    const auto* p = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      const uint64_t in = pos_ % chunk_bytes_;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len, chunk_bytes_ - in));
      ensure_buffer(in);
      std::memcpy(cur_->data.data() + in, p, n);
      advance(n);
      p += n, len -= n;
    }
  }

  void write_zeroes(uint64_t offset, uint64_t len) override {
    check_order(offset, len);
    zeros_until(offset + len);
  }

  void mark_unreadable(uint64_t offset, uint64_t len) override {
    check_order(offset, len);
    zeros_until(offset + len);
    // error2 counts whole sectors (EWF "Error2 section"): outwards.
    const uint64_t first = offset / bps_;
    const uint64_t last = div_round_up(offset + len, bps_);
    if (!errors_.empty() && errors_.back().first + errors_.back().second >= first) {
      errors_.back().second =
          std::max(errors_.back().first + errors_.back().second, last) - errors_.back().first;
    } else {
      errors_.emplace_back(first, last - first);
    }
  }

  void finish() override {
    if (finished_) return;
    zeros_until(size_);
    pool_->drain([this](Job& j) { place(j); });
    const std::vector<uint8_t> md5 = md5_->finish();
    const std::vector<uint8_t> sha1 = sha1_->finish();
    close_group();
    SegmentOut& s = *segs_.back();
    uint8_t vol[kVolumeE01Size];
    encode_volume(vol_, vol);
    if (segs_.size() == 1) s.section("data", vol, sizeof vol);
    if (!errors_.empty()) write_error2(s);
    uint8_t digest[kDigestSize] = {};
    std::memcpy(digest, md5.data(), 16);
    std::memcpy(digest + 16, sha1.data(), 20);
    store_le32(digest + 76, adler32(digest, 76));
    s.section("digest", digest, sizeof digest);
    uint8_t hash[kHashSize] = {};
    std::memcpy(hash, md5.data(), 16);
    store_le32(hash + 32, adler32(hash, 32));
    s.section("hash", hash, sizeof hash);
    s.last_section("done");
    // The volume now says whether the media starts with a partition table.
    segs_.front()->patch(volume_offset_ + kSectionDescriptorSize, vol, sizeof vol);
    for (auto& seg : segs_) seg->flush();
    for (auto& seg : segs_) seg->file().commit();
    finished_ = true;
    if (segs_.size() > 1) {
      notes_.push_back(std::to_string(segs_.size()) + " segment files, " + path_ + " to " +
                       segs_.back()->file().path());
    }
  }

  void abort() override {
    if (finished_) return;
    pool_.reset();  // stops the compressors before the buffers go
    md5_.reset();
    sha1_.reset();
    for (auto& s : segs_) s->file().discard();
  }

  std::vector<std::string> notes() const override { return notes_; }

  std::vector<std::string> output_files() const override {
    std::vector<std::string> out;
    for (const auto& s : segs_) out.push_back(s->file().path());
    return out;
  }

 private:
  static void compress_job(Job& job, DeflateCompressor* comp, BufPool& pool) {
    if (!job.in) return;
    const uint8_t* p = job.in->data.data();
    job.compressed = false;
    if (comp) {
      comp->compress(p, job.len, job.out);
      // Stored as is when compression does not make it smaller (EWF
      // "Data chunk").
      job.compressed = job.out.size() < job.len;
    }
    if (!job.compressed) {
      job.out.resize(job.len + 4);
      std::memcpy(job.out.data(), p, job.len);
      store_le32(job.out.data() + job.len, adler32(p, job.len));
    }
    pool.release(job.in);
    job.in = nullptr;
  }

  void check_order(uint64_t offset, uint64_t len) {
    if (offset < pos_ || len > size_ || offset > size_ - len) {
      throw Error(ErrorKind::kInvalidArgument, path_, offset,
                  "write out of order or past the end of the image");
    }
  }

  void ensure_buffer(uint64_t in) {
    if (cur_) return;
    cur_ = bufs_->acquire(3);  // the compressor and two hashers
    if (in) std::memset(cur_->data.data(), 0, static_cast<size_t>(in));
  }

  // Moves the stream position `n` bytes on inside the current chunk,
  // emitting it when complete.
  void advance(uint64_t n) {
    pos_ += n;
    const uint64_t chunk = (pos_ - 1) / chunk_bytes_;
    const uint64_t end = std::min(size_, (chunk + 1) * chunk_bytes_);
    if (pos_ == end) emit(chunk, end - chunk * chunk_bytes_);
  }

  // Zeros from the current position to `to`: whole zero chunks cost no
  // buffer and no compression.
  void zeros_until(uint64_t to) {
    while (pos_ < to) {
      const uint64_t in = pos_ % chunk_bytes_;
      const uint64_t n = std::min(to - pos_, chunk_bytes_ - in);
      if (cur_) {
        std::memset(cur_->data.data() + in, 0, static_cast<size_t>(n));
      } else if (in + n < chunk_bytes_ && pos_ + n < size_) {
        // Part of a chunk that may get data later: keep the zeros counted
        // only (the buffer, when data comes, starts zero-filled to there).
      }
      advance(n);
    }
  }

  void emit(uint64_t chunk, uint64_t len) {
    std::unique_ptr<Job> job = pool_->get();
    job->chunk = chunk;
    job->len = static_cast<size_t>(len);
    job->zero = false;
    if (chunk == 0) first_sector_seen(cur_);
    if (cur_) {
      job->in = cur_;
      md5_->data(cur_, job->len);
      sha1_->data(cur_, job->len);
      cur_ = nullptr;
    } else if (len != chunk_bytes_) {
      // The last chunk, short and all zero: compressed like data.
      job->in = bufs_->acquire(3);
      std::memset(job->in->data.data(), 0, job->len);
      md5_->data(job->in, job->len);
      sha1_->data(job->in, job->len);
    } else {
      job->in = nullptr;
      job->zero = true;
      md5_->zeros(len);
      sha1_->zeros(len);
    }
    pool_->submit(std::move(job), [this](Job& j) { place(j); });
  }

  // EnCase wants the physical flag only on media with a partition table
  // (EWF "Media flags"): decided from the first sector's boot signature.
  void first_sector_seen(const ChunkBuf* b) {
    const bool mbr = b && bps_ >= 512 && b->data[510] == 0x55 && b->data[511] == 0xaa;
    if (!mbr) vol_.media_flags &= static_cast<uint8_t>(~kFlagPhysical);
  }

  // ---- layout ----

  uint64_t tail_reserve(size_t entries) const {
    const uint64_t table = kSectionDescriptorSize + kTableHeaderSize + 4 * entries + 4;
    return 2 * table + 2 * (kSectionDescriptorSize + kVolumeE01Size) + kSectionDescriptorSize +
           kDigestSize + kSectionDescriptorSize + kHashSize + 2 * kSectionDescriptorSize +
           kError2HeaderSize + kError2EntrySize * errors_.size() + 4 + kSectionDescriptorSize;
  }

  void open_segment(bool overwrite) {
    const uint32_t n = static_cast<uint32_t>(segs_.size()) + 1;
    std::optional<std::string> ext = segment_extension(letter_, n);
    if (!ext) {
      throw Error(ErrorKind::kUnsupported, path_, std::nullopt,
                  "more than " + std::to_string(max_segment_number(letter_)) +
                      " segments would be needed (the last name is ." + std::string(1, letter_) +
                      "ZZ-style): raise segment_size");
    }
    const std::string p = stem_ + *ext;
    segs_.push_back(std::make_unique<SegmentOut>(env_.create_output(p, overwrite), n));
    SegmentOut& s = *segs_.back();
    uint8_t fh[kFileHeaderSize] = {};
    std::memcpy(fh, kEvfSignature, 8);
    fh[kFhStartOfFields] = 0x01;
    store_le16(fh + kFhSegmentNumber, static_cast<uint16_t>(n));
    s.append(fh, sizeof fh);
    uint8_t vol[kVolumeE01Size];
    encode_volume(vol_, vol);
    if (n == 1) {
      for (int copy = 0; copy < 2; ++copy) compressed_section(s, "header2", render_header2(case_));
      compressed_section(s, "header", render_header(case_));
      volume_offset_ = s.pos();
      s.section("volume", vol, sizeof vol);
    } else {
      s.section("data", vol, sizeof vol);
    }
  }

  void compressed_section(SegmentOut& s, const std::string& type, const std::vector<uint8_t>& t) {
    std::vector<uint8_t> z;
    DeflateCompressor(DeflateWrapper::kZlib, std::max(level_, 1)).compress(t.data(), t.size(), z);
    s.section(type, z.data(), z.size());
  }

  void open_group() {
    SegmentOut& s = *segs_.back();
    group_base_ = s.pos();
    uint8_t d[kSectionDescriptorSize] = {};  // patched in close_group()
    s.append(d, sizeof d);
    group_open_ = true;
    entries_.clear();
  }

  void close_group() {
    if (!group_open_) return;
    SegmentOut& s = *segs_.back();
    uint8_t d[kSectionDescriptorSize];
    encode_section_descriptor("sectors", s.pos(), s.pos() - group_base_, d);
    s.patch(group_base_, d, sizeof d);
    std::vector<uint8_t> t(kTableHeaderSize + 4 * entries_.size() + 4);
    encode_table_header(static_cast<uint32_t>(entries_.size()), group_base_, t.data());
    for (size_t i = 0; i < entries_.size(); ++i) {
      store_le32(t.data() + kTableHeaderSize + 4 * i, entries_[i]);
    }
    store_le32(t.data() + kTableHeaderSize + 4 * entries_.size(),
               adler32(t.data() + kTableHeaderSize, 4 * entries_.size()));
    s.section("table", t.data(), t.size());
    s.section("table2", t.data(), t.size());
    group_open_ = false;
  }

  // Writes a compressed (or stored) chunk in guest order: a new table
  // group at 16 375 entries or 2 GiB of sectors, a new segment when this
  // one would pass segment_size.
  void place(Job& j) {
    const std::vector<uint8_t>& bytes = j.zero ? zero_stream_ : j.out;
    const bool compressed = j.zero || j.compressed;
    if (group_open_) {
      SegmentOut& s = *segs_.back();
      const bool table_full = entries_.size() >= kFtkMaxTableEntries;
      const bool sectors_full = s.pos() + bytes.size() - group_base_ > kMaxSectorsSection;
      const bool segment_full =
          s.pos() + bytes.size() + tail_reserve(entries_.size() + 1) > segment_size_;
      if (table_full || sectors_full || segment_full) close_group();
      if (segment_full) {
        s.last_section("next");
        s.flush();
        open_segment(overwrite_);
      }
    }
    if (!group_open_) open_group();
    SegmentOut& s = *segs_.back();
    const uint64_t rel = s.pos() - group_base_;
    entries_.push_back(static_cast<uint32_t>(rel) | (compressed ? kEntryCompressed : 0));
    s.append(bytes.data(), bytes.size());
    j.out.clear();
    j.compressed = false;
  }

  void write_error2(SegmentOut& s) {
    std::vector<uint8_t> e(kError2HeaderSize + kError2EntrySize * errors_.size() + 4, 0);
    store_le32(e.data(), static_cast<uint32_t>(errors_.size()));
    store_le32(e.data() + kError2HeaderChecksum, adler32(e.data(), kError2HeaderChecksum));
    uint8_t* p = e.data() + kError2HeaderSize;
    for (size_t i = 0; i < errors_.size(); ++i) {
      // Entries are 32-bit sector numbers: media past 2^32 sectors cannot
      // be described in error2.
      if (errors_[i].first > 0xffffffffull || errors_[i].second > 0xffffffffull) {
        throw Error(ErrorKind::kUnsupported, path_, std::nullopt,
                    "an unreadable range at sector " + std::to_string(errors_[i].first) +
                        " is past what error2's 32-bit sector numbers can hold");
      }
      store_le32(p + kError2EntrySize * i, static_cast<uint32_t>(errors_[i].first));
      store_le32(p + kError2EntrySize * i + 4, static_cast<uint32_t>(errors_[i].second));
    }
    store_le32(p + kError2EntrySize * errors_.size(),
               adler32(p, kError2EntrySize * errors_.size()));
    s.section("error2", e.data(), e.size());
  }

  Env& env_;
  std::string path_, stem_;
  char letter_ = 'E';
  std::string compression_;
  int level_ = 1;
  uint64_t segment_size_ = kDefaultSegmentSize;
  uint32_t bps_ = 512;
  uint64_t chunk_bytes_ = 32768;
  uint64_t size_ = 0;
  uint64_t chunk_count_ = 0;
  bool overwrite_ = false;
  CaseFields case_;
  Volume vol_;
  std::vector<uint8_t> zero_stream_;
  std::vector<std::string> notes_;

  // Stream assembly (the caller's thread).
  uint64_t pos_ = 0;
  ChunkBuf* cur_ = nullptr;
  std::vector<std::pair<uint64_t, uint64_t>> errors_;  // first sector, count

  // Output (the caller's thread, through the pool's in-order callback).
  std::vector<std::unique_ptr<SegmentOut>> segs_;
  uint64_t volume_offset_ = 0;
  bool group_open_ = false;
  uint64_t group_base_ = 0;
  std::vector<uint32_t> entries_;
  bool finished_ = false;

  // Declared last: destroyed first, while the buffers they use still exist.
  std::unique_ptr<BufPool> bufs_;
  std::unique_ptr<StreamHasher> md5_, sha1_;
  std::unique_ptr<OrderedPool<Job>> pool_;
};

}  // namespace

std::unique_ptr<ImageWriter> create_e01(const CreateRequest& req) {
  return std::make_unique<E01Writer>(req);
}

}  // namespace vdisk::e01
