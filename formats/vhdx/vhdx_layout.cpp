#include "formats/vhdx/vhdx_layout.h"

#include <cctype>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/unicode.h"

namespace vdisk::vhdx {

Geometry make_geometry(uint64_t virtual_size, uint64_t block_size, uint32_t logical_sector_size,
                       bool has_parent) {
  Geometry g;
  g.virtual_size = virtual_size;
  g.block_size = block_size;
  g.logical_sector_size = logical_sector_size;
  g.chunk_ratio = (kSectorsPerBitmapBlock * logical_sector_size) / block_size;
  g.data_blocks = virtual_size / block_size + (virtual_size % block_size != 0);
  g.bitmap_blocks = g.data_blocks / g.chunk_ratio + (g.data_blocks % g.chunk_ratio != 0);
  // 2.5: a differencing disk has a sector bitmap entry after every chunk; the
  // others stop after the last payload entry.
  if (has_parent) {
    g.total_bat_entries = g.bitmap_blocks * (g.chunk_ratio + 1);
  } else {
    g.total_bat_entries =
        g.data_blocks == 0 ? 0 : g.data_blocks + (g.data_blocks - 1) / g.chunk_ratio;
  }
  return g;
}

std::string utf16le_to_utf8(const uint8_t* p, size_t bytes) {
  return utf16_to_utf8(p, bytes, ByteOrder::kLittle);
}

std::string utf8_to_utf16le(const std::string& s) {
  return utf16_to_bytes(utf8_to_utf16(s), ByteOrder::kLittle);
}

}  // namespace vdisk::vhdx
