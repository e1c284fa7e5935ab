// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum MS-VHDX
// uses for headers, region tables and log entries (2.2.2, 2.2.3, 2.2.4).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdisk::vhdx {

// CRC-32C of buf[0, len) (initial value ~0, final xor ~0).
uint32_t crc32c(const void* buf, size_t len);

// The checksum of a VHDX structure whose 4-byte checksum field at
// `checksum_offset` counts as zero.
uint32_t crc32c_with_zero_field(const void* buf, size_t len, size_t checksum_offset);

// Computes that checksum and stores it little-endian into the field.
void store_checksum(void* buf, size_t len, size_t checksum_offset);

}  // namespace vdisk::vhdx
