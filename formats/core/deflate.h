// DEFLATE (RFC 1951) for the formats that store deflate streams: whole
// buffers compressed bare or in the zlib wrapper (RFC 1950), inflated, and
// Adler-32 (RFC 1950 8.2). Through libdeflate when the build has it (several
// times faster than zlib on whole buffers, see formats/vmdk/README.md) and
// zlib otherwise. Users: streamOptimized VMDK grains (zlib wrapper), qcow2
// clusters (bare), EWF chunks and header sections (zlib wrapper).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace vdisk {

enum class DeflateWrapper {
  kZlib,  // RFC 1950: 2-byte header, Adler-32 trailer
  kRaw,   // RFC 1951 only
};

// One compressor per thread (not thread-safe itself). `level` follows the
// library's scale: zlib 0-9, libdeflate 0-12 (clamped to the library's range).
class DeflateCompressor {
 public:
  explicit DeflateCompressor(DeflateWrapper wrapper, int level = 6);
  ~DeflateCompressor();
  DeflateCompressor(const DeflateCompressor&) = delete;
  DeflateCompressor& operator=(const DeflateCompressor&) = delete;
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

// Inflates the stream at `in` (at most `in_len` bytes; bytes after the end of
// the stream are ignored) into exactly `out_len` bytes: a shorter result is
// zero-padded (the last grain of a disk may be short). Returns false when the
// data is not a valid stream or inflates to more than `out_len` bytes. A bare
// stream that fills `out_len` bytes before its end counts as complete (qcow2:
// "decompression stops when it has produced a cluster of data").
// Thread-safe.
bool inflate_buffer(DeflateWrapper wrapper, const uint8_t* in, size_t in_len, uint8_t* out,
                    size_t out_len);

// Inflates the zlib stream `in[0, in_len)` into `out[0, out_cap)`. Returns
// the number of bytes produced (not padded), or nullopt when the data is not
// a valid zlib stream (bad header, bad Huffman data, Adler-32 mismatch) or
// would inflate to more than out_cap bytes. Bytes after the stream's end are
// ignored. Thread-safe.
std::optional<size_t> inflate_zlib(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap);

// Inflates a zlib stream whose result size is unknown (a header section),
// refusing to produce more than `max_out` bytes: nullopt when the data is not
// a valid zlib stream or inflates past `max_out`. Memory grows with what the
// stream produces, never with a size it claims.
std::optional<std::vector<uint8_t>> inflate_zlib_bounded(const uint8_t* in, size_t in_len,
                                                         size_t max_out);

// The Adler-32 of `len` bytes continuing from `adler` (1 to start).
uint32_t adler32(const void* data, size_t len, uint32_t adler = 1);

}  // namespace vdisk
