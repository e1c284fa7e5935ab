// What the reader and the writer share about chunk data (EWF 3.7): the zlib
// streams of an all-zero chunk, and the check of a stored chunk's Adler-32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vdisk::e01 {

// The zlib stream the writer stores for an all-zero chunk of `chunk_bytes`:
// the shortest of zlib level 9 and libdeflate level 12 (52 bytes for 32 KiB).
std::vector<uint8_t> zero_chunk_stream(size_t chunk_bytes);

// The compressed forms of an all-zero chunk that writers produce: zlib
// (which EnCase, FTK Imager and libewf use) at levels 1-9, and ours. Deflate
// is deterministic, so a chunk of zeros at one size and level is always the
// same bytes: a reader recognises it by its stored bytes, without inflating.
class ZeroChunkEncodings {
 public:
  explicit ZeroChunkEncodings(size_t chunk_bytes);
  // Whether some encoding is `len` bytes long.
  bool has_length(size_t len) const;
  // Whether p[0, len) is one of the encodings.
  bool matches(const uint8_t* p, size_t len) const;

 private:
  std::vector<std::vector<uint8_t>> enc_;
};

}  // namespace vdisk::e01
