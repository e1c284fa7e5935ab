// xz (.xz file format 1.x) over liblzma's block decoder. The index at the end
// of every stream lists the blocks with their sizes, so the disk size and the
// access points (one per block) come without decoding; each block decodes on
// its own, so blocks decode in parallel.
#include <lzma.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk::compressed {

namespace {

// Decoder memory (dictionary) a block may ask for: xz -9 uses 64 MiB.
constexpr uint64_t kMaxDecoderMemory = 256ull << 20;
// Records in one index; each takes at least 2 bytes of the file.
constexpr uint64_t kMaxBlocks = 1ull << 24;

uint32_t crc(const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(crc32(0, p, static_cast<uInt>(n)));
}

// Multibyte integer (xz spec 1.2); false when malformed or past `end`.
bool read_vli(const uint8_t* b, size_t end, size_t& pos, uint64_t& v) {
  v = 0;
  for (int i = 0; i < 9; ++i) {
    if (pos >= end) return false;
    uint8_t c = b[pos++];
    v |= static_cast<uint64_t>(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) return !(c == 0 && i > 0);
  }
  return false;
}

class XzDecoder final : public Decoder {
 public:
  XzDecoder(const File& file, const AccessPoint& p, uint64_t out_size)
      : file_(file), in_(file, p.in, p.in_end), out_pos_(p.out), left_(out_size) {
    uint8_t hdr[1024];
    file.read_at(p.in, hdr, 1);
    size_t hsize = (static_cast<size_t>(hdr[0]) + 1) * 4;
    if (hdr[0] == 0 || p.in + hsize > p.in_end) fail("xz block header is damaged", p.in);
    file.read_at(p.in, hdr, hsize);
    lzma_filter filters[LZMA_FILTERS_MAX + 1];
    block_.version = 1;
    block_.check = static_cast<lzma_check>(p.bits);
    block_.filters = filters;
    block_.header_size = static_cast<uint32_t>(hsize);
    if (lzma_block_header_decode(&block_, nullptr, hdr) != LZMA_OK)
      fail("xz block header is damaged", p.in);
    uint64_t mem = lzma_raw_decoder_memusage(filters);
    lzma_ret r = LZMA_OK;
    if (mem == UINT64_MAX || mem > kMaxDecoderMemory) r = LZMA_MEMLIMIT_ERROR;
    if (r == LZMA_OK) r = lzma_block_decoder(&z_, &block_);
    for (int i = 0; filters[i].id != LZMA_VLI_UNKNOWN; ++i) free(filters[i].options);
    if (r == LZMA_MEMLIMIT_ERROR) {
      throw Error(ErrorKind::kUnsupported, file.path(), p.in,
                  "xz block needs " + std::to_string(mem >> 20) +
                      " MiB of decoder memory (vdisk allows 256 MiB)");
    }
    if (r != LZMA_OK) fail("xz block header names filters liblzma cannot decode", p.in);
    in_.advance(0);
    skip_header_ = hsize;
  }
  ~XzDecoder() override { lzma_end(&z_); }

  size_t read(uint8_t* out, size_t n) override {
    size_t produced = 0;
    while (produced < n && !ended_) {
      auto [p, have] = in_.peek();
      if (skip_header_) {
        size_t k = std::min(skip_header_, have);
        in_.advance(k);
        skip_header_ -= k;
        continue;
      }
      z_.next_in = p;
      z_.avail_in = have;
      z_.next_out = out + produced;
      z_.avail_out = n - produced;
      lzma_ret r = lzma_code(&z_, have ? LZMA_RUN : LZMA_FINISH);
      in_.advance(have - z_.avail_in);
      size_t got = (n - produced) - z_.avail_out;
      produced += got;
      out_pos_ += got;
      if (r == LZMA_STREAM_END) {
        ended_ = true;
      } else if (r != LZMA_OK) {
        fail(r == LZMA_BUF_ERROR ? "xz block ends early" : "xz block data is damaged",
             in_.offset());
      }
    }
    return produced;
  }

 private:
  [[noreturn]] void fail(const std::string& what, uint64_t at) {
    throw Error(ErrorKind::kIo, file_.path(), at,
                what + "; disk offset " + std::to_string(out_pos_) + " reached");
  }
  const File& file_;
  InputCursor in_;
  lzma_stream z_ = LZMA_STREAM_INIT;
  lzma_block block_{};
  uint64_t out_pos_;
  uint64_t left_;
  size_t skip_header_ = 0;
  bool ended_ = false;
};

class XzCodec final : public Codec {
 public:
  explicit XzCodec(std::shared_ptr<const File> f) : file_(std::move(f)) {}
  const char* name() const override { return "xz"; }

