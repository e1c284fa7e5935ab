// gzip (RFC 1952) over zlib's inflate. Random access the zran way: during the
// one pass that finds the disk size, remember every member start and, about
// every kSpacing bytes of output, a deflate block boundary with the 32 KiB of
// output before it (the window a resumed inflate needs, RFC 1951 3.2.5).
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/core/error.h"

namespace vdisk::compressed {

namespace {

// Output between access points, and the memory the windows may take before
// the points are thinned (every other one dropped, the spacing doubled): 4 GiB
// of mixed data needs about 8000 points, 84 MiB of windows (random data
// leaves its 32 KiB windows uncompressed, text about a third of that, zeros
// nothing). A random read decodes one whole span: 512 KiB rather than 1 MiB
// took FUSE random 4 KiB reads of the 1 GiB bench disk from 918/s to 1690/s,
// for a 20% longer index pass (more windows to pack).
constexpr uint64_t kSpacing = 512 << 10;
constexpr uint64_t kWindowBudget = 96ull << 20;

std::string zmsg(const z_stream& z, int ret) {
  if (z.msg) return z.msg;
  return "zlib error " + std::to_string(ret);
}

// Window stored with a one-byte tag: 0 raw, 1 raw-deflate compressed.
std::shared_ptr<const std::vector<uint8_t>> pack_window(const uint8_t* w, size_t len) {
  std::vector<uint8_t> out(1 + compressBound(static_cast<uLong>(len)) + 64);
  z_stream z{};
  deflateInit2(&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  z.next_in = const_cast<Bytef*>(w);
  z.avail_in = static_cast<uInt>(len);
  z.next_out = out.data() + 1;
  z.avail_out = static_cast<uInt>(out.size() - 1);
  int r = deflate(&z, Z_FINISH);
  size_t n = out.size() - 1 - z.avail_out;
  deflateEnd(&z);
  if (r == Z_STREAM_END && n < len) {
    out[0] = 1;
    out.resize(1 + n);
  } else {
    out.assign(1 + len, 0);
    std::memcpy(out.data() + 1, w, len);
  }
  return std::make_shared<const std::vector<uint8_t>>(std::move(out));
}

std::vector<uint8_t> unpack_window(const std::vector<uint8_t>& packed, const std::string& path,
                                   uint64_t at) {
  if (packed.empty() || packed[0] > 1) throw_corrupt(path, at, "gzip index window is damaged");
  if (packed[0] == 0) {
    if (packed.size() - 1 > kDeflateWindow)
      throw_corrupt(path, at, "gzip index window is too long");
    return {packed.begin() + 1, packed.end()};
  }
  std::vector<uint8_t> w(kDeflateWindow);
  z_stream z{};
  inflateInit2(&z, -15);
  z.next_in = const_cast<Bytef*>(packed.data() + 1);
  z.avail_in = static_cast<uInt>(packed.size() - 1);
  z.next_out = w.data();
  z.avail_out = static_cast<uInt>(w.size());
  int r = inflate(&z, Z_FINISH);
  size_t n = w.size() - z.avail_out;
  inflateEnd(&z);
  if (r != Z_STREAM_END) throw_corrupt(path, at, "gzip index window is damaged");
  w.resize(n);
  return w;
}

bool member_follows(InputCursor& in) {
  auto [p, n] = in.peek();
  return n > 0 && p[0] == kGzipId1 && (n < 2 || p[1] == kGzipId2);
}

// Skips `n` bytes; false when the file ends first.
bool skip(InputCursor& in, size_t n) {
  while (n > 0) {
    auto [p, have] = in.peek();
    if (have == 0) return false;
    size_t k = std::min(n, have);
    in.advance(k);
    n -= k;
  }
  return true;
}

class GzipDecoder final : public Decoder {
 public:
  GzipDecoder(const File& file, const AccessPoint& p)
      : file_(file), in_(file, p.in), out_pos_(p.out) {
    if (!p.window) {
      inflateInit2(&z_, 15 + 16);
      return;
    }
    raw_ = true;
    inflateInit2(&z_, -15);
    if (p.bits > 0) {
      if (p.bits > 7 || p.in == 0) throw_corrupt(file.path(), p.in, "gzip access point is damaged");
      uint8_t b;
      file.read_at(p.in - 1, &b, 1);
      inflatePrime(&z_, static_cast<int>(p.bits), b >> (8 - p.bits));
    }
    std::vector<uint8_t> w = unpack_window(*p.window, file.path(), p.in);
    inflateSetDictionary(&z_, w.data(), static_cast<uInt>(w.size()));
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

  size_t read(uint8_t* out, size_t n) override {
    size_t produced = 0;
    while (produced < n && !ended_) {
      auto [p, have] = in_.peek();
      if (have == 0) fail("gzip data ends early");
      z_.next_in = const_cast<Bytef*>(p);
      z_.avail_in = static_cast<uInt>(std::min<size_t>(have, 1 << 30));
      z_.next_out = out + produced;
      z_.avail_out = static_cast<uInt>(std::min<size_t>(n - produced, 1 << 30));
      uInt before_out = z_.avail_out;
      int ret = inflate(&z_, Z_NO_FLUSH);
      in_.advance(static_cast<size_t>(std::min<size_t>(have, 1 << 30) - z_.avail_in));
      size_t got = before_out - z_.avail_out;
      produced += got;
      out_pos_ += got;
      if (ret == Z_STREAM_END) {
        // A resumed member cannot check its CRC (the pass did); skip it.
        if (raw_ && !skip(in_, kGzipTrailer)) fail("gzip member trailer is cut short");
        if (member_follows(in_)) {
          if (raw_) {
            inflateReset2(&z_, 15 + 16);
            raw_ = false;
          } else {
            inflateReset(&z_);
          }
        } else {
          ended_ = true;
        }
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        fail("gzip data is damaged (" + zmsg(z_, ret) + ")");
      }
    }
    return produced;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorKind::kIo, file_.path(), in_.offset(),
                what + "; disk offset " + std::to_string(out_pos_) + " reached");
  }
  const File& file_;
  InputCursor in_;
  z_stream z_{};
  uint64_t out_pos_;
  bool raw_ = false;
  bool ended_ = false;
};

class GzipCodec final : public Codec {
 public:
  explicit GzipCodec(std::shared_ptr<const File> f) : file_(std::move(f)) {}
  const char* name() const override { return "gzip"; }

  void build_index(StreamIndex& idx, const DataSink& sink) override {
    const std::string& path = file_->path();
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK) throw std::bad_alloc();
    struct End {
      z_stream& z;
      ~End() { inflateEnd(&z); }
    } end{z};
    InputCursor in(*file_, 0);
    // history + fresh output; the last 32 KiB of output is always there.
    std::vector<uint8_t> obuf(kDeflateWindow + (256 << 10));
    size_t have = 0;
    uint64_t total = 0, spacing = kSpacing, window_bytes = 0;
    idx.points.push_back(AccessPoint{});
    uint64_t members = 1;
    bool in_member = true;
    for (;;) {
      auto [p, n] = in.peek();
      if (n == 0) {
        if (in_member) {
          idx.damage = format_error(
              path, in.offset(),
              "gzip data ends early; disk offset " + std::to_string(total) + " reached");
          idx.damaged_at = total;
        }
        break;
      }
      if (!in_member) {
        if (p[0] != kGzipId1 || (n > 1 && p[1] != kGzipId2)) {
          // What follows the last member: zero padding (tapes, dd) or
          // garbage; gzip -d ignores both with a warning.
          uint64_t at = in.offset();
          bool zeros = true;
          for (auto q = in.peek(); q.second > 0 && zeros; in.advance(q.second), q = in.peek())
            zeros = std::all_of(q.first, q.first + q.second, [](uint8_t c) { return c == 0; });
          idx.facts.emplace_back(zeros ? "trailing_zero_padding" : "trailing_garbage_at",
                                 std::to_string(at));
          break;
        }
        inflateReset(&z);
        in_member = true;
        ++members;
        if (total - idx.points.back().out >= spacing)
          idx.points.push_back(AccessPoint{total, in.offset(), 0, 0, nullptr});
      }
      z.next_in = const_cast<Bytef*>(p);
      z.avail_in = static_cast<uInt>(n);
      z.next_out = obuf.data() + have;
      z.avail_out = static_cast<uInt>(obuf.size() - have);
      int ret = inflate(&z, Z_BLOCK);
      in.advance(n - z.avail_in);
      size_t got = obuf.size() - have - z.avail_out;
      if (got) sink(obuf.data() + have, got);
      have += got;
      total += got;
      check_decode_limit(idx, path, in.offset(), total);
      if (ret == Z_STREAM_END) {
        in_member = false;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        idx.damage = format_error(path, in.offset(),
                                  "gzip data is damaged (" + zmsg(z, ret) + "); disk offset " +
                                      std::to_string(total) + " reached");
        idx.damaged_at = total;
        break;
      } else if ((z.data_type & 128) && !(z.data_type & 64) &&
                 total - idx.points.back().out >= spacing) {
        size_t wlen = static_cast<size_t>(std::min<uint64_t>(kDeflateWindow, have));
        AccessPoint ap{total, in.offset(), 0, static_cast<uint32_t>(z.data_type & 7),
                       pack_window(obuf.data() + have - wlen, wlen)};
        window_bytes += ap.window->size();
        idx.points.push_back(std::move(ap));
        if (window_bytes > kWindowBudget) thin(idx, window_bytes, spacing);
      }
      if (have == obuf.size()) {
        std::memmove(obuf.data(), obuf.data() + have - kDeflateWindow, kDeflateWindow);
        have = kDeflateWindow;
      }
    }
    idx.size = total;
    idx.scanned = true;
    idx.units = members;
    idx.facts.emplace_back("members", std::to_string(members));
    idx.facts.emplace_back("access_point_spacing", std::to_string(spacing));
  }

  std::unique_ptr<Decoder> start(const StreamIndex& idx, size_t point) const override {
    return std::make_unique<GzipDecoder>(*file_, idx.points[point]);
  }
  bool independent_units() const override { return true; }

 private:
  // Drops every other windowed point and doubles the spacing: memory stays
  // bounded whatever the disk size.
  static void thin(StreamIndex& idx, uint64_t& window_bytes, uint64_t& spacing) {
    std::vector<AccessPoint> kept;
    bool drop = false;
    window_bytes = 0;
    for (auto& p : idx.points) {
      if (p.window && drop) {
        drop = false;
        continue;
      }
      if (p.window) {
        drop = true;
        window_bytes += p.window->size();
      }
      kept.push_back(std::move(p));
    }
    idx.points = std::move(kept);
    spacing *= 2;
  }

  std::shared_ptr<const File> file_;
};

}  // namespace

std::unique_ptr<Codec> make_gzip_codec(std::shared_ptr<const File> file) {
  return std::make_unique<GzipCodec>(std::move(file));
}

}  // namespace vdisk::compressed
