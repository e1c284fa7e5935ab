// bzip2 over libbz2. bzip2 blocks are independent but not byte-aligned, and
// libbz2 decodes only whole streams. So the pass finds every block magic at
// any bit offset, and each block is decoded on its own, as a stream of one
// block built around its bits: "BZh9", the block's bits, the end-of-stream
// magic and, as the combined CRC, the block's own CRC (for one block the two
// are equal: c = (0 << 1 | 0 >> 31) ^ block CRC). libbz2 then checks the
// block CRC as usual. Blocks decode in parallel, in the pass and after it.
#include <bzlib.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/core/error.h"
#include "formats/core/ordered_pool.h"

namespace vdisk::compressed {

namespace {

constexpr uint64_t kMagicMask = (1ull << 48) - 1;
// A block's compressed bits: 900k symbols of at most 20 bits, plus tables.
constexpr uint64_t kMaxBlockBits = uint64_t{4} << 23;  // 4 MiB
constexpr size_t kMaxCandidates = size_t{1} << 24;
// A magic found inside block data by chance (odds 2^-48 a bit) makes a
// block look cut short: the next end is tried too. A damaged block then
// costs two decodes, not more.
constexpr size_t kEndsToTry = 2;

struct Cand {
  uint64_t bit;
  bool eos;
};

// Reads `n` <= 32 bits at bit offset `bit` (big-endian bit order).
uint32_t read_bits(const File& f, uint64_t bit, int n) {
  uint8_t b[5] = {};
  f.read_some(bit / 8, b, 5);
  uint64_t v = 0;
  for (int i = 0; i < 5; ++i) v = v << 8 | b[i];
  return static_cast<uint32_t>((v >> (40 - bit % 8 - n)) & ((1ull << n) - 1));
}

struct BitWriter {
  std::vector<uint8_t> out;
  uint64_t acc = 0;
  int n = 0;
  void put(uint64_t v, int bits) {
    for (int i = bits - 1; i >= 0; --i) {
      acc = acc << 1 | ((v >> i) & 1);
      if (++n == 8) {
        out.push_back(static_cast<uint8_t>(acc));
        acc = 0;
        n = 0;
      }
    }
  }
  void flush() {
    if (n) out.push_back(static_cast<uint8_t>(acc << (8 - n)));
    n = 0;
    acc = 0;
  }
};

// The one-block stream for the block at bits [start, end) with CRC `crc`.
std::vector<uint8_t> one_block_stream(const File& f, uint64_t start, uint64_t end, uint32_t crc) {
  uint64_t nbits = end - start;
  std::vector<uint8_t> src(static_cast<size_t>((nbits + 7) / 8 + 1), 0);
  f.read_some(start / 8, src.data(), src.size());
  BitWriter w;
  w.out.reserve(src.size() + 16);
  for (char c : {'B', 'Z', 'h', '9'}) w.out.push_back(static_cast<uint8_t>(c));
  unsigned shift = start % 8;
  uint64_t whole = nbits / 8;
  for (uint64_t i = 0; i < whole; ++i) {
    w.out.push_back(shift ? static_cast<uint8_t>((src[i] << shift) | (src[i + 1] >> (8 - shift)))
                          : src[i]);
  }
  uint64_t rest = nbits % 8;
  if (rest) {
    uint8_t last =
        shift ? static_cast<uint8_t>((src[whole] << shift) | (src[whole + 1] >> (8 - shift)))
              : src[whole];
    w.put(last >> (8 - rest), static_cast<int>(rest));
  }
  w.put(kBz2EosMagic, 48);
  w.put(crc, 32);
  w.flush();
  return std::move(w.out);
}

class Bzip2Decoder final : public Decoder {
 public:
  Bzip2Decoder(const File& file, const AccessPoint& p) : file_(file), p_(p), out_pos_(p.out) {
    if (p.in_end <= p.in || p.in_end - p.in > kMaxBlockBits)
      throw_corrupt(file.path(), p.in / 8, "bzip2 access point is damaged");
    stream_ = one_block_stream(file, p.in, p.in_end, p.bits);
    if (BZ2_bzDecompressInit(&z_, 0, 0) != BZ_OK) throw std::bad_alloc();
    z_.next_in = reinterpret_cast<char*>(stream_.data());
    z_.avail_in = static_cast<unsigned>(stream_.size());
  }
  ~Bzip2Decoder() override { BZ2_bzDecompressEnd(&z_); }

