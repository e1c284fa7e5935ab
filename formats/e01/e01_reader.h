// Reading EWF images (EWF-E01 from EnCase 1-7, FTK Imager, linen and libewf;
// EWF-S01 from SMART): every segment file is found from the first one
// through the Env, its sections walked and checked at open; the chunk tables
// are loaded on demand into a bounded cache, and decompressed chunks are
// kept in a cache of fixed size, so memory does not grow with the image.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"

namespace vdisk::e01 {

// Opens the set whose first segment is `file`. Throws Error(kNotThisFormat)
// without the EVF signature, Error(kUnsupported) for EWF2 (Ex01, Lx01) and
// EWF-L01 logical evidence, Error(kNotFound) naming a missing segment,
// Error(kCorrupt) naming the file, offset and field of anything else wrong
// (a segment of another image, a damaged section descriptor, a table whose
// entries point outside its sectors section). A damaged table falls back to
// its table2 copy with a warning through opts.warn.
//
// The device is thread-safe. Its reads check every chunk (the Adler-32 of a
// stored chunk, the zlib stream of a compressed one) and throw kCorrupt
// naming the chunk, unless opts.on_damaged_data is set (see format.h).
// block_status reports kZero for compressed chunks that hold only zeros
// (recognised by their bytes, or inflated once when small), kData for the
// rest; an EWF image has no unallocated ranges.
BlockDevicePtr open_e01(std::shared_ptr<const File> file, const OpenOptions& opts);

// Probe score: kProbeSignature for the EVF signature (EWF-E01, SMART).
int probe_e01(const ProbeInput& in);

// Chunks inflated by this process so far (tests: the chunk cache keeps a
// sequential reader from inflating a chunk twice; block_status does not
// inflate chunks it recognises).
uint64_t chunks_inflated();

}  // namespace vdisk::e01
