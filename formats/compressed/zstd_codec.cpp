// zstd (RFC 8878) over libzstd's streaming decoder. Every frame decodes on its
// own: the seek table of the zstd seekable format, when the file ends with
// one, lists the frames and their sizes; else the frame headers are walked
// (block headers only, no decoding). Frames whose header records no content
// size make the reader decode the whole file once to learn the sizes.
#include <zstd.h>

#include <cstring>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk::compressed {

namespace {

constexpr uint64_t kMaxFrames = 1 << 20;
constexpr uint64_t kUnknown = UINT64_MAX;
// Window a frame may ask for (zstd's own default limit, ZSTD_WINDOWLOG_LIMIT_DEFAULT).
constexpr int kWindowLogMax = 27;

class ZstdDecoder final : public Decoder {
 public:
  ZstdDecoder(const File& file, const AccessPoint& p)
      : file_(file), in_(file, p.in, p.in_end), out_pos_(p.out) {
    d_ = ZSTD_createDCtx();
    if (!d_) throw std::bad_alloc();
    ZSTD_DCtx_setParameter(d_, ZSTD_d_windowLogMax, kWindowLogMax);
  }
  ~ZstdDecoder() override { ZSTD_freeDCtx(d_); }

  size_t read(uint8_t* out, size_t n) override {
    size_t produced = 0;
    while (produced < n && !ended_) {
      auto [p, have] = in_.peek();
      ZSTD_inBuffer ib{p, have, 0};
      ZSTD_outBuffer ob{out + produced, n - produced, 0};
      size_t r = ZSTD_decompressStream(d_, &ob, &ib);
      in_.advance(ib.pos);
      produced += ob.pos;
      out_pos_ += ob.pos;
      if (ZSTD_isError(r)) {
        throw Error(ErrorKind::kIo, file_.path(), in_.offset(),
                    std::string("zstd frame is damaged (") + ZSTD_getErrorName(r) +
                        "); disk offset " + std::to_string(out_pos_) + " reached");
      }
      if (r == 0) {
        ended_ = true;
      } else if (have == 0 && ob.pos == 0) {
        throw Error(ErrorKind::kIo, file_.path(), in_.offset(),
                    "zstd frame ends early; disk offset " + std::to_string(out_pos_) + " reached");
      }
    }
    return produced;
  }

 private:
  const File& file_;
  InputCursor in_;
  ZSTD_DCtx* d_ = nullptr;
  uint64_t out_pos_;
  bool ended_ = false;
};

struct Frame {
  uint64_t in = 0, in_end = 0, size = kUnknown;
};

class ZstdCodec final : public Codec {
 public:
  explicit ZstdCodec(std::shared_ptr<const File> f) : file_(std::move(f)) {}
  const char* name() const override { return "zstd"; }

  void build_index(StreamIndex& idx, const DataSink& sink) override {
    std::vector<Frame> frames;
    bool seekable = read_seek_table(frames);
    if (!seekable) walk_frames(frames);
    idx.facts.emplace_back("frames", std::to_string(frames.size()));
    idx.facts.emplace_back("seek_table", seekable ? "yes" : "no");
    if (truncated_) {
      idx.damage = format_error(file_->path(), file_->size(), "zstd frame is cut short");
      idx.facts.emplace_back("damage", idx.damage);
    }
    idx.units = frames.size();
    bool all_known = true;
    for (auto& f : frames) all_known = all_known && f.size != kUnknown;
    uint64_t out = 0;
    if (all_known) {
      for (auto& f : frames) {
        if (f.size > 0) idx.points.push_back(AccessPoint{out, f.in, f.in_end, 0, nullptr});
        out = checked_add(out, f.size, file_->path(), f.in, "zstd content size");
      }
    } else {
      // One pass: decode every frame to learn its size.
      std::vector<uint8_t> buf(1 << 20);
      for (auto& f : frames) {
        AccessPoint p{out, f.in, f.in_end, 0, nullptr};
        ZstdDecoder d(*file_, p);
        uint64_t got = 0;
        bool damaged = false;
        for (;;) {
          size_t n = 0;
          try {
            n = d.read(buf.data(), buf.size());
          } catch (const Error& e) {
            idx.damage = e.what();
            damaged = true;
            break;
          }
          if (n == 0) break;
          sink(buf.data(), n);
          got += n;
          check_decode_limit(idx, file_->path(), f.in, out + got);
        }
        if (damaged) {
          if (got > 0) idx.points.push_back(p);
          out += got;
          idx.damaged_at = out;
          break;
        }
        if (f.size != kUnknown && f.size != got) {
          throw_corrupt(file_->path(), f.in,
                        "zstd frame content size " + std::to_string(f.size) + " is not the " +
                            std::to_string(got) + " bytes it decodes to");
        }
        if (got > 0) idx.points.push_back(p);
        out += got;
      }
      idx.scanned = true;
    }
    if (idx.points.empty()) idx.points.push_back(AccessPoint{});
    idx.size = out;
  }

  std::unique_ptr<Decoder> start(const StreamIndex& idx, size_t point) const override {
    return std::make_unique<ZstdDecoder>(*file_, idx.points[point]);
  }

