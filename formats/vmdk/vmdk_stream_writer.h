// The streamOptimized extent writer (VDF "Stream-Optimized Compressed Sparse
// Extents"): header with gdOffset = -1, the descriptor, then every non-zero
// grain as a grain marker with zlib data, a grain table marker and table after
// each table's worth of grains, and at the end the grain directory marker and
// directory, the footer marker and footer (the header with the real
// gdOffset), and the end-of-stream marker. It only appends, so it can write
// to a pipe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "formats/core/file.h"

namespace vdisk::vmdk {

class StreamExtentWriter {
 public:
  // `out` must outlive the writer. `threads` compressors run at once (0: one
  // per core).
  StreamExtentWriter(OutputFile& out, uint64_t capacity_sectors, uint64_t grain_bytes,
                     const std::string& descriptor, unsigned threads = 0);
  ~StreamExtentWriter();
  // Guest bytes in increasing offset order (ImageWriter contract).
  void write(uint64_t offset, const uint8_t* buf, size_t len);
  // Writes the remaining grains and the trailing metadata.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vdisk::vmdk
