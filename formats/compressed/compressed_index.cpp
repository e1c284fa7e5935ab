#include "formats/compressed/compressed_index.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "formats/compressed/codec.h"
#include "formats/compressed/compressed_layout.h"
#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk::compressed {

void ZeroTracker::close(uint64_t end) {
  if (end > zero_from_ && (end - zero_from_ >= kZeroGranule || zero_from_ == base_ || end == pos_))
    runs_.emplace_back(zero_from_, end);
}

void ZeroTracker::feed(const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t n = std::min<size_t>(len - i, kZeroGranule);
    if (!is_zero(data + i, n)) {
      size_t f = i, l = i + n - 1;
      while (data[f] == 0) ++f;
      while (data[l] == 0) --l;
      close(pos_ + f);
      zero_from_ = pos_ + l + 1;
    }
    i += n;
  }
  // Positions above are relative to the start of this piece.
  pos_ += len;
}

Runs ZeroTracker::finish() {
  close(pos_);
  zero_from_ = pos_;
  return std::move(runs_);
}

void check_decode_limit(const StreamIndex& idx, const std::string& path, uint64_t in,
                        uint64_t decoded) {
  if (idx.decode_limit == 0 || decoded <= idx.decode_limit) return;
  throw Error(ErrorKind::kUnsupported, path, in,
              "decodes to more than " + std::to_string(idx.decode_limit) +
                  " bytes, the limit this open was given");
}

void append_runs(Runs& into, const Runs& add) {
  for (const auto& r : add) {
    if (!into.empty() && into.back().second == r.first) {
      into.back().second = r.second;
    } else {
      into.push_back(r);
    }
  }
}

InputCursor::InputCursor(const File& file, uint64_t offset, uint64_t end)
    : file_(file), end_(std::min(end, file.size())), buf_off_(offset) {}

std::pair<const uint8_t*, size_t> InputCursor::peek() {
  if (buf_pos_ >= buf_.size()) {
    buf_off_ += buf_pos_;
    buf_pos_ = 0;
    buf_.clear();
    if (buf_off_ >= end_) return {nullptr, 0};
    buf_.resize(static_cast<size_t>(std::min<uint64_t>(1 << 20, end_ - buf_off_)));
    buf_.resize(file_.read_some(buf_off_, buf_.data(), buf_.size()));
    if (buf_.empty()) return {nullptr, 0};
  }
  return {buf_.data() + buf_pos_, buf_.size() - buf_pos_};
}

namespace {

constexpr char kIndexMagic[8] = {'V', 'D', 'I', 'S', 'K', 'I', 'X', '1'};
constexpr size_t kFingerprintBytes = 64 * 1024;

std::pair<uint32_t, uint32_t> fingerprint(const File& f) {
  std::vector<uint8_t> b(static_cast<size_t>(std::min<uint64_t>(kFingerprintBytes, f.size())));
  b.resize(f.read_some(0, b.data(), b.size()));
  uint32_t head = static_cast<uint32_t>(crc32(0, b.data(), static_cast<uInt>(b.size())));
  b.resize(static_cast<size_t>(std::min<uint64_t>(kFingerprintBytes, f.size())));
  b.resize(f.read_some(f.size() - b.size(), b.data(), b.size()));
  uint32_t tail = static_cast<uint32_t>(crc32(0, b.data(), static_cast<uInt>(b.size())));
  return {head, tail};
}

struct Writer {
  std::vector<uint8_t> b;
  void u64(uint64_t v) {
    uint8_t t[8];
    store_le64(t, v);
    b.insert(b.end(), t, t + 8);
  }
  void u32(uint32_t v) {
    uint8_t t[4];
    store_le32(t, v);
    b.insert(b.end(), t, t + 4);
  }
  void bytes(const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  }
};

struct Reader {
  const std::vector<uint8_t>& b;
  const std::string& path;
  size_t pos = 0;
  void need(uint64_t n) {
    if (n > b.size() - pos) throw_corrupt(path, pos, "index file ends early");
  }
  uint64_t u64() {
    need(8);
    pos += 8;
    return load_le64(b.data() + pos - 8);
  }
  uint32_t u32() {
    need(4);
    pos += 4;
    return load_le32(b.data() + pos - 4);
  }
  const uint8_t* bytes(uint64_t n) {
    need(n);
    pos += static_cast<size_t>(n);
    return b.data() + pos - n;
  }
};

}  // namespace