  size_t read(uint8_t* out, size_t n) override {
    if (ended_ || n == 0) return 0;
    z_.next_out = reinterpret_cast<char*>(out);
    z_.avail_out = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    unsigned before = z_.avail_out;
    int r = BZ2_bzDecompress(&z_);
    size_t got = before - z_.avail_out;
    out_pos_ += got;
    if (r == BZ_STREAM_END) {
      ended_ = true;
    } else if (r != BZ_OK || (got == 0 && z_.avail_in == 0)) {
      throw Error(ErrorKind::kIo, file_.path(), p_.in / 8,
                  "bzip2 block is damaged (libbz2 error " + std::to_string(r) + "); disk offset " +
                      std::to_string(out_pos_) + " reached");
    }
    return got;
  }

 private:
  const File& file_;
  AccessPoint p_;
  std::vector<uint8_t> stream_;
  bz_stream z_{};
  uint64_t out_pos_;
  bool ended_ = false;
};

struct BlockJob {
  const File* file = nullptr;
  uint64_t start = 0;
  std::vector<uint64_t> ends;
  // Results.
  bool ok = false;
  uint64_t end = 0, out_len = 0;
  uint32_t crc = 0;
  Runs runs;
  std::string error;

  void run() {
    crc = read_bits(*file, start + 48, 32);
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t e : ends) {
      if (e - start > kMaxBlockBits) break;
      AccessPoint p{0, start, e, crc, nullptr};
      try {
        Bzip2Decoder d(*file, p);
        ZeroTracker zt(0);
        uint64_t total = 0;
        for (size_t n; (n = d.read(buf.data(), buf.size())) > 0;) {
          zt.feed(buf.data(), n);
          total += n;
          if (total > kBz2MaxBlockOutput)
            throw_corrupt(file->path(), start / 8, "bzip2 block too large");
        }
        ok = true;
        end = e;
        out_len = total;
        runs = zt.finish();
        return;
      } catch (const Error& err) {
        if (error.empty()) error = err.what();
      }
    }
    if (error.empty()) error = format_error(file->path(), start / 8, "bzip2 block is too long");
  }
};

class Bzip2Codec final : public Codec {
 public:
  explicit Bzip2Codec(std::shared_ptr<const File> f) : file_(std::move(f)) {}
  const char* name() const override { return "bzip2"; }

  void build_index(StreamIndex& idx, const DataSink& sink) override {
    const File& f = *file_;
    std::vector<Cand> cands = scan();
    idx.scanned = true;
    uint64_t expected = 32, out = 0, streams = 1;
    uint32_t stream_crc = 0;
    bool ended = false;
    auto damage = [&](uint64_t byte, const std::string& what) {
      if (!idx.damage.empty()) return;
      idx.damage =
          format_error(f.path(), byte, what + "; disk offset " + std::to_string(out) + " reached");
      idx.damaged_at = out;
    };
    auto is_eos = [&](uint64_t bit) {
      auto it = std::lower_bound(cands.begin(), cands.end(), bit,
                                 [](const Cand& c, uint64_t b) { return c.bit < b; });
      return it != cands.end() && it->bit == bit && it->eos;
    };
    // The end of a stream at `expected`; moves to the next stream's first block.
    auto stream_end = [&]() -> bool {
      if (!is_eos(expected)) {
        damage(expected / 8, "bzip2 stream ends early (no block or end-of-stream marker)");
        return false;
      }
      uint32_t stored = read_bits(f, expected + 48, 32);
      if (stored != stream_crc) {
        damage(expected / 8, "bzip2 combined CRC does not match the blocks");
        return false;
      }
      uint64_t byte = (expected + 80 + 7) / 8;
      uint8_t h[4] = {};
      size_t got = f.read_some(byte, h, 4);
      if (got == 4 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h' && h[3] >= '1' && h[3] <= '9') {
        expected = (byte + 4) * 8;
        stream_crc = 0;
        ++streams;
        return true;
      }
      if (byte < f.size()) idx.facts.emplace_back("trailing_bytes_at", std::to_string(byte));
      ended = true;
      return true;
    };
    // Past idx.decode_limit: stop submitting, then throw once the pool is
    // drained (never from inside the pool's callback).
    uint64_t over_limit_at = UINT64_MAX;
    auto consume = [&](BlockJob& job) {
      BlockJob* j = &job;
      if (over_limit_at != UINT64_MAX || ended || !idx.damage.empty() || j->start < expected)
        return;
      while (j->start > expected && !ended && idx.damage.empty()) {
        if (!stream_end()) return;
      }
      if (ended || j->start != expected) {
        if (!ended) damage(expected / 8, "bzip2 data between blocks is damaged");
        return;
      }
      if (!j->ok) {
        damage(j->start / 8, j->error);
        return;
      }
      stream_crc = (stream_crc << 1 | stream_crc >> 31) ^ j->crc;
      if (j->out_len > 0) idx.points.push_back(AccessPoint{out, j->start, j->end, j->crc, nullptr});
      for (auto& r : j->runs) r = {r.first + out, r.second + out};
      block_runs_.push_back(std::move(j->runs));
      out += j->out_len;
      expected = j->end;
      ++idx.units;
      if (idx.decode_limit != 0 && out > idx.decode_limit && over_limit_at == UINT64_MAX)
        over_limit_at = j->start / 8;
    };
    {
      const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
      // Fresh jobs (not get()): a job's results are filled by run() alone.
      OrderedPool<BlockJob> workers(threads, size_t{2} * threads,
                                    [] { return [](BlockJob& j) { j.run(); }; });
      for (size_t i = 0; i < cands.size(); ++i) {
        if (cands[i].eos) continue;
        if (over_limit_at != UINT64_MAX) break;
        auto job = std::make_unique<BlockJob>();
        job->file = &f;
        job->start = cands[i].bit;
        for (size_t k = i + 1; k < cands.size() && job->ends.size() < kEndsToTry; ++k)
          job->ends.push_back(cands[k].bit);
        workers.submit(std::move(job), consume);
      }
      workers.drain(consume);
    }
    if (over_limit_at != UINT64_MAX) check_decode_limit(idx, f.path(), over_limit_at, out);
    while (!ended && idx.damage.empty()) {
      if (!stream_end()) break;
    }
    (void)sink;  // zero runs come from the blocks, joined here
    for (auto& r : block_runs_) append_runs(idx.zeros, r);
    block_runs_.clear();
    if (idx.points.empty()) idx.points.push_back(AccessPoint{});
    idx.size = out;
    idx.facts.emplace_back("streams", std::to_string(streams));
    idx.facts.emplace_back("blocks", std::to_string(idx.units));
  }

