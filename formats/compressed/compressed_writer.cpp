#include "formats/compressed/compressed_writer.h"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

#ifdef VDISK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "formats/compressed/compressed_layout.h"
#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/ordered_workers.h"
#include "formats/core/single_file_writer.h"

namespace vdisk::compressed {

namespace {

enum class Codec { kGzip, kXz, kZstd };

uint64_t chunk_size(Codec c) {
  return c == Codec::kGzip ? (1 << 20) : (4 << 20);
}

// Compresses one piece into a self-contained member / block / frame.
// For xz, `unpadded` receives the block's unpadded size (xz 4.3.1.1).
void compress_piece(Codec c, int level, const uint8_t* in, size_t len, std::vector<uint8_t>& out,
                    uint64_t* unpadded = nullptr) {
  switch (c) {
    case Codec::kGzip: {
#ifdef VDISK_HAVE_LIBDEFLATE
      struct Holder {
        libdeflate_compressor* c = nullptr;
        int level = -1;
        ~Holder() { libdeflate_free_compressor(c); }
      };
      thread_local Holder h;
      if (h.level != level) {
        libdeflate_free_compressor(h.c);
        h.c = libdeflate_alloc_compressor(level);
        h.level = level;
        if (!h.c) throw std::bad_alloc();
      }
      out.resize(libdeflate_gzip_compress_bound(h.c, len));
      size_t n = libdeflate_gzip_compress(h.c, in, len, out.data(), out.size());
      if (n == 0) throw std::runtime_error("libdeflate_gzip_compress failed");
      out.resize(n);
#else
      z_stream z{};
      if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::bad_alloc();
      out.resize(deflateBound(&z, static_cast<uLong>(len)) + 32);
      z.next_in = const_cast<Bytef*>(in);
      z.avail_in = static_cast<uInt>(len);
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      int r = deflate(&z, Z_FINISH);
      out.resize(out.size() - z.avail_out);
      deflateEnd(&z);
      if (r != Z_STREAM_END) throw std::runtime_error("deflate failed");
#endif
      return;
    }
    case Codec::kXz: {
      lzma_options_lzma opt;
      if (lzma_lzma_preset(&opt, static_cast<uint32_t>(level)))
        throw std::runtime_error("xz preset");
      // The dictionary need not exceed the block: less memory per thread.
      opt.dict_size = std::min<uint32_t>(opt.dict_size, static_cast<uint32_t>(chunk_size(c)));
      lzma_filter filters[2] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
      lzma_block block{};
      block.version = 0;
      block.check = LZMA_CHECK_CRC64;
      block.filters = filters;
      out.resize(lzma_block_buffer_bound(len));
      size_t pos = 0;
      if (lzma_block_buffer_encode(&block, nullptr, in, len, out.data(), &pos, out.size()) !=
          LZMA_OK)
        throw std::runtime_error("lzma_block_buffer_encode failed");
      out.resize(pos);
      if (unpadded) *unpadded = lzma_block_unpadded_size(&block);
      return;
    }
    case Codec::kZstd: {
      struct Holder {
        ZSTD_CCtx* c = ZSTD_createCCtx();
        ~Holder() { ZSTD_freeCCtx(c); }
      };
      thread_local Holder h;
      if (!h.c) throw std::bad_alloc();
      ZSTD_CCtx_reset(h.c, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter(h.c, ZSTD_c_compressionLevel, level);
      ZSTD_CCtx_setParameter(h.c, ZSTD_c_checksumFlag, 1);
      out.resize(ZSTD_compressBound(len));
      size_t n = ZSTD_compress2(h.c, out.data(), out.size(), in, len);
      if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
      out.resize(n);
      return;
    }
  }
}

struct Piece final : OrderedWorkers::Job {
  Codec codec = Codec::kGzip;
  int level = 6;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  uint64_t in_len = 0;  // in may be empty when out is a ready zero piece
  uint64_t unpadded = 0;
  void run() override {
    if (!in.empty()) compress_piece(codec, level, in.data(), in.size(), out, &unpadded);
  }
};

void put_vli(std::vector<uint8_t>& b, uint64_t v) {
  while (v >= 0x80) {
    b.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  b.push_back(static_cast<uint8_t>(v));
}

class CompressedWriter final : public SingleFileWriter {
 public:
  CompressedWriter(const CreateRequest& req, Codec codec, int level)
      : codec_(codec), level_(level), size_(req.virtual_size), chunk_(chunk_size(codec)) {
    open_output(req);
    if (codec_ == Codec::kXz) {
      // Stream header (xz 2.1.1): magic, flags (check CRC64 = 4), CRC32.
      uint8_t h[kXzStreamHeader];
      std::memcpy(h, kXzMagic, 6);
      h[6] = 0;
      h[7] = LZMA_CHECK_CRC64;
      store_le32(h + 8, static_cast<uint32_t>(crc32(0, h + 6, 2)));
      append(h, sizeof h);
    }
  }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    check_write_range(offset, len);
    zeros_to(offset);
    const auto* p = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, chunk_ - cur_.size()));
      cur_.insert(cur_.end(), p, p + n);
      p += n;
      len -= n;
      pos_ += n;
      if (cur_.size() == chunk_) submit_current();
    }
  }

