// DEFLATE (RFC 1951) compression of whole buffers, bare or in the zlib
// wrapper (RFC 1950), through libdeflate when the build has it (faster for
// whole 64 KiB buffers, see formats/vmdk/README.md) and zlib otherwise.
// streamOptimized VMDK grains use the zlib wrapper, qcow2 clusters bare
// deflate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace vdisk {

enum class DeflateWrapper {
  kZlib,  // RFC 1950: 2-byte header, Adler-32 trailer
  kRaw,   // RFC 1951 only
};

// One compressor per thread (not thread-safe itself).
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

}  // namespace vdisk
