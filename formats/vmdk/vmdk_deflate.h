// zlib-format (RFC 1950) compression of streamOptimized grains, through
// libdeflate when the build has it (faster for whole 64 KiB buffers, see
// README.md) and zlib otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace vdisk::vmdk {

// One compressor per thread (not thread-safe itself).
class GrainCompressor {
 public:
  explicit GrainCompressor(int level = 6);
  ~GrainCompressor();
  GrainCompressor(const GrainCompressor&) = delete;
  GrainCompressor& operator=(const GrainCompressor&) = delete;
  // Compresses `len` bytes into `out` (resized to the compressed length).
  void compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out);
  // Which library is in use ("libdeflate" or "zlib").
  static const char* library();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Inflates a zlib stream of `in_len` bytes into exactly `out_len` bytes (a
// shorter result is zero-padded: the last grain of a disk may be short).
// Returns false when the data is not a valid zlib stream or inflates to more
// than `out_len` bytes. Thread-safe.
bool inflate_grain(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len);

}  // namespace vdisk::vmdk
