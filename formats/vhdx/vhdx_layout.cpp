#include "formats/vhdx/vhdx_layout.h"

#include <cctype>
#include <cstring>
#include <random>

#include "formats/core/endian.h"
#include "formats/core/unicode.h"

namespace vdisk::vhdx {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Guid guid_constant(const char* text) {
  Guid g{};
  parse_guid(text, &g);
  return g;
}

}  // namespace

bool parse_guid(const std::string& text, Guid* out) {
  std::string t = text;
  if (t.size() == 38 && t.front() == '{' && t.back() == '}') t = t.substr(1, 36);
  if (t.size() != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-') return false;
  // The text reads as Data1-Data2-Data3-Data4[0..1]-Data4[2..7], each big-endian
  // in the text; the first three are little-endian on disk.
  uint8_t text_bytes[16];
  size_t n = 0;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '-') {
      ++i;
      continue;
    }
    int hi = hex_value(t[i]), lo = hex_value(t[i + 1]);
    if (hi < 0 || lo < 0) return false;
    text_bytes[n++] = static_cast<uint8_t>(hi * 16 + lo);
    i += 2;
  }
  if (n != 16) return false;
  Guid g{};
  store_le32(g.data(), load_be32(text_bytes));
  store_le16(g.data() + 4, load_be16(text_bytes + 4));
  store_le16(g.data() + 6, load_be16(text_bytes + 6));
  std::memcpy(g.data() + 8, text_bytes + 8, 8);
  *out = g;
  return true;
}

std::string guid_to_string(const Guid& g) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
                load_le32(g.data()), load_le16(g.data() + 4), load_le16(g.data() + 6), g[8], g[9],
                g[10], g[11], g[12], g[13], g[14], g[15]);
  return buf;
}

Guid load_guid(const void* p) {
  Guid g;
  std::memcpy(g.data(), p, 16);
  return g;
}

bool is_zero_guid(const Guid& g) {
  for (uint8_t b : g) {
    if (b) return false;
  }
  return true;
}

Guid random_guid() {
  std::random_device rd;
  Guid g;
  for (size_t i = 0; i < 16; i += 4) store_le32(g.data() + i, rd());
  g[7] = static_cast<uint8_t>((g[7] & 0x0f) | 0x40);  // version 4 (high nibble of Data3)
  g[8] = static_cast<uint8_t>((g[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return g;
}

const Guid kBatRegionGuid = guid_constant("2DC27766-F623-4200-9D64-115E9BFD4A08");
const Guid kMetadataRegionGuid = guid_constant("8B7CA206-4790-4B9A-B8FE-575F050F886E");
const Guid kFileParametersGuid = guid_constant("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
const Guid kVirtualDiskSizeGuid = guid_constant("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
const Guid kVirtualDiskIdGuid = guid_constant("BECA12AB-B2E6-4523-93EF-C309E000C746");
const Guid kLogicalSectorSizeGuid = guid_constant("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
const Guid kPhysicalSectorSizeGuid = guid_constant("CDA348C7-445D-4471-9CC9-E9885251C556");
const Guid kParentLocatorGuid = guid_constant("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
const Guid kVhdxLocatorTypeGuid = guid_constant("B04AEFB7-D19E-4A81-B789-25B8E9445913");

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
