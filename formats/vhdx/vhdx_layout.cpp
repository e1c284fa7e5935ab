#include "formats/vhdx/vhdx_layout.h"

#include <cctype>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/unicode.h"

namespace vdisk::vhdx {

Header decode_header(const uint8_t* p) {
  Header h;
  h.sequence = load_le64(p + kHdrSequence);
  h.file_write_guid = load_guid(p + kHdrFileWriteGuid);
  h.data_write_guid = load_guid(p + kHdrDataWriteGuid);
  h.log_guid = load_guid(p + kHdrLogGuid);
  h.log_version = load_le16(p + kHdrLogVersion);
  h.version = load_le16(p + kHdrVersion);
  h.log_length = load_le32(p + kHdrLogLength);
  h.log_offset = load_le64(p + kHdrLogOffset);
  return h;
}

void encode_header(const Header& h, uint8_t* p) {
  std::memcpy(p, kHeaderSignature, 4);
  store_le64(p + kHdrSequence, h.sequence);
  store_guid(p + kHdrFileWriteGuid, h.file_write_guid);
  store_guid(p + kHdrDataWriteGuid, h.data_write_guid);
  store_guid(p + kHdrLogGuid, h.log_guid);
  store_le16(p + kHdrLogVersion, h.log_version);
  store_le16(p + kHdrVersion, h.version);
  store_le32(p + kHdrLogLength, h.log_length);
  store_le64(p + kHdrLogOffset, h.log_offset);
}

RegionEntry decode_region_entry(const uint8_t* p) {
  return RegionEntry{load_guid(p), load_le64(p + 16), load_le32(p + 24),
                     (load_le32(p + 28) & 1) != 0};
}

void encode_region_entry(const RegionEntry& e, uint8_t* p) {
  store_guid(p, e.guid);
  store_le64(p + 16, e.file_offset);
  store_le32(p + 24, e.length);
  store_le32(p + 28, e.required ? 1 : 0);
}

MetadataEntry decode_metadata_entry(const uint8_t* p) {
  return MetadataEntry{load_guid(p), load_le32(p + 16), load_le32(p + 20), load_le32(p + 24)};
}

void encode_metadata_entry(const MetadataEntry& e, uint8_t* p) {
  store_guid(p, e.item_id);
  store_le32(p + 16, e.offset);
  store_le32(p + 20, e.length);
  store_le32(p + 24, e.flags);
}

LocatorEntry decode_locator_entry(const uint8_t* p) {
  return LocatorEntry{load_le32(p), load_le32(p + 4), load_le16(p + 8), load_le16(p + 10)};
}

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