  void write_zeroes(uint64_t offset, uint64_t len) override {
    check_write_range(offset, len);
    zeros_to(offset + len);
  }

 private:
  // Writes zeros up to guest offset `to`: whole zero pieces are compressed
  // once and reused.
  void zeros_to(uint64_t to) {
    while (pos_ < to) {
      if (cur_.empty() && to - pos_ >= chunk_) {
        if (zero_piece_.empty()) {
          std::vector<uint8_t> z(static_cast<size_t>(chunk_), 0);
          compress_piece(codec_, level_, z.data(), z.size(), zero_piece_, &zero_unpadded_);
        }
        auto piece = take_piece();
        piece->in.clear();
        piece->in_len = chunk_;
        piece->unpadded = zero_unpadded_;
        piece->out = zero_piece_;
        workers_.submit(std::move(piece), consumer());
        pos_ += chunk_;
        continue;
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(to - pos_, chunk_ - cur_.size()));
      cur_.resize(cur_.size() + n, 0);
      pos_ += n;
      if (cur_.size() == chunk_) submit_current();
    }
  }

  std::unique_ptr<Piece> take_piece() {
    std::unique_ptr<Piece> p;
    if (!spare_.empty()) {
      p = std::move(spare_.back());
      spare_.pop_back();
    } else {
      p = std::make_unique<Piece>();
    }
    p->codec = codec_;
    p->level = level_;
    return p;
  }

  void submit_current() {
    // Written zeros (a raw source's zero-filled ranges come as data) reuse
    // the zero piece compressed once.
    if (cur_.size() == chunk_ && is_zero(cur_.data(), cur_.size())) {
      cur_.clear();
      pos_ -= chunk_;
      zeros_to(pos_ + chunk_);
      return;
    }
    auto piece = take_piece();
    piece->in_len = cur_.size();
    std::swap(piece->in, cur_);
    cur_.clear();
    cur_.reserve(static_cast<size_t>(chunk_));
    workers_.submit(std::move(piece), consumer());
  }

  OrderedWorkers::Consumer consumer() {
    return [this](std::unique_ptr<OrderedWorkers::Job> j) {
      std::unique_ptr<Piece> p(static_cast<Piece*>(j.release()));
      emit(*p);
      spare_.push_back(std::move(p));
    };
  }

  void emit(const Piece& p) {
    if (codec_ == Codec::kXz) {
      xz_records_.push_back({p.unpadded, p.in_len});
    } else if (codec_ == Codec::kZstd) {
      if (p.out.size() > UINT32_MAX) throw std::runtime_error("zstd frame too large");
      seek_.push_back({static_cast<uint32_t>(p.out.size()), static_cast<uint32_t>(p.in_len)});
    }
    append(p.out.data(), p.out.size());
  }

  void append(const uint8_t* p, size_t n) {
    obuf_.insert(obuf_.end(), p, p + n);
    if (obuf_.size() >= (4 << 20)) flush();
  }
  void flush() {
    if (obuf_.empty()) return;
    out_->write_at(written_, obuf_.data(), obuf_.size());
    written_ += obuf_.size();
    obuf_.clear();
  }

