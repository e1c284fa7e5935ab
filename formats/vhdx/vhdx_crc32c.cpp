#include "formats/vhdx/vhdx_crc32c.h"

#include <array>

#include "formats/core/endian.h"

namespace vdisk::vhdx {

namespace {

// Slicing-by-8 tables: table[0] is the classic byte table; table[k] advances
// a byte that sits k positions earlier.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (size_t k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    }
  }
};

const Tables& tables() {
  static const Tables tb;
  return tb;
}

uint32_t update(uint32_t crc, const uint8_t* p, size_t len) {
  const auto& t = tables().t;
  while (len >= 8) {
    uint32_t lo = load_le32(p) ^ crc;
    uint32_t hi = load_le32(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return crc;
}

}  // namespace

uint32_t crc32c(const void* buf, size_t len) {
  return ~update(~0u, static_cast<const uint8_t*>(buf), len);
}

uint32_t crc32c_with_zero_field(const void* buf, size_t len, size_t checksum_offset) {
  const auto* p = static_cast<const uint8_t*>(buf);
  static const uint8_t zeros[4] = {0, 0, 0, 0};
  uint32_t crc = update(~0u, p, checksum_offset);
  crc = update(crc, zeros, 4);
  crc = update(crc, p + checksum_offset + 4, len - checksum_offset - 4);
  return ~crc;
}

void store_checksum(void* buf, size_t len, size_t checksum_offset) {
  auto* p = static_cast<uint8_t*>(buf);
  store_le32(p + checksum_offset, crc32c_with_zero_field(p, len, checksum_offset));
}

}  // namespace vdisk::vhdx