void save_index(Env& env, const std::string& path, const std::string& codec, const File& image,
                const StreamIndex& idx) {
  Writer w;
  w.bytes(kIndexMagic, 8);
  char name[8] = {};
  std::memcpy(name, codec.data(), std::min<size_t>(8, codec.size()));
  w.bytes(name, 8);
  w.u64(image.size());
  auto [head, tail] = fingerprint(image);
  w.u32(head);
  w.u32(tail);
  w.u64(idx.size);
  w.u32(idx.scanned ? 1 : 0);
  w.u64(idx.points.size());
  w.u64(idx.zeros.size());
  w.u64(idx.damaged_at);
  w.u32(static_cast<uint32_t>(idx.damage.size()));
  w.bytes(idx.damage.data(), idx.damage.size());
  for (const AccessPoint& p : idx.points) {
    w.u64(p.out);
    w.u64(p.in);
    w.u64(p.in_end);
    w.u32(p.bits);
    w.u32(p.window ? static_cast<uint32_t>(p.window->size()) : 0);
    if (p.window) w.bytes(p.window->data(), p.window->size());
  }
  for (auto& [s, e] : idx.zeros) {
    w.u64(s);
    w.u64(e);
  }
  w.u32(static_cast<uint32_t>(crc32(0, w.b.data(), static_cast<uInt>(w.b.size()))));
  std::unique_ptr<OutputFile> out = env.create_output(path, false);
  out->write_at(0, w.b.data(), w.b.size());
  out->commit();
}

bool load_index(Env& env, const std::string& path, const std::string& codec, const File& image,
                StreamIndex& idx) {
  if (!env.exists(path)) return false;
  std::unique_ptr<File> f = env.open_read(path);
  // An index holds at most a point per 64 KiB of disk and a run per 8 KiB; it
  // is never larger than a few times the image itself.
  if (f->size() > image.size() * 4 + (64 << 20)) throw_corrupt(path, 0, "index file is too large");
  std::vector<uint8_t> b(static_cast<size_t>(f->size()));
  f->read_at(0, b.data(), b.size());
  if (b.size() < 4 ||
      load_le32(b.data() + b.size() - 4) !=
          static_cast<uint32_t>(crc32(0, b.data(), static_cast<uInt>(b.size() - 4)))) {
    throw_corrupt(path, b.size() < 4 ? 0 : b.size() - 4, "index file CRC does not match");
  }
  Reader r{b, path};
  if (std::memcmp(r.bytes(8), kIndexMagic, 8) != 0)
    throw_corrupt(path, 0, "not a vdisk index file");
  char name[9] = {};
  std::memcpy(name, r.bytes(8), 8);
  if (codec != name) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                std::string("index file is for a ") + name + " image, not " + codec);
  }
  uint64_t csize = r.u64();
  uint32_t head = r.u32(), tail = r.u32();
  if (csize != image.size() || std::make_pair(head, tail) != fingerprint(image)) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "index file does not belong to " + image.path() + " (size or contents differ)");
  }
  StreamIndex x;
  x.size = r.u64();
  x.scanned = (r.u32() & 1) != 0;
  uint64_t npoints = r.u64(), nruns = r.u64();
  x.damaged_at = r.u64();
  uint32_t dlen = r.u32();
  if (dlen > 4096) throw_corrupt(path, r.pos - 4, "index damage text is too long");
  x.damage.assign(reinterpret_cast<const char*>(r.bytes(dlen)), dlen);
  // Each point takes at least 32 bytes, each run 16: counts bounded by the file.
  if (npoints == 0 || npoints > b.size() / 32 || nruns > b.size() / 16)
    throw_corrupt(path, r.pos, "index counts are out of range");
  x.points.reserve(static_cast<size_t>(npoints));
  for (uint64_t i = 0; i < npoints; ++i) {
    AccessPoint p;
    size_t at = r.pos;
    p.out = r.u64();
    p.in = r.u64();
    p.in_end = r.u64();
    p.bits = r.u32();
    uint32_t wlen = r.u32();
    if (wlen > 2 * kDeflateWindowBound) throw_corrupt(path, at, "index window is too large");
    if (wlen) {
      const uint8_t* w = r.bytes(wlen);
      p.window = std::make_shared<const std::vector<uint8_t>>(w, w + wlen);
    }
    bool ordered = i == 0 ? p.out == 0 : p.out > x.points.back().out;
    if (!ordered || (p.out >= x.size && x.size != 0) || p.in > image.size() * 8 ||
        p.in_end > image.size() * 8) {
      throw_corrupt(path, at, "index access point " + std::to_string(i) + " is out of range");
    }
    x.points.push_back(std::move(p));
  }
  for (uint64_t i = 0; i < nruns; ++i) {
    size_t at = r.pos;
    uint64_t s = r.u64(), e = r.u64();
    if (s >= e || e > x.size || (!x.zeros.empty() && s < x.zeros.back().second))
      throw_corrupt(path, at, "index zero run " + std::to_string(i) + " is out of range");
    x.zeros.emplace_back(s, e);
  }
  if (r.pos != b.size() - 4) throw_corrupt(path, r.pos, "index file has trailing bytes");
  idx = std::move(x);
  return true;
}

}  // namespace vdisk::compressed
