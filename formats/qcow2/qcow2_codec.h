// Compressed clusters ("Compressed Clusters Descriptor", header field
// compression_type): bare deflate (RFC 1951, no zlib header; QEMU calls it
// "zlib") or zstd (RFC 8878). Deflate goes through formats/core/deflate.h,
// shared with streamOptimized VMDK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace vdisk::qcow2 {

// Decompresses the cluster whose data starts at `in` (`in_len` bytes read
// from the file: the descriptor's sectors, so the data may be followed by
// other bytes) into exactly `out_len` bytes. Returns false when the data is
// not valid or does not fill `out_len` bytes. Thread-safe.
bool decompress_cluster(uint8_t compression_type, const uint8_t* in, size_t in_len, uint8_t* out,
                        size_t out_len);

// One compressor per thread (not thread-safe itself).
class ClusterCompressor {
 public:
  virtual ~ClusterCompressor() = default;
  virtual void compress(const uint8_t* in, size_t len, std::vector<uint8_t>& out) = 0;
};
// For compression_type kCompressionDeflate or kCompressionZstd.
std::unique_ptr<ClusterCompressor> make_compressor(uint8_t compression_type);

}  // namespace vdisk::qcow2
