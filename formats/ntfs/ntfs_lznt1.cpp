#include "formats/ntfs/ntfs_lznt1.h"

#include <cstring>

#include "formats/core/endian.h"
#include "formats/ntfs/ntfs_layout.h"

namespace vdisk::ntfs {

namespace {

Lznt1Result fail(size_t produced, size_t at, std::string what) {
  Lznt1Result r;
  r.ok = false;
  r.produced = produced;
  r.bad_at = at;
  r.what = std::move(what);
  return r;
}

}  // namespace

Lznt1Result lznt1_decompress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap) {
  size_t ip = 0;
  size_t chunk_out = 0;  // output offset of the current chunk
  size_t produced = 0;
  bool first = true;
  while (ip + 2 <= in_len) {
    uint16_t header = load_le16(in + ip);
    if (header == 0) break;
    size_t data_len = (header & kLznt1SizeMask) + 1u;
    size_t data_at = ip + 2;
    if (data_at + data_len > in_len) {
      return fail(
          produced, ip,
          "LZNT1 chunk of " + std::to_string(data_len) + " bytes runs past the compressed data");
    }
    if (!first) chunk_out += kLznt1ChunkSize;
    first = false;
    if (chunk_out >= out_cap) {
      return fail(produced, ip, "LZNT1 data expands past its compression unit");
    }
    size_t chunk_end = chunk_out + kLznt1ChunkSize;
    if (chunk_end > out_cap) chunk_end = out_cap;
    size_t op = chunk_out;
    if (!(header & kLznt1Compressed)) {
      // A stored chunk: the bytes as they are.
      if (op + data_len > chunk_end) {
        return fail(produced, ip, "LZNT1 stored chunk expands past its compression unit");
      }
      std::memcpy(out + op, in + data_at, data_len);
      op += data_len;
    } else {
      size_t p = data_at;
      const size_t end = data_at + data_len;
      while (p < end) {
        uint8_t tag = in[p++];
        for (int bit = 0; bit < 8 && p < end; ++bit) {
          if (!(tag & (1u << bit))) {
            if (op >= chunk_end) return fail(produced, p, "LZNT1 literal past the chunk's end");
            out[op++] = in[p++];
            continue;
          }
          if (p + 2 > end) return fail(produced, p, "LZNT1 back reference cut off");
          uint16_t tuple = load_le16(in + p);
          p += 2;
          // The split between offset and length bits moves with the output
          // position inside the chunk (libyal, "LZNT1 compression method").
          size_t pos = op - chunk_out;
          if (pos == 0) return fail(produced, p - 2, "LZNT1 back reference at a chunk's start");
          unsigned length_bits = 12;
          uint16_t length_mask = 0x0FFF;
          for (size_t i = pos - 1; i >= 0x10; i >>= 1) {
            --length_bits;
            length_mask >>= 1;
          }
          size_t back = (tuple >> length_bits) + 1u;
          size_t count = (tuple & length_mask) + 3u;
          if (back > pos) return fail(produced, p - 2, "LZNT1 back reference before the chunk");
          if (op + count > chunk_end) {
            return fail(produced, p - 2, "LZNT1 back reference expands past its chunk");
          }
          // Byte by byte: the source may overlap what is being written.
          for (size_t k = 0; k < count; ++k, ++op) out[op] = out[op - back];
        }
      }
    }
    if (op > produced) produced = op;
    ip = data_at + data_len;
  }
  Lznt1Result r;
  r.produced = produced;
  return r;
}

}  // namespace vdisk::ntfs