  std::unique_ptr<Decoder> start(const StreamIndex& idx, size_t point) const override {
    return std::make_unique<Bzip2Decoder>(*file_, idx.points[point]);
  }

 private:
  // Every block and end-of-stream magic, at any bit offset after the header.
  // A magic starting at bit 8i+s covers all of byte i+1 with its bits
  // [8-s, 16-s): a table of those bytes picks the few positions worth a
  // full 48-bit compare.
  std::vector<Cand> scan() const {
    uint16_t table[256] = {};
    for (int s = 0; s < 8; ++s) {
      table[(kBz2BlockMagic >> (32 + s)) & 0xff] |= static_cast<uint16_t>(1u << s);
      table[(kBz2EosMagic >> (32 + s)) & 0xff] |= static_cast<uint16_t>(1u << (s + 8));
    }
    std::vector<Cand> c;
    const File& f = *file_;
    const uint64_t fsize = f.size();
    constexpr size_t kPiece = 4 << 20;
    std::vector<uint8_t> buf(kPiece + 8);
    for (uint64_t off = 0; off < fsize; off += kPiece) {
      std::fill(buf.begin(), buf.end(), 0);
      size_t got = f.read_some(off, buf.data(), buf.size());
      size_t n = std::min<size_t>(kPiece, got);
      for (size_t i = 0; i < n; ++i) {
        uint16_t t = table[buf[i + 1]];
        if (!t) continue;
        uint64_t w = 0;
        for (int k = 0; k < 8; ++k) w = w << 8 | buf[i + k];
        for (int s = 0; s < 8; ++s) {
          uint64_t m = (w >> (16 - s)) & kMagicMask;
          bool block = (t >> s & 1) && m == kBz2BlockMagic;
          bool eos = (t >> (s + 8) & 1) && m == kBz2EosMagic;
          uint64_t bit = (off + i) * 8 + s;
          if ((block || eos) && bit >= 32 && bit + 48 <= fsize * 8) {
            if (c.size() >= kMaxCandidates)
              throw Error(ErrorKind::kUnsupported, f.path(), off + i,
                          "more than 16777216 bzip2 blocks");
            c.push_back(Cand{bit, eos});
          }
        }
      }
    }
    return c;
  }

  std::shared_ptr<const File> file_;
  std::vector<Runs> block_runs_;
};

}  // namespace

std::unique_ptr<Codec> make_bzip2_codec(std::shared_ptr<const File> file) {
  return std::make_unique<Bzip2Codec>(std::move(file));
}

}  // namespace vdisk::compressed
