// A test helper, not a product feature: builds small UDIF (.dmg) files from
// the public layout (formats/dmg/dmg_layout.h), since Debian has no tool that
// makes them. Every image the tests build is first read by the oracles
// (qemu-img convert -f dmg, dmg2img) and compared with its source.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vdisk::test {

struct DmgBuildOptions {
  // Chunk type for chunks holding data: 1 raw, 0x80000004 ADC, 0x80000005
  // zlib, 0x80000006 bzip2, 0x80000007 LZFSE (the bytes are then stored
  // uncompressed: only for "vdisk refuses it" tests).
  uint32_t codec = 0x80000005;
  uint64_t chunk_sectors = 2048;
  // All-zero chunks as zero-fill (type 0) instead of compressed data.
  bool zero_chunks = true;
  // Sectors of each blkx entry (partition); the last takes what is left.
  std::vector<uint64_t> partitions;
};

std::vector<uint8_t> make_dmg(const std::vector<uint8_t>& disk, const DmgBuildOptions& o);

// RFC 4648 base64, in lines as hdiutil writes them.
std::string base64_encode(const std::vector<uint8_t>& b);

// ADC encoding of `in` (literals and matches of both lengths).
std::vector<uint8_t> adc_encode(const std::vector<uint8_t>& in);

}  // namespace vdisk::test
