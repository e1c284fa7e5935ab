// zlib-format (RFC 1950) compression and decompression for the formats that
// store deflate streams (streamOptimized VMDK grains, EWF chunks and header
// sections), through libdeflate when the build has it (several times faster
// than zlib for whole buffers) and zlib otherwise; Adler-32 (RFC 1950 8.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace vdisk {

// One compressor per thread (not thread-safe itself). `level` follows the
// library's scale: zlib 0-9, libdeflate 0-12 (a zlib build clamps to 9).
class ZlibCompressor {
 public:
  explicit ZlibCompressor(int level = 6);
  ~ZlibCompressor();
  ZlibCompressor(const ZlibCompressor&) = delete;
  ZlibCompressor& operator=(const ZlibCompressor&) = delete;
  // Compresses `len` bytes into `out` (resized to the compressed length).
  void compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out);
  // Which library is in use ("libdeflate" or "zlib").
  static const char* library();
  // The largest level the library knows (12 for libdeflate, 9 for zlib).
  static int max_level();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Inflates the zlib stream `in[0, in_len)` into `out[0, out_cap)`. Returns
// the number of bytes produced, or nullopt when the data is not a valid zlib
// stream (bad header, bad Huffman data, Adler-32 mismatch) or would inflate
// to more than out_cap bytes. Bytes after the stream's end are ignored.
// Thread-safe.
std::optional<size_t> inflate_zlib(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap);

// Inflates a zlib stream whose result size is unknown (a header section) into
// `out`, refusing to produce more than `max_out` bytes: nullopt when the data
// is not a valid zlib stream or inflates past `max_out`.
std::optional<std::vector<uint8_t>> inflate_zlib_bounded(const uint8_t* in, size_t in_len,
                                                         size_t max_out);

// The Adler-32 of `len` bytes continuing from `adler` (1 to start).
uint32_t adler32(const void* data, size_t len, uint32_t adler = 1);

}  // namespace vdisk