  uint64_t finish_image() override {
    zeros_to(size_);
    if (!cur_.empty()) submit_current();
    workers_.drain(consumer());
    if (size_ == 0 && codec_ != Codec::kXz) {
      // An empty disk is one empty member (gunzip refuses an empty file) or
      // one empty frame (a zstd file is found by its first frame's magic);
      // xz's stream header and empty index are a valid empty .xz already.
      auto piece = take_piece();
      const uint8_t none = 0;
      compress_piece(codec_, level_, &none, 0, piece->out, &piece->unpadded);
      piece->in_len = 0;
      emit(*piece);
    }
    if (codec_ == Codec::kXz) {
      // Index (xz 4): indicator, count, records, padding, CRC32; then the
      // stream footer (2.1.2).
      std::vector<uint8_t> ix{0};
      put_vli(ix, xz_records_.size());
      for (auto& [unpadded, usize] : xz_records_) {
        put_vli(ix, unpadded);
        put_vli(ix, usize);
      }
      while (ix.size() % 4) ix.push_back(0);
      uint8_t c[4];
      store_le32(c, static_cast<uint32_t>(crc32(0, ix.data(), static_cast<uInt>(ix.size()))));
      ix.insert(ix.end(), c, c + 4);
      append(ix.data(), ix.size());
      uint8_t f[kXzStreamFooter];
      store_le32(f + 4, static_cast<uint32_t>(ix.size() / 4 - 1));
      f[8] = 0;
      f[9] = LZMA_CHECK_CRC64;
      store_le32(f, static_cast<uint32_t>(crc32(0, f + 4, 6)));
      f[10] = 'Y';
      f[11] = 'Z';
      append(f, sizeof f);
    } else if (codec_ == Codec::kZstd) {
      // Seek table (zstd seekable format): a skippable frame of entries and
      // the integrity field; no per-frame checksums (the frames carry their
      // own content checksum).
      std::vector<uint8_t> t(8 + seek_.size() * 8 + kZstdSeekFooter);
      store_le32(t.data(), kZstdSeekTableMagic);
      store_le32(t.data() + 4, static_cast<uint32_t>(t.size() - 8));
      size_t o = 8;
      for (auto& [cs, ds] : seek_) {
        store_le32(t.data() + o, cs);
        store_le32(t.data() + o + 4, ds);
        o += 8;
      }
      store_le32(t.data() + o, static_cast<uint32_t>(seek_.size()));
      t[o + 4] = 0;
      store_le32(t.data() + o + 5, kZstdSeekableFooterMagic);
      append(t.data(), t.size());
    }
    flush();
    return written_;
  }

  Codec codec_;
  int level_;
  uint64_t size_;
  uint64_t chunk_;
  uint64_t pos_ = 0;      // guest bytes taken
  uint64_t written_ = 0;  // output bytes written
  std::vector<uint8_t> cur_, obuf_, zero_piece_;
  uint64_t zero_unpadded_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> xz_records_;
  std::vector<std::pair<uint32_t, uint32_t>> seek_;
  std::vector<std::unique_ptr<Piece>> spare_;
  OrderedWorkers workers_{0, 2};
};

const FormatDescriptor* g_raw = nullptr;

std::unique_ptr<ImageWriter> create_raw_or_compressed(const CreateRequest& req) {
  std::string c = req.options.get_string("compression");
  int level = req.options.is_set("level") ? static_cast<int>(req.options.get_int("level")) : -1;
  if (c == "none" || c.empty()) {
    if (req.options.is_set("level"))
      throw_invalid(req.path, "level= needs compression=gzip, xz or zstd");
    return g_raw->create(req);
  }
  return create_compressed(req, c, level);
}

}  // namespace

std::vector<OptionSpec> compression_options() {
  return {
      {"compression",
       OptionType::kEnum,
       "none",
       "compress the image: gzip (1 MiB members), xz (4 MiB blocks), zstd (4 MiB frames, "
       "seekable format); readable by gunzip / xz -d / zstd -d and with random access by vdisk",
       {"none", "gzip", "xz", "zstd"}},
      {"level",
       OptionType::kInt,
       "",
       "compression level (gzip 1-12 (libdeflate) or 1-9, default 6; xz 0-9, default 6; zstd "
       "1-19, default 3)",
       {}},
  };
}

const FormatDescriptor& with_compression(const FormatDescriptor& raw) {
  static const FormatDescriptor d = [&] {
    g_raw = &raw;
    FormatDescriptor x = raw;
    for (auto& o : compression_options()) x.create_options.push_back(o);
    x.create = create_raw_or_compressed;
    x.read_as = [](const Options& o) {
      const std::string c = o.is_set("compression") ? o.get_string("compression") : "none";
      return c == "none" ? std::string("raw") : c;
    };
    return x;
  }();
  return d;
}

std::unique_ptr<ImageWriter> create_compressed(const CreateRequest& req, const std::string& codec,
                                               int level) {
  Codec c;
  int lo, hi, def;
  if (codec == "gzip") {
    c = Codec::kGzip;
    lo = 1;
#ifdef VDISK_HAVE_LIBDEFLATE
    hi = 12;
#else
    hi = 9;
#endif
    def = 6;
  } else if (codec == "xz") {
    c = Codec::kXz;
    lo = 0, hi = 9, def = 6;
  } else if (codec == "zstd") {
    c = Codec::kZstd;
    lo = 1, hi = ZSTD_maxCLevel(), def = 3;
  } else {
    throw_invalid(req.path, "unknown compression '" + codec + "' (gzip, xz, zstd)");
  }
  if (level < 0) level = def;
  if (level < lo || level > hi) {
    throw_invalid(req.path, codec + " level " + std::to_string(level) + " is not in " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  }
  return std::make_unique<CompressedWriter>(req, c, level);
}

}  // namespace vdisk::compressed