 private:
  // The seekable format's seek table (compressed_layout.h); false when the
  // file does not end with one.
  bool read_seek_table(std::vector<Frame>& frames) {
    const File& f = *file_;
    const std::string& path = f.path();
    uint64_t fsize = f.size();
    if (fsize < 8 + kZstdSeekFooter) return false;
    uint8_t foot[kZstdSeekFooter];
    f.read_at(fsize - kZstdSeekFooter, foot, sizeof foot);
    if (load_le32(foot + 5) != kZstdSeekableFooterMagic) return false;
    uint64_t at = fsize - kZstdSeekFooter;
    if (foot[4] & 0x7c)
      throw_corrupt(path, at + 4, "zstd seek table descriptor has reserved bits set");
    uint64_t count = load_le32(foot);
    uint64_t esize = (foot[4] & 0x80) ? 12 : 8;
    uint64_t content = count * esize + kZstdSeekFooter;
    if (count > kMaxFrames || content + 8 > fsize)
      throw_corrupt(path, at,
                    "zstd seek table lists " + std::to_string(count) +
                        " frames, more than the file can hold");
    uint64_t table_at = fsize - content - 8;
    std::vector<uint8_t> t(static_cast<size_t>(content + 8));
    f.read_at(table_at, t.data(), t.size());
    if (load_le32(t.data()) != kZstdSeekTableMagic || load_le32(t.data() + 4) != content)
      throw_corrupt(path, table_at, "zstd seek table frame header does not match its footer");
    uint64_t in = 0;
    for (uint64_t i = 0; i < count; ++i) {
      const uint8_t* e = t.data() + 8 + i * esize;
      Frame fr;
      fr.in = in;
      in += load_le32(e);
      fr.in_end = in;
      fr.size = load_le32(e + 4);
      if (fr.in_end > table_at || fr.in_end == fr.in)
        throw_corrupt(path, table_at + 8 + i * esize,
                      "zstd seek table entry " + std::to_string(i) + " is out of range");
      frames.push_back(fr);
    }
    if (in != table_at)
      throw_corrupt(path, table_at,
                    "zstd seek table frames end at " + std::to_string(in) + ", not at the table");
    return true;
  }

  // Frame headers and block headers (RFC 8878 3.1.1), from the start.
  void walk_frames(std::vector<Frame>& frames) {
    const File& f = *file_;
    const std::string& path = f.path();
    uint64_t pos = 0, fsize = f.size();
    while (pos < fsize) {
      uint8_t h[18] = {};
      size_t got = f.read_some(pos, h, sizeof h);
      if (got < 4) throw_corrupt(path, pos, "zstd data ends inside a frame magic");
      uint32_t magic = load_le32(h);
      if ((magic & kZstdSkippableMask) == kZstdSkippableMagic) {
        if (got < 8) throw_corrupt(path, pos, "zstd skippable frame is cut short");
        pos = checked_add(pos, 8 + uint64_t{load_le32(h + 4)}, path, pos, "skippable frame");
        if (pos > fsize) throw_corrupt(path, fsize, "zstd skippable frame is cut short");
        continue;
      }
      if (magic != kZstdMagic) {
        throw_corrupt(
            path, pos,
            frames.empty() ? "not a zstd frame" : "unknown bytes after the last zstd frame");
      }
      if (frames.size() >= kMaxFrames)
        throw Error(ErrorKind::kUnsupported, path, pos, "more than 1048576 zstd frames");
      uint8_t fhd = h[4];
      if (fhd & 0x08) throw_corrupt(path, pos + 4, "zstd frame header reserved bit is set");
      bool single = fhd & 0x20;
      static const int kDictBytes[4] = {0, 1, 2, 4};
      int dict = kDictBytes[fhd & 3];
      int fcs_code = fhd >> 6;
      int fcs = fcs_code == 0 ? (single ? 1 : 0) : (1 << fcs_code);
      size_t hsize = 5 + (single ? 0 : 1) + dict + fcs;
      if (got < hsize) throw_corrupt(path, pos, "zstd frame header is cut short");
      uint64_t dict_id = 0;
      for (int i = 0; i < dict; ++i) dict_id |= uint64_t{h[5 + (single ? 0 : 1) + i]} << (8 * i);
      if (dict_id != 0)
        throw Error(ErrorKind::kUnsupported, path, pos,
                    "zstd frame needs dictionary " + std::to_string(dict_id));
      Frame fr;
      fr.in = pos;
      if (fcs > 0) {
        const uint8_t* p = h + hsize - fcs;
        uint64_t v = 0;
        for (int i = 0; i < fcs; ++i) v |= uint64_t{p[i]} << (8 * i);
        fr.size = fcs == 2 ? v + 256 : v;
      }
      pos += hsize;
      for (;;) {
        uint8_t b[3];
        if (f.read_some(pos, b, 3) < 3) {
          pos = fsize + 1;  // cut short: the decoder reports where
          break;
        }
        uint32_t bh = b[0] | (b[1] << 8) | (uint32_t{b[2]} << 16);
        uint32_t type = (bh >> 1) & 3, bsize = bh >> 3;
        if (type == 3) throw_corrupt(path, pos, "zstd block type is reserved");
        if (bsize > kZstdMaxBlock) throw_corrupt(path, pos, "zstd block is larger than 128 KiB");
        pos += 3 + (type == 1 ? 1 : bsize);
        if (bh & 1 || pos > fsize) break;
      }
      if (fhd & 0x04) pos += 4;
      if (pos > fsize) {
        // The last frame is cut short: it opens; reads fail where it ends.
        fr.in_end = fsize;
        frames.push_back(fr);
        truncated_ = true;
        return;
      }
      fr.in_end = pos;
      frames.push_back(fr);
    }
  }

  std::shared_ptr<const File> file_;
  bool truncated_ = false;
};

}  // namespace

std::unique_ptr<Codec> make_zstd_codec(std::shared_ptr<const File> file) {
  return std::make_unique<ZstdCodec>(std::move(file));
}

}  // namespace vdisk::compressed