  void build_index(StreamIndex& idx, const DataSink&) override {
    const File& f = *file_;
    const std::string& path = f.path();
    // Streams are found from the end backwards (xz spec 2.1.2: the footer's
    // backward size leads to the index, the index to the stream header).
    struct Stream {
      std::vector<AccessPoint> blocks;  // out relative to the stream
      uint64_t size = 0;
    };
    std::vector<Stream> streams;
    uint64_t pos = f.size();
    uint64_t padding = 0;
    while (pos > 0) {
      uint8_t foot[kXzStreamFooter];
      if (pos < kXzStreamHeader + kXzStreamFooter || pos % 4 != 0)
        throw_corrupt(path, pos, "xz stream is cut short (no stream footer)");
      f.read_at(pos - 4, foot, 4);
      if (load_le32(foot) == 0 && !streams.empty()) {
        pos -= 4;  // stream padding (2.2)
        padding += 4;
        continue;
      }
      f.read_at(pos - kXzStreamFooter, foot, kXzStreamFooter);
      uint64_t foot_at = pos - kXzStreamFooter;
      if (std::memcmp(foot + kXzFooterMagicOffset, kXzFooterMagic, 2) != 0)
        throw_corrupt(path, foot_at, "xz stream footer magic is missing");
      if (crc(foot + 4, 6) != load_le32(foot))
        throw_corrupt(path, foot_at, "xz stream footer CRC32 does not match");
      if (foot[kXzFooterFlags] != 0 || (foot[kXzFooterFlags + 1] & 0xf0))
        throw Error(ErrorKind::kUnsupported, path, foot_at, "xz stream flags are unknown");
      uint32_t check = foot[kXzFooterFlags + 1] & 0x0f;
      uint64_t index_size = (uint64_t{load_le32(foot + kXzFooterBackwardSize)} + 1) * 4;
      if (index_size > foot_at - kXzStreamHeader)
        throw_corrupt(path, foot_at,
                      "xz backward size " + std::to_string(index_size) +
                          " reaches before the start of the file");
      uint64_t index_at = foot_at - index_size;
      if (index_size > (256ull << 20))
        throw Error(ErrorKind::kUnsupported, path, index_at, "xz index is larger than 256 MiB");
      std::vector<uint8_t> ix(static_cast<size_t>(index_size));
      f.read_at(index_at, ix.data(), ix.size());
      if (ix[0] != 0) throw_corrupt(path, index_at, "xz index indicator is not 0");
      if (crc(ix.data(), ix.size() - 4) != load_le32(ix.data() + ix.size() - 4))
        throw_corrupt(path, index_at, "xz index CRC32 does not match");
      size_t ip = 1, iend = ix.size() - 4;
      uint64_t count;
      if (!read_vli(ix.data(), iend, ip, count) || count > iend / 2 || count > kMaxBlocks)
        throw_corrupt(path, index_at + ip, "xz index record count is damaged");
      Stream s;
      uint64_t blocks_bytes = 0;
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t unpadded, usize;
        if (!read_vli(ix.data(), iend, ip, unpadded) || !read_vli(ix.data(), iend, ip, usize) ||
            unpadded < 5 + xz_check_size(check) || unpadded > (1ull << 62))
          throw_corrupt(path, index_at + ip,
                        "xz index record " + std::to_string(i) + " is damaged");
        AccessPoint p;
        p.out = s.size;
        p.in = blocks_bytes;  // relative to the first block for now
        blocks_bytes =
            checked_add(blocks_bytes, (unpadded + 3) / 4 * 4, path, index_at, "xz blocks size");
        p.in_end = blocks_bytes;
        p.bits = check;
        s.size = checked_add(s.size, usize, path, index_at, "xz uncompressed size");
        if (usize > 0) s.blocks.push_back(p);
      }
      while (ip % 4) {
        if (ip >= iend || ix[ip] != 0)
          throw_corrupt(path, index_at + ip, "xz index padding is not zero");
        ++ip;
      }
      if (ip != iend) throw_corrupt(path, index_at + ip, "xz index has bytes after its records");
      if (blocks_bytes > index_at - kXzStreamHeader)
        throw_corrupt(path, index_at, "xz index lists more block bytes than the file holds");
      uint64_t start = index_at - blocks_bytes - kXzStreamHeader;
      uint8_t head[kXzStreamHeader];
      f.read_at(start, head, sizeof head);
      if (std::memcmp(head, kXzMagic, 6) != 0)
        throw_corrupt(path, start, "xz stream header magic is missing where the index says");
      if (crc(head + kXzHeaderFlags, 2) != load_le32(head + kXzHeaderCrc))
        throw_corrupt(path, start, "xz stream header CRC32 does not match");
      if (std::memcmp(head + kXzHeaderFlags, foot + kXzFooterFlags, 2) != 0)
        throw_corrupt(path, start, "xz stream header and footer flags differ");
      for (auto& b : s.blocks) {
        b.in += start + kXzStreamHeader;
        b.in_end += start + kXzStreamHeader;
      }
      streams.push_back(std::move(s));
      pos = start;
    }
    uint64_t out = 0, nblocks = 0;
    for (auto it = streams.rbegin(); it != streams.rend(); ++it) {
      for (auto& b : it->blocks) {
        b.out += out;
        idx.points.push_back(b);
      }
      nblocks += it->blocks.size();
      out = checked_add(out, it->size, path, 0, "xz uncompressed size");
    }
    if (idx.points.empty()) idx.points.push_back(AccessPoint{0, 0, 0, 0, nullptr});
    idx.size = out;
    idx.units = nblocks;
    idx.facts.emplace_back("streams", std::to_string(streams.size()));
    idx.facts.emplace_back("blocks", std::to_string(nblocks));
    if (padding) idx.facts.emplace_back("stream_padding", std::to_string(padding));
    static const char* const kChecks[16] = {"none", "crc32", "2",  "3", "crc64",  "5",
                                            "6",    "7",     "8",  "9", "sha256", "11",
                                            "12",   "13",    "14", "15"};
    if (!streams.empty() && !streams.back().blocks.empty())
      idx.facts.emplace_back("check", kChecks[streams.back().blocks[0].bits & 15]);
  }

  std::unique_ptr<Decoder> start(const StreamIndex& idx, size_t point) const override {
    const AccessPoint& p = idx.points[point];
    uint64_t end = point + 1 < idx.points.size() ? idx.points[point + 1].out : idx.size;
    return std::make_unique<XzDecoder>(*file_, p, end - p.out);
  }

 private:
  std::shared_ptr<const File> file_;
};

}  // namespace

std::unique_ptr<Codec> make_xz_codec(std::shared_ptr<const File> file) {
  return std::make_unique<XzCodec>(std::move(file));
}

}  // namespace vdisk::compressed
