// LZNT1 decompression ([MS-XCA] 2.5; libyal NTFS "LZNT1 compression method"),
// the algorithm of NTFS compressed attributes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vdisk::ntfs {

struct Lznt1Result {
  bool ok = true;
  size_t produced = 0;  // bytes written to out (the rest of out is untouched)
  size_t bad_at = 0;    // input offset of the damage when !ok
  std::string what;     // what is wrong when !ok
};

// Decompresses the chunks in in[0, in_len) into out[0, out_cap). Chunks
// after the first start at a multiple of 4096 output bytes (a short chunk
// leaves zeros, which the caller pre-fills). Stops at a zero chunk header or
// the end of the input. Output past out_cap, a back reference before the
// chunk start, or a chunk running past the input is an error, never a
// write out of bounds.
Lznt1Result lznt1_decompress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap);

}  // namespace vdisk::ntfs
