// UDIF (.dmg) images as a block device: the koly trailer leads to the XML
// plist, whose blkx entries (one per partition) hold mish block tables; the
// chunks of those tables, laid on the disk by sector, are zero-fill, free
// (ignore), raw, or compressed (zlib, bzip2, ADC). LZFSE and LZMA chunks are
// recognised: `info` lists them and a read that reaches one fails with a
// message naming the codec. Thread-safe (a small cache of decoded chunks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "formats/core/format.h"

namespace vdisk::dmg {

BlockDevicePtr open_dmg(std::shared_ptr<const File> file, const OpenOptions& opts);

// Apple Data Compression (ADC), as UDIF's UDCO images use it: a byte stream
// of literal runs (0x80 | n-1, then n bytes; n <= 128), 3-byte matches
// (0x40 | len-4 (6 bits), distance-1 (16 bits, big-endian)) and 2-byte
// matches (len-3 (4 bits) << 2 | distance-1 high 2 bits, distance-1 low 8
// bits). Decodes `in` into exactly out.size() bytes; false when the data is
// malformed or does not fill it.
bool adc_decode(const uint8_t* in, size_t in_len, std::vector<uint8_t>& out);

}  // namespace vdisk::dmg
