// One codec per compressed format (gzip, xz, zstd, bzip2), behind one
// interface the device (compressed_reader.h) drives: build the index, then
// start decoding at any access point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "formats/compressed/compressed_index.h"
#include "formats/core/file.h"
#include "formats/core/json.h"

namespace vdisk::compressed {

// Decodes forward from an access point. Not thread-safe: one user at a time.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Decodes up to `n` bytes into `out`; returns how many (0: the data ended,
  // at the end of a unit or of the stream). Throws Error(kIo) naming the
  // compressed offset and the disk offset reached when the data is damaged or
  // cut short.
  virtual size_t read(uint8_t* out, size_t n) = 0;
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual const char* name() const = 0;
  // Fills `idx` from the format's own tables, or by one decoding pass that
  // hands every decoded byte to `sink` (then sets idx.scanned). A stream
  // damaged past its headers still opens (idx.damage says where it broke);
  // damaged metadata throws Error(kCorrupt).
  virtual void build_index(StreamIndex& idx, const DataSink& sink) = 0;
  // A decoder that starts at idx.points[point].out.
  virtual std::unique_ptr<Decoder> start(const StreamIndex& idx, size_t point) const = 0;
  // Whether the units (blocks, frames) can be decoded in parallel cheaply:
  // every span between access points is one unit of the format.
  virtual bool independent_units() const { return true; }
};

std::unique_ptr<Codec> make_gzip_codec(std::shared_ptr<const File> file);
std::unique_ptr<Codec> make_xz_codec(std::shared_ptr<const File> file);
std::unique_ptr<Codec> make_zstd_codec(std::shared_ptr<const File> file);
std::unique_ptr<Codec> make_bzip2_codec(std::shared_ptr<const File> file);

// Reads the file forward in large pieces (a pass over compressed data).
class InputCursor {
 public:
  InputCursor(const File& file, uint64_t offset, uint64_t end = UINT64_MAX);
  // Bytes available at the cursor (refills when empty); empty at the end.
  std::pair<const uint8_t*, size_t> peek();
  void advance(size_t n) { buf_pos_ += n; }
  // Absolute offset of the next unread byte.
  uint64_t offset() const { return buf_off_ + buf_pos_; }

 private:
  const File& file_;
  uint64_t end_;
  uint64_t buf_off_;
  size_t buf_pos_ = 0;
  std::vector<uint8_t> buf_;
};

}  // namespace vdisk::compressed
